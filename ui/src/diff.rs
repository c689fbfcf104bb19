//! A line diff between two texts (two spec versions pretty-printed as
//! JSON): the longest common subsequence of lines, shown as kept, removed
//! and added lines. Specs are short; beyond [`MAX_LINES`] a side is
//! compared as a whole, so a huge spec cannot cost the master quadratic
//! time.

/// Lines compared one by one at most, per side.
pub const MAX_LINES: usize = 1000;

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Same(String),
    Removed(String),
    Added(String),
}

impl Line {
    /// `same`, `removed` or `added` (a CSS class and a data attribute).
    pub fn kind(&self) -> &'static str {
        match self {
            Line::Same(_) => "same",
            Line::Removed(_) => "removed",
            Line::Added(_) => "added",
        }
    }

    /// The mark shown before the line (not by colour alone).
    pub fn mark(&self) -> &'static str {
        match self {
            Line::Same(_) => " ",
            Line::Removed(_) => "-",
            Line::Added(_) => "+",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Line::Same(t) | Line::Removed(t) | Line::Added(t) => t,
        }
    }
}

/// The diff from `old` to `new`.
pub fn lines(old: &str, new: &str) -> Vec<Line> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return a
            .iter()
            .map(|l| Line::Removed(l.to_string()))
            .chain(b.iter().map(|l| Line::Added(l.to_string())))
            .collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    // u16: a common run is at most MAX_LINES long (1,000 x 1,000 = 2 MB).
    let mut lcs = vec![vec![0u16; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(Line::Same(a[i].to_string()));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(Line::Removed(a[i].to_string()));
            i += 1;
        } else {
            out.push(Line::Added(b[j].to_string()));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| Line::Removed(l.to_string())));
    out.extend(b[j..].iter().map(|l| Line::Added(l.to_string())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_are_a_removal_and_an_addition() {
        let d = lines(
            "{\n  \"cmd\": \"a\",\n  \"mem\": 64\n}",
            "{\n  \"cmd\": \"b\",\n  \"mem\": 64\n}",
        );
        let marks: Vec<String> = d
            .iter()
            .map(|l| format!("{}{}", l.mark(), l.text().trim()))
            .collect();
        assert_eq!(
            marks,
            [
                " {",
                "-\"cmd\": \"a\",",
                "+\"cmd\": \"b\",",
                " \"mem\": 64",
                " }"
            ]
        );
    }

    #[test]
    fn same_texts_and_empty_ones() {
        assert!(lines("a\nb", "a\nb").iter().all(|l| l.kind() == "same"));
        assert_eq!(lines("", "x"), [Line::Added("x".into())]);
        assert_eq!(lines("x", ""), [Line::Removed("x".into())]);
    }
}

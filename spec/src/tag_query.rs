//! Machine tags and the tag query language that selects agents and tasks.
//!
//! Agents carry tags in the service tree's own form, `tag.value` pieces
//! joined by `_`: `cop.x_owt.y_pdl.z_idc.c3_loc.bj_status.online`
//! ([`parse_tags`]). A task carries its job id's tags plus its agent's.
//!
//! A query is terms separated by spaces, all of which must hold (AND):
//!
//! | term           | holds when the thing carries...                  |
//! |----------------|--------------------------------------------------|
//! | `idc.c3`       | the tag `idc` with the value `c3`                |
//! | `idc.c3,c4`    | `idc` with `c3` or `c4` (OR, within one tag)     |
//! | `!status.offline` | no `status` with the value `offline` (NOT)    |
//!
//! So `pdl.im idc.c3,c4 !status.offline` is "product line im, in c3 or c4,
//! not offline". OR across different tags and globs are not supported: a
//! query stays a conjunction that reads left to right, and a `*` is an
//! error rather than a silent literal. The empty query selects everything.
//!
//! ```
//! use ocean_spec::tag_query::TagQuery;
//!
//! let q = TagQuery::parse("pdl.im idc.c3,c4 !status.offline").unwrap();
//! let tags = [("pdl", "im"), ("idc", "c4"), ("status", "online")];
//! assert!(q.matches(|t, v| tags.contains(&(t, v))));
//! let err = TagQuery::parse("pdl.im idd.c3").unwrap_err();
//! assert_eq!(err.field, "q");
//! assert!(err.reason.contains("position 8"), "{}", err.reason);
//! ```

use std::fmt;

use crate::error::FieldError;
use crate::id::TAGS;

/// Tags a machine carries besides the service tree's: its data center,
/// region, state and host name.
pub const MACHINE_TAGS: [&str; 4] = ["idc", "loc", "status", "hostname"];

/// The longest query or tags string accepted.
pub const MAX_LEN: usize = 4096;

/// Whether `tag` may appear in a query or a tags string.
pub fn is_known_tag(tag: &str) -> bool {
    TAGS.contains(&tag) || MACHINE_TAGS.contains(&tag)
}

/// Every tag a query may name, in the order tags strings list them.
pub fn known_tags() -> impl Iterator<Item = &'static str> {
    TAGS.iter().chain(MACHINE_TAGS.iter()).copied()
}

/// A tag value: letters, digits, `-` and `.` (host names have dots), at
/// most 253 bytes.
fn value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("an empty value".into());
    }
    if value.len() > 253 {
        return Some(format!("a value of {} bytes; at most 253", value.len()));
    }
    value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        .map(|c| {
            if c == '*' || c == '?' {
                format!(
                    "'{c}' in '{value}': globs are not supported; list values with ',' (idc.c3,c4)"
                )
            } else {
                format!("'{c}' in '{value}'; values hold letters, digits, '-' and '.'")
            }
        })
}

/// One term of a query: `[!]tag.value[,value...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub tag: String,
    /// Any of these (OR).
    pub values: Vec<String>,
}

impl Term {
    fn holds(&self, has: &impl Fn(&str, &str) -> bool) -> bool {
        self.values.iter().any(|v| has(&self.tag, v)) != self.negated
    }
}

/// A parsed query (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagQuery {
    terms: Vec<Term>,
}

impl TagQuery {
    /// Parses a query read from the field `q`.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::parse_field(s, "q")
    }

    /// Parses a query read from `field`; errors say at which position
    /// (1-based, in characters) the problem starts.
    pub fn parse_field(s: &str, field: &str) -> Result<Self, FieldError> {
        let err = |pos: usize, reason: String| {
            FieldError::new(field, format!("at position {pos}: {reason}"))
        };
        if s.len() > MAX_LEN {
            return Err(FieldError::new(
                field,
                format!("is {} bytes long; at most {MAX_LEN}", s.len()),
            ));
        }
        let mut terms = Vec::new();
        for (start, word) in words(s) {
            let pos = s[..start].chars().count() + 1;
            let (negated, body, body_pos) = match word.strip_prefix('!') {
                Some(rest) => (true, rest, pos + 1),
                None => (false, word, pos),
            };
            if body.starts_with('!') {
                return Err(err(pos, format!("'{word}' negates twice")));
            }
            let Some((tag, values)) = body.split_once('.') else {
                return Err(err(
                    body_pos,
                    format!("'{body}' is not of the form <tag>.<value> (e.g. idc.c3)"),
                ));
            };
            if !is_known_tag(tag) {
                return Err(err(
                    body_pos,
                    format!(
                        "unknown tag '{tag}'; expected one of {}",
                        known_tags().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let mut list = Vec::new();
            let mut at = body_pos + tag.chars().count() + 1;
            for v in values.split(',') {
                if let Some(problem) = value_problem(v) {
                    return Err(err(at, format!("{tag} has {problem}")));
                }
                list.push(v.to_string());
                at += v.chars().count() + 1;
            }
            terms.push(Term {
                negated,
                tag: tag.to_string(),
                values: list,
            });
        }
        Ok(TagQuery { terms })
    }

    /// True for the empty query, which selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in the order written.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether a thing for which `has(tag, value)` says which tags it
    /// carries satisfies every term.
    pub fn matches(&self, has: impl Fn(&str, &str) -> bool) -> bool {
        self.terms.iter().all(|t| t.holds(&has))
    }
}

impl fmt::Display for TagQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if t.negated {
                f.write_str("!")?;
            }
            write!(f, "{}.{}", t.tag, t.values.join(","))?;
        }
        Ok(())
    }
}

/// The whitespace-separated words of `s` with their byte offsets.
fn words(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split(char::is_whitespace)
        .scan(0usize, |offset, w| {
            let start = *offset;
            // Each split consumed one whitespace character after the word.
            *offset += w.len()
                + s[start + w.len()..]
                    .chars()
                    .next()
                    .map_or(0, char::len_utf8);
            Some((start, w))
        })
        .filter(|(_, w)| !w.is_empty())
}

/// Parses a tags string (`cop.x_owt.y_idc.c3_status.online`) read from
/// `field` into `(tag, value)` pairs, each tag at most once. Values here
/// cannot hold `_` (the separator) and need not follow the tree's order.
pub fn parse_tags(s: &str, field: &str) -> Result<Vec<(String, String)>, FieldError> {
    let err = |reason: String| FieldError::new(field, reason);
    if s.len() > MAX_LEN {
        return Err(err(format!("is {} bytes long; at most {MAX_LEN}", s.len())));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for piece in s.trim().split('_') {
        let Some((tag, value)) = piece.split_once('.') else {
            return Err(err(format!(
                "'{piece}' is not of the form <tag>.<value> (pieces are joined by '_', e.g. idc.c3_loc.bj)"
            )));
        };
        if !is_known_tag(tag) {
            return Err(err(format!(
                "unknown tag '{tag}'; expected one of {}",
                known_tags().collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(problem) = value_problem(value) {
            return Err(err(format!("{tag} has {problem}")));
        }
        if out.iter().any(|(t, _)| t == tag) {
            return Err(err(format!("tag '{tag}' is given twice")));
        }
        out.push((tag.to_string(), value.to_string()));
    }
    Ok(out)
}

/// `pairs` as a tags string, in the order of [`known_tags`]; pairs whose
/// tag is not known are left out.
pub fn format_tags<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> String {
    known_tags()
        .filter_map(|tag| {
            pairs
                .clone()
                .into_iter()
                .find(|(t, _)| *t == tag)
                .map(|(t, v)| format!("{t}.{v}"))
        })
        .collect::<Vec<_>>()
        .join("_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(q: &str) -> String {
        let e = TagQuery::parse(q).unwrap_err();
        assert_eq!(e.field, "q");
        e.reason
    }

    #[test]
    fn errors_name_the_position_and_the_problem() {
        for (q, pos, words) in [
            ("idc", 1, "<tag>.<value>"),
            ("pdl.im idd.c3", 8, "unknown tag 'idd'"),
            ("  pdl.im  !zz.c3", 12, "unknown tag 'zz'"),
            ("idc.c3,", 8, "empty value"),
            ("idc.c*", 5, "globs are not supported"),
            ("!!idc.c3", 1, "negates twice"),
            ("idc.c3 loc.b_j", 12, "'_'"),
            ("!", 2, "<tag>.<value>"),
        ] {
            let r = reason(q);
            assert!(r.starts_with(&format!("at position {pos}:")), "{q}: {r}");
            assert!(r.contains(words), "{q}: {r}");
        }
        assert!(reason(&"a".repeat(5000)).contains("at most 4096"));
    }

    #[test]
    fn a_query_prints_as_it_parses() {
        let q = TagQuery::parse(" pdl.im\tidc.c3,c4  !status.offline ").unwrap();
        assert_eq!(q.to_string(), "pdl.im idc.c3,c4 !status.offline");
        assert_eq!(TagQuery::parse(&q.to_string()).unwrap(), q);
        assert!(TagQuery::parse("").unwrap().is_empty());
        assert!(TagQuery::parse("").unwrap().matches(|_, _| false));
        // Host names keep their dots: the tag ends at the first one.
        let h = TagQuery::parse("hostname.web1.bj.example").unwrap();
        assert_eq!(h.terms()[0].values, ["web1.bj.example"]);
    }

    #[test]
    fn tags_strings_round_trip_in_tree_order() {
        let t = parse_tags("status.online_cop.x_idc.c3_owt.y", "tags").unwrap();
        let s = format_tags(t.iter().map(|(a, b)| (a.as_str(), b.as_str())));
        assert_eq!(s, "cop.x_owt.y_idc.c3_status.online");
        for (bad, words) in [
            ("idc.c3_idc.c4", "twice"),
            ("rack.r1", "unknown tag 'rack'"),
            ("idc", "<tag>.<value>"),
            ("idc.", "empty value"),
        ] {
            let e = parse_tags(bad, "tags").unwrap_err();
            assert_eq!(e.field, "tags");
            assert!(e.reason.contains(words), "{bad}: {}", e.reason);
        }
        assert!(parse_tags("", "tags").unwrap().is_empty());
    }

    const TAG_POOL: [&str; 4] = ["pdl", "idc", "status", "loc"];
    const VALUE_POOL: [&str; 3] = ["a", "b", "c"];

    /// A machine: at most one value per tag of the pool.
    fn machine() -> impl Strategy<Value = Vec<(usize, usize)>> {
        proptest::collection::btree_map(0..TAG_POOL.len(), 0..VALUE_POOL.len(), 0..=4)
            .prop_map(|m| m.into_iter().collect())
    }

    /// A query as terms: (negated, tag, values).
    fn query() -> impl Strategy<Value = Vec<(bool, usize, Vec<usize>)>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                0..TAG_POOL.len(),
                proptest::collection::vec(0..VALUE_POOL.len(), 1..=3),
            ),
            0..=4,
        )
    }

    fn text(terms: &[(bool, usize, Vec<usize>)]) -> String {
        terms
            .iter()
            .map(|(neg, t, vs)| {
                let vs: Vec<&str> = vs.iter().map(|v| VALUE_POOL[*v]).collect();
                format!(
                    "{}{}.{}",
                    if *neg { "!" } else { "" },
                    TAG_POOL[*t],
                    vs.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("  ")
    }

    proptest! {
        /// The parsed query selects exactly the machines a brute-force
        /// reading of the same terms selects.
        #[test]
        fn selects_what_brute_force_selects(
            machines in proptest::collection::vec(machine(), 0..12),
            terms in query(),
        ) {
            let q = TagQuery::parse(&text(&terms)).unwrap();
            let picked: Vec<usize> = (0..machines.len())
                .filter(|&i| {
                    let m = &machines[i];
                    q.matches(|t, v| m.iter().any(|(mt, mv)| TAG_POOL[*mt] == t && VALUE_POOL[*mv] == v))
                })
                .collect();
            let expected: Vec<usize> = (0..machines.len())
                .filter(|&i| {
                    terms.iter().all(|(neg, t, vs)| {
                        let value = machines[i].iter().find(|(mt, _)| mt == t).map(|(_, v)| *v);
                        let hit = value.is_some_and(|v| vs.contains(&v));
                        hit != *neg
                    })
                })
                .collect();
            prop_assert_eq!(picked, expected);
        }

        /// Any input either parses or is refused naming `q` and a position.
        #[test]
        fn anything_parses_or_names_a_position(s in "[a-z.,!* _]{0,30}") {
            match TagQuery::parse(&s) {
                Ok(q) => prop_assert_eq!(TagQuery::parse(&q.to_string()).unwrap(), q),
                Err(e) => {
                    prop_assert_eq!(e.field.as_str(), "q");
                    prop_assert!(e.reason.starts_with("at position "), "{}", e.reason);
                }
            }
        }
    }
}

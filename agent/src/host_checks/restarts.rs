//! The agent's own restarts: each start appends its time to
//! `<data>/agent-starts` (keeping only those within the window), so a
//! crash-looping agent shows up in its host checks.

use std::io;
use std::path::Path;
use std::time::Duration;

/// Records a start at `now_ms`; returns the starts within `window`,
/// this one included.
pub fn record_start(data_dir: &Path, now_ms: u64, window: Duration) -> io::Result<Vec<u64>> {
    let path = super::starts_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut starts: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|t| now_ms.saturating_sub(*t) < window.as_millis() as u64)
        .collect();
    starts.push(now_ms);
    let body: String = starts.iter().map(|t| format!("{t}\n")).collect();
    std::fs::create_dir_all(data_dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(starts)
}

/// Restarts within `window` before `now_ms`: starts other than the first.
pub fn restarts_within(starts: &[u64], now_ms: u64, window: Duration) -> u64 {
    let recent = starts
        .iter()
        .filter(|t| now_ms.saturating_sub(**t) < window.as_millis() as u64)
        .count() as u64;
    recent.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_kept_within_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Duration::from_secs(100);
        assert_eq!(record_start(dir.path(), 1_000, w).expect("first"), [1_000]);
        assert_eq!(
            record_start(dir.path(), 2_000, w).expect("second"),
            [1_000, 2_000]
        );
        let starts = record_start(dir.path(), 150_000, w).expect("third");
        // The first start fell out of the window.
        assert_eq!(starts, [150_000]);
        assert_eq!(restarts_within(&[1_000, 2_000, 3_000], 3_000, w), 2);
        assert_eq!(restarts_within(&[1_000, 2_000, 3_000], 101_500, w), 1);
    }
}

//! The two facts about a process that `/proc/<pid>/stat` gives us: its state
//! (to tell a zombie from a live process) and its start time in clock ticks
//! since boot (field 22), which makes "same pid" mean "same process".

use std::fs;

/// What we read from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z`, ...
    pub state: char,
    /// Field 22: start time in clock ticks after boot.
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if the process does not exist.
pub fn read_stat(pid: i32) -> Option<ProcStat> {
    let content = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&content)
}

/// Parses a `stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after the last `)`.
pub fn parse_stat(content: &str) -> Option<ProcStat> {
    let rest = &content[content.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); field 22 is 19 further.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// True if `pid` is the process that started at `start_time` and has not
/// exited (a zombie has exited, even if nobody reaped it yet).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(read_stat(pid), Some(stat) if stat.start_time == start_time && !matches!(stat.state, 'Z' | 'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        let line = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let stat = read_stat(pid);
        assert!(stat.is_some());
        if let Some(stat) = stat {
            assert!(is_alive(pid, stat.start_time));
            assert!(!is_alive(pid, stat.start_time + 1));
        }
    }
}

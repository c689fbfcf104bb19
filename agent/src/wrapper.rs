//! The exec wrapper: the first program of every task. It starts a new
//! session (so the task is its own process group), joins the task's cgroups
//! by writing its own pid to each `cgroup.procs`, then `exec`s the task's
//! command. The user's program therefore starts inside its limits, with no
//! window where it runs unconfined, and without `pre_exec` hooks.
//!
//! ```text
//! agent ──spawn──► wrapper ──setsid, echo $$ > .../cgroup.procs──► execvp(task)
//! ```
//!
//! Command line: `[--cgroup DIR]... -- PROGRAM [ARG]...`. Exit codes when it
//! fails before the task runs: 125 (bad arguments or cgroup join), 126 (exec
//! failed), 127 (program not found).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::errno::Errno;

/// Exit code when the wrapper itself fails (arguments, setsid, cgroups).
pub const EXIT_WRAPPER_FAILED: i32 = 125;
/// Exit code when the program exists but cannot be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// Exit code when the program is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// The wrapper's arguments for joining `cgroups` and running `argv`.
pub fn wrapper_args(cgroups: &[PathBuf], argv: &[String]) -> Vec<OsString> {
    let mut args = Vec::with_capacity(cgroups.len() * 2 + argv.len() + 1);
    for dir in cgroups {
        args.push(OsString::from("--cgroup"));
        args.push(dir.clone().into_os_string());
    }
    args.push(OsString::from("--"));
    args.extend(argv.iter().map(OsString::from));
    args
}

/// Runs the wrapper with `args` (without the program name) and never
/// returns: it becomes the task or exits with 125/126/127.
pub fn wrapper_main<I: IntoIterator<Item = OsString>>(args: I) -> ! {
    let error = match run(args.into_iter().collect()) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    eprintln!("ocean-task-wrapper: {}", error.message);
    std::process::exit(error.code)
}

#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
}

fn fail(code: i32, message: String) -> Failure {
    Failure { code, message }
}

enum Never {}

fn run(args: Vec<OsString>) -> Result<Never, Failure> {
    let (cgroups, argv) = parse(args)?;
    // Its own session and process group: the agent signals the whole group.
    // EPERM means we already lead a group (spawned with process_group(0)).
    match nix::unistd::setsid() {
        Ok(_) | Err(Errno::EPERM) => {}
        Err(e) => return Err(fail(EXIT_WRAPPER_FAILED, format!("setsid: {e}"))),
    }
    let pid = std::process::id().to_string();
    for dir in &cgroups {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, &pid).map_err(|e| {
            fail(
                EXIT_WRAPPER_FAILED,
                format!("join cgroup {}: {e}", procs.display()),
            )
        })?;
    }
    let c_args: Vec<CString> = argv
        .into_iter()
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(EXIT_WRAPPER_FAILED, format!("argument contains NUL: {e}")))?;
    let Some(program) = c_args.first() else {
        return Err(fail(EXIT_WRAPPER_FAILED, "no program after --".into()));
    };
    let errno = match nix::unistd::execvp(program, &c_args) {
        Ok(never) => match never {},
        Err(errno) => errno,
    };
    let code = if errno == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    };
    Err(fail(
        code,
        format!("exec {}: {errno}", program.to_string_lossy()),
    ))
}

fn parse(args: Vec<OsString>) -> Result<(Vec<PathBuf>, Vec<OsString>), Failure> {
    let usage = || {
        fail(
            EXIT_WRAPPER_FAILED,
            "usage: [--cgroup DIR]... -- PROGRAM [ARG]...".into(),
        )
    };
    let mut cgroups = Vec::new();
    let mut iter = args.into_iter();
    loop {
        let arg = iter.next().ok_or_else(usage)?;
        if arg == "--" {
            break;
        } else if arg == "--cgroup" {
            cgroups.push(PathBuf::from(iter.next().ok_or_else(usage)?));
        } else {
            return Err(usage());
        }
    }
    let argv: Vec<OsString> = iter.collect();
    if argv.is_empty() {
        return Err(usage());
    }
    Ok((cgroups, argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let dirs = vec![PathBuf::from("/cg/cpu/t"), PathBuf::from("/cg/memory/t")];
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "echo --cgroup".to_string(),
        ];
        let parsed = parse(wrapper_args(&dirs, &argv));
        let Ok((cgroups, rest)) = parsed else {
            panic!("parse failed: {parsed:?}")
        };
        assert_eq!(cgroups, dirs);
        assert_eq!(rest, argv.iter().map(OsString::from).collect::<Vec<_>>());
    }

    #[test]
    fn bad_arguments_are_rejected() {
        for bad in [vec![], vec!["--"], vec!["--cgroup"], vec!["x", "--", "a"]] {
            let args = bad.into_iter().map(OsString::from).collect();
            assert!(parse(args).is_err());
        }
    }
}

//! `ocean logs JOB [--grep RE] [--since D]`: the logs of a job's tasks,
//! running and ended (those the masters still list and whose agents still
//! keep the sandbox), searched line by line, each line prefixed with its
//! task.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures::StreamExt;
use serde_json::Value;

use crate::client::{Body, Client, Method};
use crate::cmd_client::urlencode;

/// `ocean logs` flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job's id.
    job: String,
    /// Only lines matching this regular expression.
    #[arg(long)]
    grep: Option<String>,
    /// Only tasks running now or ended within this long: `30m`, `2h`, `1d`.
    #[arg(long, value_parser = parse_since)]
    since: Option<Duration>,
    /// Search stderr instead of stdout.
    #[arg(long)]
    stderr: bool,
    /// Only the last N lines of each task.
    #[arg(long)]
    tail: Option<u64>,
}

/// `30s`, `30m`, `2h`, `1d`.
fn parse_since(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: give a duration such as 30m, 2h or 1d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// Runs `ocean logs`.
pub async fn logs(c: &Client, args: LogsArgs) -> anyhow::Result<()> {
    let grep = match &args.grep {
        Some(re) => Some(
            regex::Regex::new(re)
                .map_err(|e| anyhow::anyhow!("--grep: not a regular expression: {e}"))?,
        ),
        None => None,
    };
    let list = c
        .request(
            Method::GET,
            &format!("/v1/tasks?job={}", urlencode(&args.job)),
            Body::None,
        )
        .await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut tasks: Vec<&Value> = list["tasks"].as_array().into_iter().flatten().collect();
    if let Some(since) = args.since {
        let from = now_ms.saturating_sub(since.as_millis() as u64);
        tasks.retain(|t| t["ended_ms"].as_u64().is_none_or(|e| e >= from));
    }
    tasks.sort_by_key(|t| t["created_ms"].as_u64().unwrap_or(0));
    if tasks.is_empty() {
        anyhow::bail!("job {}: no tasks to search", args.job);
    }
    let mut out = std::io::stdout().lock();
    for t in tasks {
        let id = t["id"].as_str().unwrap_or_default();
        let short = id
            .strip_prefix(args.job.as_str())
            .map_or(id, |s| s.trim_start_matches('.'));
        let mut path = format!(
            "/v1/tasks/{}/logs?stream={}",
            urlencode(id),
            if args.stderr { "stderr" } else { "stdout" }
        );
        if let Some(n) = args.tail {
            path.push_str(&format!("&tail={n}"));
        }
        let mut text = Vec::new();
        match c.stream(&path).await {
            Ok(mut body) => {
                while let Some(chunk) = body.next().await {
                    match chunk {
                        Ok(b) => text.extend_from_slice(&b),
                        Err(e) => {
                            eprintln!("{id}: reading the log: {e:#}");
                            break;
                        }
                    }
                }
            }
            // An ended task whose agent is gone or forgot its sandbox.
            Err(e) => {
                eprintln!("{id}: {e:#}");
                continue;
            }
        }
        for line in String::from_utf8_lossy(&text).lines() {
            if grep.as_ref().is_none_or(|re| re.is_match(line)) {
                writeln!(
                    out,
                    "{short} {} | {line}",
                    t["state"].as_str().unwrap_or("?")
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_units() {
        assert_eq!(parse_since("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_since("5y").is_err());
        assert!(parse_since("x").is_err());
    }
}

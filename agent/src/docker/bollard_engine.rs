//! [`ContainerEngine`] over the real Docker engine, through `bollard` on
//! the engine's unix socket. The client speaks API 1.41 (Docker 20.10,
//! Debian 12's engine) and newer engines accept it too.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EventMessageTypeEnum, ExecConfig, HostConfig,
    HostConfigLogConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use super::engine::{
    ContainerEngine, ContainerInfo, ContainerSpec, ContainerStats, EngineError, EngineEvent,
    EngineResult, ExecOutcome, LogStream, EXEC_OUTPUT_KEPT,
};

/// The API version requested: Docker 20.10's, the oldest engine we support.
pub const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Seconds a request may wait for the engine's answer to begin (streams
/// such as events and followed logs then run as long as they need).
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// The real engine.
#[derive(Debug, Clone)]
pub struct BollardEngine {
    docker: Docker,
}

impl BollardEngine {
    /// A client for the engine listening on the unix socket `socket`. It
    /// does no I/O yet; [`ContainerEngine::version`] tells whether the
    /// engine answers.
    pub fn connect(socket: &Path) -> EngineResult<Self> {
        if !socket.exists() {
            return Err(EngineError::Unavailable(format!(
                "no docker socket at {}",
                socket.display()
            )));
        }
        let path = socket.to_string_lossy();
        Docker::connect_with_socket(&path, REQUEST_TIMEOUT_SECS, &API_VERSION)
            .map(|docker| Self { docker })
            .map_err(|e| EngineError::Unavailable(format!("{}: {e}", socket.display())))
    }
}

/// Maps bollard's errors onto ours: 404 and 409 keep their meaning, the
/// engine's other refusals carry its message, transport failures mean the
/// engine is unavailable.
fn map_err(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => EngineError::NotFound(message),
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => EngineError::Conflict(message),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Engine(format!("{status_code}: {message}")),
        BollardError::DockerStreamError { error } => EngineError::Engine(error),
        other => EngineError::Unavailable(other.to_string()),
    }
}

fn info_of(r: ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        labels: r
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        running: state.running.unwrap_or(false),
        exit_code: state.exit_code.unwrap_or(0),
        oom_killed: state.oom_killed.unwrap_or(false),
        pid: state.pid.unwrap_or(0),
        started_at_ms: state
            .started_at
            .as_deref()
            .and_then(rfc3339_utc_ms)
            .unwrap_or(0),
    }
}

/// Parses the engine's UTC timestamps (`2024-05-01T12:00:00.123456789Z`)
/// into ms since the Unix epoch; `None` for anything else (including the
/// zero time of a container that never started).
fn rfc3339_utc_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || y < 1970 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after H. Hinnant.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms_frac: i64 = format!("{:0<3}", frac.get(..3).unwrap_or(frac))
        .parse()
        .ok()?;
    let ms = ((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms_frac;
    u64::try_from(ms).ok().filter(|ms| *ms > 0)
}

fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{key}={value}")])])
}

#[async_trait]
impl ContainerEngine for BollardEngine {
    async fn stats(&self, id: &str) -> EngineResult<ContainerStats> {
        // One reading, without the engine's wait for a second one (one-shot,
        // API 1.41): rates are the sampler's business.
        let options = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker.stats(id, Some(options));
        let s = match stream.next().await {
            Some(r) => r.map_err(map_err)?,
            None => return Err(EngineError::NotFound(id.to_string())),
        };
        let cpu = s.cpu_stats.unwrap_or_default();
        let memory = s.memory_stats.unwrap_or_default();
        let stat = memory.stats.unwrap_or_default();
        let key = |v1: &str, v2: &str| stat.get(v1).or_else(|| stat.get(v2)).copied();
        let usage = memory.usage.unwrap_or(0);
        let throttling = cpu.throttling_data.unwrap_or_default();
        Ok(ContainerStats {
            cpu_usage_ns: cpu.cpu_usage.and_then(|u| u.total_usage),
            cpu_throttled_ns: throttling.throttled_time.unwrap_or(0),
            cpu_throttled_periods: throttling.throttled_periods.unwrap_or(0),
            memory_rss_bytes: key("rss", "anon").unwrap_or(0),
            memory_cache_bytes: key("cache", "file").unwrap_or(0),
            memory_peak_bytes: memory.max_usage.unwrap_or(usage),
            // An unlimited container reports the host's memory: kept, as
            // the ceiling it really has.
            memory_limit_bytes: memory.limit,
            pids: s.pids_stats.and_then(|p| p.current).unwrap_or(0),
        })
    }

    async fn version(&self) -> EngineResult<String> {
        let v = self.docker.version().await.map_err(map_err)?;
        Ok(format!(
            "{} (API {})",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default()
        ))
    }

    async fn pull(&self, image: &str) -> EngineResult<()> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(map_err)?;
        }
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> EngineResult<String> {
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|(container, proto, host)| {
                (
                    format!("{container}/{proto}"),
                    Some(vec![PortBinding {
                        host_ip: None,
                        host_port: Some(host.to_string()),
                    }]),
                )
            })
            .collect();
        let exposed: Vec<String> = port_bindings.keys().cloned().collect();
        let host_config = HostConfig {
            nano_cpus: (spec.nano_cpus > 0).then_some(spec.nano_cpus),
            memory: (spec.memory_bytes > 0).then_some(spec.memory_bytes),
            // Equal to memory: no swap beyond the limit, as for native tasks.
            memory_swap: (spec.memory_bytes > 0).then_some(spec.memory_bytes),
            pids_limit: (spec.pids_limit > 0).then_some(spec.pids_limit),
            network_mode: Some(spec.network.clone()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            privileged: Some(spec.privileged),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    (
                        "max-size".to_string(),
                        spec.log_max_bytes.max(4096).to_string(),
                    ),
                    ("max-file".to_string(), "2".to_string()),
                ])),
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(map_err)?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> EngineResult<()> {
        self.docker.start_container(id, None).await.map_err(map_err)
    }

    async fn inspect(&self, id: &str) -> EngineResult<ContainerInfo> {
        self.docker
            .inspect_container(id, None)
            .await
            .map(info_of)
            .map_err(map_err)
    }

    async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> EngineResult<ExecOutcome> {
        let run = async {
            let config = ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            };
            let exec = self
                .docker
                .create_exec(id, config)
                .await
                .map_err(map_err)?
                .id;
            let options = StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            };
            let mut output = Vec::new();
            if let StartExecResults::Attached {
                output: mut out, ..
            } = self
                .docker
                .start_exec(&exec, Some(options))
                .await
                .map_err(map_err)?
            {
                // The stream ends when the command does.
                while let Some(chunk) = out.next().await {
                    output.extend_from_slice(&chunk.map_err(map_err)?.into_bytes());
                    if output.len() > 2 * EXEC_OUTPUT_KEPT {
                        output.drain(..output.len() - EXEC_OUTPUT_KEPT);
                    }
                }
            }
            let inspected = self.docker.inspect_exec(&exec).await.map_err(map_err)?;
            let exit_code = inspected
                .exit_code
                .ok_or_else(|| EngineError::Engine(format!("exec {exec} in {id}: no exit code")))?;
            let kept = output.len().saturating_sub(EXEC_OUTPUT_KEPT);
            Ok(ExecOutcome {
                exit_code,
                output: String::from_utf8_lossy(&output[kept..]).trim().to_string(),
            })
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| {
                Err(EngineError::Engine(format!(
                    "exec in {id} did not end within {} ms",
                    timeout.as_millis()
                )))
            })
    }

    async fn signal(&self, id: &str, signal: &str) -> EngineResult<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        self.docker
            .kill_container(id, Some(options))
            .await
            .map_err(map_err)
    }

    async fn remove(&self, id: &str) -> EngineResult<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(map_err)
    }

    async fn list(&self, key: &str, value: &str) -> EngineResult<Vec<ContainerInfo>> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filter(key, value))
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(found.len());
        for c in found {
            let Some(id) = c.id else { continue };
            match self.inspect(&id).await {
                Ok(info) => out.push(info),
                // Removed between the list and the inspect.
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn events(&self, key: &str, value: &str) -> BoxStream<'static, EngineResult<EngineEvent>> {
        let mut filters = label_filter(key, value);
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("event".into(), vec!["die".into(), "oom".into()]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        self.docker
            .events(Some(options))
            .map_err(map_err)
            .try_filter_map(|m| async move {
                if m.typ != Some(EventMessageTypeEnum::CONTAINER) {
                    return Ok(None);
                }
                let id = m.actor.and_then(|a| a.id).unwrap_or_default();
                Ok(match m.action.as_deref() {
                    Some("die") => Some(EngineEvent::Die { id }),
                    Some("oom") => Some(EngineEvent::Oom { id }),
                    _ => None,
                })
            })
            .boxed()
    }

    fn logs(
        &self,
        id: &str,
        stream: LogStream,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, EngineResult<Bytes>> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(stream == LogStream::Stdout)
            .stderr(stream == LogStream::Stderr)
            .follow(follow)
            .tail(&tail)
            .build();
        self.docker
            .logs(id, Some(options))
            .map_ok(|out| out.into_bytes())
            .map_err(map_err)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc_ms;

    #[test]
    fn engine_timestamps_parse() {
        assert_eq!(rfc3339_utc_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            rfc3339_utc_ms("2024-03-01T12:34:56.789123456Z"),
            Some(1_709_296_496_789)
        );
        assert_eq!(
            rfc3339_utc_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(rfc3339_utc_ms("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_utc_ms("yesterday"), None);
    }
}

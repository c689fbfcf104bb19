//! [`MemoryEngine`]: an in-memory [`ContainerEngine`] for fast unit tests of
//! the executor. Containers are records; a test ends them with
//! [`MemoryEngine::exit`] (or they "die" on SIGKILL, and on SIGTERM unless
//! told to ignore it), and every end is published as a die event, exactly
//! as the real engine does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::engine::{
    ContainerEngine, ContainerInfo, ContainerSpec, ContainerStats, EngineError, EngineEvent,
    EngineResult, ExecOutcome, LogStream,
};

#[derive(Debug, Clone)]
struct Record {
    name: String,
    spec: ContainerSpec,
    info: ContainerInfo,
    stdout: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    containers: HashMap<String, Record>,
    images: Vec<String>,
    next_id: u64,
    unavailable: Option<String>,
    ignore_sigterm: bool,
    /// Signals received, by container id (kept after removal).
    signals: HashMap<String, Vec<String>>,
    /// Commands run by `exec`, by container id.
    execs: HashMap<String, Vec<Vec<String>>>,
    /// Exit code of `exec` by container id (0 when not set).
    exec_exit: HashMap<String, i64>,
    /// What `stats` answers, by container id (zeros when not set).
    stats: HashMap<String, ContainerStats>,
}

/// The in-memory engine. Clones share the same containers.
#[derive(Debug, Clone)]
pub struct MemoryEngine {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<(BTreeMap<String, String>, EngineEvent)>,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEngine {
    /// An engine with no containers and no images.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            events: broadcast::channel(1024).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes an image present (as `docker load` would).
    pub fn load_image(&self, image: &str) {
        self.state().images.push(image.to_string());
    }

    /// Makes every call fail as if the engine were gone (`Some`), or
    /// brings it back (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.state().unavailable = reason.map(str::to_string);
    }

    /// Containers ignore SIGTERM (as a shell running as pid 1 does).
    pub fn ignore_sigterm(&self, ignore: bool) {
        self.state().ignore_sigterm = ignore;
    }

    /// Ends a running container with `code`, as if its process exited
    /// (`oom`: the OOM killer did it, announced by an oom event first).
    pub fn exit(&self, id: &str, code: i64, oom: bool) {
        let labels = {
            let mut s = self.state();
            let Some(r) = s.containers.get_mut(id) else {
                return;
            };
            if !r.info.running {
                return;
            }
            r.info.running = false;
            r.info.status = "exited".into();
            r.info.exit_code = code;
            r.info.oom_killed = oom;
            r.info.pid = 0;
            r.info.labels.clone()
        };
        if oom {
            let _ = self
                .events
                .send((labels.clone(), EngineEvent::Oom { id: id.into() }));
        }
        let _ = self
            .events
            .send((labels, EngineEvent::Die { id: id.into() }));
    }

    /// Makes `exec` in container `id` end with `code`.
    pub fn set_exec_exit(&self, id: &str, code: i64) {
        self.state().exec_exit.insert(id.to_string(), code);
    }

    /// The commands `exec` ran in container `id`, in order.
    pub fn execs(&self, id: &str) -> Vec<Vec<String>> {
        self.state().execs.get(id).cloned().unwrap_or_default()
    }

    /// Appends to a container's standard output.
    pub fn write_stdout(&self, id: &str, bytes: &[u8]) {
        if let Some(r) = self.state().containers.get_mut(id) {
            r.stdout.extend_from_slice(bytes);
        }
    }

    /// The spec a container was created with, by name.
    pub fn spec_of(&self, name: &str) -> Option<ContainerSpec> {
        self.state()
            .containers
            .values()
            .find(|r| r.name == name)
            .map(|r| r.spec.clone())
    }

    /// Ids of the containers that exist.
    pub fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state().containers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Signals a container received, in order (also once it is removed).
    pub fn signals(&self, id: &str) -> Vec<String> {
        self.state().signals.get(id).cloned().unwrap_or_default()
    }

    /// Sets what `stats` answers for container `id`.
    pub fn set_stats(&self, id: &str, stats: ContainerStats) {
        self.state().stats.insert(id.to_string(), stats);
    }

    fn check(&self) -> EngineResult<()> {
        match &self.state().unavailable {
            Some(reason) => Err(EngineError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ContainerEngine for MemoryEngine {
    async fn stats(&self, id: &str) -> EngineResult<ContainerStats> {
        self.check()?;
        let s = self.state();
        match s.containers.get(id) {
            Some(r) if r.info.running => Ok(s.stats.get(id).copied().unwrap_or_default()),
            Some(_) => Err(EngineError::Conflict(format!(
                "container {id} is not running"
            ))),
            None => Err(EngineError::NotFound(id.into())),
        }
    }

    async fn version(&self) -> EngineResult<String> {
        self.check()?;
        Ok("memory (API 1.41)".into())
    }

    async fn pull(&self, image: &str) -> EngineResult<()> {
        self.check()?;
        Err(EngineError::Engine(format!(
            "pull {image}: no registry reachable"
        )))
    }

    async fn create(&self, spec: &ContainerSpec) -> EngineResult<String> {
        self.check()?;
        let mut s = self.state();
        if !s.images.contains(&spec.image) {
            return Err(EngineError::NotFound(format!(
                "No such image: {}",
                spec.image
            )));
        }
        if s.containers.values().any(|r| r.name == spec.name) {
            return Err(EngineError::Conflict(format!("name {} in use", spec.name)));
        }
        s.next_id += 1;
        let id = format!("{:064x}", s.next_id);
        let info = ContainerInfo {
            id: id.clone(),
            labels: spec.labels.clone(),
            status: "created".into(),
            ..ContainerInfo::default()
        };
        s.containers.insert(
            id.clone(),
            Record {
                name: spec.name.clone(),
                spec: spec.clone(),
                info,
                stdout: Vec::new(),
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> EngineResult<()> {
        self.check()?;
        let mut s = self.state();
        let pid = 1000 + i64::try_from(s.next_id).unwrap_or(0);
        let r = s
            .containers
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(id.into()))?;
        r.info.running = true;
        r.info.status = "running".into();
        r.info.pid = pid;
        r.info.started_at_ms = crate::task::now_ms();
        Ok(())
    }

    async fn inspect(&self, id: &str) -> EngineResult<ContainerInfo> {
        self.check()?;
        self.state()
            .containers
            .get(id)
            .map(|r| r.info.clone())
            .ok_or_else(|| EngineError::NotFound(id.into()))
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        _timeout: std::time::Duration,
    ) -> EngineResult<ExecOutcome> {
        self.check()?;
        let mut s = self.state();
        let running = s
            .containers
            .get(id)
            .map(|r| r.info.running)
            .ok_or_else(|| EngineError::NotFound(id.into()))?;
        if !running {
            return Err(EngineError::Conflict(format!(
                "container {id} is not running"
            )));
        }
        s.execs
            .entry(id.to_string())
            .or_default()
            .push(cmd.to_vec());
        let exit_code = s.exec_exit.get(id).copied().unwrap_or(0);
        Ok(ExecOutcome {
            exit_code,
            output: format!("exit {exit_code}"),
        })
    }

    async fn signal(&self, id: &str, signal: &str) -> EngineResult<()> {
        self.check()?;
        let ignore = {
            let mut s = self.state();
            let ignore = s.ignore_sigterm;
            let r = s
                .containers
                .get_mut(id)
                .ok_or_else(|| EngineError::NotFound(id.into()))?;
            if !r.info.running {
                return Err(EngineError::Conflict(format!(
                    "container {id} is not running"
                )));
            }
            s.signals
                .entry(id.to_string())
                .or_default()
                .push(signal.to_string());
            ignore
        };
        match signal {
            "SIGKILL" => self.exit(id, 137, false),
            "SIGTERM" if !ignore => self.exit(id, 143, false),
            _ => {}
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> EngineResult<()> {
        self.check()?;
        let running = self.state().containers.get(id).map(|r| r.info.running);
        match running {
            None => Err(EngineError::NotFound(id.into())),
            Some(true) => {
                self.exit(id, 137, false);
                self.state().containers.remove(id);
                Ok(())
            }
            Some(false) => {
                self.state().containers.remove(id);
                Ok(())
            }
        }
    }

    async fn list(&self, key: &str, value: &str) -> EngineResult<Vec<ContainerInfo>> {
        self.check()?;
        Ok(self
            .state()
            .containers
            .values()
            .filter(|r| r.info.labels.get(key).map(String::as_str) == Some(value))
            .map(|r| r.info.clone())
            .collect())
    }

    fn events(&self, key: &str, value: &str) -> BoxStream<'static, EngineResult<EngineEvent>> {
        if let Err(e) = self.check() {
            return stream::once(async move { Err(e) }).boxed();
        }
        let (key, value) = (key.to_string(), value.to_string());
        BroadcastStream::new(self.events.subscribe())
            .filter_map(move |e| {
                let keep = match e {
                    Ok((labels, event)) if labels.get(&key) == Some(&value) => Some(Ok(event)),
                    Ok(_) => None,
                    Err(lagged) => Some(Err(EngineError::Engine(lagged.to_string()))),
                };
                async move { keep }
            })
            .boxed()
    }

    fn logs(
        &self,
        id: &str,
        stream: LogStream,
        tail: Option<u64>,
        _follow: bool,
    ) -> BoxStream<'static, EngineResult<Bytes>> {
        let bytes = match (self.check(), self.state().containers.get(id)) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(EngineError::NotFound(id.into())),
            (Ok(()), Some(r)) => Ok(match stream {
                LogStream::Stdout => r.stdout.clone(),
                LogStream::Stderr => Vec::new(),
            }),
        };
        let bytes = bytes.map(|b| match tail {
            None => Bytes::from(b),
            Some(n) => {
                let text = String::from_utf8_lossy(&b).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(usize::try_from(n).unwrap_or(0));
                let mut out = lines[from..].join("\n");
                if !out.is_empty() {
                    out.push('\n');
                }
                Bytes::from(out)
            }
        });
        stream::once(async move { bytes }).boxed()
    }
}

//! The Docker executor: container tasks through the local Docker engine.
//!
//! ```text
//!  LaunchTask{docker} ─► launch::container_task (agent rules: volume roots,
//!                        privileged) ─► ContainerSpec
//!                                         │
//!  DockerExecutor ── ContainerEngine ─────┴─► BollardEngine (unix socket, API 1.41)
//!    launch / kill / recover / live_logs      MemoryEngine (unit tests)
//!    ◄── events (die, oom) of containers labelled io.ocean.agent=<agent id>
//! ```
//!
//! | module | holds |
//! | --- | --- |
//! | [`engine`] | the [`ContainerEngine`] trait and its types |
//! | [`bollard_engine`] | the real engine through `bollard` |
//! | [`memory`] | the in-memory engine for tests |
//! | [`launch`] | [`DockerConfig`], labels, `LaunchTask` → [`ContainerTask`] |
//! | [`executor`] | [`DockerExecutor`]: launch, events, kill, logs |
//! | [`probe`] | command health checks run inside the container (exec) |
//! | `recover` | re-adoption by label after an agent restart |

pub mod bollard_engine;
pub mod engine;
pub mod executor;
pub mod launch;
pub mod memory;
pub mod probe;
mod recover;

use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent::ExecutorInfo;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::executor::ExecutorConfig;
use crate::task::TaskStatus;

pub use bollard_engine::BollardEngine;
pub use engine::{
    ContainerEngine, ContainerInfo, ContainerSpec, ContainerStats, EngineError, EngineEvent,
    ExecOutcome, LogStream,
};
pub use executor::DockerExecutor;
pub use launch::{container_task, ContainerHealth, ContainerTask, DockerConfig};
pub use memory::MemoryEngine;
pub use recover::{AdoptedHealth, DockerRecovery};

/// The executor name agents report for Docker.
pub const EXECUTOR_NAME: &str = "docker";
/// The feature reported when privileged containers are allowed.
pub const FEATURE_PRIVILEGED: &str = "privileged";

/// How long the agent waits for the engine to answer at start-up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the engine for its version: the engine if it answers, and what the
/// agent reports about its Docker executor either way.
pub async fn probe(
    engine: Arc<dyn ContainerEngine>,
    config: &DockerConfig,
) -> (Option<Arc<dyn ContainerEngine>>, ExecutorInfo) {
    let mut info = ExecutorInfo {
        name: EXECUTOR_NAME.into(),
        ..Default::default()
    };
    match tokio::time::timeout(PROBE_TIMEOUT, engine.version()).await {
        Ok(Ok(version)) => {
            info.available = true;
            info.version = version;
            if config.allow_privileged {
                info.features.push(FEATURE_PRIVILEGED.into());
            }
            (Some(engine), info)
        }
        Ok(Err(error)) => {
            info.reason = error.to_string();
            (None, info)
        }
        Err(_) => {
            info.reason = format!(
                "docker engine at {} did not answer within {PROBE_TIMEOUT:?}",
                config.socket.display()
            );
            (None, info)
        }
    }
}

/// The report for an agent whose engine could not even be connected to.
pub fn unavailable(reason: String) -> ExecutorInfo {
    ExecutorInfo {
        name: EXECUTOR_NAME.into(),
        available: false,
        reason,
        ..Default::default()
    }
}

/// Starts the Docker executor when the agent has a Docker config: the
/// executor (its containers re-adopted, with what the re-adoption found)
/// when the engine answers, and what to report about it either way. Never fails: an agent without a working
/// engine runs native tasks and says why it has no Docker. `engine`
/// replaces the connection to `config.socket` (tests).
pub async fn start(
    config: Option<&DockerConfig>,
    engine: Option<Arc<dyn ContainerEngine>>,
    agent_id: &str,
    executor: &ExecutorConfig,
    status_tx: mpsc::UnboundedSender<TaskStatus>,
) -> (Option<(Arc<DockerExecutor>, DockerRecovery)>, ExecutorInfo) {
    let Some(config) = config else {
        return (
            None,
            unavailable("the Docker executor is disabled on this agent".into()),
        );
    };
    let engine: Arc<dyn ContainerEngine> = match engine {
        Some(engine) => engine,
        None => match BollardEngine::connect(&config.socket) {
            Ok(engine) => Arc::new(engine),
            Err(error) => {
                warn!(%error, "Docker executor unavailable");
                return (None, unavailable(error.to_string()));
            }
        },
    };
    let (engine, info) = probe(engine, config).await;
    let Some(engine) = engine else {
        warn!(reason = %info.reason, "Docker executor unavailable");
        return (None, info);
    };
    let docker = DockerExecutor::new(
        engine,
        agent_id,
        executor.data_dir.clone(),
        executor.sandbox_retention,
        status_tx,
    );
    match docker.recover().await {
        Ok(r) => {
            info!(adopted = r.adopted.len(), ended = r.ended.len(), version = %info.version, "Docker executor ready");
            (Some((Arc::new(docker), r)), info)
        }
        Err(error) => {
            warn!(%error, "Docker executor unavailable: cannot list its containers");
            (None, unavailable(error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests;

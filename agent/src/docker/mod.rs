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
//! | [`executor`] | [`DockerExecutor`] |

pub mod bollard_engine;
pub mod engine;
pub mod executor;
pub mod launch;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent::ExecutorInfo;

pub use bollard_engine::BollardEngine;
pub use engine::{
    ContainerEngine, ContainerInfo, ContainerSpec, EngineError, EngineEvent, LogStream,
};
pub use executor::{DockerExecutor, DockerRecovery};
pub use launch::{container_task, ContainerTask, DockerConfig};
pub use memory::MemoryEngine;

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

#[cfg(test)]
mod tests;

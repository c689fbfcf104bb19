//! Command health checks of container tasks: `/bin/sh -c command` run
//! inside the container through the engine's exec, so the check sees the
//! container's filesystem, network and environment, not the host's.

use std::sync::Arc;
use std::time::Duration;

use super::engine::ContainerEngine;
use crate::health::probe::{Probe, ProbeFuture};

/// Runs the check's command in a container; exit 0 is healthy.
#[derive(Debug, Clone)]
pub struct ExecProbe {
    /// The engine running the container.
    pub engine: Arc<dyn ContainerEngine>,
    /// Container id.
    pub container: String,
    /// The shell command.
    pub command: String,
    /// The check's timeout, also given to the engine so a hung exec ends.
    pub timeout: Duration,
}

impl Probe for ExecProbe {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let cmd = ["/bin/sh".to_string(), "-c".into(), self.command.clone()];
            let outcome = self
                .engine
                .exec(&self.container, &cmd, self.timeout)
                .await
                .map_err(|e| format!("command {:?} in the container: {e}", self.command))?;
            match (outcome.exit_code, outcome.output.is_empty()) {
                (0, _) => Ok(()),
                (code, true) => Err(format!(
                    "command {:?} in the container exited with {code}",
                    self.command
                )),
                (code, false) => Err(format!(
                    "command {:?} in the container exited with {code}: {}",
                    self.command, outcome.output
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{ContainerSpec, MemoryEngine};

    #[tokio::test]
    async fn the_command_runs_in_the_container_and_its_exit_code_decides() -> anyhow::Result<()> {
        let engine = MemoryEngine::new();
        engine.load_image("busybox");
        let id = engine
            .create(&ContainerSpec {
                name: "c".into(),
                image: "busybox".into(),
                ..Default::default()
            })
            .await?;
        engine.start(&id).await?;
        let probe = ExecProbe {
            engine: Arc::new(engine.clone()),
            container: id.clone(),
            command: "test -e /tmp/ok".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(probe.check().await, Ok(()));
        engine.set_exec_exit(&id, 1);
        let err = probe.check().await.err().unwrap_or_default();
        assert!(
            err.contains("\"test -e /tmp/ok\" in the container exited with 1"),
            "{err}"
        );
        assert_eq!(
            engine.execs(&id)[0],
            vec!["/bin/sh".to_string(), "-c".into(), "test -e /tmp/ok".into()]
        );
        // A container that stopped fails the check, naming why.
        engine.exit(&id, 0, false);
        let err = probe.check().await.err().unwrap_or_default();
        assert!(err.contains("not running"), "{err}");
        Ok(())
    }
}

//! Agents: the operator's status (online, draining, offline, problem).

use super::types::WriteResult;
use super::{invalid, Kernel, Service};
use crate::error::{Error, Result};
use crate::kernel::state::{set_agent_status_command, AGENT_STATUSES};

/// Longest status message, bytes.
pub const MAX_STATUS_MESSAGE: usize = 1024;

impl<K: Kernel> Service<K> {
    /// Sets an agent's operator status; `draining` and `offline` move its
    /// tasks off (replacements first).
    pub async fn set_agent_status(
        &self,
        id: &str,
        status: &str,
        message: &str,
    ) -> Result<WriteResult> {
        // Agents belong to no node: their status is an operator's act on
        // the whole cluster.
        self.authorize("", super::acl::Right::Operate)?;
        if !AGENT_STATUSES.contains(&status) {
            return Err(invalid(
                "status",
                format!("'{status}' is not one of {}", AGENT_STATUSES.join(", ")),
            ));
        }
        if message.len() > MAX_STATUS_MESSAGE {
            return Err(invalid(
                "message",
                format!(
                    "must be at most {MAX_STATUS_MESSAGE} bytes; got {}",
                    message.len()
                ),
            ));
        }
        if !self.kernel.read(|st| st.agents.contains_key(id)) {
            return Err(Error::NotFound {
                kind: "agent",
                id: id.to_string(),
            });
        }
        let cmd = set_agent_status_command(id.to_string(), status.to_string(), message.to_string());
        let applied = self.commit("agent", id, cmd).await?;
        Ok(WriteResult {
            id: id.to_string(),
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            spec_version: None,
            instances: None,
            revision: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::put_agent_command;
    use crate::service::LocalKernel;
    use ocean_proto::internal::Agent;

    #[tokio::test]
    async fn statuses_are_checked_before_they_are_proposed() {
        let k = LocalKernel::new();
        k.apply(put_agent_command(Agent {
            id: "h1".into(),
            ..Default::default()
        }));
        let s = Service::new(k.clone());
        let before = k.version();
        for (status, msg, field) in [
            ("gone", "", "status"),
            ("offline", &*"x".repeat(2000), "message"),
        ] {
            match s.set_agent_status("h1", status, msg).await {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
        assert!(matches!(
            s.set_agent_status("h9", "offline", "").await,
            Err(Error::NotFound { kind: "agent", .. })
        ));
        assert_eq!(k.version(), before);
        let r = s.set_agent_status("h1", "draining", "disk").await.unwrap();
        assert_eq!(r.outcome, "updated");
        assert_eq!(k.read(|st| st.agents["h1"].status.clone()), "draining");
    }
}

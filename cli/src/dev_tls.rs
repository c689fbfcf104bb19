//! `ocean dev --tls`: a CA kept in the dev data dir (so a client's copy of
//! `ca.pem` stays good across restarts) and the master's and the agent's
//! certificates, issued afresh at every start from it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ocean_tls::{Identity, Role};

/// Where the dev cluster's certificates are.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The CA's directory (`ca.pem`, `ca-key.pem`).
    pub ca: PathBuf,
    /// The master's directory (`cert.pem`, `key.pem`, `ca.pem`).
    pub master: PathBuf,
    /// The agent's directory.
    pub agent: PathBuf,
}

/// The name the dev agent's certificate carries when its data dir has no
/// id yet (it then takes this one).
const DEV_AGENT: &str = "dev-agent";

impl DevPki {
    /// Makes the CA under `dir` if there is none, then issues the master's
    /// certificate and the agent's, named for the id in `agent_dir` (an
    /// agent keeps the id it had before TLS was turned on).
    pub fn ensure(dir: &Path, agent_dir: &Path) -> anyhow::Result<Self> {
        let pki = DevPki {
            ca: dir.join("ca"),
            master: dir.join("master"),
            agent: dir.join("agent"),
        };
        if !pki.ca_cert().exists() {
            ocean_tls::new_ca(&pki.ca, "ocean-dev").context("--tls: making the dev CA")?;
        }
        let master = Identity::new(Role::Master, "dev").context("--tls")?;
        ocean_tls::issue(&pki.ca, &master, &[], &pki.master)
            .context("--tls: issuing the master's certificate")?;
        let agent_id = std::fs::read_to_string(agent_dir.join("agent-id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| DEV_AGENT.to_string());
        let agent = Identity::new(Role::Agent, &agent_id)
            .with_context(|| format!("--tls: the dev agent's id '{agent_id}'"))?;
        ocean_tls::issue(&pki.ca, &agent, &[], &pki.agent)
            .context("--tls: issuing the agent's certificate")?;
        Ok(pki)
    }

    /// The CA certificate clients trust (`ocean --ca-cert`).
    pub fn ca_cert(&self) -> PathBuf {
        self.ca.join(ocean_tls::CA_CERT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_the_agent_keeps_its_id() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let agent_dir = dir.path().join("agent");
        std::fs::create_dir_all(&agent_dir)?;
        let first = DevPki::ensure(&dir.path().join("tls"), &agent_dir)?;
        let ca = std::fs::read(first.ca_cert())?;
        let pem = std::fs::read_to_string(first.agent.join(ocean_tls::CERT))?;
        assert_eq!(ocean_tls::identity_of_pem(&pem)?.name, DEV_AGENT);

        std::fs::write(agent_dir.join("agent-id"), "host-7\n")?;
        let second = DevPki::ensure(&dir.path().join("tls"), &agent_dir)?;
        assert_eq!(std::fs::read(second.ca_cert())?, ca, "the CA was replaced");
        let pem = std::fs::read_to_string(second.agent.join(ocean_tls::CERT))?;
        assert_eq!(ocean_tls::identity_of_pem(&pem)?.name, "host-7");
        let pem = std::fs::read_to_string(second.master.join(ocean_tls::CERT))?;
        assert_eq!(ocean_tls::identity_of_pem(&pem)?.role, Role::Master);
        Ok(())
    }
}

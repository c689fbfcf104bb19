//! The OS boundary of the data plane: listing the table and applying a
//! script. [`NftCommand`] runs the real `nft` (optionally inside a network
//! namespace), [`crate::nft_lib::NftLib`] the library in process;
//! [`MemoryNft`] records scripts for tests of the programmer.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::nft_script::TABLE;

/// `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// It could not be started.
    #[error("running nft: {0}")]
    Spawn(#[from] std::io::Error),
    /// libnftables could not be loaded or its worker is gone.
    #[error("libnftables: {0}")]
    Library(String),
    /// It refused the script or the listing (its stderr).
    #[error("nft {action} failed: {stderr}")]
    Failed {
        /// list or apply.
        action: &'static str,
        /// What nft said.
        stderr: String,
    },
}

/// Lists and changes the Ocean table.
pub trait Nft: Send + Sync + std::fmt::Debug {
    /// `nft -j list table ip ocean_elb`; `None` when there is no table.
    fn list(&self) -> Result<Option<String>, NftError>;
    /// `nft -f` of `script`: all of it or nothing.
    fn apply(&self, script: &str) -> Result<(), NftError>;
    /// `nft -j list set ip ocean_elb SET` (its elements with their
    /// counters); `None` when there is no such set.
    fn list_set(&self, set: &str) -> Result<Option<String>, NftError>;
}

/// The real `nft`, in the current network namespace or in `netns`.
#[derive(Debug, Clone, Default)]
pub struct NftCommand {
    /// A named network namespace (`ip netns exec NAME nft ...`).
    pub netns: Option<String>,
}

impl NftCommand {
    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        }
    }
}

impl NftCommand {
    fn list_json(&self, what: &[&str]) -> Result<Option<String>, NftError> {
        let out = self.command().arg("-j").arg("list").args(what).output()?;
        if out.status.success() {
            return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        Err(NftError::Failed {
            action: "list",
            stderr,
        })
    }
}

impl Nft for NftCommand {
    fn list(&self) -> Result<Option<String>, NftError> {
        self.list_json(&["table", "ip", TABLE])
    }

    fn list_set(&self, set: &str) -> Result<Option<String>, NftError> {
        self.list_json(&["set", "ip", TABLE, set])
    }

    fn apply(&self, script: &str) -> Result<(), NftError> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if out.status.success() {
            Ok(())
        } else {
            let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            stderr.truncate(2_000);
            Err(NftError::Failed {
                action: "apply",
                stderr,
            })
        }
    }
}

/// A test double: records every script, answers `list` with what it is
/// given, and fails applies on demand.
#[derive(Debug, Default)]
pub struct MemoryNft {
    /// Scripts applied, in order.
    pub applied: Mutex<Vec<String>>,
    /// What `list` answers.
    pub listing: Mutex<Option<String>>,
    /// When true, `apply` fails (and records nothing).
    pub fail: Mutex<bool>,
    /// What `list_set` answers, by set.
    pub sets: Mutex<std::collections::BTreeMap<String, String>>,
}

impl Nft for MemoryNft {
    fn list(&self) -> Result<Option<String>, NftError> {
        Ok(self.listing.lock().map(|l| l.clone()).unwrap_or(None))
    }

    fn list_set(&self, set: &str) -> Result<Option<String>, NftError> {
        Ok(self.sets.lock().ok().and_then(|s| s.get(set).cloned()))
    }

    fn apply(&self, script: &str) -> Result<(), NftError> {
        if self.fail.lock().map(|f| *f).unwrap_or(false) {
            return Err(NftError::Failed {
                action: "apply",
                stderr: "refused by the test".into(),
            });
        }
        if let Ok(mut a) = self.applied.lock() {
            a.push(script.to_string());
        }
        Ok(())
    }
}

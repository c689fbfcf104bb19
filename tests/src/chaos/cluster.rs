//! 3 masters and 3 agents, each in its own namespace of a [`PartNet`],
//! and a namespace for the clients (the test itself runs there).

use std::time::{Duration, Instant};

use crate::cluster::{agent_ports, Process};
use crate::partition::{addr, PartNet};
use crate::{AgentProc, Api, MasterProc};

/// Masters are nodes 0..3, agents 3..6, the clients node 6.
pub const MASTERS: usize = 3;
/// Agents.
pub const AGENTS: usize = 3;
/// The clients' node.
pub const CLIENT: usize = MASTERS + AGENTS;
/// Where each agent serves its tasks' logs: what the clients reach an agent
/// at while it is cut from the masters.
pub const AGENT_HTTP_PORT: u16 = 7702;

/// The cluster (its processes die before their namespaces go).
#[derive(Debug)]
pub struct NsCluster {
    /// Master i has raft id i+1 and lives on node i.
    pub masters: Vec<MasterProc>,
    /// Agent k lives on node MASTERS+k.
    pub agents: Vec<AgentProc>,
    /// The network.
    pub net: PartNet,
    dir: tempfile::TempDir,
}

impl NsCluster {
    /// Makes the namespaces and starts every master and agent.
    pub fn start() -> anyhow::Result<Self> {
        let net = PartNet::new(&["m1", "m2", "m3", "a0", "a1", "a2", "cl"])?;
        let dir = tempfile::tempdir()?;
        let grpc: Vec<String> = (0..MASTERS).map(|i| format!("{}:7701", addr(i))).collect();
        let peers = grpc
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{}={g}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut masters = Vec::new();
        for (i, g) in grpc.iter().enumerate() {
            let id = i as u64 + 1;
            let mut m = MasterProc {
                id,
                http: format!("{}:7700", addr(i)).parse()?,
                grpc: g.parse()?,
                data_dir: dir.path().join(format!("m{id}")),
                args: vec!["--peers".into(), peers.clone()],
                process: Process::in_netns(dir.path().join(format!("m{id}.log")), net.ns(i)),
            };
            m.start()?;
            masters.push(m);
        }
        let mut agents = Vec::new();
        for k in 0..AGENTS {
            let node = MASTERS + k;
            let mut a = AgentProc {
                data_dir: dir.path().join(format!("agent-{k}")),
                args: vec![
                    "--master".into(),
                    grpc.join(","),
                    "--hostname".into(),
                    format!("chaos-a{k}"),
                    "--address".into(),
                    addr(node),
                    "--http".into(),
                    format!("{}:{AGENT_HTTP_PORT}", addr(node)),
                    "--ports".into(),
                    agent_ports(),
                ],
                process: Process::in_netns(dir.path().join(format!("agent-{k}.log")), net.ns(node)),
            };
            a.start()?;
            agents.push(a);
        }
        Ok(NsCluster {
            masters,
            agents,
            net,
            dir,
        })
    }

    /// The clients' namespace.
    pub fn client_ns(&self) -> String {
        self.net.ns(CLIENT).to_string()
    }

    /// A REST client per master (usable from the clients' namespace).
    pub fn apis(&self) -> Vec<Api> {
        self.masters.iter().map(MasterProc::api).collect()
    }

    /// The leader as a majority of the masters that answer within a second
    /// name it, if any.
    pub async fn leader(&self) -> Option<u64> {
        let apis = self.apis();
        let answers = futures::future::join_all(
            apis.iter()
                .map(|a| super::get_within_ms(a, "/v1/status", 1000)),
        )
        .await;
        let mut votes = std::collections::BTreeMap::<u64, usize>::new();
        for r in answers.into_iter().flatten() {
            if let Some(l) = r.body["leader"].as_u64().filter(|l| *l != 0) {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .find(|(_, n)| *n * 2 > MASTERS)
            .map(|(l, _)| l)
    }

    /// Waits until every master names the same leader.
    pub async fn wait_agreed_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let apis = self.apis();
            let answers = futures::future::join_all(
                apis.iter()
                    .map(|a| super::get_within_ms(a, "/v1/status", 1000)),
            )
            .await;
            let seen: Vec<u64> = answers
                .iter()
                .map(|r| {
                    r.as_ref()
                        .and_then(|r| r.body["leader"].as_u64())
                        .unwrap_or(0)
                })
                .collect();
            if seen[0] != 0 && seen.iter().all(|l| *l == seen[0]) {
                return Ok(seen[0]);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?} (saw {seen:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The master with raft id `id`.
    pub fn master(&mut self, id: u64) -> &mut MasterProc {
        &mut self.masters[(id - 1) as usize]
    }

    /// The tails of every process's log, for a failure report.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.masters {
            out.push_str(&format!("--- master {}\n{}\n", m.id, m.log_tail()));
        }
        for (k, a) in self.agents.iter().enumerate() {
            out.push_str(&format!("--- agent {k}\n{}\n", a.log_tail()));
        }
        out
    }

    /// Where the logs are.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Keeps the logs after the run (for a failed run to be read).
    pub fn keep_dir(self) -> std::path::PathBuf {
        let NsCluster {
            masters,
            agents,
            net,
            dir,
        } = self;
        drop(masters);
        drop(agents);
        drop(net);
        dir.keep()
    }
}

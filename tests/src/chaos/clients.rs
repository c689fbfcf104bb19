//! Clients that write and read registers (one job per key, the register
//! being its `env.V`) through random masters and record every operation
//! for the linearizability check. A write replaces the whole spec through
//! `POST /v1/jobs` (creating the job the first time) with a value no one
//! else writes; a read is `GET /v1/jobs/{id}?consistent=true` (404: the
//! register is still absent).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Rng;
use crate::linearizability::{Call, Op, Outcome};
use crate::Api;

/// How long a client waits for one answer before calling it unknown.
const PATIENCE: Duration = Duration::from_secs(3);

/// A register job: no task runs, so writes cost only consensus.
pub fn register_spec(id: &str, value: &str) -> Value {
    json!({
        "id": id,
        "cmd": "sleep 600",
        "instances": 0,
        "resources": {"cpus": 0.01, "mem": 16},
        "env": {"V": value},
    })
}

/// Running clients and what they recorded.
#[derive(Debug)]
pub struct Clients {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    history: Arc<Mutex<Vec<Op>>>,
}

impl Clients {
    /// Starts `n` clients over `keys`, timing from `t0`.
    pub fn start(n: usize, apis: &[Api], keys: &[String], seed: u64, t0: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let history: Arc<Mutex<Vec<Op>>> = Arc::default();
        let handles = (0..n)
            .map(|id| {
                let (apis, keys, stop, history) =
                    (apis.to_vec(), keys.to_vec(), stop.clone(), history.clone());
                let rng = Rng((seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                tokio::spawn(client(id, apis, keys, rng, stop, history, t0))
            })
            .collect();
        Clients {
            stop,
            handles,
            history,
        }
    }

    /// Stops the clients (each finishes or gives up on its operation) and
    /// returns the history.
    pub async fn finish(self) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.clone()
    }
}

async fn client(
    id: usize,
    apis: Vec<Api>,
    keys: Vec<String>,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
    t0: Instant,
) {
    let micros = |t: Instant| t.duration_since(t0).as_micros() as u64;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = keys[rng.below(keys.len() as u64) as usize].clone();
        let api = &apis[rng.below(apis.len() as u64) as usize];
        let invoke = Instant::now();
        let (call, outcome) = if rng.below(5) < 2 {
            n += 1;
            let value = format!("c{id}-{n}");
            let answer =
                tokio::time::timeout(PATIENCE, api.post("/v1/jobs", &register_spec(&key, &value)))
                    .await;
            let outcome = match answer {
                Ok(Ok(r)) if r.status < 300 => Outcome::Ok,
                // A refusal of the request itself: nothing was written.
                Ok(Ok(r)) if (400..500).contains(&r.status) => Outcome::Fail,
                // 503 not_committed may still commit; a timeout or a lost
                // connection may have been applied.
                _ => Outcome::Info,
            };
            (Call::Write(value), outcome)
        } else {
            let answer = tokio::time::timeout(
                PATIENCE,
                api.get(&format!("/v1/jobs/{key}?consistent=true")),
            )
            .await;
            match answer {
                Ok(Ok(r)) if r.status == 200 => (
                    Call::Read(r.body["spec"]["env"]["V"].as_str().map(str::to_string)),
                    Outcome::Ok,
                ),
                Ok(Ok(r)) if r.status == 404 => (Call::Read(None), Outcome::Ok),
                _ => (Call::Read(None), Outcome::Info),
            }
        };
        let complete = Instant::now();
        // A client whose master did not answer waits before trying again
        // (as a real one backs off), which also keeps the history small.
        let pause = if outcome == Outcome::Info { 300 } else { 20 };
        history.lock().unwrap_or_else(|p| p.into_inner()).push(Op {
            key,
            client: id,
            call,
            invoke: micros(invoke),
            complete: micros(complete),
            outcome,
        });
        tokio::time::sleep(Duration::from_millis(pause + rng.below(60))).await;
    }
}

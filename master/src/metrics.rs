//! Prometheus metrics of one master, served at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry, TextEncoder,
};

/// The master's metrics. Cheap to clone (handles to shared atomics).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Current raft term.
    pub term: IntGauge,
    /// 1 on the leader, 0 elsewhere.
    pub is_leader: IntGauge,
    /// Highest committed raft index known here.
    pub commit_index: IntGauge,
    /// Highest applied raft index.
    pub applied_index: IntGauge,
    /// commit - applied.
    pub apply_lag: IntGauge,
    /// The state version.
    pub state_version: IntGauge,
    /// Jobs stored.
    pub jobs: IntGauge,
    /// Tasks placed (applied placements, the same count on every master).
    pub tasks_placed: IntCounter,
    /// Tasks in state RUNNING.
    pub tasks_running: IntGauge,
    /// Tasks that have not ended.
    pub tasks_live: IntGauge,
    /// Duration of the leader's reconcile rounds (decide, place, commit).
    pub reconcile_seconds: Histogram,
    /// Proposals made on this master (rate() gives proposals/s).
    pub proposals: IntCounter,
    /// Entries applied.
    pub applied_entries: IntCounter,
    /// Snapshots installed from a leader.
    pub snapshots_installed: IntCounter,
    /// Log compactions.
    pub compactions: IntCounter,
    /// Latency of each synced write of the raft log.
    pub fsync_seconds: Histogram,
    /// Entries per synced write (group commit size).
    pub entries_per_write: Histogram,
    /// Agents this master, as leader, declared unreachable.
    pub agents_unreachable: IntCounter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("unique gauge");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("unique counter");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("unique histogram");
            h
        };
        Metrics {
            term: gauge("ocean_raft_term", "Current raft term"),
            is_leader: gauge("ocean_raft_is_leader", "1 if this master is the leader"),
            commit_index: gauge("ocean_raft_commit_index", "Highest committed raft index"),
            applied_index: gauge("ocean_raft_applied_index", "Highest applied raft index"),
            apply_lag: gauge(
                "ocean_raft_apply_lag",
                "Committed but not yet applied entries",
            ),
            state_version: gauge("ocean_state_version", "Version of the cluster state"),
            jobs: gauge("ocean_jobs", "Jobs stored"),
            tasks_placed: counter("ocean_tasks_placed_total", "Task placements applied"),
            tasks_running: gauge("ocean_tasks_running", "Tasks in state RUNNING"),
            tasks_live: gauge("ocean_tasks_live", "Tasks that have not ended"),
            reconcile_seconds: histogram(
                "ocean_reconcile_round_seconds",
                "Leader reconcile rounds: decide, place, commit",
                prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid buckets"),
            ),
            proposals: counter(
                "ocean_raft_proposals_total",
                "Proposals made on this master",
            ),
            applied_entries: counter("ocean_raft_applied_entries_total", "Raft entries applied"),
            snapshots_installed: counter(
                "ocean_raft_snapshots_installed_total",
                "Snapshots received from a leader and installed",
            ),
            compactions: counter("ocean_raft_log_compactions_total", "Raft log compactions"),
            fsync_seconds: histogram(
                "ocean_raft_fsync_seconds",
                "Latency of synced raft log writes",
                prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets"),
            ),
            entries_per_write: histogram(
                "ocean_raft_entries_per_write",
                "Raft entries persisted per synced write (group commit)",
                prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            agents_unreachable: counter(
                "ocean_agents_unreachable_total",
                "Agents declared unreachable (silent past the heartbeat timeout) by this master as leader",
            ),
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

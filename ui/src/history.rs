//! What each product line held over time: sampled on the server every
//! [`History::interval`] into a bounded ring (the oldest sample drops
//! out), so the product-line page can draw usage against quota without
//! a metrics store. Kept in the memory of the master that serves the
//! page: a fresh master starts with an empty history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use ocean_master::service::tasks::TaskFilter;
use ocean_master::service::ReadOptions;
use ocean_master::Master;

use crate::tree::pdl_of;

/// Seconds between samples by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Samples kept by default: an hour at the default interval.
pub const DEFAULT_SAMPLES: usize = 240;

/// What one product line held at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpus: f64,
    /// MiB.
    pub mem: u64,
    pub tasks: usize,
}

/// One sample of every product line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Wall clock, ms since the epoch.
    pub at_ms: u64,
    /// The state version sampled.
    pub version: u64,
    pub pdls: BTreeMap<String, Usage>,
}

/// The ring of samples.
#[derive(Debug)]
pub struct History {
    pub interval: Duration,
    capacity: usize,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// An empty history of at most `capacity` samples.
    pub fn new(interval: Duration, capacity: usize) -> Self {
        History {
            interval,
            capacity: capacity.max(1),
            samples: Mutex::new(VecDeque::with_capacity(capacity.max(1))),
        }
    }

    /// Adds a sample, dropping the oldest beyond the capacity.
    pub fn record(&self, s: Sample) {
        let mut q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == self.capacity {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// How many samples are kept.
    pub fn len(&self) -> usize {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One product line's usage at every kept sample, oldest first (zero
    /// where it held nothing).
    pub fn series(&self, pdl: &str) -> Vec<(u64, Usage)> {
        let q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        q.iter()
            .map(|s| (s.at_ms, s.pdls.get(pdl).copied().unwrap_or_default()))
            .collect()
    }
}

/// Live tasks' resources per product line, read through the service.
pub async fn sample(m: &Master) -> ocean_master::Result<Sample> {
    let live = TaskFilter {
        ended: Some(false),
        ..Default::default()
    };
    let (version, tasks) = m
        .service()
        .list_tasks(&live, ReadOptions::default())
        .await?;
    let mut pdls: BTreeMap<String, Usage> = BTreeMap::new();
    for t in tasks.iter() {
        if let Some(p) = pdl_of(&t.job_id) {
            let u = pdls.entry(p).or_default();
            u.cpus += t.cpus;
            u.mem += t.mem_mib;
            u.tasks += 1;
        }
    }
    Ok(Sample {
        at_ms: ocean_master::kernel::now_ms(),
        version,
        pdls,
    })
}

/// Samples every `history.interval` until the master's node stops.
pub fn spawn_sampler(m: Master, history: std::sync::Arc<History>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: the product-line history is not sampled");
        return;
    };
    rt.spawn(async move {
        let mut status = m.status_watch();
        let mut tick = tokio::time::interval(history.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => match sample(&m).await {
                    Ok(s) => history.record(s),
                    Err(error) => tracing::debug!(%error, "product-line sample skipped"),
                },
                changed = status.changed() => if changed.is_err() { break },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: u64, cpus: f64) -> Sample {
        Sample {
            at_ms: at,
            version: at,
            pdls: [(
                "cop.a_owt.b_pdl.c".to_string(),
                Usage {
                    cpus,
                    mem: 1,
                    tasks: 1,
                },
            )]
            .into(),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_samples() {
        let h = History::new(Duration::from_secs(1), 3);
        for i in 0..5 {
            h.record(s(i, i as f64));
        }
        let series = h.series("cop.a_owt.b_pdl.c");
        assert_eq!(
            series.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(series[2].1.cpus, 4.0);
        assert_eq!(h.series("cop.a_owt.b_pdl.other")[0].1, Usage::default());
    }
}

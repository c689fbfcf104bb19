//! Quotas on service-tree nodes: cpus and memory summed over every task
//! whose service path lies under the node.

use crate::explain::{QuotaExceeded, QuotaResource};
use crate::hash::FxHashMap;
use crate::resources::Resources;
use crate::snapshot::{Quota, RunningTask};

/// Usage under each quota node during a round.
#[derive(Debug)]
pub(crate) struct Quotas<'s> {
    quotas: &'s [Quota],
    used: Vec<Resources>,
}

impl<'s> Quotas<'s> {
    /// Charges running tasks to every quota covering their service path.
    pub(crate) fn new(quotas: &'s [Quota], running: &'s [RunningTask]) -> Self {
        let mut used = vec![Resources::default(); quotas.len()];
        if !quotas.is_empty() {
            // Sum per distinct path first: paths are far fewer than tasks.
            // Summed by hash (sums do not depend on order).
            let mut per_path: FxHashMap<&str, Resources> = FxHashMap::default();
            for t in running {
                let e = per_path.entry(t.service_path.as_str()).or_default();
                *e = e.saturating_add(t.resources);
            }
            for (path, r) in per_path {
                for (q, u) in quotas.iter().zip(used.iter_mut()) {
                    if q.covers(path) {
                        *u = u.saturating_add(r);
                    }
                }
            }
        }
        Self { quotas, used }
    }

    /// Indices of the quotas covering `service_path`.
    pub(crate) fn covering(&self, service_path: &str) -> Vec<usize> {
        (0..self.quotas.len())
            .filter(|&q| self.quotas[q].covers(service_path))
            .collect()
    }

    /// Would one more task of `req` stay within every quota in `list`?
    pub(crate) fn check(&self, list: &[usize], req: &Resources) -> Result<(), QuotaExceeded> {
        let within = |used: u64, requested: u64, limit: Option<u64>| {
            limit.is_none_or(|limit| used.saturating_add(requested) <= limit)
        };
        for &q in list {
            let (quota, used) = (&self.quotas[q], self.used[q]);
            if !(within(used.cpus_milli, req.cpus_milli, quota.cpus_milli)
                && within(used.mem_mib, req.mem_mib, quota.mem_mib))
            {
                return Err(exceeded(quota, used, req));
            }
        }
        Ok(())
    }

    /// Charges one task to every quota in `list`.
    pub(crate) fn charge(&mut self, list: &[usize], req: &Resources) {
        for &q in list {
            self.used[q] = self.used[q].saturating_add(*req);
        }
    }

    /// Releases one task (a preemption victim) from the quotas covering it.
    pub(crate) fn release(&mut self, service_path: &str, req: &Resources) {
        if self.quotas.is_empty() {
            return;
        }
        for (q, u) in self.quotas.iter().zip(self.used.iter_mut()) {
            if q.covers(service_path) {
                *u = u.saturating_sub(*req);
            }
        }
    }
}

/// The report of a quota that one more task of `req` would exceed: cpus
/// when they go over, memory otherwise. Out of line: it copies the node's
/// name, and the check runs before every placement.
#[cold]
fn exceeded(quota: &Quota, used: Resources, req: &Resources) -> QuotaExceeded {
    let (resource, used, requested, limit) = match quota.cpus_milli {
        Some(limit) if used.cpus_milli.saturating_add(req.cpus_milli) > limit => {
            (QuotaResource::Cpus, used.cpus_milli, req.cpus_milli, limit)
        }
        _ => (
            QuotaResource::Mem,
            used.mem_mib,
            req.mem_mib,
            quota.mem_mib.unwrap_or(u64::MAX),
        ),
    };
    QuotaExceeded {
        node: quota.node.clone(),
        resource,
        used,
        requested,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_running_and_rejects_over_limit() {
        let quotas = vec![Quota {
            node: "cop.x_pdl.a".into(),
            cpus_milli: Some(3000),
            mem_mib: None,
        }];
        let running = vec![RunningTask {
            service_path: "cop.x_pdl.a_job.j".into(),
            resources: Resources::new(2.0, 100, 0),
            ..RunningTask::default()
        }];
        let mut q = Quotas::new(&quotas, &running);
        let list = q.covering("cop.x_pdl.a_job.k");
        assert_eq!(list, vec![0]);
        assert!(q.covering("cop.x_pdl.ab_job.k").is_empty());
        let one = Resources::new(1.0, 1_000_000, 0);
        assert!(q.check(&list, &one).is_ok());
        q.charge(&list, &one);
        let e = q.check(&list, &one).unwrap_err();
        assert_eq!(e.resource, QuotaResource::Cpus);
        assert_eq!((e.used, e.requested, e.limit), (3000, 1000, 3000));
        assert_eq!(e.node, "cop.x_pdl.a");
        q.release("cop.x_pdl.a_job.j", &Resources::new(2.0, 0, 0));
        assert!(q.check(&list, &one).is_ok());
    }
}

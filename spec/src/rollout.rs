//! The rollout part of `upgrade_strategy`: how many tasks a deployment may
//! add or take away at once, given as a count or a percentage of
//! `instances`, and the effective limits a deployment uses.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spec::UpgradeStrategy;

/// A number of tasks: `2`, or `"25%"` of the job's instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// So many tasks.
    Count(u32),
    /// This percentage (0..=100) of `instances`.
    Percent(f64),
}

impl Amount {
    /// The number of tasks for `instances`: a percentage rounds up when
    /// `round_up` (surge: at least one task moves) and down otherwise
    /// (unavailability: never more than asked), as Kubernetes rounds them.
    pub fn of(self, instances: u32, round_up: bool) -> u32 {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => {
                let x = f64::from(instances) * p / 100.0;
                let x = if round_up { x.ceil() } else { x.floor() };
                x.clamp(0.0, f64::from(u32::MAX)) as u32
            }
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Amount::Count(n) => s.serialize_u32(*n),
            Amount::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count of tasks (e.g. 2) or a percentage of instances (e.g. \"25%\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                u32::try_from(v)
                    .map(Amount::Count)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                let number = v.trim().strip_suffix('%').ok_or_else(|| {
                    E::custom(format!("{v:?}: a percentage ends with %, e.g. \"25%\""))
                })?;
                let p: f64 = number
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("{v:?} is not a percentage")))?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(E::custom(format!("{v:?}: a percentage is 0%..=100%")));
                }
                Ok(Amount::Percent(p))
            }
        }
        d.deserialize_any(V)
    }
}

/// Default for [`UpgradeStrategy::healthy_deadline_seconds`] (Nomad's 5 m).
pub const DEFAULT_HEALTHY_DEADLINE_SECONDS: u32 = 300;
/// Default for [`UpgradeStrategy::progress_deadline_seconds`] (Nomad's 10 m).
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 600;

/// The limits a deployment of `instances` tasks works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Tasks that may run beyond `instances` while replacing.
    pub surge: u32,
    /// Serving (up) tasks that must remain: `instances - max_unavailable`.
    pub floor: u32,
}

impl UpgradeStrategy {
    /// The surge and the floor for `instances`. `max_surge` defaults to one
    /// task (one new task at a time, as before deployments existed);
    /// `max_unavailable`, when given, replaces `minimum_health_capacity`
    /// (which otherwise sets the floor, `ceil(capacity × instances)`). A
    /// rollout must be able to move: with neither surge nor unavailability
    /// it surges by one.
    pub fn limits(&self, instances: u32) -> Limits {
        let surge = self.max_surge.map_or(1, |a| a.of(instances, true));
        let floor = match self.max_unavailable {
            Some(a) => instances.saturating_sub(a.of(instances, false)),
            None => {
                let keep = (self.minimum_health_capacity * f64::from(instances)).ceil();
                (keep.max(0.0) as u32).min(instances)
            }
        };
        let surge = if surge == 0 && floor >= instances {
            1
        } else {
            surge
        };
        Limits { surge, floor }
    }

    /// `healthy_deadline_seconds` with its default.
    pub fn healthy_deadline(&self) -> u32 {
        self.healthy_deadline_seconds
            .unwrap_or(DEFAULT_HEALTHY_DEADLINE_SECONDS)
    }

    /// `progress_deadline_seconds` with its default.
    pub fn progress_deadline(&self) -> u32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }
}

impl crate::JobSpec {
    /// What a running task embodies of the spec: the spec with every field
    /// reset that tasks do not carry (the instance count, the restart
    /// back-off and flapping limits, the upgrade strategy, priority,
    /// placement policy, the unreachable strategy, the health checks'
    /// timings and thresholds, and the labels of a job that is not a
    /// container, whose labels only Ocean reads). Two specs with the same
    /// embodied form need no task replaced: a deployment is started only
    /// when it changes. Health-check timings apply to tasks launched after
    /// the change; running ones keep theirs until they are replaced.
    pub fn embodied(&self) -> crate::JobSpec {
        let mut s = self.clone();
        s.instances = 0;
        s.unreachable_strategy = None;
        s.backoff = crate::Backoff::default();
        s.flapping = crate::Flapping::default();
        s.upgrade_strategy = UpgradeStrategy::default();
        s.priority = crate::spec::default_priority();
        s.placement_policy = None;
        s.shutdown_delay_seconds = 0;
        if s.container.is_none() {
            s.labels.clear();
        }
        for h in &mut s.health_checks {
            h.grace_period_seconds = crate::health::default_grace_period_seconds();
            h.interval_seconds = crate::health::default_interval_seconds();
            h.interval_ms = None;
            h.timeout_seconds = crate::health::default_timeout_seconds();
            h.max_consecutive_failures = crate::health::default_max_consecutive_failures();
        }
        s
    }

    /// A hash of [`JobSpec::embodied`]: tasks carry it, and a task whose
    /// hash differs from its job's is of another version. FNV-1a over the
    /// canonical JSON: stable across builds and masters.
    pub fn config_hash(&self) -> u64 {
        self.embodied()
            .to_canonical_json()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            })
    }
}

/// Serde's `skip_serializing_if` for zero counts.
pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Serde's `skip_serializing_if` for false flags.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(json: &str) -> UpgradeStrategy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn amounts_are_counts_or_percentages() {
        let s = strategy(r#"{"max_surge": "10%", "max_unavailable": 2}"#);
        assert_eq!(s.max_surge, Some(Amount::Percent(10.0)));
        assert_eq!(s.max_unavailable, Some(Amount::Count(2)));
        assert_eq!(
            s.limits(1000),
            Limits {
                surge: 100,
                floor: 998
            }
        );
        // A surge rounds up, an unavailability down.
        let s = strategy(r#"{"max_surge": "10%", "max_unavailable": "10%"}"#);
        assert_eq!(s.limits(5), Limits { surge: 1, floor: 5 });
        for bad in [
            r#"{"max_surge": "10"}"#,
            r#"{"max_surge": "150%"}"#,
            r#"{"max_surge": -1}"#,
        ] {
            let e = serde_json::from_str::<UpgradeStrategy>(bad).unwrap_err();
            assert!(
                e.to_string().contains("max_surge")
                    || e.to_string().contains('%')
                    || e.to_string().contains("negative"),
                "{bad}: {e}"
            );
        }
        // Written back as given.
        let back = serde_json::to_string(&strategy(r#"{"max_surge": "25%"}"#)).unwrap();
        assert!(back.contains(r#""max_surge":"25%""#), "{back}");
    }

    #[test]
    fn the_floor_comes_from_the_capacity_unless_unavailability_is_given() {
        let s = UpgradeStrategy::default();
        assert_eq!(
            s.limits(10),
            Limits {
                surge: 1,
                floor: 10
            }
        );
        let s = strategy(r#"{"minimum_health_capacity": 0.5}"#);
        assert_eq!(s.limits(5), Limits { surge: 1, floor: 3 });
        let s = strategy(r#"{"minimum_health_capacity": 1.0, "max_unavailable": 3}"#);
        assert_eq!(s.limits(10).floor, 7);
        // Nothing may move: one extra task is allowed after all.
        let s = strategy(r#"{"max_surge": 0}"#);
        assert_eq!(s.limits(4), Limits { surge: 1, floor: 4 });
        let s = strategy(r#"{"max_surge": 0, "max_unavailable": 1}"#);
        assert_eq!(s.limits(4), Limits { surge: 0, floor: 3 });
    }

    #[test]
    fn only_what_tasks_carry_is_embodied() {
        let mut a = crate::JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "sleep 1");
        a.health_checks
            .push(serde_json::from_str(r#"{"protocol": "tcp", "port_name": "p"}"#).unwrap());
        let mut b = a.clone();
        b.instances = 9;
        b.labels.insert("team".into(), "x".into());
        b.backoff.backoff_seconds = 9.0;
        b.upgrade_strategy.step = 3;
        b.priority = 5;
        b.health_checks[0].max_consecutive_failures = 9;
        b.health_checks[0].interval_seconds = 1;
        assert_eq!(a.embodied(), b.embodied());
        // What the task runs, or where its checks look, is embodied.
        let mut c = b.clone();
        c.health_checks[0].port_name = Some("q".into());
        assert_ne!(a.embodied(), c.embodied());
        let mut d = b.clone();
        d.env.insert("A".into(), "1".into());
        assert_ne!(a.embodied(), d.embodied());
        // A container's labels are the container's.
        let mut e = a.clone();
        e.container = Some(serde_json::from_str(r#"{"docker": {"image": "x"}}"#).unwrap());
        let mut f = e.clone();
        f.labels.insert("team".into(), "x".into());
        assert_ne!(e.embodied(), f.embodied());
    }

    #[test]
    fn defaults_leave_the_canonical_form_as_it_was() {
        let s = serde_json::to_string(&UpgradeStrategy::default()).unwrap();
        assert_eq!(
            s,
            r#"{"minimum_health_capacity":1.0,"maximum_over_capacity":1.0}"#
        );
        assert_eq!(UpgradeStrategy::default().healthy_deadline(), 300);
        assert_eq!(UpgradeStrategy::default().progress_deadline(), 600);
    }
}

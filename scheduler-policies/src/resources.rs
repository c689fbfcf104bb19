//! Integer resources (milli-cpus, MiB) and port requests.
//!
//! Everything is an integer so that plans are exact and deterministic:
//! `0.1 + 0.2` cpus never leaves a sliver of capacity behind.

use std::fmt;

/// Scalar resources, in integer units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Resources {
    /// Thousandths of a cpu (1500 = 1.5 cpus).
    pub cpus_milli: u64,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Disk in MiB.
    pub disk_mib: u64,
}

impl Resources {
    /// Builds resources from fractional cpus (as job specs write them).
    /// Negative, NaN or infinite cpus become 0; values are rounded to the
    /// nearest milli-cpu.
    pub fn new(cpus: f64, mem_mib: u64, disk_mib: u64) -> Self {
        Self {
            cpus_milli: cpus_to_milli(cpus),
            mem_mib,
            disk_mib,
        }
    }

    /// Cpus as a float, for display.
    pub fn cpus(&self) -> f64 {
        self.cpus_milli as f64 / 1000.0
    }

    /// Component-wise saturating sum.
    pub fn saturating_add(self, other: Self) -> Self {
        Self {
            cpus_milli: self.cpus_milli.saturating_add(other.cpus_milli),
            mem_mib: self.mem_mib.saturating_add(other.mem_mib),
            disk_mib: self.disk_mib.saturating_add(other.disk_mib),
        }
    }

    /// Component-wise saturating difference.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self {
            cpus_milli: self.cpus_milli.saturating_sub(other.cpus_milli),
            mem_mib: self.mem_mib.saturating_sub(other.mem_mib),
            disk_mib: self.disk_mib.saturating_sub(other.disk_mib),
        }
    }

    /// True when every component of `self` is at least `other`'s.
    pub fn covers(&self, other: &Self) -> bool {
        self.cpus_milli >= other.cpus_milli
            && self.mem_mib >= other.mem_mib
            && self.disk_mib >= other.disk_mib
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpus {}, mem {} MiB, disk {} MiB",
            fmt_milli(self.cpus_milli),
            self.mem_mib,
            self.disk_mib
        )
    }
}

/// Converts fractional cpus to milli-cpus, mapping junk to 0.
pub fn cpus_to_milli(cpus: f64) -> u64 {
    if cpus.is_finite() && cpus > 0.0 {
        let milli = (cpus * 1000.0).round();
        if milli >= u64::MAX as f64 {
            u64::MAX
        } else {
            milli as u64
        }
    } else {
        0
    }
}

/// Formats milli-cpus as a decimal without float noise: `1500` -> `1.5`.
pub fn fmt_milli(milli: u64) -> String {
    let whole = milli / 1000;
    let frac = milli % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        let s = format!("{whole}.{frac:03}");
        s.trim_end_matches('0').to_string()
    }
}

/// An inclusive range of host ports an agent offers, `begin..=end`.
/// A range with `begin > end` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortRange {
    /// First port of the range.
    pub begin: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

impl PortRange {
    /// `begin..=end`.
    pub fn new(begin: u16, end: u16) -> Self {
        Self { begin, end }
    }
}

/// One named host port a task needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortRequest {
    /// The port's name in the job spec (`http`, `admin`...).
    pub name: String,
    /// `Some(port)` for a fixed host port, `None` for one chosen by the
    /// scheduler from the agent's free port ranges.
    pub fixed: Option<u16>,
}

impl PortRequest {
    /// A port the scheduler picks from the agent's free ranges.
    pub fn dynamic(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fixed: None,
        }
    }

    /// A fixed host port; it must lie in one of the agent's port ranges
    /// (Mesos semantics) and be free there.
    pub fn fixed(name: impl Into<String>, port: u16) -> Self {
        Self {
            name: name.into(),
            fixed: Some(port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_round_to_milli_and_reject_junk() {
        assert_eq!(cpus_to_milli(1.5), 1500);
        assert_eq!(cpus_to_milli(0.1 + 0.2), 300);
        assert_eq!(cpus_to_milli(-1.0), 0);
        assert_eq!(cpus_to_milli(f64::NAN), 0);
        assert_eq!(cpus_to_milli(f64::INFINITY), 0);
        assert_eq!(cpus_to_milli(1e300), u64::MAX);
    }

    #[test]
    fn milli_formats_without_float_noise() {
        assert_eq!(fmt_milli(1500), "1.5");
        assert_eq!(fmt_milli(2000), "2");
        assert_eq!(fmt_milli(1), "0.001");
        assert_eq!(fmt_milli(120_250), "120.25");
    }

    #[test]
    fn covers_and_saturating_math() {
        let a = Resources::new(2.0, 1024, 10);
        let b = Resources::new(1.0, 2048, 0);
        assert!(!a.covers(&b));
        assert!(a.saturating_add(b).covers(&b));
        assert_eq!(a.saturating_sub(b), Resources::new(1.0, 0, 10));
        assert_eq!(a.to_string(), "cpus 2, mem 1024 MiB, disk 10 MiB");
    }
}

//! Host ports handed to tasks from the agent's configured range
//! (`--ports LOW-HIGH`). Dynamic ports are chosen round-robin so a port
//! just released is not reused at once; fixed ports must lie in the range.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::task::PortRequest;

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl PortRange {
    /// The range `low..=high`; `low` must not exceed `high` and 0 is not a port.
    pub fn new(low: u16, high: u16) -> Result<Self> {
        if low == 0 || low > high {
            return Err(Error::Parse {
                what: "port range",
                input: format!("{low}-{high}"),
                message: "expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535".into(),
            });
        }
        Ok(Self { low, high })
    }

    /// True if `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    /// Number of ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.high - self.low) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Default for PortRange {
    /// 31000-32000, Mesos' default.
    fn default() -> Self {
        Self {
            low: 31000,
            high: 32000,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

impl FromStr for PortRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |message: &str| Error::Parse {
            what: "port range",
            input: s.to_string(),
            message: message.to_string(),
        };
        let (low, high) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("expected LOW-HIGH, e.g. 31000-32000"))?;
        let low = low
            .trim()
            .parse()
            .map_err(|_| bad("LOW is not a port number"))?;
        let high = high
            .trim()
            .parse()
            .map_err(|_| bad("HIGH is not a port number"))?;
        Self::new(low, high).map_err(|_| bad("expected 1 <= LOW <= HIGH <= 65535"))
    }
}

/// Tracks which ports of the range are in use.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: PortRange,
    used: BTreeSet<u16>,
    next: u16,
}

impl PortAllocator {
    /// All ports of `range` free.
    pub fn new(range: PortRange) -> Self {
        Self {
            range,
            used: BTreeSet::new(),
            next: range.low,
        }
    }

    /// The configured range.
    pub fn range(&self) -> PortRange {
        self.range
    }

    /// Number of free ports.
    pub fn free(&self) -> usize {
        self.range.len() - self.used.len()
    }

    /// Allocates one port per request, all or nothing: fixed ports exactly,
    /// dynamic ones (0) from the free ports.
    pub fn allocate(&mut self, requests: &[PortRequest]) -> Result<Vec<u16>> {
        let mut taken: Vec<u16> = Vec::with_capacity(requests.len());
        let result = requests.iter().try_for_each(|request| {
            let port = if request.port == 0 {
                self.next_free().ok_or_else(|| {
                    Error::Ports(format!(
                        "no free port left in {} for {:?}",
                        self.range, request.name
                    ))
                })?
            } else if !self.range.contains(request.port) {
                return Err(Error::Ports(format!(
                    "port {} ({:?}) is outside the agent's range {}",
                    request.port, request.name, self.range
                )));
            } else if self.used.contains(&request.port) {
                return Err(Error::Ports(format!(
                    "port {} ({:?}) is already in use",
                    request.port, request.name
                )));
            } else {
                request.port
            };
            self.used.insert(port);
            taken.push(port);
            Ok(())
        });
        match result {
            Ok(()) => Ok(taken),
            Err(error) => {
                self.release(&taken);
                Err(error)
            }
        }
    }

    /// Marks ports as used (re-adopted tasks). Ports outside the range are ignored.
    pub fn reserve(&mut self, ports: &[u16]) {
        self.used
            .extend(ports.iter().copied().filter(|p| self.range.contains(*p)));
    }

    /// Returns ports to the pool.
    pub fn release(&mut self, ports: &[u16]) {
        for port in ports {
            self.used.remove(port);
        }
    }

    fn next_free(&mut self) -> Option<u16> {
        for _ in 0..self.range.len() {
            let candidate = self.next;
            self.next = if self.next >= self.range.high {
                self.range.low
            } else {
                self.next + 1
            };
            if !self.used.contains(&candidate) {
                return Some(candidate);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(name: &str) -> PortRequest {
        PortRequest {
            name: name.into(),
            port: 0,
        }
    }

    #[test]
    fn ranges_parse_and_reject_nonsense() -> anyhow::Result<()> {
        assert_eq!(
            "31000-31002".parse::<PortRange>()?,
            PortRange {
                low: 31000,
                high: 31002
            }
        );
        for bad in ["", "31000", "b-c", "5-4", "0-10", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn allocation_is_all_or_nothing_and_released_ports_come_back() -> anyhow::Result<()> {
        let mut ports = PortAllocator::new("100-102".parse()?);
        let first = ports.allocate(&[dynamic("a"), dynamic("b")])?;
        assert_eq!(first, vec![100, 101]);
        assert!(ports.allocate(&[dynamic("c"), dynamic("d")]).is_err());
        assert_eq!(ports.free(), 1, "a failed allocation must not leak");
        ports.release(&first);
        let mut all = ports.allocate(&[dynamic("c"), dynamic("d"), dynamic("e")])?;
        all.sort_unstable();
        assert_eq!(all, vec![100, 101, 102]);
        assert_eq!(ports.free(), 0);
        Ok(())
    }

    #[test]
    fn fixed_ports_must_be_free_and_in_range() -> anyhow::Result<()> {
        let mut ports = PortAllocator::new("100-110".parse()?);
        assert_eq!(
            ports.allocate(&[PortRequest {
                name: "x".into(),
                port: 105
            }])?,
            vec![105]
        );
        assert!(ports
            .allocate(&[PortRequest {
                name: "y".into(),
                port: 105
            }])
            .is_err());
        assert!(ports
            .allocate(&[PortRequest {
                name: "z".into(),
                port: 200
            }])
            .is_err());
        ports.reserve(&[101, 300]);
        assert_eq!(ports.free(), 9);
        Ok(())
    }
}

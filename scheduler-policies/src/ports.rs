//! Host ports of one agent: its offered ranges and the ports taken in them.

use crate::resources::PortRange;

/// Free and taken ports of one agent. Only ports inside the offered ranges
/// are tracked: a port outside them can never be handed out anyway.
#[derive(Debug, Clone, Default)]
pub(crate) struct PortState {
    /// Sorted, merged, non-empty ranges.
    ranges: Vec<PortRange>,
    /// Sorted, unique ports taken inside `ranges`.
    used: Vec<u16>,
    /// Number of free ports in `ranges`.
    free: u32,
}

impl PortState {
    /// Normalises `ranges` (drops empty ones, merges overlaps) and marks
    /// `taken` ports as used.
    pub(crate) fn new(ranges: &[PortRange], taken: impl IntoIterator<Item = u16>) -> Self {
        let mut rs: Vec<PortRange> = ranges
            .iter()
            .copied()
            .filter(|r| r.begin <= r.end)
            .collect();
        rs.sort();
        // Merge in place: one allocation per agent, and there are 10k+
        // agents per round.
        let mut len = 0usize;
        for k in 0..rs.len() {
            let r = rs[k];
            match len.checked_sub(1).map(|l| &mut rs[l]) {
                Some(last) if u32::from(r.begin) <= u32::from(last.end) + 1 => {
                    last.end = last.end.max(r.end);
                }
                _ => {
                    rs[len] = r;
                    len += 1;
                }
            }
        }
        rs.truncate(len);
        let merged = rs;
        let total: u32 = merged
            .iter()
            .map(|r| u32::from(r.end) - u32::from(r.begin) + 1)
            .sum();
        let mut s = Self {
            ranges: merged,
            used: Vec::new(),
            free: total,
        };
        for p in taken {
            s.take(p);
        }
        s
    }

    /// Free ports in the ranges.
    #[cfg(test)]
    pub(crate) fn free_count(&self) -> u32 {
        self.free
    }

    fn in_range(&self, port: u16) -> bool {
        self.ranges.iter().any(|r| r.begin <= port && port <= r.end)
    }

    /// In a range and not taken.
    pub(crate) fn is_free(&self, port: u16) -> bool {
        self.in_range(port) && self.used.binary_search(&port).is_err()
    }

    /// True when all `fixed` ports are free and `dynamic` more remain.
    #[inline]
    pub(crate) fn can_host(&self, fixed: &[u16], dynamic: u32) -> bool {
        let need = dynamic as u64 + fixed.len() as u64;
        need <= u64::from(self.free) && fixed.iter().all(|p| self.is_free(*p))
    }

    /// Marks a port taken; false if it was not free.
    pub(crate) fn take(&mut self, port: u16) -> bool {
        if !self.in_range(port) {
            return false;
        }
        match self.used.binary_search(&port) {
            Ok(_) => false,
            Err(at) => {
                self.used.insert(at, port);
                self.free -= 1;
                true
            }
        }
    }

    /// Frees a port (no-op when it was not taken).
    pub(crate) fn release(&mut self, port: u16) {
        if let Ok(at) = self.used.binary_search(&port) {
            self.used.remove(at);
            self.free += 1;
        }
    }

    /// The lowest free port, if any, and where it goes in `used`.
    fn lowest_free(&self) -> Option<(u16, usize)> {
        if self.free == 0 {
            return None;
        }
        // `used` holds only ports inside the ranges, so the ports taken in
        // range `r` start right after those of the ranges before it.
        let mut j = 0;
        for r in &self.ranges {
            let taken = self.used.get(j..).unwrap_or(&[]);
            // Ports taken from `r.begin` on form a run; the lowest free port
            // ends it. `taken[k] - k` never decreases (sorted, unique), so
            // "`taken[k]` is `r.begin + k`" holds for a prefix of `k`: binary
            // search its end instead of walking a run that dynamic ports,
            // handed out lowest first, make long.
            let (mut lo, mut hi) = (0, taken.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if usize::from(taken[mid]) == usize::from(r.begin) + mid {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            let candidate = usize::from(r.begin) + lo;
            if candidate <= usize::from(r.end) {
                return u16::try_from(candidate).ok().map(|p| (p, j + lo));
            }
            j += lo; // the whole range is taken
        }
        None
    }

    /// Takes the lowest free port.
    pub(crate) fn take_lowest(&mut self) -> Option<u16> {
        let (p, at) = self.lowest_free()?;
        if self.used.capacity() == 0 {
            // Skip the smallest steps of growth: an agent that hands out
            // one dynamic port usually hands out several.
            self.used.reserve(16);
        }
        self.used.insert(at, p);
        self.free -= 1;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_ranges_and_counts_free() {
        let s = PortState::new(
            &[
                PortRange::new(31005, 31009),
                PortRange::new(31000, 31004),
                PortRange::new(5, 1),
            ],
            [31000, 31000, 80],
        );
        assert_eq!(s.ranges, vec![PortRange::new(31000, 31009)]);
        assert_eq!(s.free_count(), 9);
        assert!(!s.is_free(31000));
        assert!(!s.is_free(80));
        assert!(s.is_free(31001));
    }

    #[test]
    fn allocates_lowest_free_across_ranges() {
        let mut s = PortState::new(&[PortRange::new(10, 11), PortRange::new(20, 21)], [10]);
        assert_eq!(s.take_lowest(), Some(11));
        assert_eq!(s.take_lowest(), Some(20));
        s.release(10);
        assert_eq!(s.take_lowest(), Some(10));
        assert_eq!(s.take_lowest(), Some(21));
        assert_eq!(s.take_lowest(), None);
        assert_eq!(s.free_count(), 0);
    }

    #[test]
    fn lowest_free_skips_runs_and_holes() {
        let taken = [100, 101, 102, 104, 105, 107, 200, 201];
        let mut s = PortState::new(&[PortRange::new(100, 107), PortRange::new(200, 202)], taken);
        assert_eq!(s.take_lowest(), Some(103));
        assert_eq!(s.take_lowest(), Some(106));
        assert_eq!(s.take_lowest(), Some(202));
        assert_eq!(s.take_lowest(), None);
        assert_eq!(s.free_count(), 0);
        for p in [100, 106, 202] {
            s.release(p);
        }
        assert_eq!(s.take_lowest(), Some(100));
        assert_eq!(s.take_lowest(), Some(106));
        assert!(s.is_free(202) && !s.is_free(201));
    }

    #[test]
    fn full_u16_range_is_safe() {
        let mut s = PortState::new(&[PortRange::new(65534, 65535)], []);
        assert_eq!(s.take_lowest(), Some(65534));
        assert_eq!(s.take_lowest(), Some(65535));
        assert_eq!(s.take_lowest(), None);
    }

    #[test]
    fn can_host_checks_fixed_and_count() {
        let s = PortState::new(&[PortRange::new(100, 102)], [101]);
        assert!(s.can_host(&[100], 1));
        assert!(!s.can_host(&[100], 2));
        assert!(!s.can_host(&[101], 0));
        assert!(!s.can_host(&[99], 0));
    }
}

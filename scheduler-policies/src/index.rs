//! The ordered index of online agents that policies scan.
//!
//! A plain "sort by free capacity" index is not enough at scale: after a
//! while most agents are exhausted in ONE dimension (no cpu left, plenty of
//! memory), so their total free capacity still looks large and every scan
//! has to step over thousands of them. Instead agents live in a grid of
//! cells by (cpu level, mem level), where the levels are the distinct cpu
//! and memory sizes the round's pending tasks ask for:
//!
//! ```text
//!  mem level ▲   level k = "can hold the k-th smallest request size"
//!        3   │ .  .  .  ██        request (cpu level 2, mem level 1):
//!        2   │ .  .  ▒▒ ▒▒        only cells right of / above it are
//!        1   │ .  .  ▒▒ ▒▒        scanned (▒▒, ██), all of whose agents
//!        0   │ .  .  .  .         fit its cpu and mem exactly;
//!            └─────────────► cpu  exhausted agents (level 0) never are.
//!              0  1  2  3
//! ```
//!
//! Cells are visited tightest first (by level sum, then cpu level) for
//! bin-pack, the reverse for spread; inside a cell agents are ordered by
//! their free score (sum of normalised free cpus, mem, disk), then index.
//! With at most [`MAX_LEVELS`] levels per dimension a scan touches at most a
//! few hundred (mostly empty, O(1) to skip) cells. When the round has more
//! distinct sizes than levels, sizes are merged and cells at a request's own
//! level may hold agents that fall just short: the exact check filters them.

use std::collections::btree_set::Range;
use std::collections::BTreeSet;
use std::ops::Bound::{Excluded, Unbounded};

use crate::policy::ScanOrder;
use crate::resources::Resources;

/// Maximum number of distinct thresholds per dimension.
pub(crate) const MAX_LEVELS: usize = 15;

/// Cell coordinates of a request or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Levels {
    pub(crate) cpu: usize,
    pub(crate) mem: usize,
}

/// Agents by (cpu level, mem level), then free score.
#[derive(Debug)]
pub(crate) struct AgentIndex {
    cpu_thresholds: Vec<u64>,
    mem_thresholds: Vec<u64>,
    /// Cells, row-major by cpu level: `cpu * mem_levels + mem`.
    /// Each cell holds `score << 32 | agent` (one integer compare).
    cells: Vec<BTreeSet<u64>>,
    len: usize,
}

/// The in-cell key: score first, agent index second. Scores stay far
/// below 2^32 (three dimensions of at most 2^20 each).
#[inline]
fn pack(score: u64, agent: u32) -> u64 {
    (score.min(u64::from(u32::MAX)) << 32) | u64::from(agent)
}

/// Picks at most [`MAX_LEVELS`] thresholds from the distinct non-zero
/// sizes, always keeping the smallest (it separates exhausted agents).
fn thresholds(mut sizes: Vec<u64>) -> Vec<u64> {
    sizes.retain(|&s| s > 0);
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.len() <= MAX_LEVELS {
        return sizes;
    }
    let n = sizes.len();
    (0..MAX_LEVELS)
        .map(|k| sizes[k * (n - 1) / (MAX_LEVELS - 1)])
        .collect()
}

impl AgentIndex {
    /// An empty index whose levels come from the pending request sizes.
    pub(crate) fn new(requests: impl Iterator<Item = Resources>) -> Self {
        let (cpus, mems): (Vec<u64>, Vec<u64>) =
            requests.map(|r| (r.cpus_milli, r.mem_mib)).unzip();
        let cpu_thresholds = thresholds(cpus);
        let mem_thresholds = thresholds(mems);
        let cells = (cpu_thresholds.len() + 1) * (mem_thresholds.len() + 1);
        Self {
            cpu_thresholds,
            mem_thresholds,
            cells: (0..cells).map(|_| BTreeSet::new()).collect(),
            len: 0,
        }
    }

    fn mem_levels(&self) -> usize {
        self.mem_thresholds.len() + 1
    }

    fn cpu_levels(&self) -> usize {
        self.cpu_thresholds.len() + 1
    }

    /// Levels of an amount of resources (monotone in each dimension).
    #[inline]
    pub(crate) fn levels(&self, r: &Resources) -> Levels {
        Levels {
            cpu: self.cpu_thresholds.partition_point(|&t| t <= r.cpus_milli),
            mem: self.mem_thresholds.partition_point(|&t| t <= r.mem_mib),
        }
    }

    #[inline]
    fn cell(&self, l: Levels) -> usize {
        l.cpu * self.mem_levels() + l.mem
    }

    /// Number of agents indexed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, free: &Resources, score: u64, agent: u32) {
        let c = self.cell(self.levels(free));
        if self.cells[c].insert(pack(score, agent)) {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, free: &Resources, score: u64, agent: u32) {
        let c = self.cell(self.levels(free));
        if self.cells[c].remove(&pack(score, agent)) {
            self.len -= 1;
        }
    }

    /// The position of an agent indexed under `free` and `score`.
    pub(crate) fn cursor(&self, free: &Resources, score: u64, agent: u32) -> Cursor {
        let l = self.levels(free);
        Cursor {
            cpu: l.cpu,
            mem: l.mem,
            score,
            agent,
        }
    }

    /// Agents that may hold `need`, in `order`, starting after `after`
    /// (from the start when `None`, or when `after` lies outside the cells
    /// that can hold `need`).
    pub(crate) fn scan(&self, need: Levels, order: ScanOrder, after: Option<Cursor>) -> Scan<'_> {
        let (kc, km) = (self.cpu_levels() as isize, self.mem_levels() as isize);
        let forward = order == ScanOrder::MostAllocatedFirst;
        let lo = (need.cpu + need.mem) as isize;
        let hi = kc - 1 + km - 1;
        let mut scan = Scan {
            index: self,
            need_cpu: need.cpu as isize,
            need_mem: need.mem as isize,
            km,
            kc,
            lo,
            hi,
            forward,
            d: if forward { lo } else { hi },
            c: if forward { 0 } else { kc - 1 },
            current: None,
        };
        let in_quadrant = |k: &Cursor| {
            k.cpu >= need.cpu
                && k.mem >= need.mem
                && k.cpu < self.cpu_levels()
                && k.mem < self.mem_levels()
        };
        if let Some(k) = after.filter(in_quadrant) {
            let cell = &self.cells[k.cpu * self.mem_levels() + k.mem];
            let (c, d) = (k.cpu as isize, (k.cpu + k.mem) as isize);
            scan.d = d;
            if forward {
                scan.current = Some(cell.range((Excluded(pack(k.score, k.agent)), Unbounded)));
                scan.c = c + 1;
            } else {
                scan.current = Some(cell.range((Unbounded, Excluded(pack(k.score, k.agent)))));
                scan.c = c - 1;
            }
        }
        scan
    }
}

/// A position in the index: an agent's cell and score when it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Cursor {
    cpu: usize,
    mem: usize,
    score: u64,
    agent: u32,
}

impl Cursor {
    fn rank(&self) -> (usize, usize, u64, u32) {
        (self.cpu + self.mem, self.cpu, self.score, self.agent)
    }

    /// True when `self` comes strictly before `other` in `order`.
    pub(crate) fn precedes(&self, other: &Cursor, order: ScanOrder) -> bool {
        match order {
            ScanOrder::MostAllocatedFirst => self.rank() < other.rank(),
            ScanOrder::LeastAllocatedFirst => self.rank() > other.rank(),
        }
    }
}

/// An in-order walk over the index (see [`AgentIndex::scan`]).
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    index: &'a AgentIndex,
    need_cpu: isize,
    need_mem: isize,
    kc: isize,
    km: isize,
    lo: isize,
    hi: isize,
    forward: bool,
    /// Next cell to open: level sum `d`, cpu level `c`.
    d: isize,
    c: isize,
    current: Option<Range<'a, u64>>,
}

impl Scan<'_> {
    /// Bounds of the cpu level on diagonal `d` inside the quadrant.
    fn c_bounds(&self, d: isize) -> (isize, isize) {
        let c_min = self.need_cpu.max(d - (self.km - 1));
        let c_max = (self.kc - 1).min(d - self.need_mem);
        (c_min, c_max)
    }

    /// The next cell in order, advancing the position.
    fn next_cell(&mut self) -> Option<usize> {
        loop {
            if self.d < self.lo || self.d > self.hi {
                return None;
            }
            let (c_min, c_max) = self.c_bounds(self.d);
            if self.forward {
                self.c = self.c.max(c_min);
                if self.c > c_max {
                    self.d += 1;
                    self.c = 0;
                    continue;
                }
            } else {
                self.c = self.c.min(c_max);
                if self.c < c_min {
                    self.d -= 1;
                    self.c = self.kc - 1;
                    continue;
                }
            }
            let cell = (self.c * self.km + (self.d - self.c)) as usize;
            self.c += if self.forward { 1 } else { -1 };
            return Some(cell);
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        loop {
            if let Some(range) = &mut self.current {
                let item = if self.forward {
                    range.next()
                } else {
                    range.next_back()
                };
                if let Some(&key) = item {
                    return Some(key as u32);
                }
                self.current = None;
            }
            let cell = self.next_cell()?;
            let set = &self.index.cells[cell];
            if !set.is_empty() {
                self.current = Some(set.range(..));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cpus: f64, mem: u64) -> Resources {
        Resources::new(cpus, mem, 0)
    }

    #[test]
    fn thresholds_keep_the_smallest_and_cap_the_count() {
        assert_eq!(thresholds(vec![0, 500, 250, 500]), vec![250, 500]);
        let many: Vec<u64> = (1..=100).collect();
        let t = thresholds(many);
        assert_eq!(t.len(), MAX_LEVELS);
        assert_eq!(t[0], 1);
        assert_eq!(*t.last().unwrap(), 100);
    }

    #[test]
    fn scans_only_cells_that_can_hold_the_request() {
        let mut idx = AgentIndex::new([r(1.0, 100), r(2.0, 200)].into_iter());
        idx.insert(&r(0.5, 1000), 1, 0); // no cpu for anything
        idx.insert(&r(1.5, 150), 2, 1); // holds the small request only
        idx.insert(&r(8.0, 1000), 9, 2); // holds both
        idx.insert(&r(2.0, 200), 4, 3); // holds both, tighter
        assert_eq!(idx.len(), 4);
        let small = idx.levels(&r(1.0, 100));
        let big = idx.levels(&r(2.0, 200));
        let all = |need, order| idx.scan(need, order, None).collect::<Vec<_>>();
        assert_eq!(all(small, ScanOrder::MostAllocatedFirst), vec![1, 3, 2]);
        assert_eq!(all(big, ScanOrder::MostAllocatedFirst), vec![3, 2]);
        assert_eq!(all(big, ScanOrder::LeastAllocatedFirst), vec![2, 3]);
        assert_eq!(all(small, ScanOrder::LeastAllocatedFirst), vec![2, 3, 1]);
        // Zero-sized requests see everything, exhausted agents included.
        let zero = idx.levels(&r(0.0, 0));
        assert_eq!(all(zero, ScanOrder::MostAllocatedFirst), vec![0, 1, 3, 2]);
        assert_eq!(all(zero, ScanOrder::LeastAllocatedFirst), vec![2, 3, 1, 0]);
        // Resuming after a cursor.
        let k3 = idx.cursor(&r(2.0, 200), 4, 3);
        let from = |need, order, k| idx.scan(need, order, Some(k)).collect::<Vec<_>>();
        assert_eq!(from(small, ScanOrder::MostAllocatedFirst, k3), vec![2]);
        assert_eq!(from(small, ScanOrder::LeastAllocatedFirst, k3), vec![1]);
        assert_eq!(from(zero, ScanOrder::LeastAllocatedFirst, k3), vec![1, 0]);
        let k1 = idx.cursor(&r(1.5, 150), 2, 1);
        assert!(k1.precedes(&k3, ScanOrder::MostAllocatedFirst));
        assert!(k3.precedes(&k1, ScanOrder::LeastAllocatedFirst));
        // A cursor outside the request's cells restarts the scan.
        assert_eq!(from(big, ScanOrder::MostAllocatedFirst, k1), vec![3, 2]);
        idx.remove(&r(8.0, 1000), 9, 2);
        let left: Vec<u32> = idx.scan(big, ScanOrder::MostAllocatedFirst, None).collect();
        assert_eq!(left, vec![3]);
    }
}

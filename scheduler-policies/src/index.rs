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

mod cell;

use cell::{Cell, Walk};

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
    cells: Vec<Cell>,
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

/// The number of `thresholds` at or below `v` (a linear walk from level
/// `from`).
#[inline]
fn level_from(thresholds: &[u64], from: usize, v: u64) -> usize {
    let mut l = from.min(thresholds.len());
    while l > 0 && thresholds[l - 1] > v {
        l -= 1;
    }
    while l < thresholds.len() && thresholds[l] <= v {
        l += 1;
    }
    l
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
            cells: (0..cells).map(|_| Cell::default()).collect(),
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

    /// [`Self::levels`], searched from `from`: an agent's levels before
    /// one task changed its free resources, so usually the same or one
    /// level away.
    #[inline]
    pub(crate) fn levels_from(&self, from: Levels, r: &Resources) -> Levels {
        Levels {
            cpu: level_from(&self.cpu_thresholds, from.cpu, r.cpus_milli),
            mem: level_from(&self.mem_thresholds, from.mem, r.mem_mib),
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

    /// Adds an agent at levels `l` and free score `score`.
    pub(crate) fn insert(&mut self, l: Levels, score: u64, agent: u32) {
        let c = self.cell(l);
        if self.cells[c].insert(pack(score, agent)) {
            self.len += 1;
        }
    }

    /// Moves an agent from where it was indexed to its new levels and
    /// score (in place when it stays in its cell).
    pub(crate) fn rekey(&mut self, old: (Levels, u64), new: (Levels, u64), agent: u32) {
        let (from, to) = (self.cell(old.0), self.cell(new.0));
        let (old_key, new_key) = (pack(old.1, agent), pack(new.1, agent));
        if from == to {
            self.cells[from].replace(old_key, new_key);
        } else if self.cells[from].remove(old_key) {
            self.cells[to].insert(new_key);
        }
    }

    /// True when a scan for `need` resumes after cursor `k` (rather than
    /// from the start): `k` lies in the cells that can hold `need`.
    #[inline]
    pub(crate) fn resumes_at(&self, need: Levels, k: &Cursor) -> bool {
        k.cpu >= need.cpu
            && k.mem >= need.mem
            && k.cpu < self.cpu_levels()
            && k.mem < self.mem_levels()
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
            current: Walk::default(),
        };
        if let Some(k) = after.filter(|k| self.resumes_at(need, k)) {
            let cell = &self.cells[k.cpu * self.mem_levels() + k.mem];
            let (c, d) = (k.cpu as isize, (k.cpu + k.mem) as isize);
            scan.d = d;
            if forward {
                scan.current = cell.above(pack(k.score, k.agent));
                scan.c = c + 1;
            } else {
                scan.current = cell.below(pack(k.score, k.agent));
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
    /// The position of an agent indexed at levels `l` and free `score`.
    #[inline]
    pub(crate) fn new(l: Levels, score: u64, agent: u32) -> Self {
        Self {
            cpu: l.cpu,
            mem: l.mem,
            score,
            agent,
        }
    }

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
    /// The rest of the cell being walked.
    current: Walk<'a>,
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
            let item = if self.forward {
                self.current.next()
            } else {
                self.current.next_back()
            };
            if let Some(key) = item {
                return Some(key as u32);
            }
            let cell = self.next_cell()?;
            self.current = self.index.cells[cell].all();
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
    fn levels_from_any_start_match_a_fresh_search() {
        let idx = AgentIndex::new([r(0.5, 100), r(1.0, 200), r(4.0, 800)].into_iter());
        for cpus in [0.0, 0.4, 0.5, 0.9, 1.0, 3.0, 4.0, 9.0] {
            for mem in [0, 99, 100, 150, 200, 800, 5000] {
                let fresh = idx.levels(&r(cpus, mem));
                for cpu in 0..5 {
                    for mem_l in 0..5 {
                        let from = Levels { cpu, mem: mem_l };
                        assert_eq!(idx.levels_from(from, &r(cpus, mem)), fresh);
                    }
                }
            }
        }
    }

    #[test]
    fn scans_only_cells_that_can_hold_the_request() {
        let mut idx = AgentIndex::new([r(1.0, 100), r(2.0, 200)].into_iter());
        let at = |idx: &AgentIndex, cpus, mem| idx.levels(&r(cpus, mem));
        idx.insert(at(&idx, 0.5, 1000), 1, 0); // no cpu for anything
        idx.insert(at(&idx, 1.5, 150), 2, 1); // holds the small request only
        idx.insert(at(&idx, 8.0, 1000), 9, 2); // holds both
        idx.insert(at(&idx, 2.0, 200), 4, 3); // holds both, tighter
        assert_eq!(idx.len(), 4);
        let small = idx.levels(&r(1.0, 100));
        let big = idx.levels(&r(2.0, 200));
        let all = |idx: &AgentIndex, need, order| idx.scan(need, order, None).collect::<Vec<_>>();
        assert_eq!(
            all(&idx, small, ScanOrder::MostAllocatedFirst),
            vec![1, 3, 2]
        );
        assert_eq!(all(&idx, big, ScanOrder::MostAllocatedFirst), vec![3, 2]);
        assert_eq!(all(&idx, big, ScanOrder::LeastAllocatedFirst), vec![2, 3]);
        assert_eq!(
            all(&idx, small, ScanOrder::LeastAllocatedFirst),
            vec![2, 3, 1]
        );
        // Zero-sized requests see everything, exhausted agents included.
        let zero = idx.levels(&r(0.0, 0));
        assert_eq!(
            all(&idx, zero, ScanOrder::MostAllocatedFirst),
            vec![0, 1, 3, 2]
        );
        assert_eq!(
            all(&idx, zero, ScanOrder::LeastAllocatedFirst),
            vec![2, 3, 1, 0]
        );
        // Resuming after a cursor.
        let k3 = Cursor::new(at(&idx, 2.0, 200), 4, 3);
        let from = |need, order, k| idx.scan(need, order, Some(k)).collect::<Vec<_>>();
        assert_eq!(from(small, ScanOrder::MostAllocatedFirst, k3), vec![2]);
        assert_eq!(from(small, ScanOrder::LeastAllocatedFirst, k3), vec![1]);
        assert_eq!(from(zero, ScanOrder::LeastAllocatedFirst, k3), vec![1, 0]);
        let k1 = Cursor::new(at(&idx, 1.5, 150), 2, 1);
        assert!(k1.precedes(&k3, ScanOrder::MostAllocatedFirst));
        assert!(k3.precedes(&k1, ScanOrder::LeastAllocatedFirst));
        // A cursor outside the request's cells restarts the scan.
        assert_eq!(from(big, ScanOrder::MostAllocatedFirst, k1), vec![3, 2]);
        // Agent 2 fills up to the small size: it leaves the big request's
        // cells and becomes the tightest for the small one.
        let (was, now) = (at(&idx, 8.0, 1000), at(&idx, 1.0, 100));
        idx.rekey((was, 9), (now, 1), 2);
        assert_eq!(idx.len(), 4);
        assert_eq!(all(&idx, big, ScanOrder::MostAllocatedFirst), vec![3]);
        assert_eq!(
            all(&idx, small, ScanOrder::MostAllocatedFirst),
            vec![2, 1, 3]
        );
        // A re-key inside one cell reorders it.
        idx.rekey((now, 1), (now, 3), 2);
        assert_eq!(
            all(&idx, small, ScanOrder::MostAllocatedFirst),
            vec![1, 2, 3]
        );
    }
}

//! [`Programmer`]: keeps the kernel's table equal to a desired
//! [`DataPlane`], one transaction per change.
//!
//! It remembers what it installed last, so a change costs a diff of the
//! in-memory planes rather than a read of the whole table; it reads the
//! kernel back at start and after any failed apply (a failed transaction
//! leaves the kernel as it was, and the next diff starts from the truth).
//! The VS ids of the slot keys ([`crate::vs_ids`]) are part of what it
//! reads back, so a restarted agent keeps them and changes nothing.

use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::nft::{Nft, NftError};
use crate::nft_read::{self, ReadError};
use crate::nft_script::{self, Capacity};
use crate::plane::DataPlane;
use crate::plane_state::Delta;
use crate::vs_ids::VsIds;

/// Programming the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// nft refused or could not run.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// The listing could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Elements added plus deleted (0: nothing was sent to the kernel).
    pub changes: usize,
    /// Whether the table was (re)built whole.
    pub full: bool,
    /// How long nft took.
    pub took: Duration,
}

/// Programs one table (see the module docs).
#[derive(Debug)]
pub struct Programmer {
    nft: Box<dyn Nft>,
    /// What the kernel holds, as far as we know; `None` until read or when
    /// the table must be rebuilt.
    installed: Option<DataPlane>,
    /// The ids the installed plane's served VS hold.
    ids: VsIds,
    /// The sizes its big sets are declared with.
    capacity: Option<Capacity>,
    read: bool,
    /// Read back since the last sync: the next diffs the whole plane
    /// (the kernel may have drifted anywhere).
    fresh: bool,
}

impl Programmer {
    /// A programmer over `nft`; nothing is read until the first sync.
    pub fn new(nft: Box<dyn Nft>) -> Self {
        Programmer {
            nft,
            installed: None,
            ids: VsIds::default(),
            capacity: None,
            read: false,
            fresh: false,
        }
    }

    /// The table's nft (to read the per-VS counters).
    pub fn nft(&self) -> &dyn Nft {
        self.nft.as_ref()
    }

    /// What the kernel holds, as last read or installed.
    pub fn installed(&self) -> Option<&DataPlane> {
        self.installed.as_ref()
    }

    /// The ids of the installed plane's served VS.
    pub fn ids(&self) -> &VsIds {
        &self.ids
    }

    /// Reads the kernel's table back.
    pub fn refresh(&mut self) -> Result<(), ProgramError> {
        let read = match self.nft.list()? {
            Some(json) => nft_read::parse_installed(&json)?,
            None => None,
        };
        (self.installed, self.ids, self.capacity) = match read {
            Some(i) => (Some(i.plane), i.ids, Some(i.capacity)),
            None => (None, VsIds::default(), None),
        };
        self.read = true;
        self.fresh = true;
        Ok(())
    }

    /// Makes the kernel hold `desired`: nothing when it already does.
    pub fn sync(&mut self, desired: &DataPlane) -> Result<Applied, ProgramError> {
        if !self.read {
            self.refresh()?;
        }
        self.fresh = false;
        // A plane that outgrew the declared sizes takes a new table.
        let fits = self.capacity.is_some_and(|c| c.fits(desired));
        let installed = self
            .installed
            .as_ref()
            .filter(|_| fits)
            .map(|p| (p, &self.ids));
        let script = nft_script::script(installed, desired);
        self.run(script, |installed| *installed = Some(desired.clone()))
    }

    /// Like [`Programmer::sync`], when `desired` can differ from the last
    /// plane synced only in the keys `delta` names: the diff and the
    /// bookkeeping cost those keys. Falls back to the whole diff when the
    /// kernel must be read back first (at start, after a failed apply).
    pub fn sync_delta(
        &mut self,
        desired: &DataPlane,
        delta: &Delta,
    ) -> Result<Applied, ProgramError> {
        if !self.read || self.fresh {
            return self.sync(desired);
        }
        let Some(inst) = self.installed.as_ref() else {
            return self.sync(desired);
        };
        if !self.capacity.is_some_and(|c| c.fits(desired)) {
            return self.sync(desired);
        }
        let script = nft_script::script_delta(inst, &self.ids, desired, delta);
        self.run(script, |installed| {
            if let Some(inst) = installed {
                patch(inst, desired, delta);
            }
        })
    }

    fn run(
        &mut self,
        script: nft_script::Script,
        applied: impl FnOnce(&mut Option<DataPlane>),
    ) -> Result<Applied, ProgramError> {
        if script.changes == 0 && !script.full {
            return Ok(Applied {
                changes: 0,
                full: false,
                took: Duration::ZERO,
            });
        }
        let start = Instant::now();
        match self.nft.apply(&script.text) {
            Ok(()) => {
                let took = start.elapsed();
                applied(&mut self.installed);
                if script.full {
                    self.ids = VsIds::default();
                    self.capacity = script.capacity;
                }
                self.ids.apply(&script.ids);
                debug!(
                    changes = script.changes,
                    full = script.full,
                    ?took,
                    "data plane applied"
                );
                Ok(Applied {
                    changes: script.changes,
                    full: script.full,
                    took,
                })
            }
            Err(e) => {
                warn!(error = %e, "data plane apply refused; reading the kernel back");
                self.read = false;
                Err(e.into())
            }
        }
    }
}

/// Makes `inst` equal to `desired` in the keys `delta` names.
fn patch(inst: &mut DataPlane, desired: &DataPlane, delta: &Delta) {
    for k in &delta.vs {
        match desired.services.get(k) {
            Some(s) => inst.services.insert(*k, *s),
            None => inst.services.remove(k),
        };
        match desired.slots.get(k) {
            Some(t) => inst.slots.insert(*k, t.clone()),
            None => inst.slots.remove(k),
        };
        if desired.empty.contains(k) {
            inst.empty.insert(*k);
        } else {
            inst.empty.remove(k);
        }
    }
    for a in &delta.addrs {
        if desired.rs_addrs.contains(a) {
            inst.rs_addrs.insert(*a);
        } else {
            inst.rs_addrs.remove(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::nft::MemoryNft;
    use crate::plane::{Dispatch, RealServer, Service, SlotTable, VsKey};
    use crate::spec::Protocol;

    #[derive(Debug)]
    struct Shared(Arc<MemoryNft>);
    impl Nft for Shared {
        fn list(&self) -> Result<Option<String>, NftError> {
            self.0.list()
        }
        fn apply(&self, s: &str) -> Result<(), NftError> {
            self.0.apply(s)
        }
        fn list_set(&self, set: &str) -> Result<Option<String>, NftError> {
            self.0.list_set(set)
        }
    }

    fn plane(port: u16) -> DataPlane {
        let k = VsKey {
            vip: "10.0.0.1".parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        };
        let mut p = DataPlane::default();
        p.services.insert(
            k,
            Service {
                dispatch: Dispatch::Conn,
                size: 7,
            },
        );
        let rs = RealServer {
            addr: "10.1.0.2".parse().unwrap(),
            port,
        };
        p.slots
            .insert(k, SlotTable::of((0..7).map(|s| (s, rs)).collect()));
        p
    }

    #[test]
    fn first_sync_builds_the_table_then_only_diffs_and_nothing_twice() {
        let mem = Arc::new(MemoryNft::default());
        let mut p = Programmer::new(Box::new(Shared(mem.clone())));
        let a = p.sync(&plane(8080)).unwrap();
        assert!(a.full);
        // The service, its id, 7 slots, and the VS in the two counter sets.
        assert_eq!(a.changes, 1 + 1 + 7 + 2);
        assert_eq!(p.ids().len(), 1);
        assert_eq!(p.sync(&plane(8080)).unwrap().changes, 0);
        let b = p.sync(&plane(8081)).unwrap();
        assert_eq!((b.changes, b.full), (14, false));
        assert_eq!(mem.applied.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_plane_outgrowing_the_declared_sizes_rebuilds_the_table_with_room() {
        let mem = Arc::new(MemoryNft::default());
        let mut p = Programmer::new(Box::new(Shared(mem.clone())));
        assert!(p.sync(&plane(8080)).unwrap().full);
        assert!(mem.applied.lock().unwrap()[0].contains("; size 65536; }"));
        // One VS of 70,000 slots: more than the 65,536 declared.
        let mut big = plane(8080);
        let k = *big.slots.keys().next().unwrap();
        let rs = big.slot(&k, 0).unwrap();
        big.slots
            .insert(k, SlotTable::of((0..70_000).map(|s| (s, rs)).collect()));
        let a = p.sync(&big).unwrap();
        assert!(a.full, "not rebuilt");
        assert!(mem.applied.lock().unwrap()[1].contains("; size 262144; }"));
        // Then diffs again.
        assert_eq!(p.sync(&big).unwrap().changes, 0);
        assert!(!p.sync(&plane(8080)).unwrap().full);
    }

    #[test]
    fn a_refused_apply_keeps_nothing_and_reads_back_before_the_next() {
        let mem = Arc::new(MemoryNft::default());
        let mut p = Programmer::new(Box::new(Shared(mem.clone())));
        p.sync(&plane(8080)).unwrap();
        *mem.fail.lock().unwrap() = true;
        assert!(p.sync(&plane(8081)).is_err());
        *mem.fail.lock().unwrap() = false;
        // The double lists no table, so the next sync rebuilds it whole.
        let again = p.sync(&plane(8081)).unwrap();
        assert!(again.full);
    }
}

//! The C allocator's tunables, set before the runtime starts its threads.

/// Caps glibc's malloc arenas at one per CPU (at least 2), unless
/// `MALLOC_ARENA_MAX` already says otherwise, and fixes the size from which
/// an allocation gets pages of its own at 1 MiB, unless
/// `MALLOC_MMAP_THRESHOLD_` does.
///
/// glibc gives a thread that meets contention an arena of its own, up to 8
/// per CPU, and hands little of an arena's freed memory back to the system.
/// A leader's API handlers and scheduling rounds allocate and free a few KB
/// per job on whichever runtime thread they land, so with 100,000 jobs the
/// leader held hundreds of MB more than its live data, spread over 16
/// arenas on 2 CPUs; with 2 arenas it holds about its live data. Small
/// allocations mostly stay in each thread's cache and never touch an arena
/// lock.
///
/// glibc also raises its mmap threshold to the size of every large block
/// freed, so after a round's 10 MB maps are freed, the next ones come from
/// (and stay in) the arenas; a fixed threshold gives such blocks back to
/// the system when they are freed.
pub fn tune() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        set(Tunable::ArenaMax, cpus.max(2));
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        set(Tunable::MmapThreshold, 1024 * 1024);
    }
}

#[derive(Clone, Copy)]
enum Tunable {
    ArenaMax,
    MmapThreshold,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set(what: Tunable, n: usize) {
    let param = match what {
        Tunable::ArenaMax => libc::M_ARENA_MAX,
        Tunable::MmapThreshold => libc::M_MMAP_THRESHOLD,
    };
    let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt sets an allocator tunable and touches no memory of
    // ours; it is called before any other thread exists.
    unsafe {
        libc::mallopt(param, n);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_what: Tunable, _n: usize) {}

//! The C allocator's arenas, capped before the runtime starts its threads.

/// Caps glibc's malloc arenas at one per CPU (at least 2), unless
/// `MALLOC_ARENA_MAX` already says otherwise.
///
/// glibc gives a thread that meets contention an arena of its own, up to 8
/// per CPU, and hands little of an arena's freed memory back to the system.
/// A leader's API handlers and scheduling rounds allocate and free a few KB
/// per job on whichever runtime thread they land, so with 100,000 jobs the
/// leader held hundreds of MB more than its live data, spread over 16
/// arenas on 2 CPUs. Small allocations mostly stay in each thread's cache
/// and never touch an arena lock.
pub fn cap_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    set_arena_max(cpus.max(2));
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(n: usize) {
    let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt sets an allocator tunable and touches no memory of
    // ours; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_n: usize) {}

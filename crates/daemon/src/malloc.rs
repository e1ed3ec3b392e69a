//! The C allocator's one setting for the daemon: at most two malloc arenas.
//!
//! glibc gives a thread that allocates while the existing arenas are busy an arena of its own,
//! up to eight per core, and each arena keeps the pages it touched. The daemon's threads
//! (tokio's workers and blocking pool, a thread per TFTP transfer, the DHCP proxy loops, the
//! lease applier) spread a boot storm's allocations over many arenas: the 200-client storm's
//! peak RSS was 24.0 MiB with the default and 21.0 MiB with two, in the same time
//! (docs/benchmarks.md).

/// Sets `M_ARENA_MAX` to 2. Call it before the process starts any thread.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt sets one parameter of the allocator and touches no Rust memory;
        // it is called first thing in `serve`, before any other thread exists.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

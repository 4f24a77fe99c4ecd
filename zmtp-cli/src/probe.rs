//! Measurements shared by every benchmark driver: `zmtp bench` here, and
//! the libzmq and Rust-stack drivers of `bench/` and `bench/peers`, which
//! include this file, so that each stack is measured the same way.

/// CPU time of the calling thread, in ns (Linux schedstat; 0 elsewhere).
pub(crate) fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the whole process, every thread (ended ones included),
/// user and system, in ns: the process's CPU clock, exact to the
/// scheduler's accounting. (It was /proc/self/stat, in clock ticks of 10
/// ms: a run using less than a tick read as none, and each figure of a
/// 3,000,000-message run moved in steps of 3.3 ns per message.)
pub(crate) fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
pub(crate) fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

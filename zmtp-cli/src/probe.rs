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

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
/// user and system, in ns, from /proc/self/stat (in clock ticks of 10 ms,
/// Linux's USER_HZ; 0 elsewhere). Coarse: measure runs of a second or more.
pub(crate) fn process_cpu_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after the command name (which may hold spaces): state is
    // the first, utime the 12th and stime the 13th.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() * 10_000_000
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

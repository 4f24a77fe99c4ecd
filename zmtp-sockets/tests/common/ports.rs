//! A tcp port for a test that connects where nobody listens yet. Shared
//! by the socket tests (`common`) and the interop tests (`#[path]`).

/// A tcp endpoint on a port nobody listens on, for a test that connects
/// before anything binds (or never binds). A port from `bind(":0")` and
/// then released is not safe for this: the kernel hands out the same range
/// to every other test's `bind(":0")`, and one of them may take it and
/// answer. This port is below the ephemeral range, which the kernel never
/// hands out by itself, and it was free when it was chosen.
pub fn quiet_tcp_endpoint() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // Ports from 10000 up to the ephemeral range's start, spread by process
    // so that two test binaries do not walk the same ones.
    let span = low.saturating_sub(10_000).max(1);
    let base = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 10_000 + base.wrapping_add(n.wrapping_mul(13)) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return format!("tcp://127.0.0.1:{port}");
        }
    }
    panic!("no free port below the ephemeral range");
}

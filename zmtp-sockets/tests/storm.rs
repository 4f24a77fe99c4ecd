//! Two connect/disconnect storms of 10,000 connections each, alone in its own test
//! process so that descriptor counts are this test's own.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use zmtp_core::testing::{greeting, ready};
use zmtp_sockets::{Context, MonitorEvent, SocketType};

const TIMEOUT: Duration = Duration::from_secs(60);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What each open descriptor is, for a failure message.
fn fd_list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("{}->{target}", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn connect_disconnect_storm_leaks_nothing() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    // A short listen queue, as the standard library's: with a deep one
    // (the default is 1024) the storm's client runs up to a thousand
    // connections ahead of the server, and RSS then records how many
    // sessions were alive at once (the allocator keeps the peak), not
    // whether any leaked; with this one the peak is the same every storm.
    pull.configure(|o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.backlog = 128;
    })
    .unwrap();
    let mon = pull.monitor();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    // Counts connections accepted and ended, from the monitor's events,
    // on a thread of its own so that the monitor never falls behind.
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let counter = {
        let (mon, counts) = (mon.clone(), counts.clone());
        std::thread::spawn(move || {
            while let Some(ev) = mon.next_blocking() {
                match ev {
                    MonitorEvent::Accepted { .. } => counts.0.fetch_add(1, Ordering::SeqCst),
                    MonitorEvent::HandshakeFailed { .. }
                    | MonitorEvent::Disconnected { .. }
                    | MonitorEvent::Refused { .. } => counts.1.fetch_add(1, Ordering::SeqCst),
                    _ => 0,
                };
            }
        })
    };
    let mut total = 0;
    let mut storm = |n: usize| {
        for i in 0..n {
            let mut raw = TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
            if i % 2 == 0 {
                let _ = raw.write_all(&greeting("NULL", 3, 1));
                let _ = raw.write_all(&ready("PUSH"));
            }
        }
        total += n;
        // Every connection made was accepted and has ended.
        let deadline = Instant::now() + TIMEOUT;
        while (
            counts.0.load(Ordering::SeqCst),
            counts.1.load(Ordering::SeqCst),
        ) != (total, total)
        {
            assert!(
                Instant::now() < deadline,
                "of {total} connections, {} accepted and {} ended",
                counts.0.load(Ordering::SeqCst),
                counts.1.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Descriptors go with their connection's task, just after its end is
    // reported.
    let settle = |target: usize| {
        let deadline = Instant::now() + TIMEOUT;
        while open_fds() > target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Warm up, then measure.
    storm(200);
    let fds = open_fds();
    let before = fd_list();
    storm(10_000);
    settle(fds);
    let rss1 = rss_kib();
    storm(10_000);
    settle(fds);
    assert_eq!(
        open_fds(),
        fds,
        "descriptors back to their starting count: before {before:?}, after {:?}",
        fd_list()
    );
    let rss2 = rss_kib();
    assert!(
        rss2 <= rss1 + 8 * 1024,
        "second storm grew RSS from {rss1} to {rss2} KiB"
    );
    // Still serving.
    let push = ctx.socket(SocketType::Push).unwrap();
    push.connect(&ep).unwrap();
    push.send_blocking("alive").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "alive");
    assert!(!counter.is_finished(), "the monitor is still open");
}

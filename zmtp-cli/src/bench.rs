//! `zmtp bench`: both ends in one process, each with its own context and
//! I/O thread(s), as libzmq's local_thr and remote_thr run in two.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_sockets::security::{KeyPair, PlainCredentials};
use zmtp_sockets::{Context, MonitorEvent, Security, Socket, SocketType};

/// Options of `zmtp bench`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    /// push-pull, req-rep or pub-sub.
    #[arg(long, default_value = "push-pull")]
    pattern: String,
    /// null, plain, curve, noise-xx, noise-ik or noise-nk.
    #[arg(long, default_value = "null")]
    mechanism: String,
    /// Message size in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Number of messages (round trips for req-rep).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// tcp or ipc.
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// I/O threads per side.
    #[arg(long, default_value_t = 1)]
    io_threads: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// NULL, CURVE and NOISE-XX at 16 B and 64 KiB, as a table.
    #[arg(long)]
    tour: bool,
}

/// One measurement.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pattern: String,
    mechanism: String,
    transport: String,
    size: usize,
    count: u64,
    seconds: f64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    send_cpu_ns_per_msg: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

impl Report {
    fn json(&self) -> String {
        let mut s = format!(
            "{{\"impl\": \"zmtp\", \"pattern\": \"{}\", \"mechanism\": \"{}\", \"transport\": \"{}\", \"size\": {}, \"count\": {}, \"seconds\": {:.6}, \"msgs_per_sec\": {:.1}, \"mb_per_sec\": {:.3}, \"send_cpu_ns_per_msg\": {:.1}",
            self.pattern,
            self.mechanism,
            self.transport,
            self.size,
            self.count,
            self.seconds,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.send_cpu_ns_per_msg
        );
        if let (Some(p50), Some(p99)) = (self.p50_us, self.p99_us) {
            s.push_str(&format!(", \"p50_us\": {p50:.2}, \"p99_us\": {p99:.2}"));
        }
        s.push('}');
        s
    }

    fn human(&self) -> String {
        let mut s = format!(
            "{} {} {} {} B x {}: {:.0} msg/s, {:.1} MB/s, send CPU {:.0} ns/msg",
            self.pattern,
            self.mechanism,
            self.transport,
            self.size,
            self.count,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.send_cpu_ns_per_msg
        );
        if let (Some(p50), Some(p99)) = (self.p50_us, self.p99_us) {
            s.push_str(&format!(", round trip p50 {p50:.1} us, p99 {p99:.1} us"));
        }
        s
    }
}

/// CPU time of the calling thread, in nanoseconds (Linux schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn bad(msg: impl std::fmt::Display) -> ! {
    crate::die(2, msg)
}

fn secure(server: &Socket, client: &Socket, mechanism: &str) {
    match mechanism {
        "null" => {}
        "plain" => {
            let mut t = PlainCredentials::new();
            t.insert("bench", "bench");
            let _ = server.configure(|o| {
                o.security = Security::PlainServer;
                o.authenticator = Some(Arc::new(t));
            });
            let _ = client.configure(|o| {
                o.security = Security::PlainClient {
                    username: "bench".into(),
                    password: "bench".into(),
                }
            });
        }
        "curve" => {
            let keys = KeyPair::generate();
            let public = keys.public;
            let _ = server.configure(|o| o.security = Security::CurveServer { keys });
            let _ = client.configure(|o| {
                o.security = Security::CurveClient {
                    keys: KeyPair::generate(),
                    server: public,
                }
            });
        }
        m if m.starts_with("noise-") => {
            let pattern: zmtp_sockets::security::NoisePattern = m
                .trim_start_matches("noise-")
                .parse()
                .unwrap_or_else(|e: String| bad(e));
            let keys = KeyPair::generate();
            let public = keys.public;
            let _ = server.configure(|o| o.security = Security::NoiseServer { pattern, keys });
            let _ = client.configure(|o| {
                o.security = Security::NoiseClient {
                    pattern,
                    keys: None,
                    server: Some(public),
                }
            });
        }
        m => bad(format_args!("unknown mechanism {m}")),
    }
}

fn endpoint(transport: &str) -> String {
    match transport {
        "tcp" => "tcp://127.0.0.1:0".into(),
        "ipc" => format!(
            "ipc://{}/zmtp-bench-{}.sock",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        t => bad(format_args!("unknown transport {t}")),
    }
}

/// Runs one benchmark.
pub(crate) fn measure(a: &Args) -> Report {
    let (recv_type, send_type) = match a.pattern.as_str() {
        "push-pull" => (SocketType::Pull, SocketType::Push),
        "pub-sub" => (SocketType::Sub, SocketType::Pub),
        "req-rep" => (SocketType::Rep, SocketType::Req),
        p => bad(format_args!("unknown pattern {p}")),
    };
    if a.count < 2 {
        bad("--count must be at least 2");
    }
    let recv_ctx = Context::with_io_threads(a.io_threads);
    let send_ctx = Context::with_io_threads(a.io_threads);
    let receiver = recv_ctx
        .socket(recv_type)
        .unwrap_or_else(|e| crate::die(1, e));
    let sender = send_ctx
        .socket(send_type)
        .unwrap_or_else(|e| crate::die(1, e));
    for s in [&receiver, &sender] {
        let _ = s.configure(|o| {
            // Unlimited queues for throughput, as local_thr/remote_thr
            // measure the transport, not drops.
            if recv_type == SocketType::Sub {
                o.sndhwm = 0;
                o.rcvhwm = 0;
            }
            o.linger = Some(Duration::ZERO);
        });
    }
    secure(&receiver, &sender, &a.mechanism);
    if recv_type == SocketType::Sub {
        let _ = receiver.subscribe("");
    }
    let mon = sender.monitor();
    let ep = receiver
        .bind(&endpoint(&a.transport))
        .unwrap_or_else(|e| crate::die(1, e));
    sender.connect(&ep).unwrap_or_else(|e| crate::die(1, e));
    let ok = mon.wait_for_blocking(Duration::from_secs(30), |e| {
        matches!(
            e,
            MonitorEvent::HandshakeSucceeded { .. } | MonitorEvent::HandshakeFailed { .. }
        )
    });
    if !matches!(ok, Some(MonitorEvent::HandshakeSucceeded { .. })) {
        crate::die(1, format_args!("handshake failed: {ok:?}"));
    }
    if recv_type == SocketType::Sub {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sender.subscription_count() == 0 {
            if Instant::now() > deadline {
                crate::die(1, "subscription never arrived");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let payload = Bytes::from(vec![0x5Au8; a.size]);
    let count = a.count;

    if send_type == SocketType::Req {
        let echo = std::thread::spawn(move || {
            for _ in 0..count {
                let Ok(m) = receiver.recv_blocking() else {
                    return;
                };
                if receiver.send_blocking(m).is_err() {
                    return;
                }
            }
        });
        let mut rtts = Vec::with_capacity(count as usize);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        for _ in 0..count {
            let t = Instant::now();
            sender
                .send_blocking(payload.clone())
                .unwrap_or_else(|e| crate::die(1, e));
            sender.recv_blocking().unwrap_or_else(|e| crate::die(1, e));
            rtts.push(t.elapsed());
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = thread_cpu_ns().saturating_sub(cpu0);
        let _ = echo.join();
        rtts.sort();
        let pct = |p: f64| rtts[((rtts.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6;
        return Report {
            pattern: a.pattern.clone(),
            mechanism: a.mechanism.clone(),
            transport: a.transport.clone(),
            size: a.size,
            count,
            seconds: secs,
            msgs_per_sec: count as f64 / secs,
            mb_per_sec: (count as f64 * a.size as f64) / secs / 1e6,
            send_cpu_ns_per_msg: cpu as f64 / count as f64,
            p50_us: Some(pct(0.50)),
            p99_us: Some(pct(0.99)),
        };
    }

    let recv_thread = std::thread::spawn(move || {
        let _ = receiver.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)));
        let mut first = None;
        let mut last = Instant::now();
        let mut n = 0u64;
        while n < count {
            match receiver.recv_blocking() {
                Ok(_) => {
                    // The clock is read at the first and last message (and
                    // now and then, in case some never arrive), not per
                    // message: reading it costs as much as a small message.
                    if n == 0 || n + 1 == count || n % 4096 == 0 {
                        last = Instant::now();
                        first.get_or_insert(last);
                    }
                    n += 1;
                }
                Err(_) => break,
            }
        }
        (first.unwrap_or(last), last, n)
    });
    let cpu0 = thread_cpu_ns();
    for _ in 0..count {
        sender
            .send_blocking(payload.clone())
            .unwrap_or_else(|e| crate::die(1, e));
    }
    let cpu = thread_cpu_ns().saturating_sub(cpu0);
    let (first, last, received) = recv_thread
        .join()
        .unwrap_or_else(|_| crate::die(1, "receiver panicked"));
    if received < count {
        eprintln!("zmtp bench: only {received} of {count} messages arrived");
    }
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = received.saturating_sub(1) as f64;
    Report {
        pattern: a.pattern.clone(),
        mechanism: a.mechanism.clone(),
        transport: a.transport.clone(),
        size: a.size,
        count,
        seconds: secs,
        msgs_per_sec: timed / secs,
        mb_per_sec: timed * a.size as f64 / secs / 1e6,
        send_cpu_ns_per_msg: cpu as f64 / count as f64,
        p50_us: None,
        p99_us: None,
    }
}

pub(crate) fn run(a: Args) -> i32 {
    if a.tour {
        if !a.json {
            println!(
                "{:<10} {:>8} {:>10} {:>14} {:>10} {:>16}",
                "mechanism", "size", "count", "msg/s", "MB/s", "send CPU ns/msg"
            );
        }
        for mechanism in ["null", "curve", "noise-xx"] {
            for (size, count) in [(16usize, 1_000_000u64), (65536, 20_000)] {
                let args = Args {
                    mechanism: mechanism.into(),
                    size,
                    count,
                    tour: false,
                    ..a.clone()
                };
                let r = measure(&args);
                if a.json {
                    println!("{}", r.json());
                } else {
                    println!(
                        "{:<10} {:>8} {:>10} {:>14.0} {:>10.1} {:>16.0}",
                        mechanism, size, count, r.msgs_per_sec, r.mb_per_sec, r.send_cpu_ns_per_msg
                    );
                }
            }
        }
        return 0;
    }
    let r = measure(&a);
    if a.json {
        println!("{}", r.json());
    } else {
        println!("{}", r.human());
    }
    0
}

//! `zmtp-compare`: runs the same workloads on libzmq (through the `zmq`
//! crate, linked to the system libzmq) and on zmtp (`zmtp bench --json`),
//! interleaved run by run, and prints the medians and ratios as Markdown.
//!
//! `cargo build --release -p zmtp-cli -p zmtp-bench && target/release/zmtp-compare [RUNS]`
//!
//! With `ZMTP_RUST_PEERS=bench/peers/target/release/rust-peers` (built with
//! `cargo build --release --manifest-path bench/peers/Cargo.toml`) it prints
//! the PUSH/PULL table against the Rust stacks instead.
//!
//! Both sides use the same topology: one context per side, one I/O thread
//! each, both ends in one process, throughput timed at the receiver from the
//! first message to the last.

use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Work {
    pattern: &'static str,
    mechanism: &'static str,
    size: usize,
    count: u64,
    transport: &'static str,
}

#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    msgs_per_sec: f64,
    mb_per_sec: f64,
    send_cpu_ns: f64,
    p50_us: f64,
    p99_us: f64,
}

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn endpoint(t: &str) -> String {
    match t {
        "ipc" => format!(
            "ipc://{}/zmtp-compare-{}.sock",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        _ => "tcp://127.0.0.1:*".to_owned(),
    }
}

fn curve(server: &zmq::Socket, client: &zmq::Socket) {
    let s = zmq::CurveKeyPair::new().expect("keys");
    let c = zmq::CurveKeyPair::new().expect("keys");
    server.set_curve_server(true).expect("opt");
    server.set_curve_secretkey(&s.secret_key).expect("opt");
    client.set_curve_serverkey(&s.public_key).expect("opt");
    client.set_curve_publickey(&c.public_key).expect("opt");
    client.set_curve_secretkey(&c.secret_key).expect("opt");
}

/// libzmq, in this process.
fn libzmq(w: Work) -> Figures {
    let rctx = zmq::Context::new();
    let sctx = zmq::Context::new();
    let (rt, st) = match w.pattern {
        "req-rep" => (zmq::REP, zmq::REQ),
        "pub-sub" => (zmq::SUB, zmq::PUB),
        _ => (zmq::PULL, zmq::PUSH),
    };
    let receiver = rctx.socket(rt).expect("socket");
    let sender = sctx.socket(st).expect("socket");
    for s in [&receiver, &sender] {
        s.set_linger(0).expect("opt");
        if w.pattern == "pub-sub" {
            s.set_sndhwm(0).expect("opt");
            s.set_rcvhwm(0).expect("opt");
        }
    }
    // libzmq has no NOISE: its CURVE is the reference for NOISE rows.
    if w.mechanism == "curve" || w.mechanism.starts_with("noise") {
        curve(&receiver, &sender);
    }
    if w.pattern == "pub-sub" {
        receiver.set_subscribe(b"").expect("opt");
    }
    receiver.bind(&endpoint(w.transport)).expect("bind");
    let ep = receiver.get_last_endpoint().expect("ep").expect("utf8");
    sender.connect(&ep).expect("connect");
    let payload = vec![0x5Au8; w.size];
    if w.pattern == "req-rep" {
        let count = w.count;
        let echo = std::thread::spawn(move || {
            for _ in 0..count {
                let m = receiver.recv_bytes(0).expect("recv");
                receiver.send(m, 0).expect("send");
            }
        });
        let mut rtts = Vec::with_capacity(w.count as usize);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        for _ in 0..w.count {
            let t = Instant::now();
            sender.send(&payload[..], 0).expect("send");
            sender.recv_bytes(0).expect("recv");
            rtts.push(t.elapsed());
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = thread_cpu_ns() - cpu0;
        echo.join().expect("echo");
        rtts.sort();
        let pct = |p: f64| rtts[((rtts.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6;
        return Figures {
            msgs_per_sec: w.count as f64 / secs,
            mb_per_sec: w.count as f64 * w.size as f64 / secs / 1e6,
            send_cpu_ns: cpu as f64 / w.count as f64,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
        };
    }
    if w.pattern == "pub-sub" {
        // Wait until the subscription is in effect.
        receiver.set_rcvtimeo(10).expect("opt");
        loop {
            sender.send("probe", 0).expect("send");
            if receiver.recv_bytes(0).is_ok() {
                break;
            }
        }
        receiver.set_rcvtimeo(-1).expect("opt");
        while receiver.recv_bytes(zmq::DONTWAIT).is_ok() {}
    }
    let count = w.count;
    let recv = std::thread::spawn(move || {
        receiver.set_rcvtimeo(10_000).expect("opt");
        let mut first = None;
        let mut last = Instant::now();
        let mut n = 0;
        while n < count {
            if receiver.recv_bytes(0).is_err() {
                break;
            }
            // As in `zmtp bench`: the clock at the first and last message.
            if n == 0 || n + 1 == count || n % 4096 == 0 {
                last = Instant::now();
                first.get_or_insert(last);
            }
            n += 1;
        }
        (first.unwrap_or(last), last, n)
    });
    let cpu0 = thread_cpu_ns();
    for _ in 0..w.count {
        sender.send(&payload[..], 0).expect("send");
    }
    let cpu = thread_cpu_ns() - cpu0;
    let (first, last, n) = recv.join().expect("receiver");
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = n.saturating_sub(1) as f64;
    Figures {
        msgs_per_sec: timed / secs,
        mb_per_sec: timed * w.size as f64 / secs / 1e6,
        send_cpu_ns: cpu as f64 / w.count as f64,
        ..Figures::default()
    }
}

fn field(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\": ");
    json.find(&pat)
        .and_then(|i| {
            let rest = &json[i + pat.len()..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            rest[..end].trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// zmtp, through its CLI.
fn zmtp(exe: &str, w: Work) -> Figures {
    let out = Command::new(exe)
        .args([
            "bench",
            "--json",
            "--pattern",
            w.pattern,
            "--mechanism",
            w.mechanism,
        ])
        .args([
            "--size",
            &w.size.to_string(),
            "--count",
            &w.count.to_string(),
            "--transport",
            w.transport,
        ])
        .output()
        .expect("run zmtp bench");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zmtp bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Figures {
        msgs_per_sec: field(&json, "msgs_per_sec"),
        mb_per_sec: field(&json, "mb_per_sec"),
        send_cpu_ns: field(&json, "send_cpu_ns_per_msg"),
        p50_us: field(&json, "p50_us"),
        p99_us: field(&json, "p99_us"),
    }
}

/// A Rust peer through `bench/peers` (`rust-peers <impl> <size> <count>`).
fn rust_peer(exe: &str, imp: &str, w: Work) -> Figures {
    let out = Command::new(exe)
        .args([imp, &w.size.to_string(), &w.count.to_string()])
        .output()
        .expect("run rust-peers");
    let json = String::from_utf8_lossy(&out.stdout);
    Figures {
        msgs_per_sec: field(&json, "msgs_per_sec"),
        mb_per_sec: field(&json, "mb_per_sec"),
        ..Figures::default()
    }
}

/// PUSH/PULL NULL over tcp: libzmq, zmtp and the Rust stacks, interleaved.
fn rust_table(exe: &str, peers: &str, runs: usize) {
    let sizes = [
        (16usize, 1_000_000u64),
        (256, 1_000_000),
        (4096, 200_000),
        (65536, 20_000),
        (1 << 20, 2_000),
    ];
    let imps = ["zeromq", "rzmq", "omq"];
    println!(
        "\nPUSH/PULL NULL tcp, {runs} interleaved runs, median; ratio to libzmq in the same run.\n"
    );
    println!("| size | libzmq | zmtp | zmq.rs (zeromq 0.4) | rzmq 0.5 | OMQ (omq-tokio 0.33) |");
    println!("|---|---|---|---|---|---|");
    for (size, count) in sizes {
        let w = Work {
            pattern: "push-pull",
            mechanism: "null",
            size,
            count,
            transport: "tcp",
        };
        let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 2 + imps.len()];
        let big = size >= 4096;
        let pick = |f: &Figures| if big { f.mb_per_sec } else { f.msgs_per_sec };
        for _ in 0..runs {
            cols[0].push(pick(&libzmq(w)));
            cols[1].push(pick(&zmtp(exe, w)));
            for (i, imp) in imps.iter().enumerate() {
                cols[2 + i].push(pick(&rust_peer(peers, imp, w)));
            }
        }
        let meds: Vec<f64> = cols.into_iter().map(|c| median(c).0).collect();
        let unit = if big { "MB/s" } else { "msg/s" };
        let cells: Vec<String> = meds
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i == 0 {
                    format!("{m:.0} {unit}")
                } else {
                    format!("{m:.0} ({:.2}×)", m / meds[0])
                }
            })
            .collect();
        println!("| {size} B | {} |", cells.join(" | "));
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let exe = std::env::var("ZMTP_BIN").unwrap_or_else(|_| "target/release/zmtp".to_owned());
    let (a, b, c) = zmq::version();
    let w = |pattern, mechanism, size, count, transport| Work {
        pattern,
        mechanism,
        size,
        count,
        transport,
    };
    let works = [
        w("push-pull", "null", 16, 2_000_000, "tcp"),
        w("push-pull", "null", 256, 1_000_000, "tcp"),
        w("push-pull", "null", 4096, 300_000, "tcp"),
        w("push-pull", "null", 65536, 30_000, "tcp"),
        w("push-pull", "null", 1 << 20, 2_000, "tcp"),
        w("push-pull", "null", 16, 2_000_000, "ipc"),
        w("push-pull", "null", 4096, 300_000, "ipc"),
        w("push-pull", "curve", 16, 1_000_000, "tcp"),
        w("push-pull", "curve", 65536, 20_000, "tcp"),
        w("push-pull", "noise-xx", 16, 2_000_000, "tcp"),
        w("push-pull", "noise-xx", 65536, 20_000, "tcp"),
        w("pub-sub", "null", 16, 1_000_000, "tcp"),
        w("req-rep", "null", 16, 20_000, "tcp"),
        w("req-rep", "null", 4096, 20_000, "tcp"),
    ];
    if let Ok(peers) = std::env::var("ZMTP_RUST_PEERS") {
        rust_table(&exe, &peers, runs);
        return;
    }
    println!("libzmq {a}.{b}.{c} vs zmtp, {runs} interleaved runs each, median (min–max).\n");
    println!("| workload | libzmq | zmtp | ratio | send CPU ns/msg libzmq / zmtp |");
    println!("|---|---|---|---|---|");
    for work in works {
        let (mut l, mut z) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            l.push(libzmq(work));
            z.push(zmtp(&exe, work));
            std::thread::sleep(Duration::from_millis(100));
        }
        let name = format!(
            "{} {} {} {} B",
            work.pattern, work.mechanism, work.transport, work.size
        );
        let cpu_l = median(l.iter().map(|f| f.send_cpu_ns).collect()).0;
        let cpu_z = median(z.iter().map(|f| f.send_cpu_ns).collect()).0;
        if work.pattern == "req-rep" {
            let (lm, ll, lh) = median(l.iter().map(|f| f.p50_us).collect());
            let (zm, zl, zh) = median(z.iter().map(|f| f.p50_us).collect());
            let l99 = median(l.iter().map(|f| f.p99_us).collect()).0;
            let z99 = median(z.iter().map(|f| f.p99_us).collect()).0;
            println!(
                "| {name} round trip p50 (p99) | {lm:.1} µs ({ll:.1}–{lh:.1}; p99 {l99:.1}) | {zm:.1} µs ({zl:.1}–{zh:.1}; p99 {z99:.1}) | {:.2}× (lower is better) | {cpu_l:.0} / {cpu_z:.0} |",
                zm / lm
            );
        } else {
            let big = work.size >= 4096;
            let pick = |f: &Figures| if big { f.mb_per_sec } else { f.msgs_per_sec };
            let unit = if big { "MB/s" } else { "msg/s" };
            let (lm, ll, lh) = median(l.iter().map(pick).collect());
            let (zm, zl, zh) = median(z.iter().map(pick).collect());
            println!(
                "| {name} | {lm:.0} {unit} ({ll:.0}–{lh:.0}) | {zm:.0} {unit} ({zl:.0}–{zh:.0}) | {:.2}× | {cpu_l:.0} / {cpu_z:.0} |",
                zm / lm
            );
        }
    }
}

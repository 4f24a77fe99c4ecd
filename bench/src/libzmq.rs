//! The workloads of `zmtp bench` on libzmq, through the `zmq` crate linked
//! to the system libzmq. `zmtp-compare --libzmq <pattern> <mechanism>
//! <transport> <size> <count> [subscribers]` runs one in a fresh process
//! and prints one JSON line, as `zmtp bench --json` and `rust-peers` do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::pin::{self, Placement};
use crate::probe::{process_cpu_ns, status_kib, thread_cpu_ns};

/// One measurement's parameters.
pub(crate) struct Work {
    pub(crate) pattern: String,
    pub(crate) mechanism: String,
    pub(crate) transport: String,
    pub(crate) size: usize,
    pub(crate) count: u64,
    pub(crate) subscribers: usize,
    /// I/O threads per context (`ZMQ_IO_THREADS`).
    pub(crate) io_threads: i32,
    /// push-pull: where the busy threads are pinned (see `pin.rs`).
    pub(crate) pin: Option<Placement>,
}

/// The start of the names of libzmq's I/O threads (`ZMQbg/IO/N`).
const IO_THREAD_PREFIX: &str = "ZMQbg/IO/";

/// Binds `s` to a fresh endpoint of the transport; returns it as bound.
fn bind(s: &zmq::Socket, transport: &str) -> String {
    s.bind(&endpoint(transport)).expect("bind");
    s.get_last_endpoint().expect("ep").expect("utf8")
}

/// One context per side, as libzmq's local_thr and remote_thr run; over
/// inproc, one context for the process (inproc names belong to a context).
fn contexts(w: &Work) -> (zmq::Context, zmq::Context) {
    if w.transport == "inproc" {
        if w.mechanism != "null" {
            unsupported();
        }
        static SHARED: std::sync::OnceLock<zmq::Context> = std::sync::OnceLock::new();
        let c = SHARED.get_or_init(|| context(w)).clone();
        return (c.clone(), c);
    }
    (context(w), context(w))
}

fn context(w: &Work) -> zmq::Context {
    let c = zmq::Context::new();
    if w.io_threads != 1 {
        c.set_io_threads(w.io_threads).expect("io threads");
    }
    c
}

fn endpoint(t: &str) -> String {
    match t {
        "inproc" => {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            format!("inproc://zmtp-compare-{n}")
        }
        "ipc" => format!("ipc://{}", ipc_path().display()),
        _ => "tcp://127.0.0.1:*".to_owned(),
    }
}

/// The socket file of this process's ipc endpoint.
fn ipc_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("zmtp-compare-{}.sock", std::process::id()))
}

fn unsupported() -> ! {
    println!("{{\"unsupported\": true}}");
    std::process::exit(3)
}

/// The server's keys for the mechanism (the client's are made per socket).
struct ServerKeys(Option<zmq::CurveKeyPair>);

/// A ZAP handler on `ctx` that accepts every request, as zmtp's PLAIN
/// server consults its Authenticator: libzmq's PLAIN server without a
/// handler never completes the handshake.
fn zap_handler(ctx: &zmq::Context) {
    let rep = ctx.socket(zmq::REP).expect("socket");
    rep.bind("inproc://zeromq.zap.01").expect("bind ZAP");
    std::thread::spawn(move || {
        while let Ok(req) = rep.recv_multipart(0) {
            let id = req.get(1).cloned().unwrap_or_default();
            let reply: Vec<Vec<u8>> = vec![
                b"1.0".to_vec(),
                id,
                b"200".to_vec(),
                b"OK".to_vec(),
                b"bench".to_vec(),
                Vec::new(),
            ];
            if rep.send_multipart(reply, 0).is_err() {
                return;
            }
        }
    });
}

fn secure_server(ctx: &zmq::Context, s: &zmq::Socket, mechanism: &str) -> ServerKeys {
    match mechanism {
        "null" => ServerKeys(None),
        "plain" => {
            zap_handler(ctx);
            s.set_plain_server(true).expect("opt");
            ServerKeys(None)
        }
        "curve" => {
            let k = zmq::CurveKeyPair::new().expect("keys");
            s.set_curve_server(true).expect("opt");
            s.set_curve_secretkey(&k.secret_key).expect("opt");
            ServerKeys(Some(k))
        }
        _ => unsupported(),
    }
}

fn secure_client(s: &zmq::Socket, mechanism: &str, server: &ServerKeys) {
    match (mechanism, &server.0) {
        ("plain", _) => {
            s.set_plain_username(Some("bench")).expect("opt");
            s.set_plain_password(Some("bench")).expect("opt");
        }
        ("curve", Some(k)) => {
            let c = zmq::CurveKeyPair::new().expect("keys");
            s.set_curve_serverkey(&k.public_key).expect("opt");
            s.set_curve_publickey(&c.public_key).expect("opt");
            s.set_curve_secretkey(&c.secret_key).expect("opt");
        }
        _ => {}
    }
}

/// Receives `count` messages (or until 10 s of silence) into one reused
/// message; returns the clock at the first and last, and how many arrived.
fn timed_receive(s: &zmq::Socket, count: u64) -> (Instant, Instant, u64) {
    s.set_rcvtimeo(10_000).expect("opt");
    let mut msg = zmq::Message::new();
    let mut first = None;
    let mut last = Instant::now();
    let mut n = 0;
    while n < count && s.recv(&mut msg, 0).is_ok() {
        // As in `zmtp bench`: the clock at the first and last message.
        if n == 0 || n + 1 == count || n % 4096 == 0 {
            last = Instant::now();
            first.get_or_insert(last);
        }
        n += 1;
    }
    (first.unwrap_or(last), last, n)
}

/// Sends `count` messages of `size` bytes; the sending thread's CPU, in ns.
fn send_all(sender: &zmq::Socket, size: usize, count: u64) -> u64 {
    let payload = vec![0x5Au8; size];
    let cpu0 = thread_cpu_ns();
    for _ in 0..count {
        sender.send(&payload[..], 0).expect("send");
    }
    thread_cpu_ns() - cpu0
}

/// The throughput fields of a run: `got` messages received, `timed` of them
/// within `secs`, the sending thread's CPU per send where there was one
/// sender, and the process's CPU (`process_ns`) per message received.
/// [`rate_fields`] for one receiver's `(first, last, received)`, timed
/// from the first message to the last; `send_cpu` is the sending thread's
/// CPU for `count` sends, where there was one sender.
fn received_fields(
    (first, last, got): (Instant, Instant, u64),
    size: usize,
    send_cpu: Option<(u64, u64)>,
    process_ns: u64,
) -> String {
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = got.saturating_sub(1) as f64;
    let per_send = send_cpu.map(|(cpu, count)| cpu as f64 / count as f64);
    rate_fields(got, timed, secs, size, per_send, process_ns)
}

fn rate_fields(
    got: u64,
    timed: f64,
    secs: f64,
    size: usize,
    send_cpu_ns_per_msg: Option<f64>,
    process_ns: u64,
) -> String {
    let send_cpu = send_cpu_ns_per_msg
        .map(|c| format!(", \"send_cpu_ns_per_msg\": {c:.1}"))
        .unwrap_or_default();
    format!(
        "\"received\": {got}, \"msgs_per_sec\": {:.1}, \"mb_per_sec\": {:.3}{send_cpu}, \"cpu_ns_per_msg\": {:.1}",
        timed / secs,
        timed * size as f64 / secs / 1e6,
        process_ns as f64 / got.max(1) as f64
    )
}

/// Publishes probes until `sub` gets one: its subscription is in effect.
fn await_subscription(publisher: &zmq::Socket, sub: &zmq::Socket) {
    sub.set_rcvtimeo(20).expect("opt");
    loop {
        publisher.send("probe", 0).expect("send");
        if sub.recv_bytes(0).is_ok() {
            return;
        }
    }
}

fn socket(ctx: &zmq::Context, ty: zmq::SocketType) -> zmq::Socket {
    let s = ctx.socket(ty).expect("socket");
    s.set_linger(0).expect("opt");
    s
}

/// Runs one workload and returns its JSON fields.
pub(crate) fn run(w: &Work) -> String {
    if w.mechanism.starts_with("noise") {
        unsupported();
    }
    let fields = workload(w);
    // libzmq (4.3.4) leaves the socket file of an ipc endpoint it bound.
    if w.transport == "ipc" {
        let _ = std::fs::remove_file(ipc_path());
    }
    fields
}

fn workload(w: &Work) -> String {
    match w.pattern.as_str() {
        "push-pull" | "pub-sub" => throughput(w),
        "req-rep" => req_rep(w),
        "dealer-router" => dealer_router(w),
        "router-echo" => router_echo(w),
        "proxy" => proxy(w),
        "fan-in" => fan_in(w),
        "trickle" | "trickle-alone" => trickle(w),
        "round-robin" => round_robin(w),
        "handshake" => handshake(w),
        "idle" => idle(w),
        "idle-remote" => idle_remote(w),
        "slow-sub" => slow_sub(w),
        p => panic!("unknown pattern {p}"),
    }
}

fn throughput(w: &Work) -> String {
    let (rctx, sctx) = contexts(w);
    let pubsub = w.pattern == "pub-sub";
    // A context starts its I/O threads with its first socket.
    let pinned = w.pin.map(|p| {
        assert!(
            !pubsub && w.transport != "inproc",
            "--pin is for push-pull over tcp or ipc"
        );
        let cpus = pin::two_cpus().expect("two CPUs");
        (cpus, p.io_cpus(cpus))
    });
    // A socket, with the I/O threads its context started pinned to `cpu`.
    let socket_on = |ctx: &zmq::Context, ty, cpu: Option<usize>| {
        let before = cpu.map(|_| pin::threads_named(IO_THREAD_PREFIX));
        let s = socket(ctx, ty);
        if let (Some(cpu), Some(before)) = (cpu, before) {
            let n = w.io_threads.max(1) as usize;
            pin::pin_new(IO_THREAD_PREFIX, &before, n, cpu).expect("pin");
        }
        s
    };
    let sender_type = if pubsub { zmq::PUB } else { zmq::PUSH };
    let sender = socket_on(&sctx, sender_type, pinned.map(|(_, (_, io))| io));
    if let Some((cpus, _)) = pinned {
        pin::pin(None, cpus.sender).expect("pin");
    }
    let mut receivers = Vec::new();
    if pubsub {
        sender.set_sndhwm(0).expect("opt");
        let keys = secure_server(&sctx, &sender, &w.mechanism);
        let ep = bind(&sender, &w.transport);
        for _ in 0..w.subscribers.max(1) {
            let s = socket(&rctx, zmq::SUB);
            s.set_rcvhwm(0).expect("opt");
            secure_client(&s, &w.mechanism, &keys);
            s.set_subscribe(b"").expect("opt");
            s.connect(&ep).expect("connect");
            receivers.push(s);
        }
        for s in &receivers {
            await_subscription(&sender, s);
        }
        for s in &receivers {
            s.set_rcvtimeo(50).expect("opt");
            while s.recv_bytes(0).is_ok() {}
        }
    } else {
        let r = socket_on(&rctx, zmq::PULL, pinned.map(|(_, (io, _))| io));
        let keys = secure_server(&rctx, &r, &w.mechanism);
        secure_client(&sender, &w.mechanism, &keys);
        let ep = bind(&r, &w.transport);
        sender.connect(&ep).expect("connect");
        receivers.push(r);
    }
    let count = w.count;
    let process0 = process_cpu_ns();
    let recv_cpu = pinned.map(|(cpus, _)| cpus.receiver);
    let threads: Vec<_> = receivers
        .into_iter()
        .map(|r| {
            std::thread::spawn(move || {
                if let Some(cpu) = recv_cpu {
                    pin::pin(None, cpu).expect("pin");
                }
                timed_receive(&r, count)
            })
        })
        .collect();
    let cpu = send_all(&sender, w.size, count);
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("receiver"))
        .collect();
    let process = process_cpu_ns().saturating_sub(process0);
    let first = results.iter().map(|r| r.0).min().expect("one");
    let last = results.iter().map(|r| r.1).max().expect("one");
    let got: u64 = results.iter().map(|r| r.2).sum();
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = got.saturating_sub(results.len() as u64) as f64;
    let send_cpu = cpu as f64 / count as f64;
    rate_fields(got, timed, secs, w.size, Some(send_cpu), process)
}

fn req_rep(w: &Work) -> String {
    let (rctx, sctx) = contexts(w);
    let rep = socket(&rctx, zmq::REP);
    let req = socket(&sctx, zmq::REQ);
    let keys = secure_server(&rctx, &rep, &w.mechanism);
    secure_client(&req, &w.mechanism, &keys);
    let ep = bind(&rep, &w.transport);
    req.connect(&ep).expect("connect");
    let count = w.count;
    let echo = std::thread::spawn(move || {
        let mut m = zmq::Message::new();
        for _ in 0..count {
            rep.recv(&mut m, 0).expect("recv");
            rep.send(&m[..], 0).expect("send");
        }
    });
    let out = round_trips(&req, w.size, count);
    echo.join().expect("echo");
    out
}

/// `count` round trips of `size`-byte messages from `client`: the p50 and
/// p99 fields.
fn round_trips(client: &zmq::Socket, size: usize, count: u64) -> String {
    let payload = vec![0x5Au8; size];
    let mut reply = zmq::Message::new();
    let mut rtts = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let t = Instant::now();
        client.send(&payload[..], 0).expect("send");
        client.recv(&mut reply, 0).expect("recv");
        rtts.push(t.elapsed());
    }
    percentiles(&mut rtts)
}

/// The p50 and p99 fields of round-trip times (0 for none).
fn percentiles(rtts: &mut [Duration]) -> String {
    rtts.sort();
    let pct = |p: f64| {
        rtts.get(((rtts.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    format!("\"p50_us\": {:.2}, \"p99_us\": {:.2}", pct(0.5), pct(0.99))
}

/// PUSH -> `zmq_proxy` (PULL frontend, PUSH backend, a context of its own,
/// a thread of its own) -> PULL.
fn proxy(w: &Work) -> String {
    let (rctx, sctx, pctx) = (
        zmq::Context::new(),
        zmq::Context::new(),
        zmq::Context::new(),
    );
    let receiver = socket(&rctx, zmq::PULL);
    let out_ep = bind(&receiver, &w.transport);
    let frontend = socket(&pctx, zmq::PULL);
    let backend = socket(&pctx, zmq::PUSH);
    let in_ep = bind(&frontend, &w.transport);
    backend.connect(&out_ep).expect("connect");
    let sender = socket(&sctx, zmq::PUSH);
    sender.connect(&in_ep).expect("connect");
    std::thread::spawn(move || {
        let _ = zmq::proxy(&frontend, &backend);
    });
    let count = w.count;
    let process0 = process_cpu_ns();
    let recv = std::thread::spawn(move || timed_receive(&receiver, count));
    let cpu = send_all(&sender, w.size, count);
    let received = recv.join().expect("receiver");
    let process = process_cpu_ns().saturating_sub(process0);
    received_fields(received, w.size, Some((cpu, count)), process)
}

/// `subscribers` PUSH sockets (a thread each) into one bound PULL.
fn fan_in(w: &Work) -> String {
    let n = w.subscribers.max(1);
    let (rctx, sctx) = contexts(w);
    let pull = socket(&rctx, zmq::PULL);
    let ep = bind(&pull, &w.transport);
    let per = (w.count / n as u64).max(1);
    let count = per * n as u64;
    let pushes: Vec<zmq::Socket> = (0..n)
        .map(|_| {
            let s = socket(&sctx, zmq::PUSH);
            s.connect(&ep).expect("connect");
            s
        })
        .collect();
    let process0 = process_cpu_ns();
    let recv = std::thread::spawn(move || timed_receive(&pull, count));
    let payload = vec![0x5Au8; w.size];
    // Each thread gives its socket back: closed before the receiver has
    // everything, a socket with linger 0 would drop what it still holds.
    let _open: Vec<zmq::Socket> = std::thread::scope(|scope| {
        let threads: Vec<_> = pushes
            .into_iter()
            .map(|s| {
                let payload = &payload;
                scope.spawn(move || {
                    for _ in 0..per {
                        s.send(&payload[..], 0).expect("send");
                    }
                    s
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("sender"))
            .collect()
    });
    let received = recv.join().expect("receiver");
    let process = process_cpu_ns().saturating_sub(process0);
    received_fields(received, w.size, None, process)
}

/// Messages a second each trickling peer sends (as `zmtp bench`).
const TRICKLE_RATE: f64 = 50.0;

/// `subscribers` PUSH sockets, driven by four threads, each sending a
/// steady trickle into one PULL, while one REQ makes round trips to a REP
/// beside it (as `zmtp bench --pattern trickle`); `trickle-alone`: no
/// round trips.
fn trickle(w: &Work) -> String {
    let peers = w.subscribers.max(1);
    let (rctx, sctx) = contexts(w);
    let pull = socket(&rctx, zmq::PULL);
    let ep = bind(&pull, &w.transport);
    let pair = (w.pattern == "trickle").then(|| {
        let rep = socket(&rctx, zmq::REP);
        let rep_ep = bind(&rep, &w.transport);
        let req = socket(&sctx, zmq::REQ);
        req.set_rcvtimeo(10_000).expect("opt");
        req.connect(&rep_ep).expect("connect");
        (rep, req)
    });
    let per = (w.count / peers as u64).max(1);
    let count = per * peers as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let process0 = process_cpu_ns();
    let recv = std::thread::spawn(move || timed_receive(&pull, count));
    let round_trips = pair.map(|(rep, req)| {
        let stop2 = stop.clone();
        let echo = std::thread::spawn(move || {
            rep.set_rcvtimeo(100).expect("opt");
            let mut m = zmq::Message::new();
            while !stop2.load(Ordering::Relaxed) {
                if rep.recv(&mut m, 0).is_ok() && rep.send(&m[..], 0).is_err() {
                    break;
                }
            }
        });
        let stop3 = stop.clone();
        let asker = std::thread::spawn(move || {
            let mut rtts = Vec::new();
            let mut reply = zmq::Message::new();
            while !stop3.load(Ordering::Relaxed) {
                let t = Instant::now();
                if req.send(&b"ping"[..], 0).is_err() || req.recv(&mut reply, 0).is_err() {
                    break;
                }
                rtts.push(t.elapsed());
            }
            rtts
        });
        (echo, asker)
    });
    let payload = vec![0x5Au8; w.size];
    // Sockets are made in the threads that use them (a libzmq socket
    // belongs to one thread at a time).
    let threads = 4.min(peers);
    let _open: Vec<Vec<zmq::Socket>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sctx, ep, payload) = (&sctx, &ep, &payload);
                let mine = peers / threads + usize::from(t < peers % threads);
                scope.spawn(move || {
                    let socks: Vec<zmq::Socket> = (0..mine)
                        .map(|_| {
                            let s = socket(sctx, zmq::PUSH);
                            s.connect(ep).expect("connect");
                            s
                        })
                        .collect();
                    let interval = Duration::from_secs_f64(1.0 / TRICKLE_RATE);
                    let mut next = Instant::now();
                    for _ in 0..per {
                        for s in &socks {
                            s.send(&payload[..], 0).expect("send");
                        }
                        next += interval;
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                    socks
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect()
    });
    let received = recv.join().expect("receiver");
    let process = process_cpu_ns().saturating_sub(process0);
    stop.store(true, Ordering::Relaxed);
    let Some((echo, asker)) = round_trips else {
        return format!(
            "{}, \"round_trips\": 0",
            received_fields(received, w.size, None, process)
        );
    };
    let mut rtts = asker.join().expect("asker");
    echo.join().expect("echo");
    format!(
        "{}, {}, \"round_trips\": {}",
        received_fields(received, w.size, None, process),
        percentiles(&mut rtts),
        rtts.len()
    )
}

/// One bound PUSH dealing to `subscribers` PULL sockets (a thread each).
fn round_robin(w: &Work) -> String {
    let n = w.subscribers.max(1);
    let (rctx, sctx) = contexts(w);
    let push = socket(&sctx, zmq::PUSH);
    let ep = bind(&push, &w.transport);
    let pulls: Vec<zmq::Socket> = (0..n)
        .map(|_| {
            let s = socket(&rctx, zmq::PULL);
            s.set_rcvtimeo(200).expect("opt");
            s.connect(&ep).expect("connect");
            s
        })
        .collect();
    // Every PULL connected before the first message: probe until each has
    // had one, then drain the probes left over.
    let mut reached = vec![false; n];
    let deadline = Instant::now() + Duration::from_secs(30);
    while reached.iter().any(|r| !r) {
        assert!(Instant::now() < deadline, "a PULL never connected");
        push.send("probe", 0).expect("send");
        for (s, r) in pulls.iter().zip(reached.iter_mut()) {
            while s.recv_bytes(zmq::DONTWAIT).is_ok() {
                *r = true;
            }
        }
    }
    for s in &pulls {
        s.set_rcvtimeo(50).expect("opt");
        while s.recv_bytes(0).is_ok() {}
        s.set_rcvtimeo(200).expect("opt");
    }
    let count = w.count;
    let total = crate::tally::Tally::default();
    let process0 = process_cpu_ns();
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for s in pulls {
            let total = &total;
            scope.spawn(move || {
                let mut m = zmq::Message::new();
                total.receive(count, n, || s.recv(&mut m, 0).is_ok());
            });
        }
        let payload = vec![0x5Au8; w.size];
        for _ in 0..count {
            push.send(&payload[..], 0).expect("send");
        }
    });
    let got = total.received();
    let process = process_cpu_ns().saturating_sub(process0);
    let end = total.last().unwrap_or(t0);
    let secs = (end - t0).as_secs_f64().max(1e-9);
    rate_fields(got, got as f64, secs, w.size, None, process)
}

/// A ROUTER bound, a DEALER connected to it, on two contexts.
fn router_and_dealer(w: &Work) -> (zmq::Socket, zmq::Socket) {
    let (rctx, sctx) = contexts(w);
    let router = socket(&rctx, zmq::ROUTER);
    let dealer = socket(&sctx, zmq::DEALER);
    let keys = secure_server(&rctx, &router, &w.mechanism);
    secure_client(&dealer, &w.mechanism, &keys);
    let ep = bind(&router, &w.transport);
    dealer.connect(&ep).expect("connect");
    (router, dealer)
}

/// DEALER -> ROUTER throughput: the ROUTER receives each message as its
/// routing id and the body, into reused messages.
fn dealer_router(w: &Work) -> String {
    let (router, dealer) = router_and_dealer(w);
    let count = w.count;
    let process0 = process_cpu_ns();
    let receiver = std::thread::spawn(move || {
        router.set_rcvtimeo(10_000).expect("opt");
        let (mut id, mut body) = (zmq::Message::new(), zmq::Message::new());
        let mut first = None;
        let mut last = Instant::now();
        let mut n = 0;
        while n < count && router.recv(&mut id, 0).is_ok() && router.recv(&mut body, 0).is_ok() {
            if n == 0 || n + 1 == count || n % 4096 == 0 {
                last = Instant::now();
                first.get_or_insert(last);
            }
            n += 1;
        }
        (first.unwrap_or(last), last, n)
    });
    let cpu = send_all(&dealer, w.size, count);
    let received = receiver.join().expect("receiver");
    let process = process_cpu_ns().saturating_sub(process0);
    received_fields(received, w.size, Some((cpu, count)), process)
}

/// Round trips from a DEALER through a ROUTER that sends every message
/// back to the peer it came from.
fn router_echo(w: &Work) -> String {
    let (router, dealer) = router_and_dealer(w);
    let count = w.count;
    let echo = std::thread::spawn(move || {
        let (mut id, mut body) = (zmq::Message::new(), zmq::Message::new());
        for _ in 0..count {
            router.recv(&mut id, 0).expect("recv");
            router.recv(&mut body, 0).expect("recv");
            router.send(&id[..], zmq::SNDMORE).expect("send");
            router.send(&body[..], 0).expect("send");
        }
    });
    let out = round_trips(&dealer, w.size, count);
    echo.join().expect("echo");
    out
}

fn handshake(w: &Work) -> String {
    let (rctx, sctx) = contexts(w);
    let pull = socket(&rctx, zmq::PULL);
    pull.set_rcvtimeo(10_000).expect("opt");
    let keys = secure_server(&rctx, &pull, &w.mechanism);
    let ep = bind(&pull, &w.transport);
    let mut m = zmq::Message::new();
    let t0 = Instant::now();
    let mut done = 0u64;
    while done < w.count {
        let push = socket(&sctx, zmq::PUSH);
        secure_client(&push, &w.mechanism, &keys);
        push.connect(&ep).expect("connect");
        push.send("hello", 0).expect("send");
        if pull.recv(&mut m, 0).is_err() {
            break;
        }
        drop(push);
        done += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    format!(
        "\"received\": {done}, \"handshakes_per_sec\": {:.1}",
        done as f64 / secs
    )
}

fn idle(w: &Work) -> String {
    let base = status_kib("VmRSS:");
    let (rctx, sctx) = contexts(w);
    let pull = socket(&rctx, zmq::PULL);
    pull.set_rcvtimeo(10_000).expect("opt");
    let keys = secure_server(&rctx, &pull, &w.mechanism);
    let ep = bind(&pull, &w.transport);
    let mut clients = Vec::new();
    for _ in 0..w.count {
        let push = socket(&sctx, zmq::PUSH);
        secure_client(&push, &w.mechanism, &keys);
        push.connect(&ep).expect("connect");
        push.send("hello", 0).expect("send");
        clients.push(push);
    }
    let mut m = zmq::Message::new();
    let mut n = 0;
    while n < w.count && pull.recv(&mut m, 0).is_ok() {
        n += 1;
    }
    let rss = status_kib("VmRSS:");
    std::mem::forget((clients, pull, rctx, sctx));
    format!("\"received\": {n}, \"base_rss_kib\": {base}, \"rss_kib\": {rss}")
}

/// One PULL accepting `count` idle PUSH peers opened by other processes:
/// zmtp's `bench --pattern idle-peers` (the program in `ZMTP_BIN`), the
/// same peers as for zmtp's server, 5,000 to a process.
fn idle_remote(w: &Work) -> String {
    let zmtp = std::env::var("ZMTP_BIN").expect("ZMTP_BIN: the zmtp program, for the peers");
    let (rctx, _) = contexts(w);
    let pull = socket(&rctx, zmq::PULL);
    // As zmtp's: a dropped SYN is retried after 1, 3, 7, 15, 31 s.
    pull.set_rcvtimeo(120_000).expect("opt");
    let keys = secure_server(&rctx, &pull, &w.mechanism);
    let ep = bind(&pull, &w.transport);
    let base = status_kib("VmRSS:");
    let cpu0 = process_cpu_ns();
    let t0 = Instant::now();
    let mut peers = Vec::new();
    let mut left = w.count;
    while left > 0 {
        let n = left.min(5_000);
        left -= n;
        let mut cmd = std::process::Command::new(&zmtp);
        cmd.args(["bench", "--pattern", "idle-peers", "--connect", &ep])
            .args(["--count", &n.to_string(), "--mechanism", &w.mechanism]);
        if let Some(k) = &keys.0 {
            cmd.args([
                "--server-key",
                &zmq::z85_encode(&k.public_key).expect("z85"),
            ]);
        }
        let child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the peers");
        peers.push(child);
    }
    let mut m = zmq::Message::new();
    let mut n = 0;
    while n < w.count && pull.recv(&mut m, 0).is_ok() {
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_ns().saturating_sub(cpu0);
    let rss = status_kib("VmRSS:");
    for mut p in peers {
        drop(p.stdin.take());
        let _ = p.wait();
    }
    std::mem::forget((pull, rctx));
    format!(
        "\"received\": {n}, \"base_rss_kib\": {base}, \"rss_kib\": {rss}, \"accept_seconds\": {secs}, \"cpu_us_per_conn\": {}",
        cpu as f64 / 1e3 / n.max(1) as f64
    )
}

fn slow_sub(w: &Work) -> String {
    let base = status_kib("VmRSS:");
    let (pctx, sctx) = contexts(w);
    let publisher = socket(&pctx, zmq::PUB);
    let sub = socket(&sctx, zmq::SUB);
    let keys = secure_server(&pctx, &publisher, &w.mechanism);
    secure_client(&sub, &w.mechanism, &keys);
    sub.set_subscribe(b"").expect("opt");
    let ep = bind(&publisher, &w.transport);
    sub.connect(&ep).expect("connect");
    await_subscription(&publisher, &sub);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let reader = std::thread::spawn(move || {
        sub.set_rcvtimeo(100).expect("opt");
        let mut m = zmq::Message::new();
        let mut read = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            if sub.recv(&mut m, 0).is_ok() {
                read += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        read
    });
    let payload = vec![0x5Au8; w.size];
    let t0 = Instant::now();
    for _ in 0..w.count {
        publisher.send(&payload[..], 0).expect("send");
    }
    let secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let peak = status_kib("VmHWM:");
    let rss = status_kib("VmRSS:");
    let read = reader.join().expect("reader");
    format!(
        "\"base_rss_kib\": {base}, \"peak_rss_kib\": {peak}, \"rss_kib\": {rss}, \"publish_seconds\": {secs:.3}, \"read\": {read}"
    )
}

//! `zmtp bench`: both ends in one process, each with its own context and
//! I/O thread(s), as libzmq's local_thr and remote_thr run in two.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_sockets::security::{KeyPair, PlainCredentials};
use zmtp_sockets::{Context, Message, MonitorEvent, Security, Socket, SocketType};

use crate::pin::{self, Placement};
use crate::probe::{process_cpu_ns, status_kib, thread_cpu_ns};

/// The start of the names of zmtp's I/O threads (`zmtp-io-N`).
const IO_THREAD_PREFIX: &str = "zmtp-io-";

/// Options of `zmtp bench`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    /// push-pull, req-rep or pub-sub; dealer-router (DEALER sends, ROUTER
    /// receives); router-echo (round trips through a ROUTER that sends each
    /// message back); proxy (PUSH -> a PULL/PUSH proxy on a context of its
    /// own -> PULL); handshake (sequential connections:
    /// connect, one message, close; --count connections); idle (RSS with
    /// --count connected idle PUSH sockets); slow-sub (peak RSS while a
    /// publisher sends --count messages to a subscriber reading one per ms);
    /// trickle (--subscribers PUSH peers each sending 50 messages a second
    /// into one PULL, --count in all, while a REQ makes round trips to a REP
    /// beside it: msg/s, CPU per message, round-trip p50/p99);
    /// trickle-alone (the same trickle with no round trips beside it: the
    /// CPU per trickled message, which the round trips, taking whatever
    /// CPU is left, otherwise swamp); seal
    /// (CURVE's single-core seal rate, no sockets); idle-remote (RSS,
    /// time and CPU of one PULL accepting --count idle PUSH peers that
    /// other processes open, up to 5,000 in each; the peers are this
    /// program's idle-peers); idle-peers (--count PUSH sockets connected to
    /// --connect, each sending one message, kept until standard input
    /// ends).
    #[arg(long, default_value = "push-pull")]
    pattern: String,
    /// pub-sub: the number of subscribers (on the receiving context);
    /// fan-in: the number of PUSH sockets into one PULL; round-robin: the
    /// number of PULL sockets one PUSH deals to.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// null, plain, curve, noise-xx, noise-ik or noise-nk.
    #[arg(long, default_value = "null")]
    mechanism: String,
    /// Message size in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Number of messages (round trips for req-rep).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// tcp, ipc or inproc (both ends in one context; NULL only, as inproc
    /// has no mechanism).
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// I/O threads per side.
    #[arg(long, default_value_t = 1)]
    io_threads: usize,
    /// How long an idle I/O thread polls before it sleeps, in microseconds
    /// (the context's busy_poll; 0 sleeps at once).
    #[arg(long, default_value_t = zmtp_sockets::DEFAULT_BUSY_POLL.as_micros() as u64)]
    busy_poll_us: u64,
    /// How each message's body is made: `shared` clones one `Bytes`
    /// (zero-copy, but its reference count moves between the sending and
    /// the receiving thread at every message), `static` points at a static
    /// buffer (no reference count: as libzmq's 16-byte messages, which it
    /// copies into the message itself), `copy` allocates and fills a new
    /// buffer per message.
    #[arg(long, default_value = "shared", value_parser = ["shared", "static", "copy"])]
    payload: String,
    /// push-pull, dealer-router and proxy: move up to this many messages
    /// per call (`send_many_blocking` and `recv_many_blocking`); 1 uses
    /// the single-message calls.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// push-pull over tcp or ipc: pin the four busy threads to the first
    /// two CPUs, `together` (each application thread on the CPU of its own
    /// side's I/O thread) or `apart` (on the other side's), instead of
    /// leaving the placement to the scheduler (see `pin.rs`).
    #[arg(long, value_parser = ["together", "apart"])]
    pin: Option<String>,
    /// idle-peers: the endpoint to connect to.
    #[arg(long)]
    connect: Option<String>,
    /// idle-peers with --mechanism curve: the server's public key (Z85,
    /// which may begin with `-`).
    #[arg(long, allow_hyphen_values = true)]
    server_key: Option<String>,
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
    payload: String,
    size: usize,
    count: u64,
    seconds: f64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    send_cpu_ns_per_msg: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    /// Pattern-specific figures, appended to the output as they are.
    extra: Vec<(&'static str, f64)>,
}

impl Report {
    fn json(&self) -> String {
        let mut s = format!(
            "{{\"impl\": \"zmtp\", \"pattern\": \"{}\", \"mechanism\": \"{}\", \"transport\": \"{}\", \"payload\": \"{}\", \"size\": {}, \"count\": {}, \"seconds\": {:.6}, \"msgs_per_sec\": {:.1}, \"mb_per_sec\": {:.3}, \"send_cpu_ns_per_msg\": {:.1}",
            self.pattern,
            self.mechanism,
            self.transport,
            self.payload,
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
        for (k, v) in &self.extra {
            s.push_str(&format!(", \"{k}\": {v}"));
        }
        s.push('}');
        s
    }

    fn human(&self) -> String {
        let mut s = format!(
            "{} {} {} {} payload {} B x {}: {:.0} msg/s, {:.1} MB/s, send CPU {:.0} ns/msg",
            self.pattern,
            self.mechanism,
            self.transport,
            self.payload,
            self.size,
            self.count,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.send_cpu_ns_per_msg
        );
        if let (Some(p50), Some(p99)) = (self.p50_us, self.p99_us) {
            s.push_str(&format!(", round trip p50 {p50:.1} us, p99 {p99:.1} us"));
        }
        for (k, v) in &self.extra {
            s.push_str(&format!(", {k} {v:.1}"));
        }
        s
    }
}

fn bad(msg: impl std::fmt::Display) -> ! {
    crate::die(2, msg)
}

/// Configures the server side of `mechanism` and returns what a client
/// needs: the server's public key.
fn secure_server(server: &Socket, mechanism: &str) -> Option<zmtp_sockets::security::PublicKey> {
    match mechanism {
        "null" => None,
        "plain" => {
            let mut t = PlainCredentials::new();
            t.allow("bench", "bench");
            let _ = server.configure(|o| {
                o.security = Security::PlainServer;
                o.authenticator = Some(Arc::new(t));
            });
            None
        }
        "curve" => {
            let keys = KeyPair::generate();
            let public = keys.public;
            let _ = server.configure(|o| o.security = Security::CurveServer { keys });
            Some(public)
        }
        m if m.starts_with("noise-") => {
            let keys = KeyPair::generate();
            let public = keys.public;
            let pattern = noise_pattern(m);
            let _ = server.configure(|o| o.security = Security::NoiseServer { pattern, keys });
            Some(public)
        }
        m => bad(format_args!("unknown mechanism {m}")),
    }
}

fn noise_pattern(m: &str) -> zmtp_sockets::security::NoisePattern {
    m.trim_start_matches("noise-")
        .parse()
        .unwrap_or_else(|e: String| bad(e))
}

/// Configures the client side of `mechanism` against a server set up by
/// [`secure_server`].
fn secure_client(
    client: &Socket,
    mechanism: &str,
    server: Option<zmtp_sockets::security::PublicKey>,
) {
    match (mechanism, server) {
        ("plain", _) => {
            let _ = client.configure(|o| {
                o.security = Security::PlainClient {
                    username: "bench".into(),
                    password: "bench".into(),
                }
            });
        }
        ("curve", Some(server)) => {
            let _ = client.configure(|o| {
                o.security = Security::CurveClient {
                    keys: KeyPair::generate(),
                    server,
                }
            });
        }
        (m, server) if m.starts_with("noise-") => {
            let pattern = noise_pattern(m);
            let _ = client.configure(|o| {
                o.security = Security::NoiseClient {
                    pattern,
                    keys: None,
                    server,
                }
            });
        }
        _ => {}
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
        "inproc" => {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("inproc://zmtp-bench-{n}")
        }
        t => bad(format_args!("unknown transport {t}")),
    }
}

/// Binds `s` to a fresh endpoint of --transport; the endpoint as bound.
fn bind_or_die(s: &Socket, a: &Args) -> String {
    crate::bind(s, &endpoint(&a.transport)).unwrap_or_else(|e| crate::die(1, e))
}

/// `n` sockets of type `ty`, each connected to `ep`.
fn connected(ctx: &Context, ty: SocketType, ep: &str, n: usize) -> Vec<Socket> {
    (0..n)
        .map(|_| {
            let s = socket(ctx, ty);
            s.connect(ep).unwrap_or_else(|e| crate::die(1, e));
            s
        })
        .collect()
}

fn socket(ctx: &Context, ty: SocketType) -> Socket {
    let s = ctx.socket(ty).unwrap_or_else(|e| crate::die(1, e));
    let _ = s.configure(|o| o.linger = Some(Duration::ZERO));
    s
}

/// The most `--payload static` can send.
const STATIC_MAX: usize = 1 << 20;
static STATIC_BODY: [u8; STATIC_MAX] = [0; STATIC_MAX];

/// Makes each message's body as `--payload` says.
#[derive(Clone)]
struct Payload {
    shared: Bytes,
    mode: Body,
}

/// `--payload`, decided once (not compared as a string at every send).
#[derive(Clone, Copy)]
enum Body {
    Shared,
    Static,
    Copy,
}

impl Payload {
    fn new(a: &Args) -> Payload {
        let mode = match a.payload.as_str() {
            "static" if a.size > STATIC_MAX => bad(format_args!(
                "--payload static takes --size up to {STATIC_MAX}"
            )),
            "static" => Body::Static,
            "copy" => Body::Copy,
            _ => Body::Shared,
        };
        Payload {
            shared: Bytes::from(vec![0x5Au8; a.size]),
            mode,
        }
    }

    #[inline]
    fn get(&self) -> Bytes {
        match self.mode {
            Body::Static => Bytes::from_static(&STATIC_BODY[..self.shared.len()]),
            Body::Copy => Bytes::copy_from_slice(&self.shared),
            Body::Shared => self.shared.clone(),
        }
    }

    /// Sends `count` bodies from `sender`; the sending thread's CPU for it.
    fn send_all(&self, sender: &Socket, count: u64) -> u64 {
        let cpu0 = thread_cpu_ns();
        for _ in 0..count {
            sender
                .send_blocking(self.get())
                .unwrap_or_else(|e| crate::die(1, e));
        }
        thread_cpu_ns().saturating_sub(cpu0)
    }

    /// [`Payload::send_all`] `batch` messages per call.
    fn send_batched(&self, sender: &Socket, count: u64, batch: usize) -> u64 {
        let cpu0 = thread_cpu_ns();
        let mut msgs = Vec::with_capacity(batch);
        let mut left = count;
        while left > 0 {
            let n = left.min(batch as u64);
            msgs.extend((0..n).map(|_| Message::from(self.get())));
            sender
                .send_many_blocking(&mut msgs)
                .unwrap_or_else(|e| crate::die(1, e));
            left -= n;
        }
        thread_cpu_ns().saturating_sub(cpu0)
    }
}

/// A report with only pattern-specific figures.
fn extra_report(a: &Args, extra: Vec<(&'static str, f64)>) -> Report {
    Report {
        pattern: a.pattern.clone(),
        mechanism: a.mechanism.clone(),
        transport: a.transport.clone(),
        payload: a.payload.clone(),
        size: a.size,
        count: a.count,
        seconds: 0.0,
        msgs_per_sec: 0.0,
        mb_per_sec: 0.0,
        send_cpu_ns_per_msg: 0.0,
        p50_us: None,
        p99_us: None,
        extra,
    }
}

/// A report of `timed` messages received between `first` and `last`: the
/// receive rate, with `extra`.
fn rate_report(
    a: &Args,
    first: Instant,
    last: Instant,
    timed: u64,
    extra: Vec<(&'static str, f64)>,
) -> Report {
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = timed as f64;
    Report {
        seconds: secs,
        msgs_per_sec: timed / secs,
        mb_per_sec: timed * a.size as f64 / secs / 1e6,
        ..extra_report(a, extra)
    }
}

/// Waits (up to 30 s) until `publisher` has `n` subscriptions.
fn await_subscriptions(publisher: &Socket, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while publisher.subscription_count() < n {
        if Instant::now() > deadline {
            crate::die(1, "subscriptions never arrived");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sequential connections, each with its own PUSH socket: connect, one
/// message received by the server, close. The message proves the handshake.
fn handshakes(a: &Args) -> Report {
    let (sctx, cctx) = contexts(a);
    let pull = socket(&sctx, SocketType::Pull);
    let _ = pull.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)));
    let ep = endpoint(&a.transport);
    let server = secure_server(&pull, &a.mechanism);
    let ep = crate::bind(&pull, &ep).unwrap_or_else(|e| crate::die(1, e));
    let hello = Bytes::from_static(b"hello");
    let t0 = Instant::now();
    let mut done = 0u64;
    while done < a.count {
        let push = socket(&cctx, SocketType::Push);
        secure_client(&push, &a.mechanism, server);
        push.connect(&ep).unwrap_or_else(|e| crate::die(1, e));
        push.send_blocking(hello.clone())
            .unwrap_or_else(|e| crate::die(1, e));
        if pull.recv_blocking().is_err() {
            eprintln!("zmtp bench: connection {done} never delivered");
            break;
        }
        push.close();
        done += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    extra_report(
        a,
        vec![
            ("received", done as f64),
            ("handshakes_per_sec", done as f64 / secs),
        ],
    )
}

/// One context per side, each with --io-threads I/O threads, as libzmq's
/// local_thr and remote_thr run; over inproc, one context for the whole
/// process (inproc names belong to a context).
fn contexts(a: &Args) -> (Context, Context) {
    let ctx = || {
        Context::builder()
            .io_threads(a.io_threads)
            .busy_poll(Duration::from_micros(a.busy_poll_us))
            .build()
    };
    if a.transport == "inproc" {
        static SHARED: std::sync::OnceLock<Context> = std::sync::OnceLock::new();
        let c = SHARED.get_or_init(ctx).clone();
        return (c.clone(), c);
    }
    (ctx(), ctx())
}

/// RSS of this process with --count connected, idle PUSH sockets (both ends
/// in the process).
fn idle(a: &Args) -> Report {
    let base = status_kib("VmRSS:") as f64;
    let (sctx, cctx) = contexts(a);
    let pull = socket(&sctx, SocketType::Pull);
    let _ = pull.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)));
    let server = secure_server(&pull, &a.mechanism);
    let ep = bind_or_die(&pull, a);
    let hello = Bytes::from_static(b"hello");
    let mut clients = Vec::new();
    for _ in 0..a.count {
        let push = socket(&cctx, SocketType::Push);
        secure_client(&push, &a.mechanism, server);
        push.connect(&ep).unwrap_or_else(|e| crate::die(1, e));
        push.send_blocking(hello.clone())
            .unwrap_or_else(|e| crate::die(1, e));
        clients.push(push);
    }
    let mut n = 0u64;
    while n < a.count && pull.recv_blocking().is_ok() {
        n += 1;
    }
    let rss = status_kib("VmRSS:") as f64;
    extra_report(
        a,
        vec![
            ("received", n as f64),
            ("base_rss_kib", base),
            ("rss_kib", rss),
        ],
    )
}

/// The most idle peers one peer process opens (each is a socket and a
/// descriptor there; libzmq's take two, and 20,000 descriptors is a common
/// hard limit).
pub(crate) const PEERS_PER_PROCESS: u64 = 5_000;

/// One PULL over tcp accepting --count idle PUSH peers from other
/// processes: its RSS growth, the time until every peer's first message is
/// in, and the process's CPU over that time.
fn idle_remote(a: &Args) -> Report {
    if a.transport != "tcp" {
        bad("--pattern idle-remote runs over tcp");
    }
    let (sctx, _) = contexts(a);
    let pull = socket(&sctx, SocketType::Pull);
    // Generous: thousands of connects at once meet a full listen queue,
    // and a dropped SYN is retried after 1, 3, 7, 15, 31 s.
    let _ = pull.configure(|o| o.rcvtimeo = Some(Duration::from_secs(120)));
    let server = secure_server(&pull, &a.mechanism);
    let ep = bind_or_die(&pull, a);
    let base = status_kib("VmRSS:") as f64;
    let me = std::env::current_exe().unwrap_or_else(|e| crate::die(1, e));
    let cpu0 = process_cpu_ns();
    let t0 = Instant::now();
    let mut peers = Vec::new();
    let mut left = a.count;
    while left > 0 {
        let n = left.min(PEERS_PER_PROCESS);
        left -= n;
        let mut cmd = std::process::Command::new(&me);
        cmd.args(["bench", "--pattern", "idle-peers", "--connect", &ep])
            .args(["--count", &n.to_string(), "--mechanism", &a.mechanism]);
        if let Some(key) = server {
            cmd.args(["--server-key", &key.to_z85()]);
        }
        let child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| crate::die(1, format_args!("starting the peers: {e}")));
        peers.push(child);
    }
    let mut n = 0u64;
    while n < a.count {
        if let Err(e) = pull.recv_blocking() {
            // Why a run came up short, for whoever reads standard error.
            let exited: Vec<String> = peers
                .iter_mut()
                .filter_map(|p| Some(format!("{:?}", p.try_wait().ok()??)))
                .collect();
            eprintln!(
                "idle-remote: {n} of {} arrived ({e}); peer processes exited: {exited:?}",
                a.count
            );
            break;
        }
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_ns().saturating_sub(cpu0);
    let rss = status_kib("VmRSS:") as f64;
    for mut p in peers {
        // The end of its standard input tells a peer process to go.
        drop(p.stdin.take());
        let _ = p.wait();
    }
    extra_report(
        a,
        vec![
            ("received", n as f64),
            ("base_rss_kib", base),
            ("rss_kib", rss),
            ("accept_seconds", secs),
            ("cpu_us_per_conn", cpu as f64 / 1e3 / n.max(1) as f64),
        ],
    )
}

/// --count PUSH sockets connected to --connect, each sending one message;
/// they stay until standard input ends, then the process exits.
fn idle_peers(a: &Args) -> ! {
    let Some(ep) = &a.connect else {
        bad("--pattern idle-peers needs --connect");
    };
    let server = match (&a.server_key, a.mechanism.as_str()) {
        (Some(k), "curve") => {
            Some(zmtp_sockets::security::PublicKey::from_z85(k).unwrap_or_else(|e| bad(e)))
        }
        (None, "null") => None,
        (None, "curve") => bad("--mechanism curve needs --server-key"),
        _ => bad("--pattern idle-peers takes --mechanism null, or curve with --server-key"),
    };
    let (_, cctx) = contexts(a);
    let hello = Bytes::from_static(b"hello");
    let mut peers = Vec::new();
    for _ in 0..a.count {
        let push = socket(&cctx, SocketType::Push);
        secure_client(&push, &a.mechanism, server);
        push.connect(ep).unwrap_or_else(|e| crate::die(1, e));
        push.send_blocking(hello.clone())
            .unwrap_or_else(|e| crate::die(1, e));
        peers.push(push);
    }
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    crate::exit(0)
}

/// Peak RSS while a publisher sends --count messages as fast as it can to
/// one subscriber that reads one message per millisecond.
fn slow_subscriber(a: &Args) -> Report {
    let base = status_kib("VmRSS:") as f64;
    let (pctx, sctx) = contexts(a);
    let publisher = socket(&pctx, SocketType::Pub);
    let sub = socket(&sctx, SocketType::Sub);
    let server = secure_server(&publisher, &a.mechanism);
    secure_client(&sub, &a.mechanism, server);
    let _ = sub.subscribe("");
    let ep = bind_or_die(&publisher, a);
    sub.connect(&ep).unwrap_or_else(|e| crate::die(1, e));
    await_subscriptions(&publisher, 1);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let reader = std::thread::spawn(move || {
        let _ = sub.configure(|o| o.rcvtimeo = Some(Duration::from_millis(100)));
        let mut read = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if sub.recv_blocking().is_ok() {
                read += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        read
    });
    let payload = Payload::new(a);
    let t0 = Instant::now();
    for _ in 0..a.count {
        publisher
            .send_blocking(payload.get())
            .unwrap_or_else(|e| crate::die(1, e));
    }
    let secs = t0.elapsed().as_secs_f64();
    // Let queued data settle into buffers before reading the peak.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = status_kib("VmHWM:") as f64;
    let rss = status_kib("VmRSS:") as f64;
    let read = reader.join().unwrap_or(0);
    extra_report(
        a,
        vec![
            ("base_rss_kib", base),
            ("peak_rss_kib", peak),
            ("rss_kib", rss),
            ("publish_seconds", secs),
            ("read", read as f64),
        ],
    )
}

/// PUSH -> proxy -> PULL: the proxy (a PULL frontend and a PUSH backend)
/// runs on a context of its own, in a thread of its own, as a libzmq
/// `zmq_proxy` would.
fn proxy_throughput(a: &Args) -> Report {
    if a.mechanism != "null" {
        bad("--pattern proxy measures NULL");
    }
    let (recv_ctx, send_ctx) = contexts(a);
    let proxy_ctx = contexts(a).0;
    let receiver = socket(&recv_ctx, SocketType::Pull);
    let out_ep = bind_or_die(&receiver, a);
    let frontend = socket(&proxy_ctx, SocketType::Pull);
    let backend = socket(&proxy_ctx, SocketType::Push);
    let in_ep = bind_or_die(&frontend, a);
    backend
        .connect(&out_ep)
        .unwrap_or_else(|e| crate::die(1, e));
    let sender = socket(&send_ctx, SocketType::Push);
    sender.connect(&in_ep).unwrap_or_else(|e| crate::die(1, e));
    // The proxy runs until the process ends.
    std::thread::spawn(move || {
        let _ = zmtp_sockets::proxy_blocking(&frontend, &backend, None);
    });
    stream(a, &sender, receiver, None)
}

/// A pinned run's threads: the receiving thread's CPU, and each side's
/// I/O threads.
struct Pinned {
    receiver: usize,
    recv_io: Vec<i32>,
    send_io: Vec<i32>,
}

impl Pinned {
    /// The CPUs the threads last ran on, for the report: what the pinning
    /// did, which `zmtp bench`'s test checks.
    fn report(&self, receiver: usize, sender: usize) -> Vec<(&'static str, f64)> {
        let io = |tids: &[i32]| {
            tids.first()
                .and_then(|&t| pin::last_cpu(t))
                .map_or(-1.0, |c| c as f64)
        };
        vec![
            ("receiver_cpu", receiver as f64),
            ("sender_cpu", sender as f64),
            ("recv_io_cpu", io(&self.recv_io)),
            ("send_io_cpu", io(&self.send_io)),
        ]
    }
}

/// The two contexts of a pinned run, each one's I/O threads on their CPU,
/// this (the sending) thread pinned too.
fn pinned_contexts(a: &Args, placement: &str) -> (Context, Context, Option<Pinned>) {
    let placement = Placement::parse(placement).unwrap_or_else(|e| bad(e));
    let cpus = pin::two_cpus().unwrap_or_else(|e| crate::die(1, e));
    let (recv_io, send_io) = placement.io_cpus(cpus);
    let ctx = |cpu: usize| {
        let before = pin::threads_named(IO_THREAD_PREFIX);
        let c = Context::builder()
            .io_threads(a.io_threads)
            .busy_poll(Duration::from_micros(a.busy_poll_us))
            .build();
        let tids = pin::pin_new(IO_THREAD_PREFIX, &before, a.io_threads, cpu)
            .unwrap_or_else(|e| crate::die(1, e));
        (c, tids)
    };
    let ((r, recv_io), (s, send_io)) = (ctx(recv_io), ctx(send_io));
    pin::pin(None, cpus.sender).unwrap_or_else(|e| crate::die(1, e));
    let pinned = Pinned {
        receiver: cpus.receiver,
        recv_io,
        send_io,
    };
    (r, s, Some(pinned))
}

/// Sends --count messages of --size bytes from `sender` while a thread
/// receives them on `receiver`: the throughput report, with the sending
/// thread's CPU per send and the process's CPU per message received.
fn stream(a: &Args, sender: &Socket, receiver: Socket, pinned: Option<Pinned>) -> Report {
    let count = a.count;
    let process0 = process_cpu_ns();
    let batch = a.batch;
    let recv_cpu = pinned.as_ref().map(|p| p.receiver);
    let recv_thread = std::thread::spawn(move || {
        if let Some(cpu) = recv_cpu {
            pin::pin(None, cpu).unwrap_or_else(|e| crate::die(1, e));
        }
        let r = if batch > 1 {
            timed_receive_batched(&receiver, count, batch)
        } else {
            timed_receive(&receiver, count)
        };
        (r, rustix::thread::sched_getcpu())
    });
    let payload = Payload::new(a);
    let cpu = if batch > 1 {
        payload.send_batched(sender, count, batch)
    } else {
        payload.send_all(sender, count)
    };
    let send_cpu = rustix::thread::sched_getcpu();
    let ((first, last, received), recv_cpu) = recv_thread
        .join()
        .unwrap_or_else(|_| crate::die(1, "receiver panicked"));
    let process = process_cpu_ns().saturating_sub(process0);
    if received < count {
        eprintln!("zmtp bench: only {received} of {count} messages arrived");
    }
    let mut extra = vec![
        ("received", received as f64),
        ("cpu_ns_per_msg", per_message(process, received)),
    ];
    if batch > 1 {
        extra.push(("batch", batch as f64));
    }
    if let Some(p) = &pinned {
        extra.extend(p.report(recv_cpu, send_cpu));
    }
    Report {
        send_cpu_ns_per_msg: cpu as f64 / count as f64,
        ..rate_report(a, first, last, received.saturating_sub(1), extra)
    }
}

/// Receives `count` messages (or until 10 s of silence) and returns the
/// clock at the first and the last, and how many arrived.
fn timed_receive(receiver: &Socket, count: u64) -> (Instant, Instant, u64) {
    timed(receiver, count, |_| receiver.recv_blocking().map(|_| 1))
}

/// [`timed_receive`] up to `batch` messages per call.
fn timed_receive_batched(receiver: &Socket, count: u64, batch: usize) -> (Instant, Instant, u64) {
    let mut got = Vec::with_capacity(batch);
    timed(receiver, count, |left| {
        let k = receiver.recv_many_blocking(&mut got, batch.min(left))?;
        got.clear();
        Ok(k)
    })
}

/// Receives with `next` (given how many are still to come, it returns how
/// many it took) until `count` are in or a receive fails (after 10 s of
/// silence).
fn timed(
    receiver: &Socket,
    count: u64,
    mut next: impl FnMut(usize) -> zmtp_sockets::Result<usize>,
) -> (Instant, Instant, u64) {
    let _ = receiver.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)));
    let mut first = None;
    let mut last = Instant::now();
    let mut n = 0u64;
    while n < count {
        let Ok(k) = next((count - n) as usize) else {
            break;
        };
        let before = n;
        n += k as u64;
        // The clock is read at the first and last message (and every 4,096
        // or so, in case some never arrive), not per message: reading it
        // costs as much as a small message.
        if before == 0 || n == count || before / 4096 != n / 4096 {
            last = Instant::now();
            first.get_or_insert(last);
        }
    }
    (first.unwrap_or(last), last, n)
}

/// --subscribers PUSH sockets (on the sending context, a thread each) into
/// one bound PULL: msg/s counts what the PULL receives.
fn fan_in(a: &Args) -> Report {
    if a.mechanism != "null" {
        bad("--pattern fan-in measures NULL");
    }
    let n = a.subscribers.max(1);
    let (recv_ctx, send_ctx) = contexts(a);
    let pull = socket(&recv_ctx, SocketType::Pull);
    let ep = bind_or_die(&pull, a);
    let per = (a.count / n as u64).max(1);
    let count = per * n as u64;
    let pushes = connected(&send_ctx, SocketType::Push, &ep, n);
    let process0 = process_cpu_ns();
    let recv_thread = std::thread::spawn(move || timed_receive(&pull, count));
    std::thread::scope(|scope| {
        for s in &pushes {
            // A body of its own per sender, as each libzmq sender has its
            // own buffer: one shared `Bytes` would make 32 threads fight
            // over its reference count (a third of the time in a profile).
            let payload = Payload::new(a);
            scope.spawn(move || {
                for _ in 0..per {
                    s.send_blocking(payload.get())
                        .unwrap_or_else(|e| crate::die(1, e));
                }
            });
        }
    });
    let (first, last, received) = recv_thread
        .join()
        .unwrap_or_else(|_| crate::die(1, "receiver panicked"));
    let process = process_cpu_ns().saturating_sub(process0);
    let timed = received.saturating_sub(1);
    peers_report(a, n, count, received, (first, last, timed), process)
}

/// The report of a workload spread over `peers` sockets: `timed`
/// messages between `first` and `last`, with the process CPU shared out
/// over the `received` ones.
fn peers_report(
    a: &Args,
    peers: usize,
    count: u64,
    received: u64,
    (first, last, timed): (Instant, Instant, u64),
    process: u64,
) -> Report {
    Report {
        count,
        ..rate_report(
            a,
            first,
            last,
            timed,
            vec![
                ("peers", peers as f64),
                ("received", received as f64),
                ("cpu_ns_per_msg", per_message(process, received)),
            ],
        )
    }
}

/// One bound PUSH dealing round-robin to --subscribers PULL sockets (on
/// the receiving context, a thread each): msg/s counts what they receive
/// together.
fn round_robin(a: &Args) -> Report {
    if a.mechanism != "null" {
        bad("--pattern round-robin measures NULL");
    }
    let n = a.subscribers.max(1);
    let (recv_ctx, send_ctx) = contexts(a);
    let push = socket(&send_ctx, SocketType::Push);
    let mon = push.monitor();
    let ep = bind_or_die(&push, a);
    let pulls: Vec<Socket> = (0..n)
        .map(|_| {
            let s = socket(&recv_ctx, SocketType::Pull);
            let _ = s.configure(|o| o.rcvtimeo = Some(Duration::from_millis(200)));
            s.connect(&ep).unwrap_or_else(|e| crate::die(1, e));
            s
        })
        .collect();
    // Every PULL is attached before the first message, so that all take
    // their turns from the start.
    for _ in 0..n {
        let ok = mon.wait_for_blocking(Duration::from_secs(30), |e| {
            matches!(e, MonitorEvent::HandshakeSucceeded { .. })
        });
        if ok.is_none() {
            crate::die(1, "a PULL never finished its handshake");
        }
    }
    let count = a.count;
    let total = crate::tally::Tally::default();
    let process0 = process_cpu_ns();
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for s in &pulls {
            let total = &total;
            scope.spawn(move || {
                total.receive(count, n, || s.recv_blocking().is_ok());
            });
        }
        let payload = Payload::new(a);
        for _ in 0..count {
            push.send_blocking(payload.get())
                .unwrap_or_else(|e| crate::die(1, e));
        }
    });
    let received = total.received();
    let process = process_cpu_ns().saturating_sub(process0);
    let end = total.last().unwrap_or(t0);
    peers_report(a, n, a.count, received, (t0, end, received), process)
}

/// One publisher (binding) and --subscribers subscribers on the other
/// context, unlimited queues; msg/s counts deliveries to all subscribers.
fn pub_sub(a: &Args) -> Report {
    let (pctx, sctx) = contexts(a);
    let unlimited = |s: &Socket| {
        let _ = s.configure(|o| {
            o.sndhwm = 0;
            o.rcvhwm = 0;
        });
    };
    let publisher = socket(&pctx, SocketType::Pub);
    unlimited(&publisher);
    let server = secure_server(&publisher, &a.mechanism);
    let ep = bind_or_die(&publisher, a);
    let n = a.subscribers.max(1);
    let subs: Vec<Socket> = (0..n)
        .map(|_| {
            let s = socket(&sctx, SocketType::Sub);
            unlimited(&s);
            secure_client(&s, &a.mechanism, server);
            let _ = s.subscribe("");
            s.connect(&ep).unwrap_or_else(|e| crate::die(1, e));
            s
        })
        .collect();
    await_subscriptions(&publisher, n);
    let count = a.count;
    let threads: Vec<_> = subs
        .into_iter()
        .map(|s| std::thread::spawn(move || timed_receive(&s, count)))
        .collect();
    let cpu = Payload::new(a).send_all(&publisher, count);
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| crate::die(1, "receiver panicked"))
        })
        .collect();
    let first = results
        .iter()
        .map(|r| r.0)
        .min()
        .unwrap_or_else(Instant::now);
    let last = results.iter().map(|r| r.1).max().unwrap_or(first);
    let received: u64 = results.iter().map(|r| r.2).sum();
    if received < count * n as u64 {
        eprintln!(
            "zmtp bench: only {received} of {} deliveries",
            count * n as u64
        );
    }
    Report {
        send_cpu_ns_per_msg: cpu as f64 / count as f64,
        ..rate_report(
            a,
            first,
            last,
            received.saturating_sub(n as u64),
            vec![("subscribers", n as f64), ("received", received as f64)],
        )
    }
}

/// The single-core rate of CURVE's seal (XSalsa20-Poly1305 of one MESSAGE)
/// on this thread, without sockets: the ceiling for CURVE throughput.
fn seal_rate(a: &Args) -> Report {
    if a.mechanism != "curve" {
        bad("--pattern seal measures --mechanism curve");
    }
    let (mut client, _) =
        zmtp_sockets::security::curve::cipher_pair().unwrap_or_else(|e| crate::die(1, e));
    let body = vec![0x5Au8; a.size];
    let mut out = bytes::BytesMut::with_capacity(a.size + 64);
    let t0 = Instant::now();
    for _ in 0..a.count {
        out.clear();
        client
            .seal(false, false, &body, &mut out)
            .unwrap_or_else(|e| crate::die(1, e));
        std::hint::black_box(&out);
    }
    let secs = t0.elapsed().as_secs_f64();
    Report {
        seconds: secs,
        msgs_per_sec: a.count as f64 / secs,
        mb_per_sec: (a.count as f64 * a.size as f64) / secs / 1e6,
        ..extra_report(a, Vec::new())
    }
}

/// Runs one benchmark.
pub(crate) fn measure(a: &Args) -> Report {
    if a.transport == "inproc" && a.mechanism != "null" {
        bad("inproc has no security mechanism: use --mechanism null");
    }
    if a.payload != "shared"
        && matches!(
            a.pattern.as_str(),
            "seal" | "handshake" | "idle" | "idle-remote" | "idle-peers"
        )
    {
        bad(format_args!(
            "--pattern {} sends no payload: --payload does not apply",
            a.pattern
        ));
    }
    if a.batch == 0 {
        bad("--batch must be at least 1");
    }
    if a.batch > 1 && !matches!(a.pattern.as_str(), "push-pull" | "dealer-router" | "proxy") {
        bad("--batch is for --pattern push-pull, dealer-router and proxy");
    }
    if a.pin.is_some() && (a.pattern != "push-pull" || a.transport == "inproc") {
        bad("--pin is for --pattern push-pull over tcp or ipc");
    }
    if a.pattern != "idle-peers" && (a.connect.is_some() || a.server_key.is_some()) {
        bad("--connect and --server-key are for --pattern idle-peers");
    }
    match a.pattern.as_str() {
        "idle-remote" => return idle_remote(a),
        "idle-peers" => idle_peers(a),
        "seal" => return seal_rate(a),
        "pub-sub" => return pub_sub(a),
        "fan-in" => return fan_in(a),
        "trickle" | "trickle-alone" => return trickle(a),
        "round-robin" => return round_robin(a),
        "handshake" => return handshakes(a),
        "proxy" => return proxy_throughput(a),
        "idle" => return idle(a),
        "slow-sub" => return slow_subscriber(a),
        _ => {}
    }
    // The receiving socket binds; round trips echo every message back.
    let (recv_type, send_type, round_trip) = match a.pattern.as_str() {
        "push-pull" => (SocketType::Pull, SocketType::Push, false),
        "req-rep" => (SocketType::Rep, SocketType::Req, true),
        "dealer-router" => (SocketType::Router, SocketType::Dealer, false),
        "router-echo" => (SocketType::Router, SocketType::Dealer, true),
        p => bad(format_args!("unknown pattern {p}")),
    };
    if a.count < 2 {
        bad("--count must be at least 2");
    }
    let (recv_ctx, send_ctx, pinned) = match &a.pin {
        Some(p) => pinned_contexts(a, p),
        None => {
            let (r, s) = contexts(a);
            (r, s, None)
        }
    };
    let receiver = recv_ctx
        .socket(recv_type)
        .unwrap_or_else(|e| crate::die(1, e));
    let sender = send_ctx
        .socket(send_type)
        .unwrap_or_else(|e| crate::die(1, e));
    for s in [&receiver, &sender] {
        let _ = s.configure(|o| o.linger = Some(Duration::ZERO));
    }
    let server = secure_server(&receiver, &a.mechanism);
    secure_client(&sender, &a.mechanism, server);
    let mon = sender.monitor();
    let ep = bind_or_die(&receiver, a);
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
    let payload = Payload::new(a);
    let count = a.count;

    if round_trip {
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
                .send_blocking(payload.get())
                .unwrap_or_else(|e| crate::die(1, e));
            sender.recv_blocking().unwrap_or_else(|e| crate::die(1, e));
            rtts.push(t.elapsed());
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = thread_cpu_ns().saturating_sub(cpu0);
        let _ = echo.join();
        let (p50, p99) = percentiles(&mut rtts);
        return Report {
            pattern: a.pattern.clone(),
            mechanism: a.mechanism.clone(),
            transport: a.transport.clone(),
            payload: a.payload.clone(),
            size: a.size,
            count,
            seconds: secs,
            msgs_per_sec: count as f64 / secs,
            mb_per_sec: (count as f64 * a.size as f64) / secs / 1e6,
            send_cpu_ns_per_msg: cpu as f64 / count as f64,
            p50_us: Some(p50),
            p99_us: Some(p99),
            extra: Vec::new(),
        };
    }

    stream(a, &sender, receiver, pinned)
}

/// Many quiet peers and one that asks: --subscribers PUSH sockets (1,000
/// in `bench/run`), driven by four threads, each send a steady trickle
/// (TRICKLE_RATE messages a second each) into one PULL, --count messages
/// in all, while one REQ makes round trips to a REP beside the PULL (not
/// for `trickle-alone`). The PULL's msg/s and the process's CPU per
/// message, and the round trip's p50 and p99 under that load.
fn trickle(a: &Args) -> Report {
    let peers = a.subscribers.max(1);
    let (recv_ctx, send_ctx) = contexts(a);
    let pull = socket(&recv_ctx, SocketType::Pull);
    let ep = bind_or_die(&pull, a);
    let pushes = connected(&send_ctx, SocketType::Push, &ep, peers);
    let pair = (a.pattern == "trickle").then(|| round_trip_pair(a, &recv_ctx, &send_ctx));
    let per = (a.count / peers as u64).max(1);
    let count = per * peers as u64;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let process0 = process_cpu_ns();
    let recv_thread = std::thread::spawn(move || timed_receive(&pull, count));
    let round_trips = pair.map(|(rep, req)| RoundTrips::start(rep, req, &stop));
    // Four threads share the peers; each sends one message per peer per
    // round, rounds paced so that every peer sends TRICKLE_RATE a second.
    let payload = Payload::new(a);
    std::thread::scope(|scope| {
        for chunk in pushes.chunks(peers.div_ceil(4)) {
            let payload = payload.clone();
            scope.spawn(move || {
                let interval = Duration::from_secs_f64(1.0 / TRICKLE_RATE);
                let mut next = Instant::now();
                for _ in 0..per {
                    for s in chunk {
                        s.send_blocking(payload.get())
                            .unwrap_or_else(|e| crate::die(1, e));
                    }
                    next += interval;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            });
        }
    });
    let (first, last, received) = recv_thread
        .join()
        .unwrap_or_else(|_| crate::die(1, "receiver panicked"));
    let process = process_cpu_ns().saturating_sub(process0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rtts = round_trips.map(RoundTrips::join);
    let (p50, p99) = rtts.as_deref_mut().map(percentiles).unzip();
    Report {
        p50_us: p50,
        p99_us: p99,
        ..rate_report(
            a,
            first,
            last,
            received.saturating_sub(1),
            vec![
                ("received", received as f64),
                ("cpu_ns_per_msg", per_message(process, received)),
                ("round_trips", rtts.map_or(0, |r| r.len()) as f64),
            ],
        )
    }
}

/// The REP (bound on the receiving context) and the REQ (connected from
/// the sending one) of the round trips beside the trickle.
fn round_trip_pair(a: &Args, recv_ctx: &Context, send_ctx: &Context) -> (Socket, Socket) {
    let rep = socket(recv_ctx, SocketType::Rep);
    let rep_ep = bind_or_die(&rep, a);
    let req = socket(send_ctx, SocketType::Req);
    req.connect(&rep_ep).unwrap_or_else(|e| crate::die(1, e));
    let _ = req.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)));
    let _ = rep.configure(|o| o.rcvtimeo = Some(Duration::from_millis(100)));
    (rep, req)
}

/// The round trips beside the trickle, until `stop`: the REP echoes, the
/// REQ asks as fast as it can.
struct RoundTrips {
    echo: std::thread::JoinHandle<()>,
    asker: std::thread::JoinHandle<Vec<Duration>>,
}

impl RoundTrips {
    fn start(rep: Socket, req: Socket, stop: &Arc<std::sync::atomic::AtomicBool>) -> RoundTrips {
        let stop2 = stop.clone();
        let echo = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = rep.recv_blocking()
                    && rep.send_blocking(m).is_err()
                {
                    break;
                }
            }
        });
        let stop3 = stop.clone();
        let asker = std::thread::spawn(move || {
            let mut rtts = Vec::new();
            let body = Bytes::from_static(b"ping");
            while !stop3.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                if req.send_blocking(body.clone()).is_err() || req.recv_blocking().is_err() {
                    break;
                }
                rtts.push(t.elapsed());
            }
            rtts
        });
        RoundTrips { echo, asker }
    }

    /// Each round trip's time.
    fn join(self) -> Vec<Duration> {
        let rtts = self.asker.join().unwrap_or_default();
        let _ = self.echo.join();
        rtts
    }
}

/// Messages a second each trickling peer sends.
const TRICKLE_RATE: f64 = 50.0;

/// The p50 and p99 of round-trip times, in µs (0 for none).
fn percentiles(rtts: &mut [Duration]) -> (f64, f64) {
    rtts.sort();
    let pct = |p: f64| {
        rtts.get(((rtts.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    (pct(0.50), pct(0.99))
}

/// Process CPU per message received, in ns.
fn per_message(cpu_ns: u64, received: u64) -> f64 {
    (cpu_ns as f64 / received.max(1) as f64 * 10.0).round() / 10.0
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

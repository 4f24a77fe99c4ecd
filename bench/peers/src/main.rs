//! `rust-peers <zeromq|rzmq|omq> <pattern> <mechanism> <transport> <size> <count> [subscribers]`
//!
//! The workloads of `zmtp bench` on the other Rust ZeroMQ stacks, so that
//! `zmtp-compare` can run every implementation the same way. Each side (the
//! binding side and the connecting side) has its own context and its own
//! single-worker tokio runtime, as `zmtp bench` gives each side one context
//! with one I/O thread. Prints one JSON line like `zmtp bench --json`, or
//! `{"unsupported": true}` (exit 3) for a mechanism or transport the stack
//! does not have.
//!
//! Patterns: push-pull, pub-sub, req-rep (as in `zmtp bench`), handshake
//! (connections per second: connect, one message, close), idle (RSS with
//! `count` connected, idle PUSH sockets) and slow-sub (peak RSS while a
//! publisher sends `count` messages to a subscriber that reads one per ms).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};
use zeromq::Socket as _;

use bytes::Bytes;

#[path = "../../../zmtp-cli/src/probe.rs"]
mod probe;
use probe::{process_cpu_ns, status_kib, thread_cpu_ns};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Ty {
    Push,
    Pull,
    Pub,
    Sub,
    Req,
    Rep,
    Dealer,
    Router,
}

/// Keys shared by both sides of one run.
#[derive(Clone)]
struct Keys {
    server_public: [u8; 32],
    server_secret: [u8; 32],
    client_public: [u8; 32],
    client_secret: [u8; 32],
}

impl Keys {
    fn new() -> Self {
        let s = omq_tokio::CurveKeypair::generate();
        let c = omq_tokio::CurveKeypair::generate();
        Keys {
            server_public: s.public.0,
            server_secret: s.secret.0,
            client_public: c.public.0,
            client_secret: c.secret.0,
        }
    }
}

enum Z {
    Push(zeromq::PushSocket),
    Pull(zeromq::PullSocket),
    Pub(zeromq::PubSocket),
    Sub(zeromq::SubSocket),
    Req(zeromq::ReqSocket),
    Rep(zeromq::RepSocket),
    Dealer(zeromq::DealerSocket),
    Router(zeromq::RouterSocket),
}

/// Evaluates `$body` with `$s` bound to whichever zeromq socket `$z` holds.
macro_rules! each_z {
    ($z:expr, $s:ident => $body:expr) => {
        match $z {
            Z::Push($s) => $body,
            Z::Pull($s) => $body,
            Z::Pub($s) => $body,
            Z::Sub($s) => $body,
            Z::Req($s) => $body,
            Z::Rep($s) => $body,
            Z::Dealer($s) => $body,
            Z::Router($s) => $body,
        }
    };
}

enum Sock {
    Zmq(Z),
    /// An rzmq socket, and whether it receives whole multipart messages
    /// (its `recv` gives one frame at a time).
    Rzmq(rzmq::Socket, bool),
    Omq(omq_tokio::Socket),
}

/// One side: one context of the stack under test.
enum Side {
    Zmq,
    Rzmq(rzmq::Context),
    Omq(omq_tokio::Context),
}

fn unsupported() -> ! {
    println!("{{\"unsupported\": true}}");
    std::process::exit(3)
}

impl Side {
    fn new(imp: &str) -> Side {
        match imp {
            "zeromq" => Side::Zmq,
            "rzmq" => Side::Rzmq(rzmq::Context::new().unwrap()),
            "omq" => Side::Omq(omq_tokio::Context::new()),
            _ => panic!("unknown implementation {imp}"),
        }
    }

    /// A socket with the mechanism; `server` picks the mechanism role.
    async fn socket(&self, ty: Ty, mech: &str, server: bool, keys: &Keys) -> Sock {
        match self {
            Side::Zmq => {
                if mech != "null" {
                    unsupported();
                }
                Sock::Zmq(match ty {
                    Ty::Push => Z::Push(zeromq::PushSocket::new()),
                    Ty::Pull => Z::Pull(zeromq::PullSocket::new()),
                    Ty::Pub => Z::Pub(zeromq::PubSocket::new()),
                    Ty::Sub => Z::Sub(zeromq::SubSocket::new()),
                    Ty::Req => Z::Req(zeromq::ReqSocket::new()),
                    Ty::Rep => Z::Rep(zeromq::RepSocket::new()),
                    Ty::Dealer => Z::Dealer(zeromq::DealerSocket::new()),
                    Ty::Router => Z::Router(zeromq::RouterSocket::new()),
                })
            }
            Side::Rzmq(ctx) => {
                use rzmq::socket::options::*;
                let t = match ty {
                    Ty::Push => rzmq::SocketType::Push,
                    Ty::Pull => rzmq::SocketType::Pull,
                    Ty::Pub => rzmq::SocketType::Pub,
                    Ty::Sub => rzmq::SocketType::Sub,
                    Ty::Req => rzmq::SocketType::Req,
                    Ty::Rep => rzmq::SocketType::Rep,
                    Ty::Dealer => rzmq::SocketType::Dealer,
                    Ty::Router => rzmq::SocketType::Router,
                };
                let s = ctx.socket(t).unwrap();
                match (mech, server) {
                    ("null", _) => {}
                    ("curve", true) => {
                        s.set_option(CURVE_SERVER, true).await.unwrap();
                        s.set_option_raw(CURVE_SECRET_KEY, &keys.server_secret)
                            .await
                            .unwrap();
                    }
                    ("curve", false) => {
                        s.set_option_raw(CURVE_SECRET_KEY, &keys.client_secret)
                            .await
                            .unwrap();
                        s.set_option_raw(CURVE_PUBLIC_KEY, &keys.client_public)
                            .await
                            .unwrap();
                        s.set_option_raw(CURVE_SERVER_KEY, &keys.server_public)
                            .await
                            .unwrap();
                    }
                    ("noise-xx", _) => {
                        s.set_option_raw(NOISE_XX_ENABLED, &1i32.to_ne_bytes())
                            .await
                            .unwrap();
                        let secret = if server {
                            keys.server_secret
                        } else {
                            keys.client_secret
                        };
                        s.set_option_raw(NOISE_XX_STATIC_SECRET_KEY, &secret)
                            .await
                            .unwrap();
                        if !server {
                            s.set_option_raw(
                                NOISE_XX_REMOTE_STATIC_PUBLIC_KEY,
                                &keys.server_public,
                            )
                            .await
                            .unwrap();
                        }
                    }
                    _ => unsupported(),
                }
                if UNLIMITED.load(Ordering::Relaxed) {
                    // A large bound: rzmq may not read 0 as "no limit".
                    s.set_option_raw(SNDHWM, &10_000_000i32.to_ne_bytes())
                        .await
                        .unwrap();
                    s.set_option_raw(RCVHWM, &10_000_000i32.to_ne_bytes())
                        .await
                        .unwrap();
                }
                Sock::Rzmq(s, ty == Ty::Router)
            }
            Side::Omq(ctx) => {
                let t = match ty {
                    Ty::Push => omq_tokio::SocketType::Push,
                    Ty::Pull => omq_tokio::SocketType::Pull,
                    Ty::Pub => omq_tokio::SocketType::Pub,
                    Ty::Sub => omq_tokio::SocketType::Sub,
                    Ty::Req => omq_tokio::SocketType::Req,
                    Ty::Rep => omq_tokio::SocketType::Rep,
                    // Its ROUTER is driven through another API; not here.
                    Ty::Dealer | Ty::Router => unsupported(),
                };
                let mut o = omq_tokio::Options::default();
                if UNLIMITED.load(Ordering::Relaxed) {
                    // As large as it allows: the others run PUB/SUB unlimited.
                    o = o.send_hwm(u32::MAX).recv_hwm(u32::MAX);
                }
                match (mech, server) {
                    ("null", _) => {}
                    ("curve", true) => {
                        o = o.curve_server(omq_tokio::CurveKeypair {
                            public: omq_tokio::CurvePublicKey(keys.server_public),
                            secret: omq_tokio::CurveSecretKey(keys.server_secret),
                        })
                    }
                    ("curve", false) => {
                        o = o.curve_client(
                            omq_tokio::CurveKeypair {
                                public: omq_tokio::CurvePublicKey(keys.client_public),
                                secret: omq_tokio::CurveSecretKey(keys.client_secret),
                            },
                            omq_tokio::CurvePublicKey(keys.server_public),
                        )
                    }
                    _ => unsupported(),
                }
                Sock::Omq(ctx.socket(t, o))
            }
        }
    }
}

impl Sock {
    async fn bind(&mut self, ep: &str) {
        match self {
            Sock::Zmq(z) => {
                use zeromq::Socket;
                each_z!(z, s => s.bind(ep).await).unwrap();
            }
            Sock::Rzmq(s, _) => s.bind(ep).await.unwrap(),
            Sock::Omq(s) => {
                s.bind(ep).await.unwrap();
            }
        }
    }

    async fn connect(&mut self, ep: &str) {
        match self {
            Sock::Zmq(z) => {
                use zeromq::Socket;
                each_z!(z, s => s.connect(ep).await).unwrap();
            }
            Sock::Rzmq(s, _) => s.connect(ep).await.unwrap(),
            Sock::Omq(s) => {
                s.connect(ep).await.unwrap();
            }
        }
    }

    async fn subscribe(&mut self) {
        match self {
            Sock::Zmq(Z::Sub(s)) => s.subscribe("").await.unwrap(),
            Sock::Rzmq(s, _) => s
                .set_option_raw(rzmq::socket::options::SUBSCRIBE, b"")
                .await
                .unwrap(),
            Sock::Omq(s) => s.subscribe(Bytes::new()).await.unwrap(),
            Sock::Zmq(_) => panic!("not a SUB socket"),
        }
    }

    async fn send(&mut self, m: &Bytes) {
        match self {
            Sock::Zmq(z) => {
                use zeromq::SocketSend;
                let msg = zeromq::ZmqMessage::from(m.clone());
                let r = match z {
                    Z::Push(s) => s.send(msg).await,
                    Z::Pub(s) => s.send(msg).await,
                    Z::Req(s) => s.send(msg).await,
                    Z::Rep(s) => s.send(msg).await,
                    Z::Dealer(s) => s.send(msg).await,
                    _ => panic!("cannot send"),
                };
                r.unwrap();
            }
            Sock::Rzmq(s, _) => s.send(rzmq::Msg::from_vec(m.to_vec())).await.unwrap(),
            Sock::Omq(s) => s.send(omq_tokio::Message::single(m.clone())).await.unwrap(),
        }
    }

    /// One message, or None after SILENCE_MS of silence or an error. Only with
    /// `keep` is the body returned (copied where the stack needs a copy).
    async fn recv_keep(&mut self, keep: bool) -> Option<Bytes> {
        let fut = async {
            match self {
                Sock::Zmq(z) => {
                    use zeromq::SocketRecv;
                    let r = match z {
                        Z::Pull(s) => s.recv().await,
                        Z::Sub(s) => s.recv().await,
                        Z::Req(s) => s.recv().await,
                        Z::Rep(s) => s.recv().await,
                        Z::Dealer(s) => s.recv().await,
                        Z::Router(s) => s.recv().await,
                        _ => panic!("cannot receive"),
                    };
                    r.ok().map(|m| {
                        if keep {
                            m.get(0).cloned().unwrap_or_default()
                        } else {
                            Bytes::new()
                        }
                    })
                }
                Sock::Rzmq(s, true) => s.recv_multipart().await.ok().map(|_| Bytes::new()),
                Sock::Rzmq(s, false) => s.recv().await.ok().map(|m| {
                    if keep {
                        Bytes::copy_from_slice(m.data().unwrap_or(&[]))
                    } else {
                        Bytes::new()
                    }
                }),
                Sock::Omq(s) => s.recv().await.ok().map(|m| {
                    if keep {
                        m.part_bytes(0).unwrap_or_default()
                    } else {
                        Bytes::new()
                    }
                }),
            }
        };
        tokio::time::timeout(
            Duration::from_millis(SILENCE_MS.load(Ordering::Relaxed)),
            fut,
        )
        .await
        .ok()
        .flatten()
    }

    async fn recv(&mut self) -> Option<Bytes> {
        self.recv_keep(false).await
    }

    async fn close(self) {
        match self {
            Sock::Zmq(z) => {
                use zeromq::Socket;
                each_z!(z, s => drop(s.close().await))
            }
            Sock::Rzmq(s, _) => drop(s.close().await),
            Sock::Omq(s) => drop(s.close().await),
        }
    }
}

/// How long a receiver waits for the next message before giving up: 10 s,
/// but 2 s for PUB/SUB, where a stack that drops at its high-water mark
/// would otherwise add the wait to every run.
static SILENCE_MS: AtomicU64 = AtomicU64::new(10_000);
/// PUB/SUB throughput runs with unlimited queues where the stack has them,
/// as `zmtp bench` and libzmq's do; every other pattern keeps the defaults.
static UNLIMITED: AtomicBool = AtomicBool::new(false);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Receives until `count` messages or silence; returns (first, last, n).
async fn timed_receive(s: &mut Sock, count: u64) -> (Instant, Instant, u64) {
    let mut first = None;
    let mut last = Instant::now();
    let mut n = 0u64;
    while n < count {
        if s.recv().await.is_none() {
            eprintln!("only {n} of {count} messages arrived");
            break;
        }
        // The same clock reads as `zmtp bench`: first, last, every 4096th.
        if n == 0 || n + 1 == count || n % 4096 == 0 {
            last = Instant::now();
            first.get_or_insert(last);
        }
        n += 1;
    }
    (first.unwrap_or(last), last, n)
}

struct Run {
    imp: String,
    pattern: String,
    mech: String,
    ep: String,
    size: usize,
    count: u64,
    subs: usize,
    keys: Keys,
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_owned());
    let transport = arg(4, "tcp");
    let ep = match transport.as_str() {
        "tcp" => format!("tcp://127.0.0.1:{}", free_port()),
        "ipc" => format!(
            "ipc://{}/rust-peers-{}.sock",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        _ => unsupported(),
    };
    let run = Run {
        imp: arg(1, "zeromq"),
        pattern: arg(2, "push-pull"),
        mech: arg(3, "null"),
        ep,
        size: arg(5, "16").parse().unwrap(),
        count: arg(6, "100000").parse().unwrap(),
        subs: arg(7, "1").parse().unwrap(),
        keys: Keys::new(),
    };
    let fields = match run.pattern.as_str() {
        "push-pull" => throughput(&run),
        "pub-sub" => {
            SILENCE_MS.store(2_000, Ordering::Relaxed);
            UNLIMITED.store(true, Ordering::Relaxed);
            throughput(&run)
        }
        "req-rep" => req_rep(&run),
        "handshake" => handshake(&run),
        "idle" => idle(&run),
        "slow-sub" => slow_sub(&run),
        "dealer-router" => throughput(&run),
        "router-echo" => router_echo(&run),
        // The proxy, fan-in and round-robin are compared with libzmq only.
        "proxy" | "fan-in" | "round-robin" => unsupported(),
        p => panic!("unknown pattern {p}"),
    };
    println!(
        "{{\"impl\": \"{}\", \"pattern\": \"{}\", \"mechanism\": \"{}\", \"size\": {}, \"count\": {}, {fields}}}",
        run.imp, run.pattern, run.mech, run.size, run.count
    );
    if transport == "ipc" {
        let _ = std::fs::remove_file(run.ep.trim_start_matches("ipc://"));
    }
    // Some stacks' background tasks outlive their sockets: exit now.
    std::process::exit(0);
}

/// Publishes probes (from the publisher's runtime) until `sub` gets one
/// (on its own runtime): its subscription is in effect.
fn await_subscription(
    rt_pub: &tokio::runtime::Runtime,
    publisher: &mut Sock,
    rt_sub: &tokio::runtime::Runtime,
    sub: &mut Sock,
) {
    let probe = Bytes::from_static(b"probe");
    loop {
        rt_pub.block_on(publisher.send(&probe));
        let got = rt_sub.block_on(async {
            tokio::time::timeout(Duration::from_millis(20), sub.recv())
                .await
                .ok()
                .flatten()
        });
        if got.is_some() {
            return;
        }
    }
}

/// PUSH/PULL, or PUB/SUB with `subs` subscribers on the receiving side.
fn throughput(r: &Run) -> String {
    let pubsub = r.pattern == "pub-sub";
    let (rt_recv, rt_send) = (rt(), rt());
    let (recv_side, send_side) = (Side::new(&r.imp), Side::new(&r.imp));
    let payload = Bytes::from(vec![0x5Au8; r.size]);
    // The sender binds for PUB/SUB (as a publisher does), the receiver for PUSH/PULL.
    let dealer = r.pattern == "dealer-router";
    let (send_ty, recv_ty) = match (pubsub, dealer) {
        (true, _) => (Ty::Pub, Ty::Sub),
        (_, true) => (Ty::Dealer, Ty::Router),
        _ => (Ty::Push, Ty::Pull),
    };
    let mut sender = rt_send.block_on(send_side.socket(send_ty, &r.mech, pubsub, &r.keys));
    let mut receivers = Vec::new();
    if pubsub {
        rt_send.block_on(sender.bind(&r.ep));
        for _ in 0..r.subs {
            let mut s = rt_recv.block_on(recv_side.socket(Ty::Sub, &r.mech, false, &r.keys));
            rt_recv.block_on(async {
                s.subscribe().await;
                s.connect(&r.ep).await;
            });
            receivers.push(s);
        }
        for s in receivers.iter_mut() {
            await_subscription(&rt_send, &mut sender, &rt_recv, s);
        }
        // Drain leftover probes.
        for s in receivers.iter_mut() {
            rt_recv.block_on(async {
                while tokio::time::timeout(Duration::from_millis(50), s.recv())
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {}
            });
        }
    } else {
        let mut s = rt_recv.block_on(recv_side.socket(recv_ty, &r.mech, true, &r.keys));
        rt_recv.block_on(s.bind(&r.ep));
        rt_send.block_on(sender.connect(&r.ep));
        receivers.push(s);
    }
    let count = r.count;
    let handles: Vec<_> = receivers
        .into_iter()
        .map(|mut s| rt_recv.spawn(async move { timed_receive(&mut s, count).await }))
        .collect();
    let process0 = process_cpu_ns();
    let cpu0 = thread_cpu_ns();
    rt_send.block_on(async {
        for _ in 0..count {
            sender.send(&payload).await;
        }
    });
    let cpu = thread_cpu_ns() - cpu0;
    let results: Vec<_> = rt_recv.block_on(async {
        let mut v = Vec::new();
        for h in handles {
            v.push(h.await.unwrap());
        }
        v
    });
    let first = results.iter().map(|x| x.0).min().unwrap();
    let last = results.iter().map(|x| x.1).max().unwrap();
    let got: u64 = results.iter().map(|x| x.2).sum();
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = got.saturating_sub(results.len() as u64) as f64;
    let process = process_cpu_ns().saturating_sub(process0);
    std::mem::forget((sender, rt_send, rt_recv, recv_side, send_side));
    format!(
        "\"received\": {got}, \"msgs_per_sec\": {:.1}, \"mb_per_sec\": {:.3}, \"send_cpu_ns_per_msg\": {:.1}, \"cpu_ns_per_msg\": {:.1}",
        timed / secs,
        timed * r.size as f64 / secs / 1e6,
        cpu as f64 / count as f64,
        process as f64 / got.max(1) as f64
    )
}

fn req_rep(r: &Run) -> String {
    let (rt_rep, rt_req) = (rt(), rt());
    let (rep_side, req_side) = (Side::new(&r.imp), Side::new(&r.imp));
    let mut rep = rt_rep.block_on(rep_side.socket(Ty::Rep, &r.mech, true, &r.keys));
    rt_rep.block_on(rep.bind(&r.ep));
    let count = r.count;
    let echo = rt_rep.spawn(async move {
        for _ in 0..count {
            let Some(m) = rep.recv_keep(true).await else {
                return;
            };
            rep.send(&m).await;
        }
    });
    let mut req = rt_req.block_on(req_side.socket(Ty::Req, &r.mech, false, &r.keys));
    rt_req.block_on(req.connect(&r.ep));
    let out = round_trips(&rt_req, &mut req, r.size, count);
    drop(echo);
    std::mem::forget((req, rt_req, rt_rep, rep_side, req_side));
    out
}

/// `count` round trips of `size`-byte messages from `client`; the p50 and
/// p99 fields.
fn round_trips(rt: &tokio::runtime::Runtime, client: &mut Sock, size: usize, count: u64) -> String {
    let payload = Bytes::from(vec![0x5Au8; size]);
    let mut rtts = Vec::with_capacity(count as usize);
    rt.block_on(async {
        for _ in 0..count {
            let t = Instant::now();
            client.send(&payload).await;
            if client.recv().await.is_none() {
                eprintln!("reply missing");
                std::process::exit(1);
            }
            rtts.push(t.elapsed());
        }
    });
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6;
    format!("\"p50_us\": {:.2}, \"p99_us\": {:.2}", pct(0.5), pct(0.99))
}

/// Round trips from a DEALER through a ROUTER that sends each message back
/// whole (its routing id first): zmq.rs only, whose ROUTER takes the id
/// from the first frame as libzmq's does.
fn router_echo(r: &Run) -> String {
    if r.imp != "zeromq" {
        unsupported();
    }
    let (rt_router, rt_dealer) = (rt(), rt());
    let (router_side, dealer_side) = (Side::new(&r.imp), Side::new(&r.imp));
    let Sock::Zmq(Z::Router(mut router)) =
        rt_router.block_on(router_side.socket(Ty::Router, &r.mech, true, &r.keys))
    else {
        unsupported()
    };
    rt_router.block_on(async {
        use zeromq::Socket;
        router.bind(&r.ep).await.unwrap();
    });
    let count = r.count;
    let echo = rt_router.spawn(async move {
        use zeromq::{SocketRecv, SocketSend};
        for _ in 0..count {
            let Ok(m) = router.recv().await else {
                return;
            };
            if router.send(m).await.is_err() {
                return;
            }
        }
    });
    let mut dealer = rt_dealer.block_on(dealer_side.socket(Ty::Dealer, &r.mech, false, &r.keys));
    rt_dealer.block_on(dealer.connect(&r.ep));
    let out = round_trips(&rt_dealer, &mut dealer, r.size, count);
    drop(echo);
    std::mem::forget((dealer, rt_dealer, rt_router, router_side, dealer_side));
    out
}

/// Sequential connections: connect, one message received by the server, close.
fn handshake(r: &Run) -> String {
    let (rt_srv, rt_cli) = (rt(), rt());
    let (srv_side, cli_side) = (Side::new(&r.imp), Side::new(&r.imp));
    let mut pull = rt_srv.block_on(srv_side.socket(Ty::Pull, &r.mech, true, &r.keys));
    rt_srv.block_on(pull.bind(&r.ep));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let count = r.count;
    rt_srv.spawn(async move {
        for _ in 0..count {
            if pull.recv().await.is_none() {
                return;
            }
            let _ = tx.send(());
        }
    });
    let m = Bytes::from_static(b"hello");
    let t0 = Instant::now();
    let done = rt_cli.block_on(async {
        for i in 0..count {
            let mut s = cli_side.socket(Ty::Push, &r.mech, false, &r.keys).await;
            s.connect(&r.ep).await;
            s.send(&m).await;
            if tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .ok()
                .flatten()
                .is_none()
            {
                return i;
            }
            s.close().await;
        }
        count
    });
    let secs = t0.elapsed().as_secs_f64();
    std::mem::forget((rt_srv, rt_cli, srv_side, cli_side));
    format!(
        "\"received\": {done}, \"handshakes_per_sec\": {:.1}",
        done as f64 / secs
    )
}

/// RSS of this process with `count` connected, idle PUSH sockets (both ends
/// in the process).
fn idle(r: &Run) -> String {
    let (rt_srv, rt_cli) = (rt(), rt());
    let (srv_side, cli_side) = (Side::new(&r.imp), Side::new(&r.imp));
    let base = status_kib("VmRSS:");
    let mut pull = rt_srv.block_on(srv_side.socket(Ty::Pull, &r.mech, true, &r.keys));
    rt_srv.block_on(pull.bind(&r.ep));
    let count = r.count;
    let srv = rt_srv.spawn(async move {
        let mut n = 0;
        while n < count && pull.recv().await.is_some() {
            n += 1;
        }
        (n, pull)
    });
    let m = Bytes::from_static(b"hello");
    let mut clients = Vec::new();
    rt_cli.block_on(async {
        for _ in 0..count {
            let mut s = cli_side.socket(Ty::Push, &r.mech, false, &r.keys).await;
            s.connect(&r.ep).await;
            s.send(&m).await;
            clients.push(s);
        }
    });
    let (n, pull) = rt_srv.block_on(srv).unwrap();
    let rss = status_kib("VmRSS:");
    std::mem::forget((pull, clients, rt_srv, rt_cli, srv_side, cli_side));
    format!("\"received\": {n}, \"base_rss_kib\": {base}, \"rss_kib\": {rss}")
}

/// Peak RSS while a publisher sends `count` messages as fast as it can to one
/// subscriber that reads one message per millisecond.
fn slow_sub(r: &Run) -> String {
    let (rt_pub, rt_sub) = (rt(), rt());
    let (pub_side, sub_side) = (Side::new(&r.imp), Side::new(&r.imp));
    let base = status_kib("VmRSS:");
    let mut publisher = rt_pub.block_on(pub_side.socket(Ty::Pub, &r.mech, true, &r.keys));
    rt_pub.block_on(publisher.bind(&r.ep));
    let mut sub = rt_sub.block_on(sub_side.socket(Ty::Sub, &r.mech, false, &r.keys));
    rt_sub.block_on(async {
        sub.subscribe().await;
        sub.connect(&r.ep).await;
    });
    await_subscription(&rt_pub, &mut publisher, &rt_sub, &mut sub);
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let (stop2, read2) = (stop.clone(), read.clone());
    rt_sub.spawn(async move {
        while !stop2.load(Ordering::Relaxed) {
            if tokio::time::timeout(Duration::from_millis(100), sub.recv())
                .await
                .ok()
                .flatten()
                .is_some()
            {
                read2.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let payload = Bytes::from(vec![0x5Au8; r.size]);
    let t0 = Instant::now();
    rt_pub.block_on(async {
        for _ in 0..r.count {
            publisher.send(&payload).await;
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    // Let queued data settle into buffers before reading the peak.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let peak = status_kib("VmHWM:");
    let rss = status_kib("VmRSS:");
    std::mem::forget((publisher, rt_pub, rt_sub, pub_side, sub_side));
    format!(
        "\"base_rss_kib\": {base}, \"peak_rss_kib\": {peak}, \"rss_kib\": {rss}, \"publish_seconds\": {secs:.3}, \"read\": {}",
        read.load(Ordering::Relaxed)
    )
}

//! Helpers for the interop tests against real libzmq (through the `zmq`
//! crate, linked to the system's libzmq; see `.cargo/config.toml`).
//!
//! Every helper fails loudly: a missing libzmq is a link error, and a
//! libzmq without CURVE fails [`require_libzmq`].
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zmtp_sockets::security::{KeyPair, PlainCredentials, PublicKeyAllowList};
use zmtp_sockets::{Context, Message, MonitorEvent, Security, Socket, SocketType};

#[path = "../../zmtp-sockets/tests/common/ports.rs"]
mod ports;
pub use ports::quiet_tcp_endpoint;

/// The routing ids of the two sides' DEALER and ROUTER sockets.
pub const OUR_ID: &[u8] = b"OURS";
pub const THEIR_ID: &[u8] = b"THEIRS";

/// Generous, for a loaded machine.
pub const TIMEOUT: Duration = Duration::from_secs(20);
const TIMEOUT_MS: i32 = 20_000;

/// Checks that libzmq is there and has CURVE; panics otherwise.
pub fn require_libzmq() -> (i32, i32, i32) {
    let v = zmq::version();
    assert!(
        v.0 == 4 && v.1 >= 3,
        "libzmq 4.3 or later is required, found {v:?}"
    );
    assert!(
        zmq::has("curve").unwrap_or(false),
        "libzmq was built without CURVE (libsodium)"
    );
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    ReqRep,
    PubSub,
    PushPull,
    DealerRouter,
    ReqRouter,
    DealerRep,
    DealerDealer,
    RouterRouter,
    PairPair,
    XPubSub,
    PubXSub,
    XPubXSub,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    Null,
    Plain,
    Curve,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ipc,
}

/// The first socket of a pattern (REQ, PUB, PUSH, DEALER, XPUB) or the
/// second (REP, SUB, PULL, ROUTER, XSUB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    First,
    Second,
}

impl Pattern {
    fn types(self) -> (SocketType, SocketType) {
        match self {
            Pattern::ReqRep => (SocketType::Req, SocketType::Rep),
            Pattern::PubSub => (SocketType::Pub, SocketType::Sub),
            Pattern::PushPull => (SocketType::Push, SocketType::Pull),
            Pattern::DealerRouter => (SocketType::Dealer, SocketType::Router),
            Pattern::ReqRouter => (SocketType::Req, SocketType::Router),
            Pattern::DealerRep => (SocketType::Dealer, SocketType::Rep),
            Pattern::DealerDealer => (SocketType::Dealer, SocketType::Dealer),
            Pattern::RouterRouter => (SocketType::Router, SocketType::Router),
            Pattern::PairPair => (SocketType::Pair, SocketType::Pair),
            Pattern::XPubSub => (SocketType::XPub, SocketType::Sub),
            Pattern::PubXSub => (SocketType::Pub, SocketType::XSub),
            Pattern::XPubXSub => (SocketType::XPub, SocketType::XSub),
        }
    }
}

pub fn zmq_type(t: SocketType) -> zmq::SocketType {
    match t {
        SocketType::Req => zmq::REQ,
        SocketType::Rep => zmq::REP,
        SocketType::Pub => zmq::PUB,
        SocketType::Sub => zmq::SUB,
        SocketType::Push => zmq::PUSH,
        SocketType::Pull => zmq::PULL,
        SocketType::Dealer => zmq::DEALER,
        SocketType::Router => zmq::ROUTER,
        SocketType::Pair => zmq::PAIR,
        SocketType::XPub => zmq::XPUB,
        SocketType::XSub => zmq::XSUB,
        other => panic!("no libzmq type for {other}"),
    }
}

pub fn ipc_endpoint() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "ipc://{}/zmtp-interop-{}-{n}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    )
}

/// A ZAP handler on a libzmq context: answers every request with `status`
/// (PLAIN: only admin/secret gets 200 when `status` is 200).
///
/// The user id it returns is empty: libzmq (4.3.4) pushes a non-empty ZAP
/// user id into the session as a "credential" message before the first
/// message, and its REQ session refuses that message and drops the
/// connection, so a REQ PLAIN/CURVE server with a user-id-returning ZAP
/// handler breaks on libzmq alone. Use [`ZapHandler::with_user_id`] where
/// the socket type allows it.
pub struct ZapHandler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub requests: Arc<AtomicUsize>,
}

impl ZapHandler {
    pub fn start(ctx: &zmq::Context, status: &'static str) -> ZapHandler {
        ZapHandler::with_user_id(ctx, status, b"")
    }

    pub fn with_user_id(
        ctx: &zmq::Context,
        status: &'static str,
        user_id: &'static [u8],
    ) -> ZapHandler {
        let sock = ctx.socket(zmq::REP).unwrap();
        sock.set_linger(0).unwrap();
        sock.bind("inproc://zeromq.zap.01").unwrap();
        sock.set_rcvtimeo(50).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (stop2, req2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Acquire) {
                let Ok(frames) = sock.recv_multipart(0) else {
                    continue;
                };
                req2.fetch_add(1, Ordering::AcqRel);
                // version, request id, domain, address, identity, mechanism,
                // credentials...
                let mech = String::from_utf8_lossy(&frames[5]).into_owned();
                let mut code = status;
                if mech == "PLAIN"
                    && status == "200"
                    && (frames[6] != b"admin" || frames[7] != b"secret")
                {
                    code = "400";
                }
                let reply: Vec<&[u8]> =
                    vec![b"1.0", &frames[1], code.as_bytes(), b"", user_id, b""];
                sock.send_multipart(reply, 0).unwrap();
            }
        });
        ZapHandler {
            stop,
            thread: Some(thread),
            requests,
        }
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Our socket and libzmq's socket, configured and connected.
pub struct Cell {
    pub ours: Socket,
    pub theirs: zmq::Socket,
    pub our_monitor: zmtp_sockets::Monitor,
    // Kept alive for the test's duration; dropped in this order.
    _zap: Option<ZapHandler>,
    _zctx: zmq::Context,
    _ctx: Context,
    _ipc: IpcFile,
}

/// The socket file of an ipc endpoint libzmq bound, removed with the cell:
/// libzmq 4.3.4 leaves it behind when its socket closes (ours removes its
/// own).
struct IpcFile(Option<std::path::PathBuf>);

impl Drop for IpcFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub struct Setup {
    pub pattern: Pattern,
    pub mech: Mech,
    pub zmtp_binds: bool,
    pub zmtp_is_server: bool,
    pub transport: Transport,
    pub zmtp_role: Role,
}

pub fn cell(s: &Setup) -> Cell {
    require_libzmq();
    let (first, second) = s.pattern.types();
    let (our_type, their_type) = match s.zmtp_role {
        Role::First => (first, second),
        Role::Second => (second, first),
    };
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let ours = ctx.socket(our_type).unwrap();
    ours.configure(|o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.sndtimeo = Some(TIMEOUT);
        o.linger = Some(Duration::from_millis(500));
    })
    .unwrap();
    let theirs = zctx.socket(zmq_type(their_type)).unwrap();
    theirs.set_linger(0).unwrap();
    theirs.set_rcvtimeo(TIMEOUT_MS).unwrap();
    theirs.set_sndtimeo(TIMEOUT_MS).unwrap();
    let mut zap = None;
    match s.mech {
        Mech::Null => {}
        Mech::Plain => {
            if s.zmtp_is_server {
                let mut t = PlainCredentials::new();
                t.allow("admin", "secret");
                ours.configure(|o| {
                    o.security = Security::PlainServer;
                    o.authenticator = Some(Arc::new(t));
                })
                .unwrap();
                theirs.set_plain_username(Some("admin")).unwrap();
                theirs.set_plain_password(Some("secret")).unwrap();
            } else {
                zap = Some(ZapHandler::start(&zctx, "200"));
                theirs.set_plain_server(true).unwrap();
                ours.configure(|o| {
                    o.security = Security::PlainClient {
                        username: "admin".into(),
                        password: "secret".into(),
                    }
                })
                .unwrap();
            }
        }
        Mech::Curve => {
            let server = KeyPair::generate();
            let client = KeyPair::generate();
            if s.zmtp_is_server {
                let allow: PublicKeyAllowList = [client.public].into_iter().collect();
                let sp = server.public;
                ours.configure(|o| {
                    o.security = Security::CurveServer { keys: server };
                    o.authenticator = Some(Arc::new(allow));
                })
                .unwrap();
                theirs.set_curve_serverkey(sp.as_bytes()).unwrap();
                theirs
                    .set_curve_publickey(client.public.as_bytes())
                    .unwrap();
                theirs
                    .set_curve_secretkey(client.secret.as_bytes())
                    .unwrap();
            } else {
                theirs.set_curve_server(true).unwrap();
                theirs
                    .set_curve_secretkey(server.secret.to_z85().as_bytes())
                    .unwrap();
                let sp = server.public;
                ours.configure(|o| {
                    o.security = Security::CurveClient {
                        keys: client,
                        server: sp,
                    }
                })
                .unwrap();
            }
        }
    }
    if matches!(their_type, SocketType::Dealer | SocketType::Router) {
        theirs.set_identity(THEIR_ID).unwrap();
    }
    if matches!(our_type, SocketType::Dealer | SocketType::Router) {
        ours.configure(|o| o.routing_id = bytes::Bytes::from_static(OUR_ID))
            .unwrap();
    }
    if s.pattern == Pattern::RouterRouter {
        theirs.set_router_mandatory(true).unwrap();
        ours.configure(|o| o.router_mandatory = true).unwrap();
    }
    if their_type == SocketType::Sub {
        theirs.set_subscribe(b"A").unwrap();
    }
    if our_type == SocketType::Sub {
        ours.subscribe("A").unwrap();
    }
    let our_monitor = ours.monitor();
    let base = match s.transport {
        Transport::Tcp => "tcp://127.0.0.1:0".to_owned(),
        Transport::Ipc => ipc_endpoint(),
    };
    let mut ipc = IpcFile(None);
    if s.zmtp_binds {
        let ep = ours.bind(&base).unwrap();
        theirs.connect(&ep).unwrap();
    } else {
        let zbase = base.replace(":0", ":*");
        theirs.bind(&zbase).unwrap();
        let ep = theirs.get_last_endpoint().unwrap().unwrap();
        ipc.0 = ep.strip_prefix("ipc://").map(Into::into);
        ours.connect(&ep).unwrap();
    }
    Cell {
        ours,
        theirs,
        our_monitor,
        _zap: zap,
        _zctx: zctx,
        _ctx: ctx,
        _ipc: ipc,
    }
}

impl Cell {
    /// Waits for our side's handshake; panics with the failure otherwise.
    pub fn handshake(&self) {
        let ev = self.our_monitor.wait_for_blocking(TIMEOUT, |e| {
            matches!(
                e,
                MonitorEvent::HandshakeSucceeded { .. } | MonitorEvent::HandshakeFailed { .. }
            )
        });
        assert!(
            matches!(ev, Some(MonitorEvent::HandshakeSucceeded { .. })),
            "handshake: {ev:?}"
        );
    }
}

fn frames(m: &Message) -> Vec<Vec<u8>> {
    m.frames().iter().map(|f| f.to_vec()).collect()
}

fn v(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// libzmq sends with a ROUTER's `router_mandatory` until the peer is
/// routable (its handshake may finish after ours).
fn send_routed(theirs: &zmq::Socket, parts: &[&[u8]]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match theirs.send_multipart(parts, 0) {
            Ok(()) => return,
            Err(zmq::Error::EHOSTUNREACH) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("libzmq send: {e}"),
        }
    }
}

/// Both sides are the same type: messages both ways, multipart kept.
fn symmetric(ours: &Socket, theirs: &zmq::Socket) {
    for i in 0..5u8 {
        ours.send_blocking(Message::from_frames([vec![i], b"ours".to_vec()]))
            .unwrap();
        assert_eq!(theirs.recv_multipart(0).unwrap(), v(&[&[i], b"ours"]));
        theirs.send_multipart([&[i][..], b"theirs"], 0).unwrap();
        assert_eq!(
            frames(&ours.recv_blocking().unwrap()),
            v(&[&[i], b"theirs"])
        );
    }
}

/// Polls `f` until it gives a value, keeping libzmq's socket serviced:
/// libzmq attaches a new connection's pipe (and a bound SUB or XSUB sends
/// its subscriptions on it) only when the application calls into that
/// socket, so a test that waits only on our side would wait forever.
fn serviced<T>(theirs: &zmq::Socket, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let _ = theirs.get_events();
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} never arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Our next message, keeping libzmq's socket serviced meanwhile.
fn recv_serviced(ours: &Socket, theirs: &zmq::Socket) -> Message {
    serviced(theirs, "a message", || ours.try_recv().ok())
}

/// Waits until our PUB has `n` subscriptions in effect.
fn wait_subscriptions(ours: &Socket, theirs: &zmq::Socket, n: usize) {
    serviced(theirs, "the subscription", || {
        (ours.subscription_count() >= n).then_some(())
    });
}

/// Sends from a libzmq publisher until our subscriber gets a message
/// matching "A", then checks the filter.
fn their_pub_reaches(ours: &Socket, theirs: &zmq::Socket) {
    ours.configure(|o| o.rcvtimeo = Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        theirs.send("B-unwanted", 0).unwrap();
        theirs.send("A-probe", 0).unwrap();
        if let Ok(m) = ours.recv_blocking() {
            assert_eq!(m.frames()[0], "A-probe");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "subscription never reached libzmq's publisher"
        );
    }
    ours.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    theirs.send("B-unwanted", 0).unwrap();
    theirs.send("A-final", 0).unwrap();
    loop {
        let m = ours.recv_blocking().unwrap();
        assert!(m.frames()[0].starts_with(b"A"), "filter: {m:?}");
        if m.frames()[0] == "A-final" {
            break;
        }
    }
}

/// Runs the pattern's exchange in every direction it allows.
pub fn exchange(s: &Setup) {
    let c = cell(s);
    c.handshake();
    let ours = &c.ours;
    let theirs = &c.theirs;
    match (s.pattern, s.zmtp_role) {
        (Pattern::DealerRouter, Role::First) => {
            for i in 0..5u8 {
                ours.send_blocking(Message::from_frames([vec![b'q', i], b"x".to_vec()]))
                    .unwrap();
                let got = theirs.recv_multipart(0).unwrap();
                assert_eq!(got, v(&[OUR_ID, &[b'q', i], b"x"]));
                theirs.send_multipart([OUR_ID, &[b'r', i]], 0).unwrap();
                assert_eq!(frames(&ours.recv_blocking().unwrap()), v(&[&[b'r', i]]));
            }
        }
        (Pattern::DealerRouter, Role::Second) => {
            for i in 0..5u8 {
                theirs.send_multipart([&[b'q', i][..], b"x"], 0).unwrap();
                let got = ours.recv_blocking().unwrap();
                assert_eq!(frames(&got), v(&[THEIR_ID, &[b'q', i], b"x"]));
                ours.send_blocking(Message::from_frames([THEIR_ID.to_vec(), vec![b'r', i]]))
                    .unwrap();
                assert_eq!(theirs.recv_multipart(0).unwrap(), v(&[&[b'r', i]]));
            }
        }
        (Pattern::ReqRouter, Role::First) => {
            for i in 0..5u8 {
                ours.send_blocking(Message::from(vec![b'q', i])).unwrap();
                let got = theirs.recv_multipart(0).unwrap();
                assert_eq!(got.len(), 3);
                assert_eq!(&got[1..], v(&[b"", &[b'q', i]]));
                theirs
                    .send_multipart([&got[0][..], b"", &[b'r', i]], 0)
                    .unwrap();
                assert_eq!(frames(&ours.recv_blocking().unwrap()), v(&[&[b'r', i]]));
            }
        }
        (Pattern::ReqRouter, Role::Second) => {
            for i in 0..5u8 {
                theirs.send(&[b'q', i][..], 0).unwrap();
                let got = ours.recv_blocking().unwrap();
                assert_eq!(got.len(), 3);
                assert_eq!(frames(&got)[1..], v(&[b"", &[b'q', i]]));
                let mut reply = Message::from_frames([got.frames()[0].clone()]);
                reply.push(bytes::Bytes::new());
                reply.push(vec![b'r', i]);
                ours.send_blocking(reply).unwrap();
                assert_eq!(theirs.recv_multipart(0).unwrap(), v(&[&[b'r', i]]));
            }
        }
        (Pattern::DealerRep, Role::First) => {
            for i in 0..5u8 {
                ours.send_blocking(Message::from_frames([Vec::new(), vec![b'q', i]]))
                    .unwrap();
                assert_eq!(theirs.recv_multipart(0).unwrap(), v(&[&[b'q', i]]));
                theirs.send(&[b'r', i][..], 0).unwrap();
                assert_eq!(
                    frames(&ours.recv_blocking().unwrap()),
                    v(&[b"", &[b'r', i]])
                );
            }
        }
        (Pattern::DealerRep, Role::Second) => {
            for i in 0..5u8 {
                theirs.send_multipart([&b""[..], &[b'q', i]], 0).unwrap();
                assert_eq!(frames(&ours.recv_blocking().unwrap()), v(&[&[b'q', i]]));
                ours.send_blocking(Message::from(vec![b'r', i])).unwrap();
                assert_eq!(theirs.recv_multipart(0).unwrap(), v(&[b"", &[b'r', i]]));
            }
        }
        (Pattern::DealerDealer | Pattern::PairPair, _) => symmetric(ours, theirs),
        (Pattern::RouterRouter, _) => {
            // Explicit ids and router_mandatory on both sides: each routes
            // to the other by the id it announced.
            for i in 0..5u8 {
                ours.send_blocking(Message::from_frames([THEIR_ID.to_vec(), vec![b'o', i]]))
                    .unwrap();
                assert_eq!(theirs.recv_multipart(0).unwrap(), v(&[OUR_ID, &[b'o', i]]));
                send_routed(theirs, &[OUR_ID, &[b't', i]]);
                assert_eq!(
                    frames(&ours.recv_blocking().unwrap()),
                    v(&[THEIR_ID, &[b't', i]])
                );
            }
            assert!(matches!(
                ours.send_blocking(Message::from_frames([&b"nobody"[..], b"x"])),
                Err(zmtp_sockets::Error::HostUnreachable)
            ));
        }
        (Pattern::XPubSub, Role::First) => {
            // libzmq's SUB subscribed to "A": our XPUB hands it over.
            assert_eq!(frames(&recv_serviced(ours, theirs)), v(&[b"\x01A"]));
            ours.send_blocking("B-unwanted").unwrap();
            ours.send_blocking("A-1").unwrap();
            assert_eq!(theirs.recv_bytes(0).unwrap(), b"A-1");
            theirs.set_unsubscribe(b"A").unwrap();
            assert_eq!(frames(&recv_serviced(ours, theirs)), v(&[b"\x00A"]));
        }
        (Pattern::XPubSub, Role::Second) => {
            assert_eq!(theirs.recv_bytes(0).unwrap(), b"\x01A");
            theirs.send("B-unwanted", 0).unwrap();
            theirs.send("A-1", 0).unwrap();
            assert_eq!(frames(&ours.recv_blocking().unwrap()), v(&[b"A-1"]));
        }
        (Pattern::PubXSub, Role::First) => {
            theirs.send(&b"\x01A"[..], 0).unwrap();
            wait_subscriptions(ours, theirs, 1);
            ours.send_blocking("B-unwanted").unwrap();
            ours.send_blocking("A-1").unwrap();
            assert_eq!(theirs.recv_bytes(0).unwrap(), b"A-1");
        }
        (Pattern::PubXSub, Role::Second) => {
            ours.send_blocking(Message::from(&b"\x01A"[..])).unwrap();
            their_pub_reaches(ours, theirs);
        }
        (Pattern::XPubXSub, Role::First) => {
            theirs.send(&b"\x01A"[..], 0).unwrap();
            assert_eq!(frames(&recv_serviced(ours, theirs)), v(&[b"\x01A"]));
            ours.send_blocking("A-1").unwrap();
            assert_eq!(theirs.recv_bytes(0).unwrap(), b"A-1");
            // Data upstream from libzmq's XSUB.
            theirs.send("upstream", 0).unwrap();
            assert_eq!(frames(&ours.recv_blocking().unwrap()), v(&[b"upstream"]));
        }
        (Pattern::XPubXSub, Role::Second) => {
            ours.send_blocking(Message::from(&b"\x01A"[..])).unwrap();
            assert_eq!(theirs.recv_bytes(0).unwrap(), b"\x01A");
            theirs.send("A-1", 0).unwrap();
            assert_eq!(frames(&ours.recv_blocking().unwrap()), v(&[b"A-1"]));
            ours.send_blocking("upstream").unwrap();
            assert_eq!(theirs.recv_bytes(0).unwrap(), b"upstream");
        }
        (Pattern::ReqRep, Role::First) => {
            for i in 0..5u8 {
                ours.send_blocking(Message::from(vec![b'q', i])).unwrap();
                let req = theirs.recv_multipart(0).expect("libzmq REP receives");
                assert_eq!(req, vec![vec![b'q', i]]);
                theirs.send(&[b'r', i][..], 0).unwrap();
                let rep = ours.recv_blocking().unwrap();
                assert_eq!(&rep.frames()[0][..], &[b'r', i]);
            }
        }
        (Pattern::ReqRep, Role::Second) => {
            for i in 0..5u8 {
                theirs
                    .send_multipart([&[b'q', i][..], b"second frame"], 0)
                    .unwrap();
                let req = ours.recv_blocking().unwrap();
                assert_eq!(req.len(), 2);
                assert_eq!(&req.frames()[0][..], &[b'q', i]);
                ours.send_blocking(Message::from(vec![b'r', i])).unwrap();
                let rep = theirs.recv_multipart(0).expect("libzmq REQ gets the reply");
                assert_eq!(rep, vec![vec![b'r', i]]);
            }
        }
        (Pattern::PushPull, Role::First) => {
            for i in 0..20u8 {
                ours.send_blocking(Message::from_frames([vec![i], b"x".to_vec()]))
                    .unwrap();
            }
            for i in 0..20u8 {
                assert_eq!(
                    theirs.recv_multipart(0).unwrap(),
                    vec![vec![i], b"x".to_vec()]
                );
            }
        }
        (Pattern::PushPull, Role::Second) => {
            for i in 0..20u8 {
                theirs.send_multipart([vec![i], b"x".to_vec()], 0).unwrap();
            }
            for i in 0..20u8 {
                let m = ours.recv_blocking().unwrap();
                assert_eq!(m.frames(), &[vec![i], b"x".to_vec()]);
            }
        }
        (Pattern::PubSub, Role::First) => {
            // Our PUB, libzmq SUB subscribed to "A": publish until the
            // subscription is in effect, then check the filter.
            theirs.set_rcvtimeo(20).unwrap();
            let deadline = Instant::now() + TIMEOUT;
            loop {
                ours.send_blocking("B-unwanted").unwrap();
                ours.send_blocking("A-probe").unwrap();
                if let Ok(m) = theirs.recv_bytes(0) {
                    assert_eq!(
                        m, b"A-probe",
                        "libzmq SUB got a message it did not subscribe to"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "subscription never reached our PUB"
                );
            }
            theirs.set_rcvtimeo(TIMEOUT_MS).unwrap();
            ours.send_blocking("B-unwanted").unwrap();
            ours.send_blocking("A-final").unwrap();
            loop {
                let m = theirs.recv_bytes(0).unwrap();
                assert!(m.starts_with(b"A"), "filter: {m:?}");
                if m == b"A-final" {
                    break;
                }
            }
        }
        (Pattern::PubSub, Role::Second) => their_pub_reaches(ours, theirs),
    }
}

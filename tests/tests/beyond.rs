//! Interop beyond the matrix: large and multipart messages, envelopes,
//! subscriptions, heartbeats, authentication failures, wrong keys and
//! metadata, against real libzmq.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_interop::{TIMEOUT, ZapHandler, require_libzmq};
use zmtp_sockets::security::{KeyPair, PlainCredentials, PublicKeyAllowList};
use zmtp_sockets::{
    Context, HandshakeFailure, Message, MonitorEvent, Security, Socket, SocketType,
};

const MS: i32 = 20_000;

fn ours(ctx: &Context, t: SocketType) -> Socket {
    let s = ctx.socket(t).unwrap();
    s.configure(|o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.sndtimeo = Some(TIMEOUT);
        o.linger = Some(Duration::from_millis(200));
    })
    .unwrap();
    s
}

fn theirs(z: &zmq::Context, t: zmq::SocketType) -> zmq::Socket {
    let s = z.socket(t).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(MS).unwrap();
    s.set_sndtimeo(MS).unwrap();
    s
}

fn bound(s: &zmq::Socket) -> String {
    s.bind("tcp://127.0.0.1:*").unwrap();
    s.get_last_endpoint().unwrap().unwrap()
}

/// libzmq monitor events as (event id, value).
fn libzmq_monitor(z: &zmq::Context, s: &zmq::Socket, name: &str) -> zmq::Socket {
    let ep = format!("inproc://{name}");
    s.monitor(&ep, zmq::SocketEvent::ALL as i32).unwrap();
    let m = z.socket(zmq::PAIR).unwrap();
    m.set_rcvtimeo(MS).unwrap();
    m.connect(&ep).unwrap();
    m
}

fn wait_libzmq_event(m: &zmq::Socket, id: u16) -> Option<u32> {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let Ok(frames) = m.recv_multipart(0) else {
            return None;
        };
        let ev = u16::from_le_bytes([frames[0][0], frames[0][1]]);
        let value = u32::from_le_bytes(frames[0][2..6].try_into().unwrap());
        if ev == id {
            return Some(value);
        }
    }
    None
}

#[test]
fn multipart_and_16_mib_both_directions() {
    require_libzmq();
    for curve in [false, true] {
        let ctx = Context::new();
        let z = zmq::Context::new();
        let pull = theirs(&z, zmq::PULL);
        let push = ours(&ctx, SocketType::Push);
        let back_push = theirs(&z, zmq::PUSH);
        let back_pull = ours(&ctx, SocketType::Pull);
        if curve {
            let keys = KeyPair::generate();
            pull.set_curve_server(true).unwrap();
            pull.set_curve_secretkey(keys.secret.as_bytes()).unwrap();
            let pk = keys.public;
            push.configure(|o| {
                o.security = Security::CurveClient {
                    keys: KeyPair::generate(),
                    server: pk,
                }
            })
            .unwrap();
            let keys2 = KeyPair::generate();
            let c = zmq::CurveKeyPair::new().unwrap();
            back_push
                .set_curve_serverkey(keys2.public.as_bytes())
                .unwrap();
            back_push.set_curve_publickey(&c.public_key).unwrap();
            back_push.set_curve_secretkey(&c.secret_key).unwrap();
            back_pull
                .configure(|o| o.security = Security::CurveServer { keys: keys2 })
                .unwrap();
        }
        let ep = bound(&pull);
        push.connect(&ep).unwrap();
        let big = vec![0x5Au8; 16 << 20];
        push.send_blocking(Message::from_frames([
            Bytes::from_static(b"head"),
            Bytes::new(),
            Bytes::from(big.clone()),
        ]))
        .unwrap();
        let got = pull.recv_multipart(0).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], b"head");
        assert!(got[1].is_empty());
        assert!(got[2] == big, "16 MiB frame to libzmq (curve={curve})");
        let ep2 = back_pull.bind("tcp://127.0.0.1:0").unwrap();
        back_push.connect(&ep2).unwrap();
        back_push
            .send_multipart([&b"a"[..], &big[..], b"z"], 0)
            .unwrap();
        let m = back_pull.recv_blocking().unwrap();
        assert_eq!(m.len(), 3);
        assert!(
            m.frames()[1] == big,
            "16 MiB frame from libzmq (curve={curve})"
        );
    }
}

#[test]
fn rep_restores_envelopes_from_libzmq_router_and_dealer() {
    require_libzmq();
    let ctx = Context::new();
    let z = zmq::Context::new();
    let rep = ours(&ctx, SocketType::Rep);
    let ep = rep.bind("tcp://127.0.0.1:0").unwrap();
    // DEALER sends ["", "A"]: the reply keeps the empty envelope.
    let dealer = theirs(&z, zmq::DEALER);
    dealer.connect(&ep).unwrap();
    dealer.send_multipart([&b""[..], b"A"], 0).unwrap();
    let m = rep.recv_blocking().unwrap();
    assert_eq!(m.frames(), &[Bytes::from_static(b"A")]);
    rep.send_blocking("reply-A").unwrap();
    assert_eq!(
        dealer.recv_multipart(0).unwrap(),
        vec![b"".to_vec(), b"reply-A".to_vec()]
    );
    // A multi-frame envelope ["X", "Y", "", "B"] comes back whole.
    dealer
        .send_multipart([&b"X"[..], b"Y", b"", b"B"], 0)
        .unwrap();
    let m = rep.recv_blocking().unwrap();
    assert_eq!(m.frames(), &[Bytes::from_static(b"B")]);
    rep.send_blocking("reply-B").unwrap();
    assert_eq!(
        dealer.recv_multipart(0).unwrap(),
        vec![
            b"X".to_vec(),
            b"Y".to_vec(),
            b"".to_vec(),
            b"reply-B".to_vec()
        ]
    );
    // Our REQ through a libzmq ROUTER sees [id][""][body].
    let router = theirs(&z, zmq::ROUTER);
    let rep_ep = bound(&router);
    let req = ours(&ctx, SocketType::Req);
    req.connect(&rep_ep).unwrap();
    req.send_blocking(Message::from_frames([
        Bytes::from_static(b"ABC"),
        Bytes::from_static(b"DEF"),
    ]))
    .unwrap();
    let frames = router.recv_multipart(0).unwrap();
    assert_eq!(frames.len(), 4);
    assert!(frames[1].is_empty());
    assert_eq!(&frames[2..], &[b"ABC".to_vec(), b"DEF".to_vec()]);
    router
        .send_multipart([&frames[0][..], b"", b"answer"], 0)
        .unwrap();
    assert_eq!(req.recv_blocking().unwrap().frames()[0], "answer");
}

#[test]
fn libzmq_sub_subscribes_and_unsubscribes_against_our_pub() {
    require_libzmq();
    let ctx = Context::new();
    let z = zmq::Context::new();
    let publ = ours(&ctx, SocketType::Pub);
    let ep = publ.bind("tcp://127.0.0.1:0").unwrap();
    let sub = theirs(&z, zmq::SUB);
    sub.connect(&ep).unwrap();
    sub.set_subscribe(b"A").unwrap();
    sub.set_subscribe(b"B").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while publ.subscription_count() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    sub.set_unsubscribe(b"A").unwrap();
    while publ.subscription_count() > 1 {
        assert!(Instant::now() < deadline, "CANCEL never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Our PUB filters: only B reaches libzmq now.
    publ.send_blocking("A-dropped").unwrap();
    publ.send_blocking("C-dropped").unwrap();
    publ.send_blocking("B-kept").unwrap();
    assert_eq!(sub.recv_bytes(0).unwrap(), b"B-kept");
}

#[test]
fn our_sub_resubscribes_after_libzmq_pub_restarts() {
    require_libzmq();
    let ctx = Context::new();
    let sub = ours(&ctx, SocketType::Sub);
    sub.subscribe("T").unwrap();
    let ep = zmtp_interop::quiet_tcp_endpoint();
    sub.connect(&ep).unwrap();
    for round in 0..2 {
        let z = zmq::Context::new();
        let publ = theirs(&z, zmq::PUB);
        let deadline = Instant::now() + TIMEOUT;
        while publ.bind(&ep).is_err() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        sub.configure(|o| o.rcvtimeo = Some(Duration::from_millis(20)))
            .unwrap();
        loop {
            publ.send("X-filtered", 0).unwrap();
            publ.send(format!("T-{round}").as_str(), 0).unwrap();
            if let Ok(m) = sub.recv_blocking() {
                assert_eq!(m.frames()[0], format!("T-{round}").as_bytes());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no resubscription in round {round}"
            );
        }
        drop(publ);
        drop(z);
    }
}

#[test]
fn libzmq_zap_denial_reaches_our_client_and_delivers_nothing() {
    require_libzmq();
    for mech in ["plain", "curve"] {
        let ctx = Context::new();
        let z = zmq::Context::new();
        let zap = ZapHandler::start(&z, "400");
        let pull = theirs(&z, zmq::PULL);
        let push = ours(&ctx, SocketType::Push);
        push.configure(|o| o.linger = Some(Duration::ZERO)).unwrap();
        if mech == "plain" {
            pull.set_plain_server(true).unwrap();
            push.configure(|o| {
                o.security = Security::PlainClient {
                    username: "admin".into(),
                    password: "secret".into(),
                }
            })
            .unwrap();
        } else {
            let keys = KeyPair::generate();
            pull.set_curve_server(true).unwrap();
            pull.set_curve_secretkey(keys.secret.as_bytes()).unwrap();
            pull.set_zap_domain("test").unwrap();
            let pk = keys.public;
            push.configure(|o| {
                o.security = Security::CurveClient {
                    keys: KeyPair::generate(),
                    server: pk,
                }
            })
            .unwrap();
        }
        let mon = push.monitor();
        let ep = bound(&pull);
        push.connect(&ep).unwrap();
        push.send_blocking("must not arrive").unwrap();
        let ev = mon.wait_for_blocking(TIMEOUT, |e| {
            matches!(e, MonitorEvent::HandshakeFailed { .. })
        });
        let Some(MonitorEvent::HandshakeFailed { reason, .. }) = ev else {
            panic!("{mech}: {ev:?}")
        };
        assert_eq!(reason, HandshakeFailure::Auth { status: 400 }, "{mech}");
        pull.set_rcvtimeo(300).unwrap();
        assert!(pull.recv_bytes(0).is_err(), "{mech}: delivered");
        assert!(zap.requests.load(Ordering::Acquire) > 0);
    }
}

#[test]
fn our_authenticator_denial_is_seen_by_libzmq_monitor() {
    require_libzmq();
    for mech in ["plain", "curve"] {
        let ctx = Context::new();
        let z = zmq::Context::new();
        let pull = ours(&ctx, SocketType::Pull);
        let push = theirs(&z, zmq::PUSH);
        if mech == "plain" {
            let mut t = PlainCredentials::new();
            t.allow("admin", "secret");
            pull.configure(|o| {
                o.security = Security::PlainServer;
                o.authenticator = Some(Arc::new(t));
            })
            .unwrap();
            push.set_plain_username(Some("admin")).unwrap();
            push.set_plain_password(Some("wrong")).unwrap();
        } else {
            let keys = KeyPair::generate();
            let pk = keys.public;
            pull.configure(|o| {
                o.security = Security::CurveServer { keys };
                o.authenticator = Some(Arc::new(PublicKeyAllowList::new()));
            })
            .unwrap();
            let c = zmq::CurveKeyPair::new().unwrap();
            push.set_curve_serverkey(pk.as_bytes()).unwrap();
            push.set_curve_publickey(&c.public_key).unwrap();
            push.set_curve_secretkey(&c.secret_key).unwrap();
        }
        let zmon = libzmq_monitor(&z, &push, &format!("mon-{mech}"));
        let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
        push.connect(&ep).unwrap();
        push.send("nope", zmq::DONTWAIT).ok();
        // ZMQ_EVENT_HANDSHAKE_FAILED_AUTH = 0x4000, value = status code.
        assert_eq!(wait_libzmq_event(&zmon, 0x4000), Some(400), "{mech}");
        pull.configure(|o| o.rcvtimeo = Some(Duration::from_millis(300)))
            .unwrap();
        assert!(pull.recv_blocking().is_err(), "{mech}: delivered");
    }
}

#[test]
fn wrong_curve_server_key_delivers_nothing_either_way() {
    require_libzmq();
    let ctx = Context::new();
    let z = zmq::Context::new();
    // Our client with the wrong key against libzmq's server.
    let keys = KeyPair::generate();
    let pull = theirs(&z, zmq::PULL);
    pull.set_curve_server(true).unwrap();
    pull.set_curve_secretkey(keys.secret.as_bytes()).unwrap();
    pull.set_rcvtimeo(500).unwrap();
    let ep = bound(&pull);
    let push = ours(&ctx, SocketType::Push);
    push.configure(|o| {
        o.linger = Some(Duration::ZERO);
        o.security = Security::CurveClient {
            keys: KeyPair::generate(),
            server: KeyPair::generate().public,
        };
    })
    .unwrap();
    let mon = push.monitor();
    push.connect(&ep).unwrap();
    push.send_blocking("secret").unwrap();
    assert!(
        mon.wait_for_blocking(TIMEOUT, |e| matches!(
            e,
            MonitorEvent::HandshakeFailed { .. } | MonitorEvent::Disconnected { .. }
        ))
        .is_some()
    );
    assert!(pull.recv_bytes(0).is_err());
    // libzmq's client with the wrong key against our server.
    let ours_pull = ours(&ctx, SocketType::Pull);
    ours_pull
        .configure(|o| {
            o.security = Security::CurveServer {
                keys: KeyPair::generate(),
            };
            o.rcvtimeo = Some(Duration::from_millis(500));
        })
        .unwrap();
    let smon = ours_pull.monitor();
    let ep = ours_pull.bind("tcp://127.0.0.1:0").unwrap();
    let zpush = theirs(&z, zmq::PUSH);
    let c = zmq::CurveKeyPair::new().unwrap();
    zpush
        .set_curve_serverkey(KeyPair::generate().public.as_bytes())
        .unwrap();
    zpush.set_curve_publickey(&c.public_key).unwrap();
    zpush.set_curve_secretkey(&c.secret_key).unwrap();
    zpush.connect(&ep).unwrap();
    zpush.send("secret", zmq::DONTWAIT).ok();
    let ev = smon.wait_for_blocking(TIMEOUT, |e| {
        matches!(e, MonitorEvent::HandshakeFailed { .. })
    });
    assert!(ev.is_some());
    assert!(ours_pull.recv_blocking().is_err());
}

#[test]
fn metadata_user_id_and_libzmq_properties() {
    require_libzmq();
    let ctx = Context::new();
    let z = zmq::Context::new();
    let rep = ours(&ctx, SocketType::Rep);
    let mut t = PlainCredentials::new();
    t.allow("admin", "secret");
    rep.configure(|o| {
        o.security = Security::PlainServer;
        o.authenticator = Some(Arc::new(t));
    })
    .unwrap();
    let ep = rep.bind("tcp://127.0.0.1:0").unwrap();
    let req = theirs(&z, zmq::REQ);
    req.set_plain_username(Some("admin")).unwrap();
    req.set_plain_password(Some("secret")).unwrap();
    // libzmq sends its routing id as the Identity property of READY.
    req.set_identity(b"libzmq-req").unwrap();
    req.connect(&ep).unwrap();
    req.send("hi", 0).unwrap();
    let m = rep.recv_blocking().unwrap();
    // User-Id from our Authenticator; Socket-Type and Identity from
    // libzmq's READY; Peer-Address from the connection.
    assert_eq!(m.user_id().unwrap(), "admin");
    assert_eq!(m.socket_type().unwrap(), "REQ");
    assert_eq!(m.property("identity").unwrap(), "libzmq-req");
    assert!(m.peer_address().unwrap().starts_with(b"127.0.0.1:"));
    rep.send_blocking(m).unwrap();
    assert_eq!(req.recv_bytes(0).unwrap(), b"hi");
}

/// A TCP relay that can be frozen, to make a peer go silent.
struct Relay {
    frozen: Arc<AtomicBool>,
    port: u16,
}

fn relay(to: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let frozen = Arc::new(AtomicBool::new(false));
    let f = frozen.clone();
    std::thread::spawn(move || {
        let (a, _) = listener.accept().unwrap();
        let b = TcpStream::connect(to.trim_start_matches("tcp://")).unwrap();
        for (mut from, mut into) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
            let f = f.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    let Ok(n) = from.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    if f.load(Ordering::Acquire) {
                        continue; // swallowed: the peer seems silent
                    }
                    if into.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Relay { frozen, port }
}

#[test]
fn heartbeats_keep_idle_connections_and_detect_silent_libzmq() {
    require_libzmq();
    let ctx = Context::new();
    let z = zmq::Context::new();
    let pull = theirs(&z, zmq::PULL);
    pull.set_heartbeat_ivl(200).unwrap();
    pull.set_heartbeat_timeout(1000).unwrap();
    let ep = bound(&pull);
    let r = relay(ep);
    let push = ours(&ctx, SocketType::Push);
    push.configure(|o| {
        o.heartbeat_ivl = Some(Duration::from_millis(200));
        o.heartbeat_timeout = Some(Duration::from_millis(1000));
    })
    .unwrap();
    let mon = push.monitor();
    push.connect(&format!("tcp://127.0.0.1:{}", r.port))
        .unwrap();
    mon.wait_for_blocking(TIMEOUT, |e| {
        matches!(e, MonitorEvent::HandshakeSucceeded { .. })
    })
    .unwrap();
    // 5 s of idle: PINGs both ways keep it up; no disconnect is reported.
    let idle = mon.wait_for_blocking(Duration::from_secs(5), |e| {
        matches!(e, MonitorEvent::Disconnected { .. })
    });
    assert!(idle.is_none(), "dropped while idle: {idle:?}");
    push.send_blocking("still here").unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"still here");
    // Now libzmq goes silent: our heartbeat timeout notices.
    r.frozen.store(true, Ordering::Release);
    let ev = mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }));
    let Some(MonitorEvent::Disconnected {
        reason: Some(reason),
        ..
    }) = ev
    else {
        panic!("{ev:?}")
    };
    assert!(reason.is_heartbeat_timeout(), "{reason:?}");
}

#[test]
fn a_zmtp_3_0_publisher_gets_legacy_subscriptions() {
    // A mock ZMTP 3.0 PUB: our SUB must subscribe with a data message
    // "\x01A" (libzmq's test_mock_pub_sub), not a SUBSCRIBE command.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = Context::new();
    let sub = ours(&ctx, SocketType::Sub);
    sub.subscribe("A").unwrap();
    sub.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 0];
    g.extend_from_slice(b"NULL");
    g.resize(64, 0);
    peer.write_all(&g).unwrap();
    peer.write_all(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\x00\x02\x01A") {
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0, "closed before subscribing: {got:?}");
        got.extend_from_slice(&buf[..n]);
        assert!(
            !got.windows(10).any(|w| w == b"\x09SUBSCRIBE"),
            "3.1 command sent to a 3.0 peer"
        );
    }
    // And a message it publishes arrives, filtered.
    peer.write_all(b"\x00\x04BLOL\x00\x04ALOL").unwrap();
    assert_eq!(sub.recv_blocking().unwrap().frames()[0], "ALOL");
}

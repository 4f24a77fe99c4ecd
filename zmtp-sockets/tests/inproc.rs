//! The inproc transport: every socket-type pair, both orders of bind and
//! connect, high-water marks as libzmq computes them for inproc, names,
//! routing ids, subscriptions, monitor events, and many threads.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::TIMEOUT;
use zmtp_sockets::{Context, Error, Message, MonitorEvent, Socket, SocketType};

use SocketType::*;

fn socket(ctx: &Context, t: SocketType) -> Socket {
    ctx.socket_with(t, |o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.sndtimeo = Some(TIMEOUT);
        if matches!(t, Req | Dealer | Router) {
            o.routing_id = Bytes::from(format!("{t:?}-id"));
        }
    })
    .unwrap()
}

fn frames(m: &Message) -> Vec<&[u8]> {
    m.frames().iter().map(|f| &f[..]).collect()
}

fn name() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "inproc://test-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A socket bound to a fresh name, and the name.
fn bound(ctx: &Context, t: SocketType) -> (Socket, String) {
    let s = socket(ctx, t);
    let ep = name();
    s.bind(&ep).unwrap();
    (s, ep)
}

/// Every compatible pair of types.
const PAIRS: [(SocketType, SocketType); 12] = [
    (Req, Rep),
    (Req, Router),
    (Dealer, Rep),
    (Dealer, Router),
    (Dealer, Dealer),
    (Router, Router),
    (Pub, Sub),
    (Pub, XSub),
    (XPub, Sub),
    (XPub, XSub),
    (Push, Pull),
    (Pair, Pair),
];

/// A message each way (or one way, for the one-way types), as the types'
/// semantics ask: `a` is of the first type of its pair, `b` of the second.
fn exercise(ta: SocketType, a: &Socket, tb: SocketType, b: &Socket) {
    let what = format!("{ta:?}->{tb:?}");
    match (ta, tb) {
        (Req, Rep) | (Pair, Pair) | (Dealer, Dealer) => {
            a.send_blocking("hi").unwrap();
            assert_eq!(frames(&b.recv_blocking().unwrap()), [b"hi"], "{what}");
            b.send_blocking("ok").unwrap();
            assert_eq!(frames(&a.recv_blocking().unwrap()), [b"ok"], "{what}");
        }
        (Req | Dealer, Router) => {
            let id = format!("{ta:?}-id");
            let req = ta == Req;
            a.send_blocking(if req {
                Message::from("hi")
            } else {
                Message::from_frames(["", "hi"])
            })
            .unwrap();
            let got = b.recv_blocking().unwrap();
            assert_eq!(frames(&got), [id.as_bytes(), b"", b"hi"], "{what}");
            b.send_blocking(Message::from_frames([id.as_str(), "", "ok"]))
                .unwrap();
            let back = a.recv_blocking().unwrap();
            if req {
                assert_eq!(frames(&back), [b"ok"], "{what}");
            } else {
                assert_eq!(frames(&back), [&b""[..], b"ok"], "{what}");
            }
        }
        (Dealer, Rep) => {
            a.send_blocking(Message::from_frames(["", "hi"])).unwrap();
            assert_eq!(frames(&b.recv_blocking().unwrap()), [b"hi"], "{what}");
            b.send_blocking("ok").unwrap();
            assert_eq!(
                frames(&a.recv_blocking().unwrap()),
                [&b""[..], b"ok"],
                "{what}"
            );
        }
        (Router, Router) => {
            // Each knows the other's id from the pairing.
            a.send_blocking(Message::from_frames(["Router-id", "hi"]))
                .unwrap();
            assert_eq!(
                frames(&b.recv_blocking().unwrap()),
                [&b"Router-a"[..], b"hi"],
                "{what}"
            );
            b.send_blocking(Message::from_frames(["Router-a", "ok"]))
                .unwrap();
            assert_eq!(
                frames(&a.recv_blocking().unwrap()),
                [&b"Router-id"[..], b"ok"],
                "{what}"
            );
        }
        (Pub | XPub, Sub | XSub) => {
            if tb == Sub {
                b.subscribe("t").unwrap();
            } else {
                b.send_blocking(&b"\x01t"[..]).unwrap();
            }
            if ta == XPub {
                assert_eq!(frames(&a.recv_blocking().unwrap()), [b"\x01t"], "{what}");
            }
            // Applied at once over inproc: no slow joiner.
            a.send_blocking("other").unwrap();
            a.send_blocking(Message::from_frames(["t1", "body"]))
                .unwrap();
            assert_eq!(
                frames(&b.recv_blocking().unwrap()),
                [&b"t1"[..], b"body"],
                "{what}"
            );
        }
        (Push, Pull) => {
            for i in 0..100u32 {
                a.send_blocking(i.to_string()).unwrap();
            }
            for i in 0..100u32 {
                assert_eq!(b.recv_blocking().unwrap().frames()[0], i.to_string());
            }
        }
        _ => unreachable!("{what}"),
    }
}

#[test]
fn every_socket_type_pair_either_side_binding_either_order() {
    let ctx = Context::new();
    for (ta, tb) in PAIRS {
        for a_binds in [true, false] {
            for bind_first in [true, false] {
                let (a, b) = (socket(&ctx, ta), socket(&ctx, tb));
                // Two ROUTERs need distinct ids.
                if ta == Router && tb == Router {
                    b.configure(|o| o.routing_id = Bytes::from("Router-id"))
                        .unwrap();
                    a.configure(|o| o.routing_id = Bytes::from("Router-a"))
                        .unwrap();
                }
                let (binder, connecter) = if a_binds { (&a, &b) } else { (&b, &a) };
                let ep = name();
                if bind_first {
                    assert_eq!(binder.bind(&ep).unwrap(), ep);
                    connecter.connect(&ep).unwrap();
                } else {
                    connecter.connect(&ep).unwrap();
                    binder.bind(&ep).unwrap();
                }
                exercise(ta, &a, tb, &b);
            }
        }
    }
}

#[test]
fn messages_queued_before_the_bind_arrive_first_and_in_order() {
    let ctx = Context::new();
    let push = socket(&ctx, Push);
    let ep = name();
    push.connect(&ep).unwrap();
    for i in 0..50u32 {
        push.try_send(i.to_string()).unwrap();
    }
    let pull = socket(&ctx, Pull);
    pull.bind(&ep).unwrap();
    for i in 50..100u32 {
        push.send_blocking(i.to_string()).unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(pull.recv_blocking().unwrap().frames()[0], i.to_string());
    }
    assert_eq!(push.unsent(), 0);
}

#[test]
fn the_high_water_mark_is_the_senders_sndhwm_plus_the_receivers_rcvhwm() {
    let ctx = Context::new();
    let push = ctx.socket_with(Push, |o| o.sndhwm = 10).unwrap();
    let pull = ctx.socket_with(Pull, |o| o.rcvhwm = 5).unwrap();
    let ep = name();
    pull.bind(&ep).unwrap();
    push.connect(&ep).unwrap();
    for i in 0..15u32 {
        push.try_send(i.to_string())
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
    assert!(matches!(push.try_send("16th"), Err(Error::WouldBlock)));
    // A timed send gives up at the limit too.
    push.configure(|o| o.sndtimeo = Some(Duration::from_millis(20)))
        .unwrap();
    assert!(matches!(push.send_blocking("16th"), Err(Error::WouldBlock)));
    // Taking one message makes room for one.
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "0");
    push.try_send("15").unwrap();
    assert!(matches!(push.try_send("16"), Err(Error::WouldBlock)));
}

#[test]
fn a_blocked_sender_is_woken_when_the_receiver_takes_messages() {
    let ctx = Context::new();
    let push = ctx
        .socket_with(Push, |o| {
            o.sndhwm = 4;
            o.sndtimeo = Some(TIMEOUT);
        })
        .unwrap();
    let pull = ctx
        .socket_with(Pull, |o| {
            o.rcvhwm = 4;
            o.rcvtimeo = Some(TIMEOUT);
        })
        .unwrap();
    let ep = name();
    pull.bind(&ep).unwrap();
    push.connect(&ep).unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..10_000u32 {
            push.send_blocking(i.to_string()).unwrap();
        }
        push
    });
    for i in 0..10_000u32 {
        assert_eq!(pull.recv_blocking().unwrap().frames()[0], i.to_string());
    }
    let push = sender.join().unwrap();
    assert_eq!(push.unsent(), 0);
}

#[test]
fn a_name_is_taken_once_and_free_again_after_close_or_unbind() {
    let ctx = Context::new();
    let (a, ep) = bound(&ctx, Pull);
    let b = socket(&ctx, Pull);
    match b.bind(&ep) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse),
        other => panic!("{other:?}"),
    }
    assert!(a.bind(&ep).is_err(), "bound twice by one socket");
    drop(a);
    b.bind(&ep).unwrap();
    b.unbind(&ep).unwrap();
    assert!(matches!(b.unbind(&ep), Err(Error::NotFound(_))));
    let c = socket(&ctx, Pull);
    c.bind(&ep).unwrap();
    let push = socket(&ctx, Push);
    push.connect(&ep).unwrap();
    push.send_blocking("to c").unwrap();
    assert_eq!(c.recv_blocking().unwrap().frames()[0], "to c");
    // Another context has names of its own.
    let other = Context::new();
    let d = socket(&other, Pull);
    d.bind(&ep).unwrap();
}

#[test]
fn several_connects_to_one_bind_are_fair_queued_and_round_robined() {
    let ctx = Context::new();
    let ep = name();
    let pull = socket(&ctx, Pull);
    let pushes: Vec<_> = (0..3).map(|_| socket(&ctx, Push)).collect();
    // One connects before the bind, two after.
    pushes[0].connect(&ep).unwrap();
    pull.bind(&ep).unwrap();
    for p in &pushes[1..] {
        p.connect(&ep).unwrap();
    }
    for (i, p) in pushes.iter().enumerate() {
        p.send_blocking(format!("from {i}")).unwrap();
    }
    let mut got: Vec<_> = (0..3)
        .map(|_| pull.recv_blocking().unwrap().frames()[0].clone())
        .collect();
    got.sort();
    assert_eq!(got, ["from 0", "from 1", "from 2"]);
    // A PUSH bound to by three PULLs deals round-robin.
    let ep2 = name();
    let push = socket(&ctx, Push);
    push.bind(&ep2).unwrap();
    let pulls: Vec<_> = (0..3).map(|_| socket(&ctx, Pull)).collect();
    for p in &pulls {
        p.connect(&ep2).unwrap();
    }
    for i in 0..9u32 {
        push.send_blocking(i.to_string()).unwrap();
    }
    for p in &pulls {
        for _ in 0..3 {
            p.recv_blocking().unwrap();
        }
        assert!(matches!(p.try_recv(), Err(Error::WouldBlock)));
    }
}

/// `senders` inproc PUSH sockets connected to one PULL, in order, each
/// sending `each` messages "ss k" (sender, then count) before the PULL
/// takes any; returns all of them as the PULL received them.
fn all_sent_first(senders: usize, each: usize) -> Vec<String> {
    let ctx = Context::new();
    let (pull, ep) = bound(&ctx, Pull);
    let pushes: Vec<_> = (0..senders).map(|_| socket(&ctx, Push)).collect();
    for p in &pushes {
        p.connect(&ep).expect("connect");
    }
    for (i, p) in pushes.iter().enumerate() {
        for k in 0..each {
            p.send_blocking(format!("{i:02} {k}")).expect("send");
        }
    }
    (0..senders * each)
        .map(|_| {
            let m = pull.recv_blocking().expect("receive");
            String::from_utf8(m.frames()[0].to_vec()).expect("text")
        })
        .collect()
}

/// A PULL with messages waiting from several inproc senders takes one from
/// each in turn, as libzmq's fair queueing does, each sender's in order.
#[test]
fn a_pull_takes_from_its_inproc_senders_in_turn() {
    let got = all_sent_first(3, 4);
    for (round, three) in got.chunks(3).enumerate() {
        let mut senders: Vec<&str> = three.iter().map(|m| &m[..2]).collect();
        senders.sort();
        assert_eq!(senders, ["00", "01", "02"], "round {round} of {got:?}");
        for m in three {
            assert_eq!(&m[3..], round.to_string(), "{got:?}");
        }
    }
}

/// Beyond the inbox's lanes, more inproc senders share its queue; lanes
/// and queue take turns, so neither group waits for the other to run dry,
/// and each sender's messages stay in order.
#[test]
fn many_inproc_senders_share_turns_whether_or_not_they_have_a_lane() {
    let got = all_sent_first(12, 4);
    // The first eight connected have lanes; the other four share the
    // queue. Both groups are in the first dozen.
    let first: Vec<usize> = got[..12].iter().map(|m| m[..2].parse().unwrap()).collect();
    assert!(first.iter().any(|&s| s < 8), "{got:?}");
    assert!(first.iter().any(|&s| s >= 8), "{got:?}");
    for i in 0..12 {
        let mine: Vec<&str> = got
            .iter()
            .filter(|m| m[..2] == format!("{i:02}"))
            .map(|m| &m[3..])
            .collect();
        assert_eq!(mine, ["0", "1", "2", "3"], "sender {i}: {got:?}");
    }
}

#[test]
fn disconnect_and_unbind_end_the_pairs_and_the_peer_hears_of_it() {
    let ctx = Context::new();
    let ep = name();
    let pull = socket(&ctx, Pull);
    let mon = pull.monitor();
    pull.bind(&ep).unwrap();
    let push = socket(&ctx, Push);
    let push_mon = push.monitor();
    push.connect(&ep).unwrap();
    for kind in ["Listening", "Accepted", "HandshakeSucceeded"] {
        let ev = mon.next_blocking().unwrap();
        assert!(format!("{ev:?}").starts_with(kind), "{kind}: {ev:?}");
        assert_eq!(ev.endpoint(), ep);
    }
    for kind in ["Connected", "HandshakeSucceeded"] {
        let ev = push_mon.next_blocking().unwrap();
        assert!(format!("{ev:?}").starts_with(kind), "{kind}: {ev:?}");
    }
    push.send_blocking("before").unwrap();
    push.disconnect(&ep).unwrap();
    let ev = mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }));
    assert!(ev.is_some(), "the bound side sees the disconnect");
    // What was sent before is still there; nothing goes out now.
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "before");
    assert!(matches!(push.try_send("after"), Err(Error::WouldBlock)));
    // Unbind closes what was paired through the name.
    push.connect(&ep).unwrap();
    push.send_blocking("again").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "again");
    pull.unbind(&ep).unwrap();
    let ev =
        push_mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }));
    assert!(ev.is_some(), "the connected side sees the unbind");
    assert!(matches!(push.try_send("gone"), Err(Error::WouldBlock)));
}

#[test]
fn messages_sent_before_the_sender_closes_stay_receivable() {
    let ctx = Context::new();
    let (pull, ep) = bound(&ctx, Pull);
    let push = socket(&ctx, Push);
    push.connect(&ep).unwrap();
    for i in 0..10u32 {
        push.send_blocking(i.to_string()).unwrap();
    }
    drop(push);
    for i in 0..10u32 {
        assert_eq!(pull.recv_blocking().unwrap().frames()[0], i.to_string());
    }
}

#[test]
fn immediate_connects_queue_nothing_before_the_bind() {
    let ctx = Context::new();
    let ep = name();
    let push = ctx.socket_with(Push, |o| o.immediate = true).unwrap();
    push.connect(&ep).unwrap();
    assert!(matches!(push.try_send("early"), Err(Error::WouldBlock)));
    let pull = socket(&ctx, Pull);
    pull.bind(&ep).unwrap();
    push.try_send("now").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "now");
    // The endpoint's pipe is the one paired: disconnect ends it.
    push.disconnect(&ep).unwrap();
    assert!(matches!(push.try_send("after"), Err(Error::WouldBlock)));
}

#[test]
fn a_router_sees_the_connecting_sockets_routing_id_and_generates_one_otherwise() {
    let ctx = Context::new();
    let (router, ep) = bound(&ctx, Router);
    let named = ctx
        .socket_with(Dealer, |o| o.routing_id = Bytes::from("worker-1"))
        .unwrap();
    let anonymous = ctx.socket(Dealer).unwrap();
    named.connect(&ep).unwrap();
    anonymous.connect(&ep).unwrap();
    named.send_blocking("a").unwrap();
    let got = router.recv_blocking().unwrap();
    assert_eq!(frames(&got), [&b"worker-1"[..], b"a"]);
    anonymous.send_blocking("b").unwrap();
    let got = router.recv_blocking().unwrap();
    assert_eq!(got.frames()[0].len(), 5, "a generated id: {got:?}");
    assert_eq!(got.frames()[0][0], 0);
    // Routing back by either id.
    router
        .send_blocking(Message::from_frames([
            got.frames()[0].clone(),
            "to b".into(),
        ]))
        .unwrap();
    assert_eq!(anonymous.recv_blocking().unwrap().frames()[0], "to b");
    // A second peer with a taken id is refused, and the monitor says so.
    let mon = router.monitor();
    let dup = ctx
        .socket_with(Dealer, |o| o.routing_id = Bytes::from("worker-1"))
        .unwrap();
    dup.connect(&ep).unwrap();
    let ev = mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Refused { .. }));
    assert!(ev.is_some());
}

#[test]
fn xpub_sees_subscriptions_and_cancels_and_a_late_subscriber_is_not_late() {
    let ctx = Context::new();
    let (xpub, ep) = bound(&ctx, XPub);
    let sub = socket(&ctx, Sub);
    sub.subscribe("weather").unwrap();
    sub.connect(&ep).unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [b"\x01weather"]);
    assert_eq!(xpub.subscription_count(), 1);
    xpub.send_blocking("weather 21C").unwrap();
    xpub.send_blocking("sport 2-1").unwrap();
    assert_eq!(sub.recv_blocking().unwrap().frames()[0], "weather 21C");
    sub.unsubscribe("weather").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [b"\x00weather"]);
    // A subscriber that leaves takes its subscriptions along.
    sub.subscribe("news").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [b"\x01news"]);
    drop(sub);
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [b"\x00news"]);
}

#[test]
fn incompatible_types_are_not_paired() {
    let ctx = Context::new();
    let ep = name();
    let pull = socket(&ctx, Pull);
    let mon = pull.monitor();
    pull.bind(&ep).unwrap();
    let sub = socket(&ctx, Sub);
    sub.connect(&ep).unwrap();
    let ev = mon.wait_for_blocking(TIMEOUT, |e| {
        matches!(e, MonitorEvent::HandshakeFailed { .. })
    });
    assert!(ev.is_some());
    let push = socket(&ctx, Push);
    push.connect(&ep).unwrap();
    push.send_blocking("ok").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "ok");
}

#[test]
fn a_conflating_receiver_and_a_conflating_sender_keep_only_the_newest() {
    let ctx = Context::new();
    for conflating_side in [Push, Pull] {
        let ep = name();
        let pull = ctx
            .socket_with(Pull, |o| o.conflate = conflating_side == Pull)
            .unwrap();
        pull.bind(&ep).unwrap();
        let push = ctx
            .socket_with(Push, |o| o.conflate = conflating_side == Push)
            .unwrap();
        push.connect(&ep).unwrap();
        for i in 0..100u32 {
            push.try_send(i.to_string()).unwrap();
        }
        assert_eq!(
            pull.recv_blocking().unwrap().frames()[0],
            "99",
            "{conflating_side:?}"
        );
        assert!(matches!(pull.try_recv(), Err(Error::WouldBlock)));
    }
}

#[test]
fn many_threads_into_one_pull_lose_nothing_and_keep_each_senders_order() {
    const SENDERS: usize = 16;
    const EACH: u32 = 5_000;
    let ctx = Context::new();
    let ep = name();
    let pull = ctx
        .socket_with(Pull, |o| {
            o.rcvhwm = 100;
            o.rcvtimeo = Some(TIMEOUT);
        })
        .unwrap();
    pull.bind(&ep).unwrap();
    let threads: Vec<_> = (0..SENDERS)
        .map(|s| {
            let ctx = ctx.clone();
            let ep = ep.clone();
            std::thread::spawn(move || {
                let push = ctx
                    .socket_with(Push, |o| {
                        o.sndhwm = 100;
                        o.sndtimeo = Some(TIMEOUT);
                    })
                    .unwrap();
                push.connect(&ep).unwrap();
                for i in 0..EACH {
                    push.send_blocking(Message::from_frames([
                        Bytes::from(s.to_string()),
                        Bytes::copy_from_slice(&i.to_be_bytes()),
                    ]))
                    .unwrap();
                }
            })
        })
        .collect();
    let mut next: HashMap<usize, u32> = HashMap::new();
    for _ in 0..SENDERS * EACH as usize {
        let m = pull.recv_blocking().unwrap();
        let s: usize = std::str::from_utf8(&m.frames()[0])
            .unwrap()
            .parse()
            .unwrap();
        let i = u32::from_be_bytes(m.frames()[1][..].try_into().unwrap());
        let want = next.entry(s).or_default();
        assert_eq!(i, *want, "sender {s} out of order");
        *want += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(next.values().all(|n| *n == EACH));
    assert!(matches!(pull.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn security_options_do_not_stop_inproc() {
    // As in libzmq, inproc has no mechanism: a CURVE server and a NULL
    // client talk over inproc (the docs say so).
    let ctx = Context::new();
    let ep = name();
    let kp = zmtp_sockets::security::KeyPair::generate();
    let pull = ctx
        .socket_with(Pull, |o| {
            o.security = zmtp_sockets::Security::CurveServer { keys: kp };
        })
        .unwrap();
    pull.bind(&ep).unwrap();
    let push = socket(&ctx, Push);
    push.connect(&ep).unwrap();
    push.send_blocking("plain").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "plain");
}

#[test]
fn term_with_inproc_pairs_and_waiting_connects_returns() {
    let ctx = Context::new();
    let (pull, ep) = bound(&ctx, Pull);
    let push = socket(&ctx, Push);
    push.connect(&ep).unwrap();
    let waiting = socket(&ctx, Push);
    waiting.connect(&name()).unwrap();
    waiting.try_send("never bound").unwrap();
    push.send_blocking("x").unwrap();
    drop((pull, push, waiting));
    ctx.term();
}

#[test]
fn a_curve_frontend_proxy_serves_inproc_workers() {
    // The zguide's multithreaded server, with CURVE on the tcp side: the
    // proxy terminates CURVE, the workers take requests over inproc.
    let ctx = Context::new();
    let frontend = socket(&ctx, Router);
    let backend = socket(&ctx, Dealer);
    let client = socket(&ctx, Req);
    common::secure(&frontend, &client, common::Mech::Curve);
    let ep = frontend.bind("tcp://127.0.0.1:0").unwrap();
    let workers_ep = name();
    backend.bind(&workers_ep).unwrap();
    std::thread::scope(|scope| {
        let proxy = scope.spawn(|| zmtp_sockets::proxy_blocking(&frontend, &backend, None));
        for w in 0..3 {
            let rep = socket(&ctx, Rep);
            rep.connect(&workers_ep).unwrap();
            scope.spawn(move || common::serve_tagged(&rep, w));
        }
        client.connect(&ep).unwrap();
        for i in 0..30 {
            let q = format!("q{i}");
            client.send_blocking(q.clone()).unwrap();
            let reply = client.recv_blocking().unwrap();
            let text = String::from_utf8(reply.frames()[0].to_vec()).unwrap();
            assert!(text.starts_with('w') && text.ends_with(&q), "{text}");
        }
        ctx.clone().term();
        assert!(matches!(proxy.join().unwrap(), Err(Error::Closed)));
    });
}

#[test]
fn a_router_delivers_what_a_peer_sent_before_it_left_with_its_id() {
    let ctx = Context::new();
    let ep = name();
    let router = socket(&ctx, Router);
    let mon = router.monitor();
    router.bind(&ep).unwrap();
    let dealer = ctx
        .socket_with(Dealer, |o| o.routing_id = Bytes::from("gone"))
        .unwrap();
    dealer.connect(&ep).unwrap();
    for i in 0..3 {
        dealer.send_blocking(format!("m{i}")).unwrap();
    }
    drop(dealer);
    // The ROUTER has seen the peer leave before it reads.
    let ev = mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }));
    assert!(ev.is_some());
    for i in 0..3 {
        let m = router.recv_blocking().unwrap();
        assert_eq!(frames(&m), [b"gone".as_slice(), format!("m{i}").as_bytes()]);
    }
}

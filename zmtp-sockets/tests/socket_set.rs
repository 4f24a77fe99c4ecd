//! DEALER, ROUTER, PAIR, XPUB and XSUB between our own sockets, over tcp
//! and ipc, with the options that come with them. libzmq 4.3's behaviour
//! is the reference where the RFCs are silent; `tests/` checks the same
//! cells against libzmq itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use zmtp_sockets::{Context, Error, Message, MonitorEvent, Refusal, Socket, SocketType};

fn socket(ctx: &Context, t: SocketType) -> Socket {
    let s = ctx.socket(t).unwrap();
    s.configure(|o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.sndtimeo = Some(TIMEOUT);
        o.linger = Some(Duration::from_secs(1));
    })
    .unwrap();
    s
}

/// Connects `s` to `ep` and waits for its handshake.
fn connect(s: &Socket, ep: &str) {
    let mon = s.monitor();
    s.connect(ep).unwrap();
    let ev = mon.wait_for_blocking(TIMEOUT, |e| {
        matches!(
            e,
            MonitorEvent::HandshakeSucceeded { .. } | MonitorEvent::HandshakeFailed { .. }
        )
    });
    assert!(
        matches!(ev, Some(MonitorEvent::HandshakeSucceeded { .. })),
        "{ev:?}"
    );
}

fn frames(m: &Message) -> Vec<&[u8]> {
    m.frames().iter().map(|f| &f[..]).collect()
}

#[test]
fn every_standard_socket_type_can_be_made() {
    let ctx = Context::new();
    for t in SocketType::ALL {
        let s = ctx.socket(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(s.socket_type(), t);
    }
}

#[test]
fn router_prepends_ids_and_routes_replies_over_every_mechanism() {
    let ctx = Context::new();
    for m in [Mech::Null, Mech::Curve] {
        for t in [Transport::Tcp, Transport::Ipc] {
            let router = socket(&ctx, SocketType::Router);
            let a = socket(&ctx, SocketType::Dealer);
            let b = socket(&ctx, SocketType::Dealer);
            a.configure(|o| o.routing_id = Bytes::from_static(b"A"))
                .unwrap();
            // Each client gets keys of its own (CURVE: a new server key
            // too, which applies to the connections made after it).
            secure(&router, &a, m);
            let ep = router.bind(&endpoint(t)).unwrap();
            connect(&a, &ep);
            secure(&router, &b, m);
            connect(&b, &ep);
            a.send_blocking(Message::from_frames([&b"from A"[..], b"2"]))
                .unwrap();
            let got = router.recv_blocking().unwrap();
            assert_eq!(frames(&got), [&b"A"[..], b"from A", b"2"], "{m:?} {t:?}");
            b.send_blocking("from B").unwrap();
            let got = router.recv_blocking().unwrap();
            let b_id = got.frames()[0].clone();
            assert_eq!(b_id.len(), 5, "a generated id");
            assert_eq!(b_id[0], 0);
            assert_eq!(&got.frames()[1][..], b"from B");
            // Each reply reaches only the peer it names, without the id.
            router
                .send_blocking(Message::from_frames([b_id.clone(), Bytes::from("for B")]))
                .unwrap();
            router
                .send_blocking(Message::from_frames([&b"A"[..], b"for A"]))
                .unwrap();
            assert_eq!(frames(&b.recv_blocking().unwrap()), [&b"for B"[..]]);
            assert_eq!(frames(&a.recv_blocking().unwrap()), [&b"for A"[..]]);
            for s in [&a, &b] {
                s.configure(|o| o.rcvtimeo = Some(Duration::from_millis(100)))
                    .unwrap();
                assert!(matches!(s.recv_blocking(), Err(Error::WouldBlock)));
            }
        }
    }
}

#[test]
fn req_through_router_and_dealer_to_rep_keep_the_envelope() {
    let ctx = Context::new();
    // REQ -> ROUTER: [id, "", body].
    let (router, req) = pair(
        &ctx,
        SocketType::Router,
        SocketType::Req,
        Mech::Null,
        Transport::Tcp,
        true,
    );
    req.send_blocking("question").unwrap();
    let got = router.recv_blocking().unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(&got.frames()[1..], [Bytes::new(), Bytes::from("question")]);
    let mut reply = Message::from_frames([got.frames()[0].clone(), Bytes::new()]);
    reply.push("answer");
    router.send_blocking(reply).unwrap();
    assert_eq!(frames(&req.recv_blocking().unwrap()), [&b"answer"[..]]);

    // DEALER -> REP: the DEALER sends the delimiter itself.
    let (rep, dealer) = pair(
        &ctx,
        SocketType::Rep,
        SocketType::Dealer,
        Mech::Null,
        Transport::Ipc,
        true,
    );
    dealer
        .send_blocking(Message::from_frames([&b""[..], b"q"]))
        .unwrap();
    assert_eq!(frames(&rep.recv_blocking().unwrap()), [&b"q"[..]]);
    rep.send_blocking("r").unwrap();
    assert_eq!(frames(&dealer.recv_blocking().unwrap()), [&b""[..], b"r"]);
}

#[test]
fn router_mandatory_reports_unknown_ids_and_the_default_drops_them() {
    let ctx = Context::new();
    let (router, dealer) = pair(
        &ctx,
        SocketType::Router,
        SocketType::Dealer,
        Mech::Null,
        Transport::Tcp,
        true,
    );
    // Dropped silently by default, as in libzmq.
    router
        .send_blocking(Message::from_frames([&b"nobody"[..], b"x"]))
        .unwrap();
    router.configure(|o| o.router_mandatory = true).unwrap();
    assert!(matches!(
        router.send_blocking(Message::from_frames([&b"nobody"[..], b"x"])),
        Err(Error::HostUnreachable)
    ));
    assert!(matches!(
        router.try_send(Message::from_frames([&b"nobody"[..], b"x"])),
        Err(Error::HostUnreachable)
    ));
    drop(dealer);
    // An option for another type is refused, not ignored.
    let d = ctx.socket(SocketType::Dealer).unwrap();
    assert!(matches!(
        d.configure(|o| o.router_mandatory = true),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        d.configure(|o| o.xpub_verbose = true),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn a_duplicate_routing_id_is_refused_unless_handover() {
    let ctx = Context::new();
    for handover in [false, true] {
        let router = socket(&ctx, SocketType::Router);
        router.configure(|o| o.router_handover = handover).unwrap();
        let mon = router.monitor();
        let ep = router.bind(&endpoint(Transport::Tcp)).unwrap();
        let first = socket(&ctx, SocketType::Dealer);
        let second = socket(&ctx, SocketType::Dealer);
        for s in [&first, &second] {
            s.configure(|o| o.routing_id = Bytes::from_static(b"same"))
                .unwrap();
        }
        connect(&first, &ep);
        second.connect(&ep).unwrap();
        if handover {
            let ev =
                mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }));
            assert!(ev.is_some(), "the old peer is disconnected");
            router
                .send_blocking(Message::from_frames([&b"same"[..], b"to the new one"]))
                .unwrap();
            assert_eq!(
                frames(&second.recv_blocking().unwrap()),
                [&b"to the new one"[..]]
            );
        } else {
            let ev = mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Refused { .. }));
            match ev {
                Some(MonitorEvent::Refused {
                    reason: Refusal::DuplicateRoutingId(id),
                    ..
                }) => assert_eq!(&id[..], b"same"),
                other => panic!("{other:?}"),
            }
            router
                .send_blocking(Message::from_frames([&b"same"[..], b"to the first"]))
                .unwrap();
            assert_eq!(
                frames(&first.recv_blocking().unwrap()),
                [&b"to the first"[..]]
            );
        }
    }
}

#[test]
fn probe_router_announces_a_dealer_at_once() {
    let ctx = Context::new();
    let router = socket(&ctx, SocketType::Router);
    let ep = router.bind(&endpoint(Transport::Tcp)).unwrap();
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer
        .configure(|o| {
            o.probe_router = true;
            o.routing_id = Bytes::from_static(b"D");
        })
        .unwrap();
    dealer.connect(&ep).unwrap();
    let got = router.recv_blocking().unwrap();
    assert_eq!(frames(&got), [&b"D"[..], b""]);
}

#[test]
fn pair_takes_one_peer_and_refuses_the_next() {
    let ctx = Context::new();
    for t in [Transport::Tcp, Transport::Ipc] {
        let (a, b) = pair(
            &ctx,
            SocketType::Pair,
            SocketType::Pair,
            Mech::Null,
            t,
            true,
        );
        a.send_blocking(Message::from_frames([&b"to b"[..], b"2"]))
            .unwrap();
        assert_eq!(frames(&b.recv_blocking().unwrap()), [&b"to b"[..], b"2"]);
        b.send_blocking("to a").unwrap();
        assert_eq!(frames(&a.recv_blocking().unwrap()), [&b"to a"[..]]);

        let mon = a.monitor();
        let ep = a.bind(&endpoint(t)).unwrap();
        let intruder = socket(&ctx, SocketType::Pair);
        intruder.connect(&ep).unwrap();
        let ev = mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Refused { .. }));
        assert!(
            matches!(
                ev,
                Some(MonitorEvent::Refused {
                    reason: Refusal::SecondPeer,
                    ..
                })
            ),
            "{ev:?}"
        );
        // The first peer still has the pair to itself.
        a.send_blocking("still yours").unwrap();
        assert_eq!(frames(&b.recv_blocking().unwrap()), [&b"still yours"[..]]);
    }
}

/// A peer that sends and leaves at once: what it sent is received after
/// the bound PAIR has seen it go, and the next peer is taken.
#[test]
fn pair_receives_what_a_departed_peer_sent() {
    let ctx = Context::new();
    let mut eps: Vec<String> = [Transport::Tcp, Transport::Ipc]
        .into_iter()
        .map(endpoint)
        .collect();
    eps.push("inproc://pair-departed".into());
    for ep in eps {
        let a = socket(&ctx, SocketType::Pair);
        let mon = a.monitor();
        let ep = a.bind(&ep).unwrap();
        let b = socket(&ctx, SocketType::Pair);
        connect(&b, &ep);
        b.send_blocking("last words").unwrap();
        assert_eq!(b.flush_blocking(TIMEOUT), 0, "{ep}");
        drop(b);
        let gone =
            mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }));
        assert!(gone.is_some(), "{ep}: no disconnect");
        assert_eq!(
            frames(&a.recv_blocking().unwrap()),
            [&b"last words"[..]],
            "{ep}"
        );
        // The next peer is the pair's.
        let c = socket(&ctx, SocketType::Pair);
        connect(&c, &ep);
        c.send_blocking("next").unwrap();
        assert_eq!(frames(&a.recv_blocking().unwrap()), [&b"next"[..]], "{ep}");
        a.send_blocking("to c").unwrap();
        assert_eq!(frames(&c.recv_blocking().unwrap()), [&b"to c"[..]], "{ep}");
    }
}

#[test]
fn xpub_sees_subscriptions_once_and_cancels_at_the_last() {
    let ctx = Context::new();
    let xpub = socket(&ctx, SocketType::XPub);
    let ep = xpub.bind(&endpoint(Transport::Tcp)).unwrap();
    let s1 = socket(&ctx, SocketType::Sub);
    let s2 = socket(&ctx, SocketType::Sub);
    connect(&s1, &ep);
    connect(&s2, &ep);
    s1.subscribe("A").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01A"[..]]);
    // A duplicate from the other peer is filtered: the next notice is B.
    s2.subscribe("A").unwrap();
    s2.subscribe("B").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01B"[..]]);
    // Publishing follows the subscriptions.
    xpub.send_blocking("A1").unwrap();
    xpub.send_blocking("B1").unwrap();
    assert_eq!(frames(&s1.recv_blocking().unwrap()), [&b"A1"[..]]);
    assert_eq!(frames(&s2.recv_blocking().unwrap()), [&b"A1"[..]]);
    assert_eq!(frames(&s2.recv_blocking().unwrap()), [&b"B1"[..]]);
    // The cancel is passed on when the last holder cancels.
    s1.unsubscribe("A").unwrap();
    s2.unsubscribe("B").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x00B"[..]]);
    // A peer that leaves cancels what only it held.
    drop(s2);
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x00A"[..]]);
}

#[test]
fn xpub_verbose_passes_every_subscription() {
    let ctx = Context::new();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.configure(|o| o.xpub_verbose = true).unwrap();
    let ep = xpub.bind(&endpoint(Transport::Ipc)).unwrap();
    let s1 = socket(&ctx, SocketType::Sub);
    let s2 = socket(&ctx, SocketType::Sub);
    connect(&s1, &ep);
    connect(&s2, &ep);
    s1.subscribe("A").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01A"[..]]);
    s2.subscribe("A").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01A"[..]]);
}

#[test]
fn xsub_subscribes_by_sending_and_replays_to_a_late_publisher() {
    let ctx = Context::new();
    let xsub = socket(&ctx, SocketType::XSub);
    let ep = endpoint(Transport::Tcp);
    let ep = xsub.bind(&ep).unwrap();
    let xpub = socket(&ctx, SocketType::XPub);
    connect(&xpub, &ep);
    xsub.send_blocking(Message::from(&b"\x01A"[..])).unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01A"[..]]);
    // Data goes upstream unchanged.
    xsub.send_blocking("upstream").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"upstream"[..]]);
    xpub.send_blocking("A-news").unwrap();
    xpub.send_blocking("B-news").unwrap();
    xpub.send_blocking("A-more").unwrap();
    assert_eq!(frames(&xsub.recv_blocking().unwrap()), [&b"A-news"[..]]);
    assert_eq!(frames(&xsub.recv_blocking().unwrap()), [&b"A-more"[..]]);
    // A publisher that comes later is sent the subscription in effect.
    let pub2 = socket(&ctx, SocketType::XPub);
    connect(&pub2, &ep);
    assert_eq!(frames(&pub2.recv_blocking().unwrap()), [&b"\x01A"[..]]);
    // Cancel.
    xsub.send_blocking(Message::from(&b"\x00A"[..])).unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x00A"[..]]);
    assert!(matches!(xsub.subscribe("x"), Err(Error::NotSupported(_))));
}

#[test]
fn conflate_keeps_the_newest_message_and_is_refused_where_it_cannot_apply() {
    let ctx = Context::new();
    let pull = socket(&ctx, SocketType::Pull);
    pull.configure(|o| o.conflate = true).unwrap();
    let push = socket(&ctx, SocketType::Push);
    let ep = pull.bind(&endpoint(Transport::Tcp)).unwrap();
    connect(&push, &ep);
    for i in 0..1000u32 {
        push.send_blocking(Message::from(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    // Whatever arrives is in order, and the last message is never lost.
    let mut last = None;
    let mut received = 0;
    while last != Some(999u32) {
        let m = pull.recv_blocking().unwrap();
        let n = u32::from_be_bytes(m.frames()[0][..].try_into().unwrap());
        assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
        last = Some(n);
        received += 1;
    }
    assert!(received <= 1000);
    assert!(matches!(
        pull.configure(|o| o.conflate = false),
        Err(Error::InvalidOption(_))
    ));
    // XSUB too: its pipes carry subscriptions, which conflating would drop.
    for t in [
        SocketType::Req,
        SocketType::Rep,
        SocketType::Router,
        SocketType::Pair,
        SocketType::XSub,
    ] {
        let s = ctx.socket(t).unwrap();
        assert!(
            matches!(
                s.configure(|o| o.conflate = true),
                Err(Error::InvalidOption(_))
            ),
            "{t}"
        );
    }
}

/// Messages a conflating PUSH replaces are gone by design: they do not
/// stay "unsent", so a flush does not wait for them.
#[test]
fn conflated_messages_do_not_count_as_unsent() {
    let ctx = Context::new();
    let push = socket(&ctx, SocketType::Push);
    push.configure(|o| o.conflate = true).unwrap();
    // Nobody listens: everything waits on the connect endpoint's pipe.
    let ep = common::quiet_tcp_endpoint();
    push.connect(&ep).unwrap();
    for i in 0..10u8 {
        push.send_blocking(vec![i]).unwrap();
    }
    // Nine were replaced, the newest waits.
    assert_eq!(push.unsent(), 1);
}

#[test]
fn a_connecting_xpub_and_pub_see_a_bound_subscriber() {
    let ctx = Context::new();
    let sub = socket(&ctx, SocketType::Sub);
    sub.subscribe("A").unwrap();
    let ep = sub.bind(&endpoint(Transport::Tcp)).unwrap();
    let xpub = socket(&ctx, SocketType::XPub);
    connect(&xpub, &ep);
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01A"[..]]);
}

#[test]
fn a_sub_that_stops_taking_everything_filters_what_it_already_holds() {
    let ctx = Context::new();
    let xpub = socket(&ctx, SocketType::XPub);
    let ep = xpub.bind(&endpoint(Transport::Ipc)).unwrap();
    let sub = socket(&ctx, SocketType::Sub);
    connect(&sub, &ep);
    sub.subscribe("").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01"[..]]);
    sub.subscribe("A").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01A"[..]]);
    xpub.send_blocking("B1").unwrap();
    xpub.send_blocking("A1").unwrap();
    // B1 is in the SUB's inbox while it still takes everything (and
    // receives without its lock); then it stops, and B1 is filtered.
    let mut p = zmtp_sockets::Poller::new();
    p.add(&sub, zmtp_sockets::Interest::Readable);
    assert_eq!(p.wait_blocking(Some(TIMEOUT)).len(), 1, "nothing arrived");
    sub.unsubscribe("").unwrap();
    assert_eq!(frames(&sub.recv_blocking().unwrap()), [&b"A1"[..]]);
    // And with everything subscribed again, everything comes through.
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x00"[..]]);
    sub.subscribe("").unwrap();
    assert_eq!(frames(&xpub.recv_blocking().unwrap()), [&b"\x01"[..]]);
    xpub.send_blocking("C1").unwrap();
    assert_eq!(frames(&sub.recv_blocking().unwrap()), [&b"C1"[..]]);
}

//! The batch calls (`send_many`, `recv_many` and their `try_` and
//! `_blocking` forms): the same messages, order, routing and high-water
//! marks as single calls, with what was not sent left to the caller.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Mech, TIMEOUT, Transport, pair, pull_push};
use zmtp_sockets::{Context, Error, Message, Socket, SocketType};

fn msgs<const N: usize>(bodies: [&str; N]) -> Vec<Message> {
    bodies.into_iter().map(Message::from).collect()
}

fn bodies(got: &[Message]) -> Vec<Bytes> {
    got.iter().map(|m| m.frames()[0].clone()).collect()
}

/// A bound socket and a connected one over tcp, NULL, handshake done.
fn tcp_pair(ctx: &Context, bind: SocketType, conn: SocketType) -> (Socket, Socket) {
    pair(ctx, bind, conn, Mech::Null, Transport::Tcp, true)
}

/// Receives until `n` messages are in, in calls of at most `max`.
fn recv_n(s: &Socket, n: usize, max: usize) -> Vec<Message> {
    let mut got = Vec::new();
    while got.len() < n {
        let before = got.len();
        let k = s.recv_many_blocking(&mut got, max).unwrap();
        assert!((1..=max).contains(&k), "{k} messages for a max of {max}");
        assert_eq!(got.len(), before + k);
    }
    got
}

#[test]
fn a_batch_arrives_whole_and_in_order_over_tcp_and_ipc() {
    for t in [Transport::Tcp, Transport::Ipc] {
        let ctx = Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let n = 10_000;
        let mut sent = 0;
        while sent < n {
            let mut batch: Vec<Message> = (sent..sent + 100)
                .map(|i: u32| Message::from(i.to_be_bytes().to_vec()))
                .collect();
            push.send_many_blocking(&mut batch).unwrap();
            assert!(batch.is_empty(), "send_many_blocking left {}", batch.len());
            sent += 100;
        }
        let got = recv_n(&pull, n as usize, 64);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.frames()[0][..], (i as u32).to_be_bytes(), "{t:?}");
        }
        // Nothing more is queued.
        assert!(matches!(
            pull.try_recv_many(&mut Vec::new(), 8),
            Err(Error::WouldBlock)
        ));
        assert_eq!(pull.try_recv_many(&mut Vec::new(), 0).unwrap(), 0);
    }
}

#[test]
fn a_batch_stops_at_the_high_water_mark_and_keeps_what_was_not_sent() {
    let ctx = Context::new();
    let push = ctx
        .socket_with(SocketType::Push, |o| {
            o.sndhwm = 10;
            o.linger = Some(Duration::ZERO);
            o.sndtimeo = Some(Duration::from_millis(50));
        })
        .unwrap();
    // A connect's pipe queues before a peer is there.
    push.connect("tcp://127.0.0.1:9").unwrap();
    let mut batch: Vec<Message> = (0..25u8).map(|i| Message::from(vec![i])).collect();
    assert_eq!(push.try_send_many(&mut batch).unwrap(), 10);
    assert_eq!(batch.len(), 15);
    assert_eq!(batch[0].frames()[0][..], [10]);
    // Full: nothing taken, nothing lost.
    assert!(matches!(
        push.try_send_many(&mut batch),
        Err(Error::WouldBlock)
    ));
    assert_eq!(batch.len(), 15);
    // The blocking form gives up at the send timeout, the batch kept.
    assert!(matches!(
        push.send_many_blocking(&mut batch),
        Err(Error::WouldBlock)
    ));
    assert_eq!(batch.len(), 15);
    assert!(matches!(
        futures_lite::future::block_on(push.send_many(&mut batch)),
        Err(Error::WouldBlock)
    ));
    assert_eq!(batch.len(), 15);
    assert_eq!(batch[0].frames()[0][..], [10]);
    assert_eq!(push.try_send_many(&mut Vec::new()).unwrap(), 0);
}

#[test]
fn a_blocked_batch_goes_on_when_the_peer_takes_messages() {
    let ctx = Context::new();
    let pull = ctx
        .socket_with(SocketType::Pull, |o| {
            o.rcvhwm = 5;
            o.rcvtimeo = Some(TIMEOUT);
        })
        .unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx
        .socket_with(SocketType::Push, |o| {
            o.sndhwm = 5;
            o.sndtimeo = Some(TIMEOUT);
        })
        .unwrap();
    push.connect(&ep).unwrap();
    let n = 2_000u32;
    let sender = std::thread::spawn(move || {
        let mut batch: Vec<Message> = (0..n)
            .map(|i| Message::from(i.to_be_bytes().to_vec()))
            .collect();
        // Far more than both high-water marks: it waits for room, again
        // and again, and finishes.
        push.send_many_blocking(&mut batch).unwrap();
        assert!(batch.is_empty());
        push
    });
    let got = recv_n(&pull, n as usize, 7);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.frames()[0][..], (i as u32).to_be_bytes());
    }
    drop(sender.join().unwrap());
}

#[test]
fn a_batch_deals_round_robin_and_wakes_every_peer() {
    let ctx = Context::new();
    let push = ctx
        .socket_with(SocketType::Push, |o| o.sndtimeo = Some(TIMEOUT))
        .unwrap();
    let mon = push.monitor();
    let mut pulls = Vec::new();
    for _ in 0..3 {
        let pull = ctx
            .socket_with(SocketType::Pull, |o| o.rcvtimeo = Some(TIMEOUT))
            .unwrap();
        let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
        push.connect(&ep).unwrap();
        pulls.push(pull);
    }
    for _ in 0..3 {
        mon.wait_for_blocking(TIMEOUT, |e| {
            matches!(e, zmtp_sockets::MonitorEvent::HandshakeSucceeded { .. })
        })
        .expect("handshake");
    }
    let mut batch: Vec<Message> = (0..300u32)
        .map(|i| Message::from(i.to_be_bytes().to_vec()))
        .collect();
    push.send_many_blocking(&mut batch).unwrap();
    // Each peer got every third message, in order: one wake per peer for
    // the whole batch was enough for each to drain its queue.
    for pull in &pulls {
        let got = recv_n(pull, 100, 100);
        let ids: Vec<u32> = got
            .iter()
            .map(|m| u32::from_be_bytes(m.frames()[0][..].try_into().unwrap()))
            .collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 3), "{ids:?}");
    }
}

#[test]
fn router_batches_carry_routing_ids_both_ways() {
    let ctx = Context::new();
    let router = ctx
        .socket_with(SocketType::Router, |o| {
            o.rcvtimeo = Some(TIMEOUT);
            o.sndtimeo = Some(TIMEOUT);
        })
        .unwrap();
    let ep = router.bind("tcp://127.0.0.1:0").unwrap();
    let mut dealers = Vec::new();
    for id in ["A", "B"] {
        let d = ctx
            .socket_with(SocketType::Dealer, |o| {
                o.routing_id = id.into();
                o.rcvtimeo = Some(TIMEOUT);
            })
            .unwrap();
        d.connect(&ep).unwrap();
        d.send_many_blocking(&mut msgs(["1", "2"])).unwrap();
        dealers.push(d);
    }
    let mut got: Vec<Vec<Bytes>> = recv_n(&router, 4, 16)
        .iter()
        .map(|m| m.frames().to_vec())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [["A", "1"], ["A", "2"], ["B", "1"], ["B", "2"]].map(|f| f.map(Bytes::from).to_vec())
    );
    // Out: each message goes to the peer its first frame names; an unknown
    // id is dropped (not router_mandatory).
    let mut out: Vec<Message> = [["B", "x"], ["Z", "lost"], ["A", "y"], ["B", "z"]]
        .into_iter()
        .map(Message::from_frames)
        .collect();
    assert_eq!(router.try_send_many(&mut out).unwrap(), 4);
    assert!(out.is_empty());
    assert_eq!(bodies(&recv_n(&dealers[0], 1, 8)), ["y"]);
    assert_eq!(bodies(&recv_n(&dealers[1], 2, 8)), ["x", "z"]);
    // Under router_mandatory the unknown id ends the batch with an error:
    // what went before it was sent, what follows it is left.
    router.configure(|o| o.router_mandatory = true).unwrap();
    let mut out: Vec<Message> = [["A", "1"], ["Z", "no"], ["B", "2"]]
        .into_iter()
        .map(Message::from_frames)
        .collect();
    assert!(matches!(
        router.try_send_many(&mut out),
        Err(Error::HostUnreachable)
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].frames()[1], "2");
    assert_eq!(bodies(&recv_n(&dealers[0], 1, 8)), ["1"]);
}

#[test]
fn an_empty_message_ends_a_batch_with_an_error() {
    let ctx = Context::new();
    let (pull, push) = tcp_pair(&ctx, SocketType::Pull, SocketType::Push);
    let mut batch = vec![Message::from("a"), Message::new(), Message::from("b")];
    assert!(matches!(
        push.try_send_many(&mut batch),
        Err(Error::EmptyMessage)
    ));
    assert_eq!(bodies(&batch), ["b"]);
    assert!(matches!(
        push.send_many_blocking(&mut vec![Message::new()]),
        Err(Error::EmptyMessage)
    ));
    push.send_many_blocking(&mut batch).unwrap();
    assert_eq!(bodies(&recv_n(&pull, 2, 8)), ["a", "b"]);
}

#[test]
fn stateful_patterns_keep_their_rules_in_a_batch() {
    let ctx = Context::new();
    let (rep, req) = tcp_pair(&ctx, SocketType::Rep, SocketType::Req);
    // REQ sends one request, then must receive: the second is refused.
    let mut batch = msgs(["q1", "q2", "q3"]);
    assert!(matches!(
        req.try_send_many(&mut batch),
        Err(Error::State(_))
    ));
    assert_eq!(bodies(&batch), ["q3"]);
    assert_eq!(bodies(&recv_n(&rep, 1, 8)), ["q1"]);
    // REP answers one request at a time; a batch receive takes the one.
    rep.send_many_blocking(&mut msgs(["a1"])).unwrap();
    assert_eq!(bodies(&recv_n(&req, 1, 8)), ["a1"]);
    // SUB filters each message of a batch.
    let (publ, sub) = tcp_pair(&ctx, SocketType::Pub, SocketType::Sub);
    sub.subscribe("a").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while publ.subscription_count() == 0 {
        assert!(Instant::now() < deadline, "the subscription never arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    publ.send_many_blocking(&mut msgs(["a1", "b1", "a2", "b2", "a3"]))
        .unwrap();
    assert_eq!(bodies(&recv_n(&sub, 3, 8)), ["a1", "a2", "a3"]);
}

#[test]
fn recv_many_waits_for_the_first_message() {
    let ctx = Context::new();
    let (pull, push) = tcp_pair(&ctx, SocketType::Pull, SocketType::Push);
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let n = futures_lite::future::block_on(pull.recv_many(&mut got, 16)).unwrap();
        assert_eq!(n, got.len());
        assert!(n >= 1);
        (got, pull)
    });
    push.send_many_blocking(&mut msgs(["first"])).unwrap();
    let (got, pull) = receiver.join().unwrap();
    assert_eq!(bodies(&got), ["first"]);
    // With nothing coming, the receive timeout ends the wait.
    pull.configure(|o| o.rcvtimeo = Some(Duration::from_millis(20)))
        .unwrap();
    let mut none = Vec::new();
    assert!(matches!(
        pull.recv_many_blocking(&mut none, 4),
        Err(Error::WouldBlock)
    ));
    assert!(matches!(
        futures_lite::future::block_on(pull.recv_many(&mut none, 4)),
        Err(Error::WouldBlock)
    ));
    assert!(none.is_empty());
    // A socket that never receives says so.
    assert!(matches!(
        push.try_recv_many(&mut none, 4),
        Err(Error::NotSupported(_))
    ));
}

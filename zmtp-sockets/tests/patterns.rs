//! Every pattern over tcp and ipc with NULL, PLAIN and CURVE, between our
//! own sockets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use zmtp_sockets::{Context, Error, Message, MonitorEvent, Socket, SocketType};

fn transports() -> [Transport; 2] {
    [Transport::Tcp, Transport::Ipc]
}

#[test]
fn push_pull_every_mechanism_and_transport() {
    let ctx = Context::new();
    for m in MECHS {
        for t in transports() {
            for server_binds in [true, false] {
                let (pull, push) =
                    pair(&ctx, SocketType::Pull, SocketType::Push, m, t, server_binds);
                for i in 0..100u32 {
                    push.send_blocking(Message::from(i.to_be_bytes().to_vec()))
                        .unwrap();
                }
                for i in 0..100u32 {
                    let msg = pull.recv_blocking().unwrap();
                    assert_eq!(&msg.frames()[0][..], &i.to_be_bytes(), "{m:?} {t:?}");
                }
            }
        }
    }
}

/// Bursts of small messages, each received whole before the next is
/// sent: a connection task that waits a moment for more of a stream
/// (`Cork` in the session) still writes the end of each burst, with no
/// next send to wake it, on an I/O thread that polls and on one that
/// sleeps at once (which waits for more). Bursts of 300 and 700 end
/// below and above the queue lengths that wake either.
#[test]
fn the_end_of_each_burst_arrives_without_a_next_send() {
    let polling = Context::new();
    let sleeping = Context::builder().busy_poll(Duration::ZERO).build();
    for (ctx, t) in [&polling, &sleeping]
        .into_iter()
        .flat_map(|c| transports().map(|t| (c, t)))
    {
        let (pull, push) = pull_push(ctx, t);
        for burst in 0..30u32 {
            let n = if burst % 2 == 0 { 300 } else { 700 };
            for i in 0..n {
                push.send_blocking(Message::from((burst * 1000 + i).to_be_bytes().to_vec()))
                    .unwrap();
            }
            for i in 0..n {
                let msg = pull.recv_blocking().unwrap();
                assert_eq!(
                    &msg.frames()[0][..],
                    &(burst * 1000 + i).to_be_bytes(),
                    "{t:?}"
                );
            }
        }
    }
}

#[test]
fn req_rep_every_mechanism_and_transport() {
    let ctx = Context::new();
    for m in MECHS {
        for t in transports() {
            let (rep, req) = pair(&ctx, SocketType::Rep, SocketType::Req, m, t, true);
            for i in 0..20u8 {
                req.send_blocking(Message::from_frames([
                    Bytes::from(vec![i]),
                    Bytes::from_static(b"part"),
                ]))
                .unwrap();
                let got = rep.recv_blocking().unwrap();
                assert_eq!(
                    got.frames(),
                    &[Bytes::from(vec![i]), Bytes::from_static(b"part")]
                );
                rep.send_blocking(Message::from(vec![i, i])).unwrap();
                assert_eq!(&req.recv_blocking().unwrap().frames()[0][..], &[i, i]);
            }
        }
    }
}

#[test]
fn pub_sub_every_mechanism_and_transport() {
    let ctx = Context::new();
    for m in MECHS {
        for t in transports() {
            let (publ, sub) = pair(&ctx, SocketType::Pub, SocketType::Sub, m, t, true);
            sub.subscribe("weather").unwrap();
            until_subscribed(&publ, &sub, "weather sunny");
            publ.send_blocking("sports none").unwrap();
            publ.send_blocking("weather rain").unwrap();
            // Drain duplicates of the probe, then the filtered stream.
            loop {
                let m = sub.recv_blocking().unwrap();
                if m.frames()[0] != "weather sunny" {
                    assert_eq!(m.frames()[0], "weather rain", "{m:?}");
                    break;
                }
            }
        }
    }
}

#[test]
fn multipart_and_16_mib() {
    let ctx = Context::new();
    for m in NULL_CURVE_NOISE {
        let (pull, push) = pair(
            &ctx,
            SocketType::Pull,
            SocketType::Push,
            m,
            Transport::Tcp,
            true,
        );
        let big = Bytes::from(vec![0xA5u8; 16 << 20]);
        let msg = Message::from_frames([Bytes::from_static(b"head"), Bytes::new(), big.clone()]);
        push.send_blocking(msg.clone()).unwrap();
        let got = pull.recv_blocking().unwrap();
        assert_eq!(got.frames(), msg.frames());
    }
}

/// Large bodies are read into memory reused from earlier bodies once the
/// application has dropped those: a body it still holds never changes, and
/// a body read into reused memory carries exactly the new bytes.
#[test]
fn large_bodies_held_or_dropped_keep_their_bytes() {
    let ctx = Context::new();
    let cases = [
        (Mech::Null, Transport::Tcp),
        (Mech::Null, Transport::Ipc),
        (Mech::Curve, Transport::Tcp),
        (
            Mech::Noise(zmtp_sockets::security::NoisePattern::XX),
            Transport::Ipc,
        ),
    ];
    for (m, t) in cases {
        let (pull, push) = pair(&ctx, SocketType::Pull, SocketType::Push, m, t, true);
        // Sizes around the reuse bounds, each body filled with its index.
        let sizes = [
            300_000usize,
            1 << 20,
            200_000,
            (1 << 20) + 1,
            128 * 1024,
            3 << 20,
        ];
        let body = |i: usize| Bytes::from(vec![i as u8; sizes[i % sizes.len()]]);
        let mut held = Vec::new();
        // Fewer for the ciphers: the tests run unoptimised.
        let n = if matches!(m, Mech::Null) { 48 } else { 12 };
        for i in 0..n {
            push.send_blocking(Message::from(body(i))).unwrap();
            let got = pull.recv_blocking().unwrap();
            assert_eq!(got.frames()[0], body(i), "{m:?} {t:?} message {i}");
            // Hold every third message, drop the rest at once.
            if i % 3 == 0 {
                held.push((i, got));
            }
        }
        for (i, msg) in &held {
            assert_eq!(
                msg.frames()[0],
                body(*i),
                "{m:?} {t:?} held message {i} changed"
            );
        }
    }
}

/// Sends `n` messages of `body(i)` from a thread while receiving them:
/// each arrives with exactly its bytes, in order; one in 50 is held to the
/// end (the rest are dropped at once) and must not change meanwhile.
fn stream_holding_some(
    push: &Socket,
    pull: &Socket,
    n: usize,
    body: impl Fn(usize) -> Bytes + Sync,
    t: Transport,
) {
    let mut held = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..n {
                push.send_blocking(Message::from(body(i))).expect("send");
            }
        });
        for i in 0..n {
            let got = pull.recv_blocking().expect("receive");
            assert!(got.frames()[0] == body(i), "{t:?} message {i} differs");
            if i % 50 == 0 {
                held.push((i, got));
            }
        }
    });
    for (i, msg) in &held {
        assert!(
            msg.frames()[0] == body(*i),
            "{t:?} held message {i} changed"
        );
    }
}

/// A stream of large bodies of one size is read into the memory of
/// bodies the application dropped, again and again: each reuse starts a
/// frame's header further into that memory, until it is made whole again.
/// Every body arrives with exactly its own bytes, from its first to its
/// last, and bodies the application holds meanwhile never change.
#[test]
fn many_bodies_of_one_size_read_into_reused_memory_arrive_whole() {
    let ctx = Context::new();
    for t in [Transport::Tcp, Transport::Ipc] {
        let (pull, push) = pair(
            &ctx,
            SocketType::Pull,
            SocketType::Push,
            Mech::Null,
            t,
            true,
        );
        const SIZE: usize = 1 << 20;
        // Its index throughout, and at both ends (where a body read one
        // header off would differ) the index's four bytes.
        let body = |i: usize| {
            let mut v = vec![i as u8; SIZE];
            let tag = (i as u32).to_le_bytes();
            v[..4].copy_from_slice(&tag);
            v[SIZE - 4..].copy_from_slice(&tag);
            Bytes::from(v)
        };
        // Enough for each reused body to be made whole at least once.
        stream_holding_some(&push, &pull, 600, body, t);
    }
}

/// Messages sent back to back, large ones among small ones, arrive whole
/// and in order: after a large message the next read goes straight into a
/// buffer of that size, which may hold the next frame's start, or several
/// small frames, or a frame larger than it.
#[test]
fn large_and_small_bodies_back_to_back_arrive_whole() {
    let ctx = Context::new();
    for m in [Mech::Null, Mech::Curve] {
        let (pull, push) = pair(
            &ctx,
            SocketType::Pull,
            SocketType::Push,
            m,
            Transport::Tcp,
            true,
        );
        let sizes = [
            1usize << 20,
            1 << 20,
            16,
            (1 << 20) + 4096,
            200_000,
            0,
            3,
            (1 << 20) - 1,
            600_000,
            1 << 21,
            9,
            128 * 1024,
        ];
        let n = if matches!(m, Mech::Null) { 96 } else { 24 };
        let msg = |i: usize| {
            let size = sizes[i % sizes.len()];
            let body = Bytes::from(
                (0..size)
                    .map(|k| (k as u8) ^ (i as u8))
                    .collect::<Vec<u8>>(),
            );
            if i % 5 == 4 {
                Message::from_frames([Bytes::from(vec![i as u8; 7]), body])
            } else {
                Message::from(body)
            }
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..n {
                    push.send_blocking(msg(i)).unwrap();
                }
            });
            for i in 0..n {
                let got = pull.recv_blocking().unwrap();
                assert!(got.frames() == msg(i).frames(), "{m:?} message {i} differs");
            }
        });
    }
}

/// Mid-size messages sent back to back are read in bulk into pooled
/// buffers, which are read into again once the application has dropped
/// every message cut from them: messages the application holds meanwhile
/// never change, and every message arrives whole and in order.
#[test]
fn bulk_reads_into_reused_buffers_keep_held_messages_intact() {
    let ctx = Context::new();
    for t in [Transport::Ipc, Transport::Tcp] {
        let (pull, push) = pair(
            &ctx,
            SocketType::Pull,
            SocketType::Push,
            Mech::Null,
            t,
            true,
        );
        // Sizes below the large-body bound, so that several share a read.
        let sizes = [65_536usize, 20_000, 100_000, 40_000, 127_000, 9_000, 70_001];
        let body = |i: usize| Bytes::from(vec![(i % 251) as u8; sizes[i % sizes.len()]]);
        stream_holding_some(&push, &pull, 3_000, body, t);
    }
}

/// A connection that falls quiet after a burst gives back the memory it
/// kept for reuse (pooled read buffers, large bodies): once the
/// application drops the rest, a message it still holds is the only
/// owner of its memory, with either kind of I/O thread. (While the
/// connection kept its memory for reuse, it shared it.)
#[test]
fn a_quiet_connection_gives_back_the_memory_it_kept() {
    let polling = Context::new();
    let sleeping = Context::builder().busy_poll(Duration::ZERO).build();
    for (ctx, t) in [
        (&polling, Transport::Ipc),
        (&polling, Transport::Tcp),
        (&sleeping, Transport::Tcp),
    ] {
        let (pull, push) = pair(ctx, SocketType::Pull, SocketType::Push, Mech::Null, t, true);
        // Mid-size messages, read in bulk into pooled buffers, with large
        // bodies (read into buffers of their own, watched for reuse) in
        // the middle.
        let size = |i: usize| {
            if (300..303).contains(&i) {
                300_000
            } else {
                65_536
            }
        };
        let n = 400;
        let mut held = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..n {
                    push.send_blocking(Message::from(vec![i as u8; size(i)]))
                        .unwrap();
                }
            });
            for i in 0..n {
                let got = pull.recv_blocking().unwrap();
                assert_eq!(got.frames()[0].len(), size(i), "{t:?}");
                if i == 150 || i == 301 {
                    held.push(got.frames()[0].clone());
                }
            }
        });
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !held.iter().all(Bytes::is_unique) {
            assert!(
                std::time::Instant::now() < deadline,
                "{t:?}: the connection still shares the memory of a held message"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(&held[0][..4], &[150u8; 4]);
        assert_eq!(&held[1][..4], &[45u8; 4]);
    }
}

#[test]
fn req_strict_alternation_and_rep_state() {
    let ctx = Context::new();
    let (rep, req) = pair(
        &ctx,
        SocketType::Rep,
        SocketType::Req,
        Mech::Null,
        Transport::Tcp,
        true,
    );
    assert!(matches!(req.recv_blocking(), Err(Error::State(_))));
    assert!(matches!(rep.send_blocking("x"), Err(Error::State(_))));
    req.send_blocking("one").unwrap();
    assert!(matches!(req.send_blocking("two"), Err(Error::State(_))));
    let r = rep.recv_blocking().unwrap();
    assert!(matches!(rep.recv_blocking(), Err(Error::State(_))));
    rep.send_blocking(r).unwrap();
    assert_eq!(req.recv_blocking().unwrap().frames()[0], "one");
}

#[test]
fn req_round_robins_over_reps() {
    let ctx = Context::new();
    let req = ctx.socket(SocketType::Req).unwrap();
    req.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    let mut reps = Vec::new();
    for i in 0..3u8 {
        let rep = ctx.socket(SocketType::Rep).unwrap();
        rep.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
        let ep = rep.bind("tcp://127.0.0.1:0").unwrap();
        req.connect(&ep).unwrap();
        reps.push((i, rep));
    }
    // Connected pipes exist at once, so round-robin covers all three.
    for round in 0..2 {
        for (i, rep) in &reps {
            req.send_blocking(Message::from(vec![round])).unwrap();
            let got = rep.recv_blocking().unwrap();
            assert_eq!(&got.frames()[0][..], &[round]);
            rep.send_blocking(Message::from(vec![*i])).unwrap();
            assert_eq!(&req.recv_blocking().unwrap().frames()[0][..], &[*i]);
        }
    }
}

#[test]
fn connect_before_bind_and_reconnect_after_restart() {
    let ctx = Context::new();
    // A port nobody listens on yet.
    let ep = common::quiet_tcp_endpoint();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| o.sndtimeo = Some(TIMEOUT)).unwrap();
    push.connect(&ep).unwrap();
    // Queued before the peer exists (ZMQ_IMMEDIATE off).
    push.send_blocking("early").unwrap();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    pull.bind(&ep).unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "early");
    let mon = push.monitor();
    drop(pull);
    mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }))
        .expect("disconnect seen");
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    // The port may linger briefly in the kernel: retry the bind.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while pull.bind(&ep).is_err() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    push.send_blocking("after restart").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "after restart");
}

#[test]
fn push_blocks_then_times_out_without_peers() {
    let ctx = Context::new();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| o.sndtimeo = Some(Duration::from_millis(100)))
        .unwrap();
    assert!(matches!(push.send_blocking("x"), Err(Error::WouldBlock)));
    assert!(matches!(push.try_send("x"), Err(Error::WouldBlock)));
}

#[test]
fn push_hwm_then_timeout() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvhwm = 5).unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| {
        o.sndhwm = 5;
        o.sndtimeo = Some(Duration::from_millis(200));
    })
    .unwrap();
    push.connect(&ep).unwrap();
    // Nobody receives: queues and socket buffers fill, then send times out.
    let payload = Bytes::from(vec![0u8; 256 * 1024]);
    let mut sent = 0;
    loop {
        match push.send_blocking(payload.clone()) {
            Ok(()) => sent += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 10_000, "send never blocked");
    }
    assert!(sent >= 5);
    // Everything sent arrives once the receiver reads.
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    for _ in 0..sent {
        pull.recv_blocking().unwrap();
    }
}

#[test]
fn pub_drops_for_slow_subscriber_while_fast_one_keeps_up() {
    let ctx = Context::new();
    let publ = ctx.socket(SocketType::Pub).unwrap();
    publ.configure(|o| o.sndhwm = 10).unwrap();
    let ep = publ.bind("tcp://127.0.0.1:0").unwrap();
    let mon = publ.monitor();
    let fast = ctx.socket(SocketType::Sub).unwrap();
    let slow = ctx.socket(SocketType::Sub).unwrap();
    for s in [&fast, &slow] {
        s.configure(|o| {
            o.rcvhwm = 10;
            o.rcvtimeo = Some(TIMEOUT);
        })
        .unwrap();
        s.subscribe("").unwrap();
        s.connect(&ep).unwrap();
    }
    for _ in 0..2 {
        mon.wait_for_blocking(TIMEOUT, |e| {
            matches!(e, MonitorEvent::HandshakeSucceeded { .. })
        })
        .unwrap();
    }
    // Wait until both subscriptions are in effect.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let probe = |s: &Socket| {
        s.configure(|o| o.rcvtimeo = Some(Duration::from_millis(20)))
            .unwrap();
        let ok = s.recv_blocking().is_ok();
        s.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
        ok
    };
    let (mut f, mut sl) = (false, false);
    while !(f && sl) {
        publ.send_blocking("probe").unwrap();
        f |= probe(&fast);
        sl |= probe(&slow);
        assert!(std::time::Instant::now() < deadline);
    }
    while fast.try_recv().is_ok() {}
    while slow.try_recv().is_ok() {}
    // The fast subscriber reads each message before the next is sent; the
    // slow one reads nothing. PUB never blocks. (A fast subscriber that
    // read only what had come by the time of each send lost messages too
    // whenever its I/O thread did not run during the loop.)
    let n = 20_000u32;
    let payload = vec![7u8; 1000];
    for i in 0..n {
        let mut m = i.to_be_bytes().to_vec();
        m.extend_from_slice(&payload);
        publ.send_blocking(m).unwrap();
        let msg = fast.recv_blocking().expect("the fast subscriber keeps up");
        assert_eq!(msg.frames()[0][..4], i.to_be_bytes(), "in order, none lost");
    }
    // The slow subscriber reads only now, up to an "end" sent after the
    // loop; "end" itself is dropped while its queue is full, so it is sent
    // again until it arrives.
    slow.configure(|o| o.rcvtimeo = Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut slow_got = 0;
    let mut last = None;
    'outer: loop {
        publ.send_blocking("end").unwrap();
        while let Ok(msg) = slow.recv_blocking() {
            if msg.frames()[0] == "end" {
                break 'outer;
            }
            let i = u32::from_be_bytes(msg.frames()[0][..4].try_into().unwrap());
            assert!(last < Some(i), "in order");
            last = Some(i);
            slow_got += 1;
        }
        assert!(std::time::Instant::now() < deadline, "end never arrived");
    }
    assert!(
        slow_got < n as usize,
        "the slow subscriber must have lost messages ({slow_got} of {n})"
    );
}

#[test]
fn linger_delivers_after_drop() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    let ep = common::quiet_tcp_endpoint();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| o.linger = Some(TIMEOUT)).unwrap();
    push.connect(&ep).unwrap();
    for i in 0..10u8 {
        push.send_blocking(vec![i]).unwrap();
    }
    drop(push);
    // The peer appears only after the socket was dropped.
    pull.bind(&ep).unwrap();
    for i in 0..10u8 {
        assert_eq!(&pull.recv_blocking().unwrap().frames()[0][..], &[i]);
    }
}

#[test]
fn heartbeat_timeout_closes_a_silent_peer() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| {
        o.heartbeat_ivl = Some(Duration::from_millis(100));
        o.heartbeat_timeout = Some(Duration::from_millis(300));
    })
    .unwrap();
    let mon = pull.monitor();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    // A raw peer that completes the NULL handshake, then never answers.
    let mut raw = std::net::TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
    use std::io::Write;
    let mut greeting = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    greeting.extend_from_slice(b"NULL");
    greeting.resize(64, 0);
    raw.write_all(&greeting).unwrap();
    raw.write_all(b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH")
        .unwrap();
    mon.wait_for_blocking(TIMEOUT, |e| {
        matches!(e, MonitorEvent::HandshakeSucceeded { .. })
    })
    .expect("handshake");
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
fn wrong_curve_key_delivers_nothing_and_reports() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    let server = zmtp_sockets::security::KeyPair::generate();
    pull.configure(|o| {
        o.security = zmtp_sockets::Security::CurveServer { keys: server };
        o.rcvtimeo = Some(Duration::from_millis(300));
    })
    .unwrap();
    push.configure(|o| {
        o.linger = Some(Duration::ZERO);
        o.security = zmtp_sockets::Security::CurveClient {
            keys: zmtp_sockets::security::KeyPair::generate(),
            server: zmtp_sockets::security::KeyPair::generate().public,
        }
    })
    .unwrap();
    let mon = pull.monitor();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    push.connect(&ep).unwrap();
    push.send_blocking("secret").unwrap();
    let ev = mon.wait_for_blocking(TIMEOUT, |e| {
        matches!(e, MonitorEvent::HandshakeFailed { .. })
    });
    assert!(ev.is_some());
    assert!(matches!(pull.recv_blocking(), Err(Error::WouldBlock)));
}

#[test]
fn plain_denied_reports_auth_status_on_both_sides() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    let mut t = zmtp_sockets::security::PlainCredentials::new();
    t.allow("admin", "secret");
    pull.configure(|o| {
        o.security = zmtp_sockets::Security::PlainServer;
        o.authenticator = Some(std::sync::Arc::new(t));
        o.rcvtimeo = Some(Duration::from_millis(300));
    })
    .unwrap();
    push.configure(|o| {
        o.linger = Some(Duration::ZERO);
        o.security = zmtp_sockets::Security::PlainClient {
            username: "admin".into(),
            password: "nope".into(),
        }
    })
    .unwrap();
    let (ms, mc) = (pull.monitor(), push.monitor());
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    push.connect(&ep).unwrap();
    push.send_blocking("x").unwrap();
    for mon in [&ms, &mc] {
        let ev = mon.wait_for_blocking(TIMEOUT, |e| {
            matches!(e, MonitorEvent::HandshakeFailed { .. })
        });
        let Some(MonitorEvent::HandshakeFailed { reason, .. }) = ev else {
            panic!()
        };
        assert_eq!(reason, zmtp_sockets::HandshakeFailure::Auth { status: 400 });
    }
    // The client does not retry with the same credentials (RFC 23; libzmq
    // ends the session on an authentication failure): its endpoint stops.
    let ev = mc.wait_for_blocking(TIMEOUT, |e| {
        matches!(
            e,
            MonitorEvent::ConnectRetried { .. } | MonitorEvent::ConnectStopped { .. }
        )
    });
    assert!(
        matches!(ev, Some(MonitorEvent::ConnectStopped { .. })),
        "{ev:?}"
    );
    assert!(matches!(pull.recv_blocking(), Err(Error::WouldBlock)));
}

#[test]
fn metadata_reaches_messages() {
    let ctx = Context::new();
    let (pull, push) = pair(
        &ctx,
        SocketType::Pull,
        SocketType::Push,
        Mech::Plain,
        Transport::Tcp,
        true,
    );
    push.send_blocking("x").unwrap();
    let m = pull.recv_blocking().unwrap();
    assert_eq!(m.user_id().unwrap(), "admin");
    assert_eq!(m.socket_type().unwrap(), "PUSH");
    assert!(m.peer_address().unwrap().starts_with(b"127.0.0.1:"));
}

#[test]
fn metadata_reaches_routed_and_conflated_messages() {
    let ctx = Context::new();
    // ROUTER: the routing id in front, the properties behind.
    let (router, dealer) = pair(
        &ctx,
        SocketType::Router,
        SocketType::Dealer,
        Mech::Plain,
        Transport::Tcp,
        true,
    );
    dealer.send_blocking("x").unwrap();
    let m = router.recv_blocking().unwrap();
    assert_eq!(m.frames().len(), 2);
    assert_eq!(m.user_id().unwrap(), "admin");
    assert_eq!(m.socket_type().unwrap(), "DEALER");
    // A conflating PULL keeps only the newest message; that one still
    // carries its peer's properties.
    let pull = ctx.socket(SocketType::Pull).unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    pull.configure(|o| {
        o.conflate = true;
        o.rcvtimeo = Some(TIMEOUT);
    })
    .unwrap();
    push.configure(|o| o.sndtimeo = Some(TIMEOUT)).unwrap();
    secure(&pull, &push, Mech::Plain);
    let ep = pull.bind(&endpoint(Transport::Tcp)).unwrap();
    push.connect(&ep).unwrap();
    push.send_blocking("y").unwrap();
    let m = pull.recv_blocking().unwrap();
    assert_eq!(m.frames()[0], "y");
    assert_eq!(m.user_id().unwrap(), "admin");
    assert_eq!(m.socket_type().unwrap(), "PUSH");
}

#[test]
fn each_message_keeps_the_properties_of_the_connection_that_brought_it() {
    // A connect endpoint's pipe outlives its connection: a message the
    // first peer sent, still queued when the second peer's arrives, keeps
    // the first peer's properties (here its routing id, which a DEALER
    // sends as `Identity`).
    let ctx = Context::new();
    let ep = endpoint(Transport::Ipc);
    let receiver = ctx.socket(SocketType::Dealer).unwrap();
    receiver.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    let mon = receiver.monitor();
    receiver.connect(&ep).unwrap();
    let peer = |id: &'static str| {
        let sender = ctx.socket(SocketType::Dealer).unwrap();
        sender
            .configure(|o| {
                o.routing_id = Bytes::from_static(id.as_bytes());
                o.sndtimeo = Some(TIMEOUT);
                o.linger = Some(TIMEOUT);
            })
            .unwrap();
        sender.bind(&ep).unwrap();
        sender.send_blocking(id).unwrap();
        sender
    };
    let first = peer("one");
    drop(first);
    // Gone only after its message was read off the connection.
    mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }))
        .expect("the first peer's disconnect");
    let _second = peer("two");
    for id in ["one", "two"] {
        let m = receiver.recv_blocking().unwrap();
        assert_eq!(m.frames()[0], id);
        assert_eq!(m.property("Identity").unwrap(), id);
    }
}

#[test]
fn published_bodies_of_every_size_arrive_intact() {
    // Small one-frame messages travel to each subscriber's connection as
    // an inline copy, larger ones and multipart ones as the message: each
    // arrives as sent, in order, with every mechanism's framing.
    let ctx = Context::new();
    for m in NULL_CURVE_NOISE {
        let (publ, sub) = pair(
            &ctx,
            SocketType::Pub,
            SocketType::Sub,
            m,
            Transport::Tcp,
            true,
        );
        sub.subscribe("").unwrap();
        until_subscribed(&publ, &sub, "probe");
        publ.send_blocking("end of probes").unwrap();
        while sub.recv_blocking().unwrap().frames()[0] != "end of probes" {}
        let sizes = [0usize, 1, 16, 37, 38, 39, 40, 255, 256, 9000];
        let body = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 + n) as u8).collect() };
        for n in sizes {
            publ.send_blocking(Message::from(body(n))).unwrap();
        }
        publ.send_blocking(Message::from_frames([Bytes::from("a"), Bytes::from("bc")]))
            .unwrap();
        for n in sizes {
            let got = sub.recv_blocking().unwrap();
            assert_eq!(got.frames().len(), 1, "{m:?} {n} B");
            assert_eq!(&got.frames()[0][..], &body(n)[..], "{m:?} {n} B");
        }
        let got = sub.recv_blocking().unwrap();
        assert_eq!(got.frames(), &[Bytes::from("a"), Bytes::from("bc")][..]);
    }
}

#[test]
fn peers_that_come_and_go_without_sending_leave_the_inbox_its_room() {
    // Nobody receives, the receive high-water mark is 4, and ten peers in
    // turn finish their handshake and leave without sending a message:
    // each is seen to leave (a peer's properties take no room in the
    // inbox until its first message), and the socket still takes
    // messages afterwards, with their sender's properties.
    use std::io::{Read, Write};
    use zmtp_core::testing::{greeting, ready};
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| {
        o.rcvhwm = 4;
        o.rcvtimeo = Some(TIMEOUT);
    })
    .unwrap();
    let mon = pull.monitor();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    for i in 0..10 {
        let mut raw = std::net::TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
        raw.write_all(&greeting("NULL", 3, 1)).unwrap();
        raw.write_all(&ready("PUSH")).unwrap();
        // The socket's greeting, then the first byte of its READY: the
        // handshake is done on both sides.
        let mut got = [0u8; 65];
        raw.read_exact(&mut got).unwrap();
        mon.wait_for_blocking(TIMEOUT, |e| {
            matches!(e, MonitorEvent::HandshakeSucceeded { .. })
        })
        .expect("handshake");
        raw.shutdown(std::net::Shutdown::Both).unwrap();
        drop(raw);
        mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }))
            .unwrap_or_else(|| panic!("peer {i} was not seen to leave"));
    }
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| o.sndtimeo = Some(TIMEOUT)).unwrap();
    push.connect(&ep).unwrap();
    for i in 0..4u8 {
        push.send_blocking(Message::from(vec![i])).unwrap();
    }
    for i in 0..4u8 {
        let m = pull.recv_blocking().unwrap();
        assert_eq!(m.frames()[0], vec![i]);
        assert_eq!(m.socket_type().unwrap(), "PUSH");
    }
}

/// At a receive high-water mark of 1, a receiver that takes one message
/// per poll gets every message. (A connection's properties, queued in
/// front of its first message, took the one place: the message waited
/// for room that only a receive would make, and the poll, seeing no
/// message, never let one happen.)
#[test]
fn poller_and_single_receives_at_a_high_water_mark_of_one() {
    let ctx = Context::new();
    let pull = ctx.socket_with(SocketType::Pull, |o| o.rcvhwm = 1).unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.connect(&ep).unwrap();
    const N: u8 = 50;
    for i in 0..N {
        push.send_blocking(vec![i]).unwrap();
    }
    let mut p = zmtp_sockets::Poller::new();
    p.add(&pull, zmtp_sockets::Interest::Readable);
    for i in 0..N {
        let ready = p.wait_blocking(Some(TIMEOUT));
        assert_eq!(ready.len(), 1, "message {i} never became readable");
        assert_eq!(pull.try_recv().unwrap().frames()[0], vec![i]);
    }
}

#[test]
fn poller_waits_on_several_sockets() {
    let ctx = Context::new();
    let (pull_a, push_a) = pair(
        &ctx,
        SocketType::Pull,
        SocketType::Push,
        Mech::Null,
        Transport::Tcp,
        true,
    );
    let (pull_b, push_b) = pair(
        &ctx,
        SocketType::Pull,
        SocketType::Push,
        Mech::Null,
        Transport::Ipc,
        true,
    );
    let mut p = zmtp_sockets::Poller::new();
    p.add(&pull_a, zmtp_sockets::Interest::Readable);
    p.add(&pull_b, zmtp_sockets::Interest::Readable);
    assert!(p.wait_blocking(Some(Duration::from_millis(50))).is_empty());
    push_b.send_blocking("b").unwrap();
    let ready = p.wait_blocking(Some(TIMEOUT));
    assert_eq!(ready.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1]);
    assert_eq!(pull_b.try_recv().unwrap().frames()[0], "b");
    push_a.send_blocking("a").unwrap();
    let ready = p.wait_blocking(Some(TIMEOUT));
    assert_eq!(ready[0].index, 0);
    let mut w = zmtp_sockets::Poller::new();
    w.add(&push_a, zmtp_sockets::Interest::Writable);
    assert!(w.wait_blocking(Some(TIMEOUT))[0].writable);
}

#[test]
fn context_term_waits_for_linger_and_closes_sockets() {
    let ctx = Context::new();
    let (pull, push) = pair(
        &ctx,
        SocketType::Pull,
        SocketType::Push,
        Mech::Null,
        Transport::Tcp,
        true,
    );
    for i in 0..50u8 {
        push.send_blocking(vec![i]).unwrap();
    }
    drop(push);
    for i in 0..50u8 {
        assert_eq!(&pull.recv_blocking().unwrap().frames()[0][..], &[i]);
    }
    let ctx2 = ctx.clone();
    let t = std::thread::spawn(move || ctx2.term());
    t.join().unwrap();
    assert!(matches!(pull.recv_blocking(), Err(Error::Closed)));
}

#[test]
fn disconnect_and_unbind() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| o.sndtimeo = Some(Duration::from_millis(200)))
        .unwrap();
    let mon = pull.monitor();
    push.connect(&ep).unwrap();
    push.send_blocking("before").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "before");
    push.disconnect(&ep).unwrap();
    assert!(matches!(push.disconnect(&ep), Err(Error::NotFound(_))));
    mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Disconnected { .. }))
        .expect("peer gone");
    // No peer left: PUSH waits, then times out.
    assert!(matches!(
        push.send_blocking("after"),
        Err(Error::WouldBlock)
    ));
    // Unbind: new connections are refused at the TCP level.
    pull.unbind(&ep).unwrap();
    mon.wait_for_blocking(TIMEOUT, |e| matches!(e, MonitorEvent::Closed { .. }))
        .expect("listener closed");
    assert!(std::net::TcpStream::connect(ep.trim_start_matches("tcp://")).is_err());
}

#[test]
fn immediate_queues_only_for_completed_connections() {
    let ctx = Context::new();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| {
        o.immediate = true;
        o.sndtimeo = Some(Duration::from_millis(100));
    })
    .unwrap();
    push.connect(&common::quiet_tcp_endpoint()).unwrap();
    // No completed connection: nothing to queue on.
    assert!(matches!(push.send_blocking("x"), Err(Error::WouldBlock)));
}

#[test]
fn req_relaxed_and_correlate() {
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).unwrap();
    rep.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    let ep = rep.bind("tcp://127.0.0.1:0").unwrap();
    let req = ctx.socket(SocketType::Req).unwrap();
    req.configure(|o| {
        o.req_relaxed = true;
        o.req_correlate = true;
        o.rcvtimeo = Some(TIMEOUT);
    })
    .unwrap();
    req.connect(&ep).unwrap();
    req.send_blocking("first").unwrap();
    // Relaxed: a new request without waiting for the first reply.
    req.send_blocking("second").unwrap();
    let first = rep.recv_blocking().unwrap();
    assert_eq!(first.frames()[0], "first");
    rep.send_blocking("reply to first").unwrap();
    let second = rep.recv_blocking().unwrap();
    assert_eq!(second.frames()[0], "second");
    rep.send_blocking("reply to second").unwrap();
    // Correlate: the stale reply to "first" is dropped.
    assert_eq!(req.recv_blocking().unwrap().frames()[0], "reply to second");
}

#[test]
fn ipv6_loopback() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    // Some sandboxes have no IPv6 loopback; then there is nothing to test.
    let Ok(ep) = pull.bind("tcp://[::1]:0") else {
        assert!(
            std::net::TcpListener::bind("[::1]:0").is_err(),
            "our bind failed where std's works"
        );
        return;
    };
    assert!(ep.starts_with("tcp://[::1]:"));
    let push = ctx.socket(SocketType::Push).unwrap();
    push.connect(&ep).unwrap();
    push.send_blocking("v6").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "v6");
}

#[test]
fn a_dropped_recv_future_loses_no_message() {
    let ctx = Context::new();
    let (pull, push) = pair(
        &ctx,
        SocketType::Pull,
        SocketType::Push,
        Mech::Null,
        Transport::Tcp,
        true,
    );
    // Poll recv once with nothing there, drop it, then send.
    futures_lite::future::block_on(async {
        let mut fut = std::pin::pin!(pull.recv());
        let polled = futures_lite::future::poll_once(&mut fut).await;
        assert!(polled.is_none());
    });
    push.send_blocking("kept").unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "kept");
}

#[test]
fn a_burst_larger_than_one_batch_is_delivered_whole() {
    // Regression: the connection task hands messages over in batches; the
    // rest of a burst that arrived in one read must not wait for more input.
    // A raw peer writes 5,000 messages at once, then stays quiet.
    use std::io::Write;
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let mut raw = std::net::TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
    let mut bytes = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    bytes.extend_from_slice(b"NULL");
    bytes.resize(64, 0);
    bytes.extend_from_slice(b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH");
    let n = 5_000u32;
    for i in 0..n {
        bytes.extend_from_slice(&[0x00, 4]);
        bytes.extend_from_slice(&i.to_be_bytes());
    }
    raw.write_all(&bytes).unwrap();
    for i in 0..n {
        let msg = pull.recv_blocking().unwrap();
        assert_eq!(&msg.frames()[0][..], &i.to_be_bytes());
    }
}

#[test]
fn messages_taken_past_the_output_bound_are_sent_without_more_traffic() {
    // Regression: a connection task takes queued messages in chunks and
    // stops at its output bound (1 MiB) with some still in hand; once that
    // output is written it must send them without waiting for a new
    // message or any other event. 64 KiB messages pass the bound within
    // every chunk; the sender then stays quiet.
    for t in transports() {
        let ctx = Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let body = Bytes::from(vec![7u8; 64 * 1024]);
        let n = 200;
        for _ in 0..n {
            push.send_blocking(body.clone()).unwrap();
        }
        for i in 0..n {
            let m = pull
                .recv_blocking()
                .unwrap_or_else(|e| panic!("{t:?}: message {i} of {n}: {e}"));
            assert_eq!(m.frames()[0].len(), body.len());
        }
    }
}

/// A sender held at a small HWM is woken again each time its queue drains
/// to the low-water mark, many times over, and loses nothing.
#[test]
fn push_blocked_at_hwm_resumes_every_time() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| {
        o.rcvhwm = 3;
        o.rcvtimeo = Some(TIMEOUT);
    })
    .unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.configure(|o| {
        o.sndhwm = 3;
        o.sndtimeo = Some(TIMEOUT);
    })
    .unwrap();
    push.connect(&ep).unwrap();
    const N: u32 = 3000;
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let mut body = vec![0u8; 32 * 1024];
            body[..4].copy_from_slice(&i.to_be_bytes());
            push.send_blocking(Bytes::from(body)).unwrap();
        }
        push
    });
    for i in 0..N {
        let m = pull.recv_blocking().unwrap();
        assert_eq!(&m.get(0).unwrap()[..4], &i.to_be_bytes());
    }
    drop(sender.join().unwrap());
}

/// Several threads blocked sending on one socket at its HWM are all woken
/// as room appears, again and again, and every message arrives.
#[test]
fn every_sender_blocked_at_hwm_gets_through() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    pull.configure(|o| {
        o.rcvhwm = 2;
        o.rcvtimeo = Some(TIMEOUT);
    })
    .unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = std::sync::Arc::new(ctx.socket(SocketType::Push).unwrap());
    push.configure(|o| {
        o.sndhwm = 2;
        o.sndtimeo = Some(TIMEOUT);
    })
    .unwrap();
    push.connect(&ep).unwrap();
    const THREADS: u8 = 4;
    const EACH: u32 = 500;
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let push = push.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let mut body = vec![t; 8 * 1024];
                    body[1..5].copy_from_slice(&i.to_be_bytes());
                    push.send_blocking(Bytes::from(body)).unwrap();
                }
            })
        })
        .collect();
    // Each thread's messages arrive in its order.
    let mut next = [0u32; THREADS as usize];
    for _ in 0..u32::from(THREADS) * EACH {
        let m = pull.recv_blocking().unwrap();
        let f = m.get(0).unwrap();
        let t = f[0] as usize;
        assert_eq!(&f[1..5], &next[t].to_be_bytes());
        next[t] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(next, [EACH; THREADS as usize]);
}

/// Contexts with several I/O threads: connections are spread over the
/// threads (each waits in its own epoll on Linux), accepted on one thread
/// and served on another, and every message still arrives, both ways.
#[test]
fn several_io_threads_serve_many_connections() {
    for t in transports() {
        let server_ctx = Context::with_io_threads(3);
        let client_ctx = Context::with_io_threads(2);
        let pull = server_ctx.socket(SocketType::Pull).unwrap();
        pull.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
        let ep = pull.bind(&endpoint(t)).unwrap();
        let rep = server_ctx.socket(SocketType::Rep).unwrap();
        rep.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
        let rep_ep = rep.bind(&endpoint(t)).unwrap();
        let pushes: Vec<_> = (0..7u8)
            .map(|_| {
                let push = client_ctx.socket(SocketType::Push).unwrap();
                push.connect(&ep).unwrap();
                push
            })
            .collect();
        for round in 0..50u8 {
            for (i, push) in pushes.iter().enumerate() {
                push.send_blocking(Message::from(vec![i as u8, round]))
                    .unwrap();
            }
        }
        let mut seen = vec![0u32; pushes.len()];
        for _ in 0..pushes.len() * 50 {
            let m = pull.recv_blocking().unwrap();
            let (i, round) = (m.frames()[0][0] as usize, m.frames()[0][1]);
            // Each peer's messages arrive in order.
            assert_eq!(u32::from(round), seen[i], "{t:?} peer {i}");
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&n| n == 50), "{t:?} {seen:?}");
        // Round trips over connections on different threads.
        let reqs: Vec<_> = (0..5u8)
            .map(|_| {
                let req = client_ctx.socket(SocketType::Req).unwrap();
                req.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
                req.connect(&rep_ep).unwrap();
                req
            })
            .collect();
        for _ in 0..20 {
            for (i, req) in reqs.iter().enumerate() {
                req.send_blocking(Message::from(vec![i as u8])).unwrap();
                let got = rep.recv_blocking().unwrap();
                rep.send_blocking(got).unwrap();
                assert_eq!(&req.recv_blocking().unwrap().frames()[0][..], &[i as u8]);
            }
        }
        client_ctx.term();
        server_ctx.term();
    }
}

//! Connection tests: an in-memory pair for handshakes, and a mock peer that
//! feeds exact bytes (libzmq's test fixtures) and asserts exact output.

use super::*;
use crate::mechanism::Null;
use crate::testing::{Side, greeting, pump, ready};

fn now() -> Instant {
    // A fixed origin; tests add durations to it.
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn conn(t: SocketType) -> Connection {
    Connection::new(Config::new(t), Box::new(Null::new()), now())
}

fn take_output(c: &mut Connection) -> Vec<u8> {
    c.output().unwrap().take_all()
}

fn feed(c: &mut Connection, bytes: &[u8]) -> Result<Vec<Event>> {
    c.recv_buffer().extend_from_slice(bytes);
    c.input_arrived(now());
    let mut events = Vec::new();
    while let Some(ev) = c.poll_event(now())? {
        events.push(ev);
    }
    Ok(events)
}

/// Two connections of these types after a NULL handshake.
fn ready_pair(ta: SocketType, tb: SocketType) -> (Connection, Connection) {
    let (mut a, mut b) = (Side::new(ta, Null::new()), Side::new(tb, Null::new()));
    pump(&mut a, &mut b);
    assert!(matches!(a.events[..], [Event::HandshakeSucceeded(_)]));
    assert!(matches!(b.events[..], [Event::HandshakeSucceeded(_)]));
    (a.conn, b.conn)
}

/// Moves bytes both ways between two connections until both are quiet;
/// each side's events, or its error.
fn exchange(a: Connection, b: Connection) -> (Side, Side) {
    let (mut a, mut b) = (Side::from_connection(a), Side::from_connection(b));
    pump(&mut a, &mut b);
    (a, b)
}

#[test]
fn null_handshake_for_every_pair() {
    for ta in SocketType::ALL {
        for tb in SocketType::ALL {
            let (a, b) = exchange(conn(ta), conn(tb));
            if ta.is_compatible(tb) {
                assert!(a.error.is_none() && b.error.is_none(), "{ta} {tb}");
                let Event::HandshakeSucceeded(peer) = &a.events[0] else {
                    panic!("{ta} {tb}")
                };
                assert_eq!(peer.get("Socket-Type").unwrap(), tb.as_str().as_bytes());
                assert!(a.conn.is_ready() && b.conn.is_ready());
                assert!(matches!(b.events[..], [Event::HandshakeSucceeded(_)]));
            } else {
                let expect = Error::Peer(PeerError::IncompatibleSocketType {
                    ours: ta,
                    theirs: tb,
                });
                assert_eq!(a.error, Some(expect), "{ta} {tb}");
                assert!(!a.conn.is_ready());
            }
        }
    }
}

#[test]
fn our_ready_is_libzmq_exact() {
    // libzmq's tests/testutil.hpp `zmtp_ready_dealer` (RFC 23's example).
    let zmtp_ready_dealer: [u8; 43] =
        *b"\x04\x29\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00";
    let mut c = conn(SocketType::Dealer);
    let out = take_output(&mut c);
    assert_eq!(out, greeting("NULL", 3, 1));
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    assert_eq!(take_output(&mut c), zmtp_ready_dealer);
}

#[test]
fn messages_both_ways_with_multipart() {
    let (mut a, mut b) = ready_pair(SocketType::Dealer, SocketType::Router);
    let big = Bytes::from(vec![5u8; 100_000]);
    a.send(&Message::from_frames([
        Bytes::from_static(b"x"),
        Bytes::new(),
        big.clone(),
    ]))
    .unwrap();
    b.send(&Message::from("back")).unwrap();
    let (a, b) = exchange(a, b);
    assert!(a.error.is_none() && b.error.is_none());
    let Event::Message(m) = &b.events[0] else {
        panic!()
    };
    assert_eq!(m.frames(), &[Bytes::from_static(b"x"), Bytes::new(), big]);
    assert_eq!(m.socket_type().unwrap(), &b"DEALER"[..]);
    let Event::Message(m) = &a.events[0] else {
        panic!()
    };
    assert_eq!(m.frames(), &[Bytes::from_static(b"back")]);
}

#[test]
fn an_event_is_no_larger_than_a_message_and_its_tag() {
    // Each received message is moved out as an Event; a large variant
    // would make every one of those moves larger (see Event::Authenticate).
    assert!(std::mem::size_of::<Event>() <= std::mem::size_of::<Message>() + 8);
}

/// Drains a connection with `poll_messages`, `limit` messages at a time,
/// after each `step` bytes of `wire`: the messages, and the other events.
fn by_poll_messages(
    c: &mut Connection,
    wire: &[u8],
    step: usize,
    limit: usize,
) -> (Vec<Message>, Vec<Event>) {
    let (mut msgs, mut events) = (Vec::new(), Vec::new());
    for chunk in wire.chunks(step) {
        c.recv_buffer().extend_from_slice(chunk);
        loop {
            let mut n = 0;
            match c.poll_messages(now(), limit, |m| {
                n += 1;
                msgs.push(m);
            }) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) if n == limit => {}
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    (msgs, events)
}

#[test]
fn poll_messages_gives_what_poll_event_gives() {
    let traffic = |a: &mut Connection| {
        a.send(&Message::from("one")).unwrap();
        a.send(&Message::from_frames([
            Bytes::from_static(b"two"),
            Bytes::new(),
            Bytes::from(vec![7u8; 300]),
        ]))
        .unwrap();
        a.send_command(&Command::Ping {
            ttl: 0,
            context: Bytes::from_static(b"ctx"),
        })
        .unwrap();
        for i in 0..20u8 {
            a.send(&Message::from(vec![i; usize::from(i)])).unwrap();
        }
        take_output(a)
    };
    let (mut a, mut b) = ready_pair(SocketType::Push, SocketType::Pull);
    let wire = traffic(&mut a);
    let expected: Vec<Message> = feed(&mut b, &wire)
        .unwrap()
        .into_iter()
        .map(|ev| match ev {
            Event::Message(m) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(expected.len(), 22);
    let pong = take_output(&mut b);
    for (step, limit) in [(wire.len(), usize::MAX), (wire.len(), 1), (1, 3), (7, 2)] {
        let (mut a, mut b) = ready_pair(SocketType::Push, SocketType::Pull);
        let (msgs, events) = by_poll_messages(&mut b, &traffic(&mut a), step, limit);
        assert_eq!(msgs, expected, "step {step}, limit {limit}");
        assert!(msgs.iter().all(|m| m.socket_type().is_some()));
        assert!(events.is_empty());
        // The PING was answered on the way.
        assert_eq!(take_output(&mut b), pong);
    }
}

#[test]
fn poll_messages_stops_at_other_events_and_errors() {
    let (mut sub, mut publ) = ready_pair(SocketType::Sub, SocketType::Pub);
    sub.subscribe(b"t").unwrap();
    let (msgs, events) = by_poll_messages(&mut publ, &take_output(&mut sub), 1, usize::MAX);
    assert!(msgs.is_empty());
    assert!(matches!(&events[..], [Event::Subscribe(t)] if &t[..] == b"t"));
    // A malformed frame closes the connection, as with poll_event.
    let (_, mut pull) = ready_pair(SocketType::Push, SocketType::Pull);
    pull.recv_buffer().extend_from_slice(&[0x05, 0x01, 0x00]);
    assert!(pull.poll_messages(now(), usize::MAX, |_| {}).is_err());
    assert!(pull.poll_event(now()).is_err());
}

#[test]
fn byte_by_byte_equals_all_at_once() {
    let mut stream = greeting("NULL", 3, 1);
    stream.extend_from_slice(&ready("REQ"));
    stream.extend_from_slice(b"\x01\x00\x00\x03abc");
    stream.extend_from_slice(b"\x04\x0a\x04PING\x00\x00LOL");
    stream.extend_from_slice(b"\x02\x00\x00\x00\x00\x00\x00\x01\x00");
    stream.extend_from_slice(&[1u8; 256]);
    let summarize = |evs: Vec<Event>| -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                Event::Message(m) => format!("{m:?}"),
                Event::HandshakeSucceeded(_) => "ready".into(),
                other => format!("{other:?}"),
            })
            .collect()
    };
    let mut whole = conn(SocketType::Rep);
    let all = summarize(feed(&mut whole, &stream).unwrap());
    assert_eq!(all.len(), 3);
    let out_whole = take_output(&mut whole);
    let mut one = conn(SocketType::Rep);
    let mut got = Vec::new();
    for b in &stream {
        got.extend(summarize(feed(&mut one, &[*b]).unwrap()));
    }
    assert_eq!(got, all);
    assert_eq!(take_output(&mut one), out_whole);
}

#[test]
fn ping_gets_pong_with_context_truncated_to_16() {
    let mut c = conn(SocketType::Pub);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    feed(&mut c, &ready("SUB")).unwrap();
    take_output(&mut c);
    // libzmq test_heartbeats: PING "\x04PING\0\0LOL" answered by PONG "LOL".
    feed(&mut c, b"\x04\x0a\x04PING\x00\x00LOL").unwrap();
    assert_eq!(take_output(&mut c), b"\x04\x08\x04PONGLOL");
    let mut ping = b"\x04\x47\x04PING\x00\x00".to_vec();
    ping.extend((0..65u8).map(|i| b'a' + i % 26));
    feed(&mut c, &ping).unwrap();
    let mut pong = b"\x04\x15\x04PONG".to_vec();
    pong.extend((0..16u8).map(|i| b'a' + i % 26));
    assert_eq!(take_output(&mut c), pong);
}

#[test]
fn subscriptions_as_commands_and_legacy_messages() {
    // libzmq test_mock_pub_sub: 3.1 sends "\x04\x0b\x09SUBSCRIBEA", 3.0
    // sends the data message "\x00\x02\x01A".
    for (minor, sub) in [(1u8, &b"\x04\x0b\x09SUBSCRIBEA"[..]), (0, b"\x00\x02\x01A")] {
        let mut c = conn(SocketType::Pub);
        feed(&mut c, &greeting("NULL", 3, minor)).unwrap();
        feed(&mut c, &ready("SUB")).unwrap();
        let evs = feed(&mut c, sub).unwrap();
        assert!(
            matches!(&evs[..], [Event::Subscribe(t)] if t == &b"A"[..]),
            "{minor}"
        );
        c.send(&Message::from("ALOL")).unwrap();
        take_output(&mut c);
    }
    // Our SUB talks to each peer in its own version.
    for (minor, expect) in [(1u8, &b"\x04\x0b\x09SUBSCRIBEA"[..]), (0, b"\x00\x02\x01A")] {
        let mut c = conn(SocketType::Sub);
        feed(&mut c, &greeting("NULL", 3, minor)).unwrap();
        feed(&mut c, &ready("PUB")).unwrap();
        take_output(&mut c);
        c.subscribe(b"A").unwrap();
        assert_eq!(take_output(&mut c), expect);
    }
}

#[test]
fn cancel_and_pub_drops_other_data() {
    let mut c = conn(SocketType::Pub);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    feed(&mut c, &ready("SUB")).unwrap();
    let evs = feed(&mut c, b"\x04\x08\x06CANCELA\x00\x02\x05x").unwrap();
    assert!(matches!(&evs[..], [Event::Cancel(t)] if t == &b"A"[..]));
}

#[test]
fn refuses_mismatch_and_legacy() {
    let mut c = conn(SocketType::Push);
    let err = feed(&mut c, &greeting("CURVE", 3, 1)).unwrap_err();
    assert!(matches!(
        err,
        Error::Peer(PeerError::MechanismMismatch { .. })
    ));
    assert!(c.is_closed());
    let mut c = conn(SocketType::Push);
    // A ZMTP 1.0 "sneaky" message: length 4, flags 0, body.
    let err = feed(&mut c, b"\x04\x00abc").unwrap_err();
    assert!(matches!(err, Error::Peer(PeerError::UnsupportedVersion(_))));
}

#[test]
fn malformed_traffic_closes() {
    let cases: &[&[u8]] = &[
        b"\x05\x00",                                // MORE on a command
        b"\x04\x05\x04PING",                        // PING shorter than its fields
        b"\x04\x08\x05ERROR\x09a",                  // reason past the body
        b"\x01\x01a\x04\x05\x04PONG",               // command inside a multipart
        b"\x04\x0d\x05READY\x01a\x00\x00\x00\x09x", // truncated metadata
    ];
    for case in cases {
        let mut c = conn(SocketType::Pull);
        feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
        feed(&mut c, &ready("PUSH")).unwrap();
        assert!(feed(&mut c, case).is_err(), "{case:?}");
        assert!(c.is_closed());
        assert!(c.send(&Message::from("x")).is_err());
    }
}

#[test]
fn handshake_faults() {
    // A data frame where a command must be.
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    assert!(feed(&mut c, b"\x00\x01x").is_err());
    // A handshake command above the fixed limit, whatever max_msg_size says.
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    let err = feed(&mut c, b"\x06\x00\x00\x00\x00\x00\x01\x00\x00").unwrap_err();
    assert!(matches!(err, Error::Peer(PeerError::TooLarge { .. })));
    // READY without Socket-Type.
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    assert!(feed(&mut c, b"\x04\x06\x05READY").is_err());
    // ERROR with a ZAP status is an authentication failure.
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    let err = feed(&mut c, b"\x04\x0a\x05ERROR\x03400").unwrap_err();
    assert_eq!(err.auth_status(), Some(400));
    // Sending before the handshake is misuse, not a peer fault.
    let mut c = conn(SocketType::Push);
    let err = c.send(&Message::from("early")).unwrap_err();
    assert!(!err.is_peer_fault());
}

#[test]
fn max_msg_size_applies_after_handshake() {
    let mut cfg = Config::new(SocketType::Pull);
    cfg.max_msg_size = Some(10);
    let mut c = Connection::new(cfg, Box::new(Null::new()), now());
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    feed(&mut c, &ready("PUSH")).unwrap();
    assert_eq!(feed(&mut c, b"\x00\x0a0123456789").unwrap().len(), 1);
    let err = feed(&mut c, b"\x00\x0b").unwrap_err();
    assert_eq!(
        err,
        Error::Peer(PeerError::TooLarge {
            size: 11,
            limit: 10
        })
    );
}

#[test]
fn handshake_deadline() {
    let mut c = conn(SocketType::Pull);
    assert_eq!(c.poll_timeout(), Some(now() + Duration::from_secs(30)));
    c.handle_timeout(now() + Duration::from_secs(29)).unwrap();
    let err = c
        .handle_timeout(now() + Duration::from_secs(30))
        .unwrap_err();
    assert_eq!(err, Error::Timeout(TimeoutKind::Handshake));
}

#[test]
fn heartbeats_ping_and_time_out() {
    let mut cfg = Config::new(SocketType::Pull);
    cfg.heartbeat_ivl = Some(Duration::from_secs(1));
    cfg.heartbeat_ttl = Some(Duration::from_millis(2500));
    let mut c = Connection::new(cfg, Box::new(Null::new()), now());
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    feed(&mut c, &ready("PUSH")).unwrap();
    take_output(&mut c);
    let t1 = now() + Duration::from_secs(1);
    assert_eq!(c.poll_timeout(), Some(t1));
    c.handle_timeout(t1).unwrap();
    // PING with TTL 25 deciseconds and no context.
    assert_eq!(take_output(&mut c), b"\x04\x07\x04PING\x00\x19");
    // The peer answers: the deadline is cleared.
    c.input_arrived(t1);
    let t2 = t1 + Duration::from_secs(1);
    c.handle_timeout(t2).unwrap();
    take_output(&mut c);
    // Silence now: the answer deadline passes.
    let err = c.handle_timeout(t2 + Duration::from_secs(1)).unwrap_err();
    assert_eq!(err, Error::Timeout(TimeoutKind::Heartbeat));
}

#[test]
fn peer_ttl_is_honoured() {
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    feed(&mut c, &ready("PUSH")).unwrap();
    // TTL of 10 deciseconds.
    feed(&mut c, b"\x04\x07\x04PING\x00\x0a").unwrap();
    assert_eq!(c.poll_timeout(), Some(now() + Duration::from_secs(1)));
    let err = c
        .handle_timeout(now() + Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err, Error::Timeout(TimeoutKind::Ttl));
}

#[test]
fn null_with_authenticator() {
    for (status, error_sent) in [(400u16, true), (500, true), (300, false)] {
        let mut c = Connection::new(
            Config::new(SocketType::Pull),
            Box::new(Null::with_authentication(true)),
            now(),
        );
        take_output(&mut c);
        let evs = feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
        assert!(
            matches!(&evs[..], [Event::Authenticate(r)] if r.credentials == crate::Credentials::Null)
        );
        // The peer's READY waits while the verdict is pending.
        assert!(feed(&mut c, &ready("PUSH")).unwrap().is_empty());
        let err = c
            .authenticated(AuthVerdict::Deny { status }, now())
            .unwrap_err();
        assert_eq!(err.auth_status(), Some(status));
        let out = take_output(&mut c);
        assert_eq!(
            out.ends_with(format!("\x05ERROR\x03{status}").as_bytes()),
            error_sent
        );
        assert!(c.is_closed());
    }
    let mut c = Connection::new(
        Config::new(SocketType::Pull),
        Box::new(Null::with_authentication(true)),
        now(),
    );
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    feed(&mut c, &ready("PUSH")).unwrap();
    let verdict = AuthVerdict::Allow {
        user_id: Bytes::from_static(b"bob"),
        properties: Metadata::new(),
    };
    c.authenticated(verdict, now()).unwrap();
    let evs = feed(&mut c, b"\x00\x02hi").unwrap();
    let [Event::HandshakeSucceeded(_), Event::Message(m)] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(m.user_id().unwrap(), &b"bob"[..]);
}

#[test]
fn libzmq_plain_error_form_is_an_auth_failure() {
    // The exact bytes libzmq 4.3.4's PLAIN server sent on refusing a client.
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    let err = feed(&mut c, b"\x04\x09\x5eRROR\x03400").unwrap_err();
    assert_eq!(err.auth_status(), Some(400));
    // Any other mangling is still malformed.
    let mut c = conn(SocketType::Pull);
    feed(&mut c, &greeting("NULL", 3, 1)).unwrap();
    assert_eq!(
        feed(&mut c, b"\x04\x09\x5eRROR\x03401")
            .unwrap_err()
            .auth_status(),
        None
    );
}

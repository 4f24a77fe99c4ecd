//! CURVE: the full exchange in memory, and every negative case of libzmq's
//! test_security_curve.

use bytes::{Bytes, BytesMut};
use zmtp_core::{
    AuthVerdict, Credentials, Error, Greeting, HandshakeContext, Message, PeerError, SocketType,
};

use super::*;
use zmtp_core::testing::{Side, pump, pump_with};

fn ctx_parts() -> (Greeting, [u8; 64], Metadata) {
    let g = Greeting::new(MechanismName::CURVE, false);
    (g, g.emit(), Metadata::new())
}

/// Runs the mechanisms directly up to the command `stop_at` (0 HELLO,
/// 1 WELCOME, 2 INITIATE), returning both and that command's bytes.
fn handshake_until(stop_at: usize) -> (CurveClient, CurveServer, Bytes) {
    let server_keys = KeyPair::generate();
    let mut client = CurveClient::new(KeyPair::generate(), server_keys.public);
    let mut server = CurveServer::new(server_keys);
    let (g, bytes, local) = ctx_parts();
    let ctx = HandshakeContext {
        local: &local,
        our_greeting: &bytes,
        peer_greeting: &bytes,
        peer: &g,
    };
    let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
    let _ = client.start(&ctx, &mut to_s).unwrap();
    let _ = server.start(&ctx, &mut to_c).unwrap();
    let hello = to_s.remove(0);
    if stop_at == 0 {
        return (client, server, hello);
    }
    let _ = server.handle_command(hello, &mut to_c).unwrap();
    let welcome = to_c.remove(0);
    if stop_at == 1 {
        return (client, server, welcome);
    }
    let _ = client.handle_command(welcome, &mut to_s).unwrap();
    (client, server, to_s.remove(0))
}

fn server_error(stop_at: usize, tamper: impl FnOnce(&mut Vec<u8>)) -> Error {
    let (_, mut server, cmd) = handshake_until(stop_at);
    let mut v = cmd.to_vec();
    tamper(&mut v);
    match server.handle_command(Bytes::from(v), &mut Vec::new()) {
        Err(e) => e,
        Ok(step) => panic!("tampered command accepted: {step:?}"),
    }
}

fn is_crypto(e: &Error) -> bool {
    matches!(e, Error::Peer(PeerError::Cryptographic(_)))
}

fn pair(auth: impl Fn(&zmtp_core::AuthRequest) -> AuthVerdict + 'static) -> (Side, Side, KeyPair) {
    let server_keys = KeyPair::generate();
    let client_keys = KeyPair::generate();
    let client = Side::new(
        SocketType::Push,
        CurveClient::new(client_keys.clone(), server_keys.public),
    );
    let server = Side::new(SocketType::Pull, CurveServer::new(server_keys)).with_verdict(auth);
    (client, server, client_keys)
}

#[test]
fn handshake_and_messages_both_ways() {
    let expect_key = std::rc::Rc::new(std::cell::RefCell::new(None));
    let seen = expect_key.clone();
    let (mut c, mut s, client_keys) = pair(move |req| {
        if let Credentials::Curve(k) = req.credentials {
            *seen.borrow_mut() = Some(k);
        }
        AuthVerdict::Allow {
            user_id: Bytes::from_static(b"alice"),
            properties: Metadata::new(),
        }
    });
    pump(&mut c, &mut s);
    assert!(c.ready() && s.ready(), "{:?} {:?}", c.error, s.error);
    assert_eq!(expect_key.borrow().unwrap(), *client_keys.public.as_bytes());
    let big = Bytes::from(vec![9u8; 300_000]);
    c.conn
        .send(&Message::from_frames([
            Bytes::from_static(b"a"),
            big.clone(),
        ]))
        .unwrap();
    c.conn.send(&Message::from("second")).unwrap();
    pump(&mut c, &mut s);
    let got = s.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].frames(), &[Bytes::from_static(b"a"), big]);
    assert_eq!(got[0].user_id().unwrap(), &b"alice"[..]);
    assert_eq!(got[1].frames(), &[Bytes::from_static(b"second")]);
}

#[test]
fn message_travels_in_a_data_frame() {
    let (mut c, mut s, _) = pair(|_| AuthVerdict::allow());
    pump(&mut c, &mut s);
    c.conn.send(&Message::from("x")).unwrap();
    let mut wire = Vec::new();
    pump_with(&mut c, &mut s, |bytes| wire = bytes.clone());
    // flags 0x00, size 34 = 33 + 1, then "\x07MESSAGE" and nonce 3.
    assert_eq!(&wire[..2], &[0x00, 34]);
    assert_eq!(&wire[2..10], b"\x07MESSAGE");
    assert_eq!(&wire[10..18], &3u64.to_be_bytes());
    assert_eq!(s.messages().len(), 1);
}

#[test]
fn hello_of_wrong_length_name_or_version() {
    assert!(matches!(
        server_error(0, |h| h.truncate(199)),
        Error::Peer(PeerError::Malformed(_))
    ));
    assert!(matches!(
        server_error(0, |h| h.push(0)),
        Error::Peer(PeerError::Malformed(_))
    ));
    assert!(matches!(
        server_error(0, |h| h[1] = b'J'),
        Error::Peer(PeerError::Protocol(_))
    ));
    assert!(matches!(
        server_error(0, |h| h[6] = 2),
        Error::Peer(PeerError::Protocol(_))
    ));
    // A flipped byte in HELLO's box.
    assert!(is_crypto(&server_error(0, |h| h[150] ^= 1)));
    // An all-zero client transient key.
    assert!(is_crypto(&server_error(0, |h| h[80..112].fill(0))));
}

#[test]
fn initiate_cases() {
    assert!(matches!(
        server_error(2, |i| i.truncate(9)),
        Error::Peer(PeerError::Malformed(_))
    ));
    assert!(matches!(
        server_error(2, |i| i.truncate(256)),
        Error::Peer(PeerError::Malformed(_))
    ));
    assert!(matches!(
        server_error(2, |i| i[1] = b'X'),
        Error::Peer(PeerError::Protocol(_))
    ));
    // Flipped cookie byte: the cookie does not open.
    assert!(is_crypto(&server_error(2, |i| i[30] ^= 1)));
    // Flipped byte in the box.
    assert!(is_crypto(&server_error(2, |i| i[200] ^= 1)));
    // Flipped short nonce: the box does not open under it.
    assert!(is_crypto(&server_error(2, |i| i[106] ^= 1)));
}

#[test]
fn welcome_of_wrong_length_or_tampered() {
    let (mut client, _, welcome) = handshake_until(1);
    let mut w = welcome.to_vec();
    w.push(0);
    assert!(
        client
            .handle_command(Bytes::from(w), &mut Vec::new())
            .is_err()
    );
    let (mut client, _, welcome) = handshake_until(1);
    let mut w = welcome.to_vec();
    w[100] ^= 1;
    assert!(is_crypto(
        &client
            .handle_command(Bytes::from(w), &mut Vec::new())
            .unwrap_err()
    ));
}

#[test]
fn wrong_server_key_fails_and_delivers_nothing() {
    let server_keys = KeyPair::generate();
    let mut c = Side::new(
        SocketType::Push,
        CurveClient::new(KeyPair::generate(), KeyPair::generate().public),
    );
    let mut s = Side::new(SocketType::Pull, CurveServer::new(server_keys));
    pump(&mut c, &mut s);
    assert!(is_crypto(s.error.as_ref().unwrap()));
    assert!(!c.ready() && !s.ready());
    assert!(c.conn.send(&Message::from("x")).is_err());
}

#[test]
fn authenticator_statuses() {
    for (status, error_sent) in [(400u16, true), (500, true), (300, false)] {
        let (mut c, mut s, _) = pair(move |_| AuthVerdict::Deny { status });
        pump(&mut c, &mut s);
        assert_eq!(s.error.as_ref().unwrap().auth_status(), Some(status));
        assert!(!s.ready() && !c.ready());
        if error_sent {
            assert_eq!(c.error.as_ref().unwrap().auth_status(), Some(status));
        } else {
            assert!(c.error.is_none(), "300 is silent");
        }
    }
}

#[test]
fn mechanism_mismatch() {
    let mut c = Side::new(SocketType::Push, zmtp_core::Null::new());
    let mut s = Side::new(SocketType::Pull, CurveServer::new(KeyPair::generate()));
    pump(&mut c, &mut s);
    assert!(matches!(
        s.error,
        Some(Error::Peer(PeerError::MechanismMismatch { .. }))
    ));
    let mut c = Side::new(SocketType::Push, crate::PlainClient::new("u", "p").unwrap());
    let mut s = Side::new(SocketType::Pull, CurveServer::new(KeyPair::generate()));
    pump(&mut c, &mut s);
    assert!(matches!(
        s.error,
        Some(Error::Peer(PeerError::MechanismMismatch { .. }))
    ));
}

#[test]
fn sneaky_zmtp10_message_is_never_delivered() {
    let mut s = Side::new(SocketType::Pull, CurveServer::new(KeyPair::generate()));
    // libzmq's test: a ZMTP 1.0 frame (length, flags, body) straight away.
    s.conn.recv_buffer().extend_from_slice(b"\x09\x00sneaky!!");
    let err = s.conn.poll_event(std::time::Instant::now()).unwrap_err();
    assert!(matches!(err, Error::Peer(PeerError::UnsupportedVersion(_))));
    assert!(s.messages().is_empty());
}

fn established() -> CipherPair {
    cipher_pair().unwrap()
}

fn seal(c: &mut Box<dyn zmtp_core::FrameCipher>, body: &[u8]) -> BytesMut {
    let mut w = BytesMut::new();
    c.seal(true, false, body, &mut w).unwrap();
    w
}

#[test]
fn replayed_reordered_and_tampered_messages() {
    let (mut c, mut s) = established();
    let m1 = seal(&mut c, b"one");
    let m2 = seal(&mut c, b"two");
    let m3 = seal(&mut c, b"three");
    let (more, command, body) = s.open(m2.clone()).unwrap();
    assert!(more && !command);
    assert_eq!(&body[..], b"two");
    // Replay.
    assert!(is_crypto(&s.open(m2).unwrap_err()));
    // Reordered (older nonce).
    assert!(is_crypto(&s.open(m1).unwrap_err()));
    // A flipped byte anywhere in the box.
    for i in 16..m3.len() {
        let mut t = m3.clone();
        t[i] ^= 0x80;
        assert!(is_crypto(&s.open(t).unwrap_err()), "byte {i}");
    }
    // Too short, wrong name.
    assert!(s.open(BytesMut::from(&m3[..32])).is_err());
    let mut t = m3.clone();
    t[1] = b'm';
    assert!(s.open(t).is_err());
    // The intact one still opens (gaps are allowed).
    assert_eq!(&s.open(m3).unwrap().2[..], b"three");
    // And the other direction uses the other nonce prefix.
    let back = seal(&mut s, b"back");
    assert_eq!(&c.open(back).unwrap().2[..], b"back");
    let mirrored = seal(&mut c, b"x");
    assert!(
        c.open(mirrored).is_err(),
        "a client must not open its own messages"
    );
}

#[test]
fn zero_keys_refused_at_configuration() {
    assert_eq!(
        PublicKey::from_bytes([0; 32]),
        Err(crate::KeyError::ZeroKey)
    );
    assert!(crate::SecretKey::from_bytes([0; 32]).is_err());
}

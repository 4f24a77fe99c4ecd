//! NOISE: every pattern in both roles in memory, the failure cases, the
//! record layer, and the specification's test vectors.

use bytes::{Bytes, BytesMut};
use zmtp_core::{
    AuthVerdict, Credentials, Error, Message, PeerError, SocketType, StreamCipher, Traffic,
};

use super::*;
use crate::keys::{KeyPair, SecretKey};
use zmtp_core::testing::{Side, pump, pump_with};

const PATTERNS: [Pattern; 3] = [Pattern::XX, Pattern::IK, Pattern::NK];

fn pair(
    pattern: Pattern,
    server_keys: KeyPair,
    client_keys: Option<KeyPair>,
    server_known: Option<crate::PublicKey>,
) -> (Side, Side) {
    let client = Side::new(
        SocketType::Push,
        NoiseClient::new(pattern, client_keys, server_known).unwrap(),
    );
    let server = Side::new(SocketType::Pull, NoiseServer::new(pattern, server_keys));
    (client, server)
}

#[test]
fn every_pattern_completes_and_carries_messages() {
    for pattern in PATTERNS {
        let server_keys = KeyPair::generate();
        let client_keys = KeyPair::generate();
        let (mut c, mut s) = pair(
            pattern,
            server_keys.clone(),
            Some(client_keys.clone()),
            Some(server_keys.public),
        );
        let seen = std::rc::Rc::new(std::cell::RefCell::new(None));
        let seen2 = seen.clone();
        s = s.with_verdict(move |req| {
            *seen2.borrow_mut() = Some(req.credentials.clone());
            AuthVerdict::Allow {
                user_id: Bytes::from_static(b"noise-user"),
                properties: zmtp_core::Metadata::new(),
            }
        });
        pump(&mut c, &mut s);
        assert!(
            c.ready() && s.ready(),
            "{pattern}: {:?} {:?}",
            c.error,
            s.error
        );
        match (pattern, seen.borrow().clone().unwrap()) {
            (Pattern::NK, Credentials::Null) => {}
            (_, Credentials::Noise(k)) => {
                assert_eq!(k, *client_keys.public.as_bytes(), "{pattern}")
            }
            (p, other) => panic!("{p}: {other:?}"),
        }
        // Both ways, multipart, and a 1 MiB frame across records.
        let big = Bytes::from(vec![0x42u8; 1 << 20]);
        c.conn
            .send(&Message::from_frames([
                Bytes::from_static(b"to server"),
                big.clone(),
            ]))
            .unwrap();
        s.conn.send(&Message::from("to client")).unwrap();
        pump(&mut c, &mut s);
        let got = s.messages();
        assert_eq!(got[0].frames(), &[Bytes::from_static(b"to server"), big]);
        assert_eq!(got[0].user_id().unwrap(), "noise-user");
        assert_eq!(got[0].socket_type().unwrap(), "PUSH");
        assert_eq!(c.messages()[0].frames()[0], "to client");
    }
}

/// Specification §6.3: the messages completed by records that decrypted
/// before a failing one are delivered, then the connection closes, whether
/// the failing record came in the same read or later.
#[test]
fn messages_before_a_failing_record_are_delivered_however_the_bytes_arrive() {
    for same_read in [true, false] {
        let server_keys = KeyPair::generate();
        let (mut c, mut s) = pair(
            Pattern::XX,
            server_keys.clone(),
            Some(KeyPair::generate()),
            None,
        );
        pump(&mut c, &mut s);
        assert!(c.ready() && s.ready());
        c.conn.send(&Message::from("valid")).unwrap();
        let record = c.take_output();
        // The same record again: a replay, which must not open.
        if same_read {
            let mut both = record.clone();
            both.extend_from_slice(&record);
            s.feed(&both);
        } else {
            s.feed(&record);
            assert!(s.error.is_none());
            s.feed(&record);
        }
        let got: Vec<_> = s.messages().iter().map(|m| m.frames()[0].clone()).collect();
        assert_eq!(
            got,
            [Bytes::from_static(b"valid")],
            "same read: {same_read}"
        );
        assert!(
            matches!(s.error, Some(Error::Peer(PeerError::Cryptographic(_)))),
            "same read: {same_read}: {:?}",
            s.error
        );
    }
}

#[test]
fn many_small_messages_share_records() {
    let server_keys = KeyPair::generate();
    let (mut c, mut s) = pair(Pattern::XX, server_keys, None, None);
    pump(&mut c, &mut s);
    for i in 0..1000u32 {
        c.conn
            .send(&Message::from(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    let mut wire = Vec::new();
    pump_with(&mut c, &mut s, |b| wire.extend_from_slice(b));
    // 1000 frames of 6 bytes: one record of 6000 bytes plus its 18 bytes.
    assert_eq!(wire.len(), 2 + 6000 + 16);
    assert_eq!(s.messages().len(), 1000);
}

#[test]
fn wrong_server_key_fails_for_ik_and_nk_and_pin_fails_for_xx() {
    for pattern in PATTERNS {
        let (mut c, mut s) = pair(
            pattern,
            KeyPair::generate(),
            None,
            Some(KeyPair::generate().public),
        );
        pump(&mut c, &mut s);
        assert!(!c.ready() && !s.ready(), "{pattern}");
        let err = if pattern == Pattern::XX {
            c.error.clone()
        } else {
            s.error.clone()
        };
        assert!(
            matches!(err, Some(Error::Peer(PeerError::Cryptographic(_)))),
            "{pattern}: {err:?}"
        );
    }
}

#[test]
fn unlisted_client_key_is_denied_with_status() {
    for pattern in [Pattern::XX, Pattern::IK] {
        let server_keys = KeyPair::generate();
        let (mut c, mut s) = pair(pattern, server_keys.clone(), None, Some(server_keys.public));
        s = s.with_verdict(|_| AuthVerdict::Deny { status: 400 });
        pump(&mut c, &mut s);
        assert_eq!(
            s.error.as_ref().unwrap().auth_status(),
            Some(400),
            "{pattern}"
        );
        assert_eq!(
            c.error.as_ref().unwrap().auth_status(),
            Some(400),
            "{pattern}"
        );
        assert!(!c.ready(), "a refused client never reports success");
    }
}

#[test]
fn mechanism_mismatch_against_curve_and_between_patterns() {
    let keys = KeyPair::generate();
    let mut c = Side::new(
        SocketType::Push,
        NoiseClient::new(Pattern::XX, None, None).unwrap(),
    );
    let mut s = Side::new(SocketType::Pull, crate::CurveServer::new(keys.clone()));
    pump(&mut c, &mut s);
    assert!(matches!(
        s.error,
        Some(Error::Peer(PeerError::MechanismMismatch { .. }))
    ));
    let mut c = Side::new(
        SocketType::Push,
        NoiseClient::new(Pattern::IK, None, Some(keys.public)).unwrap(),
    );
    let mut s = Side::new(SocketType::Pull, NoiseServer::new(Pattern::XX, keys));
    pump(&mut c, &mut s);
    assert!(matches!(
        s.error,
        Some(Error::Peer(PeerError::MechanismMismatch { .. }))
    ));
}

#[test]
fn a_changed_greeting_breaks_the_handshake() {
    // The prologue binds both greetings: flip the as-server byte of the
    // client's greeting on its way.
    let keys = KeyPair::generate();
    let (mut c, mut s) = pair(Pattern::XX, keys, None, None);
    let mut first = true;
    pump_with(&mut c, &mut s, |b| {
        if first {
            b[33] ^= 0x01;
            first = false;
        }
    });
    assert!(!c.ready() && !s.ready());
}

fn records() -> (Box<dyn StreamCipher>, Box<dyn StreamCipher>) {
    use zmtp_core::{Greeting, HandshakeContext, Mechanism, Metadata, Step};
    let keys = KeyPair::generate();
    let mut client = NoiseClient::new(Pattern::XX, None, None).unwrap();
    let mut server = NoiseServer::new(Pattern::XX, keys);
    let (gc, gs) = (
        Greeting::new(Pattern::XX.mechanism(), false),
        Greeting::new(Pattern::XX.mechanism(), true),
    );
    let (bc, bs) = (gc.emit(), gs.emit());
    let local = Metadata::new();
    let cctx = HandshakeContext {
        local: &local,
        our_greeting: &bc,
        peer_greeting: &bs,
        peer: &gs,
    };
    let sctx = HandshakeContext {
        local: &local,
        our_greeting: &bs,
        peer_greeting: &bc,
        peer: &gc,
    };
    let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
    let _ = client.start(&cctx, &mut to_s).unwrap();
    let _ = server.start(&sctx, &mut to_c).unwrap();
    let _ = server.handle_command(to_s.remove(0), &mut to_c).unwrap();
    let _ = client.handle_command(to_c.remove(0), &mut to_s).unwrap();
    assert!(matches!(
        server.handle_command(to_s.remove(0), &mut to_c).unwrap(),
        Step::Authenticate(_)
    ));
    let _ = server
        .handle_verdict(AuthVerdict::allow(), &mut to_c)
        .unwrap();
    assert!(matches!(
        client.handle_command(to_c.remove(0), &mut to_s).unwrap(),
        Step::Done(_)
    ));
    let (Traffic::Stream(c), Traffic::Stream(s)) = (
        Box::new(client).into_traffic(),
        Box::new(server).into_traffic(),
    ) else {
        panic!()
    };
    (c, s)
}

fn seal(c: &mut Box<dyn StreamCipher>, pt: &[u8]) -> BytesMut {
    let mut w = BytesMut::new();
    c.seal(pt, &mut w).unwrap();
    w
}

#[test]
fn rekey_crossed_many_times() {
    let (mut c, mut s) = records();
    let mut plain = BytesMut::new();
    let n = REKEY_INTERVAL * 5 + 7;
    for i in 0..n {
        let mut w = seal(&mut c, &i.to_be_bytes());
        s.open(&mut w, &mut plain).unwrap();
        assert!(w.is_empty());
        assert_eq!(&plain[..], &i.to_be_bytes());
        plain.clear();
    }
    // And the other direction, in one batch of records.
    let mut w = BytesMut::new();
    for i in 0..n {
        s.seal(&i.to_be_bytes(), &mut w).unwrap();
    }
    c.open(&mut w, &mut plain).unwrap();
    assert_eq!(plain.len(), n as usize * 8);
}

#[test]
fn large_plaintext_continues_across_records() {
    let (mut c, mut s) = records();
    let pt = vec![7u8; MAX_PLAINTEXT * 2 + 5];
    let mut w = seal(&mut c, &pt);
    assert_eq!(w.len(), pt.len() + 3 * (2 + 16));
    let mut plain = BytesMut::new();
    // Fed a byte at a time: incomplete records wait, nothing is lost.
    let mut fed = BytesMut::new();
    while !w.is_empty() {
        fed.extend_from_slice(&w.split_to(1));
        s.open(&mut fed, &mut plain).unwrap();
    }
    assert_eq!(&plain[..], &pt[..]);
}

#[test]
fn flipped_truncated_replayed_and_reordered_records_fail() {
    let (mut c, mut s) = records();
    let r1 = seal(&mut c, b"one");
    let r2 = seal(&mut c, b"two");
    let mut plain = BytesMut::new();
    // Flipped bytes anywhere after the length.
    for i in 2..r1.len() {
        let (_, mut s2) = records();
        let mut t = r1.clone();
        t[i] ^= 1;
        assert!(s2.open(&mut t, &mut plain).is_err(), "byte {i}");
    }
    // Reordered: the second record first. A failed record leaves nothing.
    let mut t = r2.clone();
    assert!(s.open(&mut t, &mut plain).is_err());
    assert!(plain.is_empty());
    // (The failed cipher is spent; a fresh pair for the rest.)
    let (mut c, mut s) = records();
    let r1 = seal(&mut c, b"one");
    let mut t = r1.clone();
    s.open(&mut t, &mut plain).unwrap();
    assert_eq!(&plain[..], b"one");
    // Replayed.
    let mut t = r1.clone();
    assert!(s.open(&mut t, &mut plain).is_err());
    // Shorter than a tag.
    let (_, mut s) = records();
    let mut short = BytesMut::from(&[0u8, 15, 1, 2, 3][..]);
    assert!(s.open(&mut short, &mut plain).is_err());
    // Truncated: waits, delivers nothing.
    let (mut c, mut s) = records();
    let r = seal(&mut c, b"truncated");
    let mut t = BytesMut::from(&r[..r.len() - 1]);
    plain.clear();
    s.open(&mut t, &mut plain).unwrap();
    assert!(plain.is_empty());
}

/// Hex of a byte string.
pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The test vectors of `docs/noise-mechanism.md` §"Test vectors": fixed
/// static and ephemeral keys, the exact handshake bytes and the first
/// records.
pub(crate) fn vectors() -> Vec<(String, String)> {
    use zmtp_core::{Greeting, HandshakeContext, Mechanism, Metadata};
    let key = |b: u8| SecretKey::from_bytes([b; 32]).unwrap();
    let mut out = Vec::new();
    for pattern in PATTERNS {
        let server_keys = KeyPair::from_secret(key(0x01));
        let client_keys = KeyPair::from_secret(key(0x02));
        let mut client = NoiseClient::new(pattern, Some(client_keys), Some(server_keys.public))
            .unwrap()
            .with_fixed_ephemeral([0x03; 32]);
        let mut server = NoiseServer::new(pattern, server_keys).with_fixed_ephemeral([0x04; 32]);
        let (gc, gs) = (
            Greeting::new(pattern.mechanism(), false),
            Greeting::new(pattern.mechanism(), true),
        );
        let (bc, bs) = (gc.emit(), gs.emit());
        let mut cm = Metadata::new();
        cm.insert("Socket-Type", &b"PUSH"[..]).unwrap();
        let mut sm = Metadata::new();
        sm.insert("Socket-Type", &b"PULL"[..]).unwrap();
        let cctx = HandshakeContext {
            local: &cm,
            our_greeting: &bc,
            peer_greeting: &bs,
            peer: &gs,
        };
        let sctx = HandshakeContext {
            local: &sm,
            our_greeting: &bs,
            peer_greeting: &bc,
            peer: &gc,
        };
        let name = pattern.to_string();
        let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
        let _ = client.start(&cctx, &mut to_s).unwrap();
        let _ = server.start(&sctx, &mut to_c).unwrap();
        let mut log = |who: &str, b: &Bytes| out.push((format!("{name} {who}"), hex(b)));
        let m1 = to_s.remove(0);
        log("client command 1", &m1);
        let step = server.handle_command(m1, &mut to_c).unwrap();
        if pattern == Pattern::XX {
            assert!(matches!(step, zmtp_core::Step::Continue));
            let m2 = to_c.remove(0);
            log("server command 1", &m2);
            let _ = client.handle_command(m2, &mut to_s).unwrap();
            let m3 = to_s.remove(0);
            log("client command 2", &m3);
            let _ = server.handle_command(m3, &mut to_c).unwrap();
        }
        let _ = server
            .handle_verdict(AuthVerdict::allow(), &mut to_c)
            .unwrap();
        for (i, b) in to_c.drain(..).enumerate() {
            log(&format!("server verdict command {}", i + 1), &b);
            if !matches!(
                client.handle_command(b, &mut to_s).unwrap(),
                zmtp_core::Step::Continue | zmtp_core::Step::Done(_)
            ) {
                panic!();
            }
        }
        let (Traffic::Stream(mut c), Traffic::Stream(mut s)) = (
            Box::new(client).into_traffic(),
            Box::new(server).into_traffic(),
        ) else {
            panic!()
        };
        // First records: the frame stream of one message each way.
        let mut w = BytesMut::new();
        c.seal(b"\x00\x05hello", &mut w).unwrap();
        out.push((format!("{name} client record 1"), hex(&w)));
        let mut w2 = BytesMut::new();
        s.seal(b"\x00\x05world", &mut w2).unwrap();
        out.push((format!("{name} server record 1"), hex(&w2)));
        let mut plain = BytesMut::new();
        s.open(&mut w, &mut plain).unwrap();
        assert_eq!(&plain[..], b"\x00\x05hello");
        if pattern == Pattern::XX {
            // §6.2: the records around the rekeys, the same plaintext each
            // time. The client's record 1 used nonce 0, the server's nonce 1
            // (after READY at 0).
            for (who, cipher, first, text) in [
                ("client", &mut c, 1u64, &b"\x00\x05hello"[..]),
                ("server", &mut s, 2, &b"\x00\x05world"[..]),
            ] {
                for n in first..=2000u64 {
                    let mut w = BytesMut::new();
                    cipher.seal(text, &mut w).unwrap();
                    if [999, 1000, 1001, 2000].contains(&n) {
                        out.push((format!("xx {who} record at nonce {n}"), hex(&w)));
                    }
                }
            }
            // §4.1: a whole frame, the first command with its header.
            let (label, body) = out
                .iter()
                .find(|(l, _)| l == "xx client command 1")
                .cloned()
                .expect("logged");
            let mut framed = format!("04{:02x}", body.len() / 2);
            framed.push_str(&body);
            out.push((format!("{label} as a frame"), framed));
        }
    }
    // §6.2: REKEY of the key 05 x 32.
    out.push(("rekey of the key 05 x 32".into(), hex(&rekeyed([5; 32]))));
    // §4.1: ERROR with status 400, as a command body.
    out.push(("error 400 command".into(), hex(b"\x05ERROR\x03400")));
    out
}

/// Noise REKEY (§6.2) with ring's AES-256-GCM: the first 32 bytes of 32
/// zero bytes sealed under `key` with the nonce 2^64 - 1.
fn rekeyed(key: [u8; 32]) -> [u8; 32] {
    let mut k = [0u8; 32];
    let _tag = super::cipher::AesGcm::new(&key).seal(u64::MAX, &[], &mut k);
    k
}

/// The rekey vector is Noise's REKEY as snow computes it with its own
/// AES-256-GCM (RustCrypto's, not ring's).
#[test]
fn the_rekey_vector_is_snows_rekey() {
    use snow::resolvers::CryptoResolver;
    let mut theirs = snow::resolvers::DefaultResolver
        .resolve_cipher(&snow::params::CipherChoice::AESGCM)
        .expect("AESGCM");
    theirs.set(&[5; 32]);
    theirs.rekey();
    let mut ours = [0u8; 48];
    let n = theirs.encrypt(7, b"", &[0x11; 32], &mut ours);
    let rekeyed = super::cipher::AesGcm::new(&rekeyed([5; 32]));
    let mut buf = [0x11u8; 32];
    let tag = rekeyed.seal(7, b"", &mut buf);
    assert_eq!(&ours[..32], &buf[..]);
    assert_eq!(&ours[32..n], &tag[..]);
}

#[test]
fn specification_test_vectors() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/noise-mechanism.md"
    ))
    .expect("docs/noise-mechanism.md");
    for (label, hexed) in vectors() {
        let line = format!("{label}: {hexed}");
        assert!(
            doc.contains(&line),
            "the specification lacks or differs on:\n{line}"
        );
    }
}

#[test]
#[ignore]
fn print_test_vectors() {
    for (label, hexed) in vectors() {
        println!("{label}: {hexed}");
    }
}

/// Specification §2.1: a draft-1 peer (ChaChaPoly) and a draft-2 peer
/// (AESGCM) fail the handshake at its first encrypted payload, with an
/// error on our side, in both roles.
#[test]
fn a_draft_1_peer_fails_the_handshake_cleanly() {
    use zmtp_core::{Greeting, HandshakeContext, Mechanism, Metadata};
    let draft1: snow::params::NoiseParams = "Noise_XX_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
    let (gc, gs) = (
        Greeting::new(Pattern::XX.mechanism(), false),
        Greeting::new(Pattern::XX.mechanism(), true),
    );
    let (bc, bs) = (gc.emit(), gs.emit());
    let prologue = super::handshake::prologue(&bc, &bs);
    let local = Metadata::new();
    let command = |m: &[u8]| {
        let mut b = b"\x05NOISE".to_vec();
        b.extend_from_slice(m);
        Bytes::from(b)
    };
    let (mut buf, mut payload) = ([0u8; 1024], [0u8; 1024]);

    let draft1_peer = |initiator: bool| {
        let keys = KeyPair::generate();
        let b = snow::Builder::with_resolver(draft1.clone(), super::handshake::snow_reference())
            .prologue(&prologue)
            .unwrap()
            .local_private_key(keys.secret.as_bytes())
            .unwrap();
        if initiator {
            b.build_initiator().unwrap()
        } else {
            b.build_responder().unwrap()
        }
    };

    // Our client against a draft-1 server.
    let mut client = NoiseClient::new(Pattern::XX, None, None).unwrap();
    let cctx = HandshakeContext {
        local: &local,
        our_greeting: &bc,
        peer_greeting: &bs,
        peer: &gs,
    };
    let mut to_s = Vec::new();
    let _ = client.start(&cctx, &mut to_s).unwrap();
    let m1 = to_s.remove(0);
    let mut server = draft1_peer(false);
    server
        .read_message(&m1[b"\x05NOISE".len()..], &mut payload)
        .expect("the first XX message carries no ciphertext");
    let n = server.write_message(&[], &mut buf).unwrap();
    assert!(
        client
            .handle_command(command(&buf[..n]), &mut to_s)
            .is_err()
    );
    assert!(to_s.is_empty(), "nothing sent after the failure");

    // A draft-1 client against our server: our second message does not
    // decrypt for it, so it can never send a third one we would accept.
    let mut server = NoiseServer::new(Pattern::XX, KeyPair::generate());
    let sctx = HandshakeContext {
        local: &local,
        our_greeting: &bs,
        peer_greeting: &bc,
        peer: &gc,
    };
    let mut to_c = Vec::new();
    let _ = server.start(&sctx, &mut to_c).unwrap();
    let mut client = draft1_peer(true);
    let n = client.write_message(&[], &mut buf).unwrap();
    let _ = server
        .handle_command(command(&buf[..n]), &mut to_c)
        .unwrap();
    let m2 = to_c.remove(0);
    assert!(
        client
            .read_message(&m2[b"\x05NOISE".len()..], &mut payload)
            .is_err()
    );
}

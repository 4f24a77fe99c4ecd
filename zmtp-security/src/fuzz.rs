//! Fuzz target bodies (feature `fuzzing`, never in a normal build). The thin
//! files in `fuzz/fuzz_targets/` call these, and `tests/fuzz_corpus.rs`
//! replays every file of `fuzz/corpus/` through them on stable.
//!
//! Handshake targets feed a connection in the chunks libzmq's fuzzers use
//! (greeting 64, HELLO 202, INITIATE 301, then the rest). Keys and nonces
//! come from one [`Deterministic`] source per input, given to the mechanisms
//! the target makes (nothing global changes), and each target draws them in
//! the same order as the recording in [`seeds`], so a recorded handshake
//! replays as valid and mutations reach the deep states.

use std::time::Instant;

use zmtp_core::{AuthVerdict, Config, Connection, Event, Mechanism, SocketType};

use std::sync::Arc;

use crate::keys::{KeyPair, SecretKey};
use crate::noise::Pattern;
use crate::random::{Deterministic, Random};
use crate::{CurveClient, CurveServer, NoiseClient, NoiseServer, PlainClient, PlainServer};

const SPLITS: [usize; 3] = [64, 64 + 202, 64 + 202 + 301];

/// Whether `data` takes the target's connection through the handshake: the
/// recorded seeds must, or the fuzzer would never get past the first
/// message.
pub fn handshake_completes(target: &str, data: &[u8]) -> bool {
    let mut c = match target {
        "plain_server" => conn(SocketType::Pull, PlainServer::new()),
        "plain_client" => match PlainClient::new("admin", "secret") {
            Ok(m) => conn(SocketType::Push, m),
            Err(_) => return false,
        },
        "curve_server" => curve_server_conn(),
        "curve_client" => curve_client_conn(),
        t => match noise_target(t) {
            Some((pattern, true)) => noise_server_conn(pattern),
            Some((pattern, false)) => match noise_client_conn(pattern) {
                Some(c) => c,
                None => return false,
            },
            None => return false,
        },
    };
    feed(&mut c, data, true);
    c.is_ready()
}

/// Feeds `data` in libzmq's chunks; answers the Authenticator with `allow`.
/// Returns everything the connection wrote.
fn feed(conn: &mut Connection, data: &[u8], allow: bool) -> Vec<u8> {
    let now = Instant::now();
    let mut written = Vec::new();
    let mut start = 0;
    let bounds = SPLITS
        .iter()
        .copied()
        .filter(|&s| s < data.len())
        .chain(std::iter::once(data.len()));
    for end in bounds {
        conn.recv_buffer().extend_from_slice(&data[start..end]);
        start = end;
        loop {
            // As the engine drains a connection: messages a few at a time.
            let mut messages = 0;
            let polled = conn.poll_messages(now, 3, |_| messages += 1);
            // Reaching a message means the handshake completed.
            assert!(
                messages == 0 || conn.peer().is_some(),
                "message before the handshake"
            );
            match polled {
                Ok(Some(Event::Authenticate(_))) => {
                    let v = if allow {
                        AuthVerdict::allow()
                    } else {
                        AuthVerdict::Deny { status: 400 }
                    };
                    if conn.authenticated(v, now).is_err() {
                        return written;
                    }
                }
                Ok(Some(Event::Message(m))) => {
                    unreachable!("poll_messages returned a message: {m:?}")
                }
                Ok(Some(_)) => {}
                Ok(None) if messages == 3 => {}
                Ok(None) => break,
                Err(_) => return written,
            }
        }
        if let Ok(out) = conn.output() {
            written.extend_from_slice(&out.take_all());
        }
    }
    written
}

fn conn(t: SocketType, m: impl Mechanism + 'static) -> Connection {
    Connection::new(Config::new(t), Box::new(m), Instant::now())
}

/// The seed of every target's and recording's source.
const SEED: u64 = 0x5EED_0000_0000_0001;

/// A fresh deterministic source, and the keys every CURVE and NOISE target
/// and recording draws from it first, in this order: the server's, the
/// client's.
fn curve_keys() -> (KeyPair, KeyPair, Random) {
    let random: Random = Arc::new(Deterministic::new(SEED));
    let server = KeyPair::generate_with(&*random);
    let client = KeyPair::generate_with(&*random);
    (server, client, random)
}

/// A CURVE server as the recording made it: the recorded client drew its
/// transient key after the long-term keys.
fn curve_server_conn() -> Connection {
    let (server, _client, random) = curve_keys();
    let _client_transient = SecretKey::generate_with(&*random);
    conn(
        SocketType::Pull,
        CurveServer::new(server).with_random(random),
    )
}

fn curve_client_conn() -> Connection {
    let (server, client, random) = curve_keys();
    conn(
        SocketType::Push,
        CurveClient::new(client, server.public).with_random(random),
    )
}

/// Z85 decoding: whatever decodes re-encodes to the same text.
pub fn z85(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = crate::z85::decode(text)
    {
        assert_eq!(crate::z85::encode(&bytes).ok().as_deref(), Some(text));
    }
}

/// A PLAIN server fed a client's bytes.
pub fn plain_server(data: &[u8]) {
    let mut c = conn(SocketType::Pull, PlainServer::new());
    feed(&mut c, data, true);
}

/// A PLAIN client fed a server's bytes.
pub fn plain_client(data: &[u8]) {
    let Ok(m) = PlainClient::new("admin", "secret") else {
        return;
    };
    let mut c = conn(SocketType::Push, m);
    feed(&mut c, data, true);
}

/// A CURVE server fed a client's bytes.
pub fn curve_server(data: &[u8]) {
    let mut c = curve_server_conn();
    feed(&mut c, data, true);
}

/// A CURVE client fed a server's bytes.
pub fn curve_client(data: &[u8]) {
    let mut c = curve_client_conn();
    feed(&mut c, data, true);
}

fn noise_target(t: &str) -> Option<(Pattern, bool)> {
    let (pattern, role) = t.strip_prefix("noise_")?.split_once('_')?;
    Some((pattern.parse().ok()?, role == "server"))
}

/// A NOISE server as the recording made it: keys drawn first; snow draws an
/// ephemeral when it writes the `e` token, and the client wrote its own
/// first.
fn noise_server_conn(pattern: Pattern) -> Connection {
    let (server, _client, random) = curve_keys();
    let _client_ephemeral = SecretKey::generate_with(&*random);
    conn(
        SocketType::Pull,
        NoiseServer::new(pattern, server).with_random(random),
    )
}

/// A NOISE client as the recording made it: its ephemeral is the first draw
/// after the keys.
fn noise_client_conn(pattern: Pattern) -> Option<Connection> {
    let (server, client, random) = curve_keys();
    let m = NoiseClient::new(pattern, Some(client), Some(server.public))
        .ok()?
        .with_random(random);
    Some(conn(SocketType::Push, m))
}

/// A NOISE server of `pattern` fed a client's bytes.
pub fn noise_server(pattern: Pattern, data: &[u8]) {
    let mut c = noise_server_conn(pattern);
    feed(&mut c, data, true);
}

/// A NOISE client of `pattern` fed a server's bytes.
pub fn noise_client(pattern: Pattern, data: &[u8]) {
    if let Some(mut c) = noise_client_conn(pattern) {
        feed(&mut c, data, true);
    }
}

/// Seeds: recorded valid handshakes, each followed by a few messages, as
/// `(target, bytes)`. The bytes one side sent are the other side's input.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // PLAIN.
    let (to_server, to_client) = record(
        conn(
            SocketType::Push,
            PlainClient::new("admin", "secret").unwrap_or_else(|_| unreachable!()),
        ),
        conn(SocketType::Pull, PlainServer::new()),
    );
    out.push(("plain_server", to_server));
    out.push(("plain_client", to_client));
    // CURVE: the same draws as the targets make, from one source.
    let (server, client, random) = curve_keys();
    let (to_server, to_client) = record(
        conn(
            SocketType::Push,
            CurveClient::new(client, server.public).with_random(random.clone()),
        ),
        conn(
            SocketType::Pull,
            CurveServer::new(server).with_random(random),
        ),
    );
    out.push(("curve_server", to_server));
    out.push(("curve_client", to_client));
    for (pattern, server_target, client_target) in [
        (Pattern::XX, "noise_xx_server", "noise_xx_client"),
        (Pattern::IK, "noise_ik_server", "noise_ik_client"),
        (Pattern::NK, "noise_nk_server", "noise_nk_client"),
    ] {
        let (server, client, random) = curve_keys();
        let Ok(m) = NoiseClient::new(pattern, Some(client), Some(server.public)) else {
            continue;
        };
        let (to_server, to_client) = record(
            conn(SocketType::Push, m.with_random(random.clone())),
            conn(
                SocketType::Pull,
                NoiseServer::new(pattern, server).with_random(random),
            ),
        );
        out.push((server_target, to_server));
        out.push((client_target, to_client));
    }
    out.push(("z85", b"HelloWorld".to_vec()));
    out.push(("z85", b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7".to_vec()));
    out
}

/// Runs a client and a server to the end of the handshake plus two
/// messages; returns the bytes each sent.
fn record(mut client: Connection, mut server: Connection) -> (Vec<u8>, Vec<u8>) {
    let now = Instant::now();
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    let mut sent = false;
    for _ in 0..10 {
        pass(&mut client, &mut server, &mut to_server, now);
        pass(&mut server, &mut client, &mut to_client, now);
        if client.is_ready() && server.is_ready() && !sent {
            for m in ["first", "second"] {
                let _ = client.send(&zmtp_core::Message::from(m));
                let _ = server.send(&zmtp_core::Message::from(m));
            }
            sent = true;
        }
    }
    (to_server, to_client)
}

/// Moves what `from` wrote to `to` (logging it) and lets `to` process it.
fn pass(from: &mut Connection, to: &mut Connection, log: &mut Vec<u8>, now: Instant) {
    if let Ok(out) = from.output() {
        let c = out.take_all();
        log.extend_from_slice(&c);
        to.recv_buffer().extend_from_slice(&c);
    }
    while let Ok(Some(ev)) = to.poll_event(now) {
        if let Event::Authenticate(_) = ev {
            let _ = to.authenticated(AuthVerdict::allow(), now);
        }
    }
}

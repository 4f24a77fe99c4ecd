//! A NOISE-XX peer written from `docs/noise-mechanism.md` alone, on snow's
//! own primitives (RustCrypto's AES-256-GCM, not the ring cipher zmtp
//! uses), with its own framing, metadata and record code: nothing of
//! zmtp's implementation. It runs REQ/REP and PUSH/PULL against our sockets
//! in both roles, through more than 2,000 records in each direction, across
//! the rekeys of §6.2.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use zmtp_sockets::security::{KeyPair, NoisePattern};
use zmtp_sockets::{Context, Message, Security, Socket, SocketType};

const ROUNDS: u32 = 2100;
const TIMEOUT: Duration = Duration::from_secs(20);

/// §2: the mechanism name in the greeting; RFC 23's greeting layout.
fn greeting(as_server: bool) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..20].copy_from_slice(b"NOISE-XX");
    g[32] = u8::from(as_server);
    g
}

/// RFC 23 metadata with one property.
fn metadata(socket_type: &str) -> Vec<u8> {
    let mut m = vec![11];
    m.extend_from_slice(b"Socket-Type");
    m.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    m.extend_from_slice(socket_type.as_bytes());
    m
}

/// The peer: a stream, the handshake's transport state, and its own nonce
/// counters (§6.1) to apply the rekey rule (§6.2).
struct Peer {
    stream: TcpStream,
    transport: snow::TransportState,
    tx_nonce: u64,
    rx_nonce: u64,
    plain: Vec<u8>,
    records_in: u64,
    records_out: u64,
}

fn write_command(s: &mut TcpStream, name: &str, data: &[u8]) {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut frame = if body.len() <= 255 {
        vec![0x04, body.len() as u8]
    } else {
        let mut h = vec![0x06];
        h.extend_from_slice(&(body.len() as u64).to_be_bytes());
        h
    };
    frame.extend_from_slice(&body);
    s.write_all(&frame).unwrap();
}

/// Reads one command frame; returns its data after checking its name.
fn read_command(s: &mut TcpStream, name: &str) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[0] {
        0x04 => usize::from(h[1]),
        0x06 => {
            let mut rest = [0u8; 7];
            s.read_exact(&mut rest).unwrap();
            let mut b = [0u8; 8];
            b[0] = h[1];
            b[1..].copy_from_slice(&rest);
            u64::from_be_bytes(b) as usize
        }
        f => panic!("not a command frame: flags {f:#x}"),
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    assert_eq!(usize::from(body[0]), name.len());
    assert_eq!(&body[1..1 + name.len()], name.as_bytes(), "expected {name}");
    body[1 + name.len()..].to_vec()
}

/// snow's own primitives (RustCrypto's AES-256-GCM), with randomness from
/// the operating system (snow's build here has no generator of its own).
struct Primitives;

struct OsRng;

impl snow::types::Random for OsRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        use zmtp_sockets::security::random::RandomSource;
        zmtp_sockets::security::random::OsRandom.fill(dest);
        Ok(())
    }
}

impl snow::resolvers::CryptoResolver for Primitives {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(OsRng))
    }
    fn resolve_dh(&self, c: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        snow::resolvers::DefaultResolver.resolve_dh(c)
    }
    fn resolve_hash(&self, c: &snow::params::HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        snow::resolvers::DefaultResolver.resolve_hash(c)
    }
    fn resolve_cipher(
        &self,
        c: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        snow::resolvers::DefaultResolver.resolve_cipher(c)
    }
}

/// §2 and §3: the protocol name, and the prologue of the label and both
/// greetings, the client's first.
fn handshake(greetings: &[u8], secret: &[u8; 32], initiator: bool) -> snow::HandshakeState {
    let params = "Noise_XX_25519_AESGCM_BLAKE2s".parse().unwrap();
    let mut prologue = b"ZMTP-NOISE/1".to_vec();
    prologue.extend_from_slice(greetings);
    let b = snow::Builder::with_resolver(params, Box::new(Primitives))
        .prologue(&prologue)
        .unwrap()
        .local_private_key(secret)
        .unwrap();
    if initiator {
        b.build_initiator().unwrap()
    } else {
        b.build_responder().unwrap()
    }
}

impl Peer {
    /// §4.2, XX as the client: -> e; <- e, ee, s, es; -> s, se with our
    /// metadata; READY is the server's transport message 0.
    fn client(mut stream: TcpStream, socket_type: &str, secret: &[u8; 32]) -> Peer {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let ours = greeting(false);
        stream.write_all(&ours).unwrap();
        let mut theirs = [0u8; 64];
        stream.read_exact(&mut theirs).unwrap();
        let mut prologue = ours.to_vec();
        prologue.extend_from_slice(&theirs);
        let mut hs = handshake(&prologue, secret, true);
        let mut buf = [0u8; 1024];
        let n = hs.write_message(&[], &mut buf).unwrap();
        write_command(&mut stream, "NOISE", &buf[..n]);
        let m2 = read_command(&mut stream, "NOISE");
        let n = hs.read_message(&m2, &mut buf).unwrap();
        assert_eq!(n, 0, "the server's payload is empty");
        let n = hs.write_message(&metadata(socket_type), &mut buf).unwrap();
        write_command(&mut stream, "NOISE", &buf[..n]);
        let mut transport = hs.into_transport_mode().unwrap();
        let ready = read_command(&mut stream, "READY");
        let n = transport.read_message(&ready, &mut buf).unwrap();
        assert!(buf[..n].windows(11).any(|w| w == b"Socket-Type"));
        Peer::new(stream, transport, 0, 1)
    }

    /// §4.2, XX as the server: READY with our metadata is our transport
    /// message 0.
    fn server(mut stream: TcpStream, socket_type: &str, secret: &[u8; 32]) -> Peer {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut theirs = [0u8; 64];
        stream.read_exact(&mut theirs).unwrap();
        let ours = greeting(true);
        stream.write_all(&ours).unwrap();
        let mut prologue = theirs.to_vec();
        prologue.extend_from_slice(&ours);
        let mut hs = handshake(&prologue, secret, false);
        let mut buf = [0u8; 1024];
        let m1 = read_command(&mut stream, "NOISE");
        assert_eq!(hs.read_message(&m1, &mut buf).unwrap(), 0);
        let n = hs.write_message(&[], &mut buf).unwrap();
        write_command(&mut stream, "NOISE", &buf[..n]);
        let m3 = read_command(&mut stream, "NOISE");
        let n = hs.read_message(&m3, &mut buf).unwrap();
        assert!(buf[..n].windows(11).any(|w| w == b"Socket-Type"));
        let mut transport = hs.into_transport_mode().unwrap();
        let n = transport
            .write_message(&metadata(socket_type), &mut buf)
            .unwrap();
        write_command(&mut stream, "READY", &buf[..n]);
        Peer::new(stream, transport, 1, 0)
    }

    fn new(stream: TcpStream, transport: snow::TransportState, tx: u64, rx: u64) -> Peer {
        Peer {
            stream,
            transport,
            tx_nonce: tx,
            rx_nonce: rx,
            plain: Vec::new(),
            records_in: 0,
            records_out: 0,
        }
    }

    /// One record holding `frames` (RFC 23 framing, MORE on all but the
    /// last), sealed under the rekey rule of §6.2.
    fn send(&mut self, frames: &[&[u8]]) {
        let mut pt = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let more = u8::from(i + 1 < frames.len());
            if f.len() <= 255 {
                pt.extend_from_slice(&[more, f.len() as u8]);
            } else {
                pt.push(more | 0x02);
                pt.extend_from_slice(&(f.len() as u64).to_be_bytes());
            }
            pt.extend_from_slice(f);
        }
        if self.tx_nonce > 0 && self.tx_nonce.is_multiple_of(1000) {
            self.transport.rekey_outgoing();
        }
        let mut ct = vec![0u8; pt.len() + 16];
        let n = self.transport.write_message(&pt, &mut ct).unwrap();
        self.tx_nonce += 1;
        self.records_out += 1;
        let mut record = (n as u16).to_be_bytes().to_vec();
        record.extend_from_slice(&ct[..n]);
        self.stream.write_all(&record).unwrap();
    }

    /// The next message's frames, opening records as needed.
    fn recv(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        loop {
            let Some((more, body, used)) = parse_frame(&self.plain) else {
                self.read_record();
                continue;
            };
            self.plain.drain(..used);
            frames.push(body);
            if !more {
                return frames;
            }
        }
    }

    fn read_record(&mut self) {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len).unwrap();
        let len = usize::from(u16::from_be_bytes(len));
        assert!(len >= 16);
        let mut ct = vec![0u8; len];
        self.stream.read_exact(&mut ct).unwrap();
        if self.rx_nonce > 0 && self.rx_nonce.is_multiple_of(1000) {
            self.transport.rekey_incoming();
        }
        let mut pt = vec![0u8; len];
        let n = self
            .transport
            .read_message(&ct, &mut pt)
            .unwrap_or_else(|e| panic!("record at nonce {} does not open: {e}", self.rx_nonce));
        self.rx_nonce += 1;
        self.records_in += 1;
        self.plain.extend_from_slice(&pt[..n]);
    }
}

/// A data frame from the start of `b`: (more, body, bytes used).
fn parse_frame(b: &[u8]) -> Option<(bool, Vec<u8>, usize)> {
    let flags = *b.first()?;
    assert_eq!(flags & 0x04, 0, "no command expected");
    let (size, head) = if flags & 0x02 != 0 {
        let s: [u8; 8] = b.get(1..9)?.try_into().ok()?;
        (u64::from_be_bytes(s) as usize, 9)
    } else {
        (usize::from(*b.get(1)?), 2)
    };
    let body = b.get(head..head + size)?.to_vec();
    Some((flags & 0x01 != 0, body, head + size))
}

fn our_socket(ctx: &Context, t: SocketType, keys: Option<KeyPair>, server: bool) -> Socket {
    let s = ctx.socket(t).unwrap();
    s.configure(|o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.sndtimeo = Some(TIMEOUT);
        o.security = if server {
            Security::NoiseServer {
                pattern: NoisePattern::XX,
                keys: keys.expect("server keys"),
            }
        } else {
            Security::NoiseClient {
                pattern: NoisePattern::XX,
                keys,
                server: None,
            }
        };
    })
    .unwrap();
    s
}

/// Our socket binds as the NOISE server; the spec peer connects.
fn peer_connects(ours: SocketType, theirs: &str) -> (Context, Socket, Peer) {
    let ctx = Context::new();
    let s = our_socket(&ctx, ours, Some(KeyPair::generate()), true);
    let ep = s.bind("tcp://127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
    let peer = Peer::client(stream, theirs, KeyPair::generate().secret.as_bytes());
    (ctx, s, peer)
}

/// The spec peer listens as the NOISE server; our socket connects.
fn we_connect(ours: SocketType, theirs: &str) -> (Context, Socket, Peer) {
    let ctx = Context::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = format!("tcp://{}", listener.local_addr().unwrap());
    let s = our_socket(&ctx, ours, None, false);
    s.connect(&ep).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let peer = Peer::server(stream, theirs, KeyPair::generate().secret.as_bytes());
    (ctx, s, peer)
}

fn check_records(peer: &Peer) {
    assert!(
        peer.records_in > 2000 && peer.records_out > 2000,
        "records in {}, out {}",
        peer.records_in,
        peer.records_out
    );
}

#[test]
fn req_rep_with_the_spec_peer_as_client_and_as_server() {
    // The peer is REQ (the NOISE client); our REP answers.
    let (_ctx, rep, mut peer) = peer_connects(SocketType::Rep, "REQ");
    for i in 0..ROUNDS {
        let q = format!("request {i}");
        peer.send(&[b"", q.as_bytes()]);
        let got = rep.recv_blocking().unwrap();
        assert_eq!(got.frames()[0], q.as_bytes());
        rep.send_blocking(format!("reply {i}").into_bytes())
            .unwrap();
        assert_eq!(
            peer.recv(),
            [b"".to_vec(), format!("reply {i}").into_bytes()]
        );
    }
    check_records(&peer);

    // The peer is REP (the NOISE server); our REQ asks.
    let (_ctx, req, mut peer) = we_connect(SocketType::Req, "REP");
    for i in 0..ROUNDS {
        req.send_blocking(format!("request {i}").into_bytes())
            .unwrap();
        let got = peer.recv();
        assert_eq!(got, [b"".to_vec(), format!("request {i}").into_bytes()]);
        peer.send(&[b"", format!("reply {i}").as_bytes()]);
        assert_eq!(
            req.recv_blocking().unwrap().frames()[0],
            format!("reply {i}").as_bytes()
        );
    }
    check_records(&peer);
}

#[test]
fn push_pull_with_the_spec_peer_as_client_and_as_server() {
    // The peer pushes (the NOISE client), a record per message.
    let (_ctx, pull, mut peer) = peer_connects(SocketType::Pull, "PUSH");
    for i in 0..ROUNDS {
        peer.send(&[format!("message {i}").as_bytes(), b"second frame"]);
    }
    for i in 0..ROUNDS {
        let got = pull.recv_blocking().unwrap();
        assert_eq!(got.frames()[0], format!("message {i}").as_bytes());
        assert_eq!(got.frames()[1], &b"second frame"[..]);
    }
    assert!(peer.records_out > 2000);

    // The peer pulls (the NOISE server); in lock step, so that each of our
    // messages travels in a record of its own.
    let (_ctx, push, mut peer) = we_connect(SocketType::Push, "PULL");
    for i in 0..ROUNDS {
        push.send_blocking(Message::from(format!("message {i}").into_bytes()))
            .unwrap();
        assert_eq!(peer.recv(), [format!("message {i}").into_bytes()]);
    }
    assert!(peer.records_in > 2000, "records in {}", peer.records_in);
}

//! CURVE (RFC 25 and RFC 26), byte for byte as libzmq 4.3 does it.
//!
//! ```text
//! C: HELLO    = %x05 "HELLO" version(2)=1.0 padding(72) C'(32) nonce(8) box[64 zeros](C'->S)(80)   200 bytes
//! S: WELCOME  = %x07 "WELCOME" nonce(16) box[S'(32) cookie(96)](S->C')(144)                      168 bytes
//!    cookie   = nonce(16) secretbox[C'(32) s'(32)](K)(80), nonce prefix "COOKIE--"
//! C: INITIATE = %x08 "INITIATE" cookie(96) nonce(8) box[C(32) vouch-nonce(16) vouch(80) metadata](C'->S')
//!    vouch    = box[C'(32) S(32)](C->S'), nonce prefix "VOUCH---"
//! S: READY    = %x05 "READY" nonce(8) box[metadata](S'->C')
//! *: MESSAGE  = %x07 "MESSAGE" nonce(8) box[flags(1) payload]   in a data frame
//! ```
//!
//! Departures of libzmq from the RFC, followed here: HELLO's padding is 72
//! bytes (RFC prose: 70); the cookie and vouch nonce prefixes are "COOKIE--"
//! and "VOUCH---"; MESSAGE travels in a data frame; the server keeps
//! per-connection state between WELCOME and INITIATE.
//!
//! Short nonces count from 1: the client's HELLO is 1, INITIATE 2, messages
//! from 3; the server's READY is 1, messages from 2.

mod cipher;
mod client;
pub(crate) mod crypto;
mod server;

use std::fmt;

use bytes::Bytes;
use zmtp_core::error::protocol;
use zmtp_core::{
    AuthVerdict, Error, FrameCipher, Greeting, HandshakeContext, Mechanism, MechanismName,
    Metadata, Result, Step, Traffic,
};

use crate::keys::{KeyPair, PublicKey};
use crate::random::Random;
use cipher::CurveCipher;

/// The CURVE client: it must know the server's public key.
pub struct CurveClient {
    state: ClientState,
    random: Random,
}

enum ClientState {
    New { ours: KeyPair, server: PublicKey },
    ExpectWelcome(client::ExpectWelcome),
    ExpectReady(client::ExpectReady),
    Established(CurveCipher),
    Failed,
}

impl CurveClient {
    /// A client with its long-term key pair and the server's public key.
    pub fn new(ours: KeyPair, server: PublicKey) -> CurveClient {
        CurveClient {
            state: ClientState::New { ours, server },
            random: crate::random::os(),
        }
    }

    /// Draws the transient key and nonces from `random` instead of the
    /// operating system's generator (tests and fuzzing).
    pub fn with_random(mut self, random: Random) -> CurveClient {
        self.random = random;
        self
    }

    /// A client with a fresh long-term key pair (libzmq clients without
    /// `ZMQ_CURVE_SECRETKEY` cannot connect; this is a convenience for
    /// servers that accept any key).
    pub fn ephemeral(server: PublicKey) -> CurveClient {
        CurveClient::new(KeyPair::generate(), server)
    }
}

impl fmt::Debug for CurveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ClientState::New { .. } => "New",
            ClientState::ExpectWelcome(_) => "ExpectWelcome",
            ClientState::ExpectReady(_) => "ExpectReady",
            ClientState::Established(_) => "Established",
            ClientState::Failed => "Failed",
        };
        f.debug_struct("CurveClient")
            .field("state", &state)
            .finish()
    }
}

impl Mechanism for CurveClient {
    fn name(&self) -> MechanismName {
        MechanismName::CURVE
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, out: &mut Vec<Bytes>) -> Result<Step> {
        let ClientState::New { ours, server } =
            std::mem::replace(&mut self.state, ClientState::Failed)
        else {
            return Err(protocol("CURVE client started twice"));
        };
        let (next, hello) = client::start(ours, server, ctx.local.clone(), &*self.random)?;
        out.push(hello);
        self.state = ClientState::ExpectWelcome(next);
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step> {
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::ExpectWelcome(s) => {
                let (next, initiate) = s.welcome(&body, &*self.random)?;
                out.push(initiate);
                self.state = ClientState::ExpectReady(next);
                Ok(Step::Continue)
            }
            ClientState::ExpectReady(s) => {
                let (cipher, peer) = s.ready(&body)?;
                self.state = ClientState::Established(cipher);
                Ok(Step::Done(peer))
            }
            _ => Err(protocol("CURVE client: unexpected command")),
        }
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        match self.state {
            ClientState::Established(c) => Traffic::Frames(Box::new(c)),
            _ => Traffic::Frames(Box::new(Refuse)),
        }
    }
}

/// The CURVE server, with its long-term key pair.
pub struct CurveServer {
    keys: KeyPair,
    random: Random,
    local: Metadata,
    state: ServerState,
}

enum ServerState {
    ExpectHello,
    ExpectInitiate(server::ExpectInitiate),
    AwaitVerdict(server::AwaitVerdict),
    Established(CurveCipher),
    Failed,
}

impl CurveServer {
    /// A server with its long-term key pair.
    pub fn new(keys: KeyPair) -> CurveServer {
        CurveServer {
            keys,
            random: crate::random::os(),
            local: Metadata::new(),
            state: ServerState::ExpectHello,
        }
    }

    /// Draws the transient key, cookie key and nonces from `random` instead
    /// of the operating system's generator (tests and fuzzing).
    pub fn with_random(mut self, random: Random) -> CurveServer {
        self.random = random;
        self
    }
}

impl fmt::Debug for CurveServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ServerState::ExpectHello => "ExpectHello",
            ServerState::ExpectInitiate(_) => "ExpectInitiate",
            ServerState::AwaitVerdict(_) => "AwaitVerdict",
            ServerState::Established(_) => "Established",
            ServerState::Failed => "Failed",
        };
        f.debug_struct("CurveServer")
            .field("public", &self.keys.public)
            .field("state", &state)
            .finish()
    }
}

impl Mechanism for CurveServer {
    fn name(&self) -> MechanismName {
        MechanismName::CURVE
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, _out: &mut Vec<Bytes>) -> Result<Step> {
        self.local = ctx.local.clone();
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step> {
        match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::ExpectHello => {
                let (next, welcome) = server::hello(&self.keys, &body, &*self.random)?;
                out.push(welcome);
                self.state = ServerState::ExpectInitiate(next);
                Ok(Step::Continue)
            }
            ServerState::ExpectInitiate(s) => {
                let (next, request) = s.initiate(&self.keys, &body)?;
                self.state = ServerState::AwaitVerdict(next);
                Ok(Step::Authenticate(request))
            }
            _ => Err(protocol("CURVE server: unexpected command")),
        }
    }

    fn handle_verdict(&mut self, verdict: AuthVerdict, out: &mut Vec<Bytes>) -> Result<Step> {
        let ServerState::AwaitVerdict(s) = std::mem::replace(&mut self.state, ServerState::Failed)
        else {
            return Err(protocol("CURVE server: unexpected verdict"));
        };
        let (cipher, peer) = s.verdict(verdict, &self.local, out)?;
        self.state = ServerState::Established(cipher);
        Ok(Step::Done(peer))
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        match self.state {
            ServerState::Established(c) => Traffic::Frames(Box::new(c)),
            _ => Traffic::Frames(Box::new(Refuse)),
        }
    }
}

/// The traffic of a mechanism that never authenticated: nothing passes.
/// Unreachable through the connection, which asks for traffic only after
/// `Step::Done`; it exists so that no state can yield plaintext traffic.
struct Refuse;

impl zmtp_core::FrameCipher for Refuse {
    fn overhead(&self) -> usize {
        0
    }
    fn seal(&mut self, _: bool, _: bool, _: &[u8], _: &mut bytes::BytesMut) -> Result<()> {
        Err(zmtp_core::error::cryptographic("handshake not complete"))
    }
    fn open(&mut self, _: bytes::BytesMut) -> Result<(bool, bool, bytes::BytesMut)> {
        Err(zmtp_core::error::cryptographic("handshake not complete"))
    }
}

/// The client's and the server's traffic ciphers.
pub type CipherPair = (Box<dyn FrameCipher>, Box<dyn FrameCipher>);

/// Both ends' traffic ciphers after a CURVE handshake run in memory with
/// fresh keys: the client's, then the server's. For measuring the cipher on
/// its own (`zmtp bench --pattern seal`, the criterion benches) and for
/// tests; a real connection gets its cipher from its `Connection`.
pub fn cipher_pair() -> std::result::Result<CipherPair, Error> {
    let server_keys = KeyPair::generate();
    let mut client = CurveClient::new(KeyPair::generate(), server_keys.public);
    let mut server = CurveServer::new(server_keys);
    let g = Greeting::new(MechanismName::CURVE, false);
    let bytes = g.emit();
    let local = Metadata::new();
    let ctx = HandshakeContext {
        local: &local,
        our_greeting: &bytes,
        peer_greeting: &bytes,
        peer: &g,
    };
    let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
    let next = |q: &mut Vec<_>| {
        if q.is_empty() {
            Err(protocol("handshake stalled"))
        } else {
            Ok(q.remove(0))
        }
    };
    let _ = client.start(&ctx, &mut to_s)?;
    let _ = server.start(&ctx, &mut to_c)?;
    let _ = server.handle_command(next(&mut to_s)?, &mut to_c)?;
    let _ = client.handle_command(next(&mut to_c)?, &mut to_s)?;
    let _ = server.handle_command(next(&mut to_s)?, &mut to_c)?;
    let _ = server.handle_verdict(AuthVerdict::allow(), &mut to_c)?;
    let _ = client.handle_command(next(&mut to_c)?, &mut to_s)?;
    match (
        Box::new(client).into_traffic(),
        Box::new(server).into_traffic(),
    ) {
        (Traffic::Frames(c), Traffic::Frames(s)) => Ok((c, s)),
        _ => Err(protocol("CURVE traffic is per frame")),
    }
}

#[cfg(test)]
mod tests;

//! NOISE handshakes on `snow`, one state machine per role.
//!
//! ```text
//! XX  C: NOISE(-> e)            S: NOISE(<- e, ee, s, es)
//!     C: NOISE(-> s, se; client metadata)
//!     S: Authenticator(client static) then READY(encrypted server metadata)
//! IK  C: NOISE(-> e, es, s, ss; client metadata)
//!     S: Authenticator(client static) then NOISE(<- e, ee, se), READY(...)
//! NK  C: NOISE(-> e, es; client metadata)
//!     S: Authenticator(address only) then NOISE(<- e, ee), READY(...)
//! ```
//!
//! A denied client gets ERROR with the ZAP status (none for 300). The
//! client's handshake is done only when READY opens, so it never reports
//! success to a server that refused it.

use std::fmt;

use bytes::Bytes;
use snow::HandshakeState;
use snow::params::NoiseParams;
use snow::resolvers::CryptoResolver;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;
use zmtp_core::error::{cryptographic as crypto, protocol};
use zmtp_core::mechanism::{deny, merge_auth};
use zmtp_core::wire::RawCommand;
use zmtp_core::{
    AuthRequest, AuthVerdict, Credentials, Error, HandshakeContext, Mechanism, MechanismName,
    Metadata, Result, Step, Traffic,
};

use super::cipher::SnowAesGcm;
use super::primitives::{Blake2s, X25519};
use super::record::{MAX_RECORD, Records};
use super::{PROLOGUE_LABEL, Pattern};
use crate::keys::{KeyPair, PublicKey};
use crate::random::Random;

fn usage(what: &'static str) -> Error {
    Error::Usage(zmtp_core::UsageError::InvalidArgument(what))
}

/// snow's primitives with the mechanism's own source of randomness (the
/// operating system's generator unless the mechanism was given another).
pub(super) struct Resolver(pub(super) Random);

#[cfg(test)]
impl Resolver {
    /// With the operating system's generator.
    pub(super) fn os() -> Resolver {
        Resolver(crate::random::os())
    }
}

struct Rng(Random);

impl snow::types::Random for Rng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(Rng(self.0.clone())))
    }
    fn resolve_dh(&self, c: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        match c {
            snow::params::DHChoice::Curve25519 => Some(Box::<X25519>::default()),
            _ => None,
        }
    }
    fn resolve_hash(&self, c: &snow::params::HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        match c {
            snow::params::HashChoice::Blake2s => Some(Box::<Blake2s>::default()),
            _ => None,
        }
    }
    fn resolve_cipher(
        &self,
        c: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        match c {
            snow::params::CipherChoice::AESGCM => Some(Box::<SnowAesGcm>::default()),
            _ => None,
        }
    }
}

/// snow's own primitives (RustCrypto's), with this crate's randomness for
/// what snow's build lacks: the independent implementation the tests check
/// ours against.
#[cfg(test)]
pub(super) fn snow_reference() -> snow::resolvers::BoxedCryptoResolver {
    Box::new(snow::resolvers::FallbackResolver::new(
        Box::new(snow::resolvers::DefaultResolver),
        Box::new(Resolver::os()),
    ))
}

pub(super) fn prologue(client_greeting: &[u8; 64], server_greeting: &[u8; 64]) -> Vec<u8> {
    let mut p = Vec::with_capacity(PROLOGUE_LABEL.len() + 128);
    p.extend_from_slice(PROLOGUE_LABEL);
    p.extend_from_slice(client_greeting);
    p.extend_from_slice(server_greeting);
    p
}

struct Setup<'a> {
    pattern: Pattern,
    random: &'a Random,
    prologue: &'a [u8],
    local: Option<&'a KeyPair>,
    remote: Option<&'a PublicKey>,
    fixed_ephemeral: Option<&'a [u8; 32]>,
}

fn build(s: Setup<'_>, initiator: bool) -> Result<HandshakeState> {
    let params: NoiseParams = s
        .pattern
        .protocol()
        .parse()
        .map_err(|_| usage("Noise parameters"))?;
    let mut b = snow::Builder::with_resolver(params, Box::new(Resolver(s.random.clone())))
        .prologue(s.prologue)
        .map_err(|_| usage("prologue"))?;
    if let Some(k) = s.local {
        b = b
            .local_private_key(k.secret.as_bytes())
            .map_err(|_| usage("static key"))?;
    }
    if let Some(r) = s.remote {
        b = b
            .remote_public_key(r.as_bytes())
            .map_err(|_| usage("server key"))?;
    }
    if let Some(e) = s.fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    let hs = if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    };
    hs.map_err(|_| usage("Noise handshake"))
}

/// A NOISE command body: `%x05 "NOISE" message`.
fn noise_command(msg: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(6 + msg.len());
    RawCommand::emit(b"NOISE", msg, &mut v);
    v.into()
}

fn write(hs: &mut HandshakeState, payload: &[u8]) -> Result<Bytes> {
    let mut buf = vec![0u8; MAX_RECORD];
    let n = hs
        .write_message(payload, &mut buf)
        .map_err(|_| crypto("handshake message"))?;
    Ok(noise_command(&buf[..n]))
}

/// Reads a NOISE command; returns the decrypted payload.
fn read(hs: &mut HandshakeState, body: &Bytes) -> Result<Zeroizing<Vec<u8>>> {
    let cmd = RawCommand::parse(body)?;
    if !cmd.is(b"NOISE") {
        return Err(protocol("NOISE: expected a NOISE command"));
    }
    let mut buf = Zeroizing::new(vec![0u8; cmd.data.len()]);
    let n = hs
        .read_message(&cmd.data, &mut buf)
        .map_err(|_| crypto("handshake message does not open"))?;
    buf.truncate(n);
    Ok(buf)
}

fn remote_static(hs: &HandshakeState) -> Result<[u8; 32]> {
    let k = hs
        .get_remote_static()
        .ok_or_else(|| protocol("NOISE: no static key"))?;
    let k: [u8; 32] = k.try_into().map_err(|_| crypto("static key length"))?;
    if k == [0u8; 32] {
        return Err(crypto("all-zero static key"));
    }
    Ok(k)
}

fn metadata(pt: &[u8]) -> Result<Metadata> {
    Metadata::parse(&Bytes::copy_from_slice(pt))
}

fn emit(m: &Metadata) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(m.wire_len()));
    m.emit(&mut v);
    v
}

/// The NOISE client.
pub struct NoiseClient {
    pattern: Pattern,
    random: Random,
    keys: Option<KeyPair>,
    server: Option<PublicKey>,
    fixed_ephemeral: Option<[u8; 32]>,
    state: ClientState,
}

enum ClientState {
    New,
    /// XX: waiting for the server's e, ee, s, es. IK, NK: for e, ee(, se).
    AwaitResponse(Box<HandshakeState>, Metadata),
    /// Waiting for the server's encrypted READY.
    AwaitReady(Box<Records>),
    Established(Box<Records>),
    Failed,
}

impl fmt::Debug for NoiseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseClient")
            .field("pattern", &self.pattern)
            .field("public", &self.keys.as_ref().map(|k| k.public))
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl NoiseClient {
    /// A client. XX and IK need the client's static key pair (`None`: a fresh
    /// one); IK and NK need the server's key; for XX it is an optional pin.
    pub fn new(
        pattern: Pattern,
        keys: Option<KeyPair>,
        server: Option<PublicKey>,
    ) -> Result<NoiseClient> {
        if pattern.needs_server_key() && server.is_none() {
            return Err(usage("NOISE-IK and NOISE-NK need the server's public key"));
        }
        let keys = match (pattern.client_static(), keys) {
            (true, None) => Some(KeyPair::generate()),
            (true, k) => k,
            (false, _) => None,
        };
        Ok(NoiseClient {
            pattern,
            random: crate::random::os(),
            keys,
            server,
            fixed_ephemeral: None,
            state: ClientState::New,
        })
    }

    /// Draws the ephemeral key from `random` instead of the operating
    /// system's generator (tests and fuzzing).
    pub fn with_random(mut self, random: Random) -> NoiseClient {
        self.random = random;
        self
    }

    /// Fixes the ephemeral key, for the specification's test vectors only.
    #[cfg(test)]
    pub(crate) fn with_fixed_ephemeral(mut self, e: [u8; 32]) -> NoiseClient {
        self.fixed_ephemeral = Some(e);
        self
    }
}

impl Mechanism for NoiseClient {
    fn name(&self) -> MechanismName {
        self.pattern.mechanism()
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, out: &mut Vec<Bytes>) -> Result<Step> {
        let p = prologue(ctx.our_greeting, ctx.peer_greeting);
        let remote = if self.pattern.needs_server_key() {
            self.server.as_ref()
        } else {
            None
        };
        let setup = Setup {
            pattern: self.pattern,
            random: &self.random,
            prologue: &p,
            local: self.keys.as_ref(),
            remote,
            fixed_ephemeral: self.fixed_ephemeral.as_ref(),
        };
        let mut hs = build(setup, true)?;
        // XX sends its metadata in the third message; IK and NK in the first.
        let payload = if self.pattern == Pattern::XX {
            Zeroizing::new(Vec::new())
        } else {
            emit(ctx.local)
        };
        out.push(write(&mut hs, &payload)?);
        self.state = ClientState::AwaitResponse(Box::new(hs), ctx.local.clone());
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step> {
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::AwaitResponse(mut hs, local) => {
                let payload = read(&mut hs, &body)?;
                if !payload.is_empty() {
                    return Err(protocol("NOISE: unexpected handshake payload"));
                }
                if self.pattern == Pattern::XX {
                    let server = remote_static(&hs)?;
                    if let Some(pin) = &self.server
                        && !bool::from(server.ct_eq(pin.as_bytes()))
                    {
                        return Err(crypto("server key does not match the pinned key"));
                    }
                    out.push(write(&mut hs, &emit(&local))?);
                }
                if !hs.is_handshake_finished() {
                    return Err(protocol("NOISE: handshake not finished"));
                }
                let records = Records::new(true, hs.dangerously_get_raw_split());
                self.state = ClientState::AwaitReady(Box::new(records));
                Ok(Step::Continue)
            }
            ClientState::AwaitReady(mut records) => {
                let cmd = RawCommand::parse(&body)?;
                if !cmd.is(b"READY") {
                    return Err(protocol("NOISE: expected READY"));
                }
                // READY is the server's first transport message.
                let pt = records
                    .open_message(&cmd.data)
                    .map_err(|_| crypto("READY does not open"))?;
                let peer = metadata(&pt)?;
                self.state = ClientState::Established(records);
                Ok(Step::Done(peer))
            }
            _ => Err(protocol("NOISE client: unexpected command")),
        }
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        match self.state {
            ClientState::Established(r) => Traffic::Stream(r),
            _ => Traffic::Stream(Box::new(Refuse)),
        }
    }
}

/// The NOISE server, with its static key pair.
pub struct NoiseServer {
    pattern: Pattern,
    random: Random,
    keys: KeyPair,
    fixed_ephemeral: Option<[u8; 32]>,
    local: Metadata,
    state: ServerState,
}

enum ServerState {
    New,
    /// XX: after msg1 comes the responder's msg2; IK, NK: msg1 is the only one.
    AwaitFirst(Box<HandshakeState>),
    /// XX: waiting for msg3.
    AwaitThird(Box<HandshakeState>),
    AwaitVerdict(Box<HandshakeState>, Metadata),
    Established(Box<Records>),
    Failed,
}

impl fmt::Debug for NoiseServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseServer")
            .field("pattern", &self.pattern)
            .field("public", &self.keys.public)
            .finish_non_exhaustive()
    }
}

impl NoiseServer {
    /// A server with its static key pair.
    pub fn new(pattern: Pattern, keys: KeyPair) -> NoiseServer {
        NoiseServer {
            pattern,
            random: crate::random::os(),
            keys,
            fixed_ephemeral: None,
            local: Metadata::new(),
            state: ServerState::New,
        }
    }

    /// Draws the ephemeral key from `random` instead of the operating
    /// system's generator (tests and fuzzing).
    pub fn with_random(mut self, random: Random) -> NoiseServer {
        self.random = random;
        self
    }

    /// Fixes the ephemeral key, for the specification's test vectors only.
    #[cfg(test)]
    pub(crate) fn with_fixed_ephemeral(mut self, e: [u8; 32]) -> NoiseServer {
        self.fixed_ephemeral = Some(e);
        self
    }
}

impl Mechanism for NoiseServer {
    fn name(&self) -> MechanismName {
        self.pattern.mechanism()
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, _out: &mut Vec<Bytes>) -> Result<Step> {
        self.local = ctx.local.clone();
        let p = prologue(ctx.peer_greeting, ctx.our_greeting);
        let setup = Setup {
            pattern: self.pattern,
            random: &self.random,
            prologue: &p,
            local: Some(&self.keys),
            remote: None,
            fixed_ephemeral: self.fixed_ephemeral.as_ref(),
        };
        self.state = ServerState::AwaitFirst(Box::new(build(setup, false)?));
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step> {
        match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::AwaitFirst(mut hs) => {
                let payload = read(&mut hs, &body)?;
                if self.pattern == Pattern::XX {
                    if !payload.is_empty() {
                        return Err(protocol("NOISE: unexpected payload in XX's first message"));
                    }
                    out.push(write(&mut hs, &[])?);
                    self.state = ServerState::AwaitThird(hs);
                    return Ok(Step::Continue);
                }
                let peer = metadata(&payload)?;
                let credentials = match self.pattern {
                    Pattern::IK => Credentials::Noise(remote_static(&hs)?),
                    _ => Credentials::Null,
                };
                self.state = ServerState::AwaitVerdict(hs, peer);
                Ok(Step::Authenticate(AuthRequest {
                    mechanism: self.pattern.mechanism(),
                    credentials,
                }))
            }
            ServerState::AwaitThird(mut hs) => {
                let payload = read(&mut hs, &body)?;
                let peer = metadata(&payload)?;
                let key = remote_static(&hs)?;
                self.state = ServerState::AwaitVerdict(hs, peer);
                Ok(Step::Authenticate(AuthRequest {
                    mechanism: self.pattern.mechanism(),
                    credentials: Credentials::Noise(key),
                }))
            }
            _ => Err(protocol("NOISE server: unexpected command")),
        }
    }

    fn handle_verdict(&mut self, verdict: AuthVerdict, out: &mut Vec<Bytes>) -> Result<Step> {
        let ServerState::AwaitVerdict(mut hs, mut peer) =
            std::mem::replace(&mut self.state, ServerState::Failed)
        else {
            return Err(protocol("NOISE server: unexpected verdict"));
        };
        let (user_id, properties) = match verdict.decision() {
            Ok(allowed) => allowed,
            Err(status) => return Err(deny(status, out)),
        };
        merge_auth(&mut peer, user_id, properties);
        if self.pattern != Pattern::XX {
            out.push(write(&mut hs, &[])?);
        }
        if !hs.is_handshake_finished() {
            return Err(protocol("NOISE: handshake not finished"));
        }
        let mut records = Records::new(false, hs.dangerously_get_raw_split());
        let sealed = records.seal_message(&emit(&self.local))?;
        let mut ready = Vec::with_capacity(6 + sealed.len());
        RawCommand::emit(b"READY", &sealed, &mut ready);
        out.push(ready.into());
        self.state = ServerState::Established(Box::new(records));
        Ok(Step::Done(peer))
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        match self.state {
            ServerState::Established(r) => Traffic::Stream(r),
            _ => Traffic::Stream(Box::new(Refuse)),
        }
    }
}

/// Traffic of a handshake that never finished: nothing passes.
struct Refuse;

impl zmtp_core::StreamCipher for Refuse {
    fn seal(&mut self, _: &[u8], _: &mut bytes::BytesMut) -> Result<()> {
        Err(crypto("handshake not complete"))
    }
    fn open(&mut self, _: &mut bytes::BytesMut, _: &mut bytes::BytesMut) -> Result<()> {
        Err(crypto("handshake not complete"))
    }
}

//! The `Mechanism` plug, which zmtp-security implements, and the NULL
//! mechanism (RFC 23 §"The NULL Security Mechanism").
//!
//! A mechanism is a sans-IO state machine. The connection hands it command
//! bodies and it answers with command bodies to send and a [`Step`]:
//!
//! ```text
//!            start()
//!               │
//!               ▼
//!     ┌──► Step::Continue ──── handle_command(body) ───┐
//!     │         │                                      │
//!     │         ▼                                      │
//!     │  Step::Authenticate(req) ── handle_verdict ────┤
//!     │                                                │
//!     └────────────────────────────────────────────────┘
//!               │
//!               ▼
//!  Step::Done(peer metadata) ── into_traffic() ──► Traffic
//! ```
//!
//! After the handshake the mechanism becomes the traffic transform
//! ([`Traffic`]): nothing for NULL and PLAIN (so they cost nothing), one box
//! per frame for CURVE ([`FrameCipher`]), and records over the frame stream
//! for NOISE ([`StreamCipher`]).

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::error::{Error, PeerError, Result, protocol};
use crate::wire::{Command, Greeting, MechanismName, Metadata, RawCommand};

/// What the connection tells a mechanism when the greetings are exchanged.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeContext<'a> {
    /// Our metadata for READY / INITIATE: `Socket-Type`, `Identity` and
    /// application properties.
    pub local: &'a Metadata,
    /// The 64 bytes of our greeting, as sent.
    pub our_greeting: &'a [u8; 64],
    /// The 64 bytes of the peer's greeting, as received.
    pub peer_greeting: &'a [u8; 64],
    /// The peer's greeting, parsed.
    pub peer: &'a Greeting,
}

/// What a mechanism asks for after each input.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum Step {
    /// Waiting for the peer's next command.
    Continue,
    /// The server must ask the Authenticator, then call
    /// [`Mechanism::handle_verdict`].
    Authenticate(AuthRequest),
    /// The handshake is complete. The metadata is the peer's, with the local
    /// `User-Id` and authenticator properties added on a server.
    Done(Metadata),
}

/// Credentials presented by a client, given to the Authenticator.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// NULL: no credentials; only the address can be judged.
    Null,
    /// PLAIN username and password.
    Plain {
        /// The username.
        username: Bytes,
        /// The password. Never shown by `Debug`.
        password: Bytes,
    },
    /// The client's long-term CURVE public key.
    Curve([u8; 32]),
    /// The client's static NOISE public key.
    Noise([u8; 32]),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Null => f.write_str("Null"),
            Credentials::Plain { username, .. } => f
                .debug_struct("Plain")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Curve(k) => f.debug_tuple("Curve").field(&HexKey(k)).finish(),
            Credentials::Noise(k) => f.debug_tuple("Noise").field(&HexKey(k)).finish(),
        }
    }
}

struct HexKey<'a>(&'a [u8; 32]);

impl fmt::Debug for HexKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A question for the Authenticator (the ZAP request, RFC 27, without the
/// address and domain, which the connection's driver knows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The mechanism in use.
    pub mechanism: MechanismName,
    /// What the client presented.
    pub credentials: Credentials,
}

/// The Authenticator's answer (the ZAP reply).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthVerdict {
    /// Status 200: accepted.
    Allow {
        /// The `User-Id` given to this peer's messages.
        user_id: Bytes,
        /// Extra properties given to this peer's messages.
        properties: Metadata,
    },
    /// Status 300 (temporary failure, closed silently), 400 (denied) or 500
    /// (internal error): the client gets an ERROR with the status for 400 and
    /// 500, and nothing for 300.
    Deny {
        /// The ZAP status code.
        status: u16,
    },
}

impl AuthVerdict {
    /// The allowed peer's user id and properties, or the status it was
    /// denied with. Mechanisms decide through this, so that a verdict this
    /// crate adds later is judged here, failing closed.
    pub fn decision(self) -> std::result::Result<(Bytes, Metadata), u16> {
        match self {
            AuthVerdict::Allow {
                user_id,
                properties,
            } => Ok((user_id, properties)),
            AuthVerdict::Deny { status } => Err(status),
        }
    }

    /// Status 200 with no user id.
    pub fn allow() -> AuthVerdict {
        AuthVerdict::Allow {
            user_id: Bytes::new(),
            properties: Metadata::new(),
        }
    }
}

/// A mechanism's handshake, driven by the connection.
pub trait Mechanism: Send {
    /// The name in the greeting.
    fn name(&self) -> MechanismName;

    /// Whether this side is the security server (sent in the greeting).
    fn as_server(&self) -> bool;

    /// Called once the greetings are exchanged. Commands to send are pushed
    /// to `out` as command bodies.
    fn start(&mut self, ctx: &HandshakeContext<'_>, out: &mut Vec<Bytes>) -> Result<Step>;

    /// A command body from the peer.
    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step>;

    /// The Authenticator's verdict, after [`Step::Authenticate`].
    fn handle_verdict(&mut self, verdict: AuthVerdict, out: &mut Vec<Bytes>) -> Result<Step> {
        let _ = (verdict, out);
        Err(protocol("mechanism asked for no verdict"))
    }

    /// Turns the finished handshake into the traffic transform. Called once,
    /// after [`Step::Done`].
    fn into_traffic(self: Box<Self>) -> Traffic;
}

/// How traffic is transformed after the handshake.
#[non_exhaustive]
pub enum Traffic {
    /// Frames travel as they are (NULL, PLAIN): no cost at all.
    Plain,
    /// Each frame is sealed into one wire frame (CURVE's MESSAGE).
    Frames(Box<dyn FrameCipher>),
    /// The frame stream is carried in sealed records (NOISE).
    Stream(Box<dyn StreamCipher>),
}

impl fmt::Debug for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Traffic::Plain => "Traffic::Plain",
            Traffic::Frames(_) => "Traffic::Frames",
            Traffic::Stream(_) => "Traffic::Stream",
        })
    }
}

/// A cipher that seals each frame into one wire frame.
pub trait FrameCipher: Send {
    /// Bytes a sealed wire body adds to the plaintext body.
    fn overhead(&self) -> usize;

    /// Seals one plaintext frame (with its MORE and COMMAND flags) and
    /// appends the wire body, exactly `overhead() + body.len()` bytes, to
    /// `out`.
    fn seal(&mut self, more: bool, command: bool, body: &[u8], out: &mut BytesMut) -> Result<()>;

    /// Opens one wire body in place; returns the plaintext flags
    /// `(more, command)` and the plaintext body, split from `wire` without
    /// copying.
    fn open(&mut self, wire: BytesMut) -> Result<(bool, bool, BytesMut)>;
}

/// A cipher over the byte stream of frames.
pub trait StreamCipher: Send {
    /// Seals `plaintext` (whole frames, queued since the last call) into
    /// records appended to `out`.
    fn seal(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<()>;

    /// Opens every complete record at the front of `wire`, appending the
    /// plaintext to `plain`. Incomplete records stay in `wire`.
    fn open(&mut self, wire: &mut BytesMut, plain: &mut BytesMut) -> Result<()>;
}

/// The NULL mechanism: each side sends READY with its metadata.
///
/// When `authenticate` is set (libzmq: a ZAP domain is configured), the
/// Authenticator is asked about the peer (by address only) before READY is
/// sent; a denial with status 400 or 500 sends ERROR with that status, and 300
/// closes silently, as libzmq's `null_mechanism_t` does.
#[derive(Debug)]
pub struct Null {
    authenticate: bool,
    state: NullState,
    local: Metadata,
    auth: Option<(Bytes, Metadata)>,
}

#[derive(Debug, PartialEq, Eq)]
enum NullState {
    New,
    AwaitVerdict,
    AwaitReady,
    Done,
}

impl Null {
    /// NULL without authentication.
    pub fn new() -> Null {
        Null::with_authentication(false)
    }

    /// NULL that asks the Authenticator (by address) before it sends READY.
    pub fn with_authentication(authenticate: bool) -> Null {
        Null {
            authenticate,
            state: NullState::New,
            local: Metadata::new(),
            auth: None,
        }
    }
}

impl Default for Null {
    fn default() -> Null {
        Null::new()
    }
}

/// Turns a failing verdict into the commands and error libzmq produces: ERROR
/// with the status code for 400 and 500, silence for 300. Shared by the
/// mechanisms.
pub fn deny(status: u16, out: &mut Vec<Bytes>) -> Error {
    if status != 300 {
        out.push(Command::Error(Bytes::from(status.to_string())).to_bytes());
    }
    Error::Peer(PeerError::AuthFailed { status })
}

/// [`deny`] in the form libzmq's PLAIN mechanism uses on the wire.
///
/// libzmq 4.3 (4.3.4 and 4.3.5 both, observed on the wire) writes its PLAIN
/// ERROR prefix as a C literal in which `\x05E` is read as one hex escape:
/// the command body is `5E "RROR" 03 status`, 9 bytes, and libzmq's PLAIN
/// client only recognises that form. A standard ERROR makes it report an
/// unexpected command instead of the authentication failure, so our PLAIN
/// server speaks libzmq's form; our clients accept both.
pub fn deny_libzmq_plain(status: u16, out: &mut Vec<Bytes>) -> Error {
    if status != 300 {
        let mut body = b"\x5eRROR\x03".to_vec();
        body.extend_from_slice(status.to_string().as_bytes());
        out.push(body.into());
    }
    Error::Peer(PeerError::AuthFailed { status })
}

/// Adds the Authenticator's outcome to the peer's metadata as local
/// properties. Shared by the mechanisms.
pub fn merge_auth(peer: &mut Metadata, user_id: Bytes, properties: Metadata) {
    for (name, value) in properties.iter() {
        // Names came through `Metadata::insert` or the parser, so they are
        // valid.
        let _ = peer.insert(name, value.clone());
    }
    let _ = peer.insert(crate::wire::USER_ID, user_id);
}

impl Mechanism for Null {
    fn name(&self) -> MechanismName {
        MechanismName::NULL
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, out: &mut Vec<Bytes>) -> Result<Step> {
        self.local = ctx.local.clone();
        if self.authenticate {
            self.state = NullState::AwaitVerdict;
            return Ok(Step::Authenticate(AuthRequest {
                mechanism: MechanismName::NULL,
                credentials: Credentials::Null,
            }));
        }
        out.push(Command::Ready(self.local.clone()).to_bytes());
        self.state = NullState::AwaitReady;
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, _out: &mut Vec<Bytes>) -> Result<Step> {
        if self.state != NullState::AwaitReady {
            return Err(protocol("NULL: command before READY was sent"));
        }
        let raw = RawCommand::parse(&body)?;
        if !raw.is(b"READY") {
            return Err(protocol("NULL: expected READY"));
        }
        let mut peer = Metadata::parse(&raw.data)?;
        if let Some((user_id, props)) = self.auth.take() {
            merge_auth(&mut peer, user_id, props);
        }
        self.state = NullState::Done;
        Ok(Step::Done(peer))
    }

    fn handle_verdict(&mut self, verdict: AuthVerdict, out: &mut Vec<Bytes>) -> Result<Step> {
        if self.state != NullState::AwaitVerdict {
            return Err(protocol("NULL: unexpected verdict"));
        }
        match verdict {
            AuthVerdict::Allow {
                user_id,
                properties,
            } => {
                self.auth = Some((user_id, properties));
                out.push(Command::Ready(self.local.clone()).to_bytes());
                self.state = NullState::AwaitReady;
                Ok(Step::Continue)
            }
            AuthVerdict::Deny { status } => Err(deny(status, out)),
        }
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        Traffic::Plain
    }
}

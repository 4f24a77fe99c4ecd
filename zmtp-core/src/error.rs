//! The one error type of zmtp-core.
//!
//! Errors are split by cause, as the design asks: what the *peer* did wrong
//! ([`PeerError`]), a peer that went silent ([`TimeoutKind`]), and misuse of
//! this API by the caller ([`UsageError`]). A peer fault always ends the
//! connection; a usage error leaves the connection as it was.

use std::fmt;

use crate::socket_type::SocketType;
use crate::wire::MechanismName;

/// Everything that can go wrong in zmtp-core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent something invalid; the connection must be closed.
    #[error("peer fault: {0}")]
    Peer(#[from] PeerError),
    /// The peer was silent past a deadline; the connection must be closed.
    #[error("timeout: {0}")]
    Timeout(TimeoutKind),
    /// The caller used the API wrongly; nothing was changed.
    #[error("usage error: {0}")]
    Usage(#[from] UsageError),
}

impl Error {
    /// True when the error was caused by the remote peer (malformed input,
    /// protocol violation, failed authentication, silence).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Error::Usage(_))
    }

    /// The ZAP status code when this error is an authentication failure.
    pub fn auth_status(&self) -> Option<u16> {
        match self {
            Error::Peer(PeerError::AuthFailed { status, .. }) => Some(*status),
            _ => None,
        }
    }
}

/// A fault of the peer. Each variant closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Bytes that do not parse (bad lengths, truncated bodies, bad names).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Well-formed input that is not allowed at this point of the protocol.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A ZMTP 1.0 or 2.0 peer; only 3.x is spoken.
    #[error("unsupported ZMTP version {0}")]
    UnsupportedVersion(LegacyVersion),
    /// The peer's greeting names another security mechanism.
    #[error("mechanism mismatch: ours {ours}, peer's {theirs}")]
    MechanismMismatch {
        /// Our mechanism.
        ours: MechanismName,
        /// The peer's mechanism.
        theirs: MechanismName,
    },
    /// The peer's socket type cannot talk to ours (RFC 23 / RFC 37).
    #[error("incompatible socket types: ours {ours}, peer's {theirs}")]
    IncompatibleSocketType {
        /// Our socket type.
        ours: SocketType,
        /// The peer's socket type.
        theirs: SocketType,
    },
    /// A frame larger than the configured limit was announced.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Announced size in bytes.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A cryptographic check failed (bad box, bad cookie, replayed nonce,
    /// all-zero key, non-contributory shared secret).
    #[error("cryptographic failure: {0}")]
    Cryptographic(&'static str),
    /// Authentication failed with a ZAP status code (300, 400 or 500).
    ///
    /// On a server this is our own verdict on the client; on a client it is
    /// the status the server sent in its ERROR command.
    #[error("authentication failed with status {status}")]
    AuthFailed {
        /// ZAP status code.
        status: u16,
    },
    /// The peer sent an ERROR command with this reason.
    #[error("peer sent ERROR: {0:?}")]
    ErrorCommand(String),
}

/// Deadlines that a silent peer can miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The handshake did not finish within the handshake interval.
    Handshake,
    /// No traffic within the heartbeat timeout after our PING.
    Heartbeat,
    /// No traffic within the TTL that our own PING announced to the peer
    /// (as the peer enforces it) or the TTL the peer announced to us.
    Ttl,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Handshake => "handshake deadline passed",
            TimeoutKind::Heartbeat => "no answer to heartbeat",
            TimeoutKind::Ttl => "peer silent past its heartbeat TTL",
        })
    }
}

/// Pre-3.0 protocol versions that are detected and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyVersion {
    /// ZMTP 1.0 without a signature (first byte is a length).
    Unversioned,
    /// ZMTP 1.0 with a signature (revision byte 0x00).
    V1,
    /// ZMTP 2.0 (revision byte 0x01).
    V2,
}

impl fmt::Display for LegacyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyVersion::Unversioned => "1.0 (unversioned)",
            LegacyVersion::V1 => "1.0",
            LegacyVersion::V2 => "2.0",
        })
    }
}

/// Misuse of the API by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection has not finished its handshake.
    #[error("the handshake has not finished")]
    NotReady,
    /// The connection was closed by an earlier error.
    #[error("the connection is closed")]
    Closed,
    /// A value given by the caller is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A [`PeerError::Malformed`] error.
pub fn malformed(what: &'static str) -> Error {
    Error::Peer(PeerError::Malformed(what))
}

/// A [`PeerError::Protocol`] error.
pub fn protocol(what: &'static str) -> Error {
    Error::Peer(PeerError::Protocol(what))
}

/// A [`PeerError::Cryptographic`] error.
pub fn cryptographic(what: &'static str) -> Error {
    Error::Peer(PeerError::Cryptographic(what))
}

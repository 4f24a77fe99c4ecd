//! # zmtp-core: the sans-IO ZMTP 3.x wire layer
//!
//! This crate knows the bytes of ZeroMQ's wire protocol (ZMTP 3.0 and 3.1,
//! RFC 23 and RFC 37) and nothing else: no sockets, no async, no clock. Time
//! is passed in as [`std::time::Instant`] values. The layers, bottom up:
//!
//! - [`wire`]: one file per wire unit — the 64-byte greeting, frame headers,
//!   commands, metadata — each parsed with `nom` over borrowed slices and
//!   emitted from the same type.
//! - [`codec`]: the streaming [`FrameDecoder`] (limits checked from the header
//!   alone, bodies split out of the read buffer without copying) and the
//!   batching [`Encoder`] (small frames coalesced, large bodies passed through
//!   for vectored writes).
//! - [`mechanism`]: the [`Mechanism`] plug that the security mechanisms
//!   (zmtp-security) implement, the traffic transforms ([`Traffic`]), and the
//!   NULL mechanism.
//! - [`connection`]: the [`Connection`] state machine — greeting, handshake,
//!   READY and metadata, then traffic with heartbeats — driven by one task
//!   per peer in zmtp-sockets.
//! - [`Message`], [`SocketType`] and the compatibility matrix, and [`Error`].
//!
//! Where an RFC and libzmq disagree, libzmq wins, since it is what we must
//! talk to; each such place says so in a comment.
//!
//! ## Cargo features
//!
//! None is on by default, and a normal build needs none.
//!
//! - `testing`: the `testing` module, the bytes a mock peer sends (greeting, READY,
//!   SUBSCRIBE, frames) and an in-memory connection pair, for tests of
//!   code built on this crate. Not for production.
//! - `fuzzing`: `fuzz`, the bodies of the cargo-fuzz targets. It changes
//!   no behaviour.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
pub mod connection;
pub mod error;
pub mod mechanism;
pub mod message;
pub mod socket_type;
pub mod wire;

#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
pub mod fuzz;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use codec::{Encoder, Frame, FrameDecoder};
pub use connection::{Config, Connection, Event};
pub use error::{Error, PeerError, Result, TimeoutKind, UsageError};
pub use mechanism::{
    AuthRequest, AuthVerdict, Credentials, FrameCipher, HandshakeContext, Mechanism, Null, Step,
    StreamCipher, Traffic,
};
pub use message::{IntoFrame, Message};
pub use socket_type::SocketType;
pub use wire::{Command, Greeting, MechanismName, Metadata};

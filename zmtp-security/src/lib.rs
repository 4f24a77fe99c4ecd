//! # zmtp-security: the ZMTP security mechanisms
//!
//! - [`zmtp_core::Null`] (re-exported as [`Null`]): no security; the
//!   Authenticator may still judge the peer by address.
//! - [`PlainClient`] / [`PlainServer`] (RFC 24): username and password in
//!   clear.
//! - [`CurveClient`] / [`CurveServer`] (RFC 25/26): X25519 and
//!   XSalsa20-Poly1305, byte-compatible with libzmq 4.3.
//! - [`NoiseClient`] / [`NoiseServer`]: NOISE-XX, -IK and -NK, specified in
//!   the project's `docs/noise-mechanism.md`, between zmtp peers.
//! - Keys: [`PublicKey`], [`SecretKey`], [`KeyPair`], Z85 ([`z85`], RFC 32),
//!   and zcert certificate files (czmq's and pyzmq's names).
//! - [`random`]: where the mechanisms' random bytes come from (the
//!   operating system's generator unless a mechanism is given another).
//! - [`Authenticator`]: the in-process equivalent of ZAP (RFC 27), with
//!   built-in policies.
//!
//! Each mechanism is a sans-IO state machine behind zmtp-core's
//! [`zmtp_core::Mechanism`] trait; the engine runs it inside the connection's
//! own task.
//!
//! ## Cargo features
//!
//! None is on by default, and a normal build needs none.
//!
//! - `fuzzing`: `fuzz`, the bodies of the cargo-fuzz targets. It changes
//!   no behaviour: randomness is never switched by a feature (the targets
//!   give their mechanisms a [`random::Deterministic`] source themselves).
//!
//! Which crate supplies each primitive, and why, is in the repository's
//! `DEPENDENCIES.md`.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod curve;
mod error;
pub mod keys;
pub mod noise;
pub mod plain;
pub mod random;
pub mod z85;

#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
pub mod fuzz;

pub use auth::{
    AddressFilter, AllowAll, AuthRequest, Authenticator, FnAuthenticator, PlainCredentials,
    PublicKeyAllowList, VerdictFuture,
};
pub use curve::{CurveClient, CurveServer};
pub use error::KeyError;
pub use keys::{KeyPair, PublicKey, SecretKey, load_public_certificate, load_secret_key};
pub use noise::{NoiseClient, NoiseServer, Pattern as NoisePattern};
pub use plain::{PlainClient, PlainServer};
pub use zmtp_core::{AuthVerdict, Credentials, Null};

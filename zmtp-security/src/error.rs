//! Errors of zmtp-security's own API (keys and certificates). Mechanisms
//! report handshake failures as [`zmtp_core::Error`], like every other peer
//! fault.

/// A key or certificate that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Z85 text whose length is not a multiple of 5 (or bytes not a multiple
    /// of 4 to encode).
    #[error("Z85 length must be a multiple of 5 characters (4 bytes)")]
    Z85Length,
    /// A character outside the Z85 alphabet.
    #[error("character outside the Z85 alphabet")]
    Z85Character,
    /// A Z85 group whose value exceeds 2^32 - 1.
    #[error("Z85 group value exceeds 32 bits")]
    Z85Overflow,
    /// A key that is not 32 bytes (40 Z85 characters).
    #[error("a key is 40 Z85 characters or 32 bytes, not {0}")]
    KeyLength(usize),
    /// A certificate file that is already there (nothing was written).
    #[error("{0} exists: not replaced")]
    Exists(String),
    /// An all-zero key, which libsodium (and so libzmq) refuses.
    #[error("all-zero key")]
    ZeroKey,
    /// A certificate file that cannot be read or parsed.
    #[error("certificate: {0}")]
    Certificate(String),
}

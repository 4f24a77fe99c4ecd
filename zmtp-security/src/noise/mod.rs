//! NOISE: ZMTP security on the Noise Protocol Framework, as specified in
//! `docs/noise-mechanism.md` (ours; no ZeroMQ RFC defines one).
//!
//! - Mechanisms `NOISE-XX`, `NOISE-IK` and `NOISE-NK`, one per pattern,
//!   with `Noise_<P>_25519_AESGCM_BLAKE2s`; the handshakes are `snow`'s.
//! - The prologue binds both 64-byte greetings.
//! - Handshake messages travel in `NOISE` commands; the server's metadata
//!   in an encrypted `READY` command once the Authenticator allowed the
//!   client; the client's in its last handshake message.
//! - Then the ZMTP frame stream is carried in records of at most 65535
//!   bytes of Noise message, each sealing everything queued when the writer
//!   ran, with a rekey every [`REKEY_INTERVAL`] records.

mod cipher;
mod handshake;
mod primitives;
mod record;

use std::fmt;

pub use handshake::{NoiseClient, NoiseServer};
pub use record::{MAX_PLAINTEXT, MAX_RECORD, REKEY_INTERVAL};

use zmtp_core::MechanismName;

/// The handshake pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Mutual authentication; static keys learned in the handshake. The
    /// client may pin the server's key.
    XX,
    /// The client knows the server's key; one round trip.
    IK,
    /// Anonymous client, known server key.
    NK,
}

impl Pattern {
    /// The ZMTP mechanism name.
    pub fn mechanism(self) -> MechanismName {
        match self {
            Pattern::XX => MechanismName::from_static("NOISE-XX"),
            Pattern::IK => MechanismName::from_static("NOISE-IK"),
            Pattern::NK => MechanismName::from_static("NOISE-NK"),
        }
    }

    /// The full Noise protocol name.
    pub fn protocol(self) -> &'static str {
        match self {
            Pattern::XX => "Noise_XX_25519_AESGCM_BLAKE2s",
            Pattern::IK => "Noise_IK_25519_AESGCM_BLAKE2s",
            Pattern::NK => "Noise_NK_25519_AESGCM_BLAKE2s",
        }
    }

    /// Whether the client has a static key in this pattern.
    pub fn client_static(self) -> bool {
        !matches!(self, Pattern::NK)
    }

    /// Whether the client must know the server's key before it starts.
    pub fn needs_server_key(self) -> bool {
        !matches!(self, Pattern::XX)
    }
}

impl std::str::FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Pattern, String> {
        match s.to_ascii_lowercase().as_str() {
            "xx" => Ok(Pattern::XX),
            "ik" => Ok(Pattern::IK),
            "nk" => Ok(Pattern::NK),
            other => Err(format!("unknown NOISE pattern {other:?} (xx, ik or nk)")),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pattern::XX => "xx",
            Pattern::IK => "ik",
            Pattern::NK => "nk",
        })
    }
}

/// The label that starts the prologue.
pub const PROLOGUE_LABEL: &[u8] = b"ZMTP-NOISE/1";

#[cfg(test)]
mod tests;

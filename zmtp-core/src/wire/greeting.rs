//! The 64-byte ZMTP 3.x greeting (RFC 23 §"Version negotiation", RFC 37).
//!
//! ```text
//! greeting  = signature version mechanism as-server filler
//! signature = %xFF padding(8) %x7F           ; bytes 0..10
//! version   = major(1) minor(1)              ; bytes 10, 11
//! mechanism = 20 octets, NUL padded          ; bytes 12..32
//! as-server = %x00 / %x01                    ; byte 32
//! filler    = 31 zero octets                 ; bytes 33..64
//! ```
//!
//! libzmq sends its greeting in three steps (10 bytes, then the major
//! version, then the other 53), and only moves on when the peer's matching
//! part has arrived. [`Greeting::decode`] therefore works on partial input:
//! it refuses a legacy peer as soon as its bytes say so, and reports
//! "incomplete" (`Ok(None)`) otherwise.

use std::fmt;

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::u8 as byte;

use crate::error::{Error, LegacyVersion, PeerError, Result, malformed};

/// Length of a whole greeting.
pub const GREETING_LEN: usize = 64;
/// Length of the signature, the first part libzmq sends.
pub const SIGNATURE_LEN: usize = 10;

/// A security mechanism name: up to 20 octets of `A-Z`, `0-9`, `-` and `_`,
/// NUL-padded on the wire (RFC 37).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MechanismName([u8; 20]);

impl MechanismName {
    /// The NULL mechanism.
    pub const NULL: MechanismName = MechanismName::from_static("NULL");
    /// The PLAIN mechanism.
    pub const PLAIN: MechanismName = MechanismName::from_static("PLAIN");
    /// The CURVE mechanism.
    pub const CURVE: MechanismName = MechanismName::from_static("CURVE");

    /// Builds a name at compile time; panics (at compile time when used in a
    /// constant) on an invalid name.
    pub const fn from_static(name: &str) -> MechanismName {
        let b = name.as_bytes();
        assert!(!b.is_empty() && b.len() <= 20, "mechanism name length");
        let mut out = [0u8; 20];
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            assert!(
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_',
                "mechanism name character"
            );
            out[i] = c;
            i += 1;
        }
        MechanismName(out)
    }

    /// Parses a name from text, checking RFC 37's alphabet.
    pub fn new(name: &str) -> Option<MechanismName> {
        let b = name.as_bytes();
        if b.is_empty()
            || b.len() > 20
            || !b
                .iter()
                .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        {
            return None;
        }
        let mut out = [0u8; 20];
        out[..b.len()].copy_from_slice(b);
        Some(MechanismName(out))
    }

    /// The 20 bytes as they travel.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The name without its NUL padding (lossy for a peer's invalid bytes).
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(20);
        String::from_utf8_lossy(&self.0[..end])
    }
}

impl fmt::Display for MechanismName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl fmt::Debug for MechanismName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MechanismName({:?})", self.as_str())
    }
}

/// A parsed greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// Major version (3, or higher from a newer peer).
    pub major: u8,
    /// Minor version: 0 for ZMTP 3.0, 1 for 3.1.
    pub minor: u8,
    /// The security mechanism.
    pub mechanism: MechanismName,
    /// The as-server flag. libzmq always sends 0 and never reads it, so it is
    /// carried for the record only (libzmq issues #2821, #3863).
    pub as_server: bool,
}

impl Greeting {
    /// Our own greeting: ZMTP 3.1 with the given mechanism.
    pub fn new(mechanism: MechanismName, as_server: bool) -> Greeting {
        Greeting {
            major: 3,
            minor: 1,
            mechanism,
            as_server,
        }
    }

    /// Whether the peer speaks 3.1 or later (commands for subscriptions).
    /// libzmq treats anything above 3.0 as 3.1.
    pub fn is_3_1_or_later(&self) -> bool {
        self.major > 3 || (self.major == 3 && self.minor >= 1)
    }

    /// Writes the 64 bytes.
    pub fn emit(&self) -> [u8; GREETING_LEN] {
        let mut out = [0u8; GREETING_LEN];
        out[0] = 0xFF;
        out[9] = 0x7F;
        out[10] = self.major;
        out[11] = self.minor;
        out[12..32].copy_from_slice(self.mechanism.as_bytes());
        out[32] = u8::from(self.as_server);
        out
    }

    /// Decodes a greeting from the bytes received so far.
    ///
    /// Returns `Ok(None)` while more bytes are needed, and an error as soon as
    /// the bytes identify a ZMTP 1.0 or 2.0 peer, using libzmq's rule
    /// (`stream_engine_base_t::handshake`): a first byte other than 0xFF or a
    /// byte 9 with bit 0 clear is unversioned ZMTP 1.0; a revision byte of 0
    /// is 1.0 and 1 is 2.0. A revision of 2, or 4 and above, is taken down
    /// the 3.x path, as libzmq does and as RFC 37 asks.
    pub fn decode(buf: &[u8]) -> Result<Option<Greeting>> {
        if let Some(&first) = buf.first()
            && first != 0xFF
        {
            return Err(legacy(LegacyVersion::Unversioned));
        }
        if buf.len() < SIGNATURE_LEN {
            return Ok(None);
        }
        if buf[9] & 0x01 == 0 {
            return Err(legacy(LegacyVersion::Unversioned));
        }
        match buf.get(10) {
            None => return Ok(None),
            Some(0) => return Err(legacy(LegacyVersion::V1)),
            Some(1) => return Err(legacy(LegacyVersion::V2)),
            Some(_) => {}
        }
        if buf.len() < GREETING_LEN {
            return Ok(None);
        }
        match parse_greeting(&buf[..GREETING_LEN]) {
            Ok((_, g)) => Ok(Some(g)),
            Err(_) => Err(malformed("greeting")),
        }
    }
}

fn legacy(v: LegacyVersion) -> Error {
    Error::Peer(PeerError::UnsupportedVersion(v))
}

/// nom grammar for a complete 64-byte greeting. The signature has already
/// been checked by [`Greeting::decode`]; padding bytes are not checked, as
/// libzmq does not check them.
fn parse_greeting(input: &[u8]) -> IResult<&[u8], Greeting> {
    let (input, (_signature, major, minor, mechanism, as_server, _filler)) = (
        take(10usize),
        byte,
        byte,
        take(20usize),
        byte,
        take(31usize),
    )
        .parse(input)?;
    let mut name = [0u8; 20];
    name.copy_from_slice(mechanism);
    Ok((
        input,
        Greeting {
            // A peer announcing revision 2 is handled as 3.x (libzmq sends
            // it down the 3.1 path); report it as 3.1.
            major: major.max(3),
            minor: if major == 2 { 1 } else { minor },
            mechanism: MechanismName(name),
            as_server: as_server == 1,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libzmq_null_greeting() -> Vec<u8> {
        let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
        g.extend_from_slice(b"NULL");
        g.resize(64, 0);
        g
    }

    #[test]
    fn emits_libzmq_bytes() {
        let ours = Greeting::new(MechanismName::NULL, false).emit();
        assert_eq!(&ours[..], &libzmq_null_greeting()[..]);
        let server = Greeting::new(MechanismName::PLAIN, true).emit();
        assert_eq!(server[32], 1);
        assert_eq!(&server[12..17], b"PLAIN");
    }

    #[test]
    fn round_trips() {
        for (mech, srv, minor) in [
            (MechanismName::NULL, false, 1),
            (MechanismName::CURVE, true, 0),
            (MechanismName::from_static("NOISE-XX"), true, 1),
        ] {
            let g = Greeting {
                major: 3,
                minor,
                mechanism: mech,
                as_server: srv,
            };
            let bytes = g.emit();
            assert_eq!(Greeting::decode(&bytes), Ok(Some(g)));
            assert_eq!(Greeting::decode(&bytes).unwrap().unwrap().emit(), bytes);
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let g = libzmq_null_greeting();
        for cut in 0..64 {
            assert_eq!(Greeting::decode(&g[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_legacy_peers() {
        // ZMTP 1.0 unversioned: a length byte then flags.
        assert_eq!(
            Greeting::decode(&[0x01, 0x00]),
            Err(legacy(LegacyVersion::Unversioned))
        );
        // Signature with bit 0 of byte 9 clear: also unversioned.
        let mut g = libzmq_null_greeting();
        g[9] = 0x7E;
        assert_eq!(
            Greeting::decode(&g[..10]),
            Err(legacy(LegacyVersion::Unversioned))
        );
        let mut g = libzmq_null_greeting();
        g[10] = 0;
        assert_eq!(Greeting::decode(&g[..11]), Err(legacy(LegacyVersion::V1)));
        g[10] = 1;
        assert_eq!(Greeting::decode(&g[..11]), Err(legacy(LegacyVersion::V2)));
    }

    #[test]
    fn accepts_higher_versions() {
        let mut g = libzmq_null_greeting();
        g[10] = 4;
        g[11] = 7;
        let parsed = Greeting::decode(&g).unwrap().unwrap();
        assert_eq!((parsed.major, parsed.minor), (4, 7));
        assert!(parsed.is_3_1_or_later());
        g[10] = 2;
        let parsed = Greeting::decode(&g).unwrap().unwrap();
        assert!(parsed.is_3_1_or_later());
        g[10] = 3;
        g[11] = 0;
        assert!(!Greeting::decode(&g).unwrap().unwrap().is_3_1_or_later());
    }

    #[test]
    fn mechanism_names() {
        assert!(MechanismName::new("NOISE-IK").is_some());
        assert!(MechanismName::new("noise").is_none());
        assert!(MechanismName::new("").is_none());
        assert!(MechanismName::new("ABCDEFGHIJKLMNOPQRSTU").is_none());
        assert_eq!(MechanismName::CURVE.to_string(), "CURVE");
    }
}

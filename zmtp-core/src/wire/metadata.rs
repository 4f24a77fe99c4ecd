//! Metadata properties, as carried by READY and by the INITIATE of PLAIN and
//! CURVE (RFC 23 §"The READY command", RFC 37).
//!
//! ```text
//! metadata = *property
//! property = name-len(1) name value-len(4, network order) value
//! ```
//!
//! Names are case-insensitive (RFC 23). libzmq compares `Socket-Type` and
//! `Identity` byte for byte, so the well-known names are always emitted in
//! their canonical spelling. `User-Id` and `Peer-Address` are local
//! properties: they come from the Authenticator and the connection and never
//! travel on the wire.

use bytes::Bytes;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u32, u8 as byte};

use crate::error::{Result, UsageError, malformed};

/// The `Socket-Type` property name.
pub const SOCKET_TYPE: &str = "Socket-Type";
/// The `Identity` property name (the routing id).
pub const IDENTITY: &str = "Identity";
/// The `User-Id` local property, set by the Authenticator.
pub const USER_ID: &str = "User-Id";
/// The `Peer-Address` local property, set from the connection.
pub const PEER_ADDRESS: &str = "Peer-Address";

const CANONICAL: [&str; 4] = [SOCKET_TYPE, IDENTITY, USER_ID, PEER_ADDRESS];

/// An ordered list of properties. Lookups ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    props: Vec<(String, Bytes)>,
}

impl Metadata {
    /// An empty list.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Sets a property, replacing one of the same name (in any case).
    /// Well-known names are stored in their canonical spelling.
    ///
    /// Fails on a name outside RFC 37's alphabet or a value longer than
    /// 2^32 - 1 bytes, which the wire cannot carry.
    pub fn insert(&mut self, name: &str, value: impl Into<Bytes>) -> Result<(), UsageError> {
        let value = value.into();
        if !valid_name(name) {
            return Err(UsageError::InvalidArgument("metadata property name"));
        }
        if u32::try_from(value.len()).is_err() {
            return Err(UsageError::InvalidArgument(
                "metadata property value too long",
            ));
        }
        let name = canonical(name);
        match self
            .props
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(slot) => slot.1 = value,
            None => self.props.push((name, value)),
        }
        Ok(())
    }

    /// A property's value, by name in any case.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Removes a property.
    pub fn remove(&mut self, name: &str) -> Option<Bytes> {
        let pos = self
            .props
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(self.props.remove(pos).1)
    }

    /// Iterates over `(name, value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.props.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.props.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.props.is_empty()
    }

    /// Bytes [`Metadata::emit`] will write (local properties excluded).
    pub fn wire_len(&self) -> usize {
        self.wire_props()
            .map(|(n, v)| 1 + n.len() + 4 + v.len())
            .sum()
    }

    fn wire_props(&self) -> impl Iterator<Item = &(String, Bytes)> {
        self.props.iter().filter(|(n, _)| !is_local(n))
    }

    /// Appends the wire form. Local properties (`User-Id`, `Peer-Address`)
    /// are skipped.
    pub fn emit(&self, out: &mut Vec<u8>) {
        for (name, value) in self.wire_props() {
            // `insert` and `parse` admit only names of 1-255 bytes and values
            // below 2^32 bytes, so these casts are exact.
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
    }

    /// Parses a whole metadata block. `body` must be the `Bytes` that owns
    /// `input`'s memory so that values are split out without copying; pass
    /// the same slice for both. Trailing bytes that do not form a whole
    /// property are an error, as in libzmq (`EPROTO`).
    pub fn parse(body: &Bytes) -> Result<Metadata> {
        let mut input: &[u8] = body;
        let mut props = Vec::new();
        while !input.is_empty() {
            let (rest, (name, value)) = property(input).map_err(|_| malformed("metadata"))?;
            let name = std::str::from_utf8(name).map_err(|_| malformed("metadata name"))?;
            if !valid_name(name) {
                return Err(malformed("metadata name"));
            }
            input = rest;
            // Local properties never travel on the wire: a peer that sends
            // them is trying to forge its User-Id or address, so they are
            // dropped (found by the `command` fuzz target).
            if is_local(name) {
                continue;
            }
            props.push((canonical(name), body.slice_ref(value)));
        }
        Ok(Metadata { props })
    }
}

/// Whether `name` is a valid property name (RFC 37: 1-255 octets of
/// alphanumerics and `-`, `_`, `.`, `+`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'+'))
}

fn is_local(name: &str) -> bool {
    name.eq_ignore_ascii_case(USER_ID) || name.eq_ignore_ascii_case(PEER_ADDRESS)
}

fn canonical(name: &str) -> String {
    CANONICAL
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |c| (*c).to_owned())
}

fn property(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (input, name_len) = byte(input)?;
    let (input, name) = take(name_len).parse(input)?;
    let (input, value_len) = be_u32(input)?;
    // `take` checks the length against what is there before anything is
    // reserved, so a value length of 2^31 or more is simply "too short".
    let (input, value) = take(value_len).parse(input)?;
    Ok((input, (name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_emit_round_trip() {
        let mut m = Metadata::new();
        m.insert("socket-type", &b"DEALER"[..]).unwrap();
        m.insert("Identity", Bytes::new()).unwrap();
        m.insert("X-Custom", &b"v"[..]).unwrap();
        assert!(m.insert("bad name", Bytes::new()).is_err());
        let mut wire = Vec::new();
        m.emit(&mut wire);
        assert_eq!(wire.len(), m.wire_len());
        assert_eq!(&wire[..12], b"\x0bSocket-Type");
        let parsed = Metadata::parse(&Bytes::from(wire.clone())).unwrap();
        assert_eq!(parsed, m);
        let mut again = Vec::new();
        parsed.emit(&mut again);
        assert_eq!(again, wire);
    }

    #[test]
    fn lookups_ignore_case_and_local_props_stay_local() {
        let mut m = Metadata::new();
        m.insert("user-id", &b"alice"[..]).unwrap();
        m.insert("Peer-Address", &b"1.2.3.4"[..]).unwrap();
        assert_eq!(m.get("USER-ID").unwrap(), &b"alice"[..]);
        assert_eq!(m.iter().next().unwrap().0, "User-Id");
        let mut wire = Vec::new();
        m.emit(&mut wire);
        assert!(wire.is_empty());
    }

    #[test]
    fn local_properties_from_the_wire_are_dropped() {
        // A peer must not forge its User-Id or Peer-Address in READY.
        let wire = Bytes::from_static(
            b"\x0bSocket-Type\x00\x00\x00\x03PUB\x07useR-iD\x00\x00\x00\x04root\x0cPeer-Address\x00\x00\x00\x01x",
        );
        let m = Metadata::parse(&wire).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m.get(USER_ID).is_none() && m.get(PEER_ADDRESS).is_none());
    }

    #[test]
    fn truncated_and_huge_values_are_errors() {
        let mut wire = b"\x0bSocket-Type\x00\x00\x00\x06DEALE".to_vec();
        assert!(Metadata::parse(&Bytes::from(wire.clone())).is_err());
        wire.truncate(12);
        wire.extend_from_slice(&[0x80, 0, 0, 0]);
        wire.extend_from_slice(b"abc");
        assert!(Metadata::parse(&Bytes::from(wire)).is_err());
        assert!(Metadata::parse(&Bytes::from_static(b"\x05Ident")).is_err());
        assert!(Metadata::parse(&Bytes::from_static(b"\x00\x00\x00\x00\x00")).is_err());
        assert!(Metadata::parse(&Bytes::from_static(b"\x03a b\x00\x00\x00\x00")).is_err());
    }

    #[test]
    fn every_cut_of_valid_metadata_is_an_error_not_a_panic() {
        let wire =
            Bytes::from_static(b"\x0bSocket-Type\x00\x00\x00\x03PUB\x08Identity\x00\x00\x00\x00");
        for cut in 1..wire.len() {
            let r = Metadata::parse(&wire.slice(..cut));
            // Cutting exactly at a property boundary is still valid.
            if cut == 19 {
                assert!(r.is_ok());
            } else {
                assert!(r.is_err(), "cut {cut}");
            }
        }
    }
}

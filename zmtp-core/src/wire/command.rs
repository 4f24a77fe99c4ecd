//! Command bodies (RFC 23 §"Commands", RFC 37).
//!
//! ```text
//! command   = name-len(1) name data
//! ready     = %x05 "READY" metadata
//! error     = %x05 "ERROR" reason-len(1) reason
//! subscribe = %x09 "SUBSCRIBE" topic          ; ZMTP 3.1
//! cancel    = %x06 "CANCEL" topic             ; ZMTP 3.1
//! ping      = %x04 "PING" ttl(2, network order, deciseconds) context(0..16)
//! pong      = %x04 "PONG" context
//! ```
//!
//! RFC 24 and RFC 26 describe command names as "8 characters, space padded";
//! that is wrong, and neither libzmq nor any other peer does it: the name is
//! length-prefixed. Bodies are parsed exactly: trailing bytes are an error.
//!
//! Handshake commands of a mechanism (HELLO, WELCOME, INITIATE, and CURVE's
//! boxed READY) are interpreted by the mechanism from [`RawCommand`].

use bytes::Bytes;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take;
use nom::combinator::{eof, rest};
use nom::number::complete::{be_u16, u8 as byte};

use crate::error::{Result, malformed};
use crate::wire::Metadata;

/// A PONG echoes at most this much of a PING's context (libzmq truncates
/// longer contexts rather than refusing them).
pub const MAX_PING_CONTEXT: usize = 16;

/// A command split into name and data, without interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// The command name, such as `b"HELLO"`.
    pub name: Bytes,
    /// Everything after the name.
    pub data: Bytes,
}

impl RawCommand {
    /// Splits a command frame body. `body` is split without copying.
    pub fn parse(body: &Bytes) -> Result<RawCommand> {
        let (data, name) = name_part(body).map_err(|_| malformed("command name"))?;
        Ok(RawCommand {
            name: body.slice_ref(name),
            data: body.slice_ref(data),
        })
    }

    /// Whether the name is exactly `name` (libzmq compares byte for byte).
    pub fn is(&self, name: &[u8]) -> bool {
        self.name == name
    }

    /// Writes a command body with this name and data.
    pub fn emit(name: &[u8], data: &[u8], out: &mut Vec<u8>) {
        debug_assert!(!name.is_empty() && name.len() < 256);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(data);
    }
}

fn name_part(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (input, len) = byte(input)?;
    if len == 0 {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )));
    }
    take(len).parse(input)
}

/// The commands of the connection itself (not of a mechanism's handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// READY with the sender's metadata.
    Ready(Metadata),
    /// ERROR with a reason (a ZAP status code such as `"400"` for
    /// authentication failures).
    Error(Bytes),
    /// SUBSCRIBE to a topic prefix (ZMTP 3.1).
    Subscribe(Bytes),
    /// CANCEL a subscription (ZMTP 3.1).
    Cancel(Bytes),
    /// PING with a time-to-live in deciseconds and a context to echo.
    Ping {
        /// Time-to-live in tenths of a second; 0 for none.
        ttl: u16,
        /// Context the PONG echoes (truncated to 16 bytes by the answerer).
        context: Bytes,
    },
    /// PONG echoing a PING's context.
    Pong(Bytes),
    /// Any other command, kept for the caller.
    Other(RawCommand),
}

impl Command {
    /// Parses a command frame body.
    pub fn parse(body: &Bytes) -> Result<Command> {
        let raw = RawCommand::parse(body)?;
        let data = &raw.data;
        Ok(match &raw.name[..] {
            b"READY" => Command::Ready(Metadata::parse(data)?),
            b"ERROR" => {
                let (_, reason) = error_body(data).map_err(|_| malformed("ERROR"))?;
                Command::Error(data.slice_ref(reason))
            }
            b"SUBSCRIBE" => Command::Subscribe(raw.data),
            b"CANCEL" => Command::Cancel(raw.data),
            b"PING" => {
                let (context, ttl) = ping_body(data).map_err(|_| malformed("PING"))?;
                Command::Ping {
                    ttl,
                    context: data.slice_ref(context),
                }
            }
            b"PONG" => Command::Pong(raw.data),
            _ => Command::Other(raw),
        })
    }

    /// Writes the command body.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Command::Ready(m) => {
                out.reserve(6 + m.wire_len());
                out.extend_from_slice(b"\x05READY");
                m.emit(out);
            }
            Command::Error(reason) => {
                let reason = &reason[..reason.len().min(255)];
                out.extend_from_slice(b"\x05ERROR");
                out.push(reason.len() as u8);
                out.extend_from_slice(reason);
            }
            Command::Subscribe(t) => RawCommand::emit(b"SUBSCRIBE", t, out),
            Command::Cancel(t) => RawCommand::emit(b"CANCEL", t, out),
            Command::Ping { ttl, context } => {
                out.extend_from_slice(b"\x04PING");
                out.extend_from_slice(&ttl.to_be_bytes());
                out.extend_from_slice(context);
            }
            Command::Pong(c) => RawCommand::emit(b"PONG", c, out),
            Command::Other(raw) => RawCommand::emit(&raw.name, &raw.data, out),
        }
    }

    /// The body as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::new();
        self.emit(&mut v);
        v.into()
    }
}

fn error_body(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (input, len) = byte(input)?;
    let (input, reason) = take(len).parse(input)?;
    let (input, _) = eof(input)?;
    Ok((input, reason))
}

fn ping_body(input: &[u8]) -> IResult<&[u8], u16> {
    let (input, ttl) = be_u16(input)?;
    let (_, context) = rest(input)?;
    Ok((context, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(body: &[u8]) -> Command {
        let cmd = Command::parse(&Bytes::copy_from_slice(body)).unwrap();
        assert_eq!(&cmd.to_bytes()[..], body, "{cmd:?}");
        cmd
    }

    #[test]
    fn rfc23_ready_example() {
        // RFC 23's READY example, also libzmq's tests/testutil.hpp fixture
        // `zmtp_ready_dealer`, without its two header bytes.
        let body = b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00";
        let Command::Ready(m) = round_trip(body) else {
            panic!()
        };
        assert_eq!(m.get("socket-type").unwrap(), &b"DEALER"[..]);
        assert_eq!(m.get("identity").unwrap().len(), 0);
    }

    #[test]
    fn all_commands_round_trip() {
        assert_eq!(
            round_trip(b"\x09SUBSCRIBEA"),
            Command::Subscribe(Bytes::from_static(b"A"))
        );
        assert_eq!(round_trip(b"\x06CANCEL"), Command::Cancel(Bytes::new()));
        assert_eq!(
            round_trip(b"\x04PING\x00\x00LOL"),
            Command::Ping {
                ttl: 0,
                context: Bytes::from_static(b"LOL")
            }
        );
        assert_eq!(
            round_trip(b"\x04PONGLOL"),
            Command::Pong(Bytes::from_static(b"LOL"))
        );
        assert_eq!(
            round_trip(b"\x05ERROR\x03400"),
            Command::Error(Bytes::from_static(b"400"))
        );
        assert_eq!(round_trip(b"\x05ERROR\x00"), Command::Error(Bytes::new()));
        let Command::Other(raw) = round_trip(b"\x05HELLOabc") else {
            panic!()
        };
        assert!(raw.is(b"HELLO"));
        assert_eq!(&raw.data[..], b"abc");
    }

    #[test]
    fn malformed_bodies() {
        for bad in [
            &b""[..],
            b"\x00",
            b"\x05REA",
            b"\x05ERROR",
            b"\x05ERROR\x05abc",
            b"\x05ERROR\x01ab",
            b"\x04PING",
            b"\x04PING\x00",
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEA",
            b"\x05READY\x0bSocket-Type\xff\xff\xff\xffDEALER",
        ] {
            assert!(
                Command::parse(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn long_ping_context_is_accepted() {
        let mut body = b"\x04PING\x00\x0a".to_vec();
        body.extend_from_slice(&[7u8; 65]);
        let Command::Ping { ttl, context } = Command::parse(&Bytes::from(body)).unwrap() else {
            panic!()
        };
        assert_eq!(ttl, 10);
        assert_eq!(context.len(), 65);
    }
}

//! Frame headers (RFC 23 §"Framing").
//!
//! ```text
//! frame        = short-frame / long-frame
//! short-frame  = flags(1) size(1) body
//! long-frame   = flags(1) size(8, network order) body
//! flags        = bit 0 MORE, bit 1 LONG, bit 2 COMMAND, bits 3-7 reserved
//! ```
//!
//! Reserved bits are sent as zero and ignored on receive: libzmq's
//! `v2_decoder_t::flags_ready` masks them off, and so do we.

use bytes::BufMut;
use nom::IResult;
use nom::number::streaming::{be_u64, u8 as byte};

/// Flag bit: more frames follow in this message.
pub const FLAG_MORE: u8 = 0x01;
/// Flag bit: the size is 8 bytes.
pub const FLAG_LONG: u8 = 0x02;
/// Flag bit: the frame is a command.
pub const FLAG_COMMAND: u8 = 0x04;

/// Largest header (flags plus an 8-byte size).
pub const MAX_HEADER_LEN: usize = 9;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// MORE flag.
    pub more: bool,
    /// COMMAND flag.
    pub command: bool,
    /// Body length in bytes.
    pub size: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `input`: the header and the bytes
    /// it took, or `None` when more bytes are needed. There is no other
    /// outcome, since every flags value is accepted (the limits are the
    /// decoder's).
    pub fn parse(input: &[u8]) -> Option<(FrameHeader, usize)> {
        parse_header(input).ok().map(|(_, parsed)| parsed)
    }

    /// Bytes this header takes on the wire. Sizes above 255 use the long form.
    pub fn len(&self) -> usize {
        if self.size > 255 { 9 } else { 2 }
    }

    /// Headers are never empty; provided for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header into `out`, returning the bytes written.
    pub fn emit(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        self.put(&mut &mut out[..])
    }

    /// Appends the header to `out`, returning the bytes written: as whole
    /// integers, not through a byte array. A short header copied out of an
    /// array is a 2-byte load of two 1-byte stores, which the store buffer
    /// cannot forward, behind a call to `memmove` for a length it does not
    /// know.
    #[inline]
    pub fn put(&self, out: &mut impl BufMut) -> usize {
        let mut flags = 0;
        if self.more {
            flags |= FLAG_MORE;
        }
        if self.command {
            flags |= FLAG_COMMAND;
        }
        if self.size > 255 {
            out.put_u8(flags | FLAG_LONG);
            out.put_u64(self.size);
            9
        } else {
            out.put_u16(u16::from_be_bytes([flags, self.size as u8]));
            2
        }
    }
}

fn parse_header(input: &[u8]) -> IResult<&[u8], (FrameHeader, usize)> {
    let (rest, flags) = byte(input)?;
    let (rest, size) = if flags & FLAG_LONG != 0 {
        be_u64(rest)?
    } else {
        let (rest, s) = byte(rest)?;
        (rest, u64::from(s))
    };
    let header = FrameHeader {
        more: flags & FLAG_MORE != 0,
        command: flags & FLAG_COMMAND != 0,
        size,
    };
    let consumed = input.len() - rest.len();
    Ok((rest, (header, consumed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long() {
        let (h, n) = FrameHeader::parse(&[0x01, 0x05, b'x']).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                more: true,
                command: false,
                size: 5
            }
        );
        assert_eq!(n, 2);
        let bytes = [0x06, 0, 0, 0, 0, 0, 0, 1, 0];
        let (h, n) = FrameHeader::parse(&bytes).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                more: false,
                command: true,
                size: 256
            }
        );
        assert_eq!(n, 9);
        let mut out = [0; 9];
        assert_eq!(h.emit(&mut out), 9);
        assert_eq!(out, bytes);
    }

    #[test]
    fn reserved_bits_are_ignored() {
        let (h, _) = FrameHeader::parse(&[0xF9, 0x00]).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                more: true,
                command: false,
                size: 0
            }
        );
    }

    #[test]
    fn prefixes_are_incomplete() {
        let bytes = [0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        for cut in 0..bytes.len() {
            assert_eq!(FrameHeader::parse(&bytes[..cut]), None);
        }
        let (h, _) = FrameHeader::parse(&bytes).unwrap();
        assert_eq!(h.size, u64::MAX);
    }

    #[test]
    fn short_form_for_small_sizes() {
        let mut out = [0; 9];
        let h = FrameHeader {
            more: false,
            command: false,
            size: 255,
        };
        assert_eq!(h.emit(&mut out), 2);
        assert_eq!(&out[..2], &[0x00, 0xFF]);
    }

    #[test]
    fn put_writes_what_emit_does_and_parses_back() {
        for size in [0, 1, 255, 256, 65_535, 1 << 32, u64::MAX] {
            for (more, command) in [(false, false), (true, false), (false, true)] {
                let h = FrameHeader {
                    more,
                    command,
                    size,
                };
                let mut arr = [0; MAX_HEADER_LEN];
                let n = h.emit(&mut arr);
                let mut out = vec![0xAA];
                assert_eq!(h.put(&mut out), n, "{h:?}");
                assert_eq!(out[1..], arr[..n], "{h:?}");
                assert_eq!(FrameHeader::parse(&out[1..]), Some((h, n)));
            }
        }
        // The exact bytes of both forms.
        let mut out = Vec::new();
        let short = FrameHeader {
            more: true,
            command: false,
            size: 16,
        };
        short.put(&mut out);
        let long = FrameHeader {
            more: false,
            command: true,
            size: 0x0102_0304,
        };
        long.put(&mut out);
        assert_eq!(out, [0x01, 16, 0x06, 0, 0, 0, 0, 1, 2, 3, 4]);
    }
}

//! The streaming frame decoder.
//!
//! It reads from a `BytesMut` that the driver fills, and splits each frame
//! body out of it without copying. It never reserves memory itself: a header
//! announcing 2^40 bytes costs nothing until the bytes arrive, and
//! [`FrameDecoder::reserve_hint`] tells the driver how far to grow the read
//! buffer in steps bounded by what has already arrived.

use bytes::{Buf, BytesMut};

use crate::error::{Error, PeerError, Result, malformed};
use crate::wire::FrameHeader;

/// Read-buffer growth step when nothing larger is known to be coming.
pub const READ_CHUNK: usize = 64 * 1024;

/// A decoded frame. The body is split out of the read buffer (no copy); it is
/// a `BytesMut` so that a cipher can decrypt it in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// MORE flag.
    pub more: bool,
    /// COMMAND flag.
    pub command: bool,
    /// The body.
    pub body: BytesMut,
}

/// Decodes frames one at a time from a read buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_size: Option<u64>,
    /// A header already parsed whose body has not fully arrived, so that it
    /// is not parsed again after every read.
    pending: Option<FrameHeader>,
}

impl FrameDecoder {
    /// A decoder that refuses frames above `max_size` bytes (`None`: no
    /// limit, libzmq's default).
    pub fn new(max_size: Option<u64>) -> FrameDecoder {
        FrameDecoder {
            max_size,
            pending: None,
        }
    }

    /// Changes the size limit (the connection lowers it during handshakes).
    pub fn set_max_size(&mut self, max_size: Option<u64>) {
        self.max_size = max_size;
    }

    /// The size limit in force.
    pub fn max_size(&self) -> Option<u64> {
        self.max_size
    }

    /// Decodes the next frame. `Ok(None)` means more bytes are needed, which
    /// is never an error; an error means the stream is malformed.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        let header = match self.pending {
            Some(h) => h,
            None => {
                if buf.len() < 2 {
                    return Ok(None);
                }
                let Some((header, consumed)) = FrameHeader::parse(buf) else {
                    return Ok(None);
                };
                self.check(&header)?;
                buf.advance(consumed);
                header
            }
        };
        // `check` has ensured the size fits in usize.
        let size = header.size as usize;
        if buf.len() < size {
            self.pending = Some(header);
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(Frame {
            more: header.more,
            command: header.command,
            body: buf.split_to(size),
        }))
    }

    fn check(&self, h: &FrameHeader) -> Result<()> {
        // RFC 23: "A command frame MUST NOT have the MORE flag set."
        if h.command && h.more {
            return Err(malformed("frame: MORE set on a command"));
        }
        // A long frame's size is a 63-bit number: its top bit must be zero.
        // libzmq's decoder refuses larger sizes (they do not fit its signed
        // 64-bit message size) and closes the connection.
        if h.size > i64::MAX as u64 {
            return Err(malformed("frame: size of 2^63 or more"));
        }
        if let Some(limit) = self.max_size
            && h.size > limit
        {
            return Err(Error::Peer(PeerError::TooLarge {
                size: h.size,
                limit,
            }));
        }
        if usize::try_from(h.size).is_err() {
            return Err(Error::Peer(PeerError::TooLarge {
                size: h.size,
                limit: usize::MAX as u64,
            }));
        }
        Ok(())
    }

    /// How many bytes the driver should make room for before its next read.
    ///
    /// While a large body is arriving this is the rest of the body, capped at
    /// the larger of [`READ_CHUNK`] and three times what has already arrived:
    /// the buffer is never more than four times the bytes received of the
    /// frame (plus one chunk), so memory follows received bytes, never the
    /// announced size. Growing by four rather than two saves the copies of
    /// the intermediate steps (a 1 MiB frame whose first 256 KiB arrived in
    /// one read is allocated once).
    pub fn reserve_hint(&self, buf: &BytesMut) -> usize {
        self.missing(buf).map_or(READ_CHUNK, |missing| {
            missing.min(READ_CHUNK.max(3 * buf.len()))
        })
    }

    /// How many bytes of the frame whose header was parsed are still to
    /// arrive beyond those in `buf`; `None` between frames.
    pub fn missing(&self, buf: &BytesMut) -> Option<usize> {
        self.pending
            .map(|h| (h.size as usize).saturating_sub(buf.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(bytes: &[u8], step: usize) -> Vec<Frame> {
        let mut dec = FrameDecoder::new(None);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let mut stream = vec![0x01, 0x03, b'a', b'b', b'c', 0x00, 0x00, 0x04, 0x04, b'P'];
        stream.extend_from_slice(b"ING");
        stream.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 1, 0]);
        stream.extend_from_slice(&[9u8; 256]);
        let all = frames_of(&stream, stream.len());
        assert_eq!(all.len(), 4);
        assert!(all[0].more && !all[0].command);
        assert_eq!(&all[2].body[..], b"PING");
        assert!(all[2].command);
        assert_eq!(all[3].body.len(), 256);
        for step in 1..8 {
            assert_eq!(frames_of(&stream, step), all, "step {step}");
        }
    }

    #[test]
    fn huge_announcements_cost_nothing() {
        for size in [1u64 << 40, (1 << 62) + 1, i64::MAX as u64] {
            let mut dec = FrameDecoder::new(None);
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&[0x02]);
            buf.extend_from_slice(&size.to_be_bytes());
            buf.extend_from_slice(b"abc");
            let cap_before = buf.capacity();
            assert_eq!(dec.decode(&mut buf), Ok(None));
            assert!(buf.capacity() <= cap_before);
            assert!(dec.reserve_hint(&buf) <= READ_CHUNK);
        }
    }

    #[test]
    fn sizes_of_2_63_and_above_are_malformed() {
        // Byte fixtures: a long data frame announcing 2^63, and 2^64 - 1,
        // then a few body bytes.
        for header in [
            &b"\x02\x80\x00\x00\x00\x00\x00\x00\x00abc"[..],
            &b"\x02\xff\xff\xff\xff\xff\xff\xff\xffabc"[..],
            &b"\x06\x80\x00\x00\x00\x00\x00\x00\x01abc"[..],
        ] {
            let mut dec = FrameDecoder::new(None);
            let mut buf = BytesMut::from(header);
            assert_eq!(
                dec.decode(&mut buf),
                Err(Error::Peer(PeerError::Malformed(
                    "frame: size of 2^63 or more"
                ))),
                "{header:?}"
            );
        }
        // 2^63 - 1 is a valid (if unreachable) size: more bytes are needed.
        let mut dec = FrameDecoder::new(None);
        let mut buf = BytesMut::from(&b"\x02\x7f\xff\xff\xff\xff\xff\xff\xffabc"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn limit_rejects_from_header_alone() {
        let mut dec = FrameDecoder::new(Some(100));
        let mut buf = BytesMut::from(&[0x00, 101][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(Error::Peer(PeerError::TooLarge {
                size: 101,
                limit: 100
            }))
        );
        let mut buf = BytesMut::from(&[0x00, 100][..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn more_on_command_is_malformed() {
        let mut dec = FrameDecoder::new(None);
        let mut buf = BytesMut::from(&[0x05, 0x00][..]);
        assert!(dec.decode(&mut buf).is_err());
    }

    #[test]
    fn reserve_hint_grows_with_received_bytes() {
        let mut dec = FrameDecoder::new(None);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x02]);
        buf.extend_from_slice(&(10u64 << 20).to_be_bytes());
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(dec.reserve_hint(&buf), READ_CHUNK);
        buf.extend_from_slice(&vec![0; 1 << 20]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(dec.reserve_hint(&buf), 3 << 20);
        buf.extend_from_slice(&vec![0; 8 << 20]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // Never beyond the announced size.
        assert_eq!(dec.reserve_hint(&buf), (10 << 20) - (9 << 20));
    }
}

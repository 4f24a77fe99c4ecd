//! The batching encoder.
//!
//! Everything queued between two writes goes out in one vectored write:
//! headers and small bodies are coalesced into one buffer, and bodies of at
//! least [`ZERO_COPY_THRESHOLD`] bytes are passed through as their own
//! `Bytes`, never copied (libzmq copies up to its 8 KiB `out_batch_size`
//! and sends larger messages zero-copy; the threshold here is the same).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::message::Message;
use crate::wire::{Command, FrameHeader};

/// Bodies at least this large are sent without copying.
pub const ZERO_COPY_THRESHOLD: usize = 8192;

/// Queue of bytes to write.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Finished pieces, in order, ahead of `batch`.
    chunks: VecDeque<Bytes>,
    /// The piece being filled.
    batch: BytesMut,
    /// Total bytes queued.
    len: usize,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Appends raw bytes (the greeting).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.batch.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends a frame header.
    #[inline]
    pub fn header(&mut self, more: bool, command: bool, size: usize) {
        self.len += FrameHeader {
            more,
            command,
            size: size as u64,
        }
        .put(&mut self.batch);
    }

    /// Appends a frame whose body is shared: large bodies are passed through.
    #[inline]
    pub fn frame(&mut self, more: bool, command: bool, body: &Bytes) {
        self.header(more, command, body.len());
        if body.len() >= ZERO_COPY_THRESHOLD {
            self.push_chunk(body.clone());
        } else {
            self.batch.extend_from_slice(body);
            self.len += body.len();
        }
    }

    /// Appends a frame from a borrowed body (always copied).
    pub fn frame_slice(&mut self, more: bool, command: bool, body: &[u8]) {
        self.header(more, command, body.len());
        self.batch.extend_from_slice(body);
        self.len += body.len();
    }

    /// Appends every frame of a message.
    pub fn message(&mut self, msg: &Message) {
        let frames = msg.frames();
        let last = frames.len().saturating_sub(1);
        for (i, f) in frames.iter().enumerate() {
            self.frame(i < last, false, f);
        }
    }

    /// Appends a command frame.
    pub fn command(&mut self, cmd: &Command) {
        let mut body = Vec::new();
        cmd.emit(&mut body);
        self.frame_slice(false, true, &body);
    }

    /// Appends bytes that a cipher writes directly into the batch. `f` gets
    /// the batch buffer and must only append; the encoder accounts for what
    /// it added.
    pub fn append_with<R>(&mut self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        let before = self.batch.len();
        let r = f(&mut self.batch);
        self.len += self.batch.len() - before;
        r
    }

    fn push_chunk(&mut self, chunk: Bytes) {
        if !self.batch.is_empty() {
            self.chunks.push_back(self.batch.split().freeze());
        }
        self.len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `out` with slices of the queued bytes for a vectored write and
    /// returns how many it filled.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in &self.chunks {
            if n == out.len() {
                return n;
            }
            out[n] = IoSlice::new(chunk);
            n += 1;
        }
        if n < out.len() && !self.batch.is_empty() {
            out[n] = IoSlice::new(&self.batch);
            n += 1;
        }
        n
    }

    /// The first contiguous piece of queued bytes.
    pub fn first_chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&self.batch[..], |c| &c[..])
    }

    /// Takes every queued byte as one buffer (a copy): for tests, mock peers
    /// and tools that write with plain `std::io`. The engine writes with
    /// [`Encoder::io_slices`] instead.
    pub fn take_all(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(&self.batch);
        let n = self.len;
        self.advance(n);
        out
    }

    /// Drops `n` bytes that were written.
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance past the queued bytes");
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    n = 0;
                }
                None => {
                    self.batch.advance(n);
                    n = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(enc: &mut Encoder, write_max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !enc.is_empty() {
            let mut slices = [IoSlice::new(&[]); 8];
            let n = enc.io_slices(&mut slices);
            let mut written = 0;
            for s in &slices[..n] {
                let take = s.len().min(write_max - written);
                out.extend_from_slice(&s[..take]);
                written += take;
                if written == write_max {
                    break;
                }
            }
            enc.advance(written);
        }
        out
    }

    #[test]
    fn small_frames_coalesce_and_large_pass_through() {
        let mut enc = Encoder::new();
        let big = Bytes::from(vec![7u8; ZERO_COPY_THRESHOLD]);
        enc.message(&Message::from_frames([
            Bytes::from_static(b"ab"),
            big.clone(),
            Bytes::from_static(b"c"),
        ]));
        let mut slices = [IoSlice::new(&[]); 8];
        let n = enc.io_slices(&mut slices);
        assert_eq!(n, 3);
        // The large body is the very same memory, not a copy.
        assert_eq!(slices[1].as_ptr(), big.as_ptr());
        let mut expect = vec![0x01, 2, b'a', b'b', 0x03];
        expect.extend_from_slice(&(ZERO_COPY_THRESHOLD as u64).to_be_bytes());
        expect.extend_from_slice(&big);
        expect.extend_from_slice(&[0x00, 1, b'c']);
        assert_eq!(enc.len(), expect.len());
        assert_eq!(drain(&mut enc, 5), expect);
    }

    #[test]
    fn take_all_equals_draining_by_writes() {
        let mk = || {
            let mut e = Encoder::new();
            e.frame(true, false, &Bytes::from(vec![1u8; ZERO_COPY_THRESHOLD]));
            e.frame(false, false, &Bytes::from_static(b"tail"));
            e
        };
        let (mut a, mut b) = (mk(), mk());
        assert_eq!(a.take_all(), drain(&mut b, 100));
        assert!(a.is_empty());
    }

    #[test]
    fn commands_have_command_flag() {
        let mut enc = Encoder::new();
        enc.command(&Command::Subscribe(Bytes::from_static(b"A")));
        assert_eq!(drain(&mut enc, 100), b"\x04\x0b\x09SUBSCRIBEA");
    }

    #[test]
    fn partial_writes_keep_order() {
        let mut enc = Encoder::new();
        for i in 0..50u8 {
            enc.frame(i % 2 == 0, false, &Bytes::from(vec![i; i as usize * 400]));
        }
        let mut whole = Encoder::new();
        for i in 0..50u8 {
            whole.frame(i % 2 == 0, false, &Bytes::from(vec![i; i as usize * 400]));
        }
        assert_eq!(drain(&mut enc, 777), drain(&mut whole, usize::MAX));
    }
}

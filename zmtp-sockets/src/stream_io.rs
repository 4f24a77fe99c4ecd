//! Reading into and writing from a connection without blocking, and the
//! reuse of large message bodies' memory for reads.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Instant;

use zmtp_core::{Connection, Message};

use crate::transport::Stream;

/// A frame still missing this much is read straight into the buffer.
const LARGE_READ: usize = 16 * 1024;

/// What one read found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReadOutcome {
    /// End of stream.
    Eof,
    /// The read filled all the room it had: more is likely waiting, so
    /// read again before asking the reactor (which costs two system calls).
    More,
    /// The kernel had less than the room offered, or nothing.
    Drained,
}

/// Reads once without blocking.
pub(crate) fn read_some(
    stream: &Stream,
    conn: &mut Connection,
    scratch: &mut [u8],
    recycler: &mut Recycler,
) -> io::Result<ReadOutcome> {
    let hint = conn.reserve_hint();
    let mut room = scratch.len();
    // Small or unknown amounts go through the scratch buffer (only what
    // arrived is copied); the rest of a large frame is read in place.
    let n = if hint < LARGE_READ || hint == zmtp_core::codec::READ_CHUNK {
        match stream.try_read(scratch) {
            Ok(n) => {
                conn.recv_buffer().extend_from_slice(&scratch[..n]);
                n
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return Ok(ReadOutcome::Drained);
            }
            Err(e) => return Err(e),
        }
    } else {
        // A large frame is arriving: read straight into the buffer, grown
        // by at most what the decoder allows for what has arrived. The
        // buffer goes through a `Vec` so that the read fills uninitialised
        // room (no zeroing); while the frame fills, that round trip is free.
        let buf = conn.recv_buffer();
        let have = buf.len();
        let mut v = if buf.capacity() >= have + hint {
            Vec::from(std::mem::take(buf))
        } else {
            // One allocation and one copy of what has arrived, instead of a
            // reallocation that may copy it twice.
            let mut v = recycler
                .take(have + hint)
                .unwrap_or_else(|| Vec::with_capacity(have + hint));
            v.extend_from_slice(buf);
            v
        };
        if v.capacity() - v.len() < hint {
            v.reserve_exact(hint);
        }
        room = v.capacity() - v.len();
        let r = stream.try_read_spare(&mut v);
        *buf = bytes::BytesMut::from(bytes::Bytes::from(v));
        match r {
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return Ok(ReadOutcome::Drained);
            }
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(ReadOutcome::Eof);
    }
    conn.input_arrived(Instant::now());
    Ok(if n == room {
        ReadOutcome::More
    } else {
        ReadOutcome::Drained
    })
}

/// Large message bodies handed to the application, kept so that their
/// memory can be read into again once the application has dropped them.
///
/// A large body is a fresh allocation per message otherwise, and the
/// allocator returns such memory to the kernel as messages are consumed:
/// every page of the next one is then faulted in and zeroed again (about a
/// hundred page faults per MiB, a third of the receiving thread's time at
/// 1 MiB). A body is reused only when nothing else refers to it any more
/// (`Bytes::is_unique`), so the application never sees its bytes change;
/// what is retained is bounded ([`RECYCLE_ENTRIES`], [`RECYCLE_BYTES`]).
#[derive(Default)]
pub(crate) struct Recycler {
    bodies: VecDeque<bytes::Bytes>,
    /// Set by the first [`Recycler::take`], that is once a frame was read
    /// through the large-frame path: until then messages are not even
    /// looked at (the small-message path pays nothing).
    active: bool,
}

/// Bodies at least this large are watched for reuse.
const RECYCLE_MIN: usize = 128 * 1024;
/// Most bodies watched per connection.
const RECYCLE_ENTRIES: usize = 4;
/// Most bytes of bodies watched per connection.
const RECYCLE_BYTES: usize = 4 << 20;

impl Recycler {
    /// Bytes of the bodies watched.
    fn bytes(&self) -> usize {
        self.bodies.iter().map(bytes::Bytes::len).sum()
    }

    /// Watches the message's large frames.
    #[inline]
    pub(crate) fn watch(&mut self, msg: &Message) {
        if !self.active {
            return;
        }
        for f in msg.frames() {
            let len = f.len();
            if !(RECYCLE_MIN..=RECYCLE_BYTES).contains(&len) {
                continue;
            }
            while self.bodies.len() >= RECYCLE_ENTRIES || self.bytes() + len > RECYCLE_BYTES {
                if self.bodies.pop_front().is_none() {
                    break;
                }
            }
            self.bodies.push_back(f.clone());
        }
    }

    /// An empty buffer with room for `cap` bytes from a body nobody holds
    /// any more, if there is one; bodies found unused but too small are
    /// released.
    fn take(&mut self, cap: usize) -> Option<Vec<u8>> {
        self.active = true;
        let mut i = 0;
        while i < self.bodies.len() {
            if !self.bodies[i].is_unique() {
                i += 1;
                continue;
            }
            let body = self.bodies.remove(i)?;
            let Ok(mut m) = body.try_into_mut() else {
                continue;
            };
            m.clear();
            let v = Vec::from(m);
            if v.capacity() >= cap {
                return Some(v);
            }
        }
        None
    }
}

/// Writes as much as the socket takes without blocking.
pub(crate) fn write_some(stream: &Stream, conn: &mut Connection) -> io::Result<()> {
    loop {
        let enc = conn.output().map_err(|e| io::Error::other(e.to_string()))?;
        if enc.is_empty() {
            return Ok(());
        }
        let written = {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = enc.io_slices(&mut slices);
            stream.try_write_vectored(&slices[..n])
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => enc.advance(w),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn recycler_reuses_only_bodies_nobody_holds() {
        let mut r = Recycler {
            active: true,
            ..Recycler::default()
        };
        let body = Bytes::from(vec![7u8; 1 << 20]);
        r.watch(&Message::from(body.clone()));
        // The application still holds the body: nothing to reuse.
        assert!(r.take(1 << 20).is_none());
        drop(body);
        let v = r.take(1 << 20).expect("an unused body is reused");
        assert!(v.is_empty() && v.capacity() >= 1 << 20);
        assert!(r.take(1).is_none());
    }

    #[test]
    fn recycler_is_bounded_and_ignores_small_bodies() {
        let mut r = Recycler::default();
        // Inactive until a large frame was read: nothing is watched.
        r.watch(&Message::from(Bytes::from(vec![0u8; 1 << 20])));
        assert!(r.bodies.is_empty());
        r.active = true;
        r.watch(&Message::from(Bytes::from(vec![0u8; RECYCLE_MIN - 1])));
        assert!(r.bodies.is_empty());
        r.watch(&Message::from(Bytes::from(vec![0u8; RECYCLE_BYTES + 1])));
        assert!(r.bodies.is_empty());
        for _ in 0..10 {
            r.watch(&Message::from(Bytes::from(vec![0u8; 1 << 20])));
            assert!(r.bodies.len() <= RECYCLE_ENTRIES && r.bytes() <= RECYCLE_BYTES);
        }
        // Too small for the request: released, not returned.
        assert!(r.take(2 << 20).is_none());
        assert!(r.bodies.is_empty() && r.bytes() == 0);
    }
}

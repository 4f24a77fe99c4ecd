//! Reading into and writing from a connection without blocking, and the
//! reuse of large message bodies' memory for reads.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::{Duration, Instant};

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
    // Small or unknown amounts go through the scratch buffer (only what
    // arrived is copied); the rest of a large frame is read in place; bulk
    // reads use the recycler's pooled buffers.
    let have = conn.recv_buffer().len();
    // How much room to make, where the frame (as far as it is known)
    // ends (a read into more room than that takes the next frame's start,
    // which is copied again when that frame gets a buffer of its own), and
    // the least room a reused body must have for it.
    let bulk = recycler.bulk > 0;
    let (hint, end, least) = match conn.frame_missing() {
        // While reads come in bulk, a frame that a pooled read buffer
        // holds several of is read with its neighbours: its own buffer
        // would be a fresh allocation per frame.
        Some(missing) if bulk && have + missing < RECYCLE_MIN => (0, 0, 0),
        // The rest of a large frame, also its last few bytes when its
        // buffer has room for them (through the scratch buffer, the buffer
        // would grow by a read's worth: a copy of all that arrived).
        Some(missing)
            if missing >= LARGE_READ
                || (have >= LARGE_READ
                    // Room in the buffer, and in a reused body's tail
                    // after it.
                    && conn.recv_buffer().capacity() - have
                        + recycler.tail_room(conn.recv_buffer())
                        >= missing) =>
        {
            // A reused body is memory already allocated: it must hold the
            // whole frame, whatever has arrived of it, or the frame would
            // be copied out of it once it is full.
            (conn.reserve_hint(), have + missing, have + missing)
        }
        // The last message was large, so the next one likely is: its
        // first bytes (at most a partial header has arrived) go straight
        // into a buffer of its size too. Through the scratch buffer they
        // were copied twice (into the read buffer, then into the frame's
        // own buffer once its header was decoded): up to a quarter of
        // each 1 MiB body. A reused body's room is counted from its
        // message's first byte, which the frame's header and a mechanism's
        // prefix preceded in the same memory, within the expected size's
        // slack ([`EXPECT_SLACK`]); a new body has [`REUSE_DRIFT`] more,
        // for many reuses.
        None if recycler.expect > have + LARGE_READ && have < 16 => (
            recycler.expect + REUSE_DRIFT - have,
            recycler.expect,
            recycler.expect - EXPECT_SLACK,
        ),
        _ => (0, 0, 0),
    };
    let mut room = scratch.len();
    let n = if hint == 0 {
        let buf = conn.recv_buffer();
        recycler.end_tail(buf);
        let full = buf.capacity() - buf.len() < room;
        // Bulk reads go straight into a pooled buffer, after the start of
        // the frame that the last one left; a read that finds room in the
        // read buffer goes through the scratch buffer and is copied.
        let pooled = if bulk && full {
            recycler.read_buffer_with(buf, POOL_READ_BUF / 2)
        } else {
            None
        };
        let r = match pooled {
            Some(mut v) => {
                room = v.capacity() - v.len();
                let r = stream.try_read_spare_whole(&mut v);
                *buf = recycler.keep(v);
                r
            }
            None => stream.try_read(scratch).inspect(|&n| {
                if buf.capacity() - buf.len() < n && (bulk || n >= POOL_READ_MIN) {
                    recycler.renew_read_buffer(buf, n);
                } else if !bulk {
                    // Each read into a buffer of its own. The messages
                    // cut from a buffer share its reference count: this
                    // thread adds one per message, the receiving thread
                    // takes one off as it drops each. Kept from read to
                    // read, the count's cache line went between the two
                    // CPUs at every message while both worked on the same
                    // buffer (a fifth of the samples of PUSH/PULL 16 B when
                    // the application threads run apart from their I/O
                    // threads). Now the count of the last read's buffer is
                    // left alone once its messages are cut.
                    let mut fresh = bytes::BytesMut::with_capacity(buf.len() + n);
                    fresh.extend_from_slice(buf);
                    *buf = fresh;
                }
                buf.extend_from_slice(&scratch[..n]);
            }),
        };
        match r {
            Ok(n) => {
                recycler.note_read(n);
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
        // by at most what the decoder allows for what has arrived, in
        // reads of at most the stream's limit.
        let buf = conn.recv_buffer();
        if !recycler.tail_fits(buf, least - have) && buf.capacity() < have + hint {
            // A body the application dropped, if one has the room: its
            // memory was written before, so the frame's reads go into it
            // without zeroing it first (see `Recycler::start_in`). A
            // reused body much larger than the frame would take the next
            // one's start.
            if let Some(body) = recycler.take(least, end + end / 1024 + 4096) {
                recycler.start_in(buf, body);
            }
        }
        let r = match recycler.tail.as_mut() {
            Some(t) => {
                room = t.len().min(stream.read_limit(end));
                let r = stream.try_read(&mut t[..room]);
                if let Ok(n) = r {
                    recycler.append_tail(buf, n);
                }
                r
            }
            None => {
                // The buffer goes through a `Vec` so that the read grows
                // it in place (see `Stream::try_read_spare`); while the
                // frame fills, that round trip costs no copy.
                let mut v = if buf.capacity() >= have + hint {
                    Vec::from(std::mem::take(buf))
                } else {
                    // One allocation and one copy of what has arrived,
                    // instead of a reallocation that may copy it twice.
                    let mut v = Vec::with_capacity(have + hint);
                    v.extend_from_slice(buf);
                    v
                };
                if v.capacity() - v.len() < hint {
                    v.reserve_exact(hint);
                }
                room = (v.capacity() - v.len()).min(stream.read_limit(end));
                let r = stream.try_read_spare(&mut v, end);
                *buf = bytes::BytesMut::from(bytes::Bytes::from(v));
                r
            }
        };
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
    recycler.reads = recycler.reads.wrapping_add(1);
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
///
/// The same holds for the read buffers of bulk reads, which many smaller
/// messages share: a pool of at most [`POOL_READS`] buffers of
/// [`POOL_READ_BUF`] bytes (4 MiB) per connection, kept only while reads
/// come in bulk (see [`Recycler::read_buffer`]). Both go back once reads
/// stop for [`IDLE_RELEASE`] ([`Recycler::look_idle`]).
#[derive(Default)]
pub(crate) struct Recycler {
    bodies: VecDeque<bytes::Bytes>,
    /// Set by the first [`Recycler::take`], that is once a frame was read
    /// through the large-frame path: until then messages are not even
    /// looked at (the small-message path pays nothing).
    active: bool,
    /// When the last message had a frame of at least [`RECYCLE_MIN`]
    /// bytes: room for one such frame as it travels (its header and the
    /// mechanism's overhead), which the next frame's first read is given;
    /// else 0.
    expect: usize,
    /// How many more reads (through the scratch buffer or a pooled
    /// buffer) are bulk reads: [`BULK_READS`] after one that took at least
    /// [`POOL_READ_MIN`] bytes, one fewer after each smaller one. While it
    /// is not 0, a read that finds the read buffer full uses a pooled one.
    bulk: u8,
    /// Handles (empty, at the start) on the pooled read buffers: once the
    /// application has dropped every message cut from one, its memory is
    /// read into again (see [`Recycler::read_buffer`]).
    pool: Vec<bytes::BytesMut>,
    /// Reads that took bytes (wrapping), for [`Recycler::look_idle`].
    reads: u32,
    /// When the connection's task is next to see whether reads stopped,
    /// and the count of reads when it asked.
    idle_mark: Option<(Instant, u32)>,
    /// The rest of a reused body whose start is the read buffer (see
    /// [`Recycler::start_in`]): memory written before, which a large
    /// frame's reads go into without zeroing it, and which joins the read
    /// buffer as they fill it.
    tail: Option<bytes::BytesMut>,
}

/// Whether `tail` starts where `buf` ends.
fn follows(buf: &bytes::BytesMut, tail: &bytes::BytesMut) -> bool {
    buf.as_ptr().wrapping_add(buf.len()) == tail.as_ptr()
}

/// A read of at least this much makes the next reads bulk reads.
const POOL_READ_MIN: usize = 32 * 1024;
/// How many smaller reads in a row end bulk reading, and release the pool.
/// A stream of small messages whose first reads were large (a backlog at
/// the start) goes back to buffers of its own size: with 64 subscribers
/// each keeping pooled buffers, PUB -> 64 SUB at 16 B spent a tenth more
/// CPU.
const BULK_READS: u8 = 16;
/// Size of a pooled read buffer: two reads of the scratch buffer's size.
const POOL_READ_BUF: usize = 512 * 1024;
/// Most pooled read buffers per connection.
const POOL_READS: usize = 8;

/// How long a connection reads nothing before its recycler gives back the
/// memory it keeps (pooled read buffers and watched bodies, up to 8 MiB):
/// a connection that falls quiet after a burst should not keep it for its
/// lifetime. A stream that resumes pays a few hundred page faults for it,
/// against this much time.
const IDLE_RELEASE: Duration = Duration::from_millis(50);

/// The fixed part of what [`Recycler::expect`] adds to the last large
/// message's size: its frame's header, and the prefix and tag of an
/// encrypting mechanism (CURVE's MESSAGE adds 33 bytes).
const EXPECT_SLACK: usize = 64;

/// Room that a body made for a frame of the expected size has beyond it:
/// each reuse moves the body's start on by a frame header (see
/// [`Recycler::take`]), and one that falls short is zeroed again, so a body
/// is zeroed about once in a hundred reuses rather than once in seven.
const REUSE_DRIFT: usize = 1024;

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
        let mut largest = 0;
        for f in msg.frames() {
            let len = f.len();
            largest = largest.max(len);
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
        // A frame's header is 9 bytes; an encrypting mechanism adds less
        // than 1/4096 of the body and 64 bytes (NOISE: 16 bytes per 64 KiB
        // record; CURVE: about 40 per message). Little more: what a read
        // takes beyond the frame is the next frame's start, copied again
        // when that frame gets a buffer of its own. Only for sizes the
        // recycler keeps: a buffer made before any of the frame has arrived
        // stays within what it would hold.
        self.expect = if (RECYCLE_MIN..=RECYCLE_BYTES).contains(&largest) {
            largest + largest / 4096 + EXPECT_SLACK
        } else {
            0
        };
    }

    /// A pooled read buffer that nothing refers to any more (empty, with
    /// room for [`POOL_READ_BUF`] bytes), or a new one while the pool has
    /// room for it, if `need` bytes fit; `None` when every pooled buffer is
    /// still in use.
    ///
    /// The messages cut from a read buffer share its memory, so while the
    /// application holds any of them the buffer cannot be written again
    /// and a new one is allocated. At the size of bulk reads the allocator
    /// returns that memory to the kernel as messages are consumed, and
    /// every page of the next buffer is faulted in and zeroed again: at
    /// 64 KiB messages over ipc, 2.6 page faults per message. A pooled
    /// buffer is reused only when nothing else refers to it
    /// (`BytesMut::try_reclaim`), so the application never sees its bytes
    /// change.
    fn read_buffer(&mut self, need: usize) -> Option<Vec<u8>> {
        if need > POOL_READ_BUF {
            return None;
        }
        match self
            .pool
            .iter_mut()
            .position(|k| k.try_reclaim(POOL_READ_BUF))
        {
            Some(i) => Some(Vec::from(self.pool.swap_remove(i))),
            None if self.pool.len() < POOL_READS => Some(Vec::with_capacity(POOL_READ_BUF)),
            None => None,
        }
    }

    /// Whether it keeps memory for reuse (pooled read buffers or watched
    /// bodies), which [`Recycler::look_idle`] gives back once reads stop.
    pub(crate) fn holds_memory(&self) -> bool {
        !self.pool.is_empty() || !self.bodies.is_empty()
    }

    /// For a task about to wait while the recycler [holds
    /// memory](Recycler::holds_memory): gives the memory back (to the
    /// allocator, once the application drops the messages that share it)
    /// if no read took bytes since the last look, [`IDLE_RELEASE`] or more
    /// ago; otherwise returns the moment of the next look when the task
    /// must be woken for it (`None` while an earlier wake-up is still to
    /// come).
    pub(crate) fn look_idle(&mut self, now: Instant) -> Option<Instant> {
        match self.idle_mark {
            Some((at, _)) if now < at => None,
            Some((_, reads)) if reads == self.reads => {
                self.release();
                None
            }
            _ => {
                let at = now + IDLE_RELEASE;
                self.idle_mark = Some((at, self.reads));
                Some(at)
            }
        }
    }

    /// Gives back the memory kept for reuse, and ends bulk reading.
    fn release(&mut self) {
        self.pool = Vec::new();
        self.bodies = VecDeque::new();
        self.bulk = 0;
        self.idle_mark = None;
    }

    /// Counts a read of `n` bytes (see [`Recycler::bulk`]); at the end of
    /// bulk reading the pool's buffers go back to the allocator once the
    /// application drops their messages.
    fn note_read(&mut self, n: usize) {
        if n >= POOL_READ_MIN {
            self.bulk = BULK_READS;
        } else if self.bulk > 0 {
            self.bulk -= 1;
            if self.bulk == 0 {
                self.pool = Vec::new();
            }
        }
    }

    /// The read buffer made of `v`, a buffer from [`Recycler::read_buffer`],
    /// whose memory the pool watches from now on.
    fn keep(&mut self, v: Vec<u8>) -> bytes::BytesMut {
        let mut buf = bytes::BytesMut::from(bytes::Bytes::from(v));
        // An empty handle at the buffer's start, which keeps its memory
        // from going back to the allocator.
        self.pool.push(buf.split_to(0));
        buf
    }

    /// Replaces the read buffer, which has no room for the `n` bytes
    /// about to be appended, with a pooled one that holds the same bytes,
    /// if there is one (see [`Recycler::read_buffer`]).
    fn renew_read_buffer(&mut self, buf: &mut bytes::BytesMut, n: usize) {
        if let Some(v) = self.read_buffer_with(buf, n) {
            *buf = self.keep(v);
        }
    }

    /// A pooled buffer (see [`Recycler::read_buffer`]) holding a copy of
    /// `held` (the start of a frame that the last read left) and room for
    /// `more` bytes after it.
    fn read_buffer_with(&mut self, held: &[u8], more: usize) -> Option<Vec<u8>> {
        let mut v = self.read_buffer(held.len() + more)?;
        v.extend_from_slice(held);
        Some(v)
    }

    /// A body nobody holds any more, with room for at least `cap` and at
    /// most `max` bytes, if there is one; bodies found unused but of
    /// another size are released. Its length is its capacity: the bytes
    /// of the message it held and zeroes beyond them (for a body of the
    /// last message's size, a few hundred bytes).
    ///
    /// A body's room is counted from its message's first byte, so each
    /// reuse moves it on by the frame's header (the frame is read from the
    /// header on, which decoding then passes); a body whose room fell
    /// short that way is made whole again, zeroed once more.
    fn take(&mut self, cap: usize, max: usize) -> Option<bytes::BytesMut> {
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
            if m.capacity() > max {
                continue;
            }
            if m.capacity() < cap {
                m.clear();
                let mut v = Vec::from(m);
                if !(cap..=max).contains(&v.capacity()) {
                    continue;
                }
                v.resize(v.capacity(), 0);
                return Some(bytes::BytesMut::from(bytes::Bytes::from(v)));
            }
            m.resize(m.capacity(), 0);
            return Some(m);
        }
        None
    }

    /// Makes `body` (from [`Recycler::take`]) the read buffer, starting
    /// with a copy of `buf`'s bytes, and the rest of it the tail that the
    /// frame's reads go into ([`Recycler::append_tail`]).
    ///
    /// Safe code can read into uninitialised memory only as a `Vec`'s
    /// whole spare capacity, so the capped reads of tcp
    /// ([`Stream::read_limit`]) into a fresh buffer zero their room first:
    /// at 1 MiB messages a tenth of the samples were that `memset`. A
    /// reused body's bytes are already written, and stay the application's
    /// no longer (nothing else refers to them).
    fn start_in(&mut self, buf: &mut bytes::BytesMut, mut body: bytes::BytesMut) {
        let have = buf.len();
        body[..have].copy_from_slice(buf);
        self.tail = Some(body.split_off(have));
        *buf = body;
    }

    /// Room in the tail, if it follows `buf` (else 0).
    fn tail_room(&self, buf: &bytes::BytesMut) -> usize {
        match &self.tail {
            Some(t) if follows(buf, t) => t.len(),
            _ => 0,
        }
    }

    /// Whether the tail follows `buf` with room for `need` bytes (the rest
    /// of the frame it was taken for); if not, it ends
    /// ([`Recycler::end_tail`]).
    fn tail_fits(&mut self, buf: &mut bytes::BytesMut, need: usize) -> bool {
        if self.tail_room(buf) >= need.max(1) {
            return true;
        }
        self.end_tail(buf);
        false
    }

    /// Moves the first `n` bytes of the tail, just read into, to the end
    /// of `buf` (which it follows), without a copy.
    fn append_tail(&mut self, buf: &mut bytes::BytesMut, n: usize) {
        let Some(t) = self.tail.as_mut() else {
            return;
        };
        let got = t.split_to(n);
        if let Err(got) = buf.try_unsplit(got) {
            // Not reached: the caller read into the tail that follows.
            buf.extend_from_slice(&got);
        }
        if t.is_empty() {
            self.end_tail(buf);
        }
    }

    /// Ends the tail: its room (not its stale bytes) goes back to `buf`'s
    /// spare capacity if it follows `buf`, else it is dropped.
    fn end_tail(&mut self, buf: &mut bytes::BytesMut) {
        if let Some(mut t) = self.tail.take() {
            t.clear();
            if follows(buf, &t) {
                // Err: another allocation that happens to end there.
                let _ = buf.try_unsplit(t);
            }
        }
    }
}

/// Writes as much as the socket takes without blocking; `true` when the
/// socket took less than was offered (its buffer is full: writing again
/// before it reports room would only fail).
pub(crate) fn write_some(stream: &Stream, conn: &mut Connection) -> io::Result<bool> {
    loop {
        let enc = conn.output().map_err(|e| io::Error::other(e.to_string()))?;
        if enc.is_empty() {
            return Ok(false);
        }
        let (written, offered) = {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = enc.io_slices(&mut slices);
            let offered: usize = slices[..n].iter().map(|s| s.len()).sum();
            (stream.try_write_vectored(&slices[..n]), offered)
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => {
                enc.advance(w);
                if w < offered {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A recycler that watches messages (as after a first large frame).
    fn active() -> Recycler {
        Recycler {
            active: true,
            ..Recycler::default()
        }
    }

    #[test]
    fn pooled_read_buffers_are_reused_only_when_nobody_holds_them() {
        let mut r = Recycler::default();
        let v = r.read_buffer(1000).expect("an empty pool has room");
        let mut buf = r.keep(v);
        assert!(buf.capacity() >= POOL_READ_BUF);
        let first = buf.as_ptr();
        buf.extend_from_slice(&[1u8; 3000]);
        // A message cut from the buffer, and the buffer given up (as when
        // the connection moves on to another one).
        let msg = buf.split_to(2000).freeze();
        drop(buf);
        // The message still refers to the memory: a second buffer.
        let v = r.read_buffer(1000).expect("the pool has room for another");
        assert_ne!(v.as_ptr(), first);
        let second = r.keep(v);
        assert_eq!(msg, vec![1u8; 2000]);
        drop(msg);
        // Nothing refers to the first buffer any more: its memory again,
        // empty and whole.
        let again = r.read_buffer(1000).expect("a buffer nobody holds");
        assert!(again.is_empty() && again.capacity() >= POOL_READ_BUF);
        assert_eq!(again.as_ptr(), first);
        assert_eq!(r.pool.len(), 1);
        drop(second);
    }

    #[test]
    fn small_reads_end_bulk_reading_and_release_the_pool() {
        let mut r = Recycler::default();
        r.note_read(POOL_READ_MIN - 1);
        assert_eq!(r.bulk, 0);
        r.note_read(POOL_READ_MIN);
        let v = r.read_buffer(10).expect("room");
        let buf = r.keep(v);
        for _ in 1..BULK_READS {
            r.note_read(100);
            assert!(r.bulk > 0 && r.pool.len() == 1);
        }
        // A large read starts the count again.
        r.note_read(POOL_READ_BUF);
        assert_eq!(r.bulk, BULK_READS);
        for _ in 0..BULK_READS {
            r.note_read(100);
        }
        assert_eq!(r.bulk, 0);
        assert!(r.pool.is_empty() && r.pool.capacity() == 0);
        // The read buffer itself is untouched.
        assert!(buf.capacity() >= POOL_READ_BUF);
    }

    #[test]
    fn memory_kept_goes_back_once_reads_stop() {
        let mut r = active();
        assert!(!r.holds_memory());
        let v = r.read_buffer(1000).expect("an empty pool has room");
        let buf = r.keep(v);
        drop(buf);
        r.note_read(POOL_READ_MIN);
        r.watch(&Message::from(vec![0u8; RECYCLE_MIN]));
        assert!(r.holds_memory());
        let t0 = Instant::now();
        // The first look asks to be woken a spell later, and looks before
        // then ask for nothing more.
        assert_eq!(r.look_idle(t0), Some(t0 + IDLE_RELEASE));
        assert_eq!(r.look_idle(t0 + IDLE_RELEASE / 2), None);
        // A read came meanwhile: another spell.
        r.reads += 1;
        let t1 = t0 + IDLE_RELEASE;
        assert_eq!(r.look_idle(t1), Some(t1 + IDLE_RELEASE));
        assert!(r.holds_memory());
        // None since: the pool and the bodies go, and bulk reading ends.
        assert_eq!(r.look_idle(t1 + IDLE_RELEASE), None);
        assert!(!r.holds_memory());
        assert_eq!(r.bulk, 0);
        assert!(r.pool.capacity() == 0 && r.bodies.capacity() == 0);
    }

    #[test]
    fn the_read_pool_is_bounded() {
        let mut r = Recycler::default();
        let mut held = Vec::new();
        for _ in 0..POOL_READS {
            let v = r.read_buffer(POOL_READ_BUF).expect("room");
            let mut buf = r.keep(v);
            buf.extend_from_slice(b"held");
            held.push(buf.split().freeze());
        }
        assert_eq!(r.pool.len(), POOL_READS);
        // Every buffer is in use and the pool is full: an ordinary
        // allocation is the caller's.
        assert!(r.read_buffer(10).is_none());
        // More than a pooled buffer holds is never asked of the pool.
        drop(held.pop());
        assert!(r.read_buffer(POOL_READ_BUF + 1).is_none());
        assert!(r.read_buffer(POOL_READ_BUF).is_some());
    }

    #[test]
    fn a_renewed_read_buffer_holds_the_same_bytes() {
        let mut r = Recycler::default();
        let mut buf = bytes::BytesMut::from(&b"start of a frame"[..]);
        let held = buf.clone().freeze();
        r.renew_read_buffer(&mut buf, 100_000);
        assert_eq!(&buf[..], b"start of a frame");
        assert!(buf.capacity() - buf.len() >= 100_000);
        assert_eq!(r.pool.len(), 1);
        assert_eq!(held, &b"start of a frame"[..]);
        // Beyond a pooled buffer's size: left as it was.
        let mut big = bytes::BytesMut::from(&b"x"[..]);
        r.renew_read_buffer(&mut big, POOL_READ_BUF);
        assert_eq!(big.capacity(), 1);
    }

    #[test]
    fn recycler_reuses_only_bodies_nobody_holds() {
        let mut r = active();
        let body = Bytes::from(vec![7u8; 1 << 20]);
        r.watch(&Message::from(body.clone()));
        // The application still holds the body: nothing to reuse.
        assert!(r.take(1 << 20, 2 << 20).is_none());
        drop(body);
        let v = r.take(1 << 20, 2 << 20).expect("an unused body is reused");
        assert!(v.len() == v.capacity() && v.capacity() >= 1 << 20);
        assert!(r.take(1, usize::MAX).is_none());
    }

    /// A reused body keeps its bytes for the next frame's reads to
    /// overwrite (no zeroing), and only the bytes read show in the read
    /// buffer: the tail's stale ones never do.
    #[test]
    fn a_reused_body_is_read_into_in_place_and_shows_only_what_was_read() {
        use bytes::Buf;
        let mut r = active();
        let mut v = Vec::with_capacity(RECYCLE_MIN + 100);
        v.resize(RECYCLE_MIN, 7u8);
        let old = Bytes::from(v);
        let at = old.as_ptr();
        r.watch(&Message::from(old.clone()));
        drop(old);
        let body = r.take(RECYCLE_MIN, RECYCLE_MIN + 4096).expect("unused");
        // The old message's bytes, and zeroes only beyond them.
        assert_eq!(body.len(), RECYCLE_MIN + 100);
        assert!(body[..RECYCLE_MIN].iter().all(|&b| b == 7));
        assert!(body[RECYCLE_MIN..].iter().all(|&b| b == 0));
        let mut buf = bytes::BytesMut::from(&b"head"[..]);
        r.start_in(&mut buf, body);
        assert_eq!((&buf[..], buf.as_ptr()), (&b"head"[..], at));
        assert_eq!(r.tail_room(&buf), RECYCLE_MIN + 96);
        // A read of three bytes into the tail joins the buffer in place.
        r.tail.as_mut().expect("tail")[..3].copy_from_slice(b"abc");
        r.append_tail(&mut buf, 3);
        assert_eq!((&buf[..], buf.as_ptr()), (&b"headabc"[..], at));
        // Decoding passes the header; the tail still follows the buffer.
        buf.advance(4);
        assert!(r.tail_fits(&mut buf, RECYCLE_MIN));
        assert!(!r.tail_fits(&mut buf, RECYCLE_MIN + 94));
        // That ended it: its room went back to the buffer, its bytes did not.
        assert!(r.tail.is_none());
        assert_eq!(&buf[..], b"abc");
        assert_eq!(buf.capacity(), RECYCLE_MIN + 96);
        // A tail that no longer follows the buffer (the buffer was
        // replaced) has no room for it, and is dropped.
        r.watch(&Message::from(Bytes::from(vec![1u8; RECYCLE_MIN])));
        let body = r.take(RECYCLE_MIN, RECYCLE_MIN).expect("unused");
        let mut buf = bytes::BytesMut::new();
        r.start_in(&mut buf, body);
        let mut other = bytes::BytesMut::from(&b"x"[..]);
        assert_eq!(r.tail_room(&other), 0);
        assert!(!r.tail_fits(&mut other, 1));
        assert!(r.tail.is_none() && &other[..] == b"x");
    }

    /// Each reuse moves a body's start on by the frame header read before
    /// it; a body whose room fell short that way is made whole again, and
    /// zeroed, rather than given up.
    #[test]
    fn a_body_moved_on_by_its_headers_is_made_whole_again() {
        let mut r = active();
        let whole = Bytes::from(vec![5u8; RECYCLE_MIN + 64]);
        let at = whole.as_ptr();
        // The message followed a 9-byte header in the same memory.
        r.watch(&Message::from(whole.slice(9..)));
        drop(whole);
        let body = r
            .take(RECYCLE_MIN + 60, RECYCLE_MIN + 4096)
            .expect("whole again");
        assert_eq!((body.len(), body.as_ptr()), (RECYCLE_MIN + 64, at));
        assert!(body.iter().all(|&b| b == 0));
        // With room enough from where it starts, it is left where it is.
        let whole = Bytes::from(vec![5u8; RECYCLE_MIN + 64]);
        r.watch(&Message::from(whole.slice(9..)));
        drop(whole);
        let body = r.take(RECYCLE_MIN, RECYCLE_MIN + 4096).expect("as it is");
        assert_eq!(body.len(), RECYCLE_MIN + 55);
        assert!(body.iter().all(|&b| b == 5));
    }

    #[test]
    fn recycler_expects_the_size_of_the_last_large_message() {
        let mut r = active();
        r.watch(&Message::from(Bytes::from(vec![1u8; 1 << 20])));
        // Room for the frame, its header and a mechanism's overhead, and
        // not much more (more would take the next frame's start).
        assert!(r.expect >= (1 << 20) + 9 + 64 && r.expect <= (1 << 20) + 1024);
        r.watch(&Message::from(Bytes::from_static(b"small")));
        assert_eq!(r.expect, 0);
        r.watch(&Message::from_frames([
            Bytes::from_static(b"id"),
            Bytes::from(vec![2u8; 300_000]),
        ]));
        assert!(r.expect > 300_000);
        // Beyond what the recycler keeps, nothing is made ahead.
        r.watch(&Message::from(Bytes::from(vec![3u8; RECYCLE_BYTES + 1])));
        assert_eq!(r.expect, 0);
    }

    #[test]
    fn recycler_releases_bodies_much_larger_than_asked() {
        let mut r = active();
        r.watch(&Message::from(Bytes::from(vec![7u8; 2 << 20])));
        // Too large for a 1 MiB frame: a read into it would run into the
        // next frame. Released, not kept for ever.
        assert!(r.take(1 << 20, (1 << 20) + 4096).is_none());
        assert!(r.bodies.is_empty());
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
        assert!(r.take(2 << 20, usize::MAX).is_none());
        assert!(r.bodies.is_empty() && r.bytes() == 0);
    }
}

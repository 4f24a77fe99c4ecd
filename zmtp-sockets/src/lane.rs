//! One inproc direction's queue into the receiving socket's inbox: a lane.
//!
//! An inproc sender hands over every message on its own, so the queue's
//! cost is paid per message. A queue that many senders share (the inbox's
//! lock-free list) cost two contended read-modify-writes and a block
//! allocation every 31 items: 43 % of the samples at 16 B. A lane has one
//! writer (the sending socket, under its state lock) and one reader (the
//! receiving application, under its inbox's lock), so it is a
//! single-producer ring (`rtrb`): a plain store and a release store of the
//! tail to send, the mirror image to take. The list also made the reader
//! spin and yield while a writer was between reserving a slot and filling
//! it, and the two threads fought over the allocator's lock for its
//! blocks: 100,000–300,000 `sched_yield` and 13,000–40,000 futex calls per
//! 2M messages, against about 150 and 800 with lanes. A receive looks at
//! every lane in turn, so an inbox holds only a few
//! (`inbox::MAX_LANES`); the pipes beyond them use its shared list.
//!
//! The lane grows by segments, as [`crate::ring`]'s queues do: a ring of
//! [`FIRST_SEGMENT`] slots at first, and when one fills the next is twice
//! as large (up to [`MAX_SEGMENT`], so that what a burst leaves behind is
//! one ring of that size, the others being freed as they are read to
//! their end). The writer hands the next segment over
//! before it lets go of the full one, so the reader, finding a segment
//! empty and let go of, either finds the next or knows that the writer is
//! gone (the pipe left its socket) and the lane is done.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rtrb::{Consumer, Producer, PushError, RingBuffer};

use crate::pipe::Inbound;

/// Slots of a lane's first ring.
const FIRST_SEGMENT: usize = 16;
/// Most slots of one ring.
const MAX_SEGMENT: usize = 256;

/// The segments the writer added and the reader has not reached.
type Next = Mutex<VecDeque<Consumer<Inbound>>>;

fn lock(next: &Next) -> std::sync::MutexGuard<'_, VecDeque<Consumer<Inbound>>> {
    next.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new lane: its sending and reading ends.
pub(crate) fn lane() -> (LaneTx, LaneRx) {
    let (p, c) = RingBuffer::new(FIRST_SEGMENT);
    let next = Arc::new(Next::default());
    (
        LaneTx {
            segment: RefCell::new(p),
            next: next.clone(),
        },
        LaneRx { segment: c, next },
    )
}

/// The sending end, in the sending socket's inproc link (used only under
/// that socket's state lock). Dropping it ends the lane once the reader has
/// taken what it holds.
pub(crate) struct LaneTx {
    segment: RefCell<Producer<Inbound>>,
    next: Arc<Next>,
}

impl LaneTx {
    /// Queues `item` (a lane has no bound of its own: the link's credit
    /// bounds what a direction holds).
    #[inline]
    pub(crate) fn push(&self, item: Inbound) {
        let mut segment = self.segment.borrow_mut();
        if let Err(PushError::Full(item)) = segment.push(item) {
            self.grow(&mut segment, item);
        }
    }

    /// Starts a new ring with `item` in it, hands its reading end over,
    /// then lets go of the full one (which the reader drains first).
    #[cold]
    fn grow(&self, segment: &mut Producer<Inbound>, item: Inbound) {
        let slots = (segment.buffer().capacity() * 2).min(MAX_SEGMENT);
        let (mut p, c) = RingBuffer::new(slots);
        if p.push(item).is_err() {
            unreachable!("a new ring has room");
        }
        lock(&self.next).push_back(c);
        *segment = p;
    }
}

/// The lane was read to its end and its writer is gone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ended;

/// The reading end, in the receiving inbox.
pub(crate) struct LaneRx {
    segment: Consumer<Inbound>,
    next: Arc<Next>,
}

impl LaneRx {
    /// Takes the next item, `Ok(None)` when none waits.
    #[inline]
    pub(crate) fn pop(&mut self) -> Result<Option<Inbound>, Ended> {
        loop {
            if let Ok(item) = self.segment.pop() {
                return Ok(Some(item));
            }
            if !self.segment.is_abandoned() {
                return Ok(None);
            }
            // Let go of: what was pushed before is visible now (the
            // writer's release of the ring follows its pushes).
            if let Ok(item) = self.segment.pop() {
                return Ok(Some(item));
            }
            match lock(&self.next).pop_front() {
                Some(c) => self.segment = c,
                None => return Err(Ended),
            }
        }
    }

    /// Whether no item waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.segment.is_empty() && lock(&self.next).iter().all(Consumer::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zmtp_core::Message;

    fn item(i: u32) -> Inbound {
        Inbound::inproc(7, Message::from(i.to_le_bytes().to_vec()))
    }

    fn number(item: &Inbound) -> u32 {
        let f = &item.msg.frames()[0];
        u32::from_le_bytes(f[..4].try_into().expect("four bytes"))
    }

    #[test]
    fn a_lane_grows_by_segments_and_keeps_the_order() {
        let (tx, mut rx) = lane();
        assert!(rx.pop().expect("open").is_none() && rx.is_empty());
        // Several segments' worth, taken in two goes.
        let n = FIRST_SEGMENT as u32 * 20;
        for i in 0..n / 2 {
            tx.push(item(i));
        }
        assert!(!rx.is_empty());
        for i in 0..n / 4 {
            assert_eq!(number(&rx.pop().expect("open").expect("an item")), i);
        }
        for i in n / 2..n {
            tx.push(item(i));
        }
        // Rings of 16, 32, 64, 128 and 256 slots; the reader is in the
        // third, and two wait behind it.
        assert_eq!(lock(&tx.next).len(), 2);
        assert_eq!(tx.segment.borrow().buffer().capacity(), MAX_SEGMENT);
        for i in n / 4..n {
            assert_eq!(number(&rx.pop().expect("open").expect("an item")), i);
        }
        assert!(rx.pop().expect("open").is_none() && rx.is_empty());
        // Past the largest ring, the next ones are as large, not larger.
        for i in n..n + 2 * MAX_SEGMENT as u32 {
            tx.push(item(i));
        }
        assert_eq!(tx.segment.borrow().buffer().capacity(), MAX_SEGMENT);
        for i in n..n + 2 * MAX_SEGMENT as u32 {
            assert_eq!(number(&rx.pop().expect("open").expect("an item")), i);
        }
    }

    #[test]
    fn a_lane_whose_writer_left_ends_after_its_last_item() {
        let (tx, mut rx) = lane();
        for i in 0..(FIRST_SEGMENT as u32 + 3) {
            tx.push(item(i));
        }
        drop(tx);
        for i in 0..(FIRST_SEGMENT as u32 + 3) {
            assert_eq!(number(&rx.pop().expect("items first").expect("an item")), i);
        }
        assert_eq!(rx.pop().err(), Some(Ended));
    }

    #[test]
    fn a_lane_across_threads_delivers_everything_in_order() {
        let (tx, mut rx) = lane();
        const N: u32 = 100_000;
        let writer = std::thread::spawn(move || {
            for i in 0..N {
                tx.push(item(i));
            }
        });
        let mut want = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match rx.pop() {
                Ok(Some(it)) => {
                    assert_eq!(number(&it), want);
                    want += 1;
                }
                Ok(None) => {
                    assert!(std::time::Instant::now() < deadline, "stuck at {want}");
                    std::thread::yield_now();
                }
                Err(Ended) => break,
            }
        }
        assert_eq!(want, N);
        writer.join().expect("writer");
    }
}

//! A pipe's queue without a lock on the sending side: what PUB and XPUB
//! queue for each subscriber.
//!
//! Publishing one message queues a copy on every subscriber's pipe. Under a
//! lock, each copy cost two atomic read-modify-writes, and on x86 each is a
//! full barrier: the copy's store into a cache line the subscriber's I/O
//! thread last read had to complete before the next pipe's could start, so
//! a message to 64 subscribers waited for 64 of those transfers one after
//! the other (a fifth of all samples with 64 subscribers). Here a copy is a
//! plain store into a single-producer ring (`rtrb`) and a release store of
//! its tail; the transfers overlap, and one fence for all the pipes
//! ([`fence_for_wakes`]) orders them before the check for readers waiting.
//!
//! The queue grows by segments: a ring of [`FIRST_SEGMENT`] slots is made at
//! the first message, and when one fills the next is twice as large (up to
//! [`MAX_SEGMENT`]); the reader moves to the next when its current one is
//! empty. An idle pipe holds no ring at all.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::pipe::{Out, Refused, TAKE_CHUNK, TAKE_WHOLE, Taken};

/// Slots of a queue's first ring.
const FIRST_SEGMENT: usize = 8;
/// Most slots of one ring.
const MAX_SEGMENT: usize = 256;
/// [`Ring::wake_when`] when the reader does not wait.
const NOT_WAITING: usize = usize::MAX;

/// What both ends share.
struct Ring {
    /// How many items the reader has taken and kept (what it gave back
    /// excluded): the sender's count minus this is what is queued, which
    /// the high-water mark bounds.
    popped: AtomicUsize,
    /// The sender's count at which a send wakes the reader
    /// ([`NOT_WAITING`]: it does not wait).
    wake_when: AtomicUsize,
    /// The sending end is gone.
    tx_closed: AtomicBool,
    /// The reading end is gone: sends are refused.
    rx_closed: AtomicBool,
    /// A send was refused for the high-water mark and the reader has not
    /// taken since (see `Pipe::refused_full`).
    full: AtomicBool,
    reader: Mutex<Reader>,
}

/// The reader's side, under a lock that only the reader takes, except when
/// the sender adds a ring or wakes a waiting reader.
#[derive(Default)]
struct Reader {
    /// The rings in order; the sender appends.
    segments: VecDeque<Consumer<Out>>,
    /// Items given back ([`RingRx::unget_beyond`]), in front of the rings.
    front: VecDeque<Out>,
    /// Items taken out of the rings, ever.
    taken: usize,
    waker: Option<Waker>,
}

impl Reader {
    /// Items queued: given back, and in the rings.
    fn queued(&self) -> usize {
        self.front.len() + self.segments.iter().map(Consumer::slots).sum::<usize>()
    }

    /// What the sender counts as taken.
    fn popped(&self) -> usize {
        self.taken - self.front.len()
    }

    /// The ring to read from and how many items it holds, once the rings
    /// read to the end are dropped: the sender fills a ring before it adds
    /// the next, and adds it under this lock, so an empty ring with one
    /// behind it is done with.
    fn readable(&mut self) -> Option<(&mut Consumer<Out>, usize)> {
        loop {
            let n = self.segments.front()?.slots();
            if n > 0 {
                return self.segments.front_mut().map(|seg| (seg, n));
            }
            if self.segments.len() == 1 {
                return None;
            }
            self.segments.pop_front();
        }
    }

    /// Takes the first item.
    fn pop_one(&mut self) -> Option<Out> {
        if let Some(out) = self.front.pop_front() {
            return Some(out);
        }
        let out = self.readable()?.0.pop().ok()?;
        self.taken += 1;
        Some(out)
    }

    /// Hands up to `k` items to `f` in order, until it returns `false`;
    /// returns how many it was handed.
    fn each(&mut self, mut k: usize, f: &mut impl FnMut(Out) -> bool) -> usize {
        let mut n = 0;
        while k > 0 {
            let Some(out) = self.front.pop_front() else {
                break;
            };
            k -= 1;
            n += 1;
            if !f(out) {
                return n;
            }
        }
        while k > 0 {
            let Some((seg, avail)) = self.readable() else {
                break;
            };
            let Ok(chunk) = seg.read_chunk(avail.min(k)) else {
                break;
            };
            let (mut used, mut go_on) = (0, true);
            // What the iterator handed out is given back to the sender
            // when it is dropped; the rest stays in the ring.
            for out in chunk {
                used += 1;
                if !f(out) {
                    go_on = false;
                    break;
                }
            }
            self.taken += used;
            n += used;
            k -= used;
            if !go_on {
                break;
            }
        }
        n
    }
}

fn lock(r: &Ring) -> MutexGuard<'_, Reader> {
    r.reader.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ring {
    /// Wakes the reader and stops it waiting.
    fn wake(&self) {
        let waker = {
            let mut r = lock(self);
            self.wake_when.store(NOT_WAITING, Ordering::Relaxed);
            r.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The fence that orders sends before the check of whether their readers
/// wait ([`RingTx::wake_if_due`]): once after any number of quiet sends.
#[inline]
pub(crate) fn fence_for_wakes() {
    fence(Ordering::SeqCst);
}

/// A new queue: its sending and reading ends.
pub(crate) fn ring() -> (RingTx, RingRx) {
    let ring = Arc::new(Ring {
        popped: AtomicUsize::new(0),
        wake_when: AtomicUsize::new(NOT_WAITING),
        tx_closed: AtomicBool::new(false),
        rx_closed: AtomicBool::new(false),
        full: AtomicBool::new(false),
        reader: Mutex::new(Reader::default()),
    });
    let tx = RingTx {
        ring: ring.clone(),
        segment: RefCell::new(None),
        pushed: Cell::new(0),
    };
    (tx, RingRx { ring })
}

/// The sending end, which the socket keeps in its pipe (only the routing
/// code sends, under the socket's state lock).
pub(crate) struct RingTx {
    ring: Arc<Ring>,
    /// The ring being filled (none before the first message).
    segment: RefCell<Option<Producer<Out>>>,
    /// Items sent, ever.
    pushed: Cell<usize>,
}

impl RingTx {
    /// Queues `out` within `cap` items (0: no limit). Wakes a waiting
    /// reader only when `wake`; else the caller owes it
    /// [`fence_for_wakes`] and [`RingTx::wake_if_due`].
    #[inline]
    pub(crate) fn push(&self, out: Out, cap: usize, wake: bool) -> Result<(), Refused> {
        self.push_with(|| out, cap, wake)
    }

    /// As [`RingTx::push`], with the item made by `make` once it has a
    /// slot. A PUB's inline copy ([`Out::Small`]) is then built straight
    /// into the ring's slot. Built first and moved in, it went through a
    /// copy on the stack that was written and read back in pieces of
    /// different sizes, and such a read waits until the stores before it,
    /// the slots of the other subscribers' rings among them, have reached
    /// the cache.
    #[inline]
    pub(crate) fn push_with(
        &self,
        make: impl FnOnce() -> Out,
        cap: usize,
        wake: bool,
    ) -> Result<(), Refused> {
        if self.ring.rx_closed.load(Ordering::Acquire) {
            return Err(Refused::Closed(make()));
        }
        let pushed = self.pushed.get();
        if cap != 0 && pushed - self.ring.popped.load(Ordering::Acquire) >= cap {
            // Marked, then checked again: the fence pairs with the reader's
            // in `made_room`, so either it sees the mark and clears it or
            // this sees its room (a mark it never saw would leave the pipe
            // skipped by round-robin for good).
            self.ring.full.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if pushed - self.ring.popped.load(Ordering::Acquire) >= cap {
                return Err(Refused::Full(make()));
            }
            self.ring.full.store(false, Ordering::Relaxed);
        }
        let mut segment = self.segment.borrow_mut();
        let unmade = match segment.as_mut() {
            Some(p) if !p.is_full() => {
                if p.push(make()).is_err() {
                    unreachable!("only this end fills the ring, and it has room");
                }
                None
            }
            _ => Some(make),
        };
        if let Some(make) = unmade {
            self.grow(&mut segment, make());
        }
        drop(segment);
        self.pushed.set(pushed + 1);
        if wake {
            fence_for_wakes();
            self.wake_if_due();
        }
        Ok(())
    }

    /// Starts a new ring with `out` in it and hands its reading end over.
    #[cold]
    fn grow(&self, segment: &mut Option<Producer<Out>>, out: Out) {
        let slots = segment.as_ref().map_or(FIRST_SEGMENT, |p| {
            (p.buffer().capacity() * 2).min(MAX_SEGMENT)
        });
        let (mut p, c) = RingBuffer::new(slots);
        if p.push(out).is_err() {
            unreachable!("a new ring has room");
        }
        lock(&self.ring).segments.push_back(c);
        *segment = Some(p);
    }

    /// Wakes the reader if it waits for what was sent (after
    /// [`fence_for_wakes`]).
    #[inline]
    pub(crate) fn wake_if_due(&self) {
        if self.pushed.get() >= self.ring.wake_when.load(Ordering::Relaxed) {
            self.ring.wake();
        }
    }

    /// Whether the queue holds `cap` items (0: no limit).
    pub(crate) fn is_full(&self, cap: usize) -> bool {
        cap != 0 && self.pushed.get() - self.ring.popped.load(Ordering::Acquire) >= cap
    }

    /// Whether a send was refused for being full and the reader has taken
    /// nothing since.
    #[inline]
    pub(crate) fn refused_full(&self) -> bool {
        self.ring.full.load(Ordering::SeqCst)
    }
}

impl Drop for RingTx {
    fn drop(&mut self) {
        // The reader takes what is left, then sees the end.
        self.ring.tx_closed.store(true, Ordering::Release);
        self.ring.wake();
    }
}

/// The reading end, which the connection task holds.
pub(crate) struct RingRx {
    ring: Arc<Ring>,
}

impl Drop for RingRx {
    fn drop(&mut self) {
        self.ring.rx_closed.store(true, Ordering::Release);
    }
}

impl RingRx {
    /// The reader took (and published it): a sender refused for being full
    /// tries again.
    fn made_room(&self) {
        fence(Ordering::SeqCst);
        if self.ring.full.load(Ordering::Relaxed) {
            self.ring.full.store(false, Ordering::SeqCst);
        }
    }

    /// Publishes what was taken to the sender.
    fn publish(&self, r: &Reader) {
        self.ring.popped.store(r.popped(), Ordering::Release);
    }

    /// Takes one item.
    pub(crate) fn try_recv(&self) -> Option<Out> {
        let mut r = lock(&self.ring);
        let one = r.pop_one()?;
        self.publish(&r);
        self.made_room();
        Some(one)
    }

    /// As `PipeRx::take_chunk`.
    pub(crate) fn take_chunk(&self, into: &mut VecDeque<Out>, whole: bool) -> Taken {
        let empty = into.is_empty();
        let k = |n: usize| {
            if empty && (n <= TAKE_CHUNK || (whole && n <= TAKE_WHOLE)) {
                n
            } else {
                n.min(TAKE_CHUNK)
            }
        };
        self.take_with(k, |out| {
            into.push_back(out);
            true
        })
        .0
    }

    /// Hands up to `max` items to `f` in order, until it returns `false`
    /// (it runs under the reader's lock): for a connection task that
    /// encodes them as it takes them, instead of moving each into a queue
    /// of its own first. Returns what `take_chunk` would, and how many `f`
    /// was handed.
    pub(crate) fn take_each(&self, max: usize, f: impl FnMut(Out) -> bool) -> (Taken, usize) {
        self.take_with(|n| max.min(n), f)
    }

    /// Hands up to `k(n)` of the `n` items queued to `f`, as
    /// [`RingRx::take_each`].
    fn take_with(
        &self,
        k: impl FnOnce(usize) -> usize,
        mut f: impl FnMut(Out) -> bool,
    ) -> (Taken, usize) {
        let mut r = lock(&self.ring);
        let n = r.queued();
        if n == 0 {
            // What was sent before the end was marked is in the rings.
            let closed = self.ring.tx_closed.load(Ordering::Acquire) && r.queued() == 0;
            return (if closed { Taken::Closed } else { Taken::Empty }, 0);
        }
        // No more than were queued when counted: the sender may add more
        // while `f` runs.
        let k = r.each(k(n).min(n), &mut f);
        self.publish(&r);
        self.made_room();
        (Taken::Some(n - k), k)
    }

    /// Puts all but the first `keep` of `taken` back in front, in order.
    pub(crate) fn unget_beyond(&self, taken: &mut VecDeque<Out>, keep: usize) {
        if taken.len() <= keep {
            return;
        }
        let mut r = lock(&self.ring);
        for out in taken.drain(keep..).rev() {
            r.front.push_front(out);
        }
        self.publish(&r);
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        lock(&self.ring).queued()
    }

    /// Ready once `n` items are queued (or the sending end is gone); until
    /// then sends do not wake the task.
    pub(crate) fn poll_ready_when(&self, cx: &mut Context<'_>, n: usize) -> Poll<()> {
        let n = n.max(1);
        let mut r = lock(&self.ring);
        let ready = |r: &Reader| r.queued() >= n || self.ring.tx_closed.load(Ordering::Acquire);
        if ready(&r) {
            return Poll::Ready(());
        }
        match &mut r.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        // Queued items = sent - popped: wake when the count sent reaches
        // popped + n. The fence pairs with the sender's: either it sees
        // this, or the check below sees its item.
        self.ring.wake_when.store(r.popped() + n, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if ready(&r) {
            self.ring.wake_when.store(NOT_WAITING, Ordering::Relaxed);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use zmtp_core::Message;

    use super::*;
    use crate::pipe::tests::{Counter, numbers, woken_in_time};
    use crate::pipe::{Pipe, Pipes, Small, TAKE_CHUNK};

    fn item(i: u32) -> Out {
        Out::Msg(Message::from(i.to_be_bytes().to_vec()))
    }

    #[test]
    fn the_queue_grows_by_rings_and_keeps_order_across_them() {
        let (tx, rx) = ring();
        // Nothing is allocated for an idle pipe.
        assert!(tx.segment.borrow().is_none());
        let n = (FIRST_SEGMENT + 2 * MAX_SEGMENT + 3) as u32;
        for i in 0..n {
            tx.push(item(i), 0, true).expect("no limit");
        }
        assert!(lock(&tx.ring).segments.len() > 2);
        assert_eq!(rx.len(), n as usize);
        let mut all = VecDeque::new();
        while let Taken::Some(_) = rx.take_chunk(&mut all, false) {}
        assert_eq!(numbers(&all), (0..n).collect::<Vec<_>>());
        // The rings read are gone; the one being filled stays.
        assert_eq!(lock(&tx.ring).segments.len(), 1);
        tx.push(item(n), 0, true).expect("no limit");
        let last = rx.try_recv().expect("an item");
        assert_eq!(numbers([&last]), [n]);
    }

    #[test]
    fn the_high_water_mark_counts_what_the_reader_gave_back() {
        let (tx, rx) = ring();
        for i in 0..10 {
            tx.push(item(i), 10, true).expect("room");
        }
        assert!(matches!(tx.push(item(10), 10, true), Err(Refused::Full(_))));
        assert!(tx.refused_full() && tx.is_full(10));
        let mut taken = VecDeque::new();
        assert_eq!(rx.take_chunk(&mut taken, true), Taken::Some(0));
        assert!(!tx.refused_full() && !tx.is_full(10));
        // The reader keeps two and gives eight back: room for two.
        rx.unget_beyond(&mut taken, 2);
        assert_eq!(rx.len(), 8);
        tx.push(item(10), 10, true).expect("room");
        tx.push(item(11), 10, true).expect("room");
        assert!(matches!(tx.push(item(12), 10, true), Err(Refused::Full(_))));
        let mut rest = VecDeque::new();
        while let Taken::Some(_) = rx.take_chunk(&mut rest, false) {}
        let all = numbers(taken.iter().chain(&rest));
        assert_eq!(all, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn items_handed_out_in_place_keep_order_and_the_rest_stays() {
        let (tx, rx) = ring();
        let n = (FIRST_SEGMENT + MAX_SEGMENT + 3) as u32;
        for i in 0..n {
            tx.push(item(i), n as usize, true).expect("room");
        }
        assert!(tx.is_full(n as usize));
        // Given back in front of the rings first, then across rings, and
        // the taker stops after the tenth item it is handed.
        let mut first = VecDeque::new();
        assert_eq!(
            rx.take_chunk(&mut first, false),
            Taken::Some(n as usize - TAKE_CHUNK)
        );
        rx.unget_beyond(&mut first, 2);
        let mut got = numbers(&first);
        let mut handed = Vec::new();
        let (r, k) = rx.take_each(usize::MAX, |out| {
            handed.extend(numbers([&out]));
            handed.len() < 10
        });
        assert_eq!((r, k), (Taken::Some(n as usize - 12), 10));
        got.extend(handed);
        // What was handed out is room for the sender again.
        assert!(!tx.is_full(n as usize));
        // The rest is still there, in order, up to `max` at a time.
        loop {
            let mut chunk = Vec::new();
            match rx.take_each(FIRST_SEGMENT, |out| {
                chunk.extend(numbers([&out]));
                true
            }) {
                (Taken::Some(_), k) => {
                    assert_eq!(k, chunk.len());
                    assert!(k <= FIRST_SEGMENT);
                    got.extend(chunk);
                }
                (Taken::Empty, 0) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        drop(tx);
        assert_eq!(rx.take_each(1, |_| true), (Taken::Closed, 0));
    }

    #[test]
    fn items_sent_while_others_are_handed_out_wait_for_the_next_take() {
        let (tx, rx) = ring();
        for i in 0..4 {
            tx.push(item(i), 0, true).expect("room");
        }
        // The sender adds one while the reader is being handed the four
        // it counted (within the first ring: no new ring, so no lock).
        let mut handed = Vec::new();
        let (r, k) = rx.take_each(usize::MAX, |out| {
            if handed.is_empty() {
                tx.push(item(4), 0, true).expect("room");
            }
            handed.extend(numbers([&out]));
            true
        });
        assert_eq!((r, k), (Taken::Some(0), 4));
        assert_eq!(handed, [0, 1, 2, 3]);
        let (r, k) = rx.take_each(usize::MAX, |out| {
            handed.extend(numbers([&out]));
            true
        });
        assert_eq!((r, k), (Taken::Some(0), 1));
        assert_eq!(handed, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_end_of_either_side_is_seen() {
        let (tx, rx) = ring();
        tx.push(item(1), 0, true).expect("room");
        drop(tx);
        let mut taken = VecDeque::new();
        assert_eq!(rx.take_chunk(&mut taken, true), Taken::Some(0));
        assert_eq!(rx.take_chunk(&mut taken, true), Taken::Closed);
        let (tx, rx) = ring();
        drop(rx);
        assert!(matches!(tx.push(item(1), 0, true), Err(Refused::Closed(_))));
    }

    #[test]
    fn a_waiting_reader_is_woken_when_the_sender_goes() {
        let (tx, rx) = ring();
        let count = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_ready_when(&mut cx, 1).is_pending());
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(rx.poll_ready_when(&mut cx, 1).is_ready());
    }

    #[test]
    fn publishing_wakes_each_waiting_subscriber_once_after_its_copies() {
        let mut pipes = Pipes::default();
        let mut rxs = Vec::new();
        for id in 1..=3 {
            let (p, rx) = Pipe::publishing(id, 0);
            pipes.push(p);
            rxs.push(rx);
        }
        let counters: Vec<_> = (0..3)
            .map(|_| Arc::new(Counter(AtomicUsize::new(0))))
            .collect();
        for (rx, c) in rxs.iter().zip(&counters) {
            let waker = Waker::from(c.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(rx.poll_ready(&mut cx).is_pending());
        }
        let msg = Message::from("tick");
        let small = Small::of(&msg);
        let queued = pipes.quietly(|| {
            let mut n = 0;
            for p in pipes.iter() {
                n += u32::from(pipes.send_copy(p, &msg, small.as_ref()));
                n += u32::from(pipes.send_copy(p, &msg, small.as_ref()));
            }
            n
        });
        assert_eq!(queued, 6);
        for (rx, c) in rxs.iter().zip(&counters) {
            assert_eq!(c.0.load(Ordering::SeqCst), 1);
            assert_eq!(rx.len(), 2);
        }
        // Subscriptions (never bounded) travel on the same queue.
        let p = pipes.get(1).expect("pipe");
        p.try_send_unbounded(Out::Subscribe(Bytes::from_static(b"a")))
            .expect("room");
        assert_eq!(rxs[0].len(), 3);
    }

    #[test]
    fn a_reader_on_another_thread_gets_everything_in_order_within_the_mark() {
        const N: u32 = 200_000;
        const CAP: usize = 4;
        let (tx, rx) = ring();
        let reader = std::thread::spawn(move || {
            woken_in_time(async {
                let mut next = 0u32;
                let mut hand = VecDeque::new();
                let mut turn = 0u32;
                loop {
                    std::future::poll_fn(|cx| rx.poll_ready_when(cx, 1 + (turn % 3) as usize))
                        .await;
                    match rx.take_chunk(&mut hand, turn.is_multiple_of(2)) {
                        Taken::Some(_) => {}
                        Taken::Empty => {}
                        Taken::Closed => break,
                    }
                    // Keep some, give the rest back now and then, as a task
                    // whose output filled does.
                    if turn.is_multiple_of(5) {
                        let keep = hand.len() / 2;
                        rx.unget_beyond(&mut hand, keep);
                    }
                    while let Some(o) = hand.pop_front() {
                        assert_eq!(numbers([&o]), [next]);
                        next += 1;
                    }
                    turn += 1;
                }
                next
            })
        });
        let mut i = 0u32;
        while i < N {
            match tx.push(item(i), CAP, true) {
                Ok(()) => i += 1,
                Err(Refused::Full(_)) => {
                    // Round-robin skips a pipe so marked until its reader
                    // takes: the mark must not outlive the reader's taking.
                    let since = std::time::Instant::now();
                    while tx.refused_full() {
                        assert!(
                            since.elapsed() < std::time::Duration::from_secs(60),
                            "the mark of a refused send outlived the reader's taking"
                        );
                        std::thread::yield_now();
                    }
                }
                Err(Refused::Closed(_)) => panic!("the reader is there"),
            }
            // Within the mark, but for what the reader gave back in front
            // of what it made room for (as with a queue under a lock): at
            // most the half of a take that it keeps giving back.
            assert!(tx.pushed.get() - tx.ring.popped.load(Ordering::Acquire) <= 2 * CAP);
        }
        drop(tx);
        assert_eq!(reader.join().expect("reader"), N);
    }
}

//! Pipes: the bounded queue between a socket and one peer's connection task,
//! and the table of a socket's pipes that the patterns route over.
//!
//! A pipe carries what the socket wants sent ([`Out`]); what the peer sends
//! comes back through the socket's single inbox, tagged with the pipe
//! ([`Inbound`]). As libzmq's `pipe_t`, a pipe also holds what the routing
//! patterns know of its peer: its routing id (ROUTER) and its subscriptions
//! (PUB, XPUB).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use concurrent_queue::{ConcurrentQueue, PopError};
use zmtp_core::Message;

use crate::inproc::Link;
use crate::routing::PeerSubscriptions;

/// A pipe's identity within its socket.
pub(crate) type PipeId = u64;

/// Hashes a pipe id with one multiplication: ids are small counters made
/// by the socket itself, not input an attacker picks, so SipHash's cost
/// (a few percent of a 16-byte message's receive) buys nothing here.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b) ^ self.0.rotate_left(8));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high bits, which the table uses, depend
        // on every bit of the id.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by pipe id.
pub(crate) type IdMap<V> = HashMap<PipeId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// What a socket gives a connection task to send.
#[derive(Debug)]
pub(crate) enum Out {
    Msg(Message),
    Subscribe(Bytes),
    Cancel(Bytes),
}

/// A message from a peer, tagged with the pipe it came through.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The pipe's id, with [`INPROC`] set for a message sent over inproc
    /// (taking it gives its sender credit, see [`crate::inproc::Credit`]):
    /// a flag of its own would make every queued item 8 bytes larger.
    tagged: PipeId,
    pub(crate) msg: Message,
}

/// Marks an inproc message's pipe id (ids are counters far below it).
const INPROC: PipeId = 1 << 63;

impl Inbound {
    /// A message from a connection (not inproc).
    #[inline]
    pub(crate) fn new(pipe: PipeId, msg: Message) -> Inbound {
        Inbound { tagged: pipe, msg }
    }

    /// A message sent over inproc.
    #[inline]
    pub(crate) fn inproc(pipe: PipeId, msg: Message) -> Inbound {
        Inbound {
            tagged: pipe | INPROC,
            msg,
        }
    }

    /// The pipe it came through.
    #[inline]
    pub(crate) fn pipe(&self) -> PipeId {
        self.tagged & !INPROC
    }

    /// Whether it was sent over inproc.
    #[inline]
    pub(crate) fn is_inproc(&self) -> bool {
        self.tagged & INPROC != 0
    }
}

/// Why a pipe did not take an item; the item comes back.
#[derive(Debug)]
pub(crate) enum Refused {
    /// At its high-water mark.
    Full(Out),
    /// Its connection task is gone.
    Closed(Out),
}

impl Refused {
    pub(crate) fn into_inner(self) -> Out {
        match self {
            Refused::Full(o) | Refused::Closed(o) => o,
        }
    }
}

/// Whether a connection's queue is at its high-water mark (a conflating
/// one never is).
#[inline]
fn queue_full(tx: &ConcurrentQueue<Out>, cap: usize, conflate: &Option<Arc<AtomicU64>>) -> bool {
    conflate.is_none() && cap != 0 && tx.len() >= cap
}

/// Where a pipe's messages go.
enum Channel {
    /// To a connection task.
    Queue {
        /// An unbounded queue holding at most `cap` messages (0: no
        /// limit). A bounded queue would allocate all `cap` slots up front,
        /// 64 KiB per idle peer at the default HWM; this one grows with its
        /// content. Only the routing code sends, under the socket's state
        /// lock, so the length check and the send cannot race with another
        /// send.
        tx: Arc<ConcurrentQueue<Out>>,
        /// The connection task waiting for this queue (see [`PipeRx`]).
        ready: Arc<AtomicWaker>,
        cap: usize,
        /// Keep only the newest message (`conflate`): the count of
        /// messages given up that way, shared with the socket (they will
        /// never be written, so they must not stay "unsent").
        conflate: Option<Arc<AtomicU64>>,
    },
    /// Straight into an inproc peer's inbox.
    Inproc(Link),
}

/// The socket's end of a pipe.
pub(crate) struct Pipe {
    pub(crate) id: PipeId,
    channel: Channel,
    /// Whether the peer has finished its handshake on this pipe. A connect
    /// endpoint's pipe exists (and queues) before that.
    pub(crate) attached: bool,
    /// The peer's routing id, once ROUTER knows it.
    pub(crate) routing_id: Option<Bytes>,
    /// The peer's subscriptions (PUB, XPUB).
    pub(crate) subs: PeerSubscriptions,
    /// Queued to during a batch and not woken yet (see
    /// [`Pipes::begin_batch`]).
    unwoken: Cell<bool>,
}

impl Pipe {
    /// A new pipe with room for `cap` messages (0: no limit), and the
    /// connection task's end of it.
    pub(crate) fn new(id: PipeId, cap: usize, conflate: Option<Arc<AtomicU64>>) -> (Pipe, PipeRx) {
        let tx = Arc::new(ConcurrentQueue::unbounded());
        let ready = Arc::new(AtomicWaker::new());
        let rx = PipeRx {
            rx: tx.clone(),
            ready: ready.clone(),
        };
        let pipe = Pipe {
            id,
            channel: Channel::Queue {
                tx,
                ready,
                cap,
                conflate,
            },
            attached: false,
            routing_id: None,
            subs: PeerSubscriptions::default(),
            unwoken: Cell::new(false),
        };
        (pipe, rx)
    }

    /// An inproc pipe, sending through `link` (see [`crate::inproc`]).
    pub(crate) fn inproc(id: PipeId, link: Link) -> Pipe {
        Pipe {
            id,
            channel: Channel::Inproc(link),
            attached: false,
            routing_id: None,
            subs: PeerSubscriptions::default(),
            unwoken: Cell::new(false),
        }
    }

    /// Makes a connect's queue an inproc link, once its name is bound;
    /// the old queue closes (its reader drains it).
    pub(crate) fn become_inproc(&mut self, link: Link) {
        self.channel = Channel::Inproc(link);
    }

    /// The inproc link, when the pipe is one.
    pub(crate) fn link(&self) -> Option<&Link> {
        match &self.channel {
            Channel::Inproc(l) => Some(l),
            Channel::Queue { .. } => None,
        }
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        match &self.channel {
            Channel::Queue {
                tx, cap, conflate, ..
            } => queue_full(tx, *cap, conflate),
            Channel::Inproc(link) => link.is_full(),
        }
    }

    /// Queues a message, within the high-water mark. A conflating pipe
    /// replaces what is queued and is never full.
    #[cfg(test)]
    pub(crate) fn try_send(&self, out: Out) -> Result<(), Refused> {
        self.try_send_waking(out, true)
    }

    /// [`Pipe::try_send`], waking the connection task only when `wake`
    /// (the caller then owes it a [`Pipe::wake`]; an inproc link wakes
    /// its peer itself).
    #[inline]
    fn try_send_waking(&self, out: Out, wake: bool) -> Result<(), Refused> {
        let (tx, cap, conflate) = match &self.channel {
            Channel::Queue {
                tx, cap, conflate, ..
            } => (tx, *cap, conflate),
            Channel::Inproc(link) => return link.try_send(out),
        };
        if queue_full(tx, cap, conflate) {
            return Err(Refused::Full(out));
        }
        if let Some(given_up) = conflate {
            // Only messages travel on a conflating pipe (conflate is refused
            // for XSUB, whose pipes also carry subscriptions).
            let mut n = 0;
            while tx.pop().is_ok() {
                n += 1;
            }
            given_up.fetch_add(n, Ordering::Release);
        }
        self.push(out, wake)
    }

    /// Wakes the connection task (after quiet sends).
    fn wake(&self) {
        if let Channel::Queue { ready, .. } = &self.channel {
            ready.wake();
        }
    }

    /// Queues regardless of the high-water mark (subscriptions).
    #[inline]
    pub(crate) fn try_send_unbounded(&self, out: Out) -> Result<(), Refused> {
        self.push(out, true)
    }

    #[inline]
    fn push(&self, out: Out, wake: bool) -> Result<(), Refused> {
        match &self.channel {
            Channel::Queue { tx, ready, .. } => match tx.push(out) {
                Ok(()) => {
                    if wake {
                        ready.wake();
                    }
                    Ok(())
                }
                Err(e) => Err(Refused::Closed(e.into_inner())),
            },
            Channel::Inproc(link) => link.send(out),
        }
    }

    /// Queues a message, giving it back when the pipe refuses it.
    #[cfg(test)]
    pub(crate) fn try_send_msg(&self, msg: Message) -> Result<(), Message> {
        self.try_send(Out::Msg(msg))
            .map_err(|r| match r.into_inner() {
                Out::Msg(m) => m,
                // Only a message went in.
                _ => Message::new(),
            })
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // The task drains what is queued, then sees the queue closed. (An
        // inproc link's own drop takes its peer's pipe away.)
        if let Channel::Queue { tx, ready, .. } = self {
            tx.close();
            ready.wake();
        }
    }
}

/// The connection task's end of a pipe.
///
/// A pipe is a plain concurrent queue, and the task, its only reader, is
/// woken through one `AtomicWaker`. An async-channel, as before, notified
/// its events on every send and receive (each a full memory fence, a fifth
/// of the sending thread's time with 16-byte messages), and event-listener
/// wakes a waiter while holding its list lock: the woken I/O thread,
/// dropping its listener, then blocked on that lock (a futex wait and wake
/// per message in a request/reply exchange, `perf record -e
/// syscalls:sys_enter_futex`).
pub(crate) struct PipeRx {
    rx: Arc<ConcurrentQueue<Out>>,
    ready: Arc<AtomicWaker>,
}

impl Drop for PipeRx {
    fn drop(&mut self) {
        // Senders see the pipe closed (a routed message goes elsewhere).
        self.rx.close();
    }
}

impl PipeRx {
    pub(crate) fn try_recv(&self) -> Result<Out, PopError> {
        self.rx.pop()
    }

    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The next item; `None` once the pipe is closed and drained.
    pub(crate) async fn recv(&self) -> Option<Out> {
        std::future::poll_fn(|cx| {
            let mut registered = false;
            loop {
                match self.try_recv() {
                    Ok(out) => return Poll::Ready(Some(out)),
                    Err(PopError::Closed) => return Poll::Ready(None),
                    Err(PopError::Empty) if registered => return Poll::Pending,
                    // Register, then look again: a send in between wakes us.
                    Err(PopError::Empty) => {
                        self.ready.register(cx.waker());
                        registered = true;
                    }
                }
            }
        })
        .await
    }
}

/// A socket's pipes, found by id in constant time. As libzmq's `lb` and
/// `fq` do, removing a pipe moves the last one into its place.
#[derive(Default)]
pub(crate) struct Pipes {
    list: Vec<Pipe>,
    /// Each pipe's position in `list`.
    index: IdMap<usize>,
    /// Whether a batch is in progress (see [`Pipes::begin_batch`]).
    batching: Cell<bool>,
    /// In a batch: the pipes queued to and not woken yet. A wake is two
    /// atomic read-modify-writes even when the task is awake already (a
    /// fifth of a sending thread's time with 16-byte messages); a batch
    /// pays it once per pipe. The list keeps its allocation between
    /// batches.
    unwoken: RefCell<Vec<PipeId>>,
}

impl Pipes {
    /// Starts a batch: messages sent through [`Pipes::send_msg`] wake their
    /// connection task at [`Pipes::end_batch`], once per pipe.
    pub(crate) fn begin_batch(&self) {
        self.batching.set(true);
    }

    /// Ends a batch: wakes every pipe queued to during it.
    pub(crate) fn end_batch(&self) {
        self.batching.set(false);
        let mut ids = self.unwoken.borrow_mut();
        for id in ids.drain(..) {
            if let Some(p) = self.get(id)
                && p.unwoken.replace(false)
            {
                p.wake();
            }
        }
    }

    /// Queues a message on `pipe` (one of these pipes), giving it back when
    /// the pipe refuses it; in a batch, its wake waits for the batch's end.
    #[inline]
    pub(crate) fn send_msg(&self, pipe: &Pipe, msg: Message) -> Result<(), Message> {
        let quiet = self.batching.get() && matches!(pipe.channel, Channel::Queue { .. });
        let r = pipe
            .try_send_waking(Out::Msg(msg), !quiet)
            .map_err(|r| match r.into_inner() {
                Out::Msg(m) => m,
                // Only a message went in.
                _ => Message::new(),
            });
        if quiet && r.is_ok() && !pipe.unwoken.replace(true) {
            self.unwoken.borrow_mut().push(pipe.id);
        }
        r
    }

    pub(crate) fn push(&mut self, pipe: Pipe) {
        self.index.insert(pipe.id, self.list.len());
        self.list.push(pipe);
    }

    /// Takes a pipe out (dropping it closes its queue).
    pub(crate) fn remove(&mut self, id: PipeId) -> Option<Pipe> {
        let i = self.index.remove(&id)?;
        let pipe = self.list.swap_remove(i);
        if let Some(moved) = self.list.get(i) {
            self.index.insert(moved.id, i);
        }
        Some(pipe)
    }

    #[inline]
    pub(crate) fn get(&self, id: PipeId) -> Option<&Pipe> {
        self.list.get(*self.index.get(&id)?)
    }

    pub(crate) fn get_mut(&mut self, id: PipeId) -> Option<&mut Pipe> {
        self.list.get_mut(*self.index.get(&id)?)
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Pipe> {
        self.list.iter()
    }

    /// The pipe at a position (for round-robin).
    #[inline]
    pub(crate) fn at(&self, i: usize) -> &Pipe {
        &self.list[i]
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_wakes_its_reader_for_every_send_and_closes_after_draining() {
        let (p, rx) = Pipe::new(1, 0, None);
        let sender = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                assert!(
                    p.try_send(Out::Subscribe(Bytes::copy_from_slice(&i.to_be_bytes())))
                        .is_ok()
                );
                if i % 1000 == 0 {
                    std::thread::yield_now();
                }
            }
            // Dropped here: the queue closes once drained.
        });
        let got = futures_lite::future::block_on(async {
            let mut n = 0u32;
            while let Some(out) = rx.recv().await {
                let Out::Subscribe(b) = out else {
                    panic!("unexpected item")
                };
                assert_eq!(&b[..], &n.to_be_bytes());
                n += 1;
            }
            n
        });
        sender.join().expect("join");
        assert_eq!(got, 10_000);
    }

    #[test]
    fn a_full_pipe_refuses_messages_but_not_subscriptions() {
        let (p, rx) = Pipe::new(1, 2, None);
        assert!(p.try_send(Out::Cancel(Bytes::new())).is_ok());
        assert!(p.try_send(Out::Cancel(Bytes::new())).is_ok());
        assert!(matches!(
            p.try_send(Out::Cancel(Bytes::new())),
            Err(Refused::Full(_))
        ));
        // Subscriptions are never bounded.
        assert!(p.try_send_unbounded(Out::Cancel(Bytes::new())).is_ok());
        assert_eq!(rx.len(), 3);
    }

    #[test]
    fn a_conflating_pipe_keeps_only_the_newest_message() {
        let (p, rx) = Pipe::new(1, 2, Some(Arc::new(AtomicU64::new(0))));
        for i in 0..5u8 {
            p.try_send_msg(Message::from(vec![i])).expect("never full");
        }
        assert_eq!(rx.len(), 1);
        let Ok(Out::Msg(m)) = rx.try_recv() else {
            panic!("a message")
        };
        assert_eq!(m.frames()[0][..], [4]);
    }

    #[test]
    fn pipes_are_found_by_id_after_removals() {
        let mut pipes = Pipes::default();
        let mut rxs = Vec::new();
        for id in 1..=5 {
            let (p, rx) = Pipe::new(id, 0, None);
            pipes.push(p);
            rxs.push(rx);
        }
        assert_eq!(pipes.remove(2).map(|p| p.id), Some(2));
        assert!(pipes.remove(2).is_none());
        assert_eq!(pipes.remove(5).map(|p| p.id), Some(5));
        for id in [1, 3, 4] {
            assert_eq!(pipes.get(id).map(|p| p.id), Some(id));
        }
        assert!(pipes.get(2).is_none() && pipes.get(5).is_none());
        assert_eq!(pipes.len(), 3);
        pipes.clear();
        assert!(pipes.get(1).is_none());
    }

    /// A waker that counts its wakes.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_batch_wakes_each_pipe_once_at_its_end() {
        let mut pipes = Pipes::default();
        let mut rxs = Vec::new();
        for id in 1..=2 {
            let (p, rx) = Pipe::new(id, 0, None);
            pipes.push(p);
            rxs.push(rx);
        }
        let counters: Vec<_> = (0..2)
            .map(|_| Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0))))
            .collect();
        // Each reader waits (its waker registered).
        for (rx, c) in rxs.iter().zip(&counters) {
            let waker = std::task::Waker::from(c.clone());
            let mut cx = std::task::Context::from_waker(&waker);
            let mut fut = std::pin::pin!(rx.recv());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        let woken = |i: usize| counters[i].0.load(Ordering::SeqCst);
        pipes.begin_batch();
        for i in 0..5u8 {
            let p = pipes.at(usize::from(i % 2));
            pipes.send_msg(p, Message::from(vec![i])).expect("room");
        }
        assert_eq!((woken(0), woken(1)), (0, 0), "woken inside the batch");
        pipes.end_batch();
        assert_eq!((woken(0), woken(1)), (1, 1));
        assert_eq!((rxs[0].len(), rxs[1].len()), (3, 2));
        // Outside a batch every send wakes (the reader registered again).
        let waker = std::task::Waker::from(counters[0].clone());
        let mut cx = std::task::Context::from_waker(&waker);
        drain(&rxs[0]);
        let mut fut = std::pin::pin!(rxs[0].recv());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        pipes
            .send_msg(pipes.at(0), Message::from("x"))
            .expect("room");
        assert_eq!(woken(0), 2);
    }

    fn drain(rx: &PipeRx) {
        while rx.try_recv().is_ok() {}
    }

    #[test]
    fn a_closed_pipe_gives_the_message_back() {
        let (p, rx) = Pipe::new(1, 0, None);
        drop(rx);
        let back = p.try_send_msg(Message::from("x")).expect_err("closed");
        assert_eq!(back.frames()[0], "x");
    }
}

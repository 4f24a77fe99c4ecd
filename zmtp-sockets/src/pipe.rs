//! Pipes: the bounded queue between a socket and one peer's connection task,
//! and the table of a socket's pipes that the patterns route over.
//!
//! A pipe carries what the socket wants sent ([`Out`]); what the peer sends
//! comes back through the socket's single inbox, tagged with the pipe
//! ([`Inbound`]). As libzmq's `pipe_t`, a pipe also holds what the routing
//! patterns know of its peer: its routing id (ROUTER) and its subscriptions
//! (PUB, XPUB).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Waker};

use bytes::Bytes;
use zmtp_core::{Message, Metadata};

use crate::inproc::Link;
use crate::lock::{Guard, Lock};
use crate::ring::{RingRx, RingTx};
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
    /// A one-frame message small enough to travel inside the item: what
    /// PUB and XPUB queue for each subscriber instead of a clone of the
    /// body (see [`Small`]).
    Small(Small),
    Subscribe(Bytes),
    Cancel(Bytes),
}

impl Out {
    /// Whether it is a message (which the high-water mark counts), not a
    /// subscription.
    #[inline]
    pub(crate) fn is_message(&self) -> bool {
        matches!(self, Out::Msg(_) | Out::Small(_))
    }
}

/// The most bytes a [`Small`] holds: as many as fit in an [`Out`] that
/// holds a [`Message`] (with the length, 40 bytes, behind the tag and its
/// padding to 8), so that the inline copy makes no item larger.
pub(crate) const SMALL: usize = 39;

/// A copy of a one-frame message of at most [`SMALL`] bytes, held inline.
///
/// Publishing one message to many subscribers queues a copy on each
/// subscriber's pipe. A clone of the body's `Bytes` is an atomic increment
/// on the publishing thread and a decrement on the I/O thread when the
/// copy is written, the same counter for every subscriber: its cache line
/// crossed between the two threads at every message and subscriber (a
/// fifth of the samples with 8 subscribers). A copy of a 16-byte body into
/// the item is a few instructions on the publishing thread's own memory
/// (libzmq copies small bodies into its messages, for the same reason).
///
/// Aligned to 8 bytes, so that it is copied in whole words: at an odd
/// offset behind the item's 1-byte tag, its 39 bytes were copied in pieces
/// of 4, 8 and 16 bytes that overlapped, and each item built on the stack
/// was read back before its pieces reached the cache (no store
/// forwarding: 29 % of `RingTx::push`'s samples with 64 subscribers, and
/// the same on the I/O thread that takes the item).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Small {
    len: u8,
    bytes: [u8; SMALL],
}

impl Small {
    /// The copy, when `msg` is one frame of at most [`SMALL`] bytes.
    #[inline]
    pub(crate) fn of(msg: &Message) -> Option<Small> {
        match msg.frames() {
            [body] if body.len() <= SMALL => {
                let mut bytes = [0u8; SMALL];
                bytes[..body.len()].copy_from_slice(body);
                Some(Small {
                    len: body.len() as u8,
                    bytes,
                })
            }
            _ => None,
        }
    }

    /// The body.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The message again (an allocation: only where a copy comes back).
    pub(crate) fn to_message(self) -> Message {
        Message::from(Bytes::copy_from_slice(self.as_slice()))
    }
}

impl std::fmt::Debug for Small {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Small").field("len", &self.len).finish()
    }
}

/// A message from a peer, tagged with the pipe it came through.
///
/// The message first, the tag after it (`repr(C)` keeps that order): an
/// item is built on the stack and copied into its queue in 16-byte
/// pieces; with the 8-byte tag first, each of the three pieces straddled
/// two of the writes that built it and waited for them to reach the cache
/// (no store forwarding), and in this order only the last one does
/// (PUSH/PULL 16 B CPU per message 0.95x, 20 interleaved pairs).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Inbound {
    pub(crate) msg: Message,
    /// The pipe's id, with [`INPROC`] set for a message sent over inproc
    /// (taking it gives its sender credit, see [`crate::inproc::Credit`]):
    /// a flag of its own would make every queued item 8 bytes larger.
    tagged: PipeId,
}

/// Marks an inproc message's pipe id (ids are counters far below it).
const INPROC: PipeId = 1 << 63;

/// Marks an item that is no message: the properties of the peer whose
/// messages follow it on that pipe (see [`Inbound::peer`]).
const PEER: PipeId = 1 << 62;

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

    /// Not a message: the properties of the peer that sends on `pipe`
    /// from here on, which the inbox attaches to each of its messages as
    /// the application takes them. In line with the messages, so that a
    /// pipe whose connection came back gives each message the properties
    /// of the connection that brought it.
    pub(crate) fn peer(pipe: PipeId, properties: Arc<Metadata>) -> Inbound {
        let mut msg = Message::default();
        msg.set_properties(properties);
        Inbound {
            tagged: pipe | PEER,
            msg,
        }
    }

    /// The pipe it came through.
    #[inline]
    pub(crate) fn pipe(&self) -> PipeId {
        self.tagged & !(INPROC | PEER)
    }

    /// Whether it is a peer's properties rather than a message.
    #[inline]
    pub(crate) fn is_peer(&self) -> bool {
        self.tagged & PEER != 0
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

    /// The refused message, when a message was sent.
    pub(crate) fn into_msg(self) -> Message {
        match self.into_inner() {
            Out::Msg(m) => m,
            Out::Small(s) => s.to_message(),
            // Only a message went in.
            _ => Message::new(),
        }
    }
}

/// What a pipe to a connection task holds: its messages, and the task's
/// waker when it waits for them.
#[derive(Default)]
struct Queue {
    items: VecDeque<Out>,
    /// Either end is gone: sends fail; the task takes what is left, then
    /// sees the end.
    closed: bool,
    /// The connection task, when it found the queue empty and waits.
    waker: Option<Waker>,
    /// How many messages the queue holds before a send wakes the task (0
    /// and 1: the first; see [`PipeRx::poll_ready_when`]).
    wake_at: usize,
}

/// Most messages the connection task takes out of its queue at once while
/// its output holds bytes, and keeps in its hands when its output fills
/// (it takes the whole queue when its output is empty, and puts back what
/// it could not encode beyond this many): past the high-water mark, this
/// many more can be in the task's hands.
pub(crate) const TAKE_CHUNK: usize = 64;

/// Most messages a connection task takes at once when its output is
/// empty (see [`PipeRx::take_chunk`]): at least the default high-water
/// mark of 1,000, so that a queue within it is taken whole.
pub(crate) const TAKE_WHOLE: usize = 1024;

/// A pipe's queue, shared by the socket and the connection task.
struct Shared {
    q: Lock<Queue>,
    /// The queue refused a message for being full, and the task has not
    /// taken from it since: set and cleared under the lock, read without
    /// it. Round-robin skips such a pipe without taking its lock or
    /// moving the message in and back out (libzmq's `lb` likewise leaves
    /// out a pipe that hit its mark until the reader makes room), which a
    /// sender that outruns its peers otherwise paid at every message for
    /// every full pipe.
    full: AtomicBool,
    /// How many messages a staging sender (see [`Channel::Staged`]) must
    /// stage for the waiting connection task, beyond what its queue holds,
    /// before it hands them over and wakes it ([`NOT_WAITING`]: the task
    /// does not wait). Set with the task's waker and cleared as it takes,
    /// under the lock; read without it.
    waiting: AtomicUsize,
    /// The task's end is gone (set with `closed`, under the lock): a
    /// staging sender refuses without taking the lock.
    rx_gone: AtomicBool,
    /// Whether a staging pipe holds staged messages (see
    /// [`Channel::Staged`]), set and cleared under the socket's state lock:
    /// a hint, read without it, that spares a busy task that lock after it
    /// emptied the queue (a waiting task takes it regardless).
    staged: AtomicBool,
}

/// [`Shared::waiting`] when the task does not wait.
const NOT_WAITING: usize = usize::MAX;

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            q: Lock::default(),
            full: AtomicBool::new(false),
            waiting: AtomicUsize::new(NOT_WAITING),
            rx_gone: AtomicBool::new(false),
            staged: AtomicBool::new(false),
        }
    }
}

impl Shared {
    /// Takes the task's waker, if it waits (under the lock).
    fn take_waker(&self, g: &mut Queue) -> Option<Waker> {
        let w = g.waker.take();
        if w.is_some() {
            self.waiting.store(NOT_WAITING, Ordering::Relaxed);
        }
        w
    }

    /// The task took from the queue (call it under the lock): round-robin
    /// tries the pipe again. Cleared before the room notice that wakes a
    /// waiting sender, which then reads it.
    fn made_room(&self) {
        if self.full.load(Ordering::Relaxed) {
            self.full.store(false, Ordering::SeqCst);
        }
    }
}

fn lock(q: &Shared) -> Guard<'_, Queue> {
    q.q.lock()
}

/// Where a pipe's messages go.
enum Channel {
    /// To a connection task.
    Queue {
        /// A queue under a lock, shared with the connection task, which
        /// takes a chunk of messages or the whole queue under one lock
        /// (see [`PipeRx::take_chunk`]); the task's
        /// waker lives under the same lock, so that a send wakes the task
        /// only when it waits, with no other atomic operation. (A lock-free
        /// queue and an `AtomicWaker` cost six atomic read-modify-writes
        /// per message between them; this costs two per send and two per
        /// chunk taken.) The queue holds at most `cap` messages (0: no
        /// limit) and grows with its content: a bounded queue would
        /// allocate all `cap` slots up front. Only the routing code sends,
        /// under the socket's state lock.
        q: Arc<Shared>,
        cap: usize,
        /// Keep only the newest message (`conflate`): the count of
        /// messages given up that way, shared with the socket (they will
        /// never be written, so they must not stay "unsent").
        conflate: Option<Arc<AtomicU64>>,
    },
    /// To a connection task, through the same queue, with the messages
    /// sent while the task is busy staged on the socket's side first (the
    /// pipes of every socket but PUB, XPUB and a conflating one).
    ///
    /// A send holds the socket's state lock already; the queue's own lock
    /// on top was a second compare-and-swap per message. A staged send
    /// takes no lock of its own: it appends to `staged`, which the state
    /// lock guards, and marks the first one since the task last took
    /// ([`Shared::staged`]). A send to a task that waits (its waker stored,
    /// [`Shared::waiting`]) goes into the queue under its lock, with what
    /// was staged before it, and wakes the task as an unstaged send does.
    ///
    /// A busy task that finds the queue empty and the mark set takes what
    /// is staged in one piece ([`Pipe::unstage`], through
    /// `SocketShared::unstage`, under the state lock if it is free); a
    /// task that stores its waker looks at the mark again across a full
    /// barrier and moves what is staged into the queue
    /// (the same call), so that each staged message is either
    /// seen by the task or handed over by a send that sees it wait.
    /// Dropping the pipe moves what is staged into the queue, which the
    /// task drains as before.
    Staged {
        q: Arc<Shared>,
        cap: usize,
        staged: RefCell<Vec<Out>>,
        /// At least what the queue holds (its length at the last move or
        /// check; only the task takes from it meanwhile): with what is
        /// staged, what the high-water mark counts without the lock. When
        /// the two reach `cap`, a send takes the lock and counts exactly.
        in_queue: Cell<usize>,
    },
    /// To a connection task, through a queue without a lock on this side
    /// (publishing pipes, see [`crate::ring`]); at most `cap` messages (0:
    /// no limit).
    Ring { tx: RingTx, cap: usize },
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
        let q = Arc::new(Shared::default());
        let rx = PipeRx(Reading::Queue(q.clone()));
        (Pipe::with(id, Channel::Queue { q, cap, conflate }), rx)
    }

    /// A new pipe whose sends are staged on the socket's side while its
    /// task is busy (see [`Channel::Staged`]); its task takes them with
    /// [`Pipe::unstage`] (under the socket's
    /// state lock) when it finds the queue empty, and must look for them
    /// ([`PipeRx::may_have_staged_now`]) each time it stores its waker.
    pub(crate) fn staging(id: PipeId, cap: usize) -> (Pipe, PipeRx) {
        let q = Arc::new(Shared::default());
        let rx = PipeRx(Reading::Queue(q.clone()));
        let channel = Channel::Staged {
            q,
            cap,
            staged: RefCell::new(Vec::new()),
            in_queue: Cell::new(0),
        };
        (Pipe::with(id, channel), rx)
    }

    /// What is staged, for the connection task (under the socket's state
    /// lock); returns whether there was any. A task that found the queue
    /// and its hands (`into`) empty gets it whole when it is at most
    /// [`TAKE_WHOLE`] messages (no item moves, as [`PipeRx::take_chunk`]'s
    /// whole queue); otherwise, and for a task about to wait (no `into`),
    /// it is moved into the queue, to be taken from there.
    pub(crate) fn unstage(&self, into: Option<&mut VecDeque<Out>>) -> bool {
        let Channel::Staged {
            q,
            staged,
            in_queue,
            ..
        } = &self.channel
        else {
            return false;
        };
        let staged = &mut *staged.borrow_mut();
        if staged.is_empty() {
            return false;
        }
        let mut g = lock(q);
        q.staged.store(false, Ordering::Relaxed);
        match into {
            Some(into) if g.items.is_empty() && into.is_empty() && staged.len() <= TAKE_WHOLE => {
                swap_staged(staged, into);
                q.made_room();
            }
            _ => move_staged(staged, &mut g.items),
        }
        in_queue.set(g.items.len());
        true
    }

    /// A new pipe whose queue takes sends without a lock (see
    /// [`crate::ring`]): for the pipes a socket publishes on.
    pub(crate) fn publishing(id: PipeId, cap: usize) -> (Pipe, PipeRx) {
        let (tx, rx) = crate::ring::ring();
        (
            Pipe::with(id, Channel::Ring { tx, cap }),
            PipeRx(Reading::Ring(rx)),
        )
    }

    fn with(id: PipeId, channel: Channel) -> Pipe {
        Pipe {
            id,
            channel,
            attached: false,
            routing_id: None,
            subs: PeerSubscriptions::default(),
            unwoken: Cell::new(false),
        }
    }

    /// An inproc pipe, sending through `link` (see [`crate::inproc`]).
    pub(crate) fn inproc(id: PipeId, link: Link) -> Pipe {
        Pipe::with(id, Channel::Inproc(link))
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
            _ => None,
        }
    }

    /// Whether the queue refused a message for being full and its task
    /// has taken nothing since (a hint, read without the lock; an inproc
    /// link is never skipped on it).
    #[inline]
    pub(crate) fn refused_full(&self) -> bool {
        match &self.channel {
            Channel::Queue { q, .. } | Channel::Staged { q, .. } => q.full.load(Ordering::SeqCst),
            Channel::Ring { tx, .. } => tx.refused_full(),
            Channel::Inproc(_) => false,
        }
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        match &self.channel {
            Channel::Queue {
                q, cap, conflate, ..
            } => conflate.is_none() && *cap != 0 && lock(q).items.len() >= *cap,
            Channel::Staged { q, cap, staged, .. } => {
                *cap != 0 && lock(q).items.len() + staged.borrow().len() >= *cap
            }
            Channel::Ring { tx, cap } => tx.is_full(*cap),
            Channel::Inproc(link) => link.is_full(),
        }
    }

    /// Queues a message, within the high-water mark. A conflating pipe
    /// replaces what is queued and is never full.
    #[cfg(test)]
    pub(crate) fn try_send(&self, out: Out) -> Result<(), Refused> {
        self.try_send_made(|| out, true)
    }

    /// Queues the item that `make` makes, where it is queued (see
    /// [`RingTx::push_with`]), waking the connection task only when `wake`
    /// (the caller then owes it a [`Pipe::wake`]; an inproc link wakes
    /// its peer itself).
    #[inline(always)]
    fn try_send_made(&self, make: impl FnOnce() -> Out, wake: bool) -> Result<(), Refused> {
        match &self.channel {
            Channel::Queue { q, cap, conflate } => {
                Self::enqueue(q, make(), *cap, conflate.as_deref(), wake)
            }
            Channel::Staged {
                q,
                cap,
                staged,
                in_queue,
            } => Self::stage(q, make, *cap, staged, in_queue, wake),
            Channel::Ring { tx, cap } => tx.push_with(make, *cap, wake),
            Channel::Inproc(link) => link.try_send(make()),
        }
    }

    /// Adds to a connection's queue within `cap` (0: no limit); a
    /// conflating queue keeps only `out`.
    #[inline]
    fn enqueue(
        q: &Shared,
        out: Out,
        cap: usize,
        conflate: Option<&AtomicU64>,
        wake: bool,
    ) -> Result<(), Refused> {
        if let Some(given_up) = conflate {
            return Self::replace(q, out, given_up, wake);
        }
        let waker = {
            let mut g = lock(q);
            if g.closed {
                return Err(Refused::Closed(out));
            }
            if cap != 0 && g.items.len() >= cap {
                q.full.store(true, Ordering::Relaxed);
                return Err(Refused::Full(out));
            }
            g.items.push_back(out);
            let due = wake && g.items.len() >= g.wake_at;
            if due { q.take_waker(&mut g) } else { None }
        };
        // Outside the lock.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Adds to a staging pipe (see [`Channel::Staged`]) within `cap` (0:
    /// no limit); hands the staged messages over and wakes the task when it
    /// waits for as many (and `wake`).
    ///
    /// The item is made where it goes (see [`push_made`]). Not inlined:
    /// each socket type's send path in the patterns' `send` would hold a
    /// copy, and with as many pushes there the push was left out of line
    /// and read the item back from the stack. Called, it receives the
    /// message inside `make` as the caller built it.
    #[inline(never)]
    fn stage(
        q: &Shared,
        make: impl FnOnce() -> Out,
        cap: usize,
        staged: &RefCell<Vec<Out>>,
        in_queue: &Cell<usize>,
        wake: bool,
    ) -> Result<(), Refused> {
        if q.rx_gone.load(Ordering::Relaxed) {
            return Err(Refused::Closed(make()));
        }
        let staged = &mut *staged.borrow_mut();
        // A task that waits for this message gets it in its queue, with
        // what was staged before it, under the queue's lock, as from an
        // unstaged send. One that waits for more (corked: its I/O thread
        // sleeps at once) has them staged until the last of them, not
        // pushed one at a time under the lock (with busy polling off, 3.2
        // times the staging's samples, and the queue extended from the
        // staged vector at each).
        let waits_for = q.waiting.load(Ordering::Relaxed);
        let through = wake && waits_for != NOT_WAITING && staged.len() + 1 >= waits_for;
        let mut held = None;
        if through || (cap != 0 && in_queue.get() + staged.len() >= cap) {
            // Counted exactly, under the lock.
            let g = lock(q);
            in_queue.set(g.items.len());
            if g.closed {
                return Err(Refused::Closed(make()));
            }
            if cap != 0 && g.items.len() + staged.len() >= cap {
                q.full.store(true, Ordering::Relaxed);
                return Err(Refused::Full(make()));
            }
            held = through.then_some(g);
        }
        // With room known, the item is made straight into its slot (see
        // `push_made`), at this one place: with a second, the push was
        // left out of line again.
        push_made(staged, make);
        if let Some(g) = held {
            Self::hand_over(q, g, staged, in_queue, false);
            return Ok(());
        }
        if staged.len() == 1 {
            // The first since the task took: marked with a full barrier,
            // then the task's wait read again. A task that stored its
            // waker in between sees the mark after its own barrier
            // (`PipeRx::may_have_staged_now`) and takes what is staged
            // itself; otherwise this read sees it wait.
            q.staged.swap(true, Ordering::SeqCst);
        }
        if wake && staged.len() >= q.waiting.load(Ordering::SeqCst) {
            Self::hand_over(q, lock(q), staged, in_queue, true);
        }
        Ok(())
    }

    /// Moves what is staged into the queue, under its lock `g`, and wakes
    /// the waiting task: `always`, or once the queue holds what it waits
    /// for.
    fn hand_over(
        q: &Shared,
        mut g: Guard<'_, Queue>,
        staged: &mut Vec<Out>,
        in_queue: &Cell<usize>,
        always: bool,
    ) {
        move_staged(staged, &mut g.items);
        q.staged.store(false, Ordering::Relaxed);
        in_queue.set(g.items.len());
        let waker = if always || g.items.len() >= g.wake_at {
            q.take_waker(&mut g)
        } else {
            None
        };
        // Outside the lock.
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// [`Pipe::enqueue`] on a conflating queue: `out` replaces what is
    /// queued. Apart, so that the usual path builds no empty queue to hand
    /// out of the lock (its fields written one by one and read back in
    /// 16-byte pieces: no store forwarding).
    #[cold]
    fn replace(q: &Shared, out: Out, given_up: &AtomicU64, wake: bool) -> Result<(), Refused> {
        let (waker, replaced) = {
            let mut g = lock(q);
            if g.closed {
                return Err(Refused::Closed(out));
            }
            // Only messages travel on a conflating pipe (conflate is
            // refused for XSUB, whose pipes also carry subscriptions).
            given_up.fetch_add(g.items.len() as u64, Ordering::Release);
            let replaced = std::mem::take(&mut g.items);
            g.items.push_back(out);
            let due = wake && g.items.len() >= g.wake_at;
            (if due { q.take_waker(&mut g) } else { None }, replaced)
        };
        // Outside the lock: what was given up, and the wake.
        drop(replaced);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Wakes the connection task if it waits (after quiet sends, and
    /// after [`crate::ring::fence_for_wakes`]).
    fn wake(&self) {
        match &self.channel {
            Channel::Queue { q, .. } => {
                let waker = q.take_waker(&mut lock(q));
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Channel::Staged {
                q,
                staged,
                in_queue,
                ..
            } => {
                if q.waiting.load(Ordering::Relaxed) != NOT_WAITING {
                    Self::hand_over(q, lock(q), &mut staged.borrow_mut(), in_queue, true);
                }
            }
            Channel::Ring { tx, .. } => tx.wake_if_due(),
            Channel::Inproc(_) => {}
        }
    }

    /// Queues regardless of the high-water mark (subscriptions).
    #[inline]
    pub(crate) fn try_send_unbounded(&self, out: Out) -> Result<(), Refused> {
        match &self.channel {
            Channel::Queue { q, .. } => Self::enqueue(q, out, 0, None, true),
            Channel::Staged {
                q,
                staged,
                in_queue,
                ..
            } => Self::stage(q, || out, 0, staged, in_queue, true),
            Channel::Ring { tx, .. } => tx.push(out, 0, true),
            Channel::Inproc(link) => link.send(out),
        }
    }

    /// Queues a message, giving it back when the pipe refuses it.
    #[cfg(test)]
    pub(crate) fn try_send_msg(&self, msg: Message) -> Result<(), Message> {
        self.try_send(Out::Msg(msg)).map_err(Refused::into_msg)
    }
}

/// Adds the item `make` makes to the end of `items`, made in its slot
/// when there is room. Made first and moved in, the item was written on
/// the stack in 8-byte stores and read back in 16-byte loads that straddled
/// them, a wait for those stores to reach the cache at every send (no
/// store forwarding; 40 % of the send's samples in the pipe). A vector,
/// not a `VecDeque`: the latter's push stayed out of line, and read the
/// item from the caller's stack. (A session's decoded batch is pushed
/// here too.)
#[inline(always)]
pub(crate) fn push_made<T>(items: &mut Vec<T>, make: impl FnOnce() -> T) {
    if items.len() < items.capacity() {
        items.push(make());
    } else {
        grow_and_push(items, make());
    }
}

/// Adds to a full vector (it grows first; rarely: the vectors keep their
/// room from use to use).
#[cold]
#[inline(never)]
fn grow_and_push<T>(items: &mut Vec<T>, item: T) {
    items.push(item);
}

/// Appends what is staged to a queue (handing the staged buffer over
/// when the queue is empty: no item moves, and the queue's empty buffer
/// comes back for the next stage).
fn move_staged(staged: &mut Vec<Out>, items: &mut VecDeque<Out>) {
    if items.is_empty() {
        swap_staged(staged, items);
    } else {
        items.extend(staged.drain(..));
    }
}

/// Exchanges the staged buffer for an empty queue's: both conversions
/// keep their allocation and move no item (the queue is empty, and a
/// vector becomes a queue as it is).
fn swap_staged(staged: &mut Vec<Out>, empty: &mut VecDeque<Out>) {
    debug_assert!(empty.is_empty());
    let full = VecDeque::from(std::mem::take(staged));
    *staged = Vec::from(std::mem::replace(empty, full));
}

impl Drop for Channel {
    fn drop(&mut self) {
        // The task drains what is queued, then sees the queue closed. (An
        // inproc link's own drop takes its peer's pipe away.)
        let (q, staged) = match self {
            Channel::Queue { q, .. } => (q, None),
            Channel::Staged { q, staged, .. } => (q, Some(staged.get_mut())),
            _ => return,
        };
        let waker = {
            let mut g = lock(q);
            if let Some(staged) = staged {
                move_staged(staged, &mut g.items);
            }
            g.closed = true;
            q.take_waker(&mut g)
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What [`PipeRx::take_chunk`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Messages were taken; this many are still queued.
    Some(usize),
    /// Nothing is queued.
    Empty,
    /// Nothing is queued and the socket's end is gone.
    Closed,
}

/// The connection task's end of a pipe. The task takes messages in chunks
/// ([`PipeRx::take_chunk`]) into a buffer of its own, and waits with
/// [`PipeRx::poll_ready`].
pub(crate) struct PipeRx(Reading);

/// The queue a [`PipeRx`] reads.
enum Reading {
    /// Under a lock.
    Queue(Arc<Shared>),
    /// Without a lock on the sending side (see [`crate::ring`]).
    Ring(RingRx),
}

impl Drop for PipeRx {
    fn drop(&mut self) {
        // Senders see the pipe closed (a routed message goes elsewhere);
        // a ring's reading end says so itself.
        if let Reading::Queue(q) = &self.0 {
            let mut g = lock(q);
            g.closed = true;
            q.rx_gone.store(true, Ordering::Relaxed);
        }
    }
}

impl PipeRx {
    /// [`PipeRx::may_have_staged`] for a task that has just stored its
    /// waker (in [`PipeRx::poll_ready_when`]), after a full barrier: either
    /// this sees a send's mark, or that send sees the task wait (see
    /// [`Pipe::stage`]); no staged message is left without a wake.
    pub(crate) fn may_have_staged_now(&self) -> bool {
        match &self.0 {
            Reading::Queue(q) => {
                std::sync::atomic::fence(Ordering::SeqCst);
                q.staged.load(Ordering::Relaxed)
            }
            Reading::Ring(_) => false,
        }
    }

    /// Whether the socket's end may hold staged messages (a hint, read
    /// without the socket's state lock; [`Pipe::unstage`] knows).
    #[inline]
    pub(crate) fn may_have_staged(&self) -> bool {
        match &self.0 {
            Reading::Queue(q) => q.staged.load(Ordering::Relaxed),
            Reading::Ring(_) => false,
        }
    }

    /// Takes one message (the inproc hand-over of what a connect queued).
    pub(crate) fn try_recv(&self) -> Option<Out> {
        let q = match &self.0 {
            Reading::Queue(q) => q,
            Reading::Ring(r) => return r.try_recv(),
        };
        let mut g = lock(q);
        q.made_room();
        g.items.pop_front()
    }

    /// Moves up to [`TAKE_CHUNK`] messages to the back of `into`, or, when
    /// `whole` and `into` is empty, the whole queue if it holds at most
    /// [`TAKE_WHOLE`].
    ///
    /// The whole queue is for a task whose output is empty, which will
    /// most likely encode all of it at once: handing the queue over moves
    /// no item (a chunk is copied item by item under the lock, a few per
    /// cent of a busy I/O thread's time with small messages). A task that
    /// keeps more than a chunk in hand gives the rest back with
    /// [`PipeRx::unget_beyond`], so that the high-water mark still bounds
    /// what waits to be written; the bound on a whole take bounds that
    /// work too (a long queue behind a slow peer, with no high-water mark,
    /// would otherwise go back item by item at every turn).
    pub(crate) fn take_chunk(&self, into: &mut VecDeque<Out>, whole: bool) -> Taken {
        let q = match &self.0 {
            Reading::Queue(q) => q,
            Reading::Ring(r) => return r.take_chunk(into, whole),
        };
        let mut g = lock(q);
        // Taking, not waiting: a staging send need not hand over and wake
        // (the waker stays, for the next wait to reuse).
        q.waiting.store(NOT_WAITING, Ordering::Relaxed);
        let n = g.items.len();
        if n == 0 {
            return if g.closed {
                Taken::Closed
            } else {
                Taken::Empty
            };
        }
        q.made_room();
        if into.is_empty() && (n <= TAKE_CHUNK || (whole && n <= TAKE_WHOLE)) {
            // Hand the whole queue over without moving items; the sender
            // gets the task's empty buffer (and its room) back.
            std::mem::swap(&mut g.items, into);
            return Taken::Some(0);
        }
        let k = n.min(TAKE_CHUNK);
        into.extend(g.items.drain(..k));
        Taken::Some(n - k)
    }

    /// The ring, when this is a publisher's pipe (see
    /// [`crate::ring::RingRx::take_each`]).
    #[inline]
    pub(crate) fn ring(&self) -> Option<&crate::ring::RingRx> {
        match &self.0 {
            Reading::Ring(r) => Some(r),
            Reading::Queue(_) => None,
        }
    }

    /// Puts messages the task took but did not send back in front of the
    /// queue, in order (a connect's queue outlives its connection).
    pub(crate) fn unget(&self, taken: &mut VecDeque<Out>) {
        self.unget_beyond(taken, 0);
    }

    /// Puts all but the first `keep` of `taken` back in front of the
    /// queue, in order.
    pub(crate) fn unget_beyond(&self, taken: &mut VecDeque<Out>, keep: usize) {
        if taken.len() <= keep {
            return;
        }
        let q = match &self.0 {
            Reading::Queue(q) => q,
            Reading::Ring(r) => return r.unget_beyond(taken, keep),
        };
        let mut g = lock(q);
        for out in taken.drain(keep..).rev() {
            g.items.push_front(out);
        }
    }

    /// Messages queued.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Reading::Queue(q) => lock(q).items.len(),
            Reading::Ring(r) => r.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a message is queued or the socket's end is gone.
    #[cfg(test)]
    pub(crate) async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// `PipeRx::ready` (tests) as a poll.
    pub(crate) fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.poll_ready_when(cx, 1)
    }

    /// Ready once the queue holds `n` messages (or its end is gone); until
    /// then sends queue without waking the task. A task that asks for more
    /// than one must wake itself in time too (what the application queued
    /// last would otherwise wait for the next send).
    pub(crate) fn poll_ready_when(&self, cx: &mut std::task::Context<'_>, n: usize) -> Poll<()> {
        let q = match &self.0 {
            Reading::Queue(q) => q,
            Reading::Ring(r) => return r.poll_ready_when(cx, n),
        };
        let mut g = lock(q);
        g.wake_at = n;
        if g.items.len() >= n.max(1) || g.closed {
            return Poll::Ready(());
        }
        match &mut g.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        // What a staging sender must stage before it hands over: the
        // queue holds the rest, and the task does not take meanwhile.
        q.waiting.store(n.max(1) - g.items.len(), Ordering::Relaxed);
        Poll::Pending
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
    /// In [`Pipes::quietly`]: the pipes to wake are found by their mark,
    /// not listed.
    sweep: Cell<bool>,
}

impl Pipes {
    /// Runs `f`, whose sends wake each pipe at most once, after it: one
    /// fence for all of them (see [`crate::ring`]) instead of one per send.
    /// Inside a batch, the batch's end wakes them.
    #[inline]
    pub(crate) fn quietly<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.batching.get() {
            return f();
        }
        self.batching.set(true);
        self.sweep.set(true);
        let r = f();
        self.batching.set(false);
        self.sweep.set(false);
        crate::ring::fence_for_wakes();
        for p in &self.list {
            if p.unwoken.replace(false) {
                p.wake();
            }
        }
        r
    }

    /// Starts a batch: messages sent through [`Pipes::send_msg`] wake their
    /// connection task at [`Pipes::end_batch`], once per pipe.
    pub(crate) fn begin_batch(&self) {
        self.batching.set(true);
    }

    /// Ends a batch: wakes every pipe queued to during it.
    pub(crate) fn end_batch(&self) {
        self.batching.set(false);
        let mut ids = self.unwoken.borrow_mut();
        if !ids.is_empty() {
            crate::ring::fence_for_wakes();
        }
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
    #[inline(always)]
    pub(crate) fn send_msg(&self, pipe: &Pipe, msg: Message) -> Result<(), Message> {
        self.try_send(pipe, msg).map_err(Refused::into_msg)
    }

    /// Queues a copy of `msg` on `pipe`: inline when it is small and the
    /// pipe leads to a connection task (see [`Small`]), else a clone.
    /// `small` is [`Small::of`] `msg`, made once for all the pipes.
    #[inline]
    pub(crate) fn send_copy(&self, pipe: &Pipe, msg: &Message, small: Option<&Small>) -> bool {
        match small {
            Some(s) if pipe.link().is_none() => self.try_send_made(pipe, || Out::Small(*s)),
            _ => self.try_send_out(pipe, Out::Msg(msg.clone())),
        }
        .is_ok()
    }

    /// [`Pipes::send_msg`], saying why the pipe refused (full or closed).
    #[inline(always)]
    pub(crate) fn try_send(&self, pipe: &Pipe, msg: Message) -> Result<(), Refused> {
        // The item is made where it is queued, from the message (see
        // `Pipe::stage`).
        self.try_send_made(pipe, || Out::Msg(msg))
    }

    #[inline(always)]
    fn try_send_out(&self, pipe: &Pipe, out: Out) -> Result<(), Refused> {
        self.try_send_made(pipe, || out)
    }

    /// [`Pipes::try_send_out`] with the item made where it is queued (see
    /// [`RingTx::push_with`]).
    #[inline(always)]
    fn try_send_made(&self, pipe: &Pipe, make: impl FnOnce() -> Out) -> Result<(), Refused> {
        // Quiet: a batch's pipes under a lock and rings; inside
        // `quietly`, rings only (a locked queue's later wake would be a
        // second lock). An inproc link wakes its peer itself.
        let quiet = self.batching.get()
            && match pipe.channel {
                Channel::Ring { .. } => true,
                Channel::Queue { .. } | Channel::Staged { .. } => !self.sweep.get(),
                Channel::Inproc(_) => false,
            };
        let r = pipe.try_send_made(make, !quiet);
        if quiet && r.is_ok() && !pipe.unwoken.replace(true) && !self.sweep.get() {
            self.unwoken.borrow_mut().push(pipe.id);
        }
        r
    }

    pub(crate) fn push(&mut self, pipe: Pipe) {
        // Room for the one pipe most sockets ever have: a vector's first
        // growth makes room for four, 928 bytes where 232 do (idle
        // connections, each a socket of its own, took 0.7 KiB more each).
        if self.list.capacity() == 0 {
            self.list.reserve_exact(1);
        }
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
pub(crate) mod tests {
    use super::*;

    /// Makes a pipe to a connection task.
    type MakePipe = fn(PipeId, usize) -> (Pipe, PipeRx);

    /// Both kinds of queue to a connection task: under a lock, and a ring.
    const KINDS: [MakePipe; 2] = [|id, cap| Pipe::new(id, cap, None), Pipe::publishing];

    #[test]
    fn a_task_that_waits_for_n_messages_is_woken_by_the_nth() {
        for make in KINDS {
            let (pipe, rx) = make(1, 0);
            let count = Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(rx.poll_ready_when(&mut cx, 3).is_pending());
            pipe.try_send_msg(Message::from("a")).expect("room");
            pipe.try_send_msg(Message::from("b")).expect("room");
            assert_eq!(count.0.load(Ordering::SeqCst), 0);
            pipe.try_send_msg(Message::from("c")).expect("room");
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
            assert!(rx.poll_ready_when(&mut cx, 3).is_ready());
            // Back to the first message waking it.
            let mut taken = VecDeque::new();
            rx.take_chunk(&mut taken, true);
            assert!(rx.poll_ready(&mut cx).is_pending());
            pipe.try_send_msg(Message::from("d")).expect("room");
            assert_eq!(count.0.load(Ordering::SeqCst), 2);
        }
    }

    #[test]
    fn a_socket_with_one_pipe_keeps_room_for_one() {
        let mut pipes = Pipes::default();
        pipes.push(Pipe::new(1, 0, None).0);
        assert_eq!(pipes.list.capacity(), 1);
        // More pipes grow the list as a vector grows.
        for id in 2..=5 {
            pipes.push(Pipe::new(id, 0, None).0);
        }
        assert_eq!(pipes.len(), 5);
        assert!(pipes.list.capacity() >= 5);
        assert_eq!(pipes.get(4).map(|p| p.id), Some(4));
    }

    #[test]
    fn small_one_frame_messages_travel_inline_and_no_item_grows() {
        for len in [0, 1, 16, SMALL] {
            let body: Vec<u8> = (0..len as u8).collect();
            let msg = Message::from(body.clone());
            let s = Small::of(&msg).expect("small");
            assert_eq!(s.as_slice(), &body[..]);
            assert_eq!(s.to_message(), msg);
        }
        assert!(Small::of(&Message::from(vec![0u8; SMALL + 1])).is_none());
        assert!(Small::of(&Message::from_frames([Bytes::from("a"), Bytes::from("b")])).is_none());
        // The inline variant makes no queued item larger.
        #[allow(dead_code)]
        enum Without {
            Msg(Message),
            Subscribe(Bytes),
            Cancel(Bytes),
        }
        assert_eq!(std::mem::size_of::<Out>(), std::mem::size_of::<Without>());
        // Copied in whole words (see `Small`), up to SMALL bytes.
        assert_eq!(std::mem::align_of::<Small>(), 8);
        let longest = Message::from(vec![7u8; SMALL]);
        assert!(Small::of(&longest).is_some_and(|s| s.as_slice() == [7u8; SMALL]));
        assert!(Small::of(&Message::from(vec![7u8; SMALL + 1])).is_none());
        // A pipe to a connection task gets the copy inline, and a refused
        // one comes back as the message.
        let mut pipes = Pipes::default();
        let (p, rx) = Pipe::new(1, 1, None);
        pipes.push(p);
        let msg = Message::from("tick");
        let small = Small::of(&msg);
        let p = pipes.get(1).expect("pipe");
        assert!(pipes.send_copy(p, &msg, small.as_ref()));
        assert!(
            !pipes.send_copy(p, &msg, small.as_ref()),
            "at the high-water mark"
        );
        match rx.try_recv() {
            Some(Out::Small(s)) => assert_eq!(s.as_slice(), b"tick"),
            other => panic!("an inline copy, not {other:?}"),
        }
        assert_eq!(
            Refused::Full(Out::Small(Small::of(&msg).expect("small"))).into_msg(),
            msg
        );
    }

    #[test]
    fn pipe_wakes_its_reader_for_every_send_and_closes_after_draining() {
        for make in KINDS {
            let (p, rx) = make(1, 0);
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
                let mut buf = VecDeque::new();
                loop {
                    rx.ready().await;
                    match rx.take_chunk(&mut buf, false) {
                        Taken::Some(_) => assert!(buf.len() <= TAKE_CHUNK),
                        Taken::Empty => continue,
                        Taken::Closed => break,
                    }
                    for out in buf.drain(..) {
                        let Out::Subscribe(b) = out else {
                            panic!("unexpected item")
                        };
                        assert_eq!(&b[..], &n.to_be_bytes());
                        n += 1;
                    }
                }
                n
            });
            sender.join().expect("join");
            assert_eq!(got, 10_000);
        }
    }

    #[test]
    fn a_full_pipe_refuses_messages_but_not_subscriptions() {
        for make in KINDS {
            let (p, rx) = make(1, 2);
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
    }

    #[test]
    fn a_conflating_pipe_keeps_only_the_newest_message() {
        let (p, rx) = Pipe::new(1, 2, Some(Arc::new(AtomicU64::new(0))));
        for i in 0..5u8 {
            p.try_send_msg(Message::from(vec![i])).expect("never full");
        }
        assert_eq!(rx.len(), 1);
        let Some(Out::Msg(m)) = rx.try_recv() else {
            panic!("a message")
        };
        assert_eq!(m.frames()[0][..], [4]);
    }

    /// A table of `n` unbounded pipes (ids 1..=n) and their readers.
    fn table(n: PipeId) -> (Pipes, Vec<PipeRx>) {
        let mut pipes = Pipes::default();
        let mut rxs = Vec::new();
        for id in 1..=n {
            let (p, rx) = Pipe::new(id, 0, None);
            pipes.push(p);
            rxs.push(rx);
        }
        (pipes, rxs)
    }

    #[test]
    fn pipes_are_found_by_id_after_removals() {
        let (mut pipes, _rxs) = table(5);
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
    pub(crate) struct Counter(pub(crate) std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_batch_wakes_each_pipe_once_at_its_end() {
        let (pipes, rxs) = table(2);
        let counters: Vec<_> = (0..2)
            .map(|_| Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0))))
            .collect();
        // Each reader waits (its waker registered).
        for (rx, c) in rxs.iter().zip(&counters) {
            let waker = std::task::Waker::from(c.clone());
            let mut cx = std::task::Context::from_waker(&waker);
            let mut fut = std::pin::pin!(rx.ready());
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
        let mut fut = std::pin::pin!(rxs[0].ready());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        pipes
            .send_msg(pipes.at(0), Message::from("x"))
            .expect("room");
        assert_eq!(woken(0), 2);
    }

    fn drain(rx: &PipeRx) {
        while rx.try_recv().is_some() {}
    }

    /// The numbers the messages carry (each a big-endian `u32`).
    pub(crate) fn numbers<'a>(outs: impl IntoIterator<Item = &'a Out>) -> Vec<u32> {
        outs.into_iter()
            .map(|o| match o {
                Out::Msg(m) => u32::from_be_bytes(m.frames()[0][..].try_into().expect("4 bytes")),
                _ => panic!("a message"),
            })
            .collect()
    }

    #[test]
    fn the_task_takes_chunks_and_puts_back_what_it_did_not_send() {
        for make in KINDS {
            let (p, rx) = make(1, 0);
            let n = TAKE_CHUNK as u32 * 2 + 5;
            for i in 0..n {
                p.try_send_msg(Message::from(i.to_be_bytes().to_vec()))
                    .expect("room");
            }
            let mut taken = VecDeque::new();
            assert_eq!(
                rx.take_chunk(&mut taken, false),
                Taken::Some(n as usize - TAKE_CHUNK)
            );
            assert_eq!(taken.len(), TAKE_CHUNK);
            // The task sends one and loses its connection: the rest go back in
            // front, in order.
            taken.pop_front();
            rx.unget(&mut taken);
            assert!(taken.is_empty());
            let mut all = VecDeque::new();
            while let Taken::Some(_) = rx.take_chunk(&mut all, false) {}
            assert_eq!(numbers(&all), (1..n).collect::<Vec<_>>());
            // The socket's end gone: empty, then closed.
            drop(p);
            assert_eq!(rx.take_chunk(&mut all, false), Taken::Closed);
        }
    }

    #[test]
    fn a_task_with_an_empty_output_takes_the_whole_queue_and_gives_back_the_excess() {
        for make in KINDS {
            let (p, rx) = make(1, 0);
            let n = TAKE_CHUNK as u32 * 3;
            for i in 0..n {
                p.try_send_msg(Message::from(i.to_be_bytes().to_vec()))
                    .expect("room");
            }
            let mut taken = VecDeque::new();
            assert_eq!(rx.take_chunk(&mut taken, true), Taken::Some(0));
            assert_eq!((taken.len(), rx.len()), (n as usize, 0));
            // The sender has its room back at once, and queues behind.
            p.try_send_msg(Message::from(n.to_be_bytes().to_vec()))
                .expect("room");
            // The task encodes two and its output fills: beyond a chunk, the
            // rest goes back in front of what was queued since, in order.
            taken.pop_front();
            taken.pop_front();
            rx.unget_beyond(&mut taken, TAKE_CHUNK);
            assert_eq!(taken.len(), TAKE_CHUNK);
            assert_eq!(rx.len(), n as usize - 2 - TAKE_CHUNK + 1);
            let mut all: Vec<Out> = taken.drain(..).collect();
            let mut rest = VecDeque::new();
            while let Taken::Some(_) = rx.take_chunk(&mut rest, false) {}
            all.extend(rest);
            assert_eq!(numbers(&all), (2..=n).collect::<Vec<_>>());
            // A queue longer than a whole take is taken a chunk at a time.
            for i in 0..=TAKE_WHOLE as u32 {
                p.try_send_msg(Message::from(i.to_be_bytes().to_vec()))
                    .expect("no room limit reached");
            }
            let mut taken = VecDeque::new();
            assert_eq!(
                rx.take_chunk(&mut taken, true),
                Taken::Some(TAKE_WHOLE + 1 - TAKE_CHUNK)
            );
            assert_eq!(taken.len(), TAKE_CHUNK);
        }
    }

    #[test]
    fn a_pipe_whose_task_is_gone_refuses_sends() {
        for make in KINDS.into_iter().chain([Pipe::staging as MakePipe]) {
            let (p, rx) = make(1, 0);
            drop(rx);
            assert!(matches!(
                p.try_send(Out::Cancel(Bytes::new())),
                Err(Refused::Closed(_))
            ));
        }
    }

    #[test]
    fn a_closed_pipe_gives_the_message_back() {
        for make in KINDS.into_iter().chain([Pipe::staging as MakePipe]) {
            let (p, rx) = make(1, 0);
            drop(rx);
            let back = p.try_send_msg(Message::from("x")).expect_err("closed");
            assert_eq!(back.frames()[0], "x");
        }
    }

    /// A waker that counts its wakes, and the count.
    fn counting_waker() -> (Arc<Counter>, Waker) {
        let count = Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// Runs a reader's loop on this thread; a reader still waiting after
    /// two minutes waits for a wake that never came, and fails.
    pub(crate) fn woken_in_time<T>(reader: impl std::future::Future<Output = T>) -> T {
        let missed = async {
            async_io::Timer::after(std::time::Duration::from_secs(120)).await;
            panic!("the reader waits for a wake that never came")
        };
        futures_lite::future::block_on(futures_lite::future::or(reader, missed))
    }

    fn msg(i: u32) -> Message {
        Message::from(i.to_be_bytes().to_vec())
    }

    #[test]
    fn sends_to_a_busy_task_are_staged_until_it_takes_them_in_one_piece() {
        let (p, rx) = Pipe::staging(1, 0);
        assert!(!rx.may_have_staged());
        for i in 0..3 {
            p.try_send_msg(msg(i)).expect("room");
        }
        // Not in the queue: the task finds it empty, and the mark says
        // where they are.
        let mut hand = VecDeque::new();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Empty);
        assert!(rx.may_have_staged());
        assert!(p.unstage(Some(&mut hand)));
        assert_eq!(numbers(&hand), [0, 1, 2]);
        assert!(!rx.may_have_staged());
        assert!(!p.unstage(Some(&mut hand)));
        // With the task's hands full, what is staged goes to the queue.
        p.try_send_msg(msg(3)).expect("room");
        assert!(p.unstage(Some(&mut hand)));
        assert_eq!(hand.len(), 3);
        hand.clear();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        assert_eq!(numbers(&hand), [3]);
    }

    #[test]
    fn a_waiting_task_gets_the_send_in_its_queue_and_a_wake() {
        let (p, rx) = Pipe::staging(1, 0);
        let (count, waker) = counting_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        // Staged before the task waits: after its waker is stored, the
        // task sees the mark and moves them itself.
        p.try_send_msg(msg(0)).expect("room");
        assert!(rx.poll_ready(&mut cx).is_pending());
        assert!(rx.may_have_staged_now());
        assert!(p.unstage(None));
        assert!(rx.poll_ready(&mut cx).is_ready());
        // Sent while it waits: straight into the queue, with what was
        // staged before it, and woken.
        let mut hand = VecDeque::new();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        p.try_send_msg(msg(1)).expect("room");
        assert!(rx.poll_ready(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        p.try_send_msg(msg(2)).expect("room");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!rx.may_have_staged());
        hand.clear();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        assert_eq!(numbers(&hand), [1, 2]);
        // A task that waits for three: the first two are staged, without
        // the lock, and the third takes them all to the queue and wakes it.
        assert!(rx.poll_ready_when(&mut cx, 3).is_pending());
        for i in 3..5 {
            p.try_send_msg(msg(i)).expect("room");
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(rx.may_have_staged());
        assert!(rx.is_empty());
        p.try_send_msg(msg(5)).expect("room");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(!rx.may_have_staged());
        assert_eq!(rx.len(), 3);
        // Taking ends the wait: the next send is staged, with no wake.
        hand.clear();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        assert_eq!(numbers(&hand), [3, 4, 5]);
        p.try_send_msg(msg(6)).expect("room");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(rx.may_have_staged());
        // A batch's end hands over to a task that waits.
        let mut pipes = Pipes::default();
        pipes.push(p);
        assert!(rx.poll_ready(&mut cx).is_pending());
        pipes.begin_batch();
        pipes.send_msg(pipes.at(0), msg(7)).expect("room");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        pipes.end_batch();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
        hand.clear();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        assert_eq!(numbers(&hand), [6, 7]);
    }

    #[test]
    fn the_mark_counts_what_is_staged_and_what_is_queued() {
        let (p, rx) = Pipe::staging(1, 3);
        let (count, waker) = counting_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(rx.poll_ready(&mut cx).is_pending());
        p.try_send_msg(msg(0)).expect("room"); // queued, woken
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        p.try_send_msg(msg(1)).expect("room"); // staged
        p.try_send_msg(msg(2)).expect("room"); // staged
        assert!(p.is_full());
        assert!(matches!(
            p.try_send(Out::Msg(msg(3))),
            Err(Refused::Full(_))
        ));
        assert!(p.refused_full());
        // Subscriptions pass the mark, in order.
        p.try_send_unbounded(Out::Cancel(Bytes::new()))
            .expect("unbounded");
        let mut hand = VecDeque::new();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        assert_eq!(numbers(&hand), [0]);
        assert!(!p.refused_full());
        // Still full: what is staged counts (the subscription too, as in a
        // queue under a lock).
        assert!(matches!(
            p.try_send(Out::Msg(msg(3))),
            Err(Refused::Full(_))
        ));
        hand.clear();
        assert!(p.unstage(Some(&mut hand)));
        assert_eq!(numbers(hand.iter().take(2)), [1, 2]);
        assert!(matches!(hand[2], Out::Cancel(_)));
        // Room again, counted exactly once the estimate says full.
        for i in 3..6 {
            p.try_send_msg(msg(i)).expect("room");
        }
        assert!(matches!(
            p.try_send(Out::Msg(msg(6))),
            Err(Refused::Full(_))
        ));
    }

    #[test]
    fn a_dropped_staging_pipe_leaves_what_it_staged_to_its_task() {
        let (p, rx) = Pipe::staging(1, 0);
        p.try_send_msg(msg(0)).expect("room");
        p.try_send_msg(msg(1)).expect("room");
        drop(p);
        let mut hand = VecDeque::new();
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Some(0));
        assert_eq!(numbers(&hand), [0, 1]);
        assert_eq!(rx.take_chunk(&mut hand, true), Taken::Closed);
    }

    /// A sender under a lock (as the socket's state lock) and a task on
    /// another thread that takes as a connection task does: staged sends
    /// fetched under the lock when the queue is empty, and after the
    /// waker is stored. Every message arrives, in order, and no wake is
    /// lost (the reader would wait for ever).
    #[test]
    fn a_task_on_another_thread_gets_every_staged_message_in_order() {
        const N: u32 = 200_000;
        const CAP: usize = 64;
        let (p, rx) = Pipe::staging(1, CAP);
        let state = Arc::new(Lock::new(Some(p)));
        let reader = {
            let state = state.clone();
            std::thread::spawn(move || {
                let with = |f: &mut dyn FnMut(&Pipe) -> bool| {
                    let g = state.lock();
                    g.as_ref().is_some_and(f)
                };
                woken_in_time(async {
                    let mut next = 0u32;
                    let mut hand = VecDeque::new();
                    let mut turn = 0usize;
                    loop {
                        turn += 1;
                        let whole = turn.is_multiple_of(2);
                        match rx.take_chunk(&mut hand, whole) {
                            Taken::Some(_) => {}
                            // Every third turn the task goes straight to its
                            // wait, so that waits begin with sends staged.
                            Taken::Empty
                                if !turn.is_multiple_of(3)
                                    && rx.may_have_staged()
                                    && with(&mut |p| p.unstage(Some(&mut hand))) => {}
                            Taken::Empty => {
                                let n = 1 + turn % 3;
                                std::future::poll_fn(|cx| {
                                    if rx.poll_ready_when(cx, n).is_ready()
                                        || (rx.may_have_staged_now()
                                            && with(&mut |p| p.unstage(None))
                                            && rx.poll_ready_when(cx, n).is_ready())
                                    {
                                        Poll::Ready(())
                                    } else if n > 1 {
                                        // A corked task wakes itself in
                                        // time.
                                        cx.waker().wake_by_ref();
                                        Poll::Pending
                                    } else {
                                        Poll::Pending
                                    }
                                })
                                .await;
                            }
                            Taken::Closed => break,
                        }
                        while let Some(o) = hand.pop_front() {
                            assert_eq!(numbers([&o]), [next]);
                            next += 1;
                        }
                    }
                    next
                })
            })
        };
        let mut i = 0u32;
        let since = std::time::Instant::now();
        while i < N {
            let sent = {
                let g = state.lock();
                let p = g.as_ref().expect("the pipe");
                p.try_send_msg(msg(i)).is_ok()
            };
            if sent {
                i += 1;
            } else {
                assert!(
                    since.elapsed() < std::time::Duration::from_secs(120),
                    "the sender found the pipe full for good"
                );
                std::thread::yield_now();
            }
        }
        // The socket's end goes: what is staged moves to the queue.
        drop(state.lock().take());
        assert_eq!(reader.join().expect("reader"), N);
    }
}

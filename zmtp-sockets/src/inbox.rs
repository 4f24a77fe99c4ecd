//! The socket's incoming queue, filled in batches.
//!
//! Connection tasks push every message they decoded in one turn under one
//! lock and wake the application once. A batch joins the shared queue
//! whole, without its items moving (see [`Run`]), and the application swaps
//! the oldest batch into its own buffer when that runs dry, so most
//! receives touch no state the I/O threads touch. The bound (the receive
//! high-water mark) applies to each peer's messages in the shared queue,
//! as libzmq's applies to each peer's pipe; the application's buffer holds
//! at most one batch more, like libzmq's batched pipes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Waker};

use bytes::Bytes;
use concurrent_queue::ConcurrentQueue;
use event_listener::{Event, EventListener};
use zmtp_core::Metadata;

use crate::inproc::Credit;
use crate::lane::{Ended, LaneRx, LaneTx};
use crate::lock::Lock;
use crate::pipe::{IdMap, Inbound, PipeId};
use crate::waiters::{Entry, Waiters};

/// The inbox was closed with the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Most lanes an inbox holds (see [`crate::lane`]): each receive looks at
/// every lane in turn, so a socket with a thousand inproc peers would look
/// at a thousand lanes per message (idle ones included: 1,000 quiet peers
/// and one sending took the rate from 3M to 0.23M messages per second).
/// Pipes beyond it send through the inbox's lock-free queue.
const MAX_LANES: usize = 8;

/// How many departed pipes keep their label and properties for their
/// messages still queued.
const DEPARTED_PEERS: usize = 1024;

/// What the receiving side puts on each message from a pipe: here, under
/// the lock a receive holds anyway, so that it takes no other lock and
/// the reference counts it takes stay on the receiving thread (counted on
/// the I/O thread and released here, each would move a cache line between
/// the two at every message).
#[derive(Default, Clone)]
struct Peer {
    /// The frame put in front of each message, when the inbox labels
    /// messages (a ROUTER's routing ids).
    label: Option<Bytes>,
    /// The peer's properties, from the pipe's last [`Inbound::peer`] item.
    properties: Option<Arc<Metadata>>,
}

/// The application's side: its buffer, the credit of each inproc pipe it
/// takes messages from, and each pipe's peer.
#[derive(Default)]
struct Local {
    buf: VecDeque<Inbound>,
    credits: IdMap<Arc<Credit>>,
    /// Each admitted pipe's peer.
    peers: IdMap<Peer>,
    /// The pipe of the last message taken and its peer as found in
    /// `peers`: messages come in runs from one pipe, so a run looks its
    /// peer up once. Cleared whenever `peers` changes.
    recent: Option<(PipeId, Option<Peer>)>,
    /// Pipes gone, oldest first: their peers stay for the messages they
    /// sent before they left, up to [`DEPARTED_PEERS`] pipes.
    departed: VecDeque<PipeId>,
    /// Whose turn it is when the buffer runs dry: the inproc queue's
    /// (else the shared queue's), so that neither source starves the other.
    inproc_turn: bool,
    /// The lanes of the inproc pipes sending here (see [`crate::lane`]),
    /// taken from in turn, one message each.
    lanes: Vec<LaneRx>,
    /// The lane whose turn is next.
    lane_turn: usize,
    /// Whether the notice queue's turn comes before the lanes' when the
    /// buffer runs dry next (they alternate, so that neither starves the
    /// other).
    queue_turn: bool,
}

#[derive(Default)]
struct Shared {
    /// The queue: the batches pushed, in order, each taken by the
    /// application as a whole (see [`Run`]).
    runs: VecDeque<Run>,
    /// Items in `runs`.
    len: usize,
    /// How many of those items are a peer's properties, which take no
    /// room: with a bound of 1, a connection's first message waited behind
    /// its properties for a receive that a poller never made, since
    /// properties alone are nothing to receive. (A conflating inbox has no
    /// bound and never counts them.)
    peers: usize,
    /// Emptied buffers the application gave back, with their room, for
    /// the connection tasks whose batches joined `runs` (at most
    /// [`SPARES`]).
    spares: Vec<VecDeque<Inbound>>,
    /// Each pipe's messages in `runs`, when the inbox is bounded (pipes
    /// with none queued and none waiting have no entry).
    shares: IdMap<Share>,
    closed: bool,
}

/// One pipe's part of a bounded queue.
#[derive(Default)]
struct Share {
    /// Its messages in the queue.
    queued: usize,
    /// A push found no room for all it had: none of its messages is
    /// queued until its share falls to half the bound (libzmq's low-water
    /// mark), when its task is woken. Woken at every run the application
    /// took, a task with busy polling off was woken (an eventfd write and
    /// a context switch) to push a run's worth and wait again: PUSH/PULL
    /// 16 B with the threads apart spent 4 % more CPU per message.
    full: bool,
    /// The connection task waiting for room (see [`Inbox::poll_room`]):
    /// only its own, so that room made for one of a thousand full peers
    /// wakes one task, not a thousand.
    waker: Option<Waker>,
}

/// Whose messages a run holds, for the shares they take (only pushes
/// within the bound count).
#[derive(Default)]
enum Counted {
    #[default]
    None,
    /// The usual case: a whole batch, from one pipe.
    One(PipeId, usize),
    /// Small batches of several pipes copied onto one run.
    Many(Vec<(PipeId, usize)>),
}

impl Counted {
    fn add(&mut self, pipe: PipeId, n: usize) {
        if n == 0 {
            return;
        }
        match self {
            Counted::None => *self = Counted::One(pipe, n),
            Counted::One(p, k) if *p == pipe => *k += n,
            Counted::One(p, k) => *self = Counted::Many(vec![(*p, *k), (pipe, n)]),
            Counted::Many(v) => match v.last_mut() {
                Some((p, k)) if *p == pipe => *k += n,
                _ => v.push((pipe, n)),
            },
        }
    }

    fn each(&self, mut f: impl FnMut(PipeId, usize)) {
        match self {
            Counted::None => {}
            Counted::One(p, k) => f(*p, *k),
            Counted::Many(v) => v.iter().for_each(|(p, k)| f(*p, *k)),
        }
    }
}

/// A batch in the shared queue, and how many of its items are a peer's
/// properties.
///
/// A connection task's whole batch joins the queue as it is, and the
/// application swaps it in for its emptied buffer, which goes back to the
/// tasks ([`Shared::spares`]). The queue was one buffer that each batch
/// was copied onto the end of whenever the application had not taken the
/// last: with many connections (PUB -> 64 SUB), that copy and the growth
/// of the buffer it filled (a new allocation, its pages faulted in, the
/// items copied again) were the receiving I/O thread's largest items
/// after decoding, and the buffer kept its largest size for good.
struct Run {
    items: VecDeque<Inbound>,
    peers: usize,
    counted: Counted,
}

/// What [`Shared::take_run`] did besides taking the run.
struct Taken {
    /// The tasks whose full share fell to half the bound or below, to be
    /// woken out of the lock.
    woken: Vec<Waker>,
    /// The emptied buffer when the spares are all kept, to be freed out of
    /// the lock that the connection tasks push under.
    surplus: Option<VecDeque<Inbound>>,
}

/// Batches of fewer items are copied onto the last run (a connection
/// sending now and then hands over one message at a time: a run each would
/// be a buffer each).
const RUN_MIN: usize = 64;

/// Most emptied buffers kept for the connection tasks.
const SPARES: usize = 4;

impl Shared {
    /// Moves the first `n` items of `batch` (of which `peers` are a peer's
    /// properties) to the end of the queue: the whole batch as a run of
    /// its own when it is all of it and large (or the queue is empty),
    /// else copied onto the last run that has room for it. `counted`: the
    /// pipe whose share the messages among them take, and how many.
    fn append(
        &mut self,
        batch: &mut VecDeque<Inbound>,
        n: usize,
        peers: usize,
        counted: Option<(PipeId, usize)>,
    ) {
        self.len += n;
        self.peers += peers;
        let mut counted_here = Counted::None;
        if let Some((pipe, m)) = counted {
            counted_here.add(pipe, m);
        }
        if n == batch.len() && (n >= RUN_MIN || self.runs.is_empty()) {
            let spare = self.spares.pop().unwrap_or_default();
            let items = std::mem::replace(batch, spare);
            self.runs.push_back(Run {
                items,
                peers,
                counted: counted_here,
            });
            return;
        }
        if let Some(last) = self.runs.back_mut()
            && last.items.capacity() - last.items.len() >= n
        {
            last.items.extend(batch.drain(..n));
            last.peers += peers;
            if let Some((pipe, m)) = counted {
                last.counted.add(pipe, m);
            }
            return;
        }
        let mut items = self.spares.pop().unwrap_or_default();
        items.extend(batch.drain(..n));
        self.runs.push_back(Run {
            items,
            peers,
            counted: counted_here,
        });
    }

    /// Swaps the first run into `buf` (emptied first), whose buffer is
    /// kept as a spare; `None` when the queue is empty. `capacity` is the
    /// bound.
    fn take_run(&mut self, buf: &mut VecDeque<Inbound>, capacity: usize) -> Option<Taken> {
        let run = self.runs.pop_front()?;
        self.len -= run.items.len();
        self.peers -= run.peers;
        buf.clear();
        let emptied = std::mem::replace(buf, run.items);
        let surplus = if self.spares.len() < SPARES && emptied.capacity() > 0 {
            self.spares.push(emptied);
            None
        } else {
            Some(emptied)
        };
        let mut woken = Vec::new();
        run.counted.each(|pipe, n| {
            let Some(share) = self.shares.get_mut(&pipe) else {
                return;
            };
            share.queued = share.queued.saturating_sub(n);
            if share.full && share.queued <= capacity / 2 {
                share.full = false;
                woken.extend(share.waker.take());
            }
            if share.queued == 0 && !share.full {
                self.shares.remove(&pipe);
            }
        });
        Some(Taken { woken, surplus })
    }

    /// A conflating queue's push: `newest` (if any) replaces what is
    /// queued, in the buffer of the run it replaces. The other runs go to
    /// the caller, to be dropped out of the lock.
    fn replace_all(&mut self, newest: Option<Inbound>) -> VecDeque<Run> {
        let mut replaced = std::mem::take(&mut self.runs);
        let mut items = match replaced.pop_back() {
            Some(run) => run.items,
            None => self.spares.pop().unwrap_or_default(),
        };
        items.clear();
        items.extend(newest);
        self.len = items.len();
        self.peers = 0;
        if !items.is_empty() {
            self.runs.push_back(Run {
                items,
                peers: 0,
                counted: Counted::None,
            });
        }
        replaced
    }

    /// Whether no message is queued (a peer's properties are no message).
    fn holds_no_message(&self) -> bool {
        self.len == self.peers
    }
}

pub(crate) struct Inbox {
    /// Most messages of each pipe in the shared queue; 0 for no bound.
    capacity: usize,
    /// Keep only the newest message (`conflate`).
    conflate: bool,
    /// Put each pipe's label in front of its messages; a message from a
    /// pipe without one is dropped (a ROUTER's peer has no routing id
    /// until its handshake completes).
    labelled: bool,
    /// Filled by the connection tasks and inproc senders.
    shared: Padded<Lock<Shared>>,
    /// Emptied by the application: on a cache line of its own, or every
    /// push would move the line the application's lock lives on.
    local: Padded<Lock<Local>>,
    /// The socket's own notices for inproc pipes (XPUB's cancels for one
    /// that left), and the messages of inproc pipes without a lane (when
    /// the inbox conflates, or beyond [`MAX_LANES`]): a lock-free queue.
    /// Inproc messages otherwise take their pipe's lane ([`Local::lanes`]);
    /// a notice here is taken only when no lane holds an item, so that a
    /// pipe's notices never overtake what it sent before it left.
    /// Made at the first such item: the queue takes a few hundred
    /// bytes (two cache-padded positions), which a socket without inproc
    /// peers, one of thousands of tcp connections say, should not pay.
    inproc: OnceLock<Box<ConcurrentQueue<Inbound>>>,
    /// Closed with the socket (also under `shared`'s lock): lanes refuse
    /// messages.
    closed: std::sync::atomic::AtomicBool,
    /// Receivers waiting in [`Inbox::pop`].
    waiters: Waiters,
    /// Messages arrived, for the [`crate::Poller`]s counted in `pollers`
    /// (an event's notification is a fence and more, paid at every message
    /// otherwise).
    readable: Event,
    pollers: AtomicUsize,
}

/// A value on a cache line of its own (64 bytes: 128, a pair of lines for
/// the adjacent-line prefetcher, measured no faster and cost about 0.3 KiB
/// per idle connection in `zmtp bench --pattern idle --count 1000`, where
/// each connection has a socket of its own).
#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A poller counted by [`Inbox::listen_readable`].
pub(crate) struct PollerGuard<'a>(&'a Inbox);

impl Drop for PollerGuard<'_> {
    fn drop(&mut self) {
        self.0.pollers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inbox {
    pub(crate) fn new(capacity: usize, conflate: bool, labelled: bool) -> Inbox {
        Inbox {
            capacity,
            conflate,
            labelled,
            shared: Padded::default(),
            local: Padded::default(),
            inproc: OnceLock::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            waiters: Waiters::default(),
            readable: Event::new(),
            pollers: AtomicUsize::new(0),
        }
    }

    /// Moves as many messages from the front of `batch` as fit. Returns
    /// whether the batch was emptied.
    pub(crate) fn push(&self, batch: &mut VecDeque<Inbound>) -> Result<bool, Closed> {
        self.push_within(batch, self.capacity)
    }

    /// Moves the whole batch, regardless of the bound (messages the socket
    /// itself makes, such as XPUB's cancels for a peer that left).
    pub(crate) fn push_unbounded(&self, batch: &mut VecDeque<Inbound>) -> Result<bool, Closed> {
        self.push_within(batch, 0)
    }

    fn push_within(&self, batch: &mut VecDeque<Inbound>, capacity: usize) -> Result<bool, Closed> {
        if batch.is_empty() {
            return Ok(true);
        }
        let moved = {
            let mut s = self.shared.lock();
            if s.closed {
                batch.clear();
                return Err(Closed);
            }
            if self.conflate {
                // Only the newest message is kept; `try_pop` prefers it to
                // what the application's buffer holds.
                let newest = batch.pop_back();
                batch.clear();
                let replaced = s.replace_all(newest);
                drop(s);
                drop(replaced);
                self.notify_readable();
                return Ok(true);
            }
            // A peer's properties come first in a session's batch, then
            // its messages, all of one pipe.
            let peers = batch.iter().take_while(|i| i.is_peer()).count();
            let messages = batch.len() - peers;
            let pipe = batch.get(peers).map(Inbound::pipe);
            let (m, counted) = match pipe {
                Some(pipe) if capacity != 0 => {
                    debug_assert!(batch.iter().all(|i| i.pipe() == pipe));
                    let share = s.shares.entry(pipe).or_default();
                    let room = if share.full {
                        0
                    } else {
                        capacity.saturating_sub(share.queued)
                    };
                    let m = room.min(messages);
                    share.queued += m;
                    share.full |= m < messages;
                    (m, Some((pipe, m)))
                }
                _ => (messages, None),
            };
            s.append(batch, peers + m, peers, counted);
            peers + m
        };
        if moved > 0 {
            self.notify_readable();
        }
        Ok(batch.is_empty())
    }

    /// Adds one item regardless of the bound (an inproc message, whose
    /// sender's link bounds it; an XPUB notice). The item comes back when
    /// the inbox is closed.
    pub(crate) fn push_one(&self, item: Inbound) -> Result<(), Inbound> {
        if !self.conflate {
            let queue = self.inproc.get_or_init(|| {
                let q = Box::new(ConcurrentQueue::unbounded());
                if self.shared.lock().closed {
                    q.close();
                }
                q
            });
            queue.push(item).map_err(|e| e.into_inner())?;
            self.notify_readable();
            return Ok(());
        }
        let replaced = {
            let mut s = self.shared.lock();
            if s.closed {
                return Err(item);
            }
            // Conflating: only the newest is kept (what is replaced is
            // dropped once the lock is released).
            s.replace_all(Some(item))
        };
        drop(replaced);
        self.notify_readable();
        Ok(())
    }

    /// Wakes receivers and pollers: after making messages receivable.
    fn notify_readable(&self) {
        // `wake_all` begins with a SeqCst fence: a poller that counted
        // itself after it is sure to see the messages when it looks.
        self.waiters.wake_all();
        if self.pollers.load(Ordering::SeqCst) > 0 {
            self.readable.notify(usize::MAX);
        }
    }

    /// A poller's wait for messages: counted while the returned guard
    /// lives. Look at the inbox after listening.
    pub(crate) fn listen_readable(&self) -> (PollerGuard<'_>, EventListener) {
        self.pollers.fetch_add(1, Ordering::SeqCst);
        (PollerGuard(self), self.readable.listen())
    }

    /// Ready once `pipe` may push again after a push that did not fit
    /// all its batch (its share fell to half the bound), or the inbox is
    /// closed; until then the task's waker is kept, to be woken then.
    pub(crate) fn poll_room(&self, pipe: PipeId, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut s = self.shared.lock();
        if s.closed {
            return Poll::Ready(());
        }
        match s.shares.get_mut(&pipe) {
            Some(share) if share.full => {
                match &mut share.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Registers the credit of an inproc pipe's incoming direction, before
    /// its first message, and its lane (none when the inbox conflates, or
    /// holds [`MAX_LANES`] lanes: then its messages go through
    /// [`Inbox::push_one`]).
    pub(crate) fn add_credit(&self, pipe: PipeId, credit: Arc<Credit>) -> Option<LaneTx> {
        let local = &mut *self.local.lock();
        local.credits.insert(pipe, credit);
        if self.conflate || local.lanes.len() >= MAX_LANES {
            return None;
        }
        let (tx, rx) = crate::lane::lane();
        local.lanes.push(rx);
        Some(tx)
    }

    /// Adds one item to an inproc pipe's lane (from
    /// [`Inbox::add_credit`]); the item comes back when the inbox is
    /// closed.
    #[inline]
    pub(crate) fn push_lane(&self, lane: &LaneTx, item: Inbound) -> Result<(), Inbound> {
        if self.closed.load(Ordering::Acquire) {
            return Err(item);
        }
        lane.push(item);
        self.notify_readable();
        Ok(())
    }

    /// A peer was admitted on `pipe`: its messages are received from now
    /// on, with `label` in front of each when the inbox labels messages (a
    /// ROUTER's peer's routing id, when its handshake completes).
    pub(crate) fn attach(&self, pipe: PipeId, label: Option<Bytes>) {
        let local = &mut *self.local.lock();
        // A connect's pipe that left and came back keeps its entry.
        local.departed.retain(|p| *p != pipe);
        local.peers.entry(pipe).or_default().label = label;
        local.recent = None;
    }

    /// `pipe` is gone: its label and properties stay for what it sent
    /// until [`DEPARTED_PEERS`] more pipes have gone.
    pub(crate) fn departed(&self, pipe: PipeId) {
        let local = &mut *self.local.lock();
        if !local.peers.contains_key(&pipe) || local.departed.contains(&pipe) {
            return;
        }
        local.departed.push_back(pipe);
        if local.departed.len() > DEPARTED_PEERS
            && let Some(old) = local.departed.pop_front()
        {
            local.peers.remove(&old);
            local.recent = None;
        }
    }

    /// Forgets a pipe's credit (the pipe is gone).
    pub(crate) fn remove_credit(&self, pipe: PipeId) {
        let mut local = self.local.lock();
        if !local.credits.is_empty() {
            local.credits.remove(&pipe);
        }
    }

    /// Takes the next message without waiting. An inproc message gives its
    /// sender credit as it is taken (or is skipped, when a newer one of a
    /// conflating sender follows).
    #[inline(always)]
    pub(crate) fn try_pop(&self) -> Result<Option<Inbound>, Closed> {
        self.pop_locked(&mut self.local.lock())
    }

    /// Takes up to `max` messages without waiting, under one lock, handing
    /// each to `f` (which runs under the inbox's lock: it must take no
    /// other). Returns how many were taken; [`Closed`] only when none was.
    pub(crate) fn try_pop_many(
        &self,
        max: usize,
        mut f: impl FnMut(Inbound),
    ) -> Result<usize, Closed> {
        let local = &mut *self.local.lock();
        let mut n = 0;
        while n < max {
            match self.pop_locked(local) {
                Ok(Some(item)) => f(item),
                Ok(None) => break,
                Err(Closed) if n == 0 => return Err(Closed),
                Err(Closed) => break,
            }
            n += 1;
        }
        Ok(n)
    }

    #[inline]
    fn pop_locked(&self, local: &mut Local) -> Result<Option<Inbound>, Closed> {
        loop {
            let Some(mut item) = self.next(local)? else {
                return Ok(None);
            };
            if item.is_peer() {
                // Kept only for a pipe still known (one long gone has no
                // entry to fill).
                if let Some(peer) = local.peers.get_mut(&item.pipe()) {
                    peer.properties = item.msg.properties_arc().cloned();
                    local.recent = None;
                }
                continue;
            }
            if item.is_inproc()
                && let Some(c) = local.credits.get(&item.pipe())
                && !c.take()
            {
                continue;
            }
            let pipe = item.pipe();
            if !matches!(&local.recent, Some((p, _)) if *p == pipe) {
                local.recent = Some((pipe, local.peers.get(&pipe).cloned()));
            }
            let peer = local.recent.as_ref().and_then(|(_, p)| p.as_ref());
            if self.labelled {
                let Some(label) = peer.and_then(|p| p.label.as_ref()) else {
                    continue;
                };
                item.msg.push_front(label.clone());
            }
            if let Some(props) = peer.and_then(|p| p.properties.as_ref()) {
                item.msg.set_properties(props.clone());
            }
            return Ok(Some(item));
        }
    }

    #[inline]
    fn next(&self, local: &mut Local) -> Result<Option<Inbound>, Closed> {
        if self.conflate {
            // The guard goes at the end of the statement, before what was
            // taken is dropped.
            let _taken = self.shared.lock().take_run(&mut local.buf, 0);
        }
        if let Some(item) = local.buf.pop_front() {
            return Ok(Some(item));
        }
        local.inproc_turn = !local.inproc_turn;
        if local.inproc_turn
            && let Some(item) = self.inproc_next(local)
        {
            return Ok(Some(item));
        }
        let taken = {
            let mut s = self.shared.lock();
            s.take_run(&mut local.buf, self.capacity).ok_or(s.closed)
        };
        match taken {
            Ok(Taken { woken, surplus }) => {
                drop(surplus);
                woken.into_iter().for_each(Waker::wake);
                Ok(local.buf.pop_front())
            }
            Err(closed) => match self.inproc_next(local) {
                Some(item) => Ok(Some(item)),
                None if closed => Err(Closed),
                None => Ok(None),
            },
        }
    }

    /// Takes the next message, waiting for one.
    pub(crate) async fn pop(&self) -> Result<Inbound, Closed> {
        let mut entry = Entry::new(&self.waiters);
        std::future::poll_fn(|cx| {
            if let Some(item) = self.try_pop()? {
                return Poll::Ready(Ok(item));
            }
            // Register, then look again: a push in between wakes us.
            entry.register(cx.waker());
            match self.try_pop()? {
                Some(item) => Poll::Ready(Ok(item)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// The next inproc item: from the lanes, each in turn, and from the
    /// queue (the socket's own notices, and the messages of pipes without
    /// a lane), the two taking turns.
    #[inline]
    fn inproc_next(&self, local: &mut Local) -> Option<Inbound> {
        local.queue_turn = !local.queue_turn;
        if local.queue_turn
            && let Some(item) = self.queue_pop(local)
        {
            return Some(item);
        }
        if let Some(item) = Self::lane_pop(local) {
            return Some(item);
        }
        self.queue_pop(local)
    }

    /// The next item of the queue. A notice (no message) comes after
    /// whatever a lane holds: a notice found in the queue goes back in
    /// front of the buffer when a lane has an item, so that XPUB's cancels
    /// for a pipe that left never overtake what the pipe sent before.
    #[inline]
    fn queue_pop(&self, local: &mut Local) -> Option<Inbound> {
        let item = self.inproc.get().and_then(|q| q.pop().ok())?;
        if item.is_inproc() {
            return Some(item);
        }
        match Self::lane_pop(local) {
            Some(first) => {
                local.buf.push_front(item);
                Some(first)
            }
            None => Some(item),
        }
    }

    /// The next item of the lanes, each in turn; lanes read to their end
    /// whose pipe is gone are dropped.
    #[inline]
    fn lane_pop(local: &mut Local) -> Option<Inbound> {
        let mut k = 0;
        while k < local.lanes.len() {
            let i = (local.lane_turn + k) % local.lanes.len();
            match local.lanes[i].pop() {
                Ok(Some(item)) => {
                    local.lane_turn = i + 1;
                    return Some(item);
                }
                Ok(None) => k += 1,
                Err(Ended) => {
                    local.lanes.swap_remove(i);
                }
            }
        }
        None
    }

    /// Whether no message is queued (a peer's properties are no message).
    pub(crate) fn is_empty(&self) -> bool {
        let local = self.local.lock();
        local.buf.iter().all(Inbound::is_peer)
            && local.lanes.iter().all(LaneRx::is_empty)
            && self.inproc.get().is_none_or(|q| q.is_empty())
            && self.shared.lock().holds_no_message()
    }

    /// How many peers have a record here (label and properties).
    #[cfg(test)]
    pub(crate) fn peer_records(&self) -> usize {
        self.local.lock().peers.len()
    }

    /// Whether it keeps only the newest message (`conflate`).
    pub(crate) fn conflates(&self) -> bool {
        self.conflate
    }

    pub(crate) fn close(&self) {
        let woken: Vec<Waker> = {
            let mut s = self.shared.lock();
            s.closed = true;
            self.closed.store(true, Ordering::Release);
            s.shares
                .values_mut()
                .filter_map(|sh| sh.waker.take())
                .collect()
        };
        if let Some(q) = self.inproc.get() {
            q.close();
        }
        self.notify_readable();
        woken.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipe::tests::Counter;
    use zmtp_core::Message;

    #[test]
    fn only_the_task_whose_share_has_room_again_is_woken_and_close_wakes_the_rest() {
        let from = |pipe: PipeId, k: usize| Inbound::new(pipe, Message::from(vec![k as u8]));
        let inbox = Inbox::new(RUN_MIN, false, false);
        let flags: Vec<Arc<Counter>> = (0..3).map(|_| Arc::new(Counter(0.into()))).collect();
        // Three pipes, each over its share: each waits.
        for (pipe, flag) in (1..=3).zip(&flags) {
            let mut batch: VecDeque<_> = (0..RUN_MIN + 1).map(|k| from(pipe, k)).collect();
            assert_eq!(inbox.push(&mut batch), Ok(false));
            let waker = Waker::from(flag.clone());
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(inbox.poll_room(pipe, &mut cx).is_pending());
        }
        // Pipe 1's run taken: its task alone is woken.
        inbox.try_pop().unwrap().unwrap();
        let woken = |f: &Arc<Counter>| f.0.load(Ordering::SeqCst) > 0;
        assert_eq!(
            flags.iter().map(woken).collect::<Vec<_>>(),
            [true, false, false]
        );
        inbox.close();
        assert!(flags.iter().all(woken));
    }

    fn item(i: u8) -> Inbound {
        Inbound::new(1, Message::from(vec![i]))
    }

    #[test]
    fn batches_respect_the_bound_and_keep_order() {
        let inbox = Inbox::new(3, false, false);
        let mut batch: VecDeque<_> = (0..5).map(item).collect();
        assert_eq!(inbox.push(&mut batch), Ok(false));
        assert_eq!(batch.len(), 2);
        // The application takes the whole shared queue: room for the rest.
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 0);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        let got: Vec<u8> = std::iter::from_fn(|| inbox.try_pop().unwrap())
            .map(|i| i.msg.frames()[0][0])
            .collect();
        assert_eq!(got, vec![1, 2, 3, 4]);
        inbox.close();
        assert_eq!(inbox.try_pop().unwrap_err(), Closed);
        assert_eq!(inbox.push(&mut VecDeque::from([item(9)])), Err(Closed));
    }

    /// The items `inbox` holds, in the order a receive takes them.
    fn drain_bytes(inbox: &Inbox) -> Vec<u8> {
        std::iter::from_fn(|| inbox.try_pop().unwrap())
            .map(|i| i.msg.frames()[0][0])
            .collect()
    }

    #[test]
    fn a_large_batch_joins_the_queue_whole_and_its_buffer_comes_back() {
        let inbox = Inbox::new(0, false, false);
        let big = |from: u8| (from..from + 100).map(item).collect::<VecDeque<_>>();
        let mut batch = big(0);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        // Moved, not copied: the pusher has no buffer to give yet, so it
        // gets an empty one.
        assert_eq!(batch.capacity(), 0);
        batch = big(100);
        let second = batch.as_slices().0.as_ptr();
        assert_eq!(inbox.push(&mut batch), Ok(true));
        assert_eq!(inbox.shared.lock().runs.len(), 2);
        assert_eq!(inbox.shared.lock().len, 200);
        // The receiver swaps in the first run; once it has emptied it and
        // swaps in the second, the first's buffer is a spare, which the
        // next whole batch pushed gets in exchange.
        let first_100: Vec<u8> = (0..100)
            .map(|_| inbox.try_pop().unwrap().unwrap().msg.frames()[0][0])
            .collect();
        assert_eq!(first_100, (0..100).collect::<Vec<u8>>());
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 100);
        assert_eq!(inbox.shared.lock().spares.len(), 1);
        batch = big(0);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        assert!(batch.capacity() >= 100, "the spare came back with its room");
        assert!(inbox.shared.lock().spares.is_empty());
        // The second batch's items were never moved: the receiver reads
        // them where the pusher wrote them.
        assert_eq!(
            inbox.local.lock().buf.as_slices().0.as_ptr(),
            second.wrapping_add(1)
        );
        let rest = drain_bytes(&inbox);
        assert_eq!(rest.len(), 199);
        assert_eq!(rest[..99], (101..200).map(|i| i as u8).collect::<Vec<_>>());
        assert_eq!(rest[99..], (0..100).collect::<Vec<u8>>());
    }

    #[test]
    fn small_batches_are_copied_onto_the_last_run_and_order_holds() {
        let inbox = Inbox::new(0, false, false);
        let mut batch: VecDeque<_> = (0..100).map(item).collect();
        batch.reserve(100);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        for i in 100..110 {
            let mut one = VecDeque::from([item(i)]);
            assert_eq!(inbox.push(&mut one), Ok(true));
            // Copied: the pusher keeps its buffer.
            assert!(one.capacity() >= 1);
        }
        assert_eq!(inbox.shared.lock().runs.len(), 1);
        assert_eq!(drain_bytes(&inbox), (0..110).collect::<Vec<u8>>());
    }

    #[test]
    fn the_bound_and_the_properties_count_across_runs() {
        let inbox = Inbox::new(150, false, false);
        inbox.attach(1, None);
        let props = Arc::new(Metadata::new());
        let mut batch: VecDeque<_> = std::iter::once(Inbound::peer(1, props.clone()))
            .chain((0..100).map(item))
            .collect();
        assert_eq!(inbox.push(&mut batch), Ok(true));
        batch = std::iter::once(Inbound::peer(1, props))
            .chain((100..200).map(item))
            .collect();
        // Room for 50 more messages; the properties take none.
        assert_eq!(inbox.push(&mut batch), Ok(false));
        assert_eq!(batch.len(), 50);
        assert_eq!(inbox.shared.lock().peers, 2);
        assert_eq!(inbox.shared.lock().len, 152);
        // Taking the first run makes room for the rest.
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 0);
        assert_eq!(inbox.shared.lock().peers, 1);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        let got = drain_bytes(&inbox);
        assert_eq!(got, (1..200).map(|i| i as u8).collect::<Vec<_>>());
        assert!(inbox.is_empty());
    }

    #[test]
    fn the_bound_holds_for_each_peer_and_a_full_one_waits_for_half() {
        let n = RUN_MIN as u8;
        let from = |pipe: PipeId, k: usize| Inbound::new(pipe, Message::from(vec![k as u8]));
        let inbox = Inbox::new(4 * RUN_MIN, false, false);
        // Pipe 1's four runs (batches of RUN_MIN each join whole): its
        // whole share.
        for i in 0..4 {
            let mut batch: VecDeque<_> = (i * RUN_MIN..(i + 1) * RUN_MIN)
                .map(|k| from(1, k))
                .collect();
            assert_eq!(inbox.push(&mut batch), Ok(true));
        }
        let mut over = VecDeque::from([from(1, 0)]);
        assert_eq!(inbox.push(&mut over), Ok(false));
        let woken = Arc::new(Counter(0.into()));
        let waker = Waker::from(woken.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(inbox.poll_room(1, &mut cx).is_pending());
        // Another peer's messages take a share of their own, as libzmq's
        // pipes each have their own bound.
        let mut other: VecDeque<_> = (0..4 * RUN_MIN).map(|k| from(2, k)).collect();
        assert_eq!(inbox.push(&mut other), Ok(true));
        assert_eq!(inbox.shared.lock().len, 8 * RUN_MIN);
        // Pipe 1's first run taken leaves three of its runs queued: no
        // wake yet, and its task may not take the room one run made
        // (woken at each run, a task with busy polling off paid a wake-up
        // per run).
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 0);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        assert_eq!(inbox.push(&mut over), Ok(false));
        assert!(inbox.poll_room(1, &mut cx).is_pending());
        // Pipe 2's task never waited: it has nothing to be woken for.
        assert!(inbox.poll_room(2, &mut cx).is_ready());
        for _ in 1..n {
            inbox.try_pop().unwrap().unwrap();
        }
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        // The second leaves two, half the bound: the waiting task is woken.
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], n);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(inbox.poll_room(1, &mut cx).is_ready());
        assert_eq!(inbox.push(&mut over), Ok(true));
        assert_eq!(drain_bytes(&inbox).len(), 7 * RUN_MIN);
        // Every share taken, none is left behind.
        assert!(inbox.shared.lock().shares.is_empty());
    }

    #[test]
    fn a_burst_leaves_no_large_buffer_behind() {
        let inbox = Inbox::new(0, false, false);
        let mut batch = VecDeque::new();
        for _ in 0..50 {
            batch.extend((0..100).map(item));
            assert_eq!(inbox.push(&mut batch), Ok(true));
        }
        assert_eq!(inbox.shared.lock().len, 5000);
        assert_eq!(drain_bytes(&inbox).len(), 5000);
        // One run's buffer with the receiver, at most SPARES kept: the
        // queue did not grow to hold the burst in one buffer, and keeps
        // nothing of that size.
        let s = inbox.shared.lock();
        assert!(s.runs.is_empty() && s.spares.len() <= SPARES);
        assert!(s.spares.iter().all(|b| b.capacity() < 1000));
        assert!(inbox.local.lock().buf.capacity() < 1000);
    }

    #[test]
    fn a_conflating_inbox_keeps_only_the_newest() {
        let inbox = Inbox::new(0, true, false);
        let mut batch: VecDeque<_> = (0..100).map(item).collect();
        assert_eq!(inbox.push(&mut batch), Ok(true));
        assert!(batch.is_empty());
        assert!(inbox.push_one(item(200)).is_ok());
        batch.extend((0..3).map(item));
        assert_eq!(inbox.push(&mut batch), Ok(true));
        assert_eq!(inbox.shared.lock().len, 1);
        assert_eq!(drain_bytes(&inbox), vec![2]);
        assert!(inbox.push_one(item(7)).is_ok());
        assert_eq!(drain_bytes(&inbox), vec![7]);
    }

    #[test]
    fn properties_take_no_room() {
        let inbox = Inbox::new(1, false, false);
        inbox.attach(1, None);
        let props = Arc::new(Metadata::new());
        let mut batch = VecDeque::from([Inbound::peer(1, props), item(0), item(1)]);
        // The properties and one message: the bound counts messages.
        assert_eq!(inbox.push(&mut batch), Ok(false));
        assert_eq!(batch.len(), 1);
        assert!(!inbox.is_empty());
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 0);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 1);
    }

    #[test]
    fn labels_go_in_front_and_outlive_their_pipe_for_a_while() {
        let inbox = Inbox::new(0, false, true);
        let from = |pipe: PipeId, i: u8| Inbound::new(pipe, Message::from(vec![i]));
        let frames = |inbox: &Inbox| {
            inbox.try_pop().unwrap().map(|i| {
                i.msg
                    .frames()
                    .iter()
                    .map(|f| f.to_vec())
                    .collect::<Vec<_>>()
            })
        };
        inbox.attach(1, Some(Bytes::from_static(b"A")));
        // Pipe 2 has no label yet (no routing id): its message is dropped.
        let mut batch = VecDeque::from([from(2, 0), from(1, 1)]);
        inbox.push(&mut batch).unwrap();
        assert_eq!(frames(&inbox), Some(vec![b"A".to_vec(), vec![1]]));
        assert_eq!(frames(&inbox), None);
        // Gone, with a message still queued: it keeps its id.
        inbox.push(&mut VecDeque::from([from(1, 2)])).unwrap();
        inbox.departed(1);
        assert_eq!(frames(&inbox), Some(vec![b"A".to_vec(), vec![2]]));
        // A connect's pipe back with a new peer is labelled anew and is no
        // longer among the departed.
        inbox.attach(1, Some(Bytes::from_static(b"B")));
        for p in 100..100 + DEPARTED_PEERS as PipeId {
            inbox.attach(p, Some(Bytes::from_static(b"x")));
            inbox.departed(p);
        }
        inbox
            .push(&mut VecDeque::from([from(1, 3), from(100, 4)]))
            .unwrap();
        assert_eq!(frames(&inbox), Some(vec![b"B".to_vec(), vec![3]]));
        assert_eq!(frames(&inbox), Some(vec![b"x".to_vec(), vec![4]]));
        // One more departure forgets the oldest departed pipe's label.
        inbox.attach(5000, Some(Bytes::from_static(b"y")));
        inbox.departed(5000);
        inbox
            .push(&mut VecDeque::from([from(100, 5), from(101, 6)]))
            .unwrap();
        assert_eq!(frames(&inbox), Some(vec![b"x".to_vec(), vec![6]]));
    }

    #[test]
    fn each_message_gets_the_properties_of_the_connection_that_brought_it() {
        let inbox = Inbox::new(0, false, false);
        let meta = |v: &'static [u8]| {
            let mut m = Metadata::new();
            m.insert("User-Id", Bytes::from_static(v)).unwrap();
            Arc::new(m)
        };
        let user = |i: &Inbound| i.msg.property("User-Id").map(|v| v.to_vec());
        inbox.attach(1, None);
        // Pipe 1's first connection, then (a connect's pipe coming back)
        // its second: each message keeps its own connection's properties,
        // even when both are queued at once.
        let mut batch = VecDeque::from([
            Inbound::peer(1, meta(b"alice")),
            Inbound::new(1, Message::from(vec![1])),
        ]);
        inbox.push(&mut batch).unwrap();
        assert!(!inbox.is_empty());
        inbox.departed(1);
        inbox.attach(1, None);
        let mut batch = VecDeque::from([
            Inbound::peer(1, meta(b"bob")),
            Inbound::new(1, Message::from(vec![2])),
        ]);
        inbox.push(&mut batch).unwrap();
        let first = inbox.try_pop().unwrap().unwrap();
        assert_eq!(
            (first.msg.frames()[0][0], user(&first)),
            (1, Some(b"alice".to_vec()))
        );
        let second = inbox.try_pop().unwrap().unwrap();
        assert_eq!(
            (second.msg.frames()[0][0], user(&second)),
            (2, Some(b"bob".to_vec()))
        );
        // Properties alone are no message: nothing to receive.
        let mut batch = VecDeque::from([Inbound::peer(1, meta(b"carol"))]);
        inbox.push(&mut batch).unwrap();
        assert!(inbox.is_empty());
        assert!(inbox.try_pop().unwrap().is_none());
        // A pipe never admitted (or long gone) has no entry to fill.
        inbox
            .push(&mut VecDeque::from([Inbound::peer(7, meta(b"eve"))]))
            .unwrap();
        inbox
            .push(&mut VecDeque::from([Inbound::new(
                7,
                Message::from(vec![3]),
            )]))
            .unwrap();
        let third = inbox.try_pop().unwrap().unwrap();
        assert_eq!((third.msg.frames()[0][0], user(&third)), (3, None));
    }

    #[test]
    fn every_waiting_receiver_is_woken_and_none_is_lost() {
        use std::sync::Arc;
        let inbox = Arc::new(Inbox::new(0, false, false));
        for round in 0..200u32 {
            let receivers: Vec<_> = (0..3)
                .map(|_| {
                    let inbox = inbox.clone();
                    std::thread::spawn(move || futures_lite::future::block_on(inbox.pop()))
                })
                .collect();
            for i in 0..3u8 {
                inbox.push(&mut VecDeque::from([item(i)])).expect("open");
            }
            let mut got: Vec<u8> = receivers
                .into_iter()
                .map(|r| r.join().expect("join").expect("item").msg.frames()[0][0])
                .collect();
            got.sort();
            assert_eq!(got, vec![0, 1, 2], "round {round}");
        }
        // Every receiver's entry is gone once it returned.
        assert_eq!(inbox.waiters.waiting(), 0);
    }

    #[test]
    fn a_dropped_pop_leaves_no_waiter_and_close_wakes() {
        let inbox = Inbox::new(0, false, false);
        {
            let mut pop = Box::pin(inbox.pop());
            let waker = Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            assert!(pop.as_mut().poll(&mut cx).is_pending());
            assert_eq!(inbox.waiters.waiting(), 1);
        }
        assert_eq!(inbox.waiters.waiting(), 0);
        let inbox = std::sync::Arc::new(inbox);
        let i2 = inbox.clone();
        let t = std::thread::spawn(move || futures_lite::future::block_on(i2.pop()).is_err());
        // Close wakes the blocked receiver with `Closed` (whether it was
        // already waiting or looks after the close).
        inbox.close();
        assert!(t.join().expect("join"));
    }
}

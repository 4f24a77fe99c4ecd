//! What a socket shares with its tasks: options, the routing state (the
//! pattern and the pipes), the inbox, and the wake-ups and counters between
//! the application and the I/O threads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_channel::Sender;
use bytes::Bytes;
use event_listener::Event;
use zmtp_core::{Message, Metadata, SocketType};

use crate::context::Spawner;
use crate::inbox::Inbox;
use crate::inproc::Link;
use crate::lock::{Guard, Lock};
use crate::monitor::{MonitorEvent, Reason, Refusal};
use crate::options::Options;
use crate::pattern::{AnyPattern, Pattern, Subscription, SubscriptionLimits};
use crate::pipe::{Inbound, Out, Pipe, PipeId, PipeRx, Pipes};
use crate::routing::OverLimit;
use crate::stop::StopOnDrop;
use crate::waiters::Waiters;

pub(crate) struct EndpointHandle {
    /// Dropping it stops the listener or connecter and its connections
    /// (none for inproc, which has no task).
    pub(crate) _stop: Option<StopOnDrop>,
    /// The persistent pipe of a connect endpoint.
    pub(crate) pipe: Option<PipeId>,
    /// The pipes paired through a bound inproc name.
    pub(crate) accepted: Vec<PipeId>,
    /// A bound inproc name (its end frees the name).
    pub(crate) inproc_bind: bool,
}

impl EndpointHandle {
    /// A listener's or connecter's, stopped by dropping `stop`.
    pub(crate) fn task(stop: StopOnDrop, pipe: Option<PipeId>) -> EndpointHandle {
        EndpointHandle {
            _stop: Some(stop),
            pipe,
            accepted: Vec::new(),
            inproc_bind: false,
        }
    }

    /// An inproc connect's, with its queue's pipe (none with `immediate`
    /// until it is paired).
    pub(crate) fn inproc_connect(pipe: Option<PipeId>) -> EndpointHandle {
        EndpointHandle {
            _stop: None,
            pipe,
            accepted: Vec::new(),
            inproc_bind: false,
        }
    }

    /// A bound inproc name's.
    pub(crate) fn inproc_bind() -> EndpointHandle {
        EndpointHandle {
            _stop: None,
            pipe: None,
            accepted: Vec::new(),
            inproc_bind: true,
        }
    }
}

pub(crate) struct State {
    /// Messages queued for a peer (against `SocketShared::written`): a
    /// plain count under the lock every send holds, not an atomic one.
    pub(crate) routed: u64,
    pub(crate) pipes: Pipes,
    pub(crate) pattern: AnyPattern,
    pub(crate) endpoints: HashMap<String, EndpointHandle>,
}

impl State {
    /// A peer finished its handshake (or was paired) on pipe `id`: the
    /// pattern takes it or refuses it; a refused pipe leaves the table
    /// when `remove_if_refused`. `inbox` is the socket's when it receives:
    /// an admitted peer gets its record there (its label and properties,
    /// for the messages it sends), which a socket that never receives
    /// (PUSH, PUB) would keep for nothing, 212 bytes per peer.
    fn admit(
        &mut self,
        inbox: Option<&Inbox>,
        id: PipeId,
        peer: &Metadata,
        remove_if_refused: bool,
    ) -> Result<(), Refusal> {
        if let Some(p) = self.pipes.get_mut(id) {
            p.attached = true;
        }
        let verdict = self.pattern.attached(&mut self.pipes, id, peer);
        if verdict.is_err() && remove_if_refused {
            self.pipes.remove(id);
            self.pattern.removed(id);
        }
        if verdict.is_ok()
            && let Some(inbox) = inbox
        {
            let label = self
                .pattern
                .labels_received()
                .then(|| self.pipes.get(id).and_then(|p| p.routing_id.clone()))
                .flatten();
            inbox.attach(id, label);
        }
        verdict
    }
}

/// State shared between a socket and its tasks.
pub(crate) struct SocketShared {
    pub(crate) socket_type: SocketType,
    pub(crate) options: Mutex<Options>,
    pub(crate) spawner: Spawner,
    pub(crate) inbox: OnceLock<Inbox>,
    pub(crate) state: Lock<State>,
    /// Whether the pattern hands every received message over unchanged
    /// (then a receive takes no lock but the inbox's).
    pub(crate) passes_received: bool,
    /// Whether the inbox puts each pipe's routing id in front of its
    /// messages (ROUTER).
    pub(crate) labels_received: bool,
    /// Whether receiving is valid in some state, and whether that depends
    /// on the state (REQ, REP).
    pub(crate) recv_supported: bool,
    pub(crate) recv_stateful: bool,
    /// Whether the pattern's pipes are bounded by the high-water mark
    /// (fixed by the socket type).
    pub(crate) bounded_pipes: bool,
    /// Whether the pattern, as it stands, takes every received message
    /// unchanged (a SUB subscribed to everything): set under the state
    /// lock whenever its subscriptions change, read without it.
    pub(crate) passes_all_now: AtomicBool,
    /// A pipe gained room or appeared (for the [`crate::Poller`]).
    pub(crate) room: Event,
    /// Senders waiting for room; woken with `room`, outside the lock that
    /// holds their wakers (see [`Waiters`]).
    pub(crate) senders: Waiters,
    pub(crate) closed: AtomicBool,
    pub(crate) closed_at: OnceLock<Instant>,
    pub(crate) close_event: Event,
    pub(crate) monitor: Mutex<Option<Sender<MonitorEvent>>>,
    pub(crate) next_pipe: AtomicU64,
    /// Messages written to the kernel (against `State::routed`).
    pub(crate) written: Arc<AtomicU64>,
    /// The context's inproc names.
    pub(crate) inproc: Arc<crate::inproc::Registry>,
}

impl SocketShared {
    pub(crate) fn lock(&self) -> Guard<'_, State> {
        self.state.lock()
    }

    pub(crate) fn options(&self) -> Options {
        self.options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn with_options<R>(&self, f: impl FnOnce(&Options) -> R) -> R {
        f(&self.options.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn sndtimeo(&self) -> Option<Duration> {
        self.with_options(|o| o.sndtimeo)
    }

    pub(crate) fn rcvtimeo(&self) -> Option<Duration> {
        self.with_options(|o| o.rcvtimeo)
    }

    pub(crate) fn inbox(&self) -> &Inbox {
        self.inbox.get_or_init(|| {
            let (hwm, conflate) = self.with_options(|o| (o.rcvhwm, o.conflate));
            Inbox::new(hwm, conflate, self.labels_received)
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// When the socket was closed plus its linger: the instant queued
    /// messages are given up.
    pub(crate) fn linger_deadline(&self) -> Option<Instant> {
        let closed = *self.closed_at.get()?;
        let linger = self.with_options(|o| o.linger);
        Some(
            linger.map_or(closed + Duration::from_secs(u32::MAX as u64), |l| {
                closed + l
            }),
        )
    }

    pub(crate) fn emit(&self, ev: MonitorEvent) {
        if let Some(tx) = &*self.monitor.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.try_send(ev);
        }
    }

    /// Tells senders (and pollers) that a pipe gained room or appeared.
    pub(crate) fn notify_room(&self) {
        self.senders.wake_all();
        self.room.notify(usize::MAX);
    }

    /// A new pipe in the routing table: a connect endpoint's before its
    /// handshake. Accepted peers get theirs from [`SocketShared::attach_peer`].
    pub(crate) fn attach_pipe(&self) -> (PipeId, PipeRx) {
        let (pipe, rx) = self.new_pipe();
        let id = pipe.id;
        {
            let st = &mut *self.lock();
            st.pattern.pipe_added(&pipe);
            st.pipes.push(pipe);
        }
        self.notify_room();
        (id, rx)
    }

    /// What the application staged on pipe `id`, for its connection task
    /// (see `Pipe::unstage`): handed to `into` when it may, else moved into
    /// the pipe's queue. Whether there was any, or `None` while a send
    /// holds the state lock.
    ///
    /// The task never waits for the lock: the application takes it for
    /// every send and takes it back at once, and a task that spun for it
    /// lost to it again and again (with the two threads on two CPUs, 1.13x
    /// the CPU per message of the queue under its own lock, against 0.89x
    /// without the wait, 10 interleaved pairs each). A task that finds it
    /// held stores its waker first, so that the send that holds it, or the
    /// next one, hands its messages over (see `Pipe::stage`).
    pub(crate) fn unstage(&self, id: PipeId, into: Option<&mut VecDeque<Out>>) -> Option<bool> {
        let st = self.state.try_lock()?;
        Some(st.pipes.get(id).is_some_and(|p| p.unstage(into)))
    }

    pub(crate) fn next_pipe_id(&self) -> PipeId {
        self.next_pipe.fetch_add(1, Ordering::Relaxed)
    }

    fn new_pipe(&self) -> (Pipe, PipeRx) {
        let (hwm, conflate) = self.with_options(|o| (o.sndhwm, o.conflate));
        let id = self.next_pipe_id();
        // Messages a conflating pipe gives up count as written: they are
        // not "unsent", they are gone by design.
        let given_up = conflate.then(|| self.written.clone());
        let cap = if self.bounded_pipes { hwm } else { 0 };
        match self.socket_type {
            // What is published goes to every subscriber's queue at once:
            // queues without a lock on this side (see `crate::ring`).
            SocketType::Pub | SocketType::XPub if given_up.is_none() => Pipe::publishing(id, cap),
            _ if given_up.is_none() => Pipe::staging(id, cap),
            _ => Pipe::new(id, cap, given_up),
        }
    }

    /// A peer finished its handshake, on its connect endpoint's pipe
    /// (`Some`) or on a new pipe, which is returned. The pattern may refuse
    /// the peer (PAIR's second, a taken routing id): its new pipe is then
    /// gone again.
    pub(crate) fn attach_peer(
        &self,
        pipe: Option<PipeId>,
        peer: &Metadata,
    ) -> Result<Option<(PipeId, PipeRx)>, Refusal> {
        let made = match pipe {
            Some(_) => None,
            None => Some(self.new_pipe()),
        };
        let id = pipe
            .or(made.as_ref().map(|(p, _)| p.id))
            .unwrap_or_default();
        let rx = {
            let inbox = self.inbox();
            let st = &mut *self.lock();
            let rx = made.map(|(p, rx)| {
                st.pattern.pipe_added(&p);
                st.pipes.push(p);
                rx
            });
            // A connect endpoint's pipe stays when its peer is refused.
            st.admit(self.recv_supported.then_some(inbox), id, peer, rx.is_some())?;
            rx
        };
        self.notify_room();
        Ok(rx.map(|rx| (id, rx)))
    }

    /// The peer on a pipe that stays (a connect endpoint's) is gone.
    pub(crate) fn peer_detached(&self, id: PipeId) {
        let notices = {
            let st = &mut *self.lock();
            match st.pipes.get_mut(id) {
                Some(p) => {
                    p.attached = false;
                    st.pattern.detached(p)
                }
                None => Vec::new(),
            }
        };
        self.inbox().departed(id);
        // Only a connection's pipe stays across its peers (not inproc).
        self.deliver(id, notices, false);
    }

    /// Takes a pipe out of the routing table (its peer is gone for good);
    /// whether it was there.
    pub(crate) fn detach_pipe(&self, id: PipeId) -> bool {
        let (found, inproc, notices) = {
            let st = &mut *self.lock();
            let removed = st.pipes.remove(id);
            let found = removed.is_some();
            let inproc = removed.as_ref().is_some_and(|p| p.link().is_some());
            let notices = match removed {
                Some(mut p) if p.attached => st.pattern.detached(&mut p),
                _ => Vec::new(),
            };
            st.pattern.removed(id);
            (found, inproc, notices)
        };
        if inproc {
            self.inbox().remove_credit(id);
        }
        self.inbox().departed(id);
        self.deliver(id, notices, inproc);
        found
    }

    /// An inproc peer's pipe left its socket: this end goes too, and the
    /// monitor hears of it.
    pub(crate) fn detach_inproc(&self, id: PipeId, endpoint: &str, reason: Option<Reason>) {
        if let Some(h) = self.lock().endpoints.get_mut(endpoint) {
            h.accepted.retain(|a| *a != id);
        }
        if self.detach_pipe(id) {
            self.emit(MonitorEvent::Disconnected {
                endpoint: endpoint.to_owned(),
                peer: endpoint.to_owned(),
                reason,
            });
            // A sender waiting on this pipe looks at the others again.
            self.notify_room();
        }
    }

    /// Remembers the pipe an inproc connect made when it was paired.
    pub(crate) fn set_endpoint_pipe(&self, endpoint: &str, id: PipeId) {
        if let Some(h) = self.lock().endpoints.get_mut(endpoint) {
            h.pipe = Some(id);
        }
    }

    /// Remembers a pipe paired through a bound inproc name (for unbind).
    pub(crate) fn add_accepted(&self, bound: &str, id: PipeId) {
        if let Some(h) = self.lock().endpoints.get_mut(bound) {
            h.accepted.push(id);
        }
    }

    /// The bound side of an inproc pair: a new pipe for the peer joins
    /// the routing. `Err(None)`: the socket is closed.
    pub(crate) fn attach_inproc(
        &self,
        id: PipeId,
        link: Link,
        peer: &Metadata,
    ) -> Result<(), Option<Refusal>> {
        let pipe = Pipe::inproc(id, link);
        {
            let inbox = self.inbox();
            let st = &mut *self.lock();
            if self.is_closed() {
                return Err(None);
            }
            st.pattern.pipe_added(&pipe);
            st.pipes.push(pipe);
            st.admit(self.recv_supported.then_some(inbox), id, peer, true)?;
        }
        self.notify_room();
        Ok(())
    }

    /// The connecting side of an inproc pair: its queue becomes the link,
    /// what it queued goes first, and the peer joins the routing.
    /// `Err(None)`: the socket is closed or the connect withdrawn.
    pub(crate) fn join_inproc(
        &self,
        id: PipeId,
        queue: PipeRx,
        link: Link,
        peer: &Metadata,
    ) -> Result<(), Option<Refusal>> {
        {
            let inbox = self.inbox();
            let st = &mut *self.lock();
            if self.is_closed() {
                return Err(None);
            }
            let Some(p) = st.pipes.get_mut(id) else {
                return Err(None);
            };
            // Under the lock: no send can come between the queue and the
            // link.
            p.become_inproc(link);
            if let Some(link) = p.link() {
                crate::inproc::drain(&queue, link);
            }
            st.admit(self.recv_supported.then_some(inbox), id, peer, true)?;
        }
        self.notify_room();
        Ok(())
    }

    /// Hands the pattern's own messages (XPUB's cancels) to the
    /// application, regardless of the receive high-water mark.
    /// An inproc pipe's notices take the queue its earlier ones took
    /// (`Inbox::push_one`), so that they stay in order.
    fn deliver(&self, pipe: PipeId, msgs: Vec<Message>, inproc: bool) {
        if msgs.is_empty() {
            return;
        }
        if inproc {
            for msg in msgs {
                let _ = self.inbox().push_one(Inbound::new(pipe, msg));
            }
            return;
        }
        let mut batch = msgs
            .into_iter()
            .map(|msg| Inbound::new(pipe, msg))
            .collect();
        let _ = self.inbox().push_unbounded(&mut batch);
    }

    /// The prefixes a new session on a persistent pipe must (re)send.
    pub(crate) fn own_subscriptions(&self) -> Vec<Bytes> {
        self.lock().pattern.own_subscriptions()
    }

    /// A subscription or cancel from the peer on `pipe`; XPUB turns it
    /// into a message for the application.
    pub(crate) fn peer_subscription(
        &self,
        pipe: PipeId,
        sub: Subscription,
    ) -> Result<Option<Message>, OverLimit> {
        let limits = self.with_options(|o| SubscriptionLimits {
            count: o.max_subscriptions,
            bytes: o.max_subscription_bytes,
        });
        let st = &mut *self.lock();
        match st.pipes.get_mut(pipe) {
            Some(p) => st.pattern.peer_subscription(p, sub, limits),
            None => Ok(None),
        }
    }

    /// Closes the socket: pending and future calls fail with `Closed`;
    /// every pipe's queue is closed so its task sends what is queued (within
    /// the linger) and ends; listeners stop.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.closed_at.set(Instant::now());
        let endpoints = {
            let mut st = self.lock();
            st.pipes.clear();
            std::mem::take(&mut st.endpoints)
        };
        // Connecters see the socket closed (linger), listeners stop; inproc
        // names are free again.
        drop(endpoints);
        self.inproc.forget(self);
        self.inbox().close();
        self.close_event.notify(usize::MAX);
        self.notify_room();
    }
}

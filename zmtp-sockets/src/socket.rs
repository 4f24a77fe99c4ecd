//! The socket: the application's side. `send` routes a whole message onto a
//! peer's bounded queue and returns; `recv` takes a whole message that a
//! connection task has already decoded (and decrypted). Nothing here
//! encodes, encrypts, decrypts or parses.
//!
//! Per type (RFC 28, 29, 30; libzmq where they are silent):
//! - REQ: strict send/recv alternation, empty delimiter, round-robin,
//!   replies accepted only from the peer asked (relaxed and correlate as in
//!   libzmq);
//! - REP: keeps each request's envelope and restores it on the reply;
//!   fair-queues requests;
//! - PUB: filters by prefix per peer, never blocks, drops for full peers;
//! - SUB: counted subscriptions sent to every peer (and again after a
//!   reconnect), and filters again on receive;
//! - PUSH: round-robin to peers with room, waits (or times out) otherwise;
//! - PULL: fair-queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use async_channel::{Sender, TrySendError};
use atomic_waker::AtomicWaker;
use bytes::Bytes;
use concurrent_queue::{ConcurrentQueue, PopError};
use event_listener::Event;
use zmtp_core::{Message, SocketType};

use crate::context::{Context, Spawner};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::inbox::Inbox;
use crate::monitor::{Monitor, MonitorEvent};
use crate::options::{Options, Security};
use crate::routing::{OverLimit, OwnSubscriptions, PeerSubscriptions};
use crate::waiters::{Entry, Waiters};

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
    pub(crate) pipe: u64,
    pub(crate) msg: Message,
}

struct Pipe {
    id: u64,
    /// An unbounded channel holding at most `cap` messages (0: no limit).
    /// A bounded channel would allocate all `cap` slots up front, 64 KiB
    /// per idle peer at the default HWM; this one grows with its content.
    /// Only the routing code sends, under the state lock, so the length
    /// check and the send cannot race with another send.
    tx: Arc<ConcurrentQueue<Out>>,
    /// The connection task waiting for this queue (see [`PipeRx`]).
    ready: Arc<AtomicWaker>,
    cap: usize,
    subs: PeerSubscriptions,
}

impl Pipe {
    /// A new pipe with room for `cap` messages (0: no limit), and the
    /// connection task's end of it.
    fn new(id: u64, cap: usize) -> (Pipe, PipeRx) {
        let tx = Arc::new(ConcurrentQueue::unbounded());
        let ready = Arc::new(AtomicWaker::new());
        let rx = PipeRx {
            rx: tx.clone(),
            ready: ready.clone(),
        };
        let pipe = Pipe {
            id,
            tx,
            ready,
            cap,
            subs: PeerSubscriptions::default(),
        };
        (pipe, rx)
    }

    fn is_full(&self) -> bool {
        self.cap != 0 && self.tx.len() >= self.cap
    }

    fn try_send(&self, out: Out) -> Result<(), TrySendError<Out>> {
        if self.is_full() {
            return Err(TrySendError::Full(out));
        }
        self.try_send_unbounded(out)
    }

    /// Sends regardless of the high-water mark (subscriptions).
    fn try_send_unbounded(&self, out: Out) -> Result<(), TrySendError<Out>> {
        match self.tx.push(out) {
            Ok(()) => {
                self.ready.wake();
                Ok(())
            }
            Err(e) => Err(TrySendError::Closed(e.into_inner())),
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // The task drains what is queued, then sees the queue closed.
        self.tx.close();
        self.ready.wake();
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

struct EndpointHandle {
    /// Dropping it stops the listener or connecter and its connections.
    _stop: Sender<()>,
    /// The persistent pipe of a connect endpoint.
    pipe: Option<u64>,
}

#[derive(Default)]
struct State {
    pipes: Vec<Pipe>,
    rr: usize,
    endpoints: HashMap<String, EndpointHandle>,
    own_subs: OwnSubscriptions,
    /// REQ: the pipe a reply is expected from.
    req_awaiting: Option<u64>,
    req_id: u32,
    /// REP: the pipe and envelope of the request being answered.
    rep_pending: Option<(u64, Vec<Bytes>)>,
}

/// State shared between a socket and its tasks.
pub(crate) struct SocketShared {
    pub(crate) socket_type: SocketType,
    options: Mutex<Options>,
    pub(crate) spawner: Spawner,
    inbox: OnceLock<Inbox>,
    state: Mutex<State>,
    /// A pipe gained room or appeared (for the [`crate::Poller`]).
    pub(crate) room: Event,
    /// Senders waiting for room; woken with `room`, outside the lock that
    /// holds their wakers (see [`Waiters`]).
    senders: Waiters,
    closed: AtomicBool,
    closed_at: OnceLock<Instant>,
    pub(crate) close_event: Event,
    monitor: Mutex<Option<Sender<MonitorEvent>>>,
    next_pipe: AtomicU64,
    /// Messages queued for a peer, and messages written to the kernel.
    pub(crate) routed: AtomicU64,
    pub(crate) written: AtomicU64,
}

impl SocketShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn options(&self) -> Options {
        self.options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn with_options<R>(&self, f: impl FnOnce(&Options) -> R) -> R {
        f(&self.options.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn sndtimeo(&self) -> Option<Duration> {
        self.with_options(|o| o.sndtimeo)
    }

    fn rcvtimeo(&self) -> Option<Duration> {
        self.with_options(|o| o.rcvtimeo)
    }

    fn flag(&self, f: impl FnOnce(&Options) -> bool) -> bool {
        self.with_options(f)
    }

    pub(crate) fn inbox(&self) -> &Inbox {
        self.inbox
            .get_or_init(|| Inbox::new(self.with_options(|o| o.rcvhwm)))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// When the socket was closed plus its linger: the instant queued
    /// messages are given up.
    pub(crate) fn linger_deadline(&self) -> Option<Instant> {
        let closed = *self.closed_at.get()?;
        let linger = self
            .options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .linger;
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

    /// A new pipe, attached to the routing table.
    pub(crate) fn attach_pipe(&self) -> (u64, PipeRx) {
        let hwm = self
            .options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sndhwm;
        // SUB sends only subscriptions: never bound them by the HWM.
        let cap = if self.socket_type == SocketType::Sub {
            0
        } else {
            hwm
        };
        let id = self.next_pipe.fetch_add(1, Ordering::Relaxed);
        let (pipe, rx) = Pipe::new(id, cap);
        {
            let mut st = self.lock();
            if self.socket_type == SocketType::Sub {
                for p in st.own_subs.prefixes() {
                    let _ = pipe.try_send_unbounded(Out::Subscribe(p.clone()));
                }
            }
            st.pipes.push(pipe);
        }
        self.notify_room();
        (id, rx)
    }

    pub(crate) fn detach_pipe(&self, id: u64) {
        let mut st = self.lock();
        st.pipes.retain(|p| p.id != id);
    }

    /// The prefixes a new session on a persistent pipe must (re)send.
    pub(crate) fn own_subscriptions(&self) -> Vec<Bytes> {
        self.lock().own_subs.prefixes().cloned().collect()
    }

    pub(crate) fn peer_subscribe(&self, pipe: u64, prefix: Bytes) -> Result<(), OverLimit> {
        let (max, max_bytes) = {
            let o = self.options.lock().unwrap_or_else(|e| e.into_inner());
            (o.max_subscriptions, o.max_subscription_bytes)
        };
        let mut st = self.lock();
        match st.pipes.iter_mut().find(|p| p.id == pipe) {
            Some(p) => p.subs.subscribe(prefix, max, max_bytes),
            None => Ok(()),
        }
    }

    pub(crate) fn peer_cancel(&self, pipe: u64, prefix: &[u8]) {
        if let Some(p) = self.lock().pipes.iter_mut().find(|p| p.id == pipe) {
            p.subs.cancel(prefix);
        }
    }

    pub(crate) fn clear_peer_subscriptions(&self, pipe: u64) {
        if let Some(p) = self.lock().pipes.iter_mut().find(|p| p.id == pipe) {
            p.subs.clear();
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
        // Connecters see the socket closed (linger), listeners stop.
        drop(endpoints);
        self.inbox().close();
        self.close_event.notify(usize::MAX);
        self.notify_room();
    }
}

/// A ZeroMQ socket. Methods take `&self`; a socket can be shared between
/// tasks or threads. Dropping it closes it; queued messages are still sent
/// for the linger period by the I/O threads.
pub struct Socket {
    shared: Arc<SocketShared>,
    _ctx: Context,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("type", &self.shared.socket_type)
            .finish_non_exhaustive()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Runs `fut` on this thread until it completes (`Some`) or `deadline`
/// passes (`None`), parking in between. The deadline is the thread's own
/// park timeout: an `async_io::Timer` would register with the reactor and
/// wake an I/O thread twice per blocking call, which made every blocking
/// call with a timeout cost the I/O thread a wake-up.
fn block_on_until<T>(
    fut: impl std::future::Future<Output = T>,
    deadline: Option<Instant>,
) -> Option<T> {
    let (parker, unparker) = parking::pair();
    let waker = std::task::Waker::from(unparker);
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            Some(d) => {
                if !parker.park_deadline(d) && Instant::now() >= d {
                    // One last look: a wake-up may have raced the deadline.
                    return match fut.as_mut().poll(&mut cx) {
                        std::task::Poll::Ready(v) => Some(v),
                        std::task::Poll::Pending => None,
                    };
                }
            }
            None => parker.park(),
        }
    }
}

/// How a send is routed.
enum Route {
    /// Round-robin to a pipe with room; the chosen pipe id is returned.
    RoundRobin,
    /// To every pipe whose subscriptions match; never waits.
    Fanout,
    /// To one pipe; dropped if it is full or gone.
    To(u64),
}

impl Socket {
    pub(crate) fn new(ctx: Context, socket_type: SocketType) -> Result<Socket> {
        let shared = Arc::new(SocketShared {
            socket_type,
            options: Mutex::new(Options::default()),
            spawner: ctx.inner.spawner.clone(),
            inbox: OnceLock::new(),
            state: Mutex::new(State::default()),
            room: Event::new(),
            senders: Waiters::default(),
            closed: AtomicBool::new(false),
            closed_at: OnceLock::new(),
            close_event: Event::new(),
            monitor: Mutex::new(None),
            next_pipe: AtomicU64::new(1),
            routed: AtomicU64::new(0),
            written: AtomicU64::new(0),
        });
        Ok(Socket { shared, _ctx: ctx })
    }

    pub(crate) fn shared(&self) -> &Arc<SocketShared> {
        &self.shared
    }

    /// The socket type.
    pub fn socket_type(&self) -> SocketType {
        self.shared.socket_type
    }

    /// Changes options. Most take effect for connections made afterwards;
    /// `rcvhwm` only before the first bind, connect or receive.
    pub fn configure(&self, f: impl FnOnce(&mut Options)) -> Result<()> {
        let mut o = self
            .shared
            .options
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut new = o.clone();
        f(&mut new);
        if let Security::PlainClient { username, password } = &new.security {
            if username.len() > 255 || password.len() > 255 {
                return Err(Error::InvalidOption(
                    "PLAIN credentials are at most 255 bytes",
                ));
            }
        }
        if !new.routing_id.is_empty() && new.routing_id.len() > 255 {
            return Err(Error::InvalidOption("routing id is at most 255 bytes"));
        }
        if let Security::NoiseClient {
            pattern,
            server: None,
            ..
        } = &new.security
        {
            if pattern.needs_server_key() {
                return Err(Error::InvalidOption(
                    "NOISE-IK and NOISE-NK clients need the server's key",
                ));
            }
        }
        if new.routing_id.first() == Some(&0) {
            return Err(Error::InvalidOption(
                "routing id must not start with a zero byte",
            ));
        }
        *o = new;
        Ok(())
    }

    /// A copy of the current options.
    pub fn options(&self) -> Options {
        self.shared.options()
    }

    /// A stream of monitor events from now on.
    pub fn monitor(&self) -> Monitor {
        let (tx, rx) = async_channel::bounded(10_000);
        *self
            .shared
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tx);
        Monitor { rx }
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Binds to an endpoint and returns it as bound (`tcp://127.0.0.1:0`
    /// comes back with the real port).
    pub fn bind(&self, endpoint: &str) -> Result<String> {
        self.check_open()?;
        let ep = Endpoint::parse(endpoint)?;
        let _ = self.shared.inbox();
        let (listener, bound) = match crate::transport::Listener::bind(&ep) {
            Ok(l) => l,
            Err(e) => {
                self.shared.emit(MonitorEvent::BindFailed {
                    endpoint: endpoint.to_owned(),
                    reason: e.to_string(),
                });
                return Err(e);
            }
        };
        let (stop, stop_rx) = async_channel::bounded::<()>(1);
        self.shared.lock().endpoints.insert(
            bound.clone(),
            EndpointHandle {
                _stop: stop,
                pipe: None,
            },
        );
        self.shared.emit(MonitorEvent::Listening {
            endpoint: bound.clone(),
        });
        let shared = self.shared.clone();
        let ep_name = bound.clone();
        self.shared
            .spawner
            .spawn(crate::driver::listen(shared, listener, ep_name, stop_rx));
        Ok(bound)
    }

    /// Connects to an endpoint, now or whenever the peer appears, and keeps
    /// reconnecting. Unless `immediate` is set, the endpoint's queue exists
    /// at once, so messages wait for the peer (as in libzmq).
    pub fn connect(&self, endpoint: &str) -> Result<()> {
        self.check_open()?;
        let ep = Endpoint::parse(endpoint)?;
        let _ = self.shared.inbox();
        let immediate = self.shared.options().immediate;
        let pipe = if immediate {
            None
        } else {
            Some(self.shared.attach_pipe())
        };
        let (stop, stop_rx) = async_channel::bounded::<()>(1);
        self.shared.lock().endpoints.insert(
            endpoint.to_owned(),
            EndpointHandle {
                _stop: stop,
                pipe: pipe.as_ref().map(|(id, _)| *id),
            },
        );
        let shared = self.shared.clone();
        self.shared.spawner.spawn(crate::driver::connect(
            shared,
            ep,
            endpoint.to_owned(),
            pipe,
            stop_rx,
        ));
        Ok(())
    }

    /// Stops connecting to an endpoint and drops its connection and queue.
    pub fn disconnect(&self, endpoint: &str) -> Result<()> {
        let handle = self.shared.lock().endpoints.remove(endpoint);
        let handle = handle.ok_or_else(|| Error::NotFound(endpoint.to_owned()))?;
        if let Some(id) = handle.pipe {
            self.shared.detach_pipe(id);
        }
        Ok(())
    }

    /// Stops listening on a bound endpoint (as returned by
    /// [`Socket::bind`]) and closes the connections accepted through it.
    pub fn unbind(&self, endpoint: &str) -> Result<()> {
        let handle = self.shared.lock().endpoints.remove(endpoint);
        handle
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(endpoint.to_owned()))
    }

    /// Subscribes to a prefix (SUB). Counted: subscribe twice, unsubscribe
    /// twice.
    pub fn subscribe(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.subscription(true, prefix.as_ref())
    }

    /// Removes one count of a subscription (SUB).
    pub fn unsubscribe(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.subscription(false, prefix.as_ref())
    }

    fn subscription(&self, add: bool, prefix: &[u8]) -> Result<()> {
        self.check_open()?;
        if self.shared.socket_type != SocketType::Sub {
            return Err(Error::NotSupported("subscribe on a non-SUB socket"));
        }
        let prefix = Bytes::copy_from_slice(prefix);
        let st = &mut *self.shared.lock();
        let changed = if add {
            st.own_subs.add(prefix.clone())
        } else {
            st.own_subs.remove(&prefix)
        };
        if changed {
            for p in &st.pipes {
                let out = if add {
                    Out::Subscribe(prefix.clone())
                } else {
                    Out::Cancel(prefix.clone())
                };
                let _ = p.try_send_unbounded(out);
            }
        }
        Ok(())
    }

    /// Sends a message. Returns once the message is queued for a peer (or,
    /// for PUB, for every matching peer with room). Waits while no peer has
    /// room (PUSH, REQ), up to the send timeout. Dropping the future leaves
    /// the message either wholly queued or not queued at all.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<()> {
        self.check_open()?;
        let msg = self.prepare_send(msg.into())?;
        // Fast path: a peer has room.
        match self.try_route(msg) {
            Ok(()) => Ok(()),
            Err(back) => {
                let deadline = self.shared.sndtimeo().map(|t| Instant::now() + t);
                self.send_prepared(back, deadline).await
            }
        }
    }

    /// Waits for room for a prepared message, up to `deadline` when it is
    /// given (the blocking calls pass none and bound the wait themselves).
    async fn send_prepared(&self, msg: Message, deadline: Option<Instant>) -> Result<()> {
        let mut msg = Some(msg);
        let mut entry = Entry::new(&self.shared.senders);
        let try_route = |msg: &mut Option<Message>| -> Option<Result<()>> {
            if let Err(e) = self.check_open() {
                return Some(Err(e));
            }
            let Some(m) = msg.take() else {
                return Some(Err(Error::Closed));
            };
            match self.try_route(m) {
                Ok(()) => Some(Ok(())),
                Err(back) => {
                    *msg = Some(back);
                    None
                }
            }
        };
        let routed = std::future::poll_fn(|cx| {
            if let Some(r) = try_route(&mut msg) {
                return Poll::Ready(r);
            }
            // Register, then try again: room made in between wakes us. A
            // wake-up takes the waker out, so every wait registers anew.
            entry.register(cx.waker());
            match try_route(&mut msg) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        });
        match deadline {
            Some(d) => {
                futures_lite::future::or(routed, async {
                    async_io::Timer::at(d).await;
                    Err(Error::WouldBlock)
                })
                .await
            }
            None => routed.await,
        }
    }

    /// Sends without waiting: [`Error::WouldBlock`] when no peer has room.
    pub fn try_send(&self, msg: impl Into<Message>) -> Result<()> {
        self.check_open()?;
        let msg = self.prepare_send(msg.into())?;
        self.try_route(msg).map_err(|_| Error::WouldBlock)
    }

    /// Blocking [`Socket::send`], for plain threads.
    pub fn send_blocking(&self, msg: impl Into<Message>) -> Result<()> {
        self.check_open()?;
        let msg = self.prepare_send(msg.into())?;
        // Only park the thread when no peer has room.
        match self.try_route(msg) {
            Ok(()) => Ok(()),
            Err(back) => {
                let deadline = self.shared.sndtimeo().map(|t| Instant::now() + t);
                block_on_until(self.send_prepared(back, None), deadline)
                    .unwrap_or(Err(Error::WouldBlock))
            }
        }
    }

    /// Checks the socket's state machine and builds the wire message (REQ
    /// adds its delimiter, REP its envelope).
    fn prepare_send(&self, mut msg: Message) -> Result<Message> {
        if msg.is_empty() {
            msg.push(Bytes::new());
        }
        match self.shared.socket_type {
            SocketType::Sub | SocketType::Pull => Err(Error::NotSupported("send")),
            SocketType::Req => {
                let relaxed = self.shared.flag(|o| o.req_relaxed);
                let correlate = self.shared.flag(|o| o.req_correlate);
                let st = self.shared.lock();
                if st.req_awaiting.is_some() && !relaxed {
                    return Err(Error::State("REQ must receive the reply first"));
                }
                if correlate {
                    msg.push_front(Bytes::new());
                    msg.push_front(Bytes::copy_from_slice(
                        &(st.req_id.wrapping_add(1)).to_be_bytes(),
                    ));
                } else {
                    msg.push_front(Bytes::new());
                }
                Ok(msg)
            }
            SocketType::Rep => {
                let st = self.shared.lock();
                let Some((_, envelope)) = &st.rep_pending else {
                    return Err(Error::State("REP must receive a request first"));
                };
                let mut frames = envelope.clone();
                frames.extend(msg.into_frames());
                Ok(Message::from(frames))
            }
            _ => Ok(msg),
        }
    }

    /// Routes a prepared message; gives it back when it must wait.
    fn try_route(&self, msg: Message) -> Result<(), Message> {
        // One lock for choosing the route and using it.
        let st = &mut *self.shared.lock();
        let route = match self.shared.socket_type {
            SocketType::Pub | SocketType::XPub => Route::Fanout,
            SocketType::Rep => match &st.rep_pending {
                Some((pipe, _)) => Route::To(*pipe),
                None => return Err(msg),
            },
            _ => Route::RoundRobin,
        };
        match route {
            Route::Fanout => {
                let topic = msg.get(0).map_or(&[][..], |f| &f[..]);
                let mut queued = 0;
                for p in &st.pipes {
                    // A full subscriber loses the message; others are
                    // unaffected.
                    if p.subs.matches(topic) && p.try_send(Out::Msg(msg.clone())).is_ok() {
                        queued += 1;
                    }
                }
                self.shared.routed.fetch_add(queued, Ordering::Relaxed);
                Ok(())
            }
            Route::To(id) => {
                if let Some(p) = st.pipes.iter().find(|p| p.id == id) {
                    if p.try_send(Out::Msg(msg)).is_ok() {
                        self.shared.routed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                st.rep_pending = None;
                Ok(())
            }
            Route::RoundRobin => {
                let n = st.pipes.len();
                let mut msg = msg;
                for i in 0..n {
                    let idx = (st.rr + i) % n;
                    match st.pipes[idx].try_send(Out::Msg(msg)) {
                        Ok(()) => {
                            self.shared.routed.fetch_add(1, Ordering::Relaxed);
                            st.rr = (idx + 1) % n;
                            if self.shared.socket_type == SocketType::Req {
                                st.req_awaiting = Some(st.pipes[idx].id);
                                st.req_id = st.req_id.wrapping_add(1);
                            }
                            return Ok(());
                        }
                        Err(
                            TrySendError::Full(Out::Msg(m)) | TrySendError::Closed(Out::Msg(m)),
                        ) => {
                            msg = m;
                        }
                        Err(_) => return Ok(()),
                    }
                }
                Err(msg)
            }
        }
    }

    /// Receives a message, waiting up to the receive timeout. Dropping the
    /// future loses no message.
    pub async fn recv(&self) -> Result<Message> {
        self.recv_inner(true).await
    }

    /// [`Socket::recv`]; without `timed` it ignores the receive timeout
    /// (the blocking call bounds the wait itself).
    async fn recv_inner(&self, timed: bool) -> Result<Message> {
        self.check_recv()?;
        let inbox = self.shared.inbox();
        let mut deadline = None;
        loop {
            // Fast path: a message is waiting.
            let item = match inbox.try_pop().map_err(|_| Error::Closed)? {
                Some(item) => item,
                None => {
                    let timeout = if timed { self.shared.rcvtimeo() } else { None };
                    let d = *deadline.get_or_insert_with(|| timeout.map(|t| Instant::now() + t));
                    match d {
                        Some(d) => {
                            futures_lite::future::or(
                                async { inbox.pop().await.map_err(|_| Error::Closed) },
                                async {
                                    async_io::Timer::at(d).await;
                                    Err(Error::WouldBlock)
                                },
                            )
                            .await?
                        }
                        None => inbox.pop().await.map_err(|_| Error::Closed)?,
                    }
                }
            };
            if let Some(msg) = self.accept(item)? {
                return Ok(msg);
            }
        }
    }

    /// Receives without waiting: [`Error::WouldBlock`] when nothing is
    /// queued.
    pub fn try_recv(&self) -> Result<Message> {
        self.check_recv()?;
        loop {
            let item = match self.shared.inbox().try_pop() {
                Ok(Some(i)) => i,
                Ok(None) => return Err(Error::WouldBlock),
                Err(_) => return Err(Error::Closed),
            };
            if let Some(msg) = self.accept(item)? {
                return Ok(msg);
            }
        }
    }

    /// Blocking [`Socket::recv`], for plain threads.
    pub fn recv_blocking(&self) -> Result<Message> {
        // Only park the thread when nothing is queued.
        match self.try_recv() {
            Err(Error::WouldBlock) => {
                let deadline = self.shared.rcvtimeo().map(|t| Instant::now() + t);
                block_on_until(self.recv_inner(false), deadline).unwrap_or(Err(Error::WouldBlock))
            }
            other => other,
        }
    }

    fn check_recv(&self) -> Result<()> {
        self.check_open()?;
        match self.shared.socket_type {
            SocketType::Pub | SocketType::Push => Err(Error::NotSupported("recv")),
            SocketType::Req => {
                if self.shared.lock().req_awaiting.is_none() {
                    return Err(Error::State("REQ must send a request first"));
                }
                Ok(())
            }
            SocketType::Rep => {
                if self.shared.lock().rep_pending.is_some() {
                    return Err(Error::State("REP must send the reply first"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Applies the receiving side of the socket's pattern; `None` drops
    /// the message.
    fn accept(&self, item: Inbound) -> Result<Option<Message>> {
        let Inbound { pipe, mut msg } = item;
        match self.shared.socket_type {
            SocketType::Sub => {
                let st = self.shared.lock();
                let topic = msg.get(0).map_or(&[][..], |f| &f[..]);
                Ok(st.own_subs.matches(topic).then_some(msg))
            }
            SocketType::Req => {
                let correlate = self.shared.flag(|o| o.req_correlate);
                let mut st = self.shared.lock();
                if st.req_awaiting != Some(pipe) {
                    return Ok(None);
                }
                if correlate {
                    let id = msg.pop_front();
                    if id.as_deref() != Some(&st.req_id.to_be_bytes()[..]) {
                        return Ok(None);
                    }
                }
                // The reply must start with the empty delimiter.
                if msg.get(0).is_none_or(|f| !f.is_empty()) {
                    return Ok(None);
                }
                let _ = msg.pop_front();
                st.req_awaiting = None;
                Ok(Some(msg))
            }
            SocketType::Rep => {
                let frames = msg.frames();
                // The envelope runs up to and including the first empty
                // frame; a request without one is dropped, as in libzmq.
                let Some(split) = frames.iter().position(|f| f.is_empty()) else {
                    return Ok(None);
                };
                let props = msg.properties_arc().cloned();
                let mut frames = msg.into_frames();
                let body = frames.split_off(split + 1);
                self.shared.lock().rep_pending = Some((pipe, frames));
                let mut out = Message::from(body);
                if let Some(p) = props {
                    out.set_properties(p);
                }
                Ok(Some(out))
            }
            _ => Ok(Some(msg)),
        }
    }

    /// Whether a receive would not wait (for the poller).
    pub(crate) fn readable_now(&self) -> bool {
        !self.shared.inbox().is_empty() || self.shared.is_closed()
    }

    /// Whether a send would not wait (for the poller).
    pub(crate) fn writable_now(&self) -> bool {
        match self.shared.socket_type {
            SocketType::Pub | SocketType::XPub => true,
            SocketType::Sub | SocketType::Pull => false,
            _ => self.shared.lock().pipes.iter().any(|p| !p.is_full()) || self.shared.is_closed(),
        }
    }

    /// Messages queued by `send` that are not yet written to the kernel
    /// (or were lost with their connection).
    pub fn unsent(&self) -> u64 {
        let routed = self.shared.routed.load(Ordering::Acquire);
        routed.saturating_sub(self.shared.written.load(Ordering::Acquire))
    }

    /// Waits up to `timeout` until every queued message is written; returns
    /// how many are still unsent.
    pub fn flush_blocking(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.unsent();
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// PUB: how many subscriptions (peer, prefix) are in effect.
    pub fn subscription_count(&self) -> usize {
        self.shared.lock().pipes.iter().map(|p| p.subs.len()).sum()
    }

    /// Closes the socket now; queued messages are still sent for the linger
    /// period. The same as dropping it.
    pub fn close(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_wakes_its_reader_for_every_send_and_closes_after_draining() {
        let (p, rx) = Pipe::new(1, 0);
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
        let (p, rx) = Pipe::new(1, 2);
        assert!(p.try_send(Out::Cancel(Bytes::new())).is_ok());
        assert!(p.try_send(Out::Cancel(Bytes::new())).is_ok());
        assert!(matches!(
            p.try_send(Out::Cancel(Bytes::new())),
            Err(TrySendError::Full(_))
        ));
        // Subscriptions are never bounded.
        assert!(p.try_send_unbounded(Out::Cancel(Bytes::new())).is_ok());
        assert_eq!(rx.len(), 3);
    }
}

//! The socket: the application's side. `send` hands a whole message to the
//! socket type's pattern (`crate::pattern`), which queues it for one peer
//! or several and returns; `recv` takes a whole message that a connection
//! task has already decoded (and decrypted), and the pattern filters or
//! transforms it. Nothing here encodes, encrypts, decrypts or parses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Event;
use zmtp_core::{Message, SocketType};

use crate::context::Context;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::monitor::{Monitor, MonitorEvent};
use crate::options::{Options, Security};
use crate::pattern::{self, Pattern, SendError};
use crate::pipe::{Inbound, Pipes};
use crate::shared::{EndpointHandle, SocketShared, State};
use crate::waiters::{Entry, Waiters};

mod batch;

/// A ZeroMQ socket. Methods take `&self`; a socket can be shared between
/// tasks or threads. Dropping it closes it; queued messages are still sent
/// for the linger period ([`Options::linger`], 5 s by default) by the I/O
/// threads, and the drop of the context's last handle waits for that (see
/// [`Context::term`]).
///
/// Every standard type is available: REQ, REP, DEALER, ROUTER, PUB, SUB,
/// XPUB, XSUB, PUSH, PULL and PAIR. What `send` and `recv` do depends on
/// the type, as in libzmq: a ROUTER receives each message with its peer's
/// routing id in front and sends to the peer named by the first frame; an
/// XPUB receives its peers' subscriptions (`0x01 prefix`, `0x00 prefix`); an
/// XSUB subscribes by sending them.
///
/// ```
/// use bytes::Bytes;
/// use zmtp_sockets::{Context, Message, SocketType};
/// let ctx = Context::new();
/// let router = ctx.socket(SocketType::Router)?;
/// let ep = router.bind("tcp://127.0.0.1:0")?;
/// let dealer = ctx.socket_with(SocketType::Dealer, |o| o.routing_id = "D".into())?;
/// dealer.connect(&ep)?;
/// dealer.send_blocking("hello")?;
/// let got = router.recv_blocking()?; // the peer's routing id comes first
/// assert_eq!(got.frames(), [Bytes::from("D"), Bytes::from("hello")]);
/// router.send_blocking(Message::from_frames(["D", "welcome"]))?;
/// assert_eq!(dealer.recv_blocking()?.frames()[0], "welcome");
/// # Ok::<(), zmtp_sockets::Error>(())
/// ```
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

/// A `_blocking` call that would wait on one of a context's I/O threads
/// (from an Authenticator or a mechanism, which run there) would stop the
/// thread that has to make the wait end: refused instead of hanging. The
/// check costs nothing on the paths that do not wait.
fn refuse_on_io_thread() -> Result<()> {
    if std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with(crate::context::IO_THREAD_PREFIX))
    {
        return Err(Error::State(
            "a blocking call on a context's I/O thread would wait for itself; use the async form",
        ));
    }
    Ok(())
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

impl Socket {
    pub(crate) fn new(ctx: Context, socket_type: SocketType) -> Result<Socket> {
        let mut pattern = pattern::for_type(socket_type)?;
        let options = Options::default();
        pattern.configure(&options);
        let recv_stateful = pattern.stateful_recv();
        let recv_supported = recv_stateful || pattern.check_recv().is_ok();
        let passes_received = pattern.passes_received();
        let labels_received = pattern.labels_received();
        let bounded_pipes = pattern.bounded_pipes();
        let shared = Arc::new(SocketShared {
            socket_type,
            options: Mutex::new(options),
            spawner: ctx.inner.spawner.clone(),
            inbox: OnceLock::new(),
            state: crate::lock::Lock::new(State {
                routed: 0,
                pipes: Pipes::default(),
                pattern,
                endpoints: HashMap::new(),
            }),
            passes_received,
            labels_received,
            recv_supported,
            recv_stateful,
            bounded_pipes,
            passes_all_now: AtomicBool::new(false),
            room: Event::new(),
            senders: Waiters::default(),
            closed: AtomicBool::new(false),
            closed_at: OnceLock::new(),
            close_event: Event::new(),
            monitor: Mutex::new(None),
            next_pipe: AtomicU64::new(1),
            written: Arc::new(AtomicU64::new(0)),
            inproc: ctx.inner.inproc.clone(),
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
    /// `rcvhwm` and `conflate` can only change before the first bind,
    /// connect or receive, and changing them later is an error
    /// ([`Error::InvalidOption`]), as is an option that does not apply to
    /// the socket type. [`Context::socket_with`] makes a socket with its
    /// options in one step.
    pub fn configure(&self, f: impl FnOnce(&mut Options)) -> Result<()> {
        let new = {
            let mut o = self
                .shared
                .options
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut new = o.clone();
            f(&mut new);
            if let Security::PlainClient { username, password } = &new.security
                && (username.len() > 255 || password.len() > 255)
            {
                return Err(Error::InvalidOption(
                    "PLAIN credentials are at most 255 bytes",
                ));
            }
            if !new.routing_id.is_empty() && new.routing_id.len() > 255 {
                return Err(Error::InvalidOption("routing id is at most 255 bytes"));
            }
            if let Security::NoiseClient {
                pattern,
                server: None,
                ..
            } = &new.security
                && pattern.needs_server_key()
            {
                return Err(Error::InvalidOption(
                    "NOISE-IK and NOISE-NK clients need the server's key",
                ));
            }
            if new.routing_id.first() == Some(&0) {
                return Err(Error::InvalidOption(
                    "routing id must not start with a zero byte",
                ));
            }
            pattern::check_options(self.shared.socket_type, &new)?;
            // The inbox is made at the first bind, connect or receive,
            // with these two: a later change would be accepted and ignored.
            if self.shared.inbox.get().is_some() {
                if new.conflate != o.conflate {
                    return Err(Error::InvalidOption(
                        "conflate must be set before the first bind, connect or receive",
                    ));
                }
                if new.rcvhwm != o.rcvhwm {
                    return Err(Error::InvalidOption(
                        "rcvhwm must be set before the first bind, connect or receive",
                    ));
                }
            }
            *o = new.clone();
            new
        };
        self.shared.lock().pattern.configure(&new);
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

    #[inline(always)]
    fn check_open(&self) -> Result<()> {
        if self.shared.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Binds to an endpoint and returns it as bound (`tcp://127.0.0.1:0`
    /// comes back with the real port).
    ///
    /// `inproc://name` takes the name within the socket's [`Context`]
    /// (another socket holding it is `AddrInUse`) until the socket unbinds
    /// or closes. Connects to it may come before the bind. Inproc messages
    /// are handed over between the two sockets without encoding or copying;
    /// security options do not apply to inproc (as in libzmq), since no
    /// byte leaves the process.
    ///
    /// ```
    /// use zmtp_sockets::{Context, SocketType};
    /// let ctx = Context::new();
    /// let a = ctx.socket(SocketType::Pair)?;
    /// let b = ctx.socket(SocketType::Pair)?;
    /// b.connect("inproc://pair")?; // before the bind: it waits for it
    /// b.send_blocking("queued before the bind")?;
    /// a.bind("inproc://pair")?;
    /// assert_eq!(a.recv_blocking()?.frames()[0], "queued before the bind");
    /// a.send_blocking("pong")?;
    /// assert_eq!(b.recv_blocking()?.frames()[0], "pong");
    /// # Ok::<(), zmtp_sockets::Error>(())
    /// ```
    pub fn bind(&self, endpoint: &str) -> Result<String> {
        self.check_open()?;
        let ep = Endpoint::parse(endpoint)?;
        let _ = self.shared.inbox();
        if let Endpoint::Inproc(name) = &ep {
            return self.bind_inproc(name);
        }
        let backlog = self.shared.with_options(|o| o.backlog);
        let (listener, bound) = match crate::transport::Listener::bind(&ep, backlog) {
            Ok(l) => l,
            Err(e) => {
                let reason = match &e {
                    Error::Io(io) => crate::monitor::Reason::io(io),
                    other => crate::monitor::Reason::Io {
                        kind: std::io::ErrorKind::InvalidInput,
                        message: other.to_string(),
                    },
                };
                self.shared.emit(MonitorEvent::BindFailed {
                    endpoint: endpoint.to_owned(),
                    reason,
                });
                return Err(e);
            }
        };
        let (stop, stop_rx) = crate::stop::signal();
        self.shared
            .lock()
            .endpoints
            .insert(bound.clone(), EndpointHandle::task(stop, None));
        self.shared.emit(MonitorEvent::Listening {
            endpoint: bound.clone(),
        });
        let shared = self.shared.clone();
        let ep_name = bound.clone();
        self.shared
            .spawner
            .spawn(crate::listener::run(shared, listener, ep_name, stop_rx));
        Ok(bound)
    }

    /// Connects to an endpoint, now or whenever the peer appears, and keeps
    /// reconnecting. Unless `immediate` is set, the endpoint's queue exists
    /// at once, so messages wait for the peer (as in libzmq).
    ///
    /// `inproc://name` pairs with the socket of this [`Context`] bound to
    /// the name, now or when it binds; what was queued before goes first.
    /// An inproc pair does not reconnect: when the bound socket unbinds or
    /// closes, the pair ends. Messages already sent stay receivable after
    /// the sender closes (they are in the receiver's queue); what a connect
    /// queued for a name that was never bound is dropped when its socket
    /// closes, since no I/O thread holds it.
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
        if let Endpoint::Inproc(name) = &ep {
            let id = pipe.as_ref().map(|(id, _)| *id);
            let old = self
                .shared
                .lock()
                .endpoints
                .insert(endpoint.to_owned(), EndpointHandle::inproc_connect(id));
            self.end_endpoint(endpoint, old);
            crate::inproc::connect(&self.shared, name, endpoint, pipe);
            return Ok(());
        }
        let (stop, stop_rx) = crate::stop::signal();
        self.shared.lock().endpoints.insert(
            endpoint.to_owned(),
            EndpointHandle::task(stop, pipe.as_ref().map(|(id, _)| *id)),
        );
        let shared = self.shared.clone();
        self.shared.spawner.spawn(crate::reconnect::run(
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
        self.end_endpoint(endpoint, Some(handle));
        Ok(())
    }

    /// Stops listening on a bound endpoint (as returned by
    /// [`Socket::bind`]) and closes the connections accepted through it.
    /// An inproc name is free again at once.
    pub fn unbind(&self, endpoint: &str) -> Result<()> {
        let handle = self.shared.lock().endpoints.remove(endpoint);
        let handle = handle.ok_or_else(|| Error::NotFound(endpoint.to_owned()))?;
        self.end_endpoint(endpoint, Some(handle));
        Ok(())
    }

    /// Ends what an endpoint holds: a task stops when its handle drops; an
    /// inproc endpoint's pipes leave here (taking their peers' pipes with
    /// them), its name is freed and a connect waiting for its bind is
    /// withdrawn.
    fn end_endpoint(&self, endpoint: &str, handle: Option<EndpointHandle>) {
        let Some(handle) = handle else { return };
        if let Some(name) = endpoint.strip_prefix("inproc://") {
            if handle.inproc_bind {
                crate::inproc::unbind(&self.shared, name);
            } else {
                crate::inproc::withdraw(&self.shared, name);
            }
            for id in &handle.accepted {
                self.shared.detach_pipe(*id);
            }
        }
        if let Some(id) = handle.pipe {
            self.shared.detach_pipe(id);
        }
    }

    fn bind_inproc(&self, name: &str) -> Result<String> {
        let bound = format!("inproc://{name}");
        {
            let mut st = self.shared.lock();
            if st.endpoints.contains_key(&bound) {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{bound} is bound by this socket already"),
                )));
            }
            st.endpoints
                .insert(bound.clone(), EndpointHandle::inproc_bind());
        }
        crate::inproc::bind(&self.shared, name).inspect_err(|_| {
            self.shared.lock().endpoints.remove(&bound);
        })
    }

    /// Subscribes to a prefix (SUB). Counted: subscribe twice, unsubscribe
    /// twice. Other types return [`Error::NotSupported`] (an XSUB
    /// subscribes by sending `0x01 prefix`).
    pub fn subscribe(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.subscription(true, prefix.as_ref())
    }

    /// Removes one count of a subscription (SUB).
    pub fn unsubscribe(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.subscription(false, prefix.as_ref())
    }

    fn subscription(&self, add: bool, prefix: &[u8]) -> Result<()> {
        self.check_open()?;
        let prefix = Bytes::copy_from_slice(prefix);
        let st = &mut *self.shared.lock();
        let r = st.pattern.subscribe(&st.pipes, add, prefix);
        self.shared
            .passes_all_now
            .store(st.pattern.passes_all_now(), Ordering::Release);
        r
    }

    /// Sends a message. Returns once the message is queued for a peer (or,
    /// for PUB, XPUB and XSUB, for every matching peer with room). Waits
    /// while no peer has room (PUSH, DEALER, REQ, PAIR, and ROUTER with
    /// `router_mandatory`), up to the send timeout. Dropping the future
    /// leaves the message either wholly queued or not queued at all.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<()> {
        self.check_open()?;
        // Fast path: a peer has room.
        match self.try_route(msg) {
            Ok(()) => Ok(()),
            Err(SendError::Blocked(back)) => {
                let deadline = self.shared.sndtimeo().map(|t| Instant::now() + t);
                self.send_prepared(back, deadline).await
            }
            Err(e) => Err(e.into_error()),
        }
    }

    /// Waits for room for a prepared message, up to `deadline` when it is
    /// given (the blocking calls pass none and bound the wait themselves).
    async fn send_prepared(&self, msg: Message, deadline: Option<Instant>) -> Result<()> {
        let mut msg = Some(msg);
        self.wait_routed(deadline, || {
            let Some(m) = msg.take() else {
                return Some(Err(Error::Closed));
            };
            match self.try_route(m) {
                Ok(()) => Some(Ok(())),
                Err(SendError::Blocked(back)) => {
                    msg = Some(back);
                    None
                }
                Err(e) => Some(Err(e.into_error())),
            }
        })
        .await
    }

    /// Calls `attempt` until it gives a result (`None`: no room yet),
    /// waiting between calls for senders to be woken, up to `deadline`
    /// ([`Error::WouldBlock`]) when one is given. A closed socket ends the
    /// wait with [`Error::Closed`].
    async fn wait_routed(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<Result<()>>,
    ) -> Result<()> {
        let mut entry = Entry::new(&self.shared.senders);
        let mut try_once = || match self.check_open() {
            Err(e) => Some(Err(e)),
            Ok(()) => attempt(),
        };
        let routed = std::future::poll_fn(|cx| {
            if let Some(r) = try_once() {
                return Poll::Ready(r);
            }
            // Register, then try again: room made in between wakes us. A
            // wake-up takes the waker out, so every wait registers anew.
            entry.register(cx.waker());
            match try_once() {
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
        self.try_route(msg).map_err(SendError::into_error)
    }

    /// Blocking [`Socket::send`], for plain threads.
    ///
    /// It parks the calling thread. Call it from plain threads, not from a
    /// task of an async runtime: on a runtime thread it stops every other
    /// task of that thread, and if the peer this call waits for is such a
    /// task (a current-thread runtime, say), the two wait for each other
    /// for ever. In async code use the future form. On one of a context's
    /// own I/O threads (inside an Authenticator, say) a call that would
    /// wait returns [`Error::State`] instead.
    pub fn send_blocking(&self, msg: impl Into<Message>) -> Result<()> {
        self.check_open()?;
        // Only park the thread when no peer has room.
        match self.try_route(msg) {
            Ok(()) => Ok(()),
            Err(SendError::Blocked(back)) => {
                refuse_on_io_thread()?;
                let deadline = self.shared.sndtimeo().map(|t| Instant::now() + t);
                block_on_until(self.send_prepared(back, None), deadline)
                    .unwrap_or(Err(Error::WouldBlock))
            }
            Err(e) => Err(e.into_error()),
        }
    }

    /// Hands a message to the pattern, under one lock for choosing the
    /// route and using it; a message with no frame is refused, as every
    /// ZeroMQ binding refuses it.
    ///
    /// Inlined, as are the calls under it down to the pipe and the receive
    /// path's down to the inbox: a `Message` moved across a call is written
    /// to the stack a field at a time and read back in 16-byte pieces,
    /// which wait for the writes to reach the cache (store forwarding
    /// fails). Those waits were the largest items of both paths' profiles
    /// at 16 B; inlined, PUSH/PULL 16 B costs 0.92x the CPU per message
    /// (30 interleaved pairs). The message is made from what the caller
    /// passed under the lock, not before it: made first, it was read from
    /// the caller's stack in 16-byte pieces that straddled the caller's
    /// 8-byte writes (a `Bytes` clone's), a wait at every send.
    #[inline(always)]
    fn try_route(&self, msg: impl Into<Message>) -> Result<(), SendError> {
        let st = &mut *self.shared.lock();
        let msg = msg.into();
        if msg.is_empty() {
            return Err(SendError::Empty);
        }
        st.routed += st.pattern.send(msg, &mut st.pipes)?;
        Ok(())
    }

    /// Receives a message, waiting up to the receive timeout. Dropping the
    /// future loses no message.
    pub async fn recv(&self) -> Result<Message> {
        self.recv_inner(true).await
    }

    /// [`Socket::recv`]; without `timed` it ignores the receive timeout
    /// (the blocking call bounds the wait itself).
    pub(crate) async fn recv_inner(&self, timed: bool) -> Result<Message> {
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
    #[inline(always)]
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
    ///
    /// It parks the calling thread. Call it from plain threads, not from a
    /// task of an async runtime: on a runtime thread it stops every other
    /// task of that thread, and if the peer this call waits for is such a
    /// task (a current-thread runtime, say), the two wait for each other
    /// for ever. In async code use the future form. On one of a context's
    /// own I/O threads (inside an Authenticator, say) a call that would
    /// wait returns [`Error::State`] instead.
    pub fn recv_blocking(&self) -> Result<Message> {
        // Only park the thread when nothing is queued. A message found is
        // returned from inside the loop, not matched out of `try_recv`'s
        // `Result` and moved again (see `try_route`).
        self.check_recv()?;
        loop {
            match self.shared.inbox().try_pop() {
                Ok(Some(item)) => {
                    if let Some(msg) = self.accept(item)? {
                        return Ok(msg);
                    }
                }
                Ok(None) => break,
                Err(_) => return Err(Error::Closed),
            }
        }
        refuse_on_io_thread()?;
        let deadline = self.shared.rcvtimeo().map(|t| Instant::now() + t);
        block_on_until(self.recv_inner(false), deadline).unwrap_or(Err(Error::WouldBlock))
    }

    #[inline(always)]
    fn check_recv(&self) -> Result<()> {
        self.check_open()?;
        if !self.shared.recv_supported {
            return Err(Error::NotSupported("recv"));
        }
        if self.shared.recv_stateful {
            return self.shared.lock().pattern.check_recv();
        }
        Ok(())
    }

    /// Applies the receiving side of the socket's pattern; `None` drops
    /// the message.
    #[inline(always)]
    fn accept(&self, item: Inbound) -> Result<Option<Message>> {
        let pipe = item.pipe();
        let msg = item.msg;
        if self.shared.passes_received || self.shared.passes_all_now.load(Ordering::Acquire) {
            return Ok(Some(msg));
        }
        let st = &mut *self.shared.lock();
        Ok(st.pattern.received(&st.pipes, pipe, msg))
    }

    /// Queues a message if a peer has room now; gives it back when it must
    /// wait (for the `Sink`).
    pub(crate) fn try_send_or_back(&self, msg: Message) -> Result<Option<Message>> {
        self.check_open()?;
        match self.try_route(msg) {
            Ok(()) => Ok(None),
            Err(SendError::Blocked(back)) => Ok(Some(back)),
            Err(e) => Err(e.into_error()),
        }
    }

    /// Waits for room for a message refused by [`Socket::try_send_or_back`].
    pub(crate) async fn send_when_room(&self, msg: Message) -> Result<()> {
        self.send_prepared(msg, None).await
    }

    /// Whether this socket type receives at all (PUB and PUSH do not).
    pub(crate) fn receives(&self) -> bool {
        self.shared.recv_supported
    }

    /// Sends ignoring the send timeout (the proxy waits for room as long
    /// as it takes, as `zmq_proxy` does).
    pub(crate) async fn send_untimed(&self, msg: Message) -> Result<()> {
        match self.try_send_or_back(msg)? {
            None => Ok(()),
            Some(back) => self.send_when_room(back).await,
        }
    }

    /// Whether a receive would not wait (for the poller).
    pub(crate) fn readable_now(&self) -> bool {
        !self.shared.inbox().is_empty() || self.shared.is_closed()
    }

    /// Whether a send would not wait (for the poller).
    pub(crate) fn writable_now(&self) -> bool {
        let st = &*self.shared.lock();
        st.pattern.writable(&st.pipes) || self.shared.is_closed()
    }

    /// Messages queued by `send` that are not yet written to the kernel
    /// (or were lost with their connection).
    pub fn unsent(&self) -> u64 {
        let routed = self.shared.lock().routed;
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

    /// PUB and XPUB: how many subscriptions (peer, prefix) are in effect.
    pub fn subscription_count(&self) -> usize {
        let st = &*self.shared.lock();
        st.pattern.subscription_count(&st.pipes)
    }

    /// Closes the socket now; queued messages are still sent for the linger
    /// period. The same as dropping it.
    pub fn close(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Context, SocketType};

    #[test]
    fn only_a_socket_that_receives_keeps_a_record_of_each_peer() {
        let ctx = Context::new();
        for endpoint in ["tcp://127.0.0.1:0", "inproc://peer-records"] {
            let pull = ctx.socket(SocketType::Pull).expect("pull");
            let push = ctx.socket(SocketType::Push).expect("push");
            let bound = pull.bind(endpoint).expect("bind");
            push.connect(&bound).expect("connect");
            // Received: both ends have admitted each other.
            push.send_blocking("one").expect("send");
            assert_eq!(pull.recv_blocking().expect("recv").frames()[0], "one");
            assert_eq!(pull.shared.inbox().peer_records(), 1, "{endpoint}");
            assert_eq!(push.shared.inbox().peer_records(), 0, "{endpoint}");
        }
    }
}

//! The tasks: one per listener, one per connect endpoint, and one per peer
//! connection. A connection task owns its stream and its sans-IO
//! [`zmtp_core::Connection`]; it alone encodes, encrypts, decrypts and
//! parses, on the I/O thread.
//!
//! Each turn of a connection task:
//! 1. decodes events from what it has read, delivering whole messages to the
//!    socket's queue (stopping when the queue is full: back-pressure);
//! 2. drains every message queued for this peer into the connection (up to a
//!    bound), so that one write carries them all;
//! 3. writes what it can without blocking, with vectored writes;
//! 4. waits for whichever comes first: input, room to write, a queued
//!    message, room in the socket's queue, a timer, or a stop.

use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use async_channel::Receiver;
use async_io::Timer;
use concurrent_queue::PopError;
use futures_lite::FutureExt as _;
use futures_lite::future::{or, pending};
use zmtp_core::{
    AuthVerdict, Config, Connection, Error as CoreError, Event, Mechanism, MechanismName, Message,
    TimeoutKind,
};
use zmtp_security::{
    AuthRequest, CurveClient, CurveServer, NoiseClient, NoiseServer, Null, PlainClient, PlainServer,
};

use crate::endpoint::Endpoint;
use crate::monitor::Refusal;
use crate::monitor::{HandshakeFailure, MonitorEvent};
use crate::options::{Options, Security};
use crate::pattern::Subscription;
use crate::pipe::{Inbound, Out, PipeRx};
use crate::socket::SocketShared;
use crate::transport::{Listener, Stream};

/// Most bytes a task queues for writing before it stops taking messages.
const OUTPUT_BOUND: usize = 1 << 20;
/// Most messages decoded before they are handed to the socket.
const BATCH: usize = 1024;
/// Size of the scratch buffer for reads: large reads mean fewer system
/// calls (64 KiB -> 256 KiB took 4 KiB messages from ~1.5 to 2-3.5 GB/s).
/// One buffer per I/O thread, not per connection.
const SCRATCH: usize = 256 * 1024;

thread_local! {
    static SCRATCH_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH]);
}
/// A frame still missing this much is read straight into the buffer.
const LARGE_READ: usize = 16 * 1024;

/// A task's hold on its peer's queue.
pub(crate) enum PipeSlot {
    /// An accepted peer (or `immediate`): the queue is made when the
    /// handshake succeeds, never before.
    OnHandshake,
    /// A connect endpoint's queue, which outlives each connection.
    Persistent(u64, PipeRx),
    /// A queue made by this connection.
    Attached(u64, PipeRx),
}

impl PipeSlot {
    fn get(&self) -> Option<(u64, &PipeRx)> {
        match self {
            PipeSlot::OnHandshake => None,
            PipeSlot::Persistent(id, rx) | PipeSlot::Attached(id, rx) => Some((*id, rx)),
        }
    }
}

/// How a connection ended.
enum End {
    /// The handshake failed.
    Handshake(HandshakeFailure),
    /// The socket refused the peer after its handshake.
    Refused(Refusal),
    /// An established connection ended.
    Lost(Option<String>),
    /// Stopped by the socket (unbind, disconnect, close).
    Stopped,
}

fn mechanism(opts: &Options) -> Result<Box<dyn Mechanism>, CoreError> {
    Ok(match &opts.security {
        Security::Null => Box::new(Null::with_authentication(opts.authenticator.is_some())),
        Security::PlainClient { username, password } => {
            Box::new(PlainClient::new(username, password)?)
        }
        Security::PlainServer => Box::new(PlainServer::new()),
        Security::CurveClient { keys, server } => Box::new(CurveClient::new(keys.clone(), *server)),
        Security::CurveServer { keys } => Box::new(CurveServer::new(keys.clone())),
        Security::NoiseClient {
            pattern,
            keys,
            server,
        } => Box::new(NoiseClient::new(*pattern, keys.clone(), *server)?),
        Security::NoiseServer { pattern, keys } => {
            Box::new(NoiseServer::new(*pattern, keys.clone()))
        }
        Security::Custom(factory) => factory(),
    })
}

fn config(shared: &SocketShared, opts: &Options, peer: &str) -> Config {
    let mut c = Config::new(shared.socket_type);
    c.routing_id = opts.routing_id.clone();
    c.properties = opts.properties.clone();
    c.max_msg_size = opts.max_msg_size;
    c.handshake_ivl = opts.handshake_ivl;
    c.heartbeat_ivl = opts.heartbeat_ivl;
    c.heartbeat_timeout = opts.heartbeat_timeout;
    c.heartbeat_ttl = opts.heartbeat_ttl;
    c.peer_address = Some(bytes::Bytes::copy_from_slice(peer.as_bytes()));
    c
}

/// Asks the Authenticator, or applies libzmq's behaviour without a ZAP
/// handler: CURVE accepts any client key; PLAIN refuses (libzmq's PLAIN
/// server fails the handshake without a handler, sending no ERROR: status
/// 300 is the silent close).
async fn verdict(
    opts: &Options,
    req: zmtp_core::AuthRequest,
    peer: &str,
    ip: Option<IpAddr>,
) -> AuthVerdict {
    match &opts.authenticator {
        Some(a) => {
            let request = AuthRequest {
                domain: opts.zap_domain.clone(),
                address: peer.to_owned(),
                ip,
                mechanism: req.mechanism,
                credentials: req.credentials,
            };
            a.authenticate(&request).await
        }
        None if req.mechanism == MechanismName::PLAIN => AuthVerdict::Deny { status: 300 },
        None => AuthVerdict::allow(),
    }
}

/// Accepts connections until stopped.
pub(crate) async fn listen(
    shared: Arc<SocketShared>,
    listener: Listener,
    endpoint: String,
    stop: Receiver<()>,
) {
    loop {
        let accepted = or(async { Some(listener.accept().await) }, async {
            let _ = stop.recv().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer, ip))) => {
                shared.emit(MonitorEvent::Accepted {
                    endpoint: endpoint.clone(),
                    peer: peer.clone(),
                });
                let (s, ep, stop) = (shared.clone(), endpoint.clone(), stop.clone());
                shared.spawner.spawn(async move {
                    let mut slot = PipeSlot::OnHandshake;
                    let end = session(&s, stream, &ep, &peer, ip, &mut slot, &stop).await;
                    report(&s, &ep, &peer, end);
                    if let PipeSlot::Attached(id, _) = slot {
                        s.detach_pipe(id);
                    }
                });
            }
            Some(Err(_)) => {
                // Out of descriptors or similar: back off instead of spinning.
                let _ = or(
                    async {
                        Timer::after(Duration::from_millis(100)).await;
                    },
                    async {
                        let _ = stop.recv().await;
                    },
                )
                .await;
            }
        }
    }
    // Closed means closed: the port is released before the event.
    drop(listener);
    shared.emit(MonitorEvent::Closed { endpoint });
}

/// Connects, runs the connection, and reconnects, until stopped.
pub(crate) async fn connect(
    shared: Arc<SocketShared>,
    ep: Endpoint,
    endpoint: String,
    pipe: Option<(u64, PipeRx)>,
    stop: Receiver<()>,
) {
    let base = shared.options().reconnect_ivl;
    let mut ivl = base;
    let mut slot = match pipe {
        Some((id, rx)) => PipeSlot::Persistent(id, rx),
        None => PipeSlot::OnHandshake,
    };
    loop {
        if done_connecting(&shared, &stop, &slot) {
            break;
        }
        let attempt = or(async { Some(Stream::connect(&ep).await) }, async {
            wait_stop_or_linger(&shared, &stop).await;
            None
        })
        .await;
        if let Some(Ok((stream, peer))) = attempt {
            shared.emit(MonitorEvent::Connected {
                endpoint: endpoint.clone(),
                peer: peer.clone(),
            });
            let end = session(&shared, stream, &endpoint, &peer, None, &mut slot, &stop).await;
            if matches!(end, End::Lost(_)) {
                // It worked: start backing off afresh.
                ivl = base;
            }
            report(&shared, &endpoint, &peer, end);
            match std::mem::replace(&mut slot, PipeSlot::OnHandshake) {
                PipeSlot::Attached(id, _) => shared.detach_pipe(id),
                PipeSlot::Persistent(id, rx) => {
                    // The pipe waits for the next peer, which sends its own
                    // subscriptions and has its own routing id.
                    shared.peer_detached(id);
                    slot = PipeSlot::Persistent(id, rx);
                }
                PipeSlot::OnHandshake => {}
            }
        }
        if done_connecting(&shared, &stop, &slot) {
            break;
        }
        shared.emit(MonitorEvent::ConnectRetried {
            endpoint: endpoint.clone(),
            interval: ivl,
        });
        let _ = or(
            async {
                Timer::after(ivl).await;
            },
            wait_stop_or_linger(&shared, &stop),
        )
        .await;
        if let Some(max) = shared.options().reconnect_ivl_max {
            if max > base {
                ivl = (ivl * 2).min(max);
            }
        }
    }
    if let PipeSlot::Persistent(id, _) | PipeSlot::Attached(id, _) = slot {
        shared.detach_pipe(id);
    }
    shared.emit(MonitorEvent::Closed { endpoint });
}

/// A connecter stops when its endpoint was disconnected, or when the socket
/// is closed and its queue is empty or its linger has passed.
fn done_connecting(shared: &SocketShared, stop: &Receiver<()>, slot: &PipeSlot) -> bool {
    if !stop.is_closed() {
        return false;
    }
    if !shared.is_closed() {
        return true;
    }
    let queue_empty = slot.get().is_none_or(|(_, rx)| rx.is_empty());
    queue_empty
        || shared
            .linger_deadline()
            .is_some_and(|d| Instant::now() >= d)
}

async fn wait_stop_or_linger(shared: &SocketShared, stop: &Receiver<()>) {
    if !stop.is_closed() {
        let _ = stop.recv().await;
    }
    if shared.is_closed() {
        match shared.linger_deadline() {
            Some(d) => {
                Timer::at(d).await;
            }
            None => pending::<()>().await,
        }
    }
}

fn report(shared: &SocketShared, endpoint: &str, peer: &str, end: End) {
    let (endpoint, peer) = (endpoint.to_owned(), peer.to_owned());
    match end {
        End::Handshake(reason) => shared.emit(MonitorEvent::HandshakeFailed {
            endpoint,
            peer,
            reason,
        }),
        End::Lost(reason) => shared.emit(MonitorEvent::Disconnected {
            endpoint,
            peer,
            reason,
        }),
        End::Refused(reason) => shared.emit(MonitorEvent::Refused {
            endpoint,
            peer,
            reason,
        }),
        End::Stopped => {}
    }
}

enum Wake {
    Readable,
    Writable,
    Out(Option<Out>),
    Room,
    Timer,
    Stop,
}

/// One branch of a connection's wait: `f(value)` when there is a value,
/// otherwise a future that never completes.
async fn branch<T, F: Future<Output = Wake>>(value: Option<T>, f: impl FnOnce(T) -> F) -> Wake {
    match value {
        Some(v) => f(v).await,
        None => pending().await,
    }
}

/// Runs one connection to its end.
async fn session(
    shared: &Arc<SocketShared>,
    stream: Stream,
    endpoint: &str,
    peer: &str,
    ip: Option<IpAddr>,
    slot: &mut PipeSlot,
    stop: &Receiver<()>,
) -> End {
    let opts = shared.options();
    stream.set_buffer_sizes(opts.sndbuf, opts.rcvbuf);
    let mech = match mechanism(&opts) {
        Ok(m) => m,
        Err(e) => return End::Handshake(HandshakeFailure::Protocol(e.to_string())),
    };
    let mut conn = Connection::new(config(shared, &opts, peer), mech, Instant::now());
    let end = drive(
        shared, &stream, &mut conn, &opts, endpoint, peer, ip, slot, stop,
    )
    .await;
    if !matches!(end, End::Stopped) || conn.has_output() {
        // Best effort: the output may hold an ERROR for the peer.
        let _ = write_some(&stream, &mut conn);
    }
    stream.shutdown();
    end
}

fn fail(established: bool, e: CoreError) -> End {
    if established {
        End::Lost(Some(e.to_string()))
    } else {
        End::Handshake(HandshakeFailure::from_core(&e))
    }
}

fn io_end(established: bool, e: io::Error) -> End {
    if established {
        End::Lost(Some(e.to_string()))
    } else {
        End::Handshake(HandshakeFailure::NoDetail(e.to_string()))
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    shared: &Arc<SocketShared>,
    stream: &Stream,
    conn: &mut Connection,
    opts: &Options,
    endpoint: &str,
    peer: &str,
    ip: Option<IpAddr>,
    slot: &mut PipeSlot,
    stop: &Receiver<()>,
) -> End {
    let inbox = shared.inbox();
    // Messages decoded this turn, handed to the inbox in one batch.
    let mut batch: VecDeque<Inbound> = VecDeque::new();
    let mut room_listener = None;
    let mut eof = false;
    let mut closing = false;
    let mut stop_seen = stop.is_closed();
    // Whether the handshake succeeded (the connection forgets it once an
    // error closes it).
    let mut established = false;
    // Messages taken into the connection's output and not yet written.
    let mut in_output: u64 = 0;
    // Whether the last read filled all its room (see `ReadOutcome::More`).
    let mut read_more = false;
    let mut recycler = Recycler::default();
    // Senders waiting for room are woken when the queue is down to half the
    // high-water mark, not at every message taken, as libzmq's low-water
    // mark does: a full queue then costs one wake-up per half queue, not
    // one per message.
    let low_water = opts.sndhwm.div_ceil(2);
    let room_for_senders = |rx: &PipeRx| opts.sndhwm == 0 || rx.len() <= low_water;
    loop {
        let now = Instant::now();
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            if let Err(e) = conn.handle_timeout(now) {
                return fail(established, e);
            }
        }

        // 1. Deliver: first what did not fit last time.
        if !batch.is_empty() {
            let l = inbox.listen_room();
            if let Ok(false) = inbox.push(&mut batch) {
                room_listener = Some(l);
            }
        }
        // Whether every buffered event was taken; if not, the next turn must
        // not wait for the socket, which may stay quiet.
        let mut drained = false;
        while batch.is_empty() || (batch.len() < BATCH && room_listener.is_none()) {
            // Messages go straight into the batch; other events come back.
            let limit = if room_listener.is_none() {
                BATCH - batch.len()
            } else {
                1
            };
            let pipe = slot.get().map(|(pipe, _)| pipe);
            let mut taken = 0;
            let polled = conn.poll_messages(now, limit, |msg| {
                taken += 1;
                take(&mut batch, &mut recycler, pipe, msg);
            });
            let ev = match polled {
                Ok(Some(ev)) => ev,
                Ok(None) if taken == limit => continue,
                Ok(None) => {
                    drained = true;
                    break;
                }
                Err(e) => return fail(established, e),
            };
            match ev {
                Event::Authenticate(req) => {
                    let deadline = conn.poll_timeout();
                    let v = or(async { Some(verdict(opts, *req, peer, ip).await) }, async {
                        match deadline {
                            Some(d) => {
                                Timer::at(d).await;
                            }
                            None => pending::<()>().await,
                        }
                        None
                    })
                    .await;
                    let Some(v) = v else {
                        return fail(established, CoreError::Timeout(TimeoutKind::Handshake));
                    };
                    if let Err(e) = conn.authenticated(v, Instant::now()) {
                        return fail(established, e);
                    }
                }
                Event::HandshakeSucceeded(peer_meta) => {
                    established = true;
                    let existing = slot.get().map(|(id, _)| id);
                    let attached = shared.attach_peer(existing, &peer_meta);
                    // After attaching: once the event is seen, a ROUTER can
                    // route to the peer.
                    shared.emit(MonitorEvent::HandshakeSucceeded {
                        endpoint: endpoint.to_owned(),
                        peer: peer.to_owned(),
                    });
                    match attached {
                        Ok(Some((id, rx))) => *slot = PipeSlot::Attached(id, rx),
                        Ok(None) => {
                            // A new connection on a pipe that stays: send it
                            // every subscription in effect (SUB, XSUB).
                            for p in shared.own_subscriptions() {
                                if let Err(e) = conn.subscribe(&p) {
                                    return fail(established, e);
                                }
                            }
                        }
                        Err(r) => return End::Refused(r),
                    }
                    if opts.probe_router {
                        if let Err(e) = conn.send(&Message::from(bytes::Bytes::new())) {
                            return fail(established, e);
                        }
                    }
                }
                // `poll_messages` hands messages to its sink, not here.
                Event::Message(msg) => {
                    take(&mut batch, &mut recycler, slot.get().map(|(p, _)| p), msg);
                }
                Event::Subscribe(topic) => {
                    if let Err(end) =
                        subscription(shared, slot, &mut batch, Subscription::Subscribe(topic))
                    {
                        return end;
                    }
                }
                Event::Cancel(topic) => {
                    if let Err(end) =
                        subscription(shared, slot, &mut batch, Subscription::Cancel(topic))
                    {
                        return end;
                    }
                }
            }
        }
        if !batch.is_empty() && room_listener.is_none() {
            let l = inbox.listen_room();
            // A closed inbox (the socket is gone) drops the batch.
            if let Ok(false) = inbox.push(&mut batch) {
                room_listener = Some(l);
            }
        }
        if eof && batch.is_empty() {
            return if established {
                End::Lost(None)
            } else {
                End::Handshake(HandshakeFailure::NoDetail(
                    "connection closed by peer".into(),
                ))
            };
        }

        // 2. Take queued messages.
        let mut took = false;
        if conn.is_ready() && !closing {
            if let Some((_, rx)) = slot.get() {
                loop {
                    // `output_len`, not `output`: sealing happens once, when
                    // the writer runs, so records hold everything queued.
                    if conn.output_len() >= OUTPUT_BOUND {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(out) => {
                            took = true;
                            in_output += u64::from(matches!(out, Out::Msg(_)));
                            if let Err(e) = queue(conn, out) {
                                return fail(established, e);
                            }
                        }
                        Err(PopError::Empty) => break,
                        Err(PopError::Closed) => {
                            closing = true;
                            break;
                        }
                    }
                }
            }
        }
        if took && slot.get().is_some_and(|(_, rx)| room_for_senders(rx)) {
            shared.notify_room();
        }

        // 3. Write.
        if let Err(e) = write_some(stream, conn) {
            return io_end(established, e);
        }
        if in_output > 0 && !conn.has_output() {
            shared
                .written
                .fetch_add(in_output, std::sync::atomic::Ordering::Release);
            in_output = 0;
        }
        if closing && !conn.has_output() {
            // The socket closed the pipe while it and the endpoint are
            // still open: a ROUTER gave the peer's routing id to a new
            // peer (`router_handover`). Closing the socket, unbinding and
            // disconnecting all close the stop signal first.
            if !shared.is_closed() && !stop.is_closed() {
                return End::Lost(Some("a new peer took over its routing id".into()));
            }
            return End::Stopped;
        }
        let linger = if shared.is_closed() {
            shared.linger_deadline()
        } else {
            None
        };
        if linger.is_some_and(|d| Instant::now() >= d) {
            return End::Stopped;
        }
        // Unbind or disconnect ends the connection now; closing the socket
        // lets a connection with a queue finish its handshake and flush it
        // within the linger.
        if stop_seen && (!shared.is_closed() || slot.get().is_none()) {
            return End::Stopped;
        }

        // 4. Wait, unless decoded events are still buffered and there is
        // room for them.
        if !drained && room_listener.is_none() {
            continue;
        }
        let want_read = !eof && batch.is_empty();
        let want_write = conn.has_output();
        let want_out =
            conn.is_ready() && !closing && conn.output_len() < OUTPUT_BOUND && slot.get().is_some();
        let timer = [conn.poll_timeout(), linger].into_iter().flatten().min();
        // The queue is borrowed for the wait, not cloned (a clone per wait
        // cost two atomic updates of the channel's receiver count).
        let rx = slot.get().filter(|_| want_out).map(|(_, rx)| rx);
        let room = room_listener.take();
        let wake = if want_read && read_more {
            // The last read filled its buffer: read again first.
            Wake::Readable
        } else {
            // Polled in this order; a branch without its value never wakes.
            branch(want_read.then_some(stream), |s| async move {
                let _ = s.readable().await;
                Wake::Readable
            })
            .or(branch(want_write.then_some(stream), |s| async move {
                let _ = s.writable().await;
                Wake::Writable
            }))
            .or(branch(rx, |rx| async move { Wake::Out(rx.recv().await) }))
            .or(branch(room, |l| async move {
                l.await;
                Wake::Room
            }))
            .or(branch(timer, |t| async move {
                Timer::at(t).await;
                Wake::Timer
            }))
            .or(branch((!stop_seen).then_some(stop), |s| async move {
                let _ = s.recv().await;
                Wake::Stop
            }))
            .await
        };
        match wake {
            Wake::Readable => {
                match SCRATCH_BUF
                    .with(|b| read_some(stream, conn, &mut b.borrow_mut(), &mut recycler))
                {
                    Ok(ReadOutcome::Eof) => eof = true,
                    Ok(outcome) => read_more = outcome == ReadOutcome::More,
                    Err(e) => return io_end(established, e),
                }
            }
            Wake::Out(Some(out)) => {
                if slot.get().is_some_and(|(_, rx)| room_for_senders(rx)) {
                    shared.notify_room();
                }
                in_output += u64::from(matches!(out, Out::Msg(_)));
                if let Err(e) = queue(conn, out) {
                    return fail(established, e);
                }
            }
            Wake::Out(None) => closing = true,
            Wake::Stop => stop_seen = true,
            Wake::Writable | Wake::Room | Wake::Timer => {}
        }
    }
}

/// Applies a peer's subscription or cancel; XPUB's notice for the
/// application joins the batch, in order with the peer's messages.
fn subscription(
    shared: &SocketShared,
    slot: &PipeSlot,
    batch: &mut VecDeque<Inbound>,
    sub: Subscription,
) -> Result<(), End> {
    let Some((pipe, _)) = slot.get() else {
        return Ok(());
    };
    match shared.peer_subscription(pipe, sub) {
        Ok(Some(msg)) => {
            batch.push_back(Inbound { pipe, msg });
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(_) => Err(End::Lost(Some("subscription limit exceeded".into()))),
    }
}

/// Adds a decoded message to the batch; without a pipe (not attached yet)
/// it is dropped.
fn take(batch: &mut VecDeque<Inbound>, recycler: &mut Recycler, pipe: Option<u64>, msg: Message) {
    if let Some(pipe) = pipe {
        recycler.watch(&msg);
        batch.push_back(Inbound { pipe, msg });
    }
}

fn queue(conn: &mut Connection, out: Out) -> Result<(), CoreError> {
    match out {
        Out::Msg(m) => conn.send(&m),
        Out::Subscribe(t) => conn.subscribe(&t),
        Out::Cancel(t) => conn.cancel(&t),
    }
}

/// What one read found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReadOutcome {
    /// End of stream.
    Eof,
    /// The read filled all the room it had: more is likely waiting, so
    /// read again before asking the reactor (which costs two system calls).
    More,
    /// The kernel had less than the room offered, or nothing.
    Drained,
}

/// Reads once without blocking.
fn read_some(
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
struct Recycler {
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
    fn watch(&mut self, msg: &Message) {
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
fn write_some(stream: &Stream, conn: &mut Connection) -> io::Result<()> {
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

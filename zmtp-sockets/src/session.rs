//! One peer connection's task, the only place its bytes are encoded,
//! encrypted, decrypted and parsed. A [`Session`] owns the stream's
//! sans-IO [`Connection`] and drives it in turns:
//!
//! 1. [`Session::deliver`]: decodes what was read and hands whole messages
//!    to the socket's inbox in one batch (stopping when the inbox is full:
//!    back-pressure);
//! 2. [`Session::take_queued`]: moves every message queued for this peer
//!    into the connection's output (up to a bound), so one write carries
//!    them all;
//! 3. [`Session::write`]: writes what it can without blocking, vectored;
//! 4. [`Session::wait`]: waits for whichever comes first: input, room to
//!    write, a queued message, room in the inbox, a timer, or a stop.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::Bytes;
use event_listener::EventListener;
use futures_lite::future::{or, pending};
use zmtp_core::{
    AuthVerdict, Connection, Error as CoreError, Event, MechanismName, Message, Metadata,
    TimeoutKind,
};
use zmtp_security::AuthRequest;

use crate::inbox::Inbox;
use crate::monitor::{HandshakeFailure, MonitorEvent, Reason, Refusal, StopReason};
use crate::pattern::Subscription;
use crate::pipe::{Inbound, Out, PipeId, PipeRx, TAKE_CHUNK, TAKE_WHOLE, Taken, push_made};
use crate::shared::SocketShared;
use crate::stop::Stop;
use crate::stream_io::{ReadOutcome, Recycler, read_some, write_some};
use crate::transport::Stream;

/// Most bytes a task queues for writing before it stops taking messages.
const OUTPUT_BOUND: usize = 1 << 20;
/// Most messages decoded before they are handed to the socket.
const BATCH: usize = 1024;
/// How a connection task waits for more of a stream of small messages
/// before it takes and writes what the application queued: when its last
/// turn took between [`CORK_MIN`] and `max` messages of fewer than
/// [`CORK_BYTES`] bytes in all (the application is queueing small messages
/// about as fast as the task writes them), it waits up to `wait`, and the
/// queue wakes it earlier once it holds `wake`. Without it such a task
/// takes a few dozen messages at a time, and each write to a loopback TCP
/// socket costs several microseconds whatever its size: runs of PUSH/PULL
/// 16 B that fell into that rhythm made 3 to 5 times as many `writev`s as
/// the others and spent up to 1.7 times their CPU per message. Only on an
/// I/O thread, whose timerfd wakes the task on time (see
/// [`crate::reactor::wake_at`]); the thread sleeps meanwhile rather than
/// polling. A request/reply exchange (one message per turn) never waits.
#[derive(Debug, Clone, Copy)]
struct Cork {
    /// The longest wait.
    wait: Duration,
    /// How many queued messages end the wait.
    wake: usize,
    /// From this many taken on, the application is far enough ahead: no
    /// wait.
    max: usize,
}

/// The cork of an I/O thread that polls for a moment before it sleeps.
/// An application far ahead of such a thread (a turn of `max` or more)
/// finds it polling, and its sends wake nobody; waiting would put the
/// thread to sleep and make the application's send wake it.
const CORK: Cork = Cork {
    wait: Duration::from_micros(30),
    wake: 256,
    max: 512,
};
/// The cork of an I/O thread that sleeps at once (busy polling off): every
/// turn ends in a sleep, and the send that ends it pays an eventfd write
/// and both threads a context switch, so the task waits for twice as many
/// messages, and at every turn of the stream. PUSH/PULL 16 B over tcp
/// then made half the `writev`s and eventfd writes and spent about a
/// fifth less CPU per message; with polling, the same cork cost a fifth
/// more.
const CORK_SLEEPING: Cork = Cork {
    wait: Duration::from_micros(60),
    wake: 512,
    max: TAKE_WHOLE,
};
/// The fewest messages taken at once that make a stream worth waiting for.
const CORK_MIN: usize = 16;
/// From this many bytes on, a write costs little per byte: no wait.
const CORK_BYTES: usize = 64 * 1024;

/// Size of the scratch buffer for reads: large reads mean fewer system
/// calls (64 KiB -> 256 KiB took 4 KiB messages from ~1.5 to 2-3.5 GB/s).
/// One buffer per I/O thread, not per connection.
const SCRATCH: usize = 256 * 1024;
/// The least a read asks for (see [`Session::read_len`]).
const MIN_READ: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH]);
}

/// Where a connection's peer is.
#[derive(Clone, Copy)]
pub(crate) struct PeerAddr<'a> {
    /// The endpoint bound or connected.
    pub(crate) endpoint: &'a str,
    /// The peer's address.
    pub(crate) address: &'a str,
    /// The peer's IP address (tcp), for the Authenticator.
    pub(crate) ip: Option<IpAddr>,
}

/// A task's hold on its peer's queue.
pub(crate) enum PipeSlot {
    /// An accepted peer (or `immediate`): the queue is made when the
    /// handshake succeeds, never before.
    OnHandshake,
    /// A connect endpoint's queue, which outlives each connection.
    Persistent(PipeId, PipeRx),
    /// A queue made by this connection.
    Attached(PipeId, PipeRx),
}

impl PipeSlot {
    pub(crate) fn get(&self) -> Option<(PipeId, &PipeRx)> {
        match self {
            PipeSlot::OnHandshake => None,
            PipeSlot::Persistent(id, rx) | PipeSlot::Attached(id, rx) => Some((*id, rx)),
        }
    }
}

/// How a connection ended.
pub(crate) enum End {
    /// The handshake failed.
    Handshake(HandshakeFailure),
    /// The socket refused the peer after its handshake.
    Refused(Refusal),
    /// An established connection ended (the peer left, the stream broke,
    /// or the peer fell silent past the heartbeat timeout).
    Lost(Option<Reason>),
    /// An established connection was closed for the peer's protocol error.
    Fault(Reason),
    /// Stopped by the socket (unbind, disconnect, close).
    Stopped,
}

impl End {
    /// Why a connect endpoint should stop reconnecting: the peer refused us
    /// with ERROR, or either side broke the protocol. As libzmq's session
    /// (`session_base_t::engine_error`), only a broken or closed connection
    /// and a timeout are worth another attempt with the same settings.
    pub(crate) fn stops_reconnecting(&self) -> Option<StopReason> {
        match self {
            End::Handshake(f) if f.is_final() => Some(StopReason::Handshake(f.clone())),
            End::Fault(reason) => Some(StopReason::Fault(reason.clone())),
            _ => None,
        }
    }
}

/// Runs one connection to its end.
pub(crate) async fn run(
    shared: &Arc<SocketShared>,
    stream: Stream,
    peer: PeerAddr<'_>,
    slot: &mut PipeSlot,
    stop: &Stop,
) -> End {
    let (conn, opts) = match start(shared, &stream, peer.address) {
        Ok(started) => started,
        Err(end) => return end,
    };
    let mut session = Session::new(shared, &stream, conn, opts, peer, slot, stop);
    let end = session.drive().await;
    session.finish(&end);
    end
}

/// The connection and the options its session reads. Not part of `run`'s
/// future: whatever an async function holds as a local takes room in
/// every connection's task for as long as the task lives.
fn start(
    shared: &SocketShared,
    stream: &Stream,
    address: &str,
) -> Result<(Connection, SessionOptions), End> {
    let opts = shared.options();
    stream.set_buffer_sizes(opts.sndbuf, opts.rcvbuf);
    let mech = opts
        .security
        .mechanism(opts.authenticator.is_some())
        .map_err(|e| End::Handshake(HandshakeFailure::Protocol(Reason::Setup(e))))?;
    let mut config = opts.connection_config(shared.socket_type, address);
    // The inbox gives each message the peer's properties on the receiving
    // thread (see `Inbound::peer`); a conflating one keeps only the newest
    // item, so there the connection attaches them.
    config.attach_properties = shared.inbox().conflates();
    let conn = Connection::new(config, mech, Instant::now());
    let opts = SessionOptions {
        authenticator: opts.authenticator,
        zap_domain: opts.zap_domain,
        probe_router: opts.probe_router,
        sndhwm: opts.sndhwm,
    };
    Ok((conn, opts))
}

/// What a turn of decoding stopped at.
enum Decoded {
    /// Every buffered event was taken.
    Drained,
    /// The batch is full, or the inbox has no room: events remain.
    Pending,
    /// The mechanism asks the Authenticator about the peer.
    Authenticate(Box<zmtp_core::AuthRequest>),
}

enum Wake {
    Readable,
    Writable,
    Out,
    Room,
    Timer,
    Stop,
}

/// The few options a session reads after it started: kept instead of a
/// copy of them all, which is 440 bytes for each connection of a socket.
struct SessionOptions {
    authenticator: Option<Arc<dyn crate::security::Authenticator>>,
    zap_domain: String,
    probe_router: bool,
    sndhwm: usize,
}

/// A peer connection being driven.
pub(crate) struct Session<'a> {
    shared: &'a Arc<SocketShared>,
    inbox: &'a Inbox,
    stream: &'a Stream,
    conn: Connection,
    opts: SessionOptions,
    peer: PeerAddr<'a>,
    slot: &'a mut PipeSlot,
    stop: &'a Stop,
    /// Messages decoded this turn, handed to the inbox in one batch. A
    /// vector, made a queue only to be handed over (both ways without a
    /// copy), where a queue's push also found the slot past the ring's
    /// head and wrapped it at every message: PUSH/PULL 16 B took 0.977x
    /// the CPU per message, 32 PUSH -> 1 PULL 0.965x (interleaved). The
    /// copy into the slot still waits on store forwarding (see [`take`]).
    batch: Vec<Inbound>,
    /// Messages taken from the pipe and not yet in the connection's output
    /// (at most a chunk, see [`crate::pipe::TAKE_CHUNK`]).
    outq: VecDeque<Out>,
    /// Set when the inbox had no room for the whole batch: the task waits
    /// for its pipe's share to fall to half (see [`Inbox::poll_room`]).
    room: bool,
    /// The peer's properties are still to go ahead of its first message
    /// (see [`Inbound::peer`]).
    announce: bool,
    eof: bool,
    /// The pipe is closed: send what was taken, then end.
    closing: bool,
    stop_seen: bool,
    /// The registration for the stop signal, kept from wait to wait: one
    /// made and dropped in each wait took the endpoint's list lock twice
    /// per wait (and allocated), about 4 % of the CPU of a thousand
    /// connections trickling (`perf record` of `zmtp bench --pattern
    /// trickle-alone`).
    stop_listener: Option<EventListener>,
    /// Whether the handshake succeeded (the connection forgets it once an
    /// error closes it).
    established: bool,
    /// Messages taken into the connection's output and not yet written.
    in_output: u64,
    /// The last write left bytes the socket had no room for: no write is
    /// tried again until the socket reports room. (Tried at every turn, a
    /// write failed once per batch of messages the application queued
    /// while a slow reader kept the socket full: half of the sending I/O
    /// thread's system calls in such runs, and the CPU they cost was taken
    /// from the reader.)
    write_blocked: bool,
    /// Until when the task waits for more messages before it takes again,
    /// and how many queued end the wait early; set by a turn that took a
    /// stream's few (see [`Cork`]).
    cork: Option<(Instant, usize)>,
    /// Whether the last read filled all its room (see `ReadOutcome::More`).
    read_more: bool,
    /// How much one read asks for: about one batch of messages of the
    /// size lately received, between [`MIN_READ`] and [`SCRATCH`]. Small
    /// messages are read a batch at a time rather than a dozen batches at
    /// once (for 16 B messages this took a tenth off the CPU per message:
    /// a read's bytes are still in cache when they are decoded, and the
    /// receiver starts on a batch sooner); large ones still get the whole
    /// scratch buffer.
    read_len: usize,
    recycler: Recycler,
    /// Senders waiting for room are woken when the queue is down to half
    /// the high-water mark, not at every message taken, as libzmq's
    /// low-water mark does: a full queue then costs one wake-up per half
    /// queue, not one per message.
    low_water: usize,
}

impl<'a> Session<'a> {
    fn new(
        shared: &'a Arc<SocketShared>,
        stream: &'a Stream,
        conn: Connection,
        opts: SessionOptions,
        peer: PeerAddr<'a>,
        slot: &'a mut PipeSlot,
        stop: &'a Stop,
    ) -> Session<'a> {
        Session {
            shared,
            inbox: shared.inbox(),
            stream,
            conn,
            low_water: opts.sndhwm.div_ceil(2),
            opts,
            peer,
            slot,
            stop,
            batch: Vec::new(),
            outq: VecDeque::new(),
            room: false,
            announce: false,
            eof: false,
            closing: false,
            stop_seen: stop.is_raised(),
            stop_listener: None,
            established: false,
            in_output: 0,
            write_blocked: false,
            cork: None,
            read_more: false,
            read_len: SCRATCH,
            recycler: Recycler::default(),
        }
    }

    async fn drive(&mut self) -> End {
        loop {
            match self.turn() {
                Ok(Some(Decoded::Authenticate(req))) => {
                    // Boxed: once per connection, and larger than the
                    // wait, which would otherwise be as large as it in
                    // every connection's task.
                    if let Err(end) = Box::pin(self.authenticate(*req)).await {
                        return end;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    if let Err(end) = self.wait().await {
                        return end;
                    }
                }
                Err(end) => return end,
            }
        }
    }

    /// Steps 1 to 3. `None` when the next step is to wait; otherwise the
    /// turn is to be taken again at once (events remain), or after asking
    /// the Authenticator.
    fn turn(&mut self) -> Result<Option<Decoded>, End> {
        let now = Instant::now();
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now).map_err(|e| self.fail(e))?;
        }
        let decoded = self.deliver(now)?;
        if let Decoded::Authenticate(_) = decoded {
            return Ok(Some(decoded));
        }
        if self.eof && self.batch.is_empty() {
            return Err(if self.established {
                End::Lost(None)
            } else {
                End::Handshake(HandshakeFailure::NoDetail(Reason::Io {
                    kind: std::io::ErrorKind::UnexpectedEof,
                    message: "connection closed by peer".into(),
                }))
            });
        }
        self.take_queued()?;
        self.write()?;
        // Wait, unless decoded events are still buffered and there is room
        // for them.
        if matches!(decoded, Decoded::Pending) && !self.room {
            return Ok(Some(decoded));
        }
        Ok(None)
    }

    fn fail(&self, e: CoreError) -> End {
        if self.established {
            match e {
                CoreError::Timeout(_) => End::Lost(Some(Reason::Wire(e))),
                _ => End::Fault(Reason::Wire(e)),
            }
        } else {
            End::Handshake(HandshakeFailure::from_core(&e))
        }
    }

    fn io_end(&self, e: std::io::Error) -> End {
        if self.established {
            End::Lost(Some(Reason::io(&e)))
        } else {
            End::Handshake(HandshakeFailure::NoDetail(Reason::io(&e)))
        }
    }

    /// Hands the batch to the inbox; listens for room when it did not fit.
    fn push_batch(&mut self) {
        if std::mem::take(&mut self.announce)
            && let (Some((pipe, _)), Some(props)) = (self.slot.get(), self.conn.peer())
        {
            // With the first batch, not at the handshake: a peer that never
            // sends costs the inbox nothing. (Queued at the handshake, the
            // items of peers that came and went filled the inbox of a
            // socket nobody received from, and a later peer's session, its
            // item held back for room, stopped reading and never saw that
            // peer leave.)
            self.batch.insert(0, Inbound::peer(pipe, props.clone()));
        }
        // A closed inbox (the socket is gone) drops the batch. What does
        // not fit stays, at the front of the queue's ring: made a vector
        // again, it moves to the start (rare: the inbox was full).
        let mut batch = VecDeque::from(std::mem::take(&mut self.batch));
        let pushed = self.inbox.push(&mut batch);
        self.batch = Vec::from(batch);
        if let Ok(false) = pushed {
            self.room = true;
        }
    }

    /// Step 1: decodes buffered input into the batch and hands it over.
    fn deliver(&mut self, now: Instant) -> Result<Decoded, End> {
        // First what did not fit last time.
        if !self.batch.is_empty() {
            self.push_batch();
        }
        let mut decoded = Decoded::Pending;
        let buffered = self.conn.recv_buffer().len();
        let mut messages = 0;
        while self.batch.is_empty() || (self.batch.len() < BATCH && !self.room) {
            // Messages go straight into the batch; other events come back.
            let limit = if !self.room {
                BATCH - self.batch.len()
            } else {
                1
            };
            let pipe = self.slot.get().map(|(pipe, _)| pipe);
            let mut taken = 0;
            let (batch, recycler) = (&mut self.batch, &mut self.recycler);
            let polled = self.conn.poll_messages(now, limit, |msg| {
                taken += 1;
                take(batch, recycler, pipe, msg);
            });
            messages += taken;
            let ev = match polled {
                Ok(Some(ev)) => ev,
                Ok(None) if taken == limit => continue,
                Ok(None) => {
                    decoded = Decoded::Drained;
                    break;
                }
                Err(e) => return Err(self.fail(e)),
            };
            match ev {
                Event::Authenticate(req) => {
                    if !self.batch.is_empty() && !self.room {
                        self.push_batch();
                    }
                    return Ok(Decoded::Authenticate(req));
                }
                Event::HandshakeSucceeded(peer) => self.attached(&peer)?,
                // `poll_messages` hands messages to its sink, not here.
                Event::Message(msg) => {
                    let pipe = self.slot.get().map(|(p, _)| p);
                    take(&mut self.batch, &mut self.recycler, pipe, msg);
                }
                Event::Subscribe(topic) => self.subscription(Subscription::Subscribe(topic))?,
                Event::Cancel(topic) => self.subscription(Subscription::Cancel(topic))?,
                // An event a later zmtp-core adds: this engine has nothing
                // to do for it.
                _ => {}
            }
        }
        if !self.batch.is_empty() && !self.room {
            self.push_batch();
        }
        self.size_reads(buffered, messages);
        Ok(decoded)
    }

    /// Sizes the next reads after a decode that took `messages` messages
    /// out of the read buffer, which held `buffered` bytes before it.
    fn size_reads(&mut self, buffered: usize, messages: usize) {
        // Too few messages say little about their size.
        if messages < 64 {
            return;
        }
        let used = buffered.saturating_sub(self.conn.recv_buffer().len());
        self.read_len = (used / messages)
            .saturating_mul(BATCH)
            .clamp(MIN_READ, SCRATCH);
    }

    /// Asks the Authenticator (within the handshake's deadline) and hands
    /// the verdict to the connection.
    async fn authenticate(&mut self, req: zmtp_core::AuthRequest) -> Result<(), End> {
        let deadline = self.conn.poll_timeout();
        let v = or(
            async { Some(verdict(&self.opts, req, self.peer.address, self.peer.ip).await) },
            async {
                match deadline {
                    Some(d) => {
                        Timer::at(d).await;
                    }
                    None => pending::<()>().await,
                }
                None
            },
        )
        .await;
        let Some(v) = v else {
            return Err(self.fail(CoreError::Timeout(TimeoutKind::Handshake)));
        };
        self.conn
            .authenticated(v, Instant::now())
            .map_err(|e| self.fail(e))
    }

    /// The handshake succeeded: the peer joins the socket's routing, or is
    /// refused by its pattern.
    fn attached(&mut self, peer: &Metadata) -> Result<(), End> {
        self.established = true;
        let existing = self.slot.get().map(|(id, _)| id);
        let attached = self.shared.attach_peer(existing, peer);
        // After attaching: once the event is seen, a ROUTER can route to
        // the peer.
        self.shared.emit(MonitorEvent::HandshakeSucceeded {
            endpoint: self.peer.endpoint.to_owned(),
            peer: self.peer.address.to_owned(),
        });
        match attached {
            Ok(Some((id, rx))) => *self.slot = PipeSlot::Attached(id, rx),
            Ok(None) => {
                // A new connection on a pipe that stays: send it every
                // subscription in effect (SUB, XSUB).
                for p in self.shared.own_subscriptions() {
                    self.conn.subscribe(&p).map_err(|e| self.fail(e))?;
                }
            }
            Err(r) => return Err(End::Refused(r)),
        }
        // The peer's properties go ahead of its first message (a conflating
        // inbox has the connection attach them to each message instead).
        self.announce = !self.inbox.conflates();
        if self.opts.probe_router {
            self.conn
                .send(&Message::from(Bytes::new()))
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Applies a peer's subscription or cancel; XPUB's notice for the
    /// application joins the batch, in order with the peer's messages.
    fn subscription(&mut self, sub: Subscription) -> Result<(), End> {
        let Some((pipe, _)) = self.slot.get() else {
            return Ok(());
        };
        match self.shared.peer_subscription(pipe, sub) {
            Ok(Some(msg)) => {
                self.batch.push(Inbound::new(pipe, msg));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(_) => Err(End::Fault(Reason::SubscriptionLimit)),
        }
    }

    /// Whether senders waiting for room should be woken, with `left`
    /// messages still queued.
    fn room_for_senders(&self, left: usize) -> bool {
        self.opts.sndhwm == 0 || left <= self.low_water
    }

    /// Step 2: moves queued messages into the connection's output.
    fn take_queued(&mut self) -> Result<(), End> {
        if !self.conn.is_ready() || self.closing {
            return Ok(());
        }
        let Some((pipe, rx)) = self.slot.get() else {
            return Ok(());
        };
        let mut left = None;
        let mut taken = 0;
        loop {
            // `output_len`, not `output`: sealing happens once, when the
            // writer runs, so records hold everything queued.
            if self.conn.output_len() >= OUTPUT_BOUND {
                break;
            }
            let Some(out) = self.outq.pop_front() else {
                // The whole queue when nothing waits to be written (the
                // usual case at a turn's start): all of it will most
                // likely be encoded now.
                let whole = self.conn.output_len() == 0;
                let r = if let Some(ring) = rx.ring() {
                    // A publisher's copies are encoded as they are taken,
                    // not moved into `outq` first.
                    let max = if whole { TAKE_WHOLE } else { TAKE_CHUNK };
                    let (conn, in_output) = (&mut self.conn, &mut self.in_output);
                    let mut failed = None;
                    let (r, k) = ring.take_each(max, |out| match queue(conn, in_output, out) {
                        Ok(()) => conn.output_len() < OUTPUT_BOUND,
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    });
                    taken += k;
                    if let Some(e) = failed {
                        return Err(self.fail(e));
                    }
                    r
                } else {
                    let before = self.outq.len();
                    let r = rx.take_chunk(&mut self.outq, whole);
                    taken += self.outq.len() - before;
                    r
                };
                match r {
                    Taken::Some(n) => {
                        left = Some(n);
                        continue;
                    }
                    // What the application staged while this task was
                    // busy (see `Pipe::staging`).
                    Taken::Empty
                        if rx.may_have_staged()
                            && self.shared.unstage(pipe, Some(&mut self.outq)) == Some(true) =>
                    {
                        // Handed over whole, or moved to the queue (then
                        // the next take says what is left).
                        taken += self.outq.len();
                        left = Some(0);
                        continue;
                    }
                    Taken::Empty => break,
                    Taken::Closed => {
                        self.closing = true;
                        break;
                    }
                }
            };
            if let Err(e) = queue(&mut self.conn, &mut self.in_output, out) {
                return Err(self.fail(e));
            }
        }
        // When the output filled up before the task's hands emptied, what
        // it holds beyond a chunk goes back to the queue, where the
        // high-water mark counts it.
        rx.unget_beyond(&mut self.outq, TAKE_CHUNK);
        let cork = if crate::reactor::sleeps_at_once() {
            CORK_SLEEPING
        } else {
            CORK
        };
        // A queue bounded below the wake-up count would hold the
        // application at the high-water mark until the wait's end: it
        // wakes the task at half the mark at most.
        let wake = match self.opts.sndhwm {
            0 => cork.wake,
            _ => cork.wake.min(self.low_water),
        };
        self.cork = ((CORK_MIN..cork.max).contains(&taken) && self.conn.output_len() < CORK_BYTES)
            .then(|| (Instant::now() + cork.wait, wake));
        if left.is_some_and(|n| self.room_for_senders(n)) {
            self.shared.notify_room();
        }
        Ok(())
    }

    /// Step 3: writes, and ends the session when it has nothing left to do.
    fn write(&mut self) -> Result<(), End> {
        if !self.write_blocked {
            match write_some(self.stream, &mut self.conn) {
                Ok(blocked) => self.write_blocked = blocked,
                Err(e) => return Err(self.io_end(e)),
            }
        }
        if self.in_output > 0 && !self.conn.has_output() {
            self.shared
                .written
                .fetch_add(self.in_output, Ordering::Release);
            self.in_output = 0;
        }
        if self.closing && !self.conn.has_output() {
            // The socket closed the pipe while it and the endpoint are
            // still open: a ROUTER gave the peer's routing id to a new
            // peer (`router_handover`). Closing the socket, unbinding and
            // disconnecting all close the stop signal first.
            if !self.shared.is_closed() && !self.stop.is_raised() {
                return Err(End::Lost(Some(Reason::RoutingIdTakenOver)));
            }
            return Err(End::Stopped);
        }
        if self.linger().is_some_and(|d| Instant::now() >= d) {
            return Err(End::Stopped);
        }
        // Unbind or disconnect ends the connection now; closing the socket
        // lets a connection with a queue finish its handshake and flush it
        // within the linger.
        if self.stop_seen && (!self.shared.is_closed() || self.slot.get().is_none()) {
            return Err(End::Stopped);
        }
        Ok(())
    }

    fn linger(&self) -> Option<Instant> {
        if self.shared.is_closed() {
            self.shared.linger_deadline()
        } else {
            None
        }
    }

    /// Step 4: waits for the next thing to do, and does the little it
    /// takes (a read, one queued message).
    async fn wait(&mut self) -> Result<(), End> {
        let want_read = !self.eof && self.batch.is_empty();
        let want_write = self.conn.has_output();
        let want_out = self.conn.is_ready()
            && !self.closing
            && self.conn.output_len() < OUTPUT_BOUND
            && self.slot.get().is_some();
        if want_out && !self.outq.is_empty() {
            // The write made room for messages already taken: no waiting.
            return Ok(());
        }
        let timer = [self.conn.poll_timeout(), self.linger()]
            .into_iter()
            .flatten()
            .min();
        // The queue is borrowed for the wait, not cloned (a clone per wait
        // cost two atomic updates of the channel's receiver count).
        let rx = self.slot.get().filter(|_| want_out);
        let shared = self.shared;
        // A stream of small messages that the application queues about as
        // fast as this task writes them: wait for more before taking them
        // (see `Cork`).
        let cork = self.cork.filter(|_| !want_write);
        // The pipe whose room to wait for.
        let room = std::mem::take(&mut self.room)
            .then(|| self.slot.get().map(|(pipe, _)| pipe))
            .flatten();
        let inbox = self.inbox;
        let stream = self.stream;
        let stop = (!self.stop_seen).then_some(self.stop);
        let wake = if want_read && self.read_more {
            // The last read filled its buffer: read again first.
            Wake::Readable
        } else {
            // One poll over every source, in this order, rather than a
            // future for each: the wait is part of every connection's task
            // for as long as the task lives, idle or not.
            let mut timer = timer.map(Timer::at);
            let stop_listener = &mut self.stop_listener;
            let recycler = &mut self.recycler;
            poll_fn(|cx| {
                if want_read && stream.poll_ready(cx, false).is_ready() {
                    return Poll::Ready(Wake::Readable);
                }
                if want_write && stream.poll_ready(cx, true).is_ready() {
                    return Poll::Ready(Wake::Writable);
                }
                if let Some((pipe, rx)) = rx {
                    let poll = |cx: &mut std::task::Context<'_>| match cork {
                        Some((t, _)) if Instant::now() >= t => true,
                        // Only an I/O thread wakes the task in time;
                        // elsewhere the first send wakes it as usual.
                        Some((t, n)) if crate::reactor::wake_at(t, cx.waker()) => {
                            rx.poll_ready_when(cx, n).is_ready()
                        }
                        _ => rx.poll_ready(cx).is_ready(),
                    };
                    // With the waker stored, what the application staged
                    // meanwhile (a send from now on sees the task wait;
                    // see `Pipe::stage`).
                    let ready = poll(cx)
                        || (rx.may_have_staged_now()
                            && match shared.unstage(pipe, None) {
                                Some(moved) => moved && poll(cx),
                                // A send holds the lock; it or the next sees
                                // the task wait, unless it ended before the
                                // waker was stored: look again after a
                                // yield (to the sending thread, when it
                                // was preempted on this CPU holding it).
                                None => {
                                    std::thread::yield_now();
                                    cx.waker().wake_by_ref();
                                    false
                                }
                            });
                    if ready {
                        return Poll::Ready(Wake::Out);
                    }
                }
                if let Some(pipe) = room
                    && inbox.poll_room(pipe, cx).is_ready()
                {
                    return Poll::Ready(Wake::Room);
                }
                if let Some(t) = &mut timer
                    && Pin::new(t).poll(cx).is_ready()
                {
                    return Poll::Ready(Wake::Timer);
                }
                if stop.is_some_and(|s| s.poll_raised(cx, stop_listener).is_ready()) {
                    return Poll::Ready(Wake::Stop);
                }
                // Memory kept for a stream of reads goes back once reads
                // stop (see `Recycler::look_idle`): the thread wakes the task to
                // look, without ending its polling meanwhile.
                if recycler.holds_memory()
                    && let Some(at) = recycler.look_idle(Instant::now())
                {
                    crate::reactor::wake_later(at, cx.waker());
                }
                Poll::Pending
            })
            .await
        };
        match wake {
            Wake::Readable => {
                let (conn, recycler) = (&mut self.conn, &mut self.recycler);
                let len = self.read_len;
                let read = SCRATCH_BUF
                    .with(|b| read_some(stream, conn, &mut b.borrow_mut()[..len], recycler));
                match read {
                    Ok(ReadOutcome::Eof) => self.eof = true,
                    Ok(outcome) => self.read_more = outcome == ReadOutcome::More,
                    Err(e) => return Err(self.io_end(e)),
                }
            }
            Wake::Stop => self.stop_seen = true,
            Wake::Writable => self.write_blocked = false,
            // The next turn takes what was queued.
            Wake::Out | Wake::Room | Wake::Timer => {}
        }
        Ok(())
    }

    /// After the end: a best-effort write (the output may hold an ERROR for
    /// the peer), then the stream is shut down.
    fn finish(&mut self, end: &End) {
        // What was taken and not sent goes back to a connect's queue, for
        // the next connection.
        if let PipeSlot::Persistent(_, rx) = &*self.slot {
            rx.unget(&mut self.outq);
        }
        if !matches!(end, End::Stopped) || self.conn.has_output() {
            let _ = write_some(self.stream, &mut self.conn);
        }
        self.stream.shutdown();
    }
}

/// Adds a decoded message to the batch; without a pipe (not attached yet)
/// it is dropped. Always inlined: as a call, it read the message from
/// the caller's stack in 16-byte loads that straddled the 8-byte stores
/// that had just built it, a wait for those stores to reach the cache
/// (about half of its samples with 64 subscribers); inlined, that
/// workload took 3 % less CPU over 10 interleaved rounds.
#[inline(always)]
fn take(batch: &mut Vec<Inbound>, recycler: &mut Recycler, pipe: Option<u64>, msg: Message) {
    if let Some(pipe) = pipe {
        recycler.watch(&msg);
        // With room known, the item is written straight into its slot
        // (`push_made`, as a staged send is).
        // A plain `push_back` built it on the stack first (it must outlive
        // the call that may grow the queue) in 8-byte stores and copied it
        // in 16-byte loads that straddled them: no store forwarding, a
        // wait at every message (in 32 PUSH -> 1 PULL, 21 % of the
        // receiving I/O thread's samples were in this function). One such
        // wait is left: the message crosses the decoder's sink as a value
        // in memory, built in 8-byte stores and copied into the slot in
        // 16-byte loads (about 3 % of a pinned PUSH/PULL pair's samples).
        // Building it by value in the decoder, or watching it after the
        // push, left that copy as it was.
        push_made(batch, || Inbound::new(pipe, msg));
    }
}

/// Encodes a taken item into the connection's output, counting messages
/// in `in_output`.
#[inline]
fn queue(conn: &mut Connection, in_output: &mut u64, out: Out) -> Result<(), CoreError> {
    *in_output += u64::from(out.is_message());
    match out {
        Out::Msg(m) => conn.send(&m),
        Out::Small(s) => conn.send_slice(s.as_slice()),
        Out::Subscribe(t) => conn.subscribe(&t),
        Out::Cancel(t) => conn.cancel(&t),
    }
}

/// Asks the Authenticator, or applies libzmq's behaviour without a ZAP
/// handler: CURVE accepts any client key; PLAIN refuses (libzmq's PLAIN
/// server fails the handshake without a handler, sending no ERROR: status
/// 300 is the silent close).
async fn verdict(
    opts: &SessionOptions,
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

pub(crate) fn report(shared: &SocketShared, endpoint: &str, peer: &str, end: End) {
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
        End::Fault(reason) => shared.emit(MonitorEvent::Disconnected {
            endpoint,
            peer,
            reason: Some(reason),
        }),
        End::Refused(reason) => shared.emit(MonitorEvent::Refused {
            endpoint,
            peer,
            reason,
        }),
        End::Stopped => {}
    }
}

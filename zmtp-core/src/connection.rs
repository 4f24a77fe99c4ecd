//! The connection state machine: greeting → mechanism handshake → traffic.
//!
//! ```text
//!  new() ── our greeting queued
//!    │
//!    ▼
//!  Greeting ── peer greeting decoded, mechanism and version checked
//!    │
//!    ▼
//!  Handshake ◄──► AwaitVerdict   (mechanism commands; Authenticator)
//!    │
//!    ▼  Socket-Type checked against ours
//!  Traffic ── messages, SUBSCRIBE/CANCEL, PING/PONG, heartbeats
//!    │
//!    ▼  any peer fault or timeout
//!  Closed
//! ```
//!
//! It does no I/O and reads no clock. The driver (one task per connection in
//! zmtp-sockets) calls it in this order:
//!
//! 1. read bytes into [`Connection::recv_buffer`], reserving
//!    [`Connection::reserve_hint`] first, then call
//!    [`Connection::input_arrived`];
//! 2. call [`Connection::poll_event`] until it returns `Ok(None)`, handling
//!    each [`Event`] (answering [`Event::Authenticate`] with
//!    [`Connection::authenticated`]); stop early to apply back-pressure.
//!    [`Connection::poll_messages`] does the same with the messages handed
//!    to a callback, a batch at a time (the engine uses it);
//! 3. queue outgoing messages with [`Connection::send`];
//! 4. write what [`Connection::output`] holds, advancing it by the bytes
//!    written;
//! 5. call [`Connection::handle_timeout`] at [`Connection::poll_timeout`].
//!
//! Any error closes the connection; the driver should still try to write the
//! pending output (it may hold an ERROR command for the peer) and then close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::{Encoder, Frame, FrameDecoder};
use crate::error::{Error, PeerError, Result, TimeoutKind, UsageError, malformed, protocol};
use crate::mechanism::{AuthRequest, AuthVerdict, HandshakeContext, Mechanism, Step, Traffic};
use crate::message::Message;
use crate::socket_type::SocketType;
use crate::wire::{
    Command, FrameHeader, GREETING_LEN, Greeting, IDENTITY, MAX_PING_CONTEXT, Metadata,
    PEER_ADDRESS, SOCKET_TYPE,
};

/// Largest frame accepted during the handshake, whatever the maximum message
/// size: handshake commands are small (CURVE's INITIATE is 257 bytes plus
/// metadata).
pub const HANDSHAKE_MAX_FRAME: u64 = 16 * 1024;

/// Connection settings. Defaults are libzmq's.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our socket type.
    pub socket_type: SocketType,
    /// Our routing id, sent as `Identity` by REQ, DEALER and ROUTER.
    pub routing_id: Bytes,
    /// Application properties (`X-...`) sent in READY.
    pub properties: Metadata,
    /// Largest frame accepted after the handshake (`None`: unlimited, as
    /// libzmq's `ZMQ_MAXMSGSIZE` of -1). Checked from the header alone.
    pub max_msg_size: Option<u64>,
    /// Most frames in one message; a bound on the memory a peer can make us
    /// hold with empty frames.
    pub max_frames: usize,
    /// Handshake deadline (`ZMQ_HANDSHAKE_IVL`, 30 s).
    pub handshake_ivl: Option<Duration>,
    /// Interval between our PINGs (`ZMQ_HEARTBEAT_IVL`, off).
    pub heartbeat_ivl: Option<Duration>,
    /// How long to wait for traffic after a PING (`ZMQ_HEARTBEAT_TIMEOUT`,
    /// defaults to the interval).
    pub heartbeat_timeout: Option<Duration>,
    /// TTL announced in our PINGs (`ZMQ_HEARTBEAT_TTL`).
    pub heartbeat_ttl: Option<Duration>,
    /// The peer's address, attached to received messages as `Peer-Address`.
    pub peer_address: Option<Bytes>,
    /// Whether each received message carries the peer's properties (on by
    /// default). A driver that hands messages to another thread may turn
    /// it off and attach [`Connection::peer`] there itself: each attached
    /// copy is a reference count, and counting on the decoding thread what
    /// the receiving thread releases moves a cache line between the two at
    /// every message.
    pub attach_properties: bool,
}

impl Config {
    /// Defaults for a socket type.
    pub fn new(socket_type: SocketType) -> Config {
        Config {
            socket_type,
            routing_id: Bytes::new(),
            properties: Metadata::new(),
            max_msg_size: None,
            max_frames: 65_536,
            handshake_ivl: Some(Duration::from_secs(30)),
            heartbeat_ivl: None,
            heartbeat_timeout: None,
            heartbeat_ttl: None,
            peer_address: None,
            attach_properties: true,
        }
    }

    fn local_metadata(&self) -> Metadata {
        let mut m = Metadata::new();
        // Canonical names and values: libzmq compares them byte for byte.
        let _ = m.insert(
            SOCKET_TYPE,
            Bytes::from_static(self.socket_type.as_str().as_bytes()),
        );
        if self.socket_type.sends_identity() {
            let _ = m.insert(IDENTITY, self.routing_id.clone());
        }
        for (name, value) in self.properties.iter() {
            let _ = m.insert(name, value.clone());
        }
        m
    }
}

/// What the connection reports to its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The mechanism needs the Authenticator's verdict; answer with
    /// [`Connection::authenticated`]. No input is processed until then.
    /// Boxed: every received message travels as an `Event`, and the rare
    /// request is twice a message's size (unboxed, moving the larger enum
    /// cost a third of the receive path: `cargo bench -p zmtp-core --bench
    /// codec -- connection/recv`, 68 against 46 ns per message).
    Authenticate(Box<AuthRequest>),
    /// The handshake succeeded. The metadata is the peer's, with local
    /// properties (`User-Id`, `Peer-Address`) added.
    HandshakeSucceeded(Arc<Metadata>),
    /// A whole message arrived.
    Message(Message),
    /// The peer subscribed to a prefix (publisher sockets only).
    Subscribe(Bytes),
    /// The peer cancelled a subscription (publisher sockets only).
    Cancel(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Handshake,
    AwaitVerdict,
    Traffic,
    Closed,
}

#[derive(Debug, Default)]
struct Heartbeat {
    next_ping: Option<Instant>,
    /// Set when a PING went out; cleared by any input.
    answer_deadline: Option<Instant>,
    /// TTL from the peer's last PING.
    peer_ttl: Option<Duration>,
    ttl_deadline: Option<Instant>,
}

/// One ZMTP connection, sans I/O. See the module documentation for the call
/// order.
pub struct Connection {
    config: Config,
    phase: Phase,
    mechanism: Option<Box<dyn Mechanism>>,
    traffic: Traffic,
    our_greeting: [u8; GREETING_LEN],
    peer_greeting: Option<Greeting>,
    peer: Option<Arc<Metadata>>,
    rx: BytesMut,
    plain_rx: BytesMut,
    /// A record that failed to open, reported once the frames decrypted
    /// before it are decoded.
    stream_failure: Option<Error>,
    decoder: FrameDecoder,
    tx: Encoder,
    plain_tx: BytesMut,
    partial: Vec<Bytes>,
    handshake_deadline: Option<Instant>,
    heartbeat: Heartbeat,
    scratch: Vec<Bytes>,
    /// An event produced outside `poll_event` (by a verdict), replayed by it.
    pending: Option<Event>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("socket_type", &self.config.socket_type)
            .field("phase", &self.phase)
            .field("traffic", &self.traffic)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A new connection; our greeting is queued for output at once (libzmq
    /// sends its greeting in parts, but a peer may send all 64 bytes at once).
    pub fn new(config: Config, mechanism: Box<dyn Mechanism>, now: Instant) -> Connection {
        let our_greeting = Greeting::new(mechanism.name(), mechanism.as_server()).emit();
        let mut tx = Encoder::new();
        tx.raw(&our_greeting);
        Connection {
            handshake_deadline: config.handshake_ivl.map(|d| now + d),
            decoder: FrameDecoder::new(Some(HANDSHAKE_MAX_FRAME)),
            config,
            phase: Phase::Greeting,
            mechanism: Some(mechanism),
            traffic: Traffic::Plain,
            our_greeting,
            peer_greeting: None,
            peer: None,
            rx: BytesMut::new(),
            plain_rx: BytesMut::new(),
            stream_failure: None,
            tx,
            plain_tx: BytesMut::new(),
            partial: Vec::new(),
            heartbeat: Heartbeat::default(),
            scratch: Vec::new(),
            pending: None,
        }
    }

    /// Our socket type.
    pub fn socket_type(&self) -> SocketType {
        self.config.socket_type
    }

    /// Whether the handshake has finished and the connection is open.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Traffic
    }

    /// Whether an error has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The peer's properties, once the handshake has finished.
    pub fn peer(&self) -> Option<&Arc<Metadata>> {
        self.peer.as_ref()
    }

    /// The peer's greeting, once received.
    pub fn peer_greeting(&self) -> Option<&Greeting> {
        self.peer_greeting.as_ref()
    }

    /// The buffer the driver reads into.
    pub fn recv_buffer(&mut self) -> &mut BytesMut {
        &mut self.rx
    }

    /// How much room to make in the receive buffer before the next read;
    /// bounded by what has arrived, never by what a header announces.
    pub fn reserve_hint(&self) -> usize {
        match self.traffic {
            Traffic::Stream(_) => crate::codec::READ_CHUNK,
            _ => self.decoder.reserve_hint(&self.rx),
        }
    }

    /// How many bytes of the frame being received are still to arrive
    /// beyond those in the receive buffer; `None` between frames (and for
    /// a raw stream, which has none). A driver can read a large frame's
    /// rest straight into a buffer of its own with it.
    pub fn frame_missing(&self) -> Option<usize> {
        match self.traffic {
            Traffic::Stream(_) => None,
            _ => self.decoder.missing(&self.rx),
        }
    }

    /// Records that bytes arrived at `now` (any input satisfies heartbeats).
    pub fn input_arrived(&mut self, now: Instant) {
        self.heartbeat.answer_deadline = None;
        if let Some(ttl) = self.heartbeat.peer_ttl {
            self.heartbeat.ttl_deadline = Some(now + ttl);
        }
    }

    /// Decodes the next event from the received bytes. `Ok(None)` means
    /// more input is needed (or a verdict, after [`Event::Authenticate`]).
    #[inline(never)]
    pub fn poll_event(&mut self, now: Instant) -> Result<Option<Event>> {
        if self.phase == Phase::Closed {
            return Err(Error::Usage(UsageError::Closed));
        }
        if let Some(ev) = self.pending.take() {
            return Ok(Some(ev));
        }
        let r = self.poll_inner(now);
        self.close_on_error(r)
    }

    /// [`Connection::poll_event`] in a loop that hands every message to
    /// `sink`, at most `limit` of them, and stops at any other event, which
    /// it returns. `Ok(None)` with fewer than `limit` messages means more
    /// input is needed. After the handshake, single-frame messages take a
    /// shorter path, which moves each message once instead of through an
    /// `Event` per message.
    pub fn poll_messages(
        &mut self,
        now: Instant,
        limit: usize,
        sink: impl FnMut(Message),
    ) -> Result<Option<Event>> {
        let r = self.messages_inner(now, limit, sink);
        self.close_on_error(r)
    }

    /// Any error closes the connection.
    fn close_on_error<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.phase = Phase::Closed;
        }
        r
    }

    fn messages_inner(
        &mut self,
        now: Instant,
        limit: usize,
        mut sink: impl FnMut(Message),
    ) -> Result<Option<Event>> {
        let mut n = 0;
        while n < limit {
            let ev = if self.phase != Phase::Traffic || self.pending.is_some() {
                self.poll_event(now)?
            } else {
                // What `poll_event` does in traffic, with single-frame data
                // messages handed over at once. A publisher reads
                // subscriptions in data messages: those go through
                // `deliver`.
                let shortcut = self.partial.is_empty() && !self.config.socket_type.is_publisher();
                let Some(f) = self.next_frame()? else {
                    return Ok(None);
                };
                if shortcut && !f.more && !f.command {
                    let mut msg = Message::from(f.body.freeze());
                    self.attach_peer(&mut msg);
                    sink(msg);
                    n += 1;
                    continue;
                }
                match self.on_frame(f, now)? {
                    Some(ev) => Some(ev),
                    None => continue,
                }
            };
            match ev {
                Some(Event::Message(m)) => {
                    sink(m);
                    n += 1;
                }
                other => return Ok(other),
            }
        }
        Ok(None)
    }

    fn poll_inner(&mut self, now: Instant) -> Result<Option<Event>> {
        loop {
            match self.phase {
                Phase::Closed => return Err(Error::Usage(UsageError::Closed)),
                Phase::AwaitVerdict => return Ok(None),
                Phase::Greeting => {
                    let Some(peer) = Greeting::decode(&self.rx)? else {
                        return Ok(None);
                    };
                    let mut peer_bytes = [0u8; GREETING_LEN];
                    peer_bytes.copy_from_slice(&self.rx[..GREETING_LEN]);
                    self.rx.advance(GREETING_LEN);
                    let Some(mech) = self.mechanism.as_mut() else {
                        return Err(Error::Usage(UsageError::Closed));
                    };
                    // RFC 23: "If the mechanism does not match, the peer
                    // MUST close the connection." All 20 bytes count.
                    if peer.mechanism != mech.name() {
                        return Err(Error::Peer(PeerError::MechanismMismatch {
                            ours: mech.name(),
                            theirs: peer.mechanism,
                        }));
                    }
                    self.peer_greeting = Some(peer);
                    self.phase = Phase::Handshake;
                    let local = self.config.local_metadata();
                    let ctx = HandshakeContext {
                        local: &local,
                        our_greeting: &self.our_greeting,
                        peer_greeting: &peer_bytes,
                        peer: &peer,
                    };
                    let mut out = std::mem::take(&mut self.scratch);
                    let step = mech.start(&ctx, &mut out);
                    if let Some(ev) = self.after_step(step, &mut out, now)? {
                        return Ok(Some(ev));
                    }
                }
                Phase::Handshake => {
                    let Some(frame) = self.decoder.decode(&mut self.rx)? else {
                        return Ok(None);
                    };
                    if !frame.command {
                        return Err(protocol("message frame during the handshake"));
                    }
                    let body = frame.body.freeze();
                    if body.starts_with(b"\x05ERROR") {
                        return Err(error_command(&body));
                    }
                    if let Some(status) = libzmq_plain_error(&body) {
                        return Err(Error::Peer(PeerError::AuthFailed { status }));
                    }
                    let Some(mech) = self.mechanism.as_mut() else {
                        return Err(Error::Usage(UsageError::Closed));
                    };
                    let mut out = std::mem::take(&mut self.scratch);
                    let step = mech.handle_command(body, &mut out);
                    if let Some(ev) = self.after_step(step, &mut out, now)? {
                        return Ok(Some(ev));
                    }
                }
                Phase::Traffic => {
                    let Some(frame) = self.next_frame()? else {
                        return Ok(None);
                    };
                    if let Some(ev) = self.on_frame(frame, now)? {
                        return Ok(Some(ev));
                    }
                }
            }
        }
    }

    /// Handles a mechanism step: queues its commands, and on `Done` checks
    /// the peer and switches to traffic.
    fn after_step(
        &mut self,
        step: Result<Step>,
        out: &mut Vec<Bytes>,
        now: Instant,
    ) -> Result<Option<Event>> {
        // Queue commands even when the step failed: they may be an ERROR
        // for the peer.
        for body in out.drain(..) {
            self.tx.frame(false, true, &body);
        }
        self.scratch = std::mem::take(out);
        match step? {
            Step::Continue => Ok(None),
            Step::Authenticate(req) => {
                self.phase = Phase::AwaitVerdict;
                Ok(Some(Event::Authenticate(Box::new(req))))
            }
            Step::Done(mut peer) => {
                let theirs = peer
                    .get(SOCKET_TYPE)
                    .ok_or_else(|| protocol("READY without Socket-Type"))?;
                let theirs =
                    SocketType::from_name(theirs).ok_or_else(|| protocol("unknown Socket-Type"))?;
                let ours = self.config.socket_type;
                if !ours.is_compatible(theirs) {
                    return Err(Error::Peer(PeerError::IncompatibleSocketType {
                        ours,
                        theirs,
                    }));
                }
                // RFC 37: an Identity must not start with a zero byte.
                if peer.get(IDENTITY).is_some_and(|id| id.first() == Some(&0)) {
                    return Err(protocol("Identity starts with a zero byte"));
                }
                if let Some(addr) = &self.config.peer_address {
                    let _ = peer.insert(PEER_ADDRESS, addr.clone());
                }
                let peer = Arc::new(peer);
                let mech = self
                    .mechanism
                    .take()
                    .ok_or(Error::Usage(UsageError::Closed))?;
                self.traffic = mech.into_traffic();
                let overhead = match &self.traffic {
                    Traffic::Frames(c) => c.overhead() as u64,
                    _ => 0,
                };
                self.decoder
                    .set_max_size(self.config.max_msg_size.map(|m| m + overhead));
                self.phase = Phase::Traffic;
                self.handshake_deadline = None;
                self.heartbeat.next_ping = self.config.heartbeat_ivl.map(|ivl| now + ivl);
                self.peer = Some(peer.clone());
                Ok(Some(Event::HandshakeSucceeded(peer)))
            }
        }
    }

    /// Gives the Authenticator's verdict to the mechanism.
    pub fn authenticated(&mut self, verdict: AuthVerdict, now: Instant) -> Result<()> {
        if self.phase != Phase::AwaitVerdict {
            return Err(Error::Usage(UsageError::InvalidArgument(
                "no verdict was asked for",
            )));
        }
        let Some(mech) = self.mechanism.as_mut() else {
            return Err(Error::Usage(UsageError::Closed));
        };
        self.phase = Phase::Handshake;
        let mut out = std::mem::take(&mut self.scratch);
        let step = mech.handle_verdict(verdict, &mut out);
        match self.after_step(step, &mut out, now) {
            Ok(ev) => {
                // Replayed by the next poll_event.
                self.pending = ev;
                Ok(())
            }
            Err(e) => {
                self.phase = Phase::Closed;
                Err(e)
            }
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        match &mut self.traffic {
            Traffic::Plain => self.decoder.decode(&mut self.rx),
            Traffic::Frames(cipher) => {
                let Some(f) = self.decoder.decode(&mut self.rx)? else {
                    return Ok(None);
                };
                // The wire flags of a sealed frame carry nothing: libzmq sends
                // CURVE MESSAGE in a plain data frame and decodes it whatever
                // the flags; the real flags are inside the box.
                let (more, command, body) = cipher.open(f.body)?;
                if more && command {
                    return Err(malformed("frame: MORE set on a command"));
                }
                Ok(Some(Frame {
                    more,
                    command,
                    body,
                }))
            }
            Traffic::Stream(cipher) => {
                // A record that fails does not take back the frames of the
                // records before it, even those that came in the same read
                // (NOISE specification §6.3): they are decoded first, and
                // the failure ends the connection once they are.
                if self.stream_failure.is_none() && !self.rx.is_empty() {
                    // Room for the rest of a frame whose header was
                    // decoded, at most three times the plaintext that has
                    // arrived (the decoder's hint): appending record by
                    // record doubled the buffer at each step, a copy of
                    // nearly a whole 1 MiB body in all (7 % of the
                    // samples), against a quarter.
                    if self.decoder.missing(&self.plain_rx).is_some() {
                        let hint = self.decoder.reserve_hint(&self.plain_rx);
                        self.plain_rx.reserve(hint);
                    }
                    if let Err(e) = cipher.open(&mut self.rx, &mut self.plain_rx) {
                        self.rx.clear();
                        self.stream_failure = Some(e);
                    }
                }
                match self.decoder.decode(&mut self.plain_rx)? {
                    Some(frame) => Ok(Some(frame)),
                    None => match self.stream_failure.take() {
                        Some(e) => Err(e),
                        None => Ok(None),
                    },
                }
            }
        }
    }

    fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<Option<Event>> {
        let Frame {
            more,
            command,
            body,
        } = frame;
        if command {
            if !self.partial.is_empty() {
                return Err(protocol("command inside a multipart message"));
            }
            return self.on_command(body.freeze(), now);
        }
        if self.partial.len() >= self.config.max_frames {
            return Err(Error::Peer(PeerError::TooLarge {
                size: self.partial.len() as u64 + 1,
                limit: self.config.max_frames as u64,
            }));
        }
        if !more && self.partial.is_empty() {
            // The common case: a single-frame message, no allocation.
            return Ok(self.deliver(Message::from(body.freeze())));
        }
        self.partial.push(body.freeze());
        if more {
            return Ok(None);
        }
        let frames = std::mem::take(&mut self.partial);
        Ok(self.deliver(Message::from(frames)))
    }

    /// Hands a whole message up, or turns it into a subscription on a
    /// publisher.
    fn deliver(&mut self, mut msg: Message) -> Option<Event> {
        if self.config.socket_type.is_publisher() {
            // Subscriptions as data messages (ZMTP 3.0, and XSUB): a first
            // byte of 1 subscribes and 0 cancels; libzmq's XPUB takes them
            // from any peer. Anything else is dropped by PUB.
            if let [f] = msg.frames() {
                match f.first() {
                    Some(1) => return Some(Event::Subscribe(f.slice(1..))),
                    Some(0) => return Some(Event::Cancel(f.slice(1..))),
                    _ => {}
                }
            }
            if self.config.socket_type == SocketType::Pub {
                return None;
            }
        }
        self.attach_peer(&mut msg);
        Some(Event::Message(msg))
    }

    /// Gives a received message the peer's properties.
    #[inline(always)]
    fn attach_peer(&self, msg: &mut Message) {
        if !self.config.attach_properties {
            return;
        }
        if let Some(p) = &self.peer {
            msg.set_properties(p.clone());
        }
    }

    fn on_command(&mut self, body: Bytes, now: Instant) -> Result<Option<Event>> {
        match Command::parse(&body)? {
            Command::Ping { ttl, context } => {
                if ttl > 0 {
                    let ttl = Duration::from_millis(u64::from(ttl) * 100);
                    self.heartbeat.peer_ttl = Some(ttl);
                    self.heartbeat.ttl_deadline = Some(now + ttl);
                }
                // libzmq echoes at most 16 bytes of context.
                let context = context.slice(..context.len().min(MAX_PING_CONTEXT));
                self.send_command(&Command::Pong(context))?;
                Ok(None)
            }
            Command::Pong(_) => Ok(None),
            Command::Subscribe(t) if self.config.socket_type.is_publisher() => {
                Ok(Some(Event::Subscribe(t)))
            }
            Command::Cancel(t) if self.config.socket_type.is_publisher() => {
                Ok(Some(Event::Cancel(t)))
            }
            Command::Error(_) => Err(error_command(&body)),
            Command::Ready(_) => Err(protocol("READY after the handshake")),
            // Unknown commands, and subscriptions sent to a non-publisher,
            // are ignored as libzmq ignores them.
            _ => Ok(None),
        }
    }

    fn check_traffic(&self) -> Result<()> {
        match self.phase {
            Phase::Traffic => Ok(()),
            Phase::Closed => Err(Error::Usage(UsageError::Closed)),
            _ => Err(Error::Usage(UsageError::NotReady)),
        }
    }

    /// Queues a message. Only after the handshake.
    pub fn send(&mut self, msg: &Message) -> Result<()> {
        self.check_traffic()?;
        let frames = msg.frames();
        if frames.is_empty() {
            return Err(Error::Usage(UsageError::InvalidArgument(
                "a message needs a frame",
            )));
        }
        let last = frames.len() - 1;
        for (i, f) in frames.iter().enumerate() {
            self.write_frame(i < last, false, f)?;
        }
        Ok(())
    }

    /// Queues a one-frame message from a borrowed body, which is copied
    /// (for small bodies that the caller holds outside a [`Message`]).
    pub fn send_slice(&mut self, body: &[u8]) -> Result<()> {
        self.check_traffic()?;
        self.write_slice(false, false, body)
    }

    /// Queues a command frame. Only after the handshake.
    pub fn send_command(&mut self, cmd: &Command) -> Result<()> {
        self.check_traffic()?;
        self.write_frame(false, true, &cmd.to_bytes())
    }

    /// Sends a subscription: a SUBSCRIBE command to a ZMTP 3.1 peer, a data
    /// message `0x01 topic` to a 3.0 peer (as libzmq does).
    pub fn subscribe(&mut self, topic: &[u8]) -> Result<()> {
        self.subscription(true, topic)
    }

    /// Cancels a subscription, in the form the peer's version expects.
    pub fn cancel(&mut self, topic: &[u8]) -> Result<()> {
        self.subscription(false, topic)
    }

    fn subscription(&mut self, subscribe: bool, topic: &[u8]) -> Result<()> {
        self.check_traffic()?;
        let modern = self.peer_greeting.is_some_and(|g| g.is_3_1_or_later());
        if modern {
            let t = Bytes::copy_from_slice(topic);
            let cmd = if subscribe {
                Command::Subscribe(t)
            } else {
                Command::Cancel(t)
            };
            self.send_command(&cmd)
        } else {
            let mut body = Vec::with_capacity(topic.len() + 1);
            body.push(u8::from(subscribe));
            body.extend_from_slice(topic);
            self.write_frame(false, false, &Bytes::from(body))
        }
    }

    fn write_frame(&mut self, more: bool, command: bool, body: &Bytes) -> Result<()> {
        if let Traffic::Plain = self.traffic {
            // Large bodies go out without a copy.
            self.tx.frame(more, command, body);
            return Ok(());
        }
        self.write_slice(more, command, body)
    }

    fn write_slice(&mut self, more: bool, command: bool, body: &[u8]) -> Result<()> {
        match &mut self.traffic {
            Traffic::Plain => {
                self.tx.frame_slice(more, command, body);
                Ok(())
            }
            Traffic::Frames(cipher) => {
                let size = cipher.overhead() + body.len();
                // A sealed frame is an ordinary data frame; MORE and COMMAND
                // travel inside the box (libzmq curve_mechanism_base_t).
                self.tx.header(false, false, size);
                self.tx
                    .append_with(|out| cipher.seal(more, command, body, out))
            }
            Traffic::Stream(_) => {
                FrameHeader {
                    more,
                    command,
                    size: body.len() as u64,
                }
                .put(&mut self.plain_tx);
                self.plain_tx.extend_from_slice(body);
                Ok(())
            }
        }
    }

    /// Whether bytes are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.tx.is_empty() || !self.plain_tx.is_empty()
    }

    /// Bytes waiting to be written (plaintext not yet sealed counts as its
    /// own length). Unlike [`Connection::output`], this seals nothing.
    pub fn output_len(&self) -> usize {
        self.tx.len() + self.plain_tx.len()
    }

    /// The bytes to write. Stream ciphers seal everything queued so far into
    /// records here, when the writer runs, and wait for nothing more.
    pub fn output(&mut self) -> Result<&mut Encoder> {
        if !self.plain_tx.is_empty()
            && let Traffic::Stream(cipher) = &mut self.traffic
        {
            let plain = self.plain_tx.split();
            self.tx.append_with(|out| cipher.seal(&plain, out))?;
            // Reuse the plaintext buffer's memory for the next batch.
            drop(plain);
        }
        Ok(&mut self.tx)
    }

    /// The next instant at which [`Connection::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.handshake_deadline,
            self.heartbeat.next_ping,
            self.heartbeat.answer_deadline,
            self.heartbeat.ttl_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs timers: the handshake deadline, heartbeats and TTLs.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        if self.phase == Phase::Closed {
            return Err(Error::Usage(UsageError::Closed));
        }
        let r = self.timers(now);
        if r.is_err() {
            self.phase = Phase::Closed;
        }
        r
    }

    fn timers(&mut self, now: Instant) -> Result<()> {
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout(TimeoutKind::Handshake));
        }
        if self.heartbeat.answer_deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout(TimeoutKind::Heartbeat));
        }
        if self.heartbeat.ttl_deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout(TimeoutKind::Ttl));
        }
        if let (Some(at), Some(ivl)) = (self.heartbeat.next_ping, self.config.heartbeat_ivl)
            && now >= at
        {
            let ttl = self.config.heartbeat_ttl.map_or(0, |t| {
                u16::try_from(t.as_millis() / 100).unwrap_or(u16::MAX)
            });
            self.send_command(&Command::Ping {
                ttl,
                context: Bytes::new(),
            })?;
            self.heartbeat.next_ping = Some(now + ivl);
            if self.heartbeat.answer_deadline.is_none() {
                let timeout = self.config.heartbeat_timeout.unwrap_or(ivl);
                self.heartbeat.answer_deadline = Some(now + timeout);
            }
        }
        Ok(())
    }
}

/// libzmq's PLAIN server (4.3.4 and 4.3.5) sends its ERROR as a 9-byte
/// body `5E "RROR" 03 "400"` instead of `05 "ERROR" 03 "400"` (see
/// [`crate::mechanism::deny_libzmq_plain`]). Only that exact shape with a ZAP
/// status is taken as an authentication failure.
fn libzmq_plain_error(body: &[u8]) -> Option<u16> {
    if body.len() != 9 || body[0] != 0x5E || &body[1..5] != b"RROR" || body[5] != 3 {
        return None;
    }
    let status: u16 = std::str::from_utf8(&body[6..]).ok()?.parse().ok()?;
    matches!(status, 300 | 400 | 500).then_some(status)
}

/// Interprets an ERROR command received from the peer: a ZAP status code
/// (`300`, `400`, `500`) is an authentication failure.
fn error_command(body: &Bytes) -> Error {
    match Command::parse(body) {
        Ok(Command::Error(reason)) => {
            let status = std::str::from_utf8(&reason)
                .ok()
                .and_then(|s| s.parse::<u16>().ok());
            match status {
                Some(status @ (300 | 400 | 500)) => Error::Peer(PeerError::AuthFailed { status }),
                _ => Error::Peer(PeerError::ErrorCommand(
                    String::from_utf8_lossy(&reason).into_owned(),
                )),
            }
        }
        Ok(_) => protocol("expected ERROR"),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests;

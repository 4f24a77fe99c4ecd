//! Socket patterns: what each socket type does with messages, one file per
//! type.
//!
//! A pattern is a pure state machine: it owns no lock, task, queue or clock.
//! The socket calls it under its state lock and gives it the table of pipes;
//! the pattern decides where an outgoing message goes, what an incoming one
//! becomes, and which peers it accepts. As libzmq builds its socket types
//! from `lb` (round-robin), `fq` (fair queueing) and `dist` (distribution),
//! the patterns here are built from [`lb::LoadBalancer`] and
//! [`dist::distribute`]; fair queueing is the socket's inbox, which takes
//! each connection's messages in arrival order, a batch per turn of its
//! task.
//!
//! Per type (RFC 28 for REQ/REP/DEALER/ROUTER, RFC 29 for PUB/SUB/XPUB/XSUB,
//! RFC 30 for PUSH/PULL, RFC 31 for PAIR; libzmq 4.3 where they are silent):
//! see each file.

mod dealer;
mod dist;
mod lb;
mod pair;
mod publish;
mod pull;
mod push;
mod rep;
mod req;
mod router;
mod sub;
mod xpub;
mod xsub;

use bytes::Bytes;
use zmtp_core::{Message, Metadata, SocketType};

use crate::error::Error;
pub(crate) use crate::monitor::Refusal;
use crate::options::Options;
use crate::pipe::{Pipe, PipeId, Pipes};
use crate::routing::OverLimit;

/// Why an outgoing message was not routed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No pipe can take it now: wait for room (the message comes back).
    Blocked(Message),
    /// The socket type never sends (`ENOTSUP`).
    NotSupported,
    /// Not in this state (`EFSM`).
    State(&'static str),
    /// ROUTER with `router_mandatory`: no peer has this routing id
    /// (`EHOSTUNREACH`).
    Unroutable,
    /// A message with no frame, which every ZeroMQ binding refuses.
    Empty,
}

impl SendError {
    /// The error the application sees, for every case but `Blocked`.
    pub(crate) fn into_error(self) -> Error {
        match self {
            SendError::Blocked(_) => Error::WouldBlock,
            SendError::NotSupported => Error::NotSupported("send"),
            SendError::State(s) => Error::State(s),
            SendError::Unroutable => Error::HostUnreachable,
            SendError::Empty => Error::EmptyMessage,
        }
    }
}

/// A subscription or cancel from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    Subscribe(Bytes),
    Cancel(Bytes),
}

/// Bounds on what one peer's subscriptions may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscriptionLimits {
    pub(crate) count: usize,
    pub(crate) bytes: usize,
}

/// What a socket type decides. Every method is called under the socket's
/// state lock; none blocks.
pub(crate) trait Pattern: Send {
    /// Takes the options this pattern applies; called when the socket is
    /// made and after every change of options.
    fn configure(&mut self, _options: &Options) {}

    /// Routes a message to pipes: `Ok(n)` when it was queued for `n` pipes
    /// (or dropped, `n == 0`, where the pattern drops), otherwise why not.
    /// A `Blocked` message comes back unchanged.
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError>;

    /// Whether a send would not wait (for the poller).
    fn writable(&self, pipes: &Pipes) -> bool;

    /// Whether `recv` is valid now.
    fn check_recv(&self) -> Result<(), Error>;

    /// Whether [`Pattern::check_recv`] depends on the state (REQ, REP);
    /// otherwise the socket asks once.
    fn stateful_recv(&self) -> bool {
        false
    }

    /// Whether every received message reaches the application without the
    /// pattern's say (a ROUTER's id is put in front by the inbox, see
    /// [`Pattern::labels_received`]), so that the socket need not take its
    /// lock to receive.
    fn passes_received(&self) -> bool {
        false
    }

    /// Whether, with its subscriptions as they stand, the pattern takes
    /// every received message unchanged (a SUB subscribed to everything):
    /// the socket then receives without its lock until they change.
    fn passes_all_now(&self) -> bool {
        false
    }

    /// Whether each received message gets its pipe's routing id in front
    /// (ROUTER): the socket's inbox does it, from the id the pattern gave
    /// the pipe when it attached.
    fn labels_received(&self) -> bool {
        false
    }

    /// Filters or transforms a received message; `None` drops it.
    fn received(&mut self, _pipes: &Pipes, _from: PipeId, msg: Message) -> Option<Message> {
        Some(msg)
    }

    /// Whether the pipes carry messages bounded by the high-water mark
    /// (SUB's carry only subscriptions, which are never bounded).
    fn bounded_pipes(&self) -> bool {
        true
    }

    /// A pipe was made and added to the table: a connect endpoint's (before
    /// its handshake) or an accepted peer's (after it). SUB and XSUB queue
    /// their subscriptions on it.
    fn pipe_added(&mut self, _pipe: &Pipe) {}

    /// A peer finished its handshake on `pipe`; `Err` refuses it (its
    /// connection is closed).
    fn attached(
        &mut self,
        _pipes: &mut Pipes,
        _pipe: PipeId,
        _peer: &Metadata,
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// The peer on `pipe` is gone; the pipe may stay (a connect endpoint's
    /// queue waits for the next connection) or be removed next. Returns
    /// messages for the application (XPUB's cancels).
    fn detached(&mut self, pipe: &mut Pipe) -> Vec<Message> {
        pipe.subs.clear();
        Vec::new()
    }

    /// A pipe was taken out of the table.
    fn removed(&mut self, _pipe: PipeId) {}

    /// A subscription or cancel from the peer on `pipe` (PUB, XPUB); XPUB
    /// hands it to the application as a message.
    fn peer_subscription(
        &mut self,
        _pipe: &mut Pipe,
        _sub: Subscription,
        _limits: SubscriptionLimits,
    ) -> Result<Option<Message>, OverLimit> {
        Ok(None)
    }

    /// The application's own subscribe or unsubscribe (SUB).
    fn subscribe(&mut self, _pipes: &Pipes, _add: bool, _prefix: Bytes) -> Result<(), Error> {
        Err(Error::NotSupported("subscribe on a socket that is not SUB"))
    }

    /// The prefixes a new connection on an existing pipe must be sent.
    fn own_subscriptions(&self) -> Vec<Bytes> {
        Vec::new()
    }

    /// How many subscriptions (peer, prefix) are in effect (PUB, XPUB).
    fn subscription_count(&self, pipes: &Pipes) -> usize {
        pipes.iter().map(|p| p.subs.len()).sum()
    }
}

/// A socket type's pattern. An enum rather than a `dyn Pattern`, so that
/// the per-message calls (`send`, `received`) are direct calls the compiler
/// can inline into the socket's own: through a trait object, the message
/// was copied once more per call layer (measured: about 20 ns more of the
/// application thread's time per 16-byte send).
pub(crate) enum AnyPattern {
    Pair(pair::Pair),
    Pub(publish::Pub),
    Sub(sub::Sub),
    Req(req::Req),
    Rep(rep::Rep),
    Dealer(dealer::Dealer),
    Router(router::Router),
    Pull(pull::Pull),
    Push(push::Push),
    XPub(xpub::XPub),
    XSub(xsub::XSub),
}

/// Runs `$e` with `$p` bound to the pattern inside `$self`.
macro_rules! each {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            AnyPattern::Pair($p) => $e,
            AnyPattern::Pub($p) => $e,
            AnyPattern::Sub($p) => $e,
            AnyPattern::Req($p) => $e,
            AnyPattern::Rep($p) => $e,
            AnyPattern::Dealer($p) => $e,
            AnyPattern::Router($p) => $e,
            AnyPattern::Pull($p) => $e,
            AnyPattern::Push($p) => $e,
            AnyPattern::XPub($p) => $e,
            AnyPattern::XSub($p) => $e,
        }
    };
}

impl Pattern for AnyPattern {
    fn configure(&mut self, options: &Options) {
        each!(self, p => p.configure(options))
    }

    #[inline(always)]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        each!(self, p => p.send(msg, pipes))
    }

    fn writable(&self, pipes: &Pipes) -> bool {
        each!(self, p => p.writable(pipes))
    }

    fn check_recv(&self) -> Result<(), Error> {
        each!(self, p => p.check_recv())
    }

    fn stateful_recv(&self) -> bool {
        each!(self, p => p.stateful_recv())
    }

    fn passes_received(&self) -> bool {
        each!(self, p => p.passes_received())
    }

    fn passes_all_now(&self) -> bool {
        each!(self, p => p.passes_all_now())
    }

    fn labels_received(&self) -> bool {
        each!(self, p => p.labels_received())
    }

    #[inline]
    fn received(&mut self, pipes: &Pipes, from: PipeId, msg: Message) -> Option<Message> {
        each!(self, p => p.received(pipes, from, msg))
    }

    fn bounded_pipes(&self) -> bool {
        each!(self, p => p.bounded_pipes())
    }

    fn pipe_added(&mut self, pipe: &Pipe) {
        each!(self, p => p.pipe_added(pipe))
    }

    fn attached(
        &mut self,
        pipes: &mut Pipes,
        pipe: PipeId,
        peer: &Metadata,
    ) -> Result<(), Refusal> {
        each!(self, p => p.attached(pipes, pipe, peer))
    }

    fn detached(&mut self, pipe: &mut Pipe) -> Vec<Message> {
        each!(self, p => p.detached(pipe))
    }

    fn removed(&mut self, pipe: PipeId) {
        each!(self, p => p.removed(pipe))
    }

    fn peer_subscription(
        &mut self,
        pipe: &mut Pipe,
        sub: Subscription,
        limits: SubscriptionLimits,
    ) -> Result<Option<Message>, OverLimit> {
        each!(self, p => p.peer_subscription(pipe, sub, limits))
    }

    fn subscribe(&mut self, pipes: &Pipes, add: bool, prefix: Bytes) -> Result<(), Error> {
        each!(self, p => p.subscribe(pipes, add, prefix))
    }

    fn own_subscriptions(&self) -> Vec<Bytes> {
        each!(self, p => p.own_subscriptions())
    }

    fn subscription_count(&self, pipes: &Pipes) -> usize {
        each!(self, p => p.subscription_count(pipes))
    }
}

/// The pattern of a socket type. Every standard type is listed by name; the
/// one remaining arm is for types `zmtp-core` may add (it marks
/// `SocketType` non-exhaustive, so the compiler asks for it), such as the
/// draft CLIENT, SERVER, RADIO and DISH: they are refused, never given some
/// other type's behaviour.
pub(crate) fn for_type(t: SocketType) -> Result<AnyPattern, Error> {
    Ok(match t {
        SocketType::Pair => AnyPattern::Pair(pair::Pair::default()),
        SocketType::Pub => AnyPattern::Pub(publish::Pub),
        SocketType::Sub => AnyPattern::Sub(sub::Sub::default()),
        SocketType::Req => AnyPattern::Req(req::Req::default()),
        SocketType::Rep => AnyPattern::Rep(rep::Rep::default()),
        SocketType::Dealer => AnyPattern::Dealer(dealer::Dealer::default()),
        SocketType::Router => AnyPattern::Router(router::Router::new()),
        SocketType::Pull => AnyPattern::Pull(pull::Pull),
        SocketType::Push => AnyPattern::Push(push::Push::default()),
        SocketType::XPub => AnyPattern::XPub(xpub::XPub::default()),
        SocketType::XSub => AnyPattern::XSub(xsub::XSub::default()),
        _ => return Err(Error::NotSupported("this socket type")),
    })
}

/// Checks that every option set differently from its default applies to
/// the socket type: an option the type would ignore is an error.
pub(crate) fn check_options(t: SocketType, o: &Options) -> Result<(), Error> {
    use SocketType::*;
    let only = |set: bool, name: &'static str, types: &[SocketType]| {
        if set && !types.contains(&t) {
            Err(Error::InvalidOption(name))
        } else {
            Ok(())
        }
    };
    only(o.req_relaxed, "req_relaxed applies to REQ only", &[Req])?;
    only(o.req_correlate, "req_correlate applies to REQ only", &[Req])?;
    only(
        o.router_mandatory,
        "router_mandatory applies to ROUTER only",
        &[Router],
    )?;
    only(
        o.router_handover,
        "router_handover applies to ROUTER only",
        &[Router],
    )?;
    only(
        o.probe_router,
        "probe_router applies to ROUTER and DEALER only",
        &[Router, Dealer],
    )?;
    only(o.xpub_verbose, "xpub_verbose applies to XPUB only", &[XPub])?;
    only(
        o.xpub_verbose_unsubscribe,
        "xpub_verbose_unsubscribe applies to XPUB only",
        &[XPub],
    )?;
    // Not XSUB: its pipes carry subscriptions too, which conflating would
    // drop (libzmq does not offer it there either).
    only(
        o.conflate,
        "conflate applies to PUB, SUB, XPUB, PUSH, PULL and DEALER only",
        &[Pub, Sub, XPub, Push, Pull, Dealer],
    )?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Pipes without connection tasks, for the patterns' tests.
    use super::*;
    use crate::pipe::{Out, PipeRx};

    /// A table of `n` attached pipes (ids 1..=n) with room for `cap`
    /// messages each, and their readers.
    pub(crate) fn pipes(pattern: &mut dyn Pattern, n: u64, cap: usize) -> (Pipes, Vec<PipeRx>) {
        let mut pipes = Pipes::default();
        let mut rxs = Vec::new();
        for id in 1..=n {
            let (rx, _) = add(pattern, &mut pipes, id, cap, &Metadata::new());
            rxs.push(rx);
        }
        (pipes, rxs)
    }

    /// Adds an attached pipe, as an accepted peer's is added after its
    /// handshake; returns its reader and the pattern's verdict.
    pub(crate) fn add(
        pattern: &mut dyn Pattern,
        pipes: &mut Pipes,
        id: PipeId,
        cap: usize,
        peer: &Metadata,
    ) -> (PipeRx, Result<(), Refusal>) {
        let (p, rx) = Pipe::new(id, cap, None);
        pattern.pipe_added(&p);
        pipes.push(p);
        let verdict = pattern.attached(pipes, id, peer);
        (rx, verdict)
    }

    /// A peer's metadata with this routing id.
    pub(crate) fn with_id(id: &[u8]) -> Metadata {
        let mut m = Metadata::new();
        m.insert(zmtp_core::wire::IDENTITY, Bytes::copy_from_slice(id))
            .expect("valid name");
        m
    }

    /// A table of `n` pipes (ids 1..=n) with room for `cap` messages
    /// each, and their readers, with no pattern told of them.
    pub(crate) fn bare_pipes(n: u64, cap: usize) -> (Pipes, Vec<PipeRx>) {
        let mut pipes = Pipes::default();
        let mut rxs = Vec::new();
        for id in 1..=n {
            let (p, rx) = Pipe::new(id, cap, None);
            pipes.push(p);
            rxs.push(rx);
        }
        (pipes, rxs)
    }

    /// Every message queued on a pipe, as frames.
    pub(crate) fn drain(rx: &PipeRx) -> Vec<Vec<Bytes>> {
        let mut out = Vec::new();
        while let Some(o) = rx.try_recv() {
            match o {
                Out::Msg(m) => out.push(m.into_frames()),
                Out::Small(s) => out.push(s.to_message().into_frames()),
                Out::Subscribe(p) => out.push(vec![Bytes::from_static(b"SUB"), p]),
                Out::Cancel(p) => out.push(vec![Bytes::from_static(b"CANCEL"), p]),
            }
        }
        out
    }

    /// Frames from string slices.
    pub(crate) fn msg(frames: &[&str]) -> Message {
        Message::from_frames(frames.iter().map(|f| f.as_bytes().to_vec()))
    }

    pub(crate) fn frames(frames: &[&str]) -> Vec<Bytes> {
        frames
            .iter()
            .map(|f| Bytes::copy_from_slice(f.as_bytes()))
            .collect()
    }
}

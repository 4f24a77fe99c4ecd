//! The inproc transport: sockets of one [`crate::Context`], in one process.
//!
//! No I/O thread, no encoding, no mechanism. A connection is a pair of
//! pipes, one in each socket's routing table, each holding a [`Link`] to
//! the other socket: sending on it pushes the message (its `Bytes` frames,
//! not a copy) straight into the peer socket's inbox, through the pipe's
//! own lane there ([`crate::lane`]), so the message is receivable as soon
//! as `send` returns. A subscription sent on it is applied to the peer's
//! routing state at once.
//!
//! - **High-water mark**: each direction holds at most the sender's SNDHWM
//!   plus the receiver's RCVHWM messages (no limit when either is 0), as
//!   libzmq computes it for inproc. A message counts until the receiving
//!   application takes it ([`Credit`]); the sender is woken when its
//!   direction is down to half of that, as libzmq's low-water mark does.
//! - **Either order**: a connect before the bind queues in its pipe (unless
//!   `immediate`) and is paired when the name is bound; what it queued is
//!   delivered first, in order.
//! - **Ends**: a pipe that leaves its socket (close, unbind, disconnect,
//!   a ROUTER's handover) takes its peer's pipe with it ([`Link`]'s drop);
//!   messages already in the peer's inbox stay receivable.
//! - **Locks**: a subscriber's state lock may be held while the
//!   publisher's is taken (a subscription applied at once), never the other
//!   way: data only ever takes the peer's inbox lock, and everything else
//!   that touches both sockets runs outside both locks or on an I/O thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use zmtp_core::{Metadata, PeerError};

use crate::error::{Error, Result};
use crate::lane::LaneTx;
use crate::monitor::{HandshakeFailure, MonitorEvent, Reason};
use crate::options::Options;
use crate::pattern::Subscription;
use crate::pipe::{Inbound, Out, PipeId, PipeRx, Refused};
use crate::shared::SocketShared;

/// A cache line of its own: the sender writes one counter and the
/// receiver the other, and neither should move the other's line.
#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicUsize);

/// One direction's flow control: messages sent, and messages the receiving
/// application took. In flight = sent - taken.
pub(crate) struct Credit {
    /// Written only by the sending socket, under its state lock.
    sent: Line,
    /// Written only by the receiving socket, under its inbox's lock for
    /// the application's side (see [`crate::inbox::Inbox::try_pop`]).
    taken: Line,
    /// The `taken` count at which to wake a waiting sender (`usize::MAX`:
    /// none waits).
    wake_at: Line,
    /// At most this many in flight; 0 for no limit.
    cap: usize,
    /// Only the newest message of this direction is delivered (`conflate`
    /// on the sender): an older one still in flight is skipped.
    conflate: bool,
    /// Woken at `wake_at`.
    sender: Weak<SocketShared>,
}

impl Credit {
    /// The receiving application takes a message of this direction;
    /// `false` when it is to be skipped instead (a newer one of a
    /// conflating direction follows: messages of one direction stay in
    /// order, so any other in flight is newer). Called by one thread at a
    /// time (under the inbox's lock), so the count needs no read-modify-
    /// write.
    pub(crate) fn take(&self) -> bool {
        let taken = self.taken.0.load(Ordering::Relaxed) + 1;
        let keep = !self.conflate || self.sent.0.load(Ordering::Acquire) == taken;
        // SeqCst store then load, against the sender's store of `wake_at`
        // then load of `taken` (see `Link::is_full`): one of the two sees
        // the other.
        self.taken.0.store(taken, Ordering::SeqCst);
        if self.wake_at.0.load(Ordering::SeqCst) <= taken
            && self.wake_at.0.swap(usize::MAX, Ordering::SeqCst) != usize::MAX
            && let Some(sender) = self.sender.upgrade()
        {
            sender.notify_room();
        }
        keep
    }
}

/// A pipe's way to its peer socket (see the module's text).
pub(crate) struct Link {
    peer: Arc<SocketShared>,
    /// The peer's pipe of the pair: what the peer's inbox tags our
    /// messages with.
    peer_pipe: PipeId,
    credit: Arc<Credit>,
    /// The last `taken` count seen: until `sent` is `cap` past it, the
    /// sender need not look at the receiver's line.
    taken_seen: AtomicUsize,
    /// The sending socket's count of written messages: an inproc message
    /// is written once it is in the peer's inbox.
    written: Arc<AtomicU64>,
    endpoint: Arc<str>,
    /// This direction's queue into the peer's inbox (none when that
    /// inbox conflates: [`crate::inbox::Inbox::push_one`] then).
    lane: Option<LaneTx>,
}

impl Link {
    /// Hands `item` to the peer's inbox: through the lane, else its queue.
    #[inline]
    fn deliver(&self, item: Inbound) -> Result<(), Inbound> {
        match &self.lane {
            Some(lane) => self.peer.inbox().push_lane(lane, item),
            None => self.peer.inbox().push_one(item),
        }
    }

    /// Whether this direction holds `cap` messages. When it does, the
    /// receiver will wake the sending socket once it has taken half of
    /// them (libzmq's low-water mark).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        let c = &*self.credit;
        if c.cap == 0 {
            return false;
        }
        let sent = c.sent.0.load(Ordering::Relaxed);
        if sent - self.taken_seen.load(Ordering::Relaxed) < c.cap {
            return false;
        }
        let taken = c.taken.0.load(Ordering::Acquire);
        self.taken_seen.store(taken, Ordering::Relaxed);
        if sent - taken < c.cap {
            return false;
        }
        c.wake_at.0.store(sent - c.cap / 2, Ordering::SeqCst);
        // Taken meanwhile? Then there is room after all.
        let taken = c.taken.0.load(Ordering::SeqCst);
        self.taken_seen.store(taken, Ordering::Relaxed);
        sent - taken >= c.cap
    }

    /// Sends within the high-water mark.
    #[inline]
    pub(crate) fn try_send(&self, out: Out) -> Result<(), Refused> {
        if out.is_message() && self.is_full() {
            return Err(Refused::Full(out));
        }
        self.send(out)
    }

    /// Sends regardless of the high-water mark.
    pub(crate) fn send(&self, out: Out) -> Result<(), Refused> {
        match out {
            // Not made for inproc pipes (`Pipes::send_copy`): a message
            // there is handed over whole.
            Out::Small(s) => self.send(Out::Msg(s.to_message())),
            Out::Msg(msg) => {
                let item = Inbound::inproc(self.peer_pipe, msg);
                // Counted before it is receivable; only this socket, under
                // its state lock, writes `sent`.
                let sent = &self.credit.sent.0;
                sent.store(sent.load(Ordering::Relaxed) + 1, Ordering::Release);
                match self.deliver(item) {
                    Ok(()) => {
                        self.written.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(back) => Err(Refused::Closed(Out::Msg(back.msg))),
                }
            }
            Out::Subscribe(t) => {
                self.subscription(Subscription::Subscribe(t.clone()), || Out::Subscribe(t))
            }
            Out::Cancel(t) => self.subscription(Subscription::Cancel(t.clone()), || Out::Cancel(t)),
        }
    }

    fn subscription(&self, sub: Subscription, back: impl FnOnce() -> Out) -> Result<(), Refused> {
        match self.peer.peer_subscription(self.peer_pipe, sub) {
            Ok(None) => Ok(()),
            Ok(Some(notice)) => {
                // Through the lane, behind the messages sent before it.
                let _ = self.deliver(Inbound::new(self.peer_pipe, notice));
                Ok(())
            }
            Err(_) => {
                // Past the peer's subscription limits: the pair ends, as a
                // connection would be closed.
                let (peer, id, ep) = (self.peer.clone(), self.peer_pipe, self.endpoint.clone());
                self.peer.spawner.spawn(async move {
                    peer.detach_inproc(id, &ep, Some(Reason::SubscriptionLimit));
                });
                Err(Refused::Closed(back()))
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The pipe left its socket: its peer's pipe goes too, on an I/O
        // thread (whoever dropped this may hold its own socket's lock).
        if self.peer.is_closed() {
            return;
        }
        let (peer, id, ep) = (self.peer.clone(), self.peer_pipe, self.endpoint.clone());
        self.peer.spawner.spawn(async move {
            peer.detach_inproc(id, &ep, None);
        });
    }
}

/// A connect waiting for its name to be bound.
pub(crate) struct Pending {
    socket: Weak<SocketShared>,
    /// The endpoint as the connecting socket knows it.
    endpoint: String,
    /// Its queue (none with `immediate`).
    pipe: Option<(PipeId, PipeRx)>,
}

/// The context's inproc names.
#[derive(Default)]
pub(crate) struct Registry {
    names: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    bound: HashMap<String, Weak<SocketShared>>,
    pending: HashMap<String, Vec<Pending>>,
}

fn is(w: &Weak<SocketShared>, s: &SocketShared) -> bool {
    std::ptr::eq(w.as_ptr(), s)
}

/// Takes `socket`'s waiting connects out of `list`.
fn take_mine(list: &mut Vec<Pending>, socket: &SocketShared) -> Vec<Pending> {
    let (mine, others) = std::mem::take(list)
        .into_iter()
        .partition(|p| is(&p.socket, socket));
    *list = others;
    mine
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a name; returns the connects that waited for it.
    fn bind(&self, name: &str, socket: &Arc<SocketShared>) -> Result<Vec<Pending>> {
        let mut n = self.lock();
        if n.bound
            .get(name)
            .and_then(Weak::upgrade)
            .is_some_and(|s| !s.is_closed())
        {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("inproc://{name} is bound by another socket"),
            )));
        }
        n.bound.insert(name.to_owned(), Arc::downgrade(socket));
        Ok(n.pending.remove(name).unwrap_or_default())
    }

    /// The socket bound to `name`, or else the connect waits for it.
    fn connect(&self, name: &str, pending: Pending) -> Option<(Arc<SocketShared>, Pending)> {
        let mut n = self.lock();
        match n.bound.get(name).and_then(Weak::upgrade) {
            Some(b) if !b.is_closed() => Some((b, pending)),
            _ => {
                n.pending.entry(name.to_owned()).or_default().push(pending);
                None
            }
        }
    }

    /// Frees a name bound by `socket`.
    fn unbind(&self, name: &str, socket: &SocketShared) -> bool {
        let mut n = self.lock();
        if n.bound.get(name).is_some_and(|w| is(w, socket)) {
            n.bound.remove(name);
            return true;
        }
        false
    }

    /// Withdraws `socket`'s waiting connects to `name`.
    fn withdraw(&self, name: &str, socket: &SocketShared) {
        let dropped = {
            let mut n = self.lock();
            let Some(list) = n.pending.get_mut(name) else {
                return;
            };
            let gone = take_mine(list, socket);
            if list.is_empty() {
                n.pending.remove(name);
            }
            gone
        };
        // Dropped outside the registry's lock.
        drop(dropped);
    }

    /// Frees every name `socket` bound and withdraws its connects (the
    /// socket is closing).
    pub(crate) fn forget(&self, socket: &SocketShared) {
        let dropped: Vec<Pending> = {
            let mut n = self.lock();
            n.bound
                .retain(|_, w| !is(w, socket) && w.strong_count() > 0);
            let mut gone = Vec::new();
            n.pending.retain(|_, list| {
                gone.extend(take_mine(list, socket));
                !list.is_empty()
            });
            gone
        };
        // Dropped outside the registry's lock.
        drop(dropped);
    }
}

/// `bind("inproc://name")`: takes the name and pairs the connects that
/// waited for it.
pub(crate) fn bind(shared: &Arc<SocketShared>, name: &str) -> Result<String> {
    let bound = format!("inproc://{name}");
    let waiting = shared.inproc.bind(name, shared)?;
    shared.emit(MonitorEvent::Listening {
        endpoint: bound.clone(),
    });
    for p in waiting {
        if let Some(connecter) = p.socket.upgrade() {
            pair(shared, &bound, &connecter, p.endpoint, p.pipe);
        }
    }
    Ok(bound)
}

/// Frees a bound name (the connections made through it are closed by the
/// caller).
pub(crate) fn unbind(shared: &SocketShared, name: &str) -> bool {
    shared.inproc.unbind(name, shared)
}

/// `connect("inproc://name")`: pairs with the bound socket now, or when it
/// binds. `pipe` is the endpoint's queue (none with `immediate`).
pub(crate) fn connect(
    shared: &Arc<SocketShared>,
    name: &str,
    endpoint: &str,
    pipe: Option<(PipeId, PipeRx)>,
) {
    let waiting = Pending {
        socket: Arc::downgrade(shared),
        endpoint: endpoint.to_owned(),
        pipe,
    };
    if let Some((binder, p)) = shared.inproc.connect(name, waiting) {
        pair(
            &binder,
            &format!("inproc://{name}"),
            shared,
            p.endpoint,
            p.pipe,
        );
    }
}

/// Withdraws a connect that still waits for its bind.
pub(crate) fn withdraw(shared: &SocketShared, name: &str) {
    shared.inproc.withdraw(name, shared);
}

/// What a peer learns of a socket in place of a handshake's metadata.
fn metadata(shared: &SocketShared, o: &Options) -> Metadata {
    let mut m = Metadata::new();
    let _ = m.insert(
        zmtp_core::wire::SOCKET_TYPE,
        Bytes::from_static(shared.socket_type.as_str().as_bytes()),
    );
    if !o.routing_id.is_empty() {
        let _ = m.insert(zmtp_core::wire::IDENTITY, o.routing_id.clone());
    }
    m
}

/// The high-water mark of the direction from `from` to `to`: none when
/// either side conflates (as libzmq), since replaced messages are never
/// taken.
fn cap(from: &SocketShared, fo: &Options, to: &Options) -> usize {
    if !from.bounded_pipes || fo.sndhwm == 0 || to.rcvhwm == 0 || fo.conflate || to.conflate {
        0
    } else {
        fo.sndhwm.saturating_add(to.rcvhwm)
    }
}

/// The direction from `from` to `to`'s pipe `to_pipe`; its credit is
/// registered with `to`'s inbox before any message can travel.
fn link(
    from: &Arc<SocketShared>,
    fo: &Options,
    to: &Arc<SocketShared>,
    to_o: &Options,
    to_pipe: PipeId,
    endpoint: &Arc<str>,
) -> Link {
    let credit = Arc::new(Credit {
        sent: Line::default(),
        taken: Line::default(),
        wake_at: Line(AtomicUsize::new(usize::MAX)),
        cap: cap(from, fo, to_o),
        conflate: fo.conflate,
        sender: Arc::downgrade(from),
    });
    let lane = to.inbox().add_credit(to_pipe, credit.clone());
    Link {
        lane,
        peer: to.clone(),
        peer_pipe: to_pipe,
        credit,
        taken_seen: AtomicUsize::new(0),
        written: from.written.clone(),
        endpoint: endpoint.clone(),
    }
}

/// Pairs a connecting socket with the bound one: a pipe in each, linked.
///
/// In three steps, each under one socket's lock at most: the connecter's
/// queue exists first (made now with `immediate`), so that the binder's
/// subscriptions have somewhere to go; then the binder's pipe joins its
/// routing; then the connecter's queue becomes the link, under its lock,
/// and what it queued is delivered first.
fn pair(
    binder: &Arc<SocketShared>,
    bound: &str,
    connecter: &Arc<SocketShared>,
    endpoint: String,
    pipe: Option<(PipeId, PipeRx)>,
) {
    let ep: Arc<str> = Arc::from(bound);
    let (bt, ct) = (binder.socket_type, connecter.socket_type);
    if !ct.is_compatible(bt) {
        let failed = |s: &SocketShared, ours, theirs, at: &str| {
            s.emit(MonitorEvent::HandshakeFailed {
                endpoint: at.to_owned(),
                peer: bound.to_owned(),
                reason: HandshakeFailure::Protocol(Reason::Wire(
                    PeerError::IncompatibleSocketType { ours, theirs }.into(),
                )),
            });
        };
        failed(binder, bt, ct, bound);
        failed(connecter, ct, bt, &endpoint);
        if let Some((id, _)) = pipe {
            connecter.detach_pipe(id);
        }
        return;
    }
    let (c_id, c_rx) = match pipe {
        Some(p) => p,
        None => {
            let (id, rx) = connecter.attach_pipe();
            connecter.set_endpoint_pipe(&endpoint, id);
            (id, rx)
        }
    };
    let (bo, co) = (binder.options(), connecter.options());
    // The binder's pipe joins. Should it refuse the peer (PAIR's second),
    // the link to the connecter, dropped, takes the connecter's pipe too.
    let b_id = binder.next_pipe_id();
    let to_connecter = link(binder, &bo, connecter, &co, c_id, &ep);
    if let Err(refusal) = binder.attach_inproc(b_id, to_connecter, &metadata(connecter, &co)) {
        if let Some(reason) = refusal {
            binder.emit(MonitorEvent::Refused {
                endpoint: bound.to_owned(),
                peer: bound.to_owned(),
                reason,
            });
        }
        return;
    }
    binder.add_accepted(bound, b_id);
    binder.emit(MonitorEvent::Accepted {
        endpoint: bound.to_owned(),
        peer: bound.to_owned(),
    });
    binder.emit(MonitorEvent::HandshakeSucceeded {
        endpoint: bound.to_owned(),
        peer: bound.to_owned(),
    });
    let to_binder = link(connecter, &co, binder, &bo, b_id, &ep);
    match connecter.join_inproc(c_id, c_rx, to_binder, &metadata(binder, &bo)) {
        Ok(()) => {
            connecter.emit(MonitorEvent::Connected {
                endpoint: endpoint.clone(),
                peer: bound.to_owned(),
            });
            connecter.emit(MonitorEvent::HandshakeSucceeded {
                endpoint,
                peer: bound.to_owned(),
            });
        }
        Err(Some(reason)) => connecter.emit(MonitorEvent::Refused {
            endpoint,
            peer: bound.to_owned(),
            reason,
        }),
        Err(None) => {}
    }
}

/// Delivers what a connect queued before its bind through its new link,
/// in order (each message counts as written as it goes through).
pub(crate) fn drain(rx: &PipeRx, link: &Link) {
    while let Some(out) = rx.try_recv() {
        // A peer that closed meanwhile loses them, as a broken connection
        // would.
        let _ = link.send(out);
    }
}

//! The proxy: libzmq's `zmq_proxy` and `zmq_proxy_steerable`.
//!
//! A proxy moves whole messages between two sockets, both ways, for as
//! long as it runs: what the frontend receives goes out of the backend and
//! what the backend receives goes out of the frontend. The pairs libzmq
//! users build are ROUTER/DEALER (a request broker), XSUB/XPUB (a
//! forwarder: data down, subscriptions up) and PULL/PUSH (a streamer); any
//! transport and mechanism works on either side, so a CURVE frontend can
//! face a NULL backend. A capture socket, when given, gets a copy of every
//! message moved, either way.
//!
//! Waiting is as `zmq_proxy` does it: a side that cannot take a message
//! (PUSH or DEALER at their high-water marks) holds the proxy up until it
//! can; the socket options' send and receive timeouts do not apply. A side
//! that never receives (PUB, PUSH) is not listened to.

use futures_lite::future::{pending, race};
use zmtp_core::Message;

use crate::error::{Error, Result};
use crate::socket::Socket;

/// Counts of one socket of a proxy: frames and bytes received and sent
/// (libzmq counts message parts). Multipart messages count each frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketStats {
    /// Frames received.
    pub msgs_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub msgs_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// The statistics of a proxy, as `zmq_proxy_steerable` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// The frontend's counts.
    pub frontend: SocketStats,
    /// The backend's counts.
    pub backend: SocketStats,
}

impl ProxyStats {
    /// The eight counters in libzmq's order, the STATISTICS reply: the
    /// frontend's frames in, bytes in, frames out, bytes out, then the
    /// backend's.
    pub fn counters(&self) -> [u64; 8] {
        let (f, b) = (&self.frontend, &self.backend);
        [
            f.msgs_in,
            f.bytes_in,
            f.msgs_out,
            f.bytes_out,
            b.msgs_in,
            b.bytes_in,
            b.msgs_out,
            b.bytes_out,
        ]
    }
}

/// Moves messages between `frontend` and `backend` until one of them is
/// closed (or its context terminated), copying each to `capture` when
/// given. Returns the error that ended it, [`Error::Closed`] for a closed
/// socket, as `zmq_proxy` returns with `ETERM`.
pub async fn proxy(frontend: &Socket, backend: &Socket, capture: Option<&Socket>) -> Result<()> {
    run(frontend, backend, capture, None).await.map(|_| ())
}

/// Blocking [`proxy`], for a thread of its own.
pub fn proxy_blocking(frontend: &Socket, backend: &Socket, capture: Option<&Socket>) -> Result<()> {
    futures_lite::future::block_on(proxy(frontend, backend, capture))
}

/// [`proxy`], steered by the commands `control` receives, as
/// `zmq_proxy_steerable`: `PAUSE` stops moving messages (they wait in the
/// sockets' queues), `RESUME` moves them again, `TERMINATE` ends the proxy
/// (it returns its statistics), and `STATISTICS` is answered on `control`
/// with the eight counters of [`ProxyStats::counters`], each a frame of 8
/// bytes in the machine's byte order (as libzmq sends them). A REP control
/// socket gets an empty reply to every other command, so that it can take
/// the next one; an unknown command changes nothing.
pub async fn proxy_steerable(
    frontend: &Socket,
    backend: &Socket,
    capture: Option<&Socket>,
    control: &Socket,
) -> Result<ProxyStats> {
    run(frontend, backend, capture, Some(control)).await
}

/// Blocking [`proxy_steerable`].
pub fn proxy_steerable_blocking(
    frontend: &Socket,
    backend: &Socket,
    capture: Option<&Socket>,
    control: &Socket,
) -> Result<ProxyStats> {
    futures_lite::future::block_on(proxy_steerable(frontend, backend, capture, control))
}

/// What a proxy's wait gave.
enum Next {
    Frontend(Result<Message>),
    Backend(Result<Message>),
    Control(Result<Message>),
}

/// The next message of `socket`, or never when it does not receive or is
/// not being listened to.
async fn next_of(socket: Option<&Socket>, listen: bool, wrap: fn(Result<Message>) -> Next) -> Next {
    match socket {
        Some(s) if listen && s.receives() => wrap(s.recv_inner(false).await),
        _ => pending().await,
    }
}

/// Most messages moved from one side before the other is looked at again.
const BURST: usize = 256;

async fn run(
    frontend: &Socket,
    backend: &Socket,
    capture: Option<&Socket>,
    control: Option<&Socket>,
) -> Result<ProxyStats> {
    let mut stats = ProxyStats::default();
    let mut paused = false;
    loop {
        let next = race(
            race(
                next_of(Some(frontend), !paused, Next::Frontend),
                next_of(Some(backend), !paused, Next::Backend),
            ),
            next_of(control, true, Next::Control),
        )
        .await;
        match next {
            Next::Frontend(m) => {
                let (f, b) = (&mut stats.frontend, &mut stats.backend);
                burst(m?, frontend, backend, capture, f, b).await?;
            }
            Next::Backend(m) => {
                let (b, f) = (&mut stats.backend, &mut stats.frontend);
                burst(m?, backend, frontend, capture, b, f).await?;
            }
            Next::Control(cmd) => {
                let cmd = cmd?;
                let Some(control) = control else {
                    continue;
                };
                match cmd.frames().first().map(|f| &f[..]) {
                    Some(b"PAUSE") => paused = true,
                    Some(b"RESUME") => paused = false,
                    Some(b"TERMINATE") => {
                        reply_if_rep(control, Message::from(bytes::Bytes::new())).await?;
                        return Ok(stats);
                    }
                    Some(b"STATISTICS") => {
                        let reply = Message::from_frames(
                            stats.counters().map(|c| c.to_ne_bytes().to_vec()),
                        );
                        control.send_untimed(reply).await?;
                        continue;
                    }
                    _ => {}
                }
                reply_if_rep(control, Message::from(bytes::Bytes::new())).await?;
            }
        }
    }
}

/// A REP control socket must answer before it takes the next command.
async fn reply_if_rep(control: &Socket, msg: Message) -> Result<()> {
    if control.socket_type() == zmtp_core::SocketType::Rep {
        control.send_untimed(msg).await?;
    }
    Ok(())
}

/// Moves `first` and then whatever else `from` has ready (at most
/// [`BURST`] in all) to `to`, copying each to `capture`.
async fn burst(
    first: Message,
    from: &Socket,
    to: &Socket,
    capture: Option<&Socket>,
    from_stats: &mut SocketStats,
    to_stats: &mut SocketStats,
) -> Result<()> {
    let mut msg = first;
    for _ in 1..BURST {
        move_one(msg, to, capture, from_stats, to_stats).await?;
        msg = match from.try_recv() {
            Ok(m) => m,
            Err(Error::WouldBlock) => return Ok(()),
            Err(e) => return Err(e),
        };
    }
    move_one(msg, to, capture, from_stats, to_stats).await
}

async fn move_one(
    msg: Message,
    to: &Socket,
    capture: Option<&Socket>,
    from_stats: &mut SocketStats,
    to_stats: &mut SocketStats,
) -> Result<()> {
    let (parts, bytes) = (msg.len() as u64, msg.byte_len() as u64);
    from_stats.msgs_in += parts;
    from_stats.bytes_in += bytes;
    if let Some(c) = capture {
        c.send_untimed(msg.clone()).await?;
    }
    to.send_untimed(msg).await?;
    to_stats.msgs_out += parts;
    to_stats.bytes_out += bytes;
    Ok(())
}

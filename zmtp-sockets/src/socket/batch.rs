//! Batch calls: many messages per call. A single `send` takes the socket's
//! lock once per message and a single `recv` the inbox's; these take each
//! lock once per batch. They are optional: the single calls stay as they
//! are, and a batch behaves as the same messages sent or received one by
//! one (the same order, the same routing, the same high-water marks).

use std::time::Instant;

use zmtp_core::Message;

use super::{Socket, block_on_until, refuse_on_io_thread};
use crate::error::{Error, Result};
use crate::pattern::{Pattern, SendError};

impl Socket {
    /// Receives up to `max` messages that are already queued, without
    /// waiting, and appends them to `out` in order. Returns how many;
    /// [`Error::WouldBlock`] when none is queued (`max` 0 returns `Ok(0)`).
    ///
    /// ```
    /// use zmtp_sockets::{Context, SocketType};
    /// let ctx = Context::new();
    /// let pull = ctx.socket(SocketType::Pull)?;
    /// let ep = pull.bind("tcp://127.0.0.1:0")?;
    /// let push = ctx.socket(SocketType::Push)?;
    /// push.connect(&ep)?;
    /// push.send_many_blocking(&mut vec!["a".into(), "b".into(), "c".into()])?;
    /// let mut got = Vec::new();
    /// while got.len() < 3 {
    ///     pull.recv_many_blocking(&mut got, 64)?;
    /// }
    /// let bodies: Vec<_> = got.iter().map(|m| m.frames()[0].clone()).collect();
    /// assert_eq!(bodies, ["a", "b", "c"]);
    /// # Ok::<(), zmtp_sockets::Error>(())
    /// ```
    pub fn try_recv_many(&self, out: &mut Vec<Message>, max: usize) -> Result<usize> {
        self.check_recv()?;
        if max == 0 {
            return Ok(0);
        }
        if !self.shared.passes_received {
            // The pattern looks at every message (REQ, REP, SUB, XPUB,
            // PAIR): one at a time. An error after the first message waits
            // for the next call (it is the socket's state, it stays).
            let mut n = 0;
            while n < max {
                match self.try_recv() {
                    Ok(m) => out.push(m),
                    Err(e) if n == 0 => return Err(e),
                    Err(_) => break,
                }
                n += 1;
            }
            return Ok(n);
        }
        match self
            .shared
            .inbox()
            .try_pop_many(max, |item| out.push(item.msg))
        {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Receives at least one message and up to `max`, appending them to
    /// `out`: waits for the first (up to the receive timeout, as
    /// [`Socket::recv`]), then takes what else is already queued. Returns
    /// how many. Dropping the future loses no message.
    pub async fn recv_many(&self, out: &mut Vec<Message>, max: usize) -> Result<usize> {
        match self.try_recv_many(out, max) {
            Err(Error::WouldBlock) => {}
            other => return other,
        }
        out.push(self.recv().await?);
        Ok(1 + self.try_recv_many(out, max - 1).unwrap_or(0))
    }

    /// Blocking [`Socket::recv_many`], for plain threads (see
    /// [`Socket::recv_blocking`] for where not to call it).
    pub fn recv_many_blocking(&self, out: &mut Vec<Message>, max: usize) -> Result<usize> {
        match self.try_recv_many(out, max) {
            Err(Error::WouldBlock) => {}
            other => return other,
        }
        out.push(self.recv_blocking()?);
        Ok(1 + self.try_recv_many(out, max - 1).unwrap_or(0))
    }

    /// Sends messages from the front of `msgs`, in order, for as long as
    /// peers have room, without waiting; removes those sent from `msgs`
    /// and returns how many. [`Error::WouldBlock`] when not even the first
    /// could be queued (`msgs` is then unchanged).
    ///
    /// Any other error (an empty message, a send the socket's state does
    /// not allow, an unroutable ROUTER message under `router_mandatory`)
    /// ends the batch: the messages before it were sent, the one refused is
    /// dropped as [`Socket::try_send`] drops it, and both are removed from
    /// `msgs`, so that what is left is what was not tried.
    pub fn try_send_many(&self, msgs: &mut Vec<Message>) -> Result<usize> {
        self.check_open()?;
        match self.route_many(msgs) {
            (n, None) => Ok(n),
            (0, Some(e)) => Err(e),
            (n, Some(Error::WouldBlock)) => Ok(n),
            (_, Some(e)) => Err(e),
        }
    }

    /// Sends every message of `msgs`, in order, waiting for room while no
    /// peer has it, up to the send timeout (one deadline for the whole
    /// batch). Each message taken is removed from `msgs`: on
    /// [`Error::WouldBlock`] (the timeout) what is left was not sent. Other
    /// errors as [`Socket::try_send_many`]. Dropping the future leaves each
    /// message either sent and removed or still in `msgs`.
    pub async fn send_many(&self, msgs: &mut Vec<Message>) -> Result<()> {
        self.check_open()?;
        let deadline = self.shared.sndtimeo().map(|t| Instant::now() + t);
        self.send_many_until(msgs, deadline).await
    }

    /// Blocking [`Socket::send_many`], for plain threads (see
    /// [`Socket::send_blocking`] for where not to call it).
    pub fn send_many_blocking(&self, msgs: &mut Vec<Message>) -> Result<()> {
        self.check_open()?;
        match self.route_many(msgs) {
            (_, None) => Ok(()),
            (_, Some(Error::WouldBlock)) => {
                refuse_on_io_thread()?;
                let deadline = self.shared.sndtimeo().map(|t| Instant::now() + t);
                block_on_until(self.send_many_until(msgs, None), deadline)
                    .unwrap_or(Err(Error::WouldBlock))
            }
            (_, Some(e)) => Err(e),
        }
    }

    /// Sends the rest of `msgs`, waiting for room, until `deadline` when
    /// one is given.
    async fn send_many_until(
        &self,
        msgs: &mut Vec<Message>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.wait_routed(deadline, || match self.route_many(msgs) {
            (_, None) => Some(Ok(())),
            (_, Some(Error::WouldBlock)) => None,
            (_, Some(e)) => Some(Err(e)),
        })
        .await
    }

    /// Routes messages from the front of `msgs` under one lock, until one
    /// is refused or none is left; removes those routed (and one refused
    /// for any reason but room) and returns how many were routed, with the
    /// error that stopped it ([`Error::WouldBlock`]: no room; that message
    /// stays).
    fn route_many(&self, msgs: &mut Vec<Message>) -> (usize, Option<Error>) {
        let mut sent = 0;
        let mut stop = None;
        {
            let st = &mut *self.shared.lock();
            st.pipes.begin_batch();
            for slot in msgs.iter_mut() {
                if slot.is_empty() {
                    stop = Some((Error::EmptyMessage, 1));
                    break;
                }
                match st.pattern.send(std::mem::take(slot), &mut st.pipes) {
                    Ok(k) => st.routed += k,
                    Err(SendError::Blocked(back)) => {
                        *slot = back;
                        stop = Some((Error::WouldBlock, 0));
                        break;
                    }
                    Err(e) => {
                        stop = Some((e.into_error(), 1));
                        break;
                    }
                }
                sent += 1;
            }
            st.pipes.end_batch();
        }
        let dropped = stop.as_ref().map_or(0, |(_, d)| *d);
        msgs.drain(..sent + dropped);
        (sent, stop.map(|(e, _)| e))
    }
}

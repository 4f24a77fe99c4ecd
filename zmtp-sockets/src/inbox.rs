//! The socket's incoming queue, filled in batches.
//!
//! Connection tasks push every message they decoded in one turn under one
//! lock and wake the application once; the application swaps the whole
//! shared queue into its own buffer when that runs dry, so most receives
//! touch no state the I/O threads touch. The bound (the receive high-water
//! mark) applies to the shared queue; the application's buffer holds at most
//! one swapped batch more, like libzmq's batched pipes.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use event_listener::{Event, EventListener};

use crate::pipe::Inbound;
use crate::waiters::{Entry, Waiters};

/// The inbox was closed with the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

#[derive(Default)]
struct Shared {
    queue: VecDeque<Inbound>,
    closed: bool,
}

pub(crate) struct Inbox {
    /// Most messages in the shared queue; 0 for no bound.
    capacity: usize,
    /// Keep only the newest message (`conflate`).
    conflate: bool,
    shared: Mutex<Shared>,
    local: Mutex<VecDeque<Inbound>>,
    /// Receivers waiting in [`Inbox::pop`].
    waiters: Waiters,
    /// Messages arrived (for the [`crate::Poller`]).
    pub(crate) readable: Event,
    /// The shared queue was emptied.
    room: Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inbox {
    pub(crate) fn new(capacity: usize, conflate: bool) -> Inbox {
        Inbox {
            capacity,
            conflate,
            shared: Mutex::default(),
            local: Mutex::default(),
            waiters: Waiters::default(),
            readable: Event::new(),
            room: Event::new(),
        }
    }

    /// Moves as many messages from the front of `batch` as fit. Returns
    /// whether the batch was emptied.
    pub(crate) fn push(&self, batch: &mut VecDeque<Inbound>) -> Result<bool, Closed> {
        self.push_within(batch, self.capacity)
    }

    /// Moves the whole batch, regardless of the bound (messages the socket
    /// itself makes, such as XPUB's cancels for a peer that left).
    pub(crate) fn push_unbounded(&self, batch: &mut VecDeque<Inbound>) -> Result<bool, Closed> {
        self.push_within(batch, 0)
    }

    fn push_within(&self, batch: &mut VecDeque<Inbound>, capacity: usize) -> Result<bool, Closed> {
        if batch.is_empty() {
            return Ok(true);
        }
        let moved = {
            let mut s = lock(&self.shared);
            if s.closed {
                batch.clear();
                return Err(Closed);
            }
            if self.conflate {
                // Only the newest message is kept; `try_pop` prefers it to
                // what the application's buffer holds.
                let newest = batch.pop_back();
                batch.clear();
                s.queue.clear();
                s.queue.extend(newest);
                drop(s);
                self.waiters.wake_all();
                self.readable.notify(usize::MAX);
                return Ok(true);
            }
            let room = if capacity == 0 {
                usize::MAX
            } else {
                capacity.saturating_sub(s.queue.len())
            };
            let n = room.min(batch.len());
            if n == batch.len() && s.queue.is_empty() {
                // Hand the whole batch over without moving items.
                std::mem::swap(&mut s.queue, batch);
            } else {
                s.queue.extend(batch.drain(..n));
            }
            n
        };
        if moved > 0 {
            self.waiters.wake_all();
            self.readable.notify(usize::MAX);
        }
        Ok(batch.is_empty())
    }

    /// Adds one item regardless of the bound (an inproc message, whose
    /// sender's link bounds it; an XPUB notice). The item comes back when
    /// the inbox is closed.
    pub(crate) fn push_one(&self, item: Inbound) -> Result<(), Inbound> {
        let replaced = {
            let mut s = lock(&self.shared);
            if s.closed {
                return Err(item);
            }
            // Conflating: only the newest is kept (what is replaced is
            // dropped once the lock is released).
            let replaced = if self.conflate {
                std::mem::take(&mut s.queue)
            } else {
                VecDeque::new()
            };
            s.queue.push_back(item);
            replaced
        };
        drop(replaced);
        self.waiters.wake_all();
        self.readable.notify(usize::MAX);
        Ok(())
    }

    /// A listener for room, to create before a `push` that may not fit.
    pub(crate) fn listen_room(&self) -> EventListener {
        self.room.listen()
    }

    /// Takes the next message without waiting.
    pub(crate) fn try_pop(&self) -> Result<Option<Inbound>, Closed> {
        let mut local = lock(&self.local);
        if self.conflate {
            let mut s = lock(&self.shared);
            if !s.queue.is_empty() {
                local.clear();
                std::mem::swap(&mut *local, &mut s.queue);
            }
        }
        if let Some(item) = local.pop_front() {
            return Ok(Some(item));
        }
        {
            let mut s = lock(&self.shared);
            if s.queue.is_empty() {
                return if s.closed { Err(Closed) } else { Ok(None) };
            }
            std::mem::swap(&mut *local, &mut s.queue);
        }
        self.room.notify(usize::MAX);
        Ok(local.pop_front())
    }

    /// Takes the next message, waiting for one.
    pub(crate) async fn pop(&self) -> Result<Inbound, Closed> {
        let mut entry = Entry::new(&self.waiters);
        std::future::poll_fn(|cx| {
            if let Some(item) = self.try_pop()? {
                return Poll::Ready(Ok(item));
            }
            // Register, then look again: a push in between wakes us.
            entry.register(cx.waker());
            match self.try_pop()? {
                Some(item) => Poll::Ready(Ok(item)),
                None => Poll::Pending,
            }
        })
        .await
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.local).is_empty() && lock(&self.shared).queue.is_empty()
    }

    pub(crate) fn close(&self) {
        lock(&self.shared).closed = true;
        self.waiters.wake_all();
        self.readable.notify(usize::MAX);
        self.room.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;
    use zmtp_core::Message;

    fn item(i: u8) -> Inbound {
        Inbound::new(1, Message::from(vec![i]))
    }

    #[test]
    fn batches_respect_the_bound_and_keep_order() {
        let inbox = Inbox::new(3, false);
        let mut batch: VecDeque<_> = (0..5).map(item).collect();
        assert_eq!(inbox.push(&mut batch), Ok(false));
        assert_eq!(batch.len(), 2);
        // The application takes the whole shared queue: room for the rest.
        assert_eq!(inbox.try_pop().unwrap().unwrap().msg.frames()[0][0], 0);
        assert_eq!(inbox.push(&mut batch), Ok(true));
        let got: Vec<u8> = std::iter::from_fn(|| inbox.try_pop().unwrap())
            .map(|i| i.msg.frames()[0][0])
            .collect();
        assert_eq!(got, vec![1, 2, 3, 4]);
        inbox.close();
        assert_eq!(inbox.try_pop().unwrap_err(), Closed);
        assert_eq!(inbox.push(&mut VecDeque::from([item(9)])), Err(Closed));
    }

    #[test]
    fn every_waiting_receiver_is_woken_and_none_is_lost() {
        use std::sync::Arc;
        let inbox = Arc::new(Inbox::new(0, false));
        for round in 0..200u32 {
            let receivers: Vec<_> = (0..3)
                .map(|_| {
                    let inbox = inbox.clone();
                    std::thread::spawn(move || futures_lite::future::block_on(inbox.pop()))
                })
                .collect();
            for i in 0..3u8 {
                inbox.push(&mut VecDeque::from([item(i)])).expect("open");
            }
            let mut got: Vec<u8> = receivers
                .into_iter()
                .map(|r| r.join().expect("join").expect("item").msg.frames()[0][0])
                .collect();
            got.sort();
            assert_eq!(got, vec![0, 1, 2], "round {round}");
        }
        // Every receiver's entry is gone once it returned.
        assert_eq!(inbox.waiters.waiting(), 0);
    }

    #[test]
    fn a_dropped_pop_leaves_no_waiter_and_close_wakes() {
        let inbox = Inbox::new(0, false);
        {
            let mut pop = Box::pin(inbox.pop());
            let waker = Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            assert!(pop.as_mut().poll(&mut cx).is_pending());
            assert_eq!(inbox.waiters.waiting(), 1);
        }
        assert_eq!(inbox.waiters.waiting(), 0);
        let inbox = std::sync::Arc::new(inbox);
        let i2 = inbox.clone();
        let t = std::thread::spawn(move || futures_lite::future::block_on(i2.pop()).is_err());
        // Close wakes the blocked receiver with `Closed` (whether it was
        // already waiting or looks after the close).
        inbox.close();
        assert!(t.join().expect("join"));
    }
}

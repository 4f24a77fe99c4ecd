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

use event_listener::{Event, EventListener};

use crate::socket::Inbound;

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
    shared: Mutex<Shared>,
    local: Mutex<VecDeque<Inbound>>,
    /// Messages arrived.
    pub(crate) readable: Event,
    /// The shared queue was emptied.
    room: Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Inbox {
        Inbox {
            capacity,
            shared: Mutex::default(),
            local: Mutex::default(),
            readable: Event::new(),
            room: Event::new(),
        }
    }

    /// Moves as many messages from the front of `batch` as fit. Returns
    /// whether the batch was emptied.
    pub(crate) fn push(&self, batch: &mut VecDeque<Inbound>) -> Result<bool, Closed> {
        if batch.is_empty() {
            return Ok(true);
        }
        let moved = {
            let mut s = lock(&self.shared);
            if s.closed {
                batch.clear();
                return Err(Closed);
            }
            let room = if self.capacity == 0 {
                usize::MAX
            } else {
                self.capacity.saturating_sub(s.queue.len())
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
            self.readable.notify(usize::MAX);
        }
        Ok(batch.is_empty())
    }

    /// A listener for room, to create before a `push` that may not fit.
    pub(crate) fn listen_room(&self) -> EventListener {
        self.room.listen()
    }

    /// Takes the next message without waiting.
    pub(crate) fn try_pop(&self) -> Result<Option<Inbound>, Closed> {
        let mut local = lock(&self.local);
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
        loop {
            if let Some(item) = self.try_pop()? {
                return Ok(item);
            }
            let l = self.readable.listen();
            if let Some(item) = self.try_pop()? {
                return Ok(item);
            }
            l.await;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.local).is_empty() && lock(&self.shared).queue.is_empty()
    }

    pub(crate) fn close(&self) {
        lock(&self.shared).closed = true;
        self.readable.notify(usize::MAX);
        self.room.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zmtp_core::Message;

    fn item(i: u8) -> Inbound {
        Inbound {
            pipe: 1,
            msg: Message::from(vec![i]),
        }
    }

    #[test]
    fn batches_respect_the_bound_and_keep_order() {
        let inbox = Inbox::new(3);
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
}

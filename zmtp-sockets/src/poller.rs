//! Waiting on several sockets at once (`zmq_poll`).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::socket::Socket;

/// What to wait for on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// A message can be received.
    Readable,
    /// A message can be sent without waiting.
    Writable,
    /// Either.
    Both,
}

/// A socket that is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// Its index in the poller (the order of [`Poller::add`]).
    pub index: usize,
    /// A receive would not wait.
    pub readable: bool,
    /// A send would not wait.
    pub writable: bool,
}

/// Waits until one of several sockets is ready.
///
/// ```
/// use std::time::Duration;
/// use zmtp_sockets::{Context, Interest, Poller, SocketType};
/// let ctx = Context::new();
/// let a = ctx.socket(SocketType::Pull)?;
/// let b = ctx.socket(SocketType::Pull)?;
/// let ep = b.bind("tcp://127.0.0.1:0")?;
/// let _ = a.bind("tcp://127.0.0.1:0")?;
/// let push = ctx.socket(SocketType::Push)?;
/// push.connect(&ep)?;
/// push.send_blocking("for b")?;
/// let mut poller = Poller::new();
/// poller.add(&a, Interest::Readable);
/// poller.add(&b, Interest::Readable);
/// let ready = poller.wait_blocking(Some(Duration::from_secs(20)));
/// assert_eq!(ready[0].index, 1);
/// # Ok::<(), zmtp_sockets::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Poller<'a> {
    items: Vec<(&'a Socket, Interest)>,
}

impl<'a> Poller<'a> {
    /// An empty poller.
    pub fn new() -> Poller<'a> {
        Poller { items: Vec::new() }
    }

    /// Adds a socket; returns its index.
    pub fn add(&mut self, socket: &'a Socket, interest: Interest) -> usize {
        self.items.push((socket, interest));
        self.items.len() - 1
    }

    fn ready_now(&self) -> Vec<Ready> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(index, (s, interest))| {
                let readable =
                    matches!(interest, Interest::Readable | Interest::Both) && s.readable_now();
                let writable =
                    matches!(interest, Interest::Writable | Interest::Both) && s.writable_now();
                (readable || writable).then_some(Ready {
                    index,
                    readable,
                    writable,
                })
            })
            .collect()
    }

    /// Waits until at least one socket is ready, or the timeout passes
    /// (then the result is empty).
    pub async fn wait(&self, timeout: Option<Duration>) -> Vec<Ready> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            // Listen first, then check, so no wake-up is missed.
            let mut guards = Vec::with_capacity(self.items.len());
            let mut listeners = Vec::with_capacity(self.items.len() * 2);
            for (s, _) in &self.items {
                let (guard, readable) = s.shared().inbox().listen_readable();
                guards.push(guard);
                listeners.push(readable);
                listeners.push(s.shared().room.listen());
            }
            let ready = self.ready_now();
            if !ready.is_empty() {
                return ready;
            }
            let any = futures_lite::future::poll_fn(|cx| {
                for l in listeners.iter_mut() {
                    if Pin::new(&mut *l).poll(cx).is_ready() {
                        return Poll::Ready(true);
                    }
                }
                Poll::Pending
            });
            let woke = match deadline {
                Some(d) => {
                    futures_lite::future::or(any, async {
                        async_io::Timer::at(d).await;
                        false
                    })
                    .await
                }
                None => any.await,
            };
            if !woke {
                return self.ready_now();
            }
        }
    }

    /// Blocking [`Poller::wait`].
    pub fn wait_blocking(&self, timeout: Option<Duration>) -> Vec<Ready> {
        futures_lite::future::block_on(self.wait(timeout))
    }
}

//! The context: I/O threads running the connection tasks.
//!
//! Like libzmq's `zmq_ctx_new`, a context owns I/O threads (one by default,
//! named `zmtp-io-N` as libzmq names its `ZMQbg/IO/N`). Each runs its own
//! `async-executor`; on Linux it waits in its own epoll for its connections'
//! streams (see `reactor`), elsewhere on the `async-io` reactor; accepting,
//! connecting and timers use `async-io` everywhere. Sockets spawn one task
//! per peer connection, listener and connecter onto them, round-robin; a
//! task stays on its thread.
//!
//! Shutdown works like `zmq_ctx_term`: [`Context::term`] (or dropping the
//! last handle of the context and of its sockets) closes every socket,
//! waits until every task has flushed its queue or hit its linger, and then
//! stops the I/O threads. Unlike libzmq, the default linger is finite
//! ([`crate::DEFAULT_LINGER`], 5 s), so dropping never blocks for
//! ever unless a socket was given `linger: None`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use async_executor::Executor;
use event_listener::{Event, Listener};

use crate::error::Result;
use crate::shared::SocketShared;
use crate::socket::Socket;
use zmtp_core::SocketType;

/// A ZeroMQ context. Cheap to clone; all clones share the I/O threads.
///
/// Dropping the last handle (of the context and of its sockets) waits, as
/// [`Context::term`] does, for each socket's queued messages up to its
/// linger, 5 s by default: it never blocks for ever unless a socket's
/// linger was set to `None`.
///
/// ```
/// use zmtp_sockets::{Context, SocketType};
/// let ctx = Context::new(); // one I/O thread, as libzmq's default
/// let push = ctx.socket(SocketType::Push)?;
/// let pull = ctx.socket(SocketType::Pull)?;
/// let ep = pull.bind("tcp://127.0.0.1:0")?;
/// push.connect(&ep)?;
/// push.send_blocking("work")?;
/// assert_eq!(pull.recv_blocking()?.frames()[0], "work");
/// # Ok::<(), zmtp_sockets::Error>(())
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("io_threads", &self.io_threads())
            .finish()
    }
}

pub(crate) struct ContextInner {
    pub(crate) spawner: Spawner,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Closed to stop the I/O threads.
    stop: async_channel::Sender<()>,
    sockets: Mutex<Vec<Weak<SocketShared>>>,
    /// The inproc names bound in this context.
    pub(crate) inproc: Arc<crate::inproc::Registry>,
}

/// Spawns tasks onto the I/O threads. Tasks hold this, never the context,
/// so that the context can be dropped while they linger.
#[derive(Clone)]
pub(crate) struct Spawner {
    executors: Arc<[Arc<Executor<'static>>]>,
    next: Arc<AtomicUsize>,
    tasks: Arc<TaskCount>,
}

/// Counts live tasks so that termination can wait for them.
#[derive(Default)]
pub(crate) struct TaskCount {
    live: AtomicUsize,
    idle: Event,
}

pub(crate) struct TaskGuard(Arc<TaskCount>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

impl TaskCount {
    fn wait_idle(&self) {
        loop {
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            let listener = self.idle.listen();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            listener.wait();
        }
    }
}

/// The name of every I/O thread starts with this.
pub(crate) const IO_THREAD_PREFIX: &str = "zmtp-io-";

/// How long an I/O thread that ran out of work keeps looking for more
/// before it sleeps, by default: [`ContextBuilder::busy_poll`].
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);

/// Settings for a new [`Context`], from [`Context::builder`].
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    io_threads: usize,
    busy_poll: Duration,
}

impl ContextBuilder {
    /// Number of I/O threads (libzmq's `ZMQ_IO_THREADS`); at least one.
    /// Default 1.
    pub fn io_threads(mut self, n: usize) -> ContextBuilder {
        self.io_threads = n;
        self
    }

    /// How long an I/O thread that has run out of work keeps looking for
    /// more (its streams' readiness, wake-ups from sockets) before it
    /// sleeps in the kernel. Default [`DEFAULT_BUSY_POLL`]; zero sleeps at
    /// once.
    ///
    /// Waking a thread that sleeps costs tens of microseconds on a virtual
    /// machine (the idle virtual CPU has to be woken by the host). While it
    /// polls, the thread yields its core to any other runnable thread each
    /// round, so it only takes time that would otherwise be idle. This is
    /// the most it polls: each thread polls for about four times its
    /// recent idle spells, between a sixteenth of this and all of it, so
    /// that work arriving at longer intervals than this (a message every
    /// few hundred microseconds, say) costs little polling. Linux only
    /// (elsewhere I/O threads always sleep at once).
    pub fn busy_poll(mut self, d: Duration) -> ContextBuilder {
        self.busy_poll = d;
        self
    }

    /// Starts the I/O threads.
    ///
    /// # Panics
    ///
    /// When the operating system refuses to start a thread, as
    /// `std::thread::spawn` does; [`ContextBuilder::try_build`] returns the
    /// error instead.
    pub fn build(self) -> Context {
        self.try_build()
            .unwrap_or_else(|e| panic!("cannot start an I/O thread: {e}"))
    }

    /// Starts the I/O threads, or says why the operating system refused one
    /// (the threads already started are stopped again).
    pub fn try_build(self) -> Result<Context> {
        Context::build(self)
    }
}

impl Context {
    /// A context with one I/O thread.
    ///
    /// # Panics
    ///
    /// When the operating system refuses to start the thread;
    /// [`Context::try_new`] returns the error instead.
    pub fn new() -> Context {
        Context::with_io_threads(1)
    }

    /// A context with one I/O thread, or the operating system's refusal to
    /// start it.
    pub fn try_new() -> Result<Context> {
        Context::builder().try_build()
    }

    /// A context with `n` I/O threads (at least one).
    pub fn with_io_threads(n: usize) -> Context {
        Context::builder().io_threads(n).build()
    }

    /// A builder for a context with other settings than the defaults.
    pub fn builder() -> ContextBuilder {
        ContextBuilder {
            io_threads: 1,
            busy_poll: DEFAULT_BUSY_POLL,
        }
    }

    fn build(b: ContextBuilder) -> Result<Context> {
        let n = b.io_threads.max(1);
        let busy_poll = b.busy_poll;
        let (stop, stop_rx) = async_channel::bounded::<()>(1);
        let mut executors = Vec::with_capacity(n);
        let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(n);
        for i in 0..n {
            let ex = Arc::new(Executor::new());
            let (ex2, stop_rx) = (ex.clone(), stop_rx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{IO_THREAD_PREFIX}{i}"))
                .spawn(move || {
                    // Returns when `stop` is closed.
                    let run = ex2.run(async move {
                        let _ = stop_rx.recv().await;
                    });
                    // Linux: the thread waits in its own epoll (see
                    // `reactor`); elsewhere on async-io's shared reactor.
                    #[cfg(target_os = "linux")]
                    crate::reactor::Reactor::block_on(run, busy_poll);
                    #[cfg(not(target_os = "linux"))]
                    {
                        let _ = busy_poll;
                        async_io::block_on(run);
                    }
                });
            let handle = match handle {
                Ok(h) => h,
                Err(e) => {
                    // Stop the threads already running.
                    stop.close();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(crate::Error::Io(e));
                }
            };
            executors.push(ex);
            threads.push(handle);
        }
        Ok(Context {
            inner: Arc::new(ContextInner {
                spawner: Spawner {
                    executors: executors.into(),
                    next: Arc::new(AtomicUsize::new(0)),
                    tasks: Arc::new(TaskCount::default()),
                },
                threads: Mutex::new(threads),
                stop,
                sockets: Mutex::new(Vec::new()),
                inproc: Arc::default(),
            }),
        })
    }

    /// Number of I/O threads.
    pub fn io_threads(&self) -> usize {
        self.inner.spawner.executors.len()
    }

    /// A new socket of the given type.
    pub fn socket(&self, socket_type: SocketType) -> Result<Socket> {
        let s = Socket::new(self.clone(), socket_type)?;
        let mut list = self.inner.sockets.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(s.shared()));
        Ok(s)
    }

    /// A new socket with options set before anything else happens to it:
    ///
    /// ```
    /// use zmtp_sockets::{Context, SocketType};
    /// let ctx = Context::new();
    /// let push = ctx.socket_with(SocketType::Push, |o| {
    ///     o.sndhwm = 10;
    ///     o.linger = None;
    /// })?;
    /// assert_eq!(push.options().sndhwm, 10);
    /// # Ok::<(), zmtp_sockets::Error>(())
    /// ```
    pub fn socket_with(
        &self,
        socket_type: SocketType,
        f: impl FnOnce(&mut crate::Options),
    ) -> Result<Socket> {
        let s = self.socket(socket_type)?;
        s.configure(f)?;
        Ok(s)
    }

    /// Closes every socket of this context (their pending and future calls
    /// fail with [`crate::Error::Closed`]), waits until each connection has
    /// sent its queue or hit its linger, and stops the I/O threads. Dropping
    /// the last handle of the context and of its sockets does the same.
    ///
    /// This is the call that waits for delivery: with a socket's linger set
    /// to `None` it returns only once that socket's queued messages were
    /// written, however long the peer takes to appear (as libzmq's
    /// `zmq_ctx_term`). With the default linger it returns within 5 s of
    /// being called.
    pub fn term(self) {
        self.inner.shutdown();
    }
}

impl Default for Context {
    fn default() -> Context {
        Context::new()
    }
}

impl Spawner {
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.tasks.live.fetch_add(1, Ordering::AcqRel);
        let guard = TaskGuard(self.tasks.clone());
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.executors.len();
        // Boxed on its own: an async block that takes a future by value and
        // awaits it keeps two copies of its state in the task (about 2.6 KiB
        // each for a connection), so 1,000 idle connections held 5 MiB more.
        let fut = Box::pin(fut);
        self.executors[i]
            .spawn(async move {
                let _guard = guard;
                fut.await;
            })
            .detach();
    }
}

impl ContextInner {
    fn shutdown(&self) {
        let sockets: Vec<_> = {
            let list = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for s in sockets {
            s.close();
        }
        self.spawner.tasks.wait_idle();
        self.stop.close();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        // The last handle (context or socket) is gone: wait for lingering
        // connections, then stop the threads.
        self.shutdown();
    }
}

//! # zmtp-sockets: ZeroMQ sockets in pure Rust
//!
//! Every standard socket type (REQ, REP, DEALER, ROUTER, PUB, SUB, XPUB,
//! XSUB, PUSH, PULL, PAIR) over `tcp://`, `ipc://` and `inproc://`, with
//! NULL, PLAIN and CURVE security, talking to libzmq byte for byte, and
//! NOISE between zmtp peers. Over inproc (sockets of one [`Context`])
//! messages are handed over as they are, with no encoding, no copy, no
//! mechanism and no I/O thread. What each type does with messages is in one file per type
//! (`src/pattern/`), a pure state machine over the socket's pipes.
//!
//! ```no_run
//! use zmtp_sockets::{Context, SocketType};
//! # fn main() -> Result<(), zmtp_sockets::Error> {
//! let ctx = Context::new();
//! let rep = ctx.socket(SocketType::Rep)?;
//! let endpoint = rep.bind("tcp://127.0.0.1:0")?;
//! let req = ctx.socket(SocketType::Req)?;
//! req.connect(&endpoint)?;
//! req.send_blocking("hello")?;
//! let request = rep.recv_blocking()?;
//! rep.send_blocking(request)?;
//! assert_eq!(req.recv_blocking()?.frames()[0], "hello");
//! # Ok(()) }
//! ```
//!
//! ## Where the work happens
//!
//! The application's `send` routes a whole message onto a peer's bounded
//! queue (the high-water mark) and returns; `recv` takes a whole message
//! that is already decoded. Encoding, encryption, decryption and parsing
//! happen only in the task that owns each peer connection, on the context's
//! I/O threads (`zmtp-io-N`), which batch every queued message into one
//! vectored write. This is why CURVE costs the application thread no more
//! per `send` than NULL does.
//!
//! A context has one I/O thread unless built otherwise:
//!
//! ```no_run
//! use std::time::Duration;
//! use zmtp_sockets::Context;
//! let ctx = Context::builder()
//!     .io_threads(2)
//!     // Sleep as soon as there is no work (the default polls briefly).
//!     .busy_poll(Duration::ZERO)
//!     .build();
//! ```
//!
//! ## Runtimes
//!
//! The futures returned by [`Socket::send`] and [`Socket::recv`] depend on
//! no runtime: they work under async-std, smol, tokio or
//! `futures::executor`. Every call has a blocking twin
//! ([`Socket::send_blocking`], [`Socket::recv_blocking`]) for plain threads,
//! non-blocking `try_` forms, and a [`Poller`] waits on several sockets.
//!
//! ## Batches
//!
//! [`Socket::send_many`] and [`Socket::recv_many`] (with their `try_` and
//! `_blocking` forms) move many messages per call: the socket's lock and
//! the wake-up of each peer's connection task are paid once per batch, not
//! once per message (about a quarter less CPU per 16-byte PUSH/PULL
//! message, `BENCHMARKS.md`). Order, routing and high-water marks are those
//! of the same messages sent one by one; what a batch could not send stays
//! in the caller's `Vec`.
//!
//! ## Cargo features
//!
//! This crate has none: every transport, socket type and mechanism is
//! always built.

mod context;
mod endpoint;
mod error;
mod inbox;
mod inproc;
mod lane;
mod listener;
mod lock;
mod monitor;
mod options;
mod pattern;
mod pipe;
mod poller;
mod proxy;
#[cfg(target_os = "linux")]
mod reactor;
mod reconnect;
mod ring;
mod routing;
mod session;
mod shared;
mod socket;
mod stop;
mod stream;
mod stream_io;
mod transport;
mod waiters;

pub use context::{Context, ContextBuilder, DEFAULT_BUSY_POLL};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use monitor::{HandshakeFailure, Monitor, MonitorEvent, Reason, Refusal, StopReason};
pub use options::{DEFAULT_BACKLOG, DEFAULT_LINGER, MechanismFactory, Options, Security};
pub use poller::{Interest, Poller, Ready};
pub use proxy::{
    ProxyStats, SocketStats, proxy, proxy_blocking, proxy_steerable, proxy_steerable_blocking,
};
pub use socket::Socket;
pub use stream::{MessageSink, MessageStream};
pub use zmtp_core as core;
pub use zmtp_core::{IntoFrame, Message, Metadata, SocketType};
pub use zmtp_security as security;

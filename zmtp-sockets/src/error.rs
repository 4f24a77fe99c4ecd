//! The error type of zmtp-sockets.

use std::io;

/// Errors of the socket API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation would block (`try_send`/`try_recv`, or a send or
    /// receive timeout expired): libzmq's `EAGAIN`.
    #[error("operation would block (EAGAIN)")]
    WouldBlock,
    /// The socket or its context was closed: libzmq's `ETERM`.
    #[error("socket or context closed (ETERM)")]
    Closed,
    /// The call is not valid in the socket's current state, e.g. REQ sending
    /// twice without a reply: libzmq's `EFSM`.
    #[error("operation not valid in the current state: {0} (EFSM)")]
    State(&'static str),
    /// The socket type does not support the operation: libzmq's `ENOTSUP`.
    #[error("not supported by this socket type: {0} (ENOTSUP)")]
    NotSupported(&'static str),
    /// ROUTER with `router_mandatory`: no peer has the routing id in the
    /// message's first frame: libzmq's `EHOSTUNREACH`.
    #[error("no peer with this routing id (EHOSTUNREACH)")]
    HostUnreachable,
    /// A message without a frame: ZeroMQ has no such message (an empty
    /// message is one empty frame, `Message::from("")`).
    #[error("a message needs at least one frame (EINVAL)")]
    EmptyMessage,
    /// A malformed endpoint or unsupported transport.
    #[error("invalid endpoint {0:?}")]
    Endpoint(String),
    /// An option value that cannot be used.
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),
    /// An I/O error from bind or connect.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The endpoint was not bound or connected (unbind/disconnect).
    #[error("endpoint not found: {0}")]
    NotFound(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

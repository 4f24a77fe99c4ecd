//! Monitor events, delivered as a stream (libzmq's `zmq_socket_monitor`).

use std::time::Duration;

use zmtp_core::{Error as CoreError, PeerError};

/// Why a connection ended or an endpoint stopped, by cause.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The wire layer's verdict: the peer broke the protocol, failed
    /// authentication, or fell silent past a deadline (a heartbeat or the
    /// handshake): [`zmtp_core::Error`], nested by its own cause.
    Wire(CoreError),
    /// The stream failed (reset, broken pipe, closed by the peer...).
    Io {
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// The operating system's words.
        message: String,
    },
    /// The peer sent more subscriptions than the socket keeps
    /// (`Options::max_subscriptions`, `max_subscription_bytes`).
    SubscriptionLimit,
    /// A new peer with the same routing id took this one's place
    /// (`router_handover`).
    RoutingIdTakenOver,
    /// The socket's own settings could not make a mechanism.
    Setup(CoreError),
}

impl Reason {
    pub(crate) fn io(e: &std::io::Error) -> Reason {
        Reason::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// Whether the peer fell silent past a heartbeat deadline.
    pub fn is_heartbeat_timeout(&self) -> bool {
        matches!(
            self,
            Reason::Wire(CoreError::Timeout(
                zmtp_core::TimeoutKind::Heartbeat | zmtp_core::TimeoutKind::Ttl
            ))
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Wire(e) => write!(f, "{e}"),
            Reason::Io { message, .. } => write!(f, "{message}"),
            Reason::SubscriptionLimit => f.write_str("subscription limit exceeded"),
            Reason::RoutingIdTakenOver => f.write_str("a new peer took over its routing id"),
            Reason::Setup(e) => write!(f, "mechanism setup: {e}"),
        }
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The peer broke the protocol (malformed or unexpected input, a bad
    /// box), or the socket's settings could not make its mechanism.
    /// `ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL`.
    Protocol(Reason),
    /// Authentication failed with a ZAP status.
    /// `ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`.
    Auth {
        /// 300, 400 or 500.
        status: u16,
    },
    /// The peers use different mechanisms.
    MechanismMismatch,
    /// The connection broke, or the peer fell silent, during the
    /// handshake (`ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL`).
    NoDetail(Reason),
}

impl HandshakeFailure {
    pub(crate) fn from_core(e: &CoreError) -> HandshakeFailure {
        match e {
            // Silence is not refusal: the next attempt may find the peer.
            CoreError::Timeout(_) => HandshakeFailure::NoDetail(Reason::Wire(e.clone())),
            CoreError::Peer(PeerError::AuthFailed { status }) => {
                HandshakeFailure::Auth { status: *status }
            }
            CoreError::Peer(PeerError::MechanismMismatch { .. }) => {
                HandshakeFailure::MechanismMismatch
            }
            other => HandshakeFailure::Protocol(Reason::Wire(other.clone())),
        }
    }
}

/// Why a connect endpoint stopped reconnecting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The handshake failed for good (refused, or a protocol error).
    Handshake(HandshakeFailure),
    /// An established connection was closed for the peer's fault.
    Fault(Reason),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Handshake(h) => write!(f, "{h}"),
            StopReason::Fault(r) => write!(f, "{r}"),
        }
    }
}

/// Why a socket refused a peer after its handshake and closed the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A PAIR socket already has its one peer.
    SecondPeer,
    /// A ROUTER already has a peer with this routing id (and
    /// `router_handover` is off).
    DuplicateRoutingId(bytes::Bytes),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SecondPeer => f.write_str("PAIR already has a peer"),
            Refusal::DuplicateRoutingId(id) => {
                f.write_str("routing id 0x")?;
                for b in id.iter() {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(" is taken by another peer")
            }
        }
    }
}

impl HandshakeFailure {
    /// Whether the peer refused us or broke the protocol (a retry with the
    /// same settings would fail the same way), rather than the connection
    /// breaking or timing out.
    pub fn is_final(&self) -> bool {
        !matches!(self, HandshakeFailure::NoDetail(_))
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailure::Protocol(why) => write!(f, "protocol error: {why}"),
            HandshakeFailure::Auth { status } => {
                write!(f, "authentication failed (status {status})")
            }
            HandshakeFailure::MechanismMismatch => f.write_str("the peers' mechanisms differ"),
            HandshakeFailure::NoDetail(why) => write!(f, "connection lost: {why}"),
        }
    }
}

/// One monitor event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MonitorEvent {
    /// A bind succeeded (the endpoint carries the real port).
    Listening {
        /// The bound endpoint.
        endpoint: String,
    },
    /// A bind failed.
    BindFailed {
        /// The endpoint.
        endpoint: String,
        /// The error.
        reason: Reason,
    },
    /// A connection was accepted on a bound endpoint.
    Accepted {
        /// The bound endpoint.
        endpoint: String,
        /// The peer's address.
        peer: String,
    },
    /// A connect attempt succeeded at the transport level.
    Connected {
        /// The endpoint.
        endpoint: String,
        /// The peer's address.
        peer: String,
    },
    /// A connect attempt failed or a connection was lost; the next attempt
    /// comes after `interval`.
    ConnectRetried {
        /// The endpoint.
        endpoint: String,
        /// Delay before the next attempt.
        interval: Duration,
    },
    /// The ZMTP handshake completed.
    HandshakeSucceeded {
        /// The endpoint.
        endpoint: String,
        /// The peer's address.
        peer: String,
    },
    /// The ZMTP handshake failed.
    HandshakeFailed {
        /// The endpoint.
        endpoint: String,
        /// The peer's address.
        peer: String,
        /// Why.
        reason: HandshakeFailure,
    },
    /// The socket refused a peer after its handshake (PAIR's second peer,
    /// a ROUTER peer with a taken routing id) and closed its connection.
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The peer's address.
        peer: String,
        /// Why.
        reason: Refusal,
    },
    /// An established connection ended.
    Disconnected {
        /// The endpoint.
        endpoint: String,
        /// The peer's address.
        peer: String,
        /// Why, unless the peer simply closed the connection.
        reason: Option<Reason>,
    },
    /// A connect endpoint stopped reconnecting: its peer refused us (an
    /// ERROR command, a failed authentication) or the protocol broke, so
    /// another attempt with the same settings would fail the same way
    /// (libzmq does not reconnect after a protocol error either). Calling
    /// `connect` again tries again; the option `reconnect_after_error`
    /// keeps retrying instead.
    ConnectStopped {
        /// The endpoint.
        endpoint: String,
        /// Why: the failure of the last attempt.
        reason: StopReason,
    },
    /// A listener or connecter was closed (unbind, disconnect or close).
    Closed {
        /// The endpoint.
        endpoint: String,
    },
}

impl MonitorEvent {
    /// The endpoint the event concerns.
    pub fn endpoint(&self) -> &str {
        match self {
            MonitorEvent::Listening { endpoint }
            | MonitorEvent::BindFailed { endpoint, .. }
            | MonitorEvent::Accepted { endpoint, .. }
            | MonitorEvent::Connected { endpoint, .. }
            | MonitorEvent::ConnectRetried { endpoint, .. }
            | MonitorEvent::HandshakeSucceeded { endpoint, .. }
            | MonitorEvent::HandshakeFailed { endpoint, .. }
            | MonitorEvent::Refused { endpoint, .. }
            | MonitorEvent::ConnectStopped { endpoint, .. }
            | MonitorEvent::Disconnected { endpoint, .. }
            | MonitorEvent::Closed { endpoint } => endpoint,
        }
    }
}

/// A stream of monitor events. Events are dropped, never blocking the
/// socket, when the monitor falls 10,000 events behind.
///
/// ```
/// use std::time::Duration;
/// use zmtp_sockets::{Context, MonitorEvent, SocketType};
/// let ctx = Context::new();
/// let pull = ctx.socket(SocketType::Pull)?;
/// let events = pull.monitor();
/// let ep = pull.bind("tcp://127.0.0.1:0")?;
/// let push = ctx.socket(SocketType::Push)?;
/// push.connect(&ep)?;
/// let ev = events.wait_for_blocking(Duration::from_secs(20), |e| {
///     matches!(e, MonitorEvent::HandshakeSucceeded { .. })
/// });
/// assert!(ev.is_some());
/// # Ok::<(), zmtp_sockets::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Monitor {
    pub(crate) rx: async_channel::Receiver<MonitorEvent>,
}

impl Monitor {
    /// The next event.
    pub async fn next(&self) -> Option<MonitorEvent> {
        self.rx.recv().await.ok()
    }

    /// The next event, blocking the thread.
    pub fn next_blocking(&self) -> Option<MonitorEvent> {
        futures_lite::future::block_on(self.next())
    }

    /// The next event if one is ready.
    pub fn try_next(&self) -> Option<MonitorEvent> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for an event matching `pred`, discarding others.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&MonitorEvent) -> bool,
    ) -> Option<MonitorEvent> {
        let find = async {
            while let Some(ev) = self.next().await {
                if pred(&ev) {
                    return Some(ev);
                }
            }
            None
        };
        futures_lite::future::or(find, async {
            async_io::Timer::after(timeout).await;
            None
        })
        .await
    }

    /// Blocking [`Monitor::wait_for`].
    pub fn wait_for_blocking(
        &self,
        timeout: Duration,
        pred: impl FnMut(&MonitorEvent) -> bool,
    ) -> Option<MonitorEvent> {
        futures_lite::future::block_on(self.wait_for(timeout, pred))
    }
}

//! Monitor events, delivered as a stream (libzmq's `zmq_socket_monitor`).

use std::time::Duration;

use zmtp_core::{Error as CoreError, PeerError};

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The peer broke the protocol (malformed or unexpected input, a bad
    /// box, a timeout). `ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL`.
    Protocol(String),
    /// Authentication failed with a ZAP status.
    /// `ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`.
    Auth {
        /// 300, 400 or 500.
        status: u16,
    },
    /// The peers use different mechanisms.
    MechanismMismatch,
    /// The connection broke during the handshake
    /// (`ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL`).
    NoDetail(String),
}

impl HandshakeFailure {
    pub(crate) fn from_core(e: &CoreError) -> HandshakeFailure {
        match e {
            // Silence is not refusal: the next attempt may find the peer.
            CoreError::Timeout(_) => HandshakeFailure::NoDetail(e.to_string()),
            CoreError::Peer(PeerError::AuthFailed { status }) => {
                HandshakeFailure::Auth { status: *status }
            }
            CoreError::Peer(PeerError::MechanismMismatch { .. }) => {
                HandshakeFailure::MechanismMismatch
            }
            other => HandshakeFailure::Protocol(other.to_string()),
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
        reason: String,
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
        /// Why, if for a fault.
        reason: Option<String>,
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
        /// Why.
        reason: String,
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

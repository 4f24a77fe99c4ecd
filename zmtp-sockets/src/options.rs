//! Socket options. Defaults are libzmq's documented ones.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use zmtp_core::{Config, Metadata, SocketType};
use zmtp_security::{Authenticator, KeyPair, NoisePattern, PublicKey};
use zmtp_security::{
    CurveClient, CurveServer, NoiseClient, NoiseServer, Null, PlainClient, PlainServer,
};

/// The security mechanism and its role.
///
/// A CURVE server that accepts one client key, and that client:
///
/// ```
/// use std::sync::Arc;
/// use zmtp_sockets::security::{KeyPair, PublicKeyAllowList};
/// use zmtp_sockets::{Context, Security, SocketType};
/// let (server_keys, client_keys) = (KeyPair::generate(), KeyPair::generate());
/// let server_public = server_keys.public;
/// let allowed: PublicKeyAllowList = [client_keys.public].into_iter().collect();
/// let ctx = Context::new();
/// let pull = ctx.socket_with(SocketType::Pull, |o| {
///     o.security = Security::CurveServer { keys: server_keys };
///     o.authenticator = Some(Arc::new(allowed));
/// })?;
/// let push = ctx.socket_with(SocketType::Push, |o| {
///     o.security = Security::CurveClient { keys: client_keys, server: server_public };
/// })?;
/// let ep = pull.bind("tcp://127.0.0.1:0")?;
/// push.connect(&ep)?;
/// push.send_blocking("sealed")?;
/// assert_eq!(pull.recv_blocking()?.frames()[0], "sealed");
/// # Ok::<(), zmtp_sockets::Error>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Security {
    /// No security (the default). An Authenticator, if set, still judges
    /// peers by address.
    #[default]
    Null,
    /// PLAIN client with these credentials.
    PlainClient {
        /// Username (at most 255 bytes).
        username: Bytes,
        /// Password (at most 255 bytes).
        password: Bytes,
    },
    /// PLAIN server. Without an Authenticator every client is refused, as
    /// libzmq's PLAIN server refuses without a ZAP handler.
    PlainServer,
    /// CURVE client: its long-term key pair and the server's public key.
    CurveClient {
        /// Our long-term key pair.
        keys: KeyPair,
        /// The server's public key.
        server: PublicKey,
    },
    /// CURVE server with its long-term key pair. Without an Authenticator
    /// any client key is accepted (the client must still know ours).
    CurveServer {
        /// The server's key pair.
        keys: KeyPair,
    },
    /// NOISE client (`docs/noise-mechanism.md`). XX and IK use `keys` as the
    /// static key pair (`None`: a fresh one); IK and NK need `server`; for
    /// XX it is an optional pin.
    NoiseClient {
        /// The pattern (mechanism NOISE-XX, NOISE-IK or NOISE-NK).
        pattern: NoisePattern,
        /// Our static key pair.
        keys: Option<KeyPair>,
        /// The server's static public key.
        server: Option<PublicKey>,
    },
    /// NOISE server with its static key pair. Without an Authenticator any
    /// client is accepted.
    NoiseServer {
        /// The pattern.
        pattern: NoisePattern,
        /// The server's static key pair.
        keys: KeyPair,
    },
    /// A mechanism of your own: the factory makes one per connection. The
    /// engine runs it, like the built-in ones, inside the connection's task.
    Custom(MechanismFactory),
}

impl Security {
    /// A fresh mechanism for one connection, in this role. `authenticator`
    /// says whether the socket has one (NULL then asks it about each peer's
    /// address).
    pub(crate) fn mechanism(
        &self,
        authenticator: bool,
    ) -> Result<Box<dyn zmtp_core::Mechanism>, zmtp_core::Error> {
        Ok(match self {
            Security::Null => Box::new(Null::with_authentication(authenticator)),
            Security::PlainClient { username, password } => {
                Box::new(PlainClient::new(username, password)?)
            }
            Security::PlainServer => Box::new(PlainServer::new()),
            Security::CurveClient { keys, server } => {
                Box::new(CurveClient::new(keys.clone(), *server))
            }
            Security::CurveServer { keys } => Box::new(CurveServer::new(keys.clone())),
            Security::NoiseClient {
                pattern,
                keys,
                server,
            } => Box::new(NoiseClient::new(*pattern, keys.clone(), *server)?),
            Security::NoiseServer { pattern, keys } => {
                Box::new(NoiseServer::new(*pattern, keys.clone()))
            }
            Security::Custom(factory) => factory(),
        })
    }
}

/// Makes a fresh mechanism for each connection.
pub type MechanismFactory = Arc<dyn Fn() -> Box<dyn zmtp_core::Mechanism> + Send + Sync>;

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Null => f.write_str("Null"),
            Security::PlainClient { username, .. } => f
                .debug_struct("PlainClient")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Security::PlainServer => f.write_str("PlainServer"),
            Security::CurveClient { keys, server } => f
                .debug_struct("CurveClient")
                .field("public", &keys.public)
                .field("server", server)
                .finish(),
            Security::CurveServer { keys } => f
                .debug_struct("CurveServer")
                .field("public", &keys.public)
                .finish(),
            Security::NoiseClient {
                pattern,
                keys,
                server,
            } => f
                .debug_struct("NoiseClient")
                .field("pattern", pattern)
                .field("public", &keys.as_ref().map(|k| k.public))
                .field("server", server)
                .finish(),
            Security::NoiseServer { pattern, keys } => f
                .debug_struct("NoiseServer")
                .field("pattern", pattern)
                .field("public", &keys.public)
                .finish(),
            Security::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// The default [`Options::linger`]: 5 s.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);

/// The default [`Options::backlog`]: 1024.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Options of one socket.
///
/// Options are set when a socket is made, or with [`crate::Socket::configure`]:
///
/// ```
/// use std::time::Duration;
/// use zmtp_sockets::{Context, SocketType};
/// let ctx = Context::new();
/// let s = ctx.socket_with(SocketType::Dealer, |o| {
///     o.sndhwm = 10_000;
///     o.rcvtimeo = Some(Duration::from_millis(500));
///     o.routing_id = "client-7".into();
/// })?;
/// s.configure(|o| o.linger = None)?;
/// assert_eq!(s.options().sndhwm, 10_000);
/// # Ok::<(), zmtp_sockets::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// Outgoing queue bound per peer, in messages (`ZMQ_SNDHWM`, 1000).
    /// 0 means unlimited. Over inproc, as libzmq computes it, each
    /// direction holds the sender's `sndhwm` plus the receiver's `rcvhwm`
    /// messages (unlimited when either is 0 or either side conflates).
    pub sndhwm: usize,
    /// Incoming queue bound per peer, in messages (`ZMQ_RCVHWM`, 1000), as
    /// libzmq bounds each peer's pipe: with 32 peers, a socket queues up
    /// to 32 times this many. 0 means unlimited. A receiving socket may
    /// hold up to this many more: each peer's messages fill their share
    /// of the queue while the application receives from the batch it last
    /// took, which may be as large (libzmq holds about this many; the
    /// second part keeps a stream to a slower receiver from stalling, a
    /// tenth or more of the CPU per small message). Once a peer fills its
    /// share, its connection reads again when half of it is free.
    pub rcvhwm: usize,
    /// How long a closed socket keeps trying to send queued messages
    /// (`ZMQ_LINGER`; `None` waits for ever). Default [`DEFAULT_LINGER`],
    /// 5 s, where libzmq's is infinite: dropping a socket, or the last
    /// handle of its context, waits at most this long for the peer to take
    /// what is queued, so a program whose peer never came still exits.
    /// Set `None` to keep libzmq's behaviour, and `Some(Duration::ZERO)` to
    /// discard queued messages at once.
    pub linger: Option<Duration>,
    /// Send timeout (`ZMQ_SNDTIMEO`; `None` waits forever).
    pub sndtimeo: Option<Duration>,
    /// Receive timeout (`ZMQ_RCVTIMEO`; `None` waits forever).
    pub rcvtimeo: Option<Duration>,
    /// Queue messages only to completed connections (`ZMQ_IMMEDIATE`, off).
    pub immediate: bool,
    /// Reconnect interval (`ZMQ_RECONNECT_IVL`, 100 ms).
    pub reconnect_ivl: Duration,
    /// Upper bound of exponential reconnect back-off
    /// (`ZMQ_RECONNECT_IVL_MAX`; `None`: no back-off).
    pub reconnect_ivl_max: Option<Duration>,
    /// Keep reconnecting after the peer refused us (an ERROR command, a
    /// failed authentication) or the protocol broke (off). By default, as
    /// libzmq, such an endpoint stops and says why
    /// ([`crate::MonitorEvent::ConnectStopped`]): RFC 23 asks a client
    /// that received ERROR not to retry with the same credentials. The
    /// inverse of libzmq's `ZMQ_RECONNECT_STOP` for these cases.
    pub reconnect_after_error: bool,
    /// Handshake deadline (`ZMQ_HANDSHAKE_IVL`, 30 s; `None`: none).
    pub handshake_ivl: Option<Duration>,
    /// PING interval (`ZMQ_HEARTBEAT_IVL`, off).
    pub heartbeat_ivl: Option<Duration>,
    /// Heartbeat timeout (`ZMQ_HEARTBEAT_TIMEOUT`, defaults to the interval).
    pub heartbeat_timeout: Option<Duration>,
    /// TTL announced to peers (`ZMQ_HEARTBEAT_TTL`).
    pub heartbeat_ttl: Option<Duration>,
    /// Kernel send buffer size per connection (`ZMQ_SNDBUF`; `None`: the
    /// system's default for tcp, 1 MiB for ipc).
    pub sndbuf: Option<usize>,
    /// Kernel receive buffer size per connection (`ZMQ_RCVBUF`; `None`: the
    /// system's default).
    pub rcvbuf: Option<usize>,
    /// Largest frame accepted (`ZMQ_MAXMSGSIZE`; `None`: unlimited).
    pub max_msg_size: Option<u64>,
    /// Connections the kernel holds for each tcp or ipc listener until
    /// it is accepted (`ZMQ_BACKLOG`), for binds made afterwards; the
    /// kernel caps it (`net.core.somaxconn`). Default [`DEFAULT_BACKLOG`],
    /// 1024, where libzmq's is 100: when thousands of peers connect at
    /// once, a connection the full queue drops is retried by the peer's
    /// kernel only after a second, then three (10,000 peers at once over
    /// tcp took a libzmq server 31 s with 100, 1.3 s with 4096).
    pub backlog: u32,
    /// Routing id sent as `Identity` (`ZMQ_ROUTING_ID`).
    pub routing_id: Bytes,
    /// Application metadata (`ZMQ_METADATA`, `X-` properties).
    pub properties: Metadata,
    /// Security mechanism and role, for tcp and ipc. Over inproc no byte
    /// leaves the process and no mechanism runs: as in libzmq, inproc peers
    /// are not authenticated or encrypted whatever this says.
    pub security: Security,
    /// Authenticator for the server role (and NULL address checks).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// ZAP domain given to the Authenticator (`ZMQ_ZAP_DOMAIN`).
    pub zap_domain: String,
    /// REQ: allow a new request before the reply (`ZMQ_REQ_RELAXED`).
    pub req_relaxed: bool,
    /// REQ: match replies to requests by id (`ZMQ_REQ_CORRELATE`).
    pub req_correlate: bool,
    /// ROUTER: a message for an unknown routing id fails with
    /// [`crate::Error::HostUnreachable`] instead of being dropped, and one
    /// for a peer at its high-water mark waits instead of being dropped
    /// (`ZMQ_ROUTER_MANDATORY`, off).
    pub router_mandatory: bool,
    /// ROUTER: a new peer with a routing id already in use takes it over
    /// and the old peer is disconnected; otherwise the new peer is refused
    /// (`ZMQ_ROUTER_HANDOVER`, off).
    pub router_handover: bool,
    /// ROUTER and DEALER: send an empty message to each peer as soon as its
    /// handshake completes, so that a ROUTER peer learns our routing id
    /// (`ZMQ_PROBE_ROUTER`, off).
    pub probe_router: bool,
    /// XPUB: hand every subscription to the application, duplicates
    /// included (`ZMQ_XPUB_VERBOSE`, off).
    pub xpub_verbose: bool,
    /// XPUB: hand every cancel to the application, not only the last one
    /// for a prefix (`ZMQ_XPUB_VERBOSER`, off).
    pub xpub_verbose_unsubscribe: bool,
    /// Keep only the newest message in each queue, inbound and outbound
    /// (`ZMQ_CONFLATE`, off). PUB, SUB, XPUB, PUSH, PULL and DEALER
    /// only; set it before the first bind or connect. Unlike libzmq, whole
    /// multipart messages are kept.
    pub conflate: bool,
    /// PUB: most subscriptions kept per peer; a peer that sends more is
    /// disconnected. Bounds the memory a subscriber can make us hold.
    pub max_subscriptions: usize,
    /// PUB: most bytes of subscription prefixes kept per peer.
    pub max_subscription_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sndhwm: 1000,
            rcvhwm: 1000,
            linger: Some(DEFAULT_LINGER),
            sndtimeo: None,
            rcvtimeo: None,
            immediate: false,
            reconnect_ivl: Duration::from_millis(100),
            reconnect_ivl_max: None,
            reconnect_after_error: false,
            handshake_ivl: Some(Duration::from_secs(30)),
            heartbeat_ivl: None,
            heartbeat_timeout: None,
            heartbeat_ttl: None,
            sndbuf: None,
            rcvbuf: None,
            max_msg_size: None,
            backlog: DEFAULT_BACKLOG,
            routing_id: Bytes::new(),
            properties: Metadata::new(),
            security: Security::Null,
            authenticator: None,
            zap_domain: String::new(),
            req_relaxed: false,
            req_correlate: false,
            router_mandatory: false,
            router_handover: false,
            probe_router: false,
            xpub_verbose: false,
            xpub_verbose_unsubscribe: false,
            conflate: false,
            max_subscriptions: 100_000,
            max_subscription_bytes: 64 << 20,
        }
    }
}

impl Options {
    /// The sans-IO connection's settings for a peer at `peer`.
    pub(crate) fn connection_config(&self, socket_type: SocketType, peer: &str) -> Config {
        let mut c = Config::new(socket_type);
        c.routing_id = self.routing_id.clone();
        c.properties = self.properties.clone();
        c.max_msg_size = self.max_msg_size;
        c.handshake_ivl = self.handshake_ivl;
        c.heartbeat_ivl = self.heartbeat_ivl;
        c.heartbeat_timeout = self.heartbeat_timeout;
        c.heartbeat_ttl = self.heartbeat_ttl;
        c.peer_address = Some(Bytes::copy_from_slice(peer.as_bytes()));
        c
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("sndhwm", &self.sndhwm)
            .field("rcvhwm", &self.rcvhwm)
            .field("linger", &self.linger)
            .field("security", &self.security)
            .field("authenticator", &self.authenticator.is_some())
            .finish_non_exhaustive()
    }
}

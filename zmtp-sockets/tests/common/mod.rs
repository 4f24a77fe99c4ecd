//! Shared helpers for the socket tests.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use zmtp_sockets::security::{KeyPair, NoisePattern, PlainCredentials, PublicKeyAllowList};
use zmtp_sockets::{Context, MonitorEvent, Security, Socket, SocketType};

mod ports;
#[allow(unused_imports)]
pub use ports::quiet_tcp_endpoint;

/// Generous: the machine may be loaded.
pub const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug)]
pub enum Mech {
    Null,
    Plain,
    Curve,
    Noise(NoisePattern),
}

/// NULL and the two ciphers, for tests that check bytes through each
/// mechanism's framing.
pub const NULL_CURVE_NOISE: [Mech; 3] = [Mech::Null, Mech::Curve, Mech::Noise(NoisePattern::XX)];

pub const MECHS: [Mech; 6] = [
    Mech::Null,
    Mech::Plain,
    Mech::Curve,
    Mech::Noise(NoisePattern::XX),
    Mech::Noise(NoisePattern::IK),
    Mech::Noise(NoisePattern::NK),
];

#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Tcp,
    Ipc,
}

pub fn endpoint(t: Transport) -> String {
    match t {
        Transport::Tcp => "tcp://127.0.0.1:0".into(),
        Transport::Ipc => {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir();
            format!(
                "ipc://{}/zmtp-test-{}-{n}.sock",
                dir.display(),
                std::process::id()
            )
        }
    }
}

/// Configures `server` and `client` for a mechanism; the server side has an
/// Authenticator that accepts the client's credentials.
pub fn secure(server: &Socket, client: &Socket, m: Mech) {
    match m {
        Mech::Null => {}
        Mech::Plain => {
            let mut t = PlainCredentials::new();
            t.allow("admin", "secret");
            server
                .configure(|o| {
                    o.security = Security::PlainServer;
                    o.authenticator = Some(Arc::new(t));
                })
                .unwrap();
            client
                .configure(|o| {
                    o.security = Security::PlainClient {
                        username: "admin".into(),
                        password: "secret".into(),
                    };
                })
                .unwrap();
        }
        Mech::Curve => {
            let server_keys = KeyPair::generate();
            let client_keys = KeyPair::generate();
            let allow: PublicKeyAllowList = [client_keys.public].into_iter().collect();
            let server_public = server_keys.public;
            server
                .configure(|o| {
                    o.security = Security::CurveServer { keys: server_keys };
                    o.authenticator = Some(Arc::new(allow));
                })
                .unwrap();
            client
                .configure(|o| {
                    o.security = Security::CurveClient {
                        keys: client_keys,
                        server: server_public,
                    }
                })
                .unwrap();
        }
        Mech::Noise(pattern) => {
            let server_keys = KeyPair::generate();
            let client_keys = KeyPair::generate();
            let server_public = server_keys.public;
            // NK clients are anonymous: no allow list for them.
            if pattern != NoisePattern::NK {
                let allow: PublicKeyAllowList = [client_keys.public].into_iter().collect();
                server
                    .configure(|o| o.authenticator = Some(Arc::new(allow)))
                    .unwrap();
            }
            server
                .configure(|o| {
                    o.security = Security::NoiseServer {
                        pattern,
                        keys: server_keys,
                    }
                })
                .unwrap();
            client
                .configure(|o| {
                    o.security = Security::NoiseClient {
                        pattern,
                        keys: Some(client_keys),
                        server: Some(server_public),
                    }
                })
                .unwrap();
        }
    }
}

/// A bound socket and a connected one, handshake done on both sides.
/// A bound PULL and a connected PUSH over `t`, NULL, handshakes done.
pub fn pull_push(ctx: &Context, t: Transport) -> (Socket, Socket) {
    pair(ctx, SocketType::Pull, SocketType::Push, Mech::Null, t, true)
}

pub fn pair(
    ctx: &Context,
    bind: SocketType,
    conn: SocketType,
    m: Mech,
    t: Transport,
    server_binds: bool,
) -> (Socket, Socket) {
    let a = ctx.socket(bind).unwrap();
    let b = ctx.socket(conn).unwrap();
    for s in [&a, &b] {
        s.configure(|o| {
            o.rcvtimeo = Some(TIMEOUT);
            o.sndtimeo = Some(TIMEOUT);
            o.linger = Some(Duration::from_secs(1));
        })
        .unwrap();
    }
    if server_binds {
        secure(&a, &b, m)
    } else {
        secure(&b, &a, m)
    }
    let ma = a.monitor();
    let mb = b.monitor();
    let ep = a.bind(&endpoint(t)).unwrap();
    b.connect(&ep).unwrap();
    for (mon, who) in [(&ma, "bind side"), (&mb, "connect side")] {
        let ev = mon.wait_for_blocking(TIMEOUT, |e| {
            matches!(
                e,
                MonitorEvent::HandshakeSucceeded { .. } | MonitorEvent::HandshakeFailed { .. }
            )
        });
        assert!(
            matches!(ev, Some(MonitorEvent::HandshakeSucceeded { .. })),
            "{who}: {ev:?} ({bind:?}/{conn:?} {m:?} {t:?})"
        );
    }
    (a, b)
}

/// A REP worker: answers each request with `w{w}:` and the request's first
/// frame, until its socket or context closes.
pub fn serve_tagged(rep: &Socket, w: usize) {
    while let Ok(req) = rep.recv_blocking() {
        let mut reply = format!("w{w}:").into_bytes();
        reply.extend_from_slice(&req.frames()[0]);
        if rep.send_blocking(reply).is_err() {
            return;
        }
    }
}

/// Publishes `probe` until `sub` receives one: its subscription is then in
/// effect. Copies of the probe sent meanwhile may still be queued.
pub fn until_subscribed(publ: &Socket, sub: &Socket, probe: &str) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    sub.configure(|o| o.rcvtimeo = Some(Duration::from_millis(50)))
        .unwrap();
    loop {
        publ.send_blocking(probe).unwrap();
        if sub.recv_blocking().is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never took effect"
        );
    }
    sub.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
}

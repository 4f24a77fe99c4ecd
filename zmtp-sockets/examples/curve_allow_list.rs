//! A CURVE-secured pair: the server knows its key pair and an allow list of
//! client keys; a listed client gets through, an unlisted one is refused
//! with status 400 and delivers nothing.
//!
//! `cargo run -p zmtp-sockets --example curve_allow_list`

use std::sync::Arc;
use std::time::Duration;

use zmtp_sockets::security::{KeyPair, PublicKeyAllowList};
use zmtp_sockets::{Context, HandshakeFailure, MonitorEvent, Security, SocketType};

fn main() -> Result<(), zmtp_sockets::Error> {
    let ctx = Context::new();
    let server_keys = KeyPair::generate();
    let server_public = server_keys.public;
    let friend = KeyPair::generate();
    let stranger = KeyPair::generate();

    let server = ctx.socket(SocketType::Pull)?;
    let allow: PublicKeyAllowList = [friend.public].into_iter().collect();
    server.configure(|o| {
        o.security = Security::CurveServer { keys: server_keys };
        o.authenticator = Some(Arc::new(allow));
        o.rcvtimeo = Some(Duration::from_secs(10));
    })?;
    let monitor = server.monitor();
    let endpoint = server.bind("tcp://127.0.0.1:0")?;

    for (name, keys) in [("stranger", stranger), ("friend", friend)] {
        let client = ctx.socket(SocketType::Push)?;
        client.configure(|o| {
            o.security = Security::CurveClient {
                keys,
                server: server_public,
            };
            o.linger = Some(Duration::ZERO);
        })?;
        client.connect(&endpoint)?;
        client.send_blocking(format!("hello from the {name}").into_bytes())?;
        let outcome = monitor.wait_for_blocking(Duration::from_secs(10), |e| {
            matches!(
                e,
                MonitorEvent::HandshakeSucceeded { .. } | MonitorEvent::HandshakeFailed { .. }
            )
        });
        match outcome {
            Some(MonitorEvent::HandshakeFailed {
                reason: HandshakeFailure::Auth { status },
                ..
            }) => {
                println!("{name}: refused with status {status}");
            }
            Some(MonitorEvent::HandshakeSucceeded { .. }) => {
                let m = server.recv_blocking()?;
                println!(
                    "{name}: {} (User-Id {:?})",
                    String::from_utf8_lossy(&m.frames()[0]),
                    m.user_id()
                );
            }
            other => println!("{name}: {other:?}"),
        }
    }
    Ok(())
}

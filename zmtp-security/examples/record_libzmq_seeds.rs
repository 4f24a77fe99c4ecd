//! Records fuzz seeds from a real libzmq client (one-off, by hand; needs the
//! `fuzzing` feature for the deterministic keys the fuzz targets use):
//!
//! ```sh
//! cargo run -p zmtp-security --features fuzzing --example record_libzmq_seeds -- curve_server OUT
//! ```
//!
//! It serves one connection on 127.0.0.1 with the same keys, drawn in the
//! same order, as the fuzz target, prints `port <p> server-public <z85>` and
//! writes every byte the client sent to OUT. A libzmq client (pyzmq, see
//! `fuzz/record_libzmq_seeds.py`) connects, handshakes and sends messages;
//! replayed through the target, the recording reaches the traffic state.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use zmtp_core::{AuthVerdict, Config, Connection, Event, Mechanism, SocketType};
use zmtp_security::{CurveClient, CurveServer, KeyPair, PlainClient, PlainServer, SecretKey};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (target, out) = (args[1].as_str(), &args[2]);
    // The fuzz targets' source and seed: the same draws, in the same order.
    let random: zmtp_security::random::Random = std::sync::Arc::new(
        zmtp_security::random::Deterministic::new(0x5EED_0000_0000_0001),
    );
    if target == "print_server_secret" {
        // The first key the CURVE targets draw: the server's.
        println!(
            "{}",
            KeyPair::generate_with(&*random).secret.to_z85().as_str()
        );
        return;
    }
    if target.ends_with("_client") {
        return client(target, out, args[3].parse().expect("port"), random);
    }
    let mech: Box<dyn Mechanism> = match target {
        "curve_server" => {
            // As `zmtp_security::fuzz::curve_server` draws them.
            let server = KeyPair::generate_with(&*random);
            let _client = KeyPair::generate_with(&*random);
            let _client_transient = SecretKey::generate_with(&*random);
            println!("server-public {}", server.public);
            Box::new(CurveServer::new(server).with_random(random))
        }
        "plain_server" => Box::new(PlainServer::new()),
        t => panic!("unknown target {t}"),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("port {}", listener.local_addr().expect("addr").port());
    std::io::stdout().flush().expect("flush");
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut conn = Connection::new(Config::new(SocketType::Pull), mech, Instant::now());
    let mut recorded = Vec::new();
    let mut messages = 0;
    while messages < 2 {
        s.write_all(&conn.output().expect("output").take_all())
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        recorded.extend_from_slice(&buf[..n]);
        conn.recv_buffer().extend_from_slice(&buf[..n]);
        while let Some(ev) = conn.poll_event(Instant::now()).expect("valid handshake") {
            match ev {
                Event::Authenticate(_) => conn
                    .authenticated(AuthVerdict::allow(), Instant::now())
                    .expect("verdict"),
                Event::Message(_) => messages += 1,
                _ => {}
            }
        }
    }
    assert!(
        conn.is_ready(),
        "the libzmq client did not complete the handshake"
    );
    std::fs::write(out, &recorded).expect("write seed");
    println!("recorded {} bytes, {messages} messages", recorded.len());
}

/// Client targets: connect to a libzmq server on `port` and record what it
/// sent, with the keys the fuzz target draws.
fn client(target: &str, out: &str, port: u16, random: zmtp_security::random::Random) {
    let mech: Box<dyn Mechanism> = match target {
        "curve_client" => {
            let server = KeyPair::generate_with(&*random);
            let client = KeyPair::generate_with(&*random);
            Box::new(CurveClient::new(client, server.public).with_random(random))
        }
        "plain_client" => Box::new(PlainClient::new("admin", "secret").expect("credentials")),
        t => panic!("unknown target {t}"),
    };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut conn = Connection::new(Config::new(SocketType::Push), mech, Instant::now());
    let mut recorded = Vec::new();
    while !conn.is_ready() {
        s.write_all(&conn.output().expect("output").take_all())
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        recorded.extend_from_slice(&buf[..n]);
        conn.recv_buffer().extend_from_slice(&buf[..n]);
        while conn
            .poll_event(Instant::now())
            .expect("valid handshake")
            .is_some()
        {}
    }
    assert!(
        conn.is_ready(),
        "the libzmq server did not complete the handshake"
    );
    std::fs::write(out, &recorded).expect("write seed");
    println!("recorded {} bytes", recorded.len());
}

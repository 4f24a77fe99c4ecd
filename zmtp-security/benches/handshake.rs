//! A whole handshake, both sides, in memory (sans-IO): the protocol and
//! crypto cost of one connection, without the network.
//!
//! `cargo bench -p zmtp-security --bench handshake`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use zmtp_core::{AuthVerdict, Config, Connection, Event, Mechanism, SocketType};
use zmtp_security::{
    CurveClient, CurveServer, KeyPair, NoiseClient, NoisePattern, NoiseServer, Null, PlainClient,
    PlainServer,
};

fn pass(from: &mut Connection, to: &mut Connection, now: Instant) {
    if let Ok(out) = from.output() {
        to.recv_buffer().extend_from_slice(&out.take_all());
    }
    while let Ok(Some(ev)) = to.poll_event(now) {
        if let Event::Authenticate(_) = ev {
            to.authenticated(AuthVerdict::allow(), now)
                .expect("verdict");
        }
    }
}

fn pump(a: &mut Connection, b: &mut Connection) {
    let now = Instant::now();
    for _ in 0..8 {
        pass(a, b, now);
        pass(b, a, now);
        if a.is_ready() && b.is_ready() {
            return;
        }
    }
    panic!("handshake did not complete");
}

fn run(client: Box<dyn Mechanism>, server: Box<dyn Mechanism>) {
    let now = Instant::now();
    let mut c = Connection::new(Config::new(SocketType::Push), client, now);
    let mut s = Connection::new(Config::new(SocketType::Pull), server, now);
    pump(&mut c, &mut s);
}

fn handshakes(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.bench_function("null", |b| {
        b.iter(|| run(Box::new(Null::new()), Box::new(Null::new())))
    });
    g.bench_function("plain", |b| {
        b.iter(|| {
            run(
                Box::new(PlainClient::new("u", "p").expect("creds")),
                Box::new(PlainServer::new()),
            )
        })
    });
    let server = KeyPair::generate();
    let client = KeyPair::generate();
    g.bench_function("curve", |b| {
        b.iter(|| {
            run(
                Box::new(CurveClient::new(client.clone(), server.public)),
                Box::new(CurveServer::new(server.clone())),
            )
        })
    });
    for (name, pattern) in [
        ("noise-xx", NoisePattern::XX),
        ("noise-ik", NoisePattern::IK),
        ("noise-nk", NoisePattern::NK),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                run(
                    Box::new(
                        NoiseClient::new(pattern, Some(client.clone()), Some(server.public))
                            .expect("keys"),
                    ),
                    Box::new(NoiseServer::new(pattern, server.clone())),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);

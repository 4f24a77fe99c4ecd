//! CURVE MESSAGE seal and open for one frame, in a default release build.
//!
//! `cargo bench -p zmtp-security --bench curve`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use zmtp_core::{
    AuthVerdict, FrameCipher, Greeting, HandshakeContext, Mechanism, MechanismName, Metadata, Step,
    Traffic,
};
use zmtp_security::{CurveClient, CurveServer, KeyPair};

fn ciphers() -> (Box<dyn FrameCipher>, Box<dyn FrameCipher>) {
    let server_keys = KeyPair::generate();
    let mut client = CurveClient::new(KeyPair::generate(), server_keys.public);
    let mut server = CurveServer::new(server_keys);
    let g = Greeting::new(MechanismName::CURVE, false);
    let bytes = g.emit();
    let local = Metadata::new();
    let ctx = HandshakeContext {
        local: &local,
        our_greeting: &bytes,
        peer_greeting: &bytes,
        peer: &g,
    };
    let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
    let _ = client.start(&ctx, &mut to_s).expect("start");
    let _ = server.start(&ctx, &mut to_c).expect("start");
    let _ = server
        .handle_command(to_s.remove(0), &mut to_c)
        .expect("hello");
    let _ = client
        .handle_command(to_c.remove(0), &mut to_s)
        .expect("welcome");
    let step = server
        .handle_command(to_s.remove(0), &mut to_c)
        .expect("initiate");
    assert!(matches!(step, Step::Authenticate(_)));
    let _ = server
        .handle_verdict(AuthVerdict::allow(), &mut to_c)
        .expect("verdict");
    let _ = client
        .handle_command(to_c.remove(0), &mut to_s)
        .expect("ready");
    let (Traffic::Frames(c), Traffic::Frames(s)) = (
        Box::new(client).into_traffic(),
        Box::new(server).into_traffic(),
    ) else {
        panic!("CURVE traffic is per frame")
    };
    (c, s)
}

fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("curve");
    for size in [64usize, 512, 1024, 4096, 65536] {
        let body = Bytes::from(vec![0x5A; size]);
        g.throughput(Throughput::Bytes(size as u64));
        let (mut client, _) = ciphers();
        let mut out = BytesMut::with_capacity(size + 64);
        g.bench_with_input(BenchmarkId::new("seal", size), &body, |b, body| {
            b.iter(|| {
                out.clear();
                client.seal(false, false, body, &mut out).expect("seal");
                black_box(&out);
            });
        });
        // Open needs fresh nonces: seal a batch outside the timing.
        let (mut client, mut server) = ciphers();
        g.bench_with_input(BenchmarkId::new("open", size), &body, |b, body| {
            b.iter_batched(
                || {
                    let mut w = BytesMut::new();
                    client.seal(false, false, body, &mut w).expect("seal");
                    w
                },
                |w| black_box(server.open(w).expect("open")),
                criterion::BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);

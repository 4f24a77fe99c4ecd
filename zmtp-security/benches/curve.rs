//! CURVE MESSAGE seal and open for one frame, in a default release build.
//!
//! `cargo bench -p zmtp-security --bench curve`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use zmtp_core::FrameCipher;

fn ciphers() -> (Box<dyn FrameCipher>, Box<dyn FrameCipher>) {
    zmtp_security::curve::cipher_pair().expect("handshake")
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

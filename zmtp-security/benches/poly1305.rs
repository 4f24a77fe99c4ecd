//! The two Poly1305 implementations CURVE uses, side by side: orion's
//! (small boxes) and RustCrypto's (inside salsabox, large boxes). The
//! evidence for keeping both (DEPENDENCIES.md): RustCrypto's pays a fixed
//! cost per message in a default build, orion's is slower per byte.
//!
//! `cargo bench -p zmtp-security --bench poly1305`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use poly1305::universal_hash::KeyInit;
use std::hint::black_box;

fn poly(c: &mut Criterion) {
    let mut g = c.benchmark_group("poly1305");
    let key = [7u8; 32];
    for size in [16usize, 256, 1024, 4096, 65536] {
        let data = vec![0x5A; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("orion", size), &data, |b, data| {
            b.iter(|| {
                let k = orion::hazardous::mac::poly1305::OneTimeKey::from_slice(&key).expect("key");
                black_box(
                    orion::hazardous::mac::poly1305::Poly1305::poly1305(&k, data).expect("mac"),
                )
            });
        });
        g.bench_with_input(BenchmarkId::new("rustcrypto", size), &data, |b, data| {
            b.iter(|| black_box(poly1305::Poly1305::new((&key).into()).compute_unpadded(data)));
        });
    }
    g.finish();
}

criterion_group!(benches, poly);
criterion_main!(benches);

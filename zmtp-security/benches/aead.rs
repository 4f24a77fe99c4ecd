//! One Noise message sealed in a default release build, by each AEAD NOISE
//! could use: `ring`'s AES-256-GCM (which NOISE uses) and ChaCha20-Poly1305,
//! and RustCrypto's `chacha20poly1305` (behind snow's own resolver); the
//! evidence for the choice in `src/noise/cipher.rs`.
//!
//! `cargo bench -p zmtp-security --bench aead`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead-seal");
    let key = [0x42u8; 32];
    let ring_key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("key"));
    let aes_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("key"));
    let rc = ChaCha20Poly1305::new(&key.into());
    // 65519: the largest plaintext of a NOISE record.
    for size in [64usize, 1024, 65519] {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5A; size];
        for (name, key) in [("ring-chachapoly", &ring_key), ("ring-aes256gcm", &aes_key)] {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    let n = Nonce::assume_unique_for_key([0; 12]);
                    let tag = key
                        .seal_in_place_separate_tag(n, Aad::empty(), &mut buf)
                        .expect("seal");
                    black_box(tag.as_ref()[0]);
                });
            });
        }
        g.bench_with_input(
            BenchmarkId::new("rustcrypto-chachapoly", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let tag = rc
                        .encrypt_in_place_detached(&[0u8; 12].into(), b"", &mut buf)
                        .expect("seal");
                    black_box(tag[0]);
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, seal);
criterion_main!(benches);

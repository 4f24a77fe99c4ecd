//! Decoder and encoder cost per frame, at 16 bytes and 64 KiB.
//!
//! `cargo bench -p zmtp-core --bench codec`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use zmtp_core::{Encoder, FrameDecoder};

const BATCH: usize = 1024;

fn wire(size: usize) -> Vec<u8> {
    let mut enc = Encoder::new();
    let body = Bytes::from(vec![0xAB; size]);
    for _ in 0..BATCH {
        enc.frame(false, false, &body);
    }
    enc.take_all()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for size in [16usize, 64 * 1024] {
        let stream = wire(size);
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &stream, |b, stream| {
            // The read buffer is refilled outside the timed part's hot loop
            // only as a memcpy, as a socket read would fill it.
            b.iter_batched_ref(
                || BytesMut::from(&stream[..]),
                |buf| {
                    let mut dec = FrameDecoder::new(None);
                    while let Some(f) = dec.decode(buf).expect("valid stream") {
                        black_box(f.body.freeze());
                    }
                },
                criterion::BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for size in [16usize, 64 * 1024] {
        let body = Bytes::from(vec![0xAB; size]);
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            let mut enc = Encoder::new();
            b.iter(|| {
                for _ in 0..BATCH {
                    enc.frame(false, false, body);
                }
                let n = enc.len();
                enc.advance(n);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);

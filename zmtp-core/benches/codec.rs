//! Decoder and encoder cost per frame, at 16 bytes and 64 KiB, and a
//! connection's cost per message after the handshake (what its I/O task
//! spends on each one, on one thread).
//!
//! `cargo bench -p zmtp-core --bench codec`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use zmtp_core::{Config, Connection, Encoder, Event, FrameDecoder, Message, Null, SocketType};

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

/// A PUSH and a PULL connection after their NULL handshake.
fn ready_pair() -> (Connection, Connection) {
    let now = Instant::now();
    let mut a = Connection::new(Config::new(SocketType::Push), Box::new(Null::new()), now);
    let mut b = Connection::new(Config::new(SocketType::Pull), Box::new(Null::new()), now);
    for _ in 0..10 {
        let to_b = a.output().expect("open").take_all();
        let to_a = b.output().expect("open").take_all();
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        for (c, bytes) in [(&mut b, to_b), (&mut a, to_a)] {
            c.recv_buffer().extend_from_slice(&bytes);
            c.input_arrived(now);
            while c.poll_event(now).expect("handshake").is_some() {}
        }
    }
    assert!(a.is_ready() && b.is_ready());
    (a, b)
}

/// Times `drain` taking `BATCH` copies of `msg` out of a PULL connection.
/// Only the decoding is timed: the read that fills the buffer and the drop
/// of the messages (the application's) are not.
fn receive(
    b: &mut criterion::Bencher<'_>,
    msg: &Message,
    mut drain: impl FnMut(&mut Connection, Instant, &mut Vec<Message>),
) {
    let (mut a, mut pull) = ready_pair();
    for _ in 0..BATCH {
        a.send(msg).expect("ready");
    }
    let stream = a.output().expect("ready").take_all();
    let now = Instant::now();
    let mut got = Vec::with_capacity(BATCH);
    b.iter_custom(|iters| {
        let mut spent = std::time::Duration::ZERO;
        for _ in 0..iters {
            pull.recv_buffer().extend_from_slice(&stream);
            let t = Instant::now();
            drain(&mut pull, now, &mut got);
            spent += t.elapsed();
            assert_eq!(got.len(), BATCH);
            got.clear();
        }
        spent
    });
}

fn connection(c: &mut Criterion) {
    let mut g = c.benchmark_group("connection");
    let msg = Message::from(Bytes::from(vec![0x5A; 16]));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("send/16", |b| {
        let (mut a, _) = ready_pair();
        b.iter(|| {
            for _ in 0..BATCH {
                a.send(&msg).expect("ready");
            }
            let out = a.output().expect("ready");
            let n = out.len();
            out.advance(n);
        });
    });
    // `poll_event`, one event per message.
    g.bench_function("recv/16", |b| {
        receive(b, &msg, |pull, now, got| {
            while let Some(ev) = pull.poll_event(now).expect("valid stream") {
                if let Event::Message(m) = ev {
                    got.push(m);
                }
            }
        });
    });
    // `poll_messages`, as the engine's connection task calls it.
    g.bench_function("recv_batch/16", |b| {
        receive(b, &msg, |pull, now, got| {
            let ev = pull
                .poll_messages(now, usize::MAX, |m| got.push(m))
                .expect("valid stream");
            assert!(ev.is_none());
        });
    });
    g.finish();
}

criterion_group!(benches, decode, encode, connection);
criterion_main!(benches);

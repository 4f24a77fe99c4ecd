//! `zmtp-mixed`: which side limits small-message throughput? Runs PUSH/PULL
//! 16 B over tcp with every combination of libzmq and zmtp on each side.
//!
//! `target/release/zmtp-mixed [COUNT]`

use std::time::Instant;

use zmtp_sockets::{Context, SocketType};

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    for (zs, zr) in [(false, false), (true, false), (false, true), (true, true)] {
        let zctx_s = zmq::Context::new();
        let zctx_r = zmq::Context::new();
        let ctx_s = Context::new();
        let ctx_r = Context::new();
        let ep;
        let recv: Box<dyn FnMut() -> bool + Send> = if zr {
            let s = ctx_r.socket(SocketType::Pull).expect("socket");
            ep = s.bind("tcp://127.0.0.1:0").expect("bind");
            Box::new(move || s.recv_blocking().is_ok())
        } else {
            let s = zctx_r.socket(zmq::PULL).expect("socket");
            s.bind("tcp://127.0.0.1:*").expect("bind");
            ep = s.get_last_endpoint().expect("ep").expect("utf8");
            Box::new(move || s.recv_bytes(0).is_ok())
        };
        let mut send: Box<dyn FnMut()> = if zs {
            let s = ctx_s.socket(SocketType::Push).expect("socket");
            s.connect(&ep).expect("connect");
            Box::new(move || s.send_blocking(&b"0123456789abcdef"[..]).expect("send"))
        } else {
            let s = zctx_s.socket(zmq::PUSH).expect("socket");
            s.connect(&ep).expect("connect");
            Box::new(move || s.send(&b"0123456789abcdef"[..], 0).expect("send"))
        };
        let mut recv = recv;
        let t = std::thread::spawn(move || {
            recv();
            let t0 = Instant::now();
            for _ in 1..count {
                recv();
            }
            t0.elapsed()
        });
        for _ in 0..count {
            send();
        }
        let e = t.join().expect("receiver");
        println!(
            "sender {:6} receiver {:6}: {:.2}M msg/s",
            if zs { "zmtp" } else { "libzmq" },
            if zr { "zmtp" } else { "libzmq" },
            (count - 1) as f64 / e.as_secs_f64() / 1e6
        );
    }
}

//! `rust-peers <zeromq|rzmq|omq> <size> <count>`: PUSH/PULL NULL over tcp
//! loopback between two sides of one process, each side on its own
//! single-worker tokio runtime; prints one JSON line like `zmtp bench
//! --json`. Used by `zmtp-compare --rust-peers`.

use std::time::Instant;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let imp = args.get(1).cloned().unwrap_or_else(|| "zeromq".into());
    let size: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let count: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let payload = bytes::Bytes::from(vec![0x5Au8; size]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let ep2 = ep.clone();
    let imp2 = imp.clone();
    let receiver = std::thread::spawn(move || {
        rt().block_on(async move {
            let mut first = None;
            let mut last = Instant::now();
            let mut got = 0u64;
            // The same timed receive loop for every stack.
            macro_rules! receive {
                ($s:ident) => {
                    for n in 0..count {
                        // A peer that loses messages would hang the run:
                        // give up after 10 s of silence and report.
                        match tokio::time::timeout(std::time::Duration::from_secs(10), $s.recv()).await {
                            Ok(Ok(_)) => got += 1,
                            _ => {
                                eprintln!("only {n} of {count} messages arrived");
                                break;
                            }
                        }
                        if n == 0 || n + 1 == count || n % 4096 == 0 {
                            last = Instant::now();
                            first.get_or_insert(last);
                        }
                    }
                };
            }
            match imp2.as_str() {
                "zeromq" => {
                    use zeromq::{Socket, SocketRecv};
                    let mut s = zeromq::PullSocket::new();
                    s.bind(&ep2).await.unwrap();
                    ready_tx.send(()).unwrap();
                    receive!(s);
                }
                "rzmq" => {
                    let ctx = rzmq::Context::new().unwrap();
                    let s = ctx.socket(rzmq::SocketType::Pull).unwrap();
                    s.bind(&ep2).await.unwrap();
                    ready_tx.send(()).unwrap();
                    receive!(s);
                }
                _ => {
                    let ctx = omq_tokio::Context::new();
                    let s = ctx.socket(omq_tokio::SocketType::Pull, omq_tokio::Options::default());
                    s.bind(ep2.as_str()).await.unwrap();
                    ready_tx.send(()).unwrap();
                    receive!(s);
                }
            }
            (first.unwrap_or(last), last, got)
        })
    });
    ready_rx.recv().unwrap();
    rt().block_on(async move {
        match imp.as_str() {
            "zeromq" => {
                use zeromq::{Socket, SocketSend};
                let mut s = zeromq::PushSocket::new();
                s.connect(&ep).await.unwrap();
                for _ in 0..count {
                    s.send(zeromq::ZmqMessage::from(payload.clone())).await.unwrap();
                }
                std::mem::forget(s);
            }
            "rzmq" => {
                let ctx = rzmq::Context::new().unwrap();
                let s = ctx.socket(rzmq::SocketType::Push).unwrap();
                s.connect(&ep).await.unwrap();
                for _ in 0..count {
                    s.send(rzmq::Msg::from_vec(payload.to_vec())).await.unwrap();
                }
                std::mem::forget((s, ctx));
            }
            _ => {
                let ctx = omq_tokio::Context::new();
                let s = ctx.socket(omq_tokio::SocketType::Push, omq_tokio::Options::default());
                s.connect(ep.as_str()).await.unwrap();
                for _ in 0..count {
                    s.send(omq_tokio::Message::single(payload.clone())).await.unwrap();
                }
                std::mem::forget((s, ctx));
            }
        }
    });
    let (first, last, got) = receiver.join().unwrap();
    let secs = (last - first).as_secs_f64().max(1e-9);
    let timed = got.saturating_sub(1) as f64;
    println!(
        "{{\"impl\": \"{}\", \"size\": {size}, \"count\": {count}, \"msgs_per_sec\": {:.1}, \"mb_per_sec\": {:.3}}}",
        args.get(1).map(String::as_str).unwrap_or("zeromq"),
        timed / secs,
        timed * size as f64 / secs / 1e6
    );
    std::process::exit(0);
}

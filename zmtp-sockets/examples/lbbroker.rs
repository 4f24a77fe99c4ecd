//! A load-balancing broker (the zguide's "lbbroker"): ROUTER sockets on
//! both sides. Workers are REQ sockets that announce themselves with
//! "READY"; the broker keeps a queue of idle workers, takes a client's
//! request only when a worker is free, and sends it to the worker that has
//! waited longest. Each message carries the routing ids that lead back:
//! `[worker, "", client, "", body]` on the backend, `[client, "", body]` on
//! the frontend.
//!
//! `cargo run -p zmtp-sockets --example lbbroker`

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use zmtp_sockets::{Context, Error, Interest, Message, Poller, Socket, SocketType};

const CLIENTS: usize = 6;
const WORKERS: usize = 3;

/// Runs until every client has had its reply.
fn broker(frontend: &Socket, backend: &Socket) -> Result<(), Error> {
    let mut idle: VecDeque<Bytes> = VecDeque::new();
    let mut served = 0;
    while served < CLIENTS {
        // Always listen to workers; to clients only when a worker is free.
        let mut poller = Poller::new();
        poller.add(backend, Interest::Readable);
        if !idle.is_empty() {
            poller.add(frontend, Interest::Readable);
        }
        for ready in poller.wait_blocking(None) {
            if ready.index == 0 {
                let Ok(msg) = backend.try_recv() else {
                    continue;
                };
                // [worker, "", "READY"] or [worker, "", client, "", reply].
                let mut frames = msg.into_frames().into_iter();
                let worker = frames.next().expect("routing id");
                let _delimiter = frames.next();
                let rest: Vec<Bytes> = frames.collect();
                idle.push_back(worker);
                if rest.len() == 3 {
                    frontend.send_blocking(Message::from(rest))?;
                    served += 1;
                }
            } else {
                let Ok(request) = frontend.try_recv() else {
                    continue;
                };
                let worker = idle.pop_front().expect("a worker is idle");
                let mut routed = Message::from_frames([worker, Bytes::new()]);
                for f in request.into_frames() {
                    routed.push(f);
                }
                backend.send_blocking(routed)?;
            }
        }
    }
    Ok(())
}

fn worker(ctx: &Context, ep: &str, n: usize) -> Result<std::thread::JoinHandle<()>, Error> {
    let socket = ctx.socket(SocketType::Req)?;
    socket.configure(|o| o.routing_id = Bytes::from(format!("worker-{n}")))?;
    socket.connect(ep)?;
    Ok(std::thread::spawn(move || {
        if socket.send_blocking("READY").is_err() {
            return;
        }
        // [client, "", request] until the context is terminated.
        while let Ok(msg) = socket.recv_blocking() {
            let client = msg.frames()[0].clone();
            let reply = format!("OK from worker {n}");
            let out = Message::from_frames([client, Bytes::new(), Bytes::from(reply)]);
            if socket.send_blocking(out).is_err() {
                return;
            }
        }
    }))
}

fn main() -> Result<(), Error> {
    let ctx = Context::new();
    let frontend = ctx.socket(SocketType::Router)?;
    let backend = ctx.socket(SocketType::Router)?;
    let clients_ep = frontend.bind("tcp://127.0.0.1:0")?;
    let workers_ep = backend.bind("tcp://127.0.0.1:0")?;
    let workers = (0..WORKERS)
        .map(|n| worker(&ctx, &workers_ep, n))
        .collect::<Result<Vec<_>, Error>>()?;
    let clients = (0..CLIENTS)
        .map(|c| {
            let client = ctx.socket(SocketType::Req)?;
            client.configure(|o| {
                o.routing_id = Bytes::from(format!("client-{c}"));
                o.rcvtimeo = Some(Duration::from_secs(10));
            })?;
            client.connect(&clients_ep)?;
            Ok(std::thread::spawn(move || -> Result<String, Error> {
                client.send_blocking("HELLO")?;
                let reply = client.recv_blocking()?;
                Ok(format!(
                    "client {c}: {}",
                    String::from_utf8_lossy(&reply.frames()[0])
                ))
            }))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    broker(&frontend, &backend)?;
    for c in clients {
        println!("{}", c.join().expect("client")?);
    }
    ctx.term();
    for w in workers {
        w.join().expect("worker");
    }
    Ok(())
}

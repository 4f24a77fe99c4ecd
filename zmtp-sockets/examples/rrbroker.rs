//! A request-reply broker (the zguide's "rrbroker"): REQ clients talk to a
//! ROUTER frontend, REP workers to a DEALER backend, and the broker moves
//! whole messages between the two. The ROUTER puts each client's routing
//! id in front of its request, the DEALER passes it through the workers'
//! envelopes, and the ROUTER sends each reply back to the client it names.
//!
//! `cargo run -p zmtp-sockets --example rrbroker`

use std::sync::Arc;
use std::time::Duration;

use zmtp_sockets::{Context, Error, Interest, Poller, Socket, SocketType};

/// Moves messages both ways until the context is terminated.
fn broker(frontend: &Socket, backend: &Socket) -> Result<(), Error> {
    let mut poller = Poller::new();
    poller.add(frontend, Interest::Readable);
    poller.add(backend, Interest::Readable);
    loop {
        for ready in poller.wait_blocking(None) {
            let (from, to) = if ready.index == 0 {
                (frontend, backend)
            } else {
                (backend, frontend)
            };
            match from.try_recv() {
                Ok(msg) => to.send_blocking(msg)?,
                Err(Error::WouldBlock) => {}
                Err(Error::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn main() -> Result<(), Error> {
    let ctx = Context::new();
    let frontend = Arc::new(ctx.socket(SocketType::Router)?);
    let backend = Arc::new(ctx.socket(SocketType::Dealer)?);
    let clients_ep = frontend.bind("tcp://127.0.0.1:0")?;
    let workers_ep = backend.bind("tcp://127.0.0.1:0")?;
    let (f, b) = (frontend.clone(), backend.clone());
    let broker_thread = std::thread::spawn(move || broker(&f, &b));

    let workers: Vec<_> = (0..3)
        .map(|n| {
            let worker = ctx.socket(SocketType::Rep)?;
            worker.connect(&workers_ep)?;
            Ok(std::thread::spawn(move || {
                // Serves until the context is terminated.
                while let Ok(request) = worker.recv_blocking() {
                    let mut reply = format!("worker {n}: ").into_bytes();
                    reply.extend_from_slice(&request.frames()[0]);
                    if worker.send_blocking(reply).is_err() {
                        break;
                    }
                }
            }))
        })
        .collect::<Result<_, Error>>()?;

    let clients: Vec<_> = (0..4)
        .map(|c| {
            let client = ctx.socket(SocketType::Req)?;
            client.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
            client.connect(&clients_ep)?;
            Ok(std::thread::spawn(move || -> Result<(), Error> {
                for i in 0..5 {
                    let request = format!("client {c} request {i}");
                    client.send_blocking(request.clone().into_bytes())?;
                    let reply = client.recv_blocking()?;
                    let text = String::from_utf8_lossy(&reply.frames()[0]).into_owned();
                    assert!(text.ends_with(&request), "{text}");
                    println!("{text}");
                }
                Ok(())
            }))
        })
        .collect::<Result<_, Error>>()?;
    for c in clients {
        c.join().expect("client")?;
    }
    // Every client had its five replies: stop the broker and the workers.
    ctx.term();
    broker_thread.join().expect("broker")?;
    for w in workers {
        w.join().expect("worker");
    }
    Ok(())
}

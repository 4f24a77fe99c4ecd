//! A multithreaded server (the zguide's "mtserver"): clients reach a ROUTER
//! over tcp; a proxy hands their requests to a DEALER bound to
//! `inproc://workers`, where REP worker threads of the same process take
//! them. Between the proxy and the workers no byte is encoded: inproc hands
//! each message over as it is.
//!
//! `cargo run -p zmtp-sockets --example mtserver`

use std::time::Duration;

use zmtp_sockets::{Context, Error, SocketType, proxy_blocking};

const WORKERS: usize = 4;
const CLIENTS: usize = 5;
const REQUESTS: usize = 20;

fn main() -> Result<(), Error> {
    let ctx = Context::new();
    let clients_ep = {
        let frontend = ctx.socket(SocketType::Router)?;
        let backend = ctx.socket(SocketType::Dealer)?;
        let ep = frontend.bind("tcp://127.0.0.1:0")?;
        backend.bind("inproc://workers")?;
        // The proxy runs until the context is terminated.
        std::thread::spawn(move || proxy_blocking(&frontend, &backend, None));
        ep
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            // Connecting to an inproc name works before or after its bind.
            let worker = ctx.socket(SocketType::Rep)?;
            worker.connect("inproc://workers")?;
            Ok(std::thread::spawn(move || {
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

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let client = ctx.socket_with(SocketType::Req, |o| {
                o.rcvtimeo = Some(Duration::from_secs(10));
            })?;
            client.connect(&clients_ep)?;
            Ok(std::thread::spawn(move || -> Result<(), Error> {
                for i in 0..REQUESTS {
                    let request = format!("client {c} request {i}");
                    client.send_blocking(request.clone())?;
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
    // Every client had its replies: stop the proxy and the workers.
    ctx.term();
    for w in workers {
        w.join().expect("worker");
    }
    Ok(())
}

//! A forwarder (XSUB/XPUB) run by `proxy_steerable`, steered from a REQ
//! socket: it is paused, resumed, asked for its statistics and terminated,
//! as with libzmq's `zmq_proxy_steerable`.
//!
//! `cargo run -p zmtp-sockets --example steerable_forwarder`

use std::time::Duration;

use zmtp_sockets::{Context, Error, Message, SocketType, proxy_steerable_blocking};

fn ask(control: &zmtp_sockets::Socket, command: &'static str) -> Result<Message, Error> {
    control.send_blocking(command)?;
    control.recv_blocking()
}

fn main() -> Result<(), Error> {
    let ctx = Context::new();
    let xsub = ctx.socket(SocketType::XSub)?;
    let xpub = ctx.socket(SocketType::XPub)?;
    let control = ctx.socket(SocketType::Rep)?;
    let upstream = xsub.bind("tcp://127.0.0.1:0")?;
    let downstream = xpub.bind("tcp://127.0.0.1:0")?;
    let control_ep = control.bind("tcp://127.0.0.1:0")?;

    let publisher = ctx.socket(SocketType::Pub)?;
    publisher.connect(&upstream)?;
    let subscriber = ctx.socket(SocketType::Sub)?;
    subscriber.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
    subscriber.subscribe("")?;
    subscriber.connect(&downstream)?;
    let steer = ctx.socket(SocketType::Req)?;
    steer.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
    steer.connect(&control_ep)?;

    std::thread::scope(|scope| -> Result<(), Error> {
        let forwarder = scope.spawn(|| proxy_steerable_blocking(&xsub, &xpub, None, &control));
        // The subscription reaches the publisher through the forwarder.
        while publisher.subscription_count() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        publisher.send_blocking("first")?;
        println!("received {:?}", subscriber.recv_blocking()?.frames()[0]);

        ask(&steer, "PAUSE")?;
        publisher.send_blocking("held while paused")?;
        ask(&steer, "RESUME")?;
        println!("received {:?}", subscriber.recv_blocking()?.frames()[0]);

        let stats = ask(&steer, "STATISTICS")?;
        let counters: Vec<u64> = stats
            .frames()
            .iter()
            .map(|f| u64::from_ne_bytes(f[..].try_into().expect("8 bytes")))
            .collect();
        println!("statistics (frontend in/bytes/out/bytes, backend …): {counters:?}");
        assert_eq!(counters[0], 2, "two messages came in at the frontend");

        ask(&steer, "TERMINATE")?;
        let totals = forwarder.join().expect("forwarder")?;
        println!(
            "terminated after moving {} messages down",
            totals.backend.msgs_out
        );
        Ok(())
    })
}

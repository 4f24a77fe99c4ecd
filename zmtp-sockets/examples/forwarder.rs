//! A forwarder (XSUB/XPUB) between publishers and subscribers, with a
//! subscriber that joins late. The forwarder sends data downstream from its
//! XSUB to its XPUB, and subscriptions upstream from its XPUB to its XSUB,
//! so a publisher behind it sends only what some subscriber asked for, and
//! a new subscriber's prefixes reach the publisher when it joins.
//!
//! `cargo run -p zmtp-sockets --example forwarder`

use std::sync::Arc;
use std::time::Duration;

use zmtp_sockets::{Context, Error, Interest, Poller, Socket, SocketType};

/// Moves data down and subscriptions up until the context is terminated.
fn forward(xsub: &Socket, xpub: &Socket) -> Result<(), Error> {
    let mut poller = Poller::new();
    poller.add(xsub, Interest::Readable);
    poller.add(xpub, Interest::Readable);
    loop {
        for ready in poller.wait_blocking(None) {
            let (from, to) = if ready.index == 0 {
                (xsub, xpub)
            } else {
                (xpub, xsub)
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

/// Publishes `topic` updates until the publisher has `subs` subscriptions
/// (they came through the forwarder), then `n` more.
fn publish(publisher: &Socket, subs: usize, topic: &str, n: usize) -> Result<(), Error> {
    while publisher.subscription_count() < subs {
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..n {
        publisher.send_blocking(format!("{topic} update {i}").into_bytes())?;
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let ctx = Context::new();
    let xsub = Arc::new(ctx.socket(SocketType::XSub)?);
    let xpub = Arc::new(ctx.socket(SocketType::XPub)?);
    let upstream = xsub.bind("tcp://127.0.0.1:0")?;
    let downstream = xpub.bind("tcp://127.0.0.1:0")?;
    let (s, p) = (xsub.clone(), xpub.clone());
    let forwarder = std::thread::spawn(move || forward(&s, &p));

    let publisher = ctx.socket(SocketType::Pub)?;
    publisher.connect(&upstream)?;
    let subscriber = |prefix: &str| -> Result<Socket, Error> {
        let s = ctx.socket(SocketType::Sub)?;
        s.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
        s.subscribe(prefix)?;
        s.connect(&downstream)?;
        Ok(s)
    };

    let weather = subscriber("weather")?;
    publish(&publisher, 1, "weather", 3)?;
    for _ in 0..3 {
        let m = weather.recv_blocking()?;
        println!(
            "early subscriber: {}",
            String::from_utf8_lossy(&m.frames()[0])
        );
    }

    // A subscriber that joins now gets what it asks for from now on.
    let news = subscriber("news")?;
    publish(&publisher, 2, "news", 3)?;
    for _ in 0..3 {
        let m = news.recv_blocking()?;
        let text = String::from_utf8_lossy(&m.frames()[0]).into_owned();
        assert!(text.starts_with("news"), "{text}");
        println!("late subscriber: {text}");
    }
    ctx.term();
    forwarder.join().expect("forwarder")?;
    Ok(())
}

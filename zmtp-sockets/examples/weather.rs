//! Weather updates over PUB/SUB, with prefix filtering: the subscriber asks
//! only for one zip code and the publisher sends it nothing else.
//!
//! `cargo run -p zmtp-sockets --example weather`

use std::time::Duration;

use zmtp_sockets::{Context, Message, SocketType};

fn main() -> Result<(), zmtp_sockets::Error> {
    let ctx = Context::new();
    let publisher = ctx.socket(SocketType::Pub)?;
    let endpoint = publisher.bind("tcp://127.0.0.1:0")?;

    let subscriber = ctx.socket(SocketType::Sub)?;
    subscriber.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
    subscriber.subscribe("10001 ")?;
    subscriber.connect(&endpoint)?;

    // A subscription takes a moment to reach the publisher (the "slow
    // joiner"): wait until it is in effect before publishing for real.
    while publisher.subscription_count() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }

    let publisher_thread = std::thread::spawn(move || -> Result<(), zmtp_sockets::Error> {
        for i in 0..300u32 {
            let zip = [10001, 10002, 10003][i as usize % 3];
            let update = format!("{zip} {} {}", -10 + (i % 40) as i32, 10 + (i % 60));
            publisher.send_blocking(Message::from(update.into_bytes()))?;
        }
        Ok(())
    });

    let mut total = 0i64;
    for _ in 0..100 {
        let update = subscriber.recv_blocking()?;
        let text = String::from_utf8_lossy(&update.frames()[0]).into_owned();
        assert!(
            text.starts_with("10001 "),
            "filtered by the publisher: {text}"
        );
        let temperature: i64 = text
            .split(' ')
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        total += temperature;
    }
    println!("average temperature for zip 10001: {}", total / 100);
    publisher_thread.join().expect("publisher")?;
    Ok(())
}

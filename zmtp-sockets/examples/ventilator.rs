//! A task ventilator: PUSH spreads work round-robin over PULL workers, whose
//! results a sink collects.
//!
//! `cargo run -p zmtp-sockets --example ventilator`

use std::time::Duration;

use zmtp_sockets::{Context, Message, SocketType};

fn main() -> Result<(), zmtp_sockets::Error> {
    let ctx = Context::new();
    let ventilator = ctx.socket(SocketType::Push)?;
    let monitor = ventilator.monitor();
    let work = ventilator.bind("tcp://127.0.0.1:0")?;
    let sink = ctx.socket(SocketType::Pull)?;
    sink.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
    let results = sink.bind("tcp://127.0.0.1:0")?;

    let mut workers = Vec::new();
    for id in 0..3u8 {
        let input = ctx.socket(SocketType::Pull)?;
        input.configure(|o| o.rcvtimeo = Some(Duration::from_secs(10)))?;
        input.connect(&work)?;
        let output = ctx.socket(SocketType::Push)?;
        output.connect(&results)?;
        workers.push(std::thread::spawn(
            move || -> Result<u32, zmtp_sockets::Error> {
                let mut done = 0;
                // Each worker stops at an empty task.
                loop {
                    let task = input.recv_blocking()?;
                    if task.frames()[0].is_empty() {
                        return Ok(done);
                    }
                    let n = u32::from_be_bytes(task.frames()[0][..4].try_into().unwrap_or([0; 4]));
                    output.send_blocking(Message::from_frames([
                        vec![id],
                        (n * n).to_be_bytes().to_vec(),
                    ]))?;
                    done += 1;
                }
            },
        ));
    }

    // A bound PUSH gets a queue per worker when that worker's handshake
    // completes; wait for all three so that round-robin covers them all
    // (libzmq's ventilator waits for a key press for the same reason).
    for _ in 0..3 {
        monitor.wait_for_blocking(Duration::from_secs(10), |e| {
            matches!(e, zmtp_sockets::MonitorEvent::HandshakeSucceeded { .. })
        });
    }
    for n in 0..99u32 {
        ventilator.send_blocking(n.to_be_bytes().to_vec())?;
    }
    let mut sum = 0u64;
    for _ in 0..99 {
        let r = sink.recv_blocking()?;
        sum += u64::from(u32::from_be_bytes(
            r.frames()[1][..].try_into().unwrap_or([0; 4]),
        ));
    }
    for _ in 0..3 {
        ventilator.send_blocking(Vec::<u8>::new())?;
    }
    for (id, w) in workers.into_iter().enumerate() {
        println!("worker {id} did {} tasks", w.join().expect("worker")?);
    }
    println!("sum of squares 0..99 = {sum}");
    assert_eq!(sum, (0..99u64).map(|n| n * n).sum());
    Ok(())
}

//! Hello world: a REP server and a REQ client over tcp, in one process.
//!
//! `cargo run -p zmtp-sockets --example hello_world`

use zmtp_sockets::{Context, Message, SocketType};

fn main() -> Result<(), zmtp_sockets::Error> {
    // One context per process is usual; it owns the I/O thread.
    let ctx = Context::new();

    // The server binds; port 0 asks the system for a free port.
    let server = ctx.socket(SocketType::Rep)?;
    let endpoint = server.bind("tcp://127.0.0.1:0")?;
    println!("server listening on {endpoint}");

    // The server answers in its own thread with the blocking API.
    let handle = std::thread::spawn(move || -> Result<(), zmtp_sockets::Error> {
        for _ in 0..3 {
            let request = server.recv_blocking()?;
            let text = String::from_utf8_lossy(&request.frames()[0]).into_owned();
            server.send_blocking(Message::from(format!("World (to {text})").into_bytes()))?;
        }
        Ok(())
    });

    // The client connects and alternates send and receive, as REQ must.
    let client = ctx.socket(SocketType::Req)?;
    client.connect(&endpoint)?;
    for i in 0..3 {
        client.send_blocking(Message::from(format!("Hello {i}").into_bytes()))?;
        let reply = client.recv_blocking()?;
        println!("received: {}", String::from_utf8_lossy(&reply.frames()[0]));
    }
    handle.join().expect("server thread")?;
    Ok(())
}

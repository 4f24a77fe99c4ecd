//! An async-std application: the sockets' futures need no particular
//! runtime, so async-std tasks use them directly.
//!
//! `cargo run -p zmtp-sockets --example async_std_app`

use zmtp_sockets::{Context, Message, SocketType};

fn main() -> Result<(), zmtp_sockets::Error> {
    async_std::task::block_on(async {
        let ctx = Context::new();
        let rep = ctx.socket(SocketType::Rep)?;
        let endpoint = rep.bind("tcp://127.0.0.1:0")?;
        let server = async_std::task::spawn(async move {
            for _ in 0..3 {
                let request = rep.recv().await?;
                rep.send(request).await?;
            }
            Ok::<_, zmtp_sockets::Error>(())
        });
        let req = ctx.socket(SocketType::Req)?;
        req.connect(&endpoint)?;
        for i in 0..3u8 {
            req.send(Message::from(vec![b'a' + i])).await?;
            let reply = req.recv().await?;
            println!("echoed {:?}", String::from_utf8_lossy(&reply.frames()[0]));
        }
        server.await
    })
}

//! The sockets through the `futures` crate's `StreamExt` and `SinkExt`,
//! `select!` and `forward`, on two runtimes (async-std, and the `futures`
//! crate's own executor).
#![allow(clippy::unwrap_used)]

use futures::{SinkExt, StreamExt};
use zmtp_sockets::{Context, Message, Socket, SocketType};

fn pair(ctx: &Context) -> (Socket, Socket) {
    let pull = ctx.socket(SocketType::Pull).unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.connect(&ep).unwrap();
    (push, pull)
}

async fn forward_and_collect(push: &Socket, pull: &Socket, n: u32) -> Vec<u32> {
    let messages =
        futures::stream::iter((0..n).map(|i| Ok(Message::from(i.to_be_bytes().to_vec()))));
    // More messages than the high-water mark: the sink must wait for room
    // while the stream takes them.
    let sending = messages.forward(push.sink());
    let receiving = pull
        .stream()
        .take(n as usize)
        .map(|m| u32::from_be_bytes(m.unwrap().frames()[0][..].try_into().unwrap()))
        .collect::<Vec<u32>>();
    let (sent, got) = futures::join!(sending, receiving);
    sent.unwrap();
    got
}

#[test]
fn stream_and_sink_on_async_std() {
    let ctx = Context::new();
    let (push, pull) = pair(&ctx);
    let got = async_std::task::block_on(forward_and_collect(&push, &pull, 5000));
    assert_eq!(got, (0..5000).collect::<Vec<_>>());
}

#[test]
fn stream_and_sink_on_the_futures_executor_with_select() {
    let ctx = Context::new();
    let (push, pull) = pair(&ctx);
    let (push2, pull2) = pair(&ctx);
    let got = futures::executor::block_on(forward_and_collect(&push, &pull, 3000));
    assert_eq!(got.len(), 3000);
    futures::executor::block_on(async {
        push2.sink().send(Message::from("second")).await.unwrap();
        let (mut a, mut b) = (pull.stream(), pull2.stream());
        futures::select! {
            m = a.next() => panic!("nothing was sent there: {m:?}"),
            m = b.next() => assert_eq!(m.unwrap().unwrap().frames()[0], "second"),
        }
    });
    // A closed socket ends its stream.
    drop(ctx.clone());
    let ctx2 = ctx.clone();
    ctx2.term();
    let end = futures::executor::block_on(pull.stream().next());
    assert!(end.is_none(), "{end:?}");
}

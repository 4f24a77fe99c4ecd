//! The sockets as the futures ecosystem's `Stream` and `Sink`
//! (`futures-core` and `futures-sink`, the traits `futures` re-exports), so
//! that `StreamExt`, `SinkExt`, `select!` and `forward` work with them on
//! any runtime.
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use zmtp_sockets::{Context, Message, SocketType};
//! # fn main() -> Result<(), zmtp_sockets::Error> {
//! let ctx = Context::new();
//! let pull = ctx.socket(SocketType::Pull)?;
//! let ep = pull.bind("tcp://127.0.0.1:0")?;
//! let push = ctx.socket(SocketType::Push)?;
//! push.connect(&ep)?;
//! futures::executor::block_on(async {
//!     let mut sink = push.sink();
//!     sink.send(Message::from("one")).await?;
//!     sink.send(Message::from("two")).await?;
//!     let got: Vec<_> = pull.stream().take(2).collect().await;
//!     assert_eq!(got.len(), 2);
//!     Ok(())
//! })
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_sink::Sink;
use zmtp_core::Message;

use crate::error::{Error, Result};
use crate::socket::Socket;

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A socket's messages as a `Stream` ([`Socket::stream`]). It waits for
/// each message as long as it takes (the receive timeout does not apply)
/// and ends when the socket is closed; other errors are items.
pub struct MessageStream<'a> {
    socket: &'a Socket,
    pending: Option<Pending<'a, Result<Message>>>,
    ended: bool,
}

/// A socket as a `Sink` of messages ([`Socket::sink`]): a message is taken
/// when a peer has room, and waits (without the send timeout) otherwise.
pub struct MessageSink<'a> {
    socket: &'a Socket,
    pending: Option<Pending<'a, Result<()>>>,
}

impl std::fmt::Debug for MessageStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStream").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MessageSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSink").finish_non_exhaustive()
    }
}

impl Socket {
    /// This socket's messages as a `Stream<Item = Result<Message>>`.
    pub fn stream(&self) -> MessageStream<'_> {
        MessageStream {
            socket: self,
            pending: None,
            ended: false,
        }
    }

    /// This socket as a `Sink<Message>`.
    pub fn sink(&self) -> MessageSink<'_> {
        MessageSink {
            socket: self,
            pending: None,
        }
    }
}

impl Stream for MessageStream<'_> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let pending = match &mut this.pending {
            Some(p) => p,
            None => {
                // A message that is there needs no future.
                match this.socket.try_recv() {
                    Ok(m) => return Poll::Ready(Some(Ok(m))),
                    Err(Error::WouldBlock) => {}
                    Err(Error::Closed) => {
                        this.ended = true;
                        return Poll::Ready(None);
                    }
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
                this.pending.insert(Box::pin(this.socket.recv_inner(false)))
            }
        };
        match pending.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                this.pending = None;
                Poll::Ready(match r {
                    Err(Error::Closed) => {
                        this.ended = true;
                        None
                    }
                    r => Some(r),
                })
            }
        }
    }
}

impl FusedStream for MessageStream<'_> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl MessageSink<'_> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(p) = &mut self.pending else {
            return Poll::Ready(Ok(()));
        };
        let r = std::task::ready!(p.as_mut().poll(cx));
        self.pending = None;
        Poll::Ready(r)
    }
}

impl Sink<Message> for MessageSink<'_> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<()> {
        let this = self.get_mut();
        if let Some(back) = this.socket.try_send_or_back(msg)? {
            let socket = this.socket;
            this.pending = Some(Box::pin(socket.send_when_room(back)));
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }
}

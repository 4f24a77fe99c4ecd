//! PAIR (RFC 31): exactly one peer. The first pipe is the peer's (a connect
//! endpoint's pipe from the start, so that messages wait for the peer, as
//! in libzmq); any other peer is refused after its handshake and its
//! connection closed. A send waits while the peer's queue is full or there
//! is no peer. What a peer sent before it left is still received, as in
//! libzmq, even when the next peer has come.

use std::collections::VecDeque;

use zmtp_core::{Message, Metadata};

use super::{Pattern, Refusal, SendError};
use crate::error::Error;
use crate::pipe::{Pipe, PipeId, Pipes};

#[derive(Debug, Default)]
pub(crate) struct Pair {
    peer: Option<PipeId>,
    /// The peers that left, newest last, whose messages may still wait in
    /// the inbox (a connection that sends and closes at once leaves before
    /// its messages are received). Only the last [`LEFT_PEERS`] are kept.
    left: VecDeque<PipeId>,
}

/// How many departed peers' messages are still taken.
const LEFT_PEERS: usize = 16;

impl Pattern for Pair {
    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        let Some(pipe) = self.peer.and_then(|id| pipes.get(id)) else {
            return Err(SendError::Blocked(msg));
        };
        pipes
            .send_msg(pipe, msg)
            .map(|()| 1)
            .map_err(SendError::Blocked)
    }

    fn writable(&self, pipes: &Pipes) -> bool {
        self.peer
            .and_then(|id| pipes.get(id))
            .is_some_and(|p| !p.is_full())
    }

    fn check_recv(&self) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn received(&mut self, _pipes: &Pipes, from: PipeId, msg: Message) -> Option<Message> {
        (self.peer == Some(from) || self.left.contains(&from)).then_some(msg)
    }

    fn pipe_added(&mut self, pipe: &Pipe) {
        if self.peer.is_none() {
            self.peer = Some(pipe.id);
        }
    }

    fn attached(
        &mut self,
        _pipes: &mut Pipes,
        pipe: PipeId,
        _peer: &Metadata,
    ) -> Result<(), Refusal> {
        match self.peer {
            Some(p) if p == pipe => Ok(()),
            Some(_) => Err(Refusal::SecondPeer),
            None => {
                self.peer = Some(pipe);
                Ok(())
            }
        }
    }

    fn removed(&mut self, pipe: PipeId) {
        if self.peer == Some(pipe) {
            self.peer = None;
            if self.left.len() == LEFT_PEERS {
                self.left.pop_front();
            }
            self.left.push_back(pipe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{add, drain, frames, msg, pipes};
    use super::*;

    #[test]
    fn one_peer_only_and_the_next_after_it_leaves() {
        let mut p = Pair::default();
        let (mut table, rxs) = pipes(&mut p, 1, 1);
        let (_rx2, verdict) = add(&mut p, &mut table, 2, 1, &Metadata::new());
        assert_eq!(verdict, Err(Refusal::SecondPeer));
        table.remove(2);
        p.send(msg(&["a", "b"]), &mut table).expect("room");
        assert!(!p.writable(&table));
        assert!(matches!(
            p.send(msg(&["c"]), &mut table),
            Err(SendError::Blocked(_))
        ));
        assert_eq!(drain(&rxs[0]), [frames(&["a", "b"])]);
        assert!(p.received(&table, 1, msg(&["x"])).is_some());
        assert!(p.received(&table, 2, msg(&["x"])).is_none());
        // The peer leaves: the next one is taken.
        table.remove(1);
        p.removed(1);
        let (_rx3, verdict) = add(&mut p, &mut table, 3, 1, &Metadata::new());
        assert_eq!(verdict, Ok(()));
        assert!(p.writable(&table));
        // What the peer that left sent is still received; a refused
        // peer's never is.
        assert!(p.received(&table, 1, msg(&["late"])).is_some());
        assert!(p.received(&table, 3, msg(&["new"])).is_some());
        assert!(p.received(&table, 2, msg(&["x"])).is_none());
    }
}

//! REQ (RFC 28): strict alternation of send and receive; each request gets
//! the empty delimiter in front and goes round-robin to a peer with room;
//! only the reply from the peer asked is accepted, and it must start with
//! the delimiter. `req_relaxed` allows a new request before the reply (the
//! old reply is then ignored); `req_correlate` puts a request id before the
//! delimiter and accepts only the reply that carries it back (libzmq's
//! ZMQ_REQ_RELAXED and ZMQ_REQ_CORRELATE).

use bytes::Bytes;
use zmtp_core::Message;

use super::lb::LoadBalancer;
use super::{Pattern, SendError};
use crate::error::Error;
use crate::options::Options;
use crate::pipe::{PipeId, Pipes};

#[derive(Debug, Default)]
pub(crate) struct Req {
    lb: LoadBalancer,
    /// The pipe a reply is expected from.
    awaiting: Option<PipeId>,
    /// The id of the last request (with `correlate`).
    request_id: u32,
    relaxed: bool,
    correlate: bool,
}

impl Pattern for Req {
    fn configure(&mut self, o: &Options) {
        self.relaxed = o.req_relaxed;
        self.correlate = o.req_correlate;
    }

    #[inline]
    fn send(&mut self, mut msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        if self.awaiting.is_some() && !self.relaxed {
            return Err(SendError::State("REQ must receive the reply first"));
        }
        let id = self.request_id.wrapping_add(1);
        msg.push_front(Bytes::new());
        if self.correlate {
            msg.push_front(Bytes::copy_from_slice(&id.to_be_bytes()));
        }
        match self.lb.send(pipes, msg) {
            Ok(pipe) => {
                self.awaiting = Some(pipe);
                self.request_id = id;
                Ok(1)
            }
            Err(mut back) => {
                // Give the message back as it came.
                if self.correlate {
                    back.pop_front();
                }
                back.pop_front();
                Err(SendError::Blocked(back))
            }
        }
    }

    fn writable(&self, pipes: &Pipes) -> bool {
        LoadBalancer::has_room(pipes)
    }

    fn stateful_recv(&self) -> bool {
        true
    }

    fn check_recv(&self) -> Result<(), Error> {
        if self.awaiting.is_none() {
            return Err(Error::State("REQ must send a request first"));
        }
        Ok(())
    }

    #[inline]
    fn received(&mut self, _pipes: &Pipes, from: PipeId, mut msg: Message) -> Option<Message> {
        if self.awaiting != Some(from) {
            return None;
        }
        if self.correlate {
            let id = msg.pop_front();
            if id.as_deref() != Some(&self.request_id.to_be_bytes()[..]) {
                return None;
            }
        }
        // The reply must start with the empty delimiter.
        if msg.get(0).is_none_or(|f| !f.is_empty()) {
            return None;
        }
        let _ = msg.pop_front();
        self.awaiting = None;
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, frames, msg, pipes};
    use super::*;

    #[test]
    fn alternates_and_takes_only_the_reply_from_the_peer_asked() {
        let mut r = Req::default();
        let (mut table, rxs) = pipes(&mut r, 2, 10);
        assert!(matches!(r.check_recv(), Err(Error::State(_))));
        r.send(msg(&["q1"]), &mut table).expect("room");
        assert_eq!(drain(&rxs[0]), [frames(&["", "q1"])]);
        assert!(matches!(
            r.send(msg(&["again"]), &mut table),
            Err(SendError::State(_))
        ));
        // A reply from the other peer, or without the delimiter, is dropped.
        assert!(r.received(&table, 2, msg(&["", "r"])).is_none());
        assert!(r.received(&table, 1, msg(&["r"])).is_none());
        let rep = r.received(&table, 1, msg(&["", "r1"])).expect("reply");
        assert_eq!(rep.frames(), frames(&["r1"]));
        // The next request goes to the next peer.
        r.send(msg(&["q2"]), &mut table).expect("room");
        assert_eq!(drain(&rxs[1]), [frames(&["", "q2"])]);
    }

    #[test]
    fn relaxed_and_correlated_requests_match_replies_by_id() {
        let mut r = Req::default();
        let o = Options {
            req_relaxed: true,
            req_correlate: true,
            ..Options::default()
        };
        r.configure(&o);
        let (mut table, rxs) = pipes(&mut r, 1, 10);
        r.send(msg(&["q1"]), &mut table).expect("room");
        r.send(msg(&["q2"]), &mut table).expect("relaxed");
        let sent = drain(&rxs[0]);
        assert_eq!(sent[0][0][..], 1u32.to_be_bytes());
        assert_eq!(sent[1][0][..], 2u32.to_be_bytes());
        let old = Message::from_frames([sent[0][0].clone(), Bytes::new(), Bytes::from("r1")]);
        assert!(r.received(&table, 1, old).is_none());
        let new = Message::from_frames([sent[1][0].clone(), Bytes::new(), Bytes::from("r2")]);
        assert_eq!(
            r.received(&table, 1, new).expect("reply").frames(),
            frames(&["r2"])
        );
    }

    #[test]
    fn a_blocked_request_comes_back_unchanged() {
        let mut r = Req::default();
        let o = Options {
            req_correlate: true,
            ..Options::default()
        };
        r.configure(&o);
        let (mut table, _) = pipes(&mut r, 0, 10);
        match r.send(msg(&["q"]), &mut table) {
            Err(SendError::Blocked(m)) => assert_eq!(m.frames(), frames(&["q"])),
            other => panic!("{other:?}"),
        }
        assert!(r.check_recv().is_err());
    }
}

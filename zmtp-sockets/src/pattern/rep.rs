//! REP (RFC 28): fair-queued requests; each request's envelope (every frame
//! up to and including the first empty one) is kept and put back in front
//! of the reply, which goes to the peer that asked. A request without an
//! envelope delimiter is dropped, as libzmq drops it; a reply whose peer is
//! gone or full is dropped.

use bytes::Bytes;
use zmtp_core::Message;

use super::{Pattern, SendError};
use crate::error::Error;
use crate::pipe::{PipeId, Pipes};

#[derive(Debug, Default)]
pub(crate) struct Rep {
    /// The pipe and envelope of the request being answered.
    pending: Option<(PipeId, Vec<Bytes>)>,
}

impl Pattern for Rep {
    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        let Some((pipe, envelope)) = self.pending.take() else {
            return Err(SendError::State("REP must receive a request first"));
        };
        let mut frames = envelope;
        frames.extend(msg.into_frames());
        let sent = pipes
            .get(pipe)
            .is_some_and(|p| pipes.send_msg(p, Message::from(frames)).is_ok());
        Ok(u64::from(sent))
    }

    fn writable(&self, _pipes: &Pipes) -> bool {
        // A reply never waits: it is queued or dropped.
        self.pending.is_some()
    }

    fn stateful_recv(&self) -> bool {
        true
    }

    fn check_recv(&self) -> Result<(), Error> {
        if self.pending.is_some() {
            return Err(Error::State("REP must send the reply first"));
        }
        Ok(())
    }

    #[inline]
    fn received(&mut self, _pipes: &Pipes, from: PipeId, msg: Message) -> Option<Message> {
        let split = msg.frames().iter().position(|f| f.is_empty())?;
        let props = msg.properties_arc().cloned();
        let mut frames = msg.into_frames();
        let body = frames.split_off(split + 1);
        self.pending = Some((from, frames));
        let mut out = Message::from(body);
        if let Some(p) = props {
            out.set_properties(p);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, frames, msg, pipes};
    use super::*;

    #[test]
    fn the_reply_carries_the_request_envelope_back_to_its_peer() {
        let mut r = Rep::default();
        let (mut table, rxs) = pipes(&mut r, 2, 10);
        assert!(matches!(
            r.send(msg(&["early"]), &mut table),
            Err(SendError::State(_))
        ));
        // Through a ROUTER: two routing ids, then the delimiter.
        let req = r
            .received(&table, 2, msg(&["id1", "id2", "", "body"]))
            .expect("request");
        assert_eq!(req.frames(), frames(&["body"]));
        assert!(matches!(r.check_recv(), Err(Error::State(_))));
        assert_eq!(r.send(msg(&["reply"]), &mut table).expect("queued"), 1);
        assert_eq!(drain(&rxs[1]), [frames(&["id1", "id2", "", "reply"])]);
        assert!(drain(&rxs[0]).is_empty());
        assert!(r.check_recv().is_ok());
    }

    #[test]
    fn a_request_without_a_delimiter_is_dropped() {
        let mut r = Rep::default();
        let (table, _) = pipes(&mut r, 1, 10);
        assert!(r.received(&table, 1, msg(&["no", "delimiter"])).is_none());
        assert!(r.check_recv().is_ok());
    }
}

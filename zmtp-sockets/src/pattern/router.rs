//! ROUTER (RFC 28; libzmq 4.3's `router_t` where the RFC is silent).
//!
//! - Each peer has a routing id: the `Identity` it announced in its
//!   handshake metadata, or else a generated one of 5 bytes, a zero byte and
//!   a 32-bit counter (RFC 37 reserves ids starting with a zero byte for
//!   generated ones, so the two never collide). A pipe gets its id when its
//!   peer's handshake completes: until then it is not routable by id.
//! - On receive, the peer's routing id is put in front of the message by
//!   the socket's inbox (`Pattern::labels_received`), on the receiving
//!   thread, under the lock a receive holds anyway: one made on the I/O
//!   thread and freed on the application's cost more (DEALER->ROUTER 16 B,
//!   5 interleaved runs: 3.34M against 3.89M msg/s, medians), and one
//!   looked up in this table took the socket's lock at every message (a
//!   third of the receiving thread's time). A peer that left keeps its id
//!   for the messages it sent before, as libzmq delivers them.
//! - On send, the first frame picks the peer and is removed. An unknown id,
//!   or a peer at its high-water mark, drops the message silently; with
//!   `router_mandatory` the first is an error (`EHOSTUNREACH`) and the
//!   second waits (`EAGAIN` for `try_send`).
//! - A second peer with a taken id is refused and its connection closed;
//!   with `router_handover` it takes the id over, and the old peer's
//!   connection is closed instead.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use zmtp_core::wire::IDENTITY;
use zmtp_core::{Message, Metadata};

use super::{Pattern, Refusal, SendError};
use crate::error::Error;
use crate::options::Options;
use crate::pipe::{Pipe, PipeId, Pipes, Refused};

#[derive(Debug)]
pub(crate) struct Router {
    ids: HashMap<Bytes, PipeId>,
    /// The counter of generated ids.
    next_id: u32,
    mandatory: bool,
    handover: bool,
}

impl Router {
    pub(crate) fn new() -> Router {
        // As libzmq, generated ids start at a random value, so that a
        // restarted ROUTER does not hand out the ids of the last run.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Router {
            ids: HashMap::new(),
            next_id: seed as u32,
            mandatory: false,
            handover: false,
        }
    }

    fn generate(&mut self) -> Bytes {
        let n = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut id = Vec::with_capacity(5);
        id.push(0);
        id.extend_from_slice(&n.to_be_bytes());
        Bytes::from(id)
    }
}

impl Pattern for Router {
    fn configure(&mut self, o: &Options) {
        self.mandatory = o.router_mandatory;
        self.handover = o.router_handover;
    }

    #[inline]
    fn send(&mut self, mut msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        let Some(id) = msg.pop_front() else {
            return Ok(0);
        };
        let Some(pipe) = self.ids.get(&id).and_then(|p| pipes.get(*p)) else {
            return if self.mandatory {
                Err(SendError::Unroutable)
            } else {
                Ok(0)
            };
        };
        if msg.is_empty() {
            // Only a routing id: there is nothing to send (libzmq alike).
            return Ok(0);
        }
        // One look at the queue decides: full waits under
        // `router_mandatory`, else the message is dropped (as is one for a
        // peer whose connection just ended).
        match pipes.try_send(pipe, msg) {
            Ok(()) => Ok(1),
            Err(r @ Refused::Full(_)) if self.mandatory => {
                let mut msg = r.into_msg();
                msg.push_front(id);
                Err(SendError::Blocked(msg))
            }
            Err(_) => Ok(0),
        }
    }

    fn writable(&self, _pipes: &Pipes) -> bool {
        true
    }

    fn check_recv(&self) -> Result<(), Error> {
        Ok(())
    }

    fn passes_received(&self) -> bool {
        true
    }

    fn labels_received(&self) -> bool {
        true
    }

    fn attached(
        &mut self,
        pipes: &mut Pipes,
        pipe: PipeId,
        peer: &Metadata,
    ) -> Result<(), Refusal> {
        let id = match peer.get(IDENTITY) {
            Some(id) if !id.is_empty() => id.clone(),
            _ => self.generate(),
        };
        if let Some(&old) = self.ids.get(&id)
            && old != pipe
        {
            if !self.handover {
                return Err(Refusal::DuplicateRoutingId(id));
            }
            // Dropping the old pipe closes its queue: its connection
            // sends what is queued and ends.
            pipes.remove(old);
        }
        if let Some(p) = pipes.get_mut(pipe) {
            p.routing_id = Some(id.clone());
        }
        self.ids.insert(id, pipe);
        Ok(())
    }

    fn detached(&mut self, pipe: &mut Pipe) -> Vec<Message> {
        if let Some(id) = pipe.routing_id.take()
            && self.ids.get(&id) == Some(&pipe.id)
        {
            self.ids.remove(&id);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{add, drain, frames, msg, with_id};
    use super::*;

    fn router(mandatory: bool, handover: bool) -> Router {
        let mut r = Router::new();
        let o = Options {
            router_mandatory: mandatory,
            router_handover: handover,
            ..Options::default()
        };
        r.configure(&o);
        r
    }

    #[test]
    fn prepends_the_peer_id_and_routes_by_the_first_frame() {
        let mut r = router(false, false);
        let mut table = Pipes::default();
        let (rx_a, ok) = add(&mut r, &mut table, 1, 10, &with_id(b"A"));
        assert!(ok.is_ok());
        let (rx_anon, ok) = add(&mut r, &mut table, 2, 10, &Metadata::new());
        assert!(ok.is_ok());
        // The ids a connection task puts in front of its peer's messages.
        assert_eq!(
            table.get(1).expect("pipe").routing_id.as_deref(),
            Some(&b"A"[..])
        );
        let generated = table
            .get(2)
            .expect("pipe")
            .routing_id
            .clone()
            .expect("an id");
        assert_eq!(generated.len(), 5);
        assert_eq!(generated[0], 0);
        // Routed by id; the id frame is not sent.
        assert_eq!(r.send(msg(&["A", "for A"]), &mut table).expect("ok"), 1);
        let mut to_anon = msg(&["for anon"]);
        to_anon.push_front(generated);
        assert_eq!(r.send(to_anon, &mut table).expect("ok"), 1);
        assert_eq!(drain(&rx_a), [frames(&["for A"])]);
        assert_eq!(drain(&rx_anon), [frames(&["for anon"])]);
        // An unknown id is dropped silently.
        assert_eq!(r.send(msg(&["B", "lost"]), &mut table).expect("ok"), 0);
    }

    #[test]
    fn generated_ids_differ_from_peer_to_peer() {
        let mut r = router(false, false);
        let mut table = Pipes::default();
        for id in 1..=3 {
            let (_rx, ok) = add(&mut r, &mut table, id, 1, &Metadata::new());
            assert!(ok.is_ok());
        }
        let ids: std::collections::HashSet<_> =
            table.iter().map(|p| p.routing_id.clone()).collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn mandatory_reports_unknown_ids_and_waits_for_room() {
        let mut r = router(true, false);
        let mut table = Pipes::default();
        let (_rx, _) = add(&mut r, &mut table, 1, 1, &with_id(b"A"));
        assert!(matches!(
            r.send(msg(&["B", "x"]), &mut table),
            Err(SendError::Unroutable)
        ));
        assert_eq!(r.send(msg(&["A", "1"]), &mut table).expect("room"), 1);
        match r.send(msg(&["A", "2"]), &mut table) {
            Err(SendError::Blocked(m)) => assert_eq!(m.frames(), frames(&["A", "2"])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_duplicate_id_is_refused_unless_handover() {
        let mut r = router(false, false);
        let mut table = Pipes::default();
        let (_rx1, ok) = add(&mut r, &mut table, 1, 10, &with_id(b"A"));
        assert!(ok.is_ok());
        let (_rx2, verdict) = add(&mut r, &mut table, 2, 10, &with_id(b"A"));
        assert_eq!(
            verdict,
            Err(Refusal::DuplicateRoutingId(Bytes::from_static(b"A")))
        );

        let mut r = router(false, true);
        let mut table = Pipes::default();
        let (rx1, _) = add(&mut r, &mut table, 1, 10, &with_id(b"A"));
        let (rx2, ok) = add(&mut r, &mut table, 2, 10, &with_id(b"A"));
        assert!(ok.is_ok());
        // The old peer's pipe is gone (closed), the new one has the id.
        assert!(table.get(1).is_none());
        assert!(rx1.try_recv().is_none());
        r.send(msg(&["A", "new"]), &mut table).expect("ok");
        assert_eq!(drain(&rx2), [frames(&["new"])]);
    }

    #[test]
    fn a_detached_peer_is_no_longer_routable() {
        let mut r = router(true, false);
        let mut table = Pipes::default();
        let (_rx, _) = add(&mut r, &mut table, 1, 10, &with_id(b"A"));
        let pipe = table.get_mut(1).expect("pipe");
        r.detached(pipe);
        assert!(matches!(
            r.send(msg(&["A", "x"]), &mut table),
            Err(SendError::Unroutable)
        ));
        // Its id is free for the next peer.
        let (_rx2, ok) = add(&mut r, &mut table, 2, 10, &with_id(b"A"));
        assert!(ok.is_ok());
    }
}

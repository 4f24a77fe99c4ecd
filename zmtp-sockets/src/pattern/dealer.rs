//! DEALER (RFC 28): round-robin send over peers with room, fair-queued
//! receive, no envelope handling. Messages wait for a peer with room.

use zmtp_core::Message;

use super::lb::LoadBalancer;
use super::{Pattern, SendError};
use crate::error::Error;
use crate::pipe::Pipes;

#[derive(Debug, Default)]
pub(crate) struct Dealer {
    lb: LoadBalancer,
}

impl Pattern for Dealer {
    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        self.lb.route(pipes, msg)
    }

    fn writable(&self, pipes: &Pipes) -> bool {
        LoadBalancer::has_room(pipes)
    }

    fn check_recv(&self) -> Result<(), Error> {
        Ok(())
    }

    fn passes_received(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, frames, msg, pipes};
    use super::*;

    #[test]
    fn sends_whole_messages_round_robin_and_receives_unchanged() {
        let mut d = Dealer::default();
        let (mut table, rxs) = pipes(&mut d, 3, 10);
        for i in 0..6 {
            d.send(msg(&["", &i.to_string()]), &mut table)
                .expect("room");
        }
        assert_eq!(drain(&rxs[0]), [frames(&["", "0"]), frames(&["", "3"])]);
        assert_eq!(drain(&rxs[1]), [frames(&["", "1"]), frames(&["", "4"])]);
        assert_eq!(drain(&rxs[2]), [frames(&["", "2"]), frames(&["", "5"])]);
        assert!(d.passes_received());
        let got = d.received(&table, 2, msg(&["a", "b"])).expect("kept");
        assert_eq!(got.frames(), frames(&["a", "b"]));
    }

    #[test]
    fn without_a_peer_a_send_waits() {
        let mut d = Dealer::default();
        let (mut table, _) = pipes(&mut d, 0, 10);
        assert!(!d.writable(&table));
        assert!(matches!(
            d.send(msg(&["x"]), &mut table),
            Err(SendError::Blocked(_))
        ));
    }
}

//! PUSH (RFC 30): round-robin to peers with room; waits when none has room;
//! never receives.

use zmtp_core::Message;

use super::lb::LoadBalancer;
use super::{Pattern, SendError};
use crate::error::Error;
use crate::pipe::Pipes;

#[derive(Debug, Default)]
pub(crate) struct Push {
    lb: LoadBalancer,
}

impl Pattern for Push {
    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        self.lb.route(pipes, msg)
    }

    fn writable(&self, pipes: &Pipes) -> bool {
        LoadBalancer::has_room(pipes)
    }

    fn check_recv(&self) -> Result<(), Error> {
        Err(Error::NotSupported("recv"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, msg, pipes};
    use super::*;

    #[test]
    fn deals_round_robin_and_blocks_when_every_peer_is_full() {
        let mut p = Push::default();
        let (mut table, rxs) = pipes(&mut p, 2, 1);
        assert_eq!(p.send(msg(&["a"]), &mut table).expect("room"), 1);
        assert_eq!(p.send(msg(&["b"]), &mut table).expect("room"), 1);
        assert!(!p.writable(&table));
        assert!(matches!(
            p.send(msg(&["c"]), &mut table),
            Err(SendError::Blocked(m)) if m.frames()[0] == "c"
        ));
        assert_eq!(drain(&rxs[0]), [super::super::testing::frames(&["a"])]);
        assert_eq!(drain(&rxs[1]), [super::super::testing::frames(&["b"])]);
        assert!(matches!(p.check_recv(), Err(Error::NotSupported(_))));
    }
}

//! PUB (RFC 29): each message goes to every peer whose subscriptions match
//! its first frame; a peer at its high-water mark loses it; a send never
//! waits; never receives. Peers' subscriptions are sets (libzmq's mtrie): a
//! duplicate SUBSCRIBE changes nothing and one CANCEL removes the prefix.

use zmtp_core::Message;

use super::dist::publish;
use super::{Pattern, SendError, Subscription, SubscriptionLimits};
use crate::error::Error;
use crate::pipe::{Pipe, Pipes};
use crate::routing::OverLimit;

#[derive(Debug, Default)]
pub(crate) struct Pub;

/// Applies a peer's subscription or cancel to its pipe's set; true when the
/// set changed.
pub(super) fn apply(
    pipe: &mut Pipe,
    sub: &Subscription,
    limits: SubscriptionLimits,
) -> Result<bool, OverLimit> {
    match sub {
        Subscription::Subscribe(p) => pipe.subs.subscribe(p.clone(), limits.count, limits.bytes),
        Subscription::Cancel(p) => Ok(pipe.subs.cancel(p)),
    }
}

impl Pattern for Pub {
    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        Ok(publish(pipes, &msg))
    }

    fn writable(&self, _pipes: &Pipes) -> bool {
        true
    }

    fn check_recv(&self) -> Result<(), Error> {
        Err(Error::NotSupported("recv"))
    }

    fn peer_subscription(
        &mut self,
        pipe: &mut Pipe,
        sub: Subscription,
        limits: SubscriptionLimits,
    ) -> Result<Option<Message>, OverLimit> {
        apply(pipe, &sub, limits)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, frames, msg, pipes};
    use super::*;
    use bytes::Bytes;

    const LIMITS: SubscriptionLimits = SubscriptionLimits {
        count: 10,
        bytes: 100,
    };

    #[test]
    fn each_peer_gets_what_it_subscribed_to() {
        let mut p = Pub;
        let (mut table, rxs) = pipes(&mut p, 2, 10);
        for (id, prefix) in [(1, "A"), (2, "B")] {
            let pipe = table.get_mut(id).expect("pipe");
            let sub = Subscription::Subscribe(Bytes::from(prefix));
            assert_eq!(p.peer_subscription(pipe, sub, LIMITS), Ok(None));
        }
        assert_eq!(p.send(msg(&["A1"]), &mut table).expect("never waits"), 1);
        assert_eq!(
            p.send(msg(&["B1", "x"]), &mut table).expect("never waits"),
            1
        );
        assert_eq!(p.send(msg(&["C1"]), &mut table).expect("never waits"), 0);
        assert_eq!(drain(&rxs[0]), [frames(&["A1"])]);
        assert_eq!(drain(&rxs[1]), [frames(&["B1", "x"])]);
        assert_eq!(p.subscription_count(&table), 2);
        // A peer that is gone has no subscriptions left.
        let pipe = table.get_mut(1).expect("pipe");
        p.detached(pipe);
        assert_eq!(p.subscription_count(&table), 1);
    }

    #[test]
    fn a_peer_over_its_limit_is_refused() {
        let mut p = Pub;
        let (mut table, _rxs) = pipes(&mut p, 1, 10);
        let pipe = table.get_mut(1).expect("pipe");
        let big = Subscription::Subscribe(Bytes::from(vec![b'x'; 101]));
        assert_eq!(p.peer_subscription(pipe, big, LIMITS), Err(OverLimit));
    }
}

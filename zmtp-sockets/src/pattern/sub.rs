//! SUB (RFC 29): counted subscriptions (subscribe twice, unsubscribe twice,
//! as libzmq), sent to every peer and again to each new connection;
//! received messages are filtered again locally; never sends.

use bytes::Bytes;
use zmtp_core::Message;

use super::dist::topic;
use super::{Pattern, SendError};
use crate::error::Error;
use crate::pipe::{Out, Pipe, Pipes};
use crate::routing::OwnSubscriptions;

#[derive(Debug, Default)]
pub(crate) struct Sub {
    subs: OwnSubscriptions,
}

/// Queues a subscription change on every pipe (never bounded by the HWM).
pub(super) fn tell_all(pipes: &Pipes, add: bool, prefix: &Bytes) {
    for p in pipes.iter() {
        let out = if add {
            Out::Subscribe(prefix.clone())
        } else {
            Out::Cancel(prefix.clone())
        };
        let _ = p.try_send_unbounded(out);
    }
}

/// Queues every subscription on a new pipe.
pub(super) fn tell_new(pipe: &Pipe, subs: &OwnSubscriptions) {
    for p in subs.prefixes() {
        let _ = pipe.try_send_unbounded(Out::Subscribe(p.clone()));
    }
}

impl Pattern for Sub {
    fn send(&mut self, _msg: Message, _pipes: &mut Pipes) -> Result<u64, SendError> {
        Err(SendError::NotSupported)
    }

    fn writable(&self, _pipes: &Pipes) -> bool {
        false
    }

    fn check_recv(&self) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn received(&mut self, _pipes: &Pipes, _from: u64, msg: Message) -> Option<Message> {
        self.subs.matches(topic(&msg)).then_some(msg)
    }

    fn bounded_pipes(&self) -> bool {
        false
    }

    fn passes_all_now(&self) -> bool {
        // The empty prefix matches every topic.
        self.subs.matches(&[])
    }

    fn pipe_added(&mut self, pipe: &Pipe) {
        tell_new(pipe, &self.subs);
    }

    fn subscribe(&mut self, pipes: &Pipes, add: bool, prefix: Bytes) -> Result<(), Error> {
        let changed = if add {
            self.subs.add(prefix.clone())
        } else {
            self.subs.remove(&prefix)
        };
        if changed {
            tell_all(pipes, add, &prefix);
        }
        Ok(())
    }

    fn own_subscriptions(&self) -> Vec<Bytes> {
        self.subs.prefixes().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{add, drain, frames, msg, pipes};
    use super::*;
    use zmtp_core::Metadata;

    #[test]
    fn subscriptions_are_counted_and_reach_every_peer_old_and_new() {
        let mut s = Sub::default();
        let (mut table, rxs) = pipes(&mut s, 1, 0);
        s.subscribe(&table, true, Bytes::from("A")).expect("sub");
        s.subscribe(&table, true, Bytes::from("A")).expect("sub");
        assert_eq!(drain(&rxs[0]), [frames(&["SUB", "A"])]);
        // A new peer is told at once.
        let (rx2, ok) = add(&mut s, &mut table, 2, 0, &Metadata::new());
        assert!(ok.is_ok());
        assert_eq!(drain(&rx2), [frames(&["SUB", "A"])]);
        // Counted: the first unsubscribe sends nothing.
        s.subscribe(&table, false, Bytes::from("A")).expect("unsub");
        assert!(drain(&rxs[0]).is_empty());
        s.subscribe(&table, false, Bytes::from("A")).expect("unsub");
        assert_eq!(drain(&rxs[0]), [frames(&["CANCEL", "A"])]);
        assert_eq!(drain(&rx2), [frames(&["CANCEL", "A"])]);
        assert!(s.own_subscriptions().is_empty());
    }

    #[test]
    fn takes_everything_without_the_socket_lock_only_while_subscribed_to_everything() {
        let mut s = Sub::default();
        let (table, _rxs) = pipes(&mut s, 1, 0);
        assert!(!s.passes_all_now());
        s.subscribe(&table, true, Bytes::from("A")).expect("sub");
        assert!(!s.passes_all_now());
        s.subscribe(&table, true, Bytes::new()).expect("sub");
        assert!(s.passes_all_now());
        s.subscribe(&table, false, Bytes::new()).expect("unsub");
        assert!(!s.passes_all_now());
        assert!(s.received(&table, 1, msg(&["B"])).is_none());
    }

    #[test]
    fn filters_what_it_receives_and_never_sends() {
        let mut s = Sub::default();
        let (mut table, _rxs) = pipes(&mut s, 1, 0);
        s.subscribe(&table, true, Bytes::from("A")).expect("sub");
        assert!(s.received(&table, 1, msg(&["AB", "x"])).is_some());
        assert!(s.received(&table, 1, msg(&["B"])).is_none());
        assert!(matches!(
            s.send(msg(&["A"]), &mut table),
            Err(SendError::NotSupported)
        ));
        assert!(!s.bounded_pipes());
    }
}

//! XSUB (RFC 29): the application subscribes by sending `0x01 prefix` and
//! cancels by sending `0x00 prefix`. Subscriptions are counted as SUB's are:
//! every subscription goes to every peer (libzmq sends duplicates too, so
//! that an XPUB upstream in verbose mode sees them), a cancel only when the
//! count reaches zero, and a new peer is sent every subscription in effect.
//! Any other message goes upstream to every peer with room. Receiving is
//! SUB's without the local filter (libzmq's XSUB does not filter).

use bytes::Bytes;
use zmtp_core::Message;

use super::dist::distribute;
use super::sub::{tell_all, tell_new};
use super::{Pattern, SendError};
use crate::error::Error;
use crate::pipe::{Pipe, Pipes};
use crate::routing::OwnSubscriptions;

#[derive(Debug, Default)]
pub(crate) struct XSub {
    subs: OwnSubscriptions,
}

impl Pattern for XSub {
    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        if let [f] = msg.frames() {
            match f.first() {
                Some(1) => {
                    let prefix = f.slice(1..);
                    self.subs.add(prefix.clone());
                    tell_all(pipes, true, &prefix);
                    return Ok(0);
                }
                Some(0) => {
                    let prefix = f.slice(1..);
                    if self.subs.remove(&prefix) {
                        tell_all(pipes, false, &prefix);
                    }
                    return Ok(0);
                }
                _ => {}
            }
        }
        Ok(distribute(pipes, &msg, |_| true))
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

    fn pipe_added(&mut self, pipe: &Pipe) {
        tell_new(pipe, &self.subs);
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

    fn raw(b: &[u8]) -> Message {
        Message::from(b.to_vec())
    }

    #[test]
    fn subscriptions_are_sent_as_commands_and_replayed_to_new_peers() {
        let mut x = XSub::default();
        let (mut table, rxs) = pipes(&mut x, 1, 10);
        x.send(raw(b"\x01A"), &mut table).expect("sub");
        x.send(raw(b"\x01A"), &mut table).expect("sub");
        assert_eq!(
            drain(&rxs[0]),
            [frames(&["SUB", "A"]), frames(&["SUB", "A"])]
        );
        let (rx2, _) = add(&mut x, &mut table, 2, 10, &Metadata::new());
        assert_eq!(drain(&rx2), [frames(&["SUB", "A"])]);
        // Counted: the cancel goes out with the last unsubscribe.
        x.send(raw(b"\x00A"), &mut table).expect("cancel");
        assert!(drain(&rxs[0]).is_empty());
        x.send(raw(b"\x00A"), &mut table).expect("cancel");
        assert_eq!(drain(&rxs[0]), [frames(&["CANCEL", "A"])]);
        assert_eq!(drain(&rx2), [frames(&["CANCEL", "A"])]);
    }

    #[test]
    fn other_messages_go_upstream_to_every_peer_and_nothing_is_filtered() {
        let mut x = XSub::default();
        let (mut table, rxs) = pipes(&mut x, 2, 10);
        assert_eq!(x.send(msg(&["up", "stream"]), &mut table).expect("ok"), 2);
        for rx in &rxs {
            assert_eq!(drain(rx), [frames(&["up", "stream"])]);
        }
        assert!(x.passes_received());
        assert!(x.received(&table, 1, msg(&["anything"])).is_some());
    }
}

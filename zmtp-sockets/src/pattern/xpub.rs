//! XPUB (RFC 29): publishes as PUB does, and hands the peers' subscriptions
//! to the application as messages: `0x01 prefix` for a subscription and
//! `0x00 prefix` for a cancel. As libzmq's XPUB, a subscription is passed on
//! only when it is the first for its prefix among all peers, and a cancel
//! only when no peer keeps the prefix (a peer that leaves cancels its
//! prefixes this way too); `xpub_verbose` passes on every subscription and
//! `xpub_verbose_unsubscribe` every cancel. Other messages from peers (an
//! XSUB sends data upstream) reach the application unchanged.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use zmtp_core::Message;

use super::dist::publish;
use super::publish::apply;
use super::{Pattern, SendError, Subscription, SubscriptionLimits};
use crate::error::Error;
use crate::options::Options;
use crate::pipe::{Pipe, Pipes};
use crate::routing::OverLimit;

#[derive(Debug, Default)]
pub(crate) struct XPub {
    /// How many peers hold each prefix.
    holders: HashMap<Bytes, usize>,
    verbose: bool,
    verbose_unsubscribe: bool,
}

/// A subscription message as the application sees it.
fn notice(subscribe: bool, prefix: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(prefix.len() + 1);
    b.put_u8(u8::from(subscribe));
    b.put_slice(prefix);
    Message::from(b.freeze())
}

impl XPub {
    /// One holder fewer for `prefix`; true when none is left.
    fn release(&mut self, prefix: &[u8]) -> bool {
        match self.holders.get_mut(prefix) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.holders.remove(prefix);
                true
            }
            None => true,
        }
    }
}

impl Pattern for XPub {
    fn configure(&mut self, o: &Options) {
        self.verbose = o.xpub_verbose;
        self.verbose_unsubscribe = o.xpub_verbose_unsubscribe;
    }

    #[inline]
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<u64, SendError> {
        Ok(publish(pipes, &msg))
    }

    fn writable(&self, _pipes: &Pipes) -> bool {
        true
    }

    fn check_recv(&self) -> Result<(), Error> {
        Ok(())
    }

    fn peer_subscription(
        &mut self,
        pipe: &mut Pipe,
        sub: Subscription,
        limits: SubscriptionLimits,
    ) -> Result<Option<Message>, OverLimit> {
        let changed = apply(pipe, &sub, limits)?;
        Ok(match sub {
            Subscription::Subscribe(p) => {
                let first = changed && {
                    let n = self.holders.entry(p.clone()).or_default();
                    *n += 1;
                    *n == 1
                };
                (first || self.verbose).then(|| notice(true, &p))
            }
            Subscription::Cancel(p) => {
                // libzmq passes a cancel on unless other peers keep the
                // prefix; a cancel of a prefix this peer did not hold is
                // passed on too.
                let last = !changed || self.release(&p);
                (last || self.verbose_unsubscribe).then(|| notice(false, &p))
            }
        })
    }

    fn detached(&mut self, pipe: &mut Pipe) -> Vec<Message> {
        let prefixes: Vec<Bytes> = pipe.subs.prefixes().cloned().collect();
        pipe.subs.clear();
        let mut out = Vec::new();
        for p in prefixes {
            if self.release(&p) || self.verbose_unsubscribe {
                out.push(notice(false, &p));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, frames, msg, pipes};
    use super::*;

    const LIMITS: SubscriptionLimits = SubscriptionLimits {
        count: 10,
        bytes: 100,
    };

    fn sub(x: &mut XPub, table: &mut Pipes, pipe: u64, s: Subscription) -> Option<Vec<u8>> {
        let p = table.get_mut(pipe).expect("pipe");
        x.peer_subscription(p, s, LIMITS)
            .expect("within limits")
            .map(|m| m.frames()[0].to_vec())
    }

    fn s(p: &'static str) -> Subscription {
        Subscription::Subscribe(Bytes::from(p))
    }

    fn c(p: &'static str) -> Subscription {
        Subscription::Cancel(Bytes::from(p))
    }

    #[test]
    fn passes_on_first_subscriptions_and_last_cancels() {
        let mut x = XPub::default();
        let (mut table, rxs) = pipes(&mut x, 2, 10);
        assert_eq!(sub(&mut x, &mut table, 1, s("A")), Some(b"\x01A".to_vec()));
        // Duplicates, from the same peer or another, are filtered.
        assert_eq!(sub(&mut x, &mut table, 1, s("A")), None);
        assert_eq!(sub(&mut x, &mut table, 2, s("A")), None);
        assert_eq!(sub(&mut x, &mut table, 1, c("A")), None);
        assert_eq!(sub(&mut x, &mut table, 2, c("A")), Some(b"\x00A".to_vec()));
        // Publishing follows the peers' subscriptions, as PUB.
        sub(&mut x, &mut table, 2, s("B"));
        assert_eq!(x.send(msg(&["B1"]), &mut table).expect("never waits"), 1);
        assert_eq!(drain(&rxs[1]), [frames(&["B1"])]);
        assert!(drain(&rxs[0]).is_empty());
        // A peer that leaves cancels what only it held.
        sub(&mut x, &mut table, 1, s("B"));
        sub(&mut x, &mut table, 1, s("C"));
        let gone = x.detached(table.get_mut(1).expect("pipe"));
        let gone: Vec<_> = gone.iter().map(|m| m.frames()[0].to_vec()).collect();
        assert_eq!(gone, [b"\x00C".to_vec()]);
    }

    #[test]
    fn verbose_passes_on_every_subscription_and_cancel() {
        let mut x = XPub::default();
        let o = Options {
            xpub_verbose: true,
            xpub_verbose_unsubscribe: true,
            ..Options::default()
        };
        x.configure(&o);
        let (mut table, _rxs) = pipes(&mut x, 2, 10);
        assert_eq!(sub(&mut x, &mut table, 1, s("A")), Some(b"\x01A".to_vec()));
        assert_eq!(sub(&mut x, &mut table, 2, s("A")), Some(b"\x01A".to_vec()));
        assert_eq!(sub(&mut x, &mut table, 1, c("A")), Some(b"\x00A".to_vec()));
    }

    #[test]
    fn messages_from_peers_reach_the_application() {
        let mut x = XPub::default();
        let (table, _rxs) = pipes(&mut x, 1, 10);
        assert!(x.check_recv().is_ok());
        assert!(x.received(&table, 1, msg(&["upstream"])).is_some());
    }
}

//! Subscription state: a publisher's per-peer subscriptions and a subscriber's
//! own counted subscriptions.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

/// One peer's subscriptions, on the publisher side. As libzmq's
/// `generic_mtrie`, it is a set: a duplicate SUBSCRIBE changes nothing and
/// one CANCEL removes the prefix.
#[derive(Debug, Default)]
pub(crate) struct PeerSubscriptions {
    prefixes: HashSet<Bytes>,
    /// How many prefixes of each length, so that a match probes only the
    /// lengths in use (one probe for "subscribe to everything").
    lengths: BTreeMap<usize, usize>,
    bytes: usize,
}

/// A peer went over a subscription limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OverLimit;

impl PeerSubscriptions {
    pub(crate) fn subscribe(
        &mut self,
        prefix: Bytes,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<bool, OverLimit> {
        if self.prefixes.contains(&prefix) {
            return Ok(false);
        }
        if self.prefixes.len() >= max_count || self.bytes + prefix.len() > max_bytes {
            return Err(OverLimit);
        }
        self.bytes += prefix.len();
        *self.lengths.entry(prefix.len()).or_default() += 1;
        self.prefixes.insert(prefix);
        Ok(true)
    }

    /// Removes a prefix; true when it was there.
    pub(crate) fn cancel(&mut self, prefix: &[u8]) -> bool {
        if self.prefixes.remove(prefix) {
            self.bytes -= prefix.len();
            if let Some(n) = self.lengths.get_mut(&prefix.len()) {
                *n -= 1;
                if *n == 0 {
                    self.lengths.remove(&prefix.len());
                }
            }
            return true;
        }
        false
    }

    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &Bytes> {
        self.prefixes.iter()
    }

    pub(crate) fn matches(&self, topic: &[u8]) -> bool {
        // "Everything" (the empty prefix) is the common subscription: answer
        // it without hashing.
        if self.lengths.contains_key(&0) {
            return true;
        }
        self.lengths
            .range(..=topic.len())
            .any(|(&len, _)| self.prefixes.contains(&topic[..len]))
    }

    pub(crate) fn clear(&mut self) {
        *self = PeerSubscriptions::default();
    }

    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }
}

/// A subscriber's own subscriptions, counted as libzmq counts them
/// (subscribe twice, unsubscribe twice).
#[derive(Debug, Default)]
pub(crate) struct OwnSubscriptions {
    counts: HashMap<Bytes, usize>,
    lengths: BTreeMap<usize, usize>,
}

impl OwnSubscriptions {
    /// Returns true when the prefix is new (a SUBSCRIBE must go out).
    pub(crate) fn add(&mut self, prefix: Bytes) -> bool {
        let len = prefix.len();
        let n = self.counts.entry(prefix).or_default();
        *n += 1;
        if *n == 1 {
            *self.lengths.entry(len).or_default() += 1;
            true
        } else {
            false
        }
    }

    /// Returns true when the count reached zero (a CANCEL must go out).
    pub(crate) fn remove(&mut self, prefix: &[u8]) -> bool {
        let Some(n) = self.counts.get_mut(prefix) else {
            return false;
        };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        self.counts.remove(prefix);
        if let Some(l) = self.lengths.get_mut(&prefix.len()) {
            *l -= 1;
            if *l == 0 {
                self.lengths.remove(&prefix.len());
            }
        }
        true
    }

    pub(crate) fn matches(&self, topic: &[u8]) -> bool {
        if self.lengths.contains_key(&0) {
            return true;
        }
        self.lengths
            .range(..=topic.len())
            .any(|(&len, _)| self.counts.contains_key(&topic[..len]))
    }

    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &Bytes> {
        self.counts.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_set_semantics() {
        let mut s = PeerSubscriptions::default();
        s.subscribe(Bytes::from_static(b"ab"), 10, 100).unwrap();
        s.subscribe(Bytes::from_static(b"ab"), 10, 100).unwrap();
        assert!(s.matches(b"abc") && s.matches(b"ab") && !s.matches(b"a"));
        s.cancel(b"ab");
        assert!(!s.matches(b"abc"));
        s.subscribe(Bytes::new(), 10, 100).unwrap();
        assert!(s.matches(b"") && s.matches(b"anything"));
        assert_eq!(
            s.subscribe(Bytes::from(vec![0; 200]), 10, 100),
            Err(OverLimit)
        );
        for i in 0..9u8 {
            s.subscribe(Bytes::from(vec![i]), 10, 100).unwrap();
        }
        assert_eq!(
            s.subscribe(Bytes::from_static(b"zz"), 10, 100),
            Err(OverLimit)
        );
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn own_counts() {
        let mut s = OwnSubscriptions::default();
        assert!(s.add(Bytes::from_static(b"A")));
        assert!(!s.add(Bytes::from_static(b"A")));
        assert!(s.matches(b"AB"));
        assert!(!s.remove(b"A"));
        assert!(s.matches(b"AB"));
        assert!(s.remove(b"A"));
        assert!(!s.matches(b"AB"));
        assert!(!s.remove(b"A"));
    }
}

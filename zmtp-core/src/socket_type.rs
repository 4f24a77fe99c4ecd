//! Socket types and their compatibility matrix (RFC 23 §"The Socket-Type
//! property" and RFC 37, plus libzmq's `mechanism_t::check_socket_type`).

use std::fmt;

/// A ZeroMQ socket type, as carried in the `Socket-Type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketType {
    /// Exclusive pair.
    Pair,
    /// Publisher.
    Pub,
    /// Subscriber.
    Sub,
    /// Requester.
    Req,
    /// Replier.
    Rep,
    /// Asynchronous requester.
    Dealer,
    /// Asynchronous replier.
    Router,
    /// Pipeline source.
    Pull,
    /// Pipeline sink.
    Push,
    /// Raw publisher that sees subscriptions.
    XPub,
    /// Raw subscriber that sends subscriptions.
    XSub,
}

impl SocketType {
    /// Every socket type, in libzmq's numbering order.
    pub const ALL: [SocketType; 11] = [
        SocketType::Pair,
        SocketType::Pub,
        SocketType::Sub,
        SocketType::Req,
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Pull,
        SocketType::Push,
        SocketType::XPub,
        SocketType::XSub,
    ];

    /// The canonical wire spelling. libzmq compares it byte for byte, so this
    /// is the only spelling ever emitted.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketType::Pair => "PAIR",
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Pull => "PULL",
            SocketType::Push => "PUSH",
            SocketType::XPub => "XPUB",
            SocketType::XSub => "XSUB",
        }
    }

    /// Parses a wire name. RFC 23 says names are case-insensitive, so any
    /// case is accepted.
    pub fn from_name(name: &[u8]) -> Option<SocketType> {
        SocketType::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Whether a socket of this type may talk to a peer of type `peer`.
    pub fn is_compatible(self, peer: SocketType) -> bool {
        use SocketType::*;
        match self {
            Req => matches!(peer, Rep | Router),
            Rep => matches!(peer, Req | Dealer),
            Dealer => matches!(peer, Rep | Dealer | Router),
            Router => matches!(peer, Req | Dealer | Router),
            Pub | XPub => matches!(peer, Sub | XSub),
            Sub | XSub => matches!(peer, Pub | XPub),
            Push => peer == Pull,
            Pull => peer == Push,
            Pair => peer == Pair,
        }
    }

    /// Whether READY carries an `Identity` property for this type (libzmq
    /// sends it for REQ, DEALER and ROUTER only).
    pub fn sends_identity(self) -> bool {
        matches!(
            self,
            SocketType::Req | SocketType::Dealer | SocketType::Router
        )
    }

    /// Whether this type receives subscriptions from its peers.
    pub fn is_publisher(self) -> bool {
        matches!(self, SocketType::Pub | SocketType::XPub)
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for t in SocketType::ALL {
            assert_eq!(SocketType::from_name(t.as_str().as_bytes()), Some(t));
            let lower = t.as_str().to_ascii_lowercase();
            assert_eq!(SocketType::from_name(lower.as_bytes()), Some(t));
        }
        assert_eq!(SocketType::from_name(b"STREAM"), None);
        assert_eq!(SocketType::from_name(b""), None);
    }

    #[test]
    fn matrix_is_symmetric_and_matches_rfc() {
        use SocketType::*;
        for a in SocketType::ALL {
            for b in SocketType::ALL {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} {b}");
            }
        }
        assert!(Req.is_compatible(Rep));
        assert!(Req.is_compatible(Router));
        assert!(!Req.is_compatible(Req));
        assert!(!Req.is_compatible(Dealer));
        assert!(Pub.is_compatible(XSub));
        assert!(!Pub.is_compatible(Pub));
        assert!(Push.is_compatible(Pull));
        assert!(!Push.is_compatible(Push));
        assert!(Pair.is_compatible(Pair));
        assert!(!Pair.is_compatible(Push));
        let count = SocketType::ALL
            .iter()
            .flat_map(|a| SocketType::ALL.iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.is_compatible(**b))
            .count();
        assert_eq!(count, 21);
    }
}

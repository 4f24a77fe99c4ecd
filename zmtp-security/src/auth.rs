//! The Authenticator: the in-process equivalent of ZAP (RFC 27).
//!
//! A server-side mechanism asks it about each client once the client's
//! credentials are known: the mechanism, the peer's address, the PLAIN
//! username and password or the client's long-term public key, and the
//! socket's domain. It answers with [`AuthVerdict`]: allow (with a
//! `User-Id` and properties that reach every message from that peer), or
//! deny with a ZAP status — 300 (closed silently), 400 or 500 (the client
//! gets an ERROR with the status).
//!
//! It may be asynchronous (a database look-up): [`Authenticator::authenticate`]
//! returns a boxed future, awaited by the connection's own task, never by
//! the application thread and never blocking other connections.
//!
//! Without an Authenticator the mechanisms behave as libzmq does without a
//! ZAP handler: NULL accepts everyone; a CURVE server accepts any client key
//! (the client must still know the server's key); a PLAIN server refuses
//! every client, because libzmq's PLAIN server also needs a ZAP handler.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use subtle::ConstantTimeEq;
use zmtp_core::{AuthVerdict, Credentials, MechanismName, Metadata};

use crate::keys::PublicKey;

pub use zmtp_core::AuthVerdict as Verdict;

/// Everything the Authenticator is told about a client (the ZAP request).
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The socket's ZAP domain (empty by default).
    pub domain: String,
    /// The peer's address: `ip:port` for tcp, the path for ipc.
    pub address: String,
    /// The peer's IP, when it connected over tcp.
    pub ip: Option<IpAddr>,
    /// The mechanism in use.
    pub mechanism: MechanismName,
    /// What the client presented.
    pub credentials: Credentials,
}

/// A boxed future of a verdict.
pub type VerdictFuture<'a> = Pin<Box<dyn Future<Output = AuthVerdict> + Send + 'a>>;

/// Decides whether a client may connect.
///
/// The built-in policies cover the usual cases; a closure covers the rest:
///
/// ```
/// use zmtp_security::{AuthVerdict, FnAuthenticator, PlainCredentials};
/// let mut users = PlainCredentials::new();
/// users.allow("admin", "secret");
/// // Any policy as a function of the request:
/// let only_local = FnAuthenticator(|req: &zmtp_security::AuthRequest| {
///     if req.address.starts_with("127.") {
///         AuthVerdict::allow()
///     } else {
///         AuthVerdict::Deny { status: 400 }
///     }
/// });
/// # let _ = (users, only_local);
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Judges one client. May be asynchronous.
    fn authenticate<'a>(&'a self, request: &'a AuthRequest) -> VerdictFuture<'a>;
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest) -> VerdictFuture<'a> {
        (**self).authenticate(request)
    }
}

/// An Authenticator from a synchronous function.
pub struct FnAuthenticator<F>(pub F);

impl<F> Authenticator for FnAuthenticator<F>
where
    F: Fn(&AuthRequest) -> AuthVerdict + Send + Sync + 'static,
{
    fn authenticate<'a>(&'a self, request: &'a AuthRequest) -> VerdictFuture<'a> {
        let v = (self.0)(request);
        Box::pin(std::future::ready(v))
    }
}

/// Allows every client.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate<'a>(&'a self, _: &'a AuthRequest) -> VerdictFuture<'a> {
        Box::pin(std::future::ready(AuthVerdict::allow()))
    }
}

/// A PLAIN credential table. The username becomes the `User-Id`.
/// Passwords are compared in constant time. Other mechanisms are denied.
#[derive(Clone, Default)]
pub struct PlainCredentials {
    users: HashMap<Vec<u8>, zeroize::Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("users", &self.users.len())
            .finish()
    }
}

impl PlainCredentials {
    /// An empty table.
    pub fn new() -> PlainCredentials {
        PlainCredentials::default()
    }

    /// Allows a user with this password (replacing its old one): the verb
    /// of every allow list here (`PublicKeyAllowList::allow`,
    /// `AddressFilter::allow`).
    pub fn allow(&mut self, username: impl AsRef<[u8]>, password: impl AsRef<[u8]>) -> &mut Self {
        self.users.insert(
            username.as_ref().to_vec(),
            zeroize::Zeroizing::new(password.as_ref().to_vec()),
        );
        self
    }

    fn check(&self, request: &AuthRequest) -> AuthVerdict {
        let Credentials::Plain { username, password } = &request.credentials else {
            return AuthVerdict::Deny { status: 400 };
        };
        match self.users.get(&username[..]) {
            Some(expected) if bool::from(expected.as_slice().ct_eq(password)) => {
                AuthVerdict::Allow {
                    user_id: username.clone(),
                    properties: Metadata::new(),
                }
            }
            _ => AuthVerdict::Deny { status: 400 },
        }
    }
}

impl Authenticator for PlainCredentials {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest) -> VerdictFuture<'a> {
        Box::pin(std::future::ready(self.check(request)))
    }
}

/// An allow list of client public keys (CURVE long-term keys, NOISE static
/// keys). The key in Z85 becomes the `User-Id`, as czmq's zauth does.
/// Clients without a key are denied (status 400): NULL and PLAIN clients,
/// and NOISE-NK clients, which are anonymous (the NOISE specification,
/// §5: an allow list cannot apply to NK).
#[derive(Debug, Clone, Default)]
pub struct PublicKeyAllowList {
    keys: HashSet<[u8; 32]>,
}

impl PublicKeyAllowList {
    /// An empty list (denies every key).
    pub fn new() -> PublicKeyAllowList {
        PublicKeyAllowList::default()
    }

    /// Allows a key.
    pub fn allow(&mut self, key: PublicKey) -> &mut Self {
        self.keys.insert(*key.as_bytes());
        self
    }

    fn check(&self, request: &AuthRequest) -> AuthVerdict {
        let key = match &request.credentials {
            Credentials::Curve(k) | Credentials::Noise(k) => k,
            _ => return AuthVerdict::Deny { status: 400 },
        };
        // Membership of a hash set is not constant-time in the key, but the
        // key is public: only its presence is secret-free information.
        if self.keys.contains(key) {
            let user_id = crate::z85::encode(key).map(Bytes::from).unwrap_or_default();
            AuthVerdict::Allow {
                user_id,
                properties: Metadata::new(),
            }
        } else {
            AuthVerdict::Deny { status: 400 }
        }
    }
}

impl FromIterator<PublicKey> for PublicKeyAllowList {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(iter: I) -> PublicKeyAllowList {
        let mut l = PublicKeyAllowList::new();
        for k in iter {
            l.allow(k);
        }
        l
    }
}

impl Authenticator for PublicKeyAllowList {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest) -> VerdictFuture<'a> {
        Box::pin(std::future::ready(self.check(request)))
    }
}

/// Filters clients by IP address before handing them to an inner
/// Authenticator, as czmq's zauth allow/deny lists do: with an allow list,
/// only listed addresses pass; otherwise listed deny addresses are refused.
pub struct AddressFilter {
    allow: HashSet<IpAddr>,
    deny: HashSet<IpAddr>,
    inner: Box<dyn Authenticator>,
}

impl std::fmt::Debug for AddressFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressFilter")
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}

impl AddressFilter {
    /// A filter in front of `inner`.
    pub fn new(inner: impl Authenticator) -> AddressFilter {
        AddressFilter {
            allow: HashSet::new(),
            deny: HashSet::new(),
            inner: Box::new(inner),
        }
    }

    /// Adds an address to the allow list.
    pub fn allow(mut self, ip: IpAddr) -> AddressFilter {
        self.allow.insert(ip);
        self
    }

    /// Adds an address to the deny list.
    pub fn deny(mut self, ip: IpAddr) -> AddressFilter {
        self.deny.insert(ip);
        self
    }

    fn passes(&self, request: &AuthRequest) -> bool {
        match request.ip {
            Some(ip) if !self.allow.is_empty() => self.allow.contains(&ip),
            Some(ip) => !self.deny.contains(&ip),
            // ipc peers have no IP: only an allow list can refuse them.
            None => self.allow.is_empty(),
        }
    }
}

impl Authenticator for AddressFilter {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest) -> VerdictFuture<'a> {
        if !self.passes(request) {
            return Box::pin(std::future::ready(AuthVerdict::Deny { status: 400 }));
        }
        self.inner.authenticate(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn request(credentials: Credentials, ip: &str) -> AuthRequest {
        AuthRequest {
            domain: String::new(),
            address: format!("{ip}:5555"),
            ip: ip.parse().ok(),
            mechanism: MechanismName::PLAIN,
            credentials,
        }
    }

    fn plain(user: &'static [u8], pass: &'static [u8]) -> Credentials {
        Credentials::Plain {
            username: Bytes::from_static(user),
            password: Bytes::from_static(pass),
        }
    }

    #[test]
    fn plain_table() {
        let mut t = PlainCredentials::new();
        t.allow("admin", "secret");
        let ok = block_on(t.authenticate(&request(plain(b"admin", b"secret"), "127.0.0.1")));
        assert!(matches!(ok, AuthVerdict::Allow { ref user_id, .. } if user_id == &b"admin"[..]));
        for creds in [
            plain(b"admin", b"wrong"),
            plain(b"other", b"secret"),
            Credentials::Null,
        ] {
            let v = block_on(t.authenticate(&request(creds, "127.0.0.1")));
            assert_eq!(v, AuthVerdict::Deny { status: 400 });
        }
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[test]
    fn key_allow_list() {
        let good = crate::KeyPair::generate().public;
        let bad = crate::KeyPair::generate().public;
        let list: PublicKeyAllowList = [good].into_iter().collect();
        let v = block_on(list.authenticate(&request(Credentials::Curve(*good.as_bytes()), "::1")));
        assert!(
            matches!(v, AuthVerdict::Allow { ref user_id, .. } if user_id == good.to_z85().as_bytes())
        );
        let v = block_on(list.authenticate(&request(Credentials::Noise(*bad.as_bytes()), "::1")));
        assert_eq!(v, AuthVerdict::Deny { status: 400 });
    }

    #[test]
    fn address_filter() {
        let f = AddressFilter::new(AllowAll).deny("10.0.0.1".parse().unwrap());
        assert!(matches!(
            block_on(f.authenticate(&request(Credentials::Null, "10.0.0.2"))),
            AuthVerdict::Allow { .. }
        ));
        assert_eq!(
            block_on(f.authenticate(&request(Credentials::Null, "10.0.0.1"))),
            AuthVerdict::Deny { status: 400 }
        );
        let f = AddressFilter::new(AllowAll).allow("127.0.0.1".parse().unwrap());
        assert!(matches!(
            block_on(f.authenticate(&request(Credentials::Null, "127.0.0.1"))),
            AuthVerdict::Allow { .. }
        ));
        assert_eq!(
            block_on(f.authenticate(&request(Credentials::Null, "127.0.0.2"))),
            AuthVerdict::Deny { status: 400 }
        );
    }

    #[test]
    fn async_authenticator() {
        struct Slow;
        impl Authenticator for Slow {
            fn authenticate<'a>(&'a self, r: &'a AuthRequest) -> VerdictFuture<'a> {
                Box::pin(async move {
                    futures_lite::future::yield_now().await;
                    if r.domain == "ok" {
                        AuthVerdict::allow()
                    } else {
                        AuthVerdict::Deny { status: 500 }
                    }
                })
            }
        }
        let mut r = request(Credentials::Null, "127.0.0.1");
        assert_eq!(
            block_on(Slow.authenticate(&r)),
            AuthVerdict::Deny { status: 500 }
        );
        r.domain = "ok".into();
        assert!(matches!(
            block_on(Slow.authenticate(&r)),
            AuthVerdict::Allow { .. }
        ));
    }
}

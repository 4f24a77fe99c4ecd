//! PLAIN (RFC 24): username and password in clear, for trusted networks.
//!
//! ```text
//! C: HELLO    = %x05 "HELLO" username-len(1) username password-len(1) password
//! S: WELCOME  = %x07 "WELCOME"                    (after the Authenticator said 200)
//! C: INITIATE = %x08 "INITIATE" metadata
//! S: READY    = %x05 "READY" metadata
//! S: ERROR    = %x05 "ERROR" status               (on 400 or 500; 300 is silent)
//! ```

use std::fmt;

use bytes::Bytes;
use zeroize::Zeroizing;
use zmtp_core::error::{malformed, protocol};
use zmtp_core::mechanism::{deny_libzmq_plain, merge_auth};
use zmtp_core::wire::RawCommand;
use zmtp_core::{
    AuthRequest, AuthVerdict, Credentials, Error, HandshakeContext, Mechanism, MechanismName,
    Metadata, Result, Step, Traffic,
};

/// The PLAIN client.
pub struct PlainClient {
    username: Bytes,
    password: Zeroizing<Vec<u8>>,
    local: Metadata,
    state: ClientState,
}

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    New,
    ExpectWelcome,
    ExpectReady,
    Done,
}

impl fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainClient")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("state", &self.state)
            .finish()
    }
}

impl PlainClient {
    /// A client with these credentials. Each is at most 255 bytes.
    pub fn new(username: impl AsRef<[u8]>, password: impl AsRef<[u8]>) -> Result<PlainClient> {
        let (u, p) = (username.as_ref(), password.as_ref());
        if u.len() > 255 || p.len() > 255 {
            return Err(Error::Usage(zmtp_core::UsageError::InvalidArgument(
                "PLAIN username and password are at most 255 bytes",
            )));
        }
        Ok(PlainClient {
            username: Bytes::copy_from_slice(u),
            password: Zeroizing::new(p.to_vec()),
            local: Metadata::new(),
            state: ClientState::New,
        })
    }
}

impl Mechanism for PlainClient {
    fn name(&self) -> MechanismName {
        MechanismName::PLAIN
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, out: &mut Vec<Bytes>) -> Result<Step> {
        self.local = ctx.local.clone();
        let mut hello = Zeroizing::new(Vec::with_capacity(
            8 + self.username.len() + self.password.len(),
        ));
        hello.extend_from_slice(b"\x05HELLO");
        hello.push(self.username.len() as u8);
        hello.extend_from_slice(&self.username);
        hello.push(self.password.len() as u8);
        hello.extend_from_slice(&self.password);
        out.push(Bytes::copy_from_slice(&hello));
        self.state = ClientState::ExpectWelcome;
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step> {
        let cmd = RawCommand::parse(&body)?;
        match self.state {
            ClientState::ExpectWelcome if cmd.is(b"WELCOME") => {
                if !cmd.data.is_empty() {
                    return Err(malformed("WELCOME"));
                }
                let mut initiate = Vec::new();
                RawCommand::emit(b"INITIATE", &[], &mut initiate);
                self.local.emit(&mut initiate);
                out.push(initiate.into());
                self.state = ClientState::ExpectReady;
                Ok(Step::Continue)
            }
            ClientState::ExpectReady if cmd.is(b"READY") => {
                let peer = Metadata::parse(&cmd.data)?;
                self.state = ClientState::Done;
                Ok(Step::Done(peer))
            }
            _ => Err(protocol("PLAIN client: unexpected command")),
        }
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        Traffic::Plain
    }
}

/// The PLAIN server. It asks the Authenticator about every HELLO.
#[derive(Debug)]
pub struct PlainServer {
    local: Metadata,
    state: ServerState,
    auth: Option<(Bytes, Metadata)>,
}

#[derive(Debug, PartialEq, Eq)]
enum ServerState {
    ExpectHello,
    AwaitVerdict,
    ExpectInitiate,
    Done,
}

impl PlainServer {
    /// A server; the connection's driver supplies the Authenticator.
    pub fn new() -> PlainServer {
        PlainServer {
            local: Metadata::new(),
            state: ServerState::ExpectHello,
            auth: None,
        }
    }
}

impl Default for PlainServer {
    fn default() -> PlainServer {
        PlainServer::new()
    }
}

/// Parses HELLO's data: the password takes exactly the rest.
fn parse_hello(data: &Bytes) -> Result<(Bytes, Bytes)> {
    let ulen = *data.first().ok_or_else(|| malformed("HELLO"))? as usize;
    let user_end = 1 + ulen;
    let plen = *data.get(user_end).ok_or_else(|| malformed("HELLO"))? as usize;
    if data.len() != user_end + 1 + plen {
        return Err(malformed("HELLO"));
    }
    Ok((data.slice(1..user_end), data.slice(user_end + 1..)))
}

impl Mechanism for PlainServer {
    fn name(&self) -> MechanismName {
        MechanismName::PLAIN
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &HandshakeContext<'_>, _out: &mut Vec<Bytes>) -> Result<Step> {
        self.local = ctx.local.clone();
        Ok(Step::Continue)
    }

    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> Result<Step> {
        let cmd = RawCommand::parse(&body)?;
        match self.state {
            ServerState::ExpectHello if cmd.is(b"HELLO") => {
                let (username, password) = parse_hello(&cmd.data)?;
                self.state = ServerState::AwaitVerdict;
                Ok(Step::Authenticate(AuthRequest {
                    mechanism: MechanismName::PLAIN,
                    credentials: Credentials::Plain { username, password },
                }))
            }
            ServerState::ExpectInitiate if cmd.is(b"INITIATE") => {
                let mut peer = Metadata::parse(&cmd.data)?;
                if let Some((user_id, props)) = self.auth.take() {
                    merge_auth(&mut peer, user_id, props);
                }
                let mut ready = Vec::new();
                RawCommand::emit(b"READY", &[], &mut ready);
                self.local.emit(&mut ready);
                out.push(ready.into());
                self.state = ServerState::Done;
                Ok(Step::Done(peer))
            }
            _ => Err(protocol("PLAIN server: unexpected command")),
        }
    }

    fn handle_verdict(&mut self, verdict: AuthVerdict, out: &mut Vec<Bytes>) -> Result<Step> {
        if self.state != ServerState::AwaitVerdict {
            return Err(protocol("PLAIN server: unexpected verdict"));
        }
        match verdict.decision() {
            Ok(allowed) => {
                self.auth = Some(allowed);
                out.push(Bytes::from_static(b"\x07WELCOME"));
                self.state = ServerState::ExpectInitiate;
                Ok(Step::Continue)
            }
            // libzmq's PLAIN clients only understand libzmq's ERROR form.
            Err(status) => Err(deny_libzmq_plain(status, out)),
        }
    }

    fn into_traffic(self: Box<Self>) -> Traffic {
        Traffic::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_parsing_is_exact() {
        let (u, p) = parse_hello(&Bytes::from_static(b"\x05admin\x08password")).unwrap();
        assert_eq!((&u[..], &p[..]), (&b"admin"[..], &b"password"[..]));
        let (u, p) = parse_hello(&Bytes::from_static(b"\x00\x00")).unwrap();
        assert!(u.is_empty() && p.is_empty());
        for bad in [
            &b""[..],
            b"\x05adm",
            b"\x05admin",
            b"\x05admin\x08pass",
            b"\x05admin\x02pass",
        ] {
            assert!(
                parse_hello(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    use zmtp_core::testing::{Side, pump};
    use zmtp_core::{Message, SocketType};

    fn table(req: &zmtp_core::AuthRequest) -> AuthVerdict {
        let mut t = crate::PlainCredentials::new();
        t.allow("admin", "password");
        futures_lite::future::block_on(crate::Authenticator::authenticate(
            &t,
            &crate::AuthRequest {
                domain: String::new(),
                address: String::new(),
                ip: None,
                mechanism: req.mechanism,
                credentials: req.credentials.clone(),
            },
        ))
    }

    #[test]
    fn handshake_and_messages() {
        let mut c = Side::new(
            SocketType::Req,
            PlainClient::new("admin", "password").unwrap(),
        );
        let mut s = Side::new(SocketType::Rep, PlainServer::new()).with_verdict(table);
        pump(&mut c, &mut s);
        assert!(c.ready() && s.ready(), "{:?} {:?}", c.error, s.error);
        c.conn
            .send(&Message::from_frames([
                Bytes::new(),
                Bytes::from_static(b"hi"),
            ]))
            .unwrap();
        s.conn
            .send(&Message::from_frames([
                Bytes::new(),
                Bytes::from_static(b"yo"),
            ]))
            .unwrap();
        pump(&mut c, &mut s);
        assert_eq!(s.messages()[0].user_id().unwrap(), &b"admin"[..]);
        assert_eq!(s.messages()[0].socket_type().unwrap(), &b"REQ"[..]);
        assert_eq!(c.messages()[0].frames()[1], &b"yo"[..]);
    }

    #[test]
    fn wrong_password_is_an_authentication_failure() {
        let mut c = Side::new(
            SocketType::Push,
            PlainClient::new("admin", "wrong").unwrap(),
        );
        let mut s = Side::new(SocketType::Pull, PlainServer::new()).with_verdict(table);
        pump(&mut c, &mut s);
        assert_eq!(c.error.as_ref().unwrap().auth_status(), Some(400));
        assert_eq!(s.error.as_ref().unwrap().auth_status(), Some(400));
        assert!(!c.ready() && !s.ready());
    }

    #[test]
    fn two_servers_never_finish() {
        // libzmq's "client configured as server": both wait for HELLO.
        let mut a = Side::new(SocketType::Push, PlainServer::new()).with_verdict(table);
        let mut b = Side::new(SocketType::Pull, PlainServer::new()).with_verdict(table);
        pump(&mut a, &mut b);
        assert!(!a.ready() && !b.ready());
        assert!(a.conn.send(&Message::from("x")).is_err());
    }

    #[test]
    fn sneaky_message_after_greeting_is_refused() {
        let mut s = Side::new(SocketType::Pull, PlainServer::new()).with_verdict(table);
        let mut input = zmtp_core::Greeting::new(MechanismName::PLAIN, false)
            .emit()
            .to_vec();
        input.extend_from_slice(b"\x00\x06sneaky");
        s.conn.recv_buffer().extend_from_slice(&input);
        assert!(s.conn.poll_event(std::time::Instant::now()).is_err());
        assert!(s.messages().is_empty());
    }

    #[test]
    fn password_not_in_debug() {
        let c = PlainClient::new("user", "hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(PlainClient::new(vec![b'u'; 256], "x").is_err());
    }
}

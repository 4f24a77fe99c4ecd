//! Test support (feature `testing`, and this crate's own tests): the bytes
//! a mock peer sends, and two sans-IO connections wired together in
//! memory. Not for production use: nothing here checks its input.
//!
//! ```
//! use zmtp_core::testing::{Side, pump};
//! use zmtp_core::{mechanism::Null, SocketType};
//! let mut a = Side::new(SocketType::Req, Null::new());
//! let mut b = Side::new(SocketType::Rep, Null::new());
//! pump(&mut a, &mut b);
//! assert!(a.ready() && b.ready());
//! ```

use std::time::Instant;

use crate::{
    AuthRequest, AuthVerdict, Config, Connection, Error, Event, Mechanism, Message, SocketType,
};

/// A ZMTP greeting (64 bytes) for `mechanism`, version `major.minor`, not
/// as server.
pub fn greeting(mechanism: &str, major: u8, minor: u8) -> Vec<u8> {
    let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, major, minor];
    g.extend_from_slice(mechanism.as_bytes());
    g.resize(64, 0);
    g
}

/// A command frame holding `body` (short or long header as its size
/// needs).
pub fn command_frame(body: &[u8]) -> Vec<u8> {
    let mut f = if body.len() <= 255 {
        vec![0x04, body.len() as u8]
    } else {
        let mut h = vec![0x06];
        h.extend_from_slice(&(body.len() as u64).to_be_bytes());
        h
    };
    f.extend_from_slice(body);
    f
}

/// A command body: the name's length, the name, the data.
pub fn command(name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    body
}

/// A READY command frame announcing only `Socket-Type`.
pub fn ready(socket_type: &str) -> Vec<u8> {
    let mut data = b"\x0bSocket-Type".to_vec();
    data.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    data.extend_from_slice(socket_type.as_bytes());
    command_frame(&command("READY", &data))
}

/// A SUBSCRIBE command frame (ZMTP 3.1).
pub fn subscribe(prefix: &[u8]) -> Vec<u8> {
    command_frame(&command("SUBSCRIBE", prefix))
}

/// A CANCEL command frame (ZMTP 3.1).
pub fn cancel(prefix: &[u8]) -> Vec<u8> {
    command_frame(&command("CANCEL", prefix))
}

/// A data frame (short or long header), with MORE when `more`.
pub fn data_frame(more: bool, body: &[u8]) -> Vec<u8> {
    let flags = u8::from(more);
    let mut f = if body.len() <= 255 {
        vec![flags, body.len() as u8]
    } else {
        let mut h = vec![flags | 0x02];
        h.extend_from_slice(&(body.len() as u64).to_be_bytes());
        h
    };
    f.extend_from_slice(body);
    f
}

type VerdictFn = Box<dyn Fn(&AuthRequest) -> AuthVerdict>;

/// One end of an in-memory pair: a connection, the events it gave, and its
/// first error. An Authenticator is answered inline by `verdict` (allow
/// when there is none).
pub struct Side {
    /// The connection.
    pub conn: Connection,
    /// Every event it gave, in order.
    pub events: Vec<Event>,
    /// The error that closed it, if one did.
    pub error: Option<Error>,
    verdict: Option<VerdictFn>,
}

impl Side {
    /// A connection of type `t` with the mechanism `m` and default settings.
    pub fn new(t: SocketType, m: impl Mechanism + 'static) -> Side {
        Side::with_config(Config::new(t), m)
    }

    /// A connection with these settings.
    pub fn with_config(config: Config, m: impl Mechanism + 'static) -> Side {
        Side::from_connection(Connection::new(config, Box::new(m), Instant::now()))
    }

    /// An existing connection (one that already did its handshake, say).
    pub fn from_connection(conn: Connection) -> Side {
        Side {
            conn,
            events: Vec::new(),
            error: None,
            verdict: None,
        }
    }

    /// Answers the Authenticator's questions with `f`.
    pub fn with_verdict(mut self, f: impl Fn(&AuthRequest) -> AuthVerdict + 'static) -> Side {
        self.verdict = Some(Box::new(f));
        self
    }

    /// Everything the connection has to write.
    pub fn take_output(&mut self) -> Vec<u8> {
        let Ok(enc) = self.conn.output() else {
            return Vec::new();
        };
        enc.take_all()
    }

    /// Gives the connection bytes from its peer and collects its events.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.conn.recv_buffer().extend_from_slice(bytes);
        self.conn.input_arrived(Instant::now());
        loop {
            match self.conn.poll_event(Instant::now()) {
                Ok(Some(Event::Authenticate(req))) => {
                    let v = match &self.verdict {
                        Some(f) => f(&req),
                        None => AuthVerdict::allow(),
                    };
                    if let Err(e) = self.conn.authenticated(v, Instant::now()) {
                        self.error = Some(e);
                        return;
                    }
                }
                Ok(Some(ev)) => self.events.push(ev),
                Ok(None) => return,
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
    }

    /// Whether the handshake succeeded.
    pub fn ready(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::HandshakeSucceeded(_)))
    }

    /// The messages received.
    pub fn messages(&self) -> Vec<&Message> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

/// Moves bytes both ways until neither side has anything to write.
pub fn pump(a: &mut Side, b: &mut Side) {
    pump_with(a, b, |_| {});
}

/// [`pump`], with `tamper` changing the bytes from `a` to `b` on the way.
pub fn pump_with(a: &mut Side, b: &mut Side, mut tamper: impl FnMut(&mut Vec<u8>)) {
    for _ in 0..20 {
        let mut oa = a.take_output();
        let ob = b.take_output();
        if oa.is_empty() && ob.is_empty() {
            return;
        }
        if !oa.is_empty() {
            tamper(&mut oa);
        }
        b.feed(&oa);
        a.feed(&ob);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Command;

    #[test]
    fn the_builders_make_what_the_parsers_read() {
        assert_eq!(greeting("NULL", 3, 1).len(), 64);
        let r = ready("PUB");
        assert_eq!(r[0], 0x04);
        assert!(matches!(
            Command::parse(&bytes::Bytes::copy_from_slice(&r[2..])),
            Ok(Command::Ready(_))
        ));
        let s = subscribe(b"A");
        assert!(matches!(
            Command::parse(&bytes::Bytes::copy_from_slice(&s[2..])),
            Ok(Command::Subscribe(p)) if p == "A"
        ));
        let long = command_frame(&[0u8; 300]);
        assert_eq!(long[0], 0x06);
        assert_eq!(long.len(), 9 + 300);
        assert_eq!(data_frame(true, b"x"), [1, 1, b'x']);
    }
}

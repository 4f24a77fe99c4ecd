//! Test harness: two sans-IO connections wired together in memory, with an
//! Authenticator answered inline.

use std::time::Instant;

use zmtp_core::{AuthVerdict, Config, Connection, Error, Event, Mechanism, Message, SocketType};

type VerdictFn = Box<dyn Fn(&zmtp_core::AuthRequest) -> AuthVerdict>;

pub(crate) struct Side {
    pub(crate) conn: Connection,
    pub(crate) events: Vec<Event>,
    pub(crate) error: Option<Error>,
    pub(crate) verdict: Option<VerdictFn>,
}

impl Side {
    pub(crate) fn new(t: SocketType, m: impl Mechanism + 'static) -> Side {
        Side {
            conn: Connection::new(Config::new(t), Box::new(m), Instant::now()),
            events: Vec::new(),
            error: None,
            verdict: None,
        }
    }

    pub(crate) fn with_verdict(
        mut self,
        f: impl Fn(&zmtp_core::AuthRequest) -> AuthVerdict + 'static,
    ) -> Side {
        self.verdict = Some(Box::new(f));
        self
    }

    fn take_output(&mut self) -> Vec<u8> {
        let Ok(enc) = self.conn.output() else {
            return Vec::new();
        };
        enc.take_all()
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.conn.recv_buffer().extend_from_slice(bytes);
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

    pub(crate) fn ready(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::HandshakeSucceeded(_)))
    }

    pub(crate) fn messages(&self) -> Vec<&Message> {
        self.events
            .iter()
            .filter_map(|e| {
                if let Event::Message(m) = e {
                    Some(m)
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Pumps until quiet. `tamper` may change bytes from a to b.
pub(crate) fn pump(a: &mut Side, b: &mut Side) {
    pump_with(a, b, |_| {});
}

pub(crate) fn pump_with(a: &mut Side, b: &mut Side, mut tamper: impl FnMut(&mut Vec<u8>)) {
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

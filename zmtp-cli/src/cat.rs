//! `zmtp <TYPE>`: cat-style sockets.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_sockets::{Context, Error, Message, MonitorEvent, Socket, SocketType};

use crate::security::SecurityArgs;

/// Options of the socket commands.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Bind to an endpoint (repeatable), e.g. tcp://*:5555 or ipc:///tmp/s.
    #[arg(long, value_name = "EP")]
    bind: Vec<String>,
    /// Connect to an endpoint (repeatable).
    #[arg(long, value_name = "EP")]
    connect: Vec<String>,
    /// Frame separator within a line; the two characters \t mean TAB.
    #[arg(long, value_name = "STR", default_value = "\\t")]
    sep: String,
    /// Frames are hex-encoded on input and output.
    #[arg(long)]
    hex: bool,
    /// REP, ROUTER: send each message received back unchanged.
    #[arg(long)]
    echo: bool,
    /// PUB, XPUB: wait for N subscriptions before reading stdin.
    #[arg(long, value_name = "N")]
    wait_subscribers: Option<usize>,
    /// SUB, XSUB: subscribe to a prefix (repeatable; none subscribes to
    /// all).
    #[arg(long, value_name = "PREFIX")]
    subscribe: Vec<String>,
    /// REQ, DEALER, ROUTER: our routing id, sent to ROUTER peers.
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    routing_id: Option<String>,
    /// ROUTER: a message for an unknown routing id is an error (exit 1),
    /// not dropped.
    #[arg(long)]
    router_mandatory: bool,
    /// XPUB: print every subscription, duplicates included.
    #[arg(long)]
    xpub_verbose: bool,
    /// Exit 0 after N messages received, replies printed, replies sent or
    /// messages sent.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Senders wait this long at end of input for queued messages.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    linger_ms: u64,
    /// Bound on the whole run, from process start.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print every monitor event, not only failures.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    security: SecurityArgs,
}

/// The socket commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Req,
    Rep,
    Pub,
    Sub,
    Push,
    Pull,
    Dealer,
    Router,
    Pair,
    XPub,
    XSub,
}

impl Kind {
    fn socket_type(self) -> SocketType {
        match self {
            Kind::Req => SocketType::Req,
            Kind::Rep => SocketType::Rep,
            Kind::Pub => SocketType::Pub,
            Kind::Sub => SocketType::Sub,
            Kind::Push => SocketType::Push,
            Kind::Pull => SocketType::Pull,
            Kind::Dealer => SocketType::Dealer,
            Kind::Router => SocketType::Router,
            Kind::Pair => SocketType::Pair,
            Kind::XPub => SocketType::XPub,
            Kind::XSub => SocketType::XSub,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Req => "req",
            Kind::Rep => "rep",
            Kind::Pub => "pub",
            Kind::Sub => "sub",
            Kind::Push => "push",
            Kind::Pull => "pull",
            Kind::Dealer => "dealer",
            Kind::Router => "router",
            Kind::Pair => "pair",
            Kind::XPub => "xpub",
            Kind::XSub => "xsub",
        }
    }
}

/// Refuses a flag the command would not apply: exit 2, naming both.
fn check_flags(kind: Kind, a: &Args) {
    use Kind::*;
    let flags: [(&str, bool, &[Kind]); 6] = [
        ("--echo", a.echo, &[Rep, Router]),
        (
            "--wait-subscribers",
            a.wait_subscribers.is_some(),
            &[Pub, XPub],
        ),
        ("--subscribe", !a.subscribe.is_empty(), &[Sub, XSub]),
        (
            "--routing-id",
            a.routing_id.is_some(),
            &[Req, Dealer, Router],
        ),
        ("--router-mandatory", a.router_mandatory, &[Router]),
        ("--xpub-verbose", a.xpub_verbose, &[XPub]),
    ];
    for (flag, given, kinds) in flags {
        if given && !kinds.contains(&kind) {
            crate::die(
                2,
                format_args!("{flag} does not apply to `zmtp {}`", kind.name()),
            );
        }
    }
}

struct Run {
    sep: Vec<u8>,
    hex: bool,
    deadline: Option<Instant>,
    count: Option<u64>,
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

impl Run {
    fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The exit code when the deadline passes.
    fn timed_out(&self) -> i32 {
        if self.count.is_some() { 3 } else { 0 }
    }

    fn parse_line(&self, mut line: Vec<u8>) -> Message {
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let mut frames = Vec::new();
        let mut rest = &line[..];
        loop {
            let pos = if self.sep.is_empty() {
                None
            } else {
                rest.windows(self.sep.len())
                    .position(|w| w == &self.sep[..])
            };
            let (frame, next) = match pos {
                Some(p) => (&rest[..p], Some(&rest[p + self.sep.len()..])),
                None => (rest, None),
            };
            let frame = if self.hex {
                hex_decode(frame).unwrap_or_else(|| crate::die(2, "invalid hex input"))
            } else {
                frame.to_vec()
            };
            frames.push(Bytes::from(frame));
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
        Message::from(frames)
    }

    fn print_as(&self, out: &mut impl Write, msg: &Message, format: Format) {
        if format == Format::Subscriptions
            && !self.hex
            && let [f] = msg.frames()
        {
            let sign = match f.first() {
                Some(1) => Some(b'+'),
                Some(0) => Some(b'-'),
                _ => None,
            };
            if let Some(sign) = sign {
                let mut line = vec![sign];
                line.extend_from_slice(&f[1..]);
                line.push(b'\n');
                if out.write_all(&line).and_then(|_| out.flush()).is_err() {
                    crate::exit(0);
                }
                return;
            }
        }
        self.print(out, msg);
    }

    fn print(&self, out: &mut impl Write, msg: &Message) {
        let mut line = Vec::new();
        for (i, f) in msg.frames().iter().enumerate() {
            if i > 0 {
                line.extend_from_slice(&self.sep);
            }
            if self.hex {
                line.extend_from_slice(hex_encode(f).as_bytes());
            } else {
                line.extend_from_slice(f);
            }
        }
        line.push(b'\n');
        if out.write_all(&line).and_then(|_| out.flush()).is_err() {
            crate::exit(0);
        }
    }
}

pub(crate) fn event_line(ev: &MonitorEvent) -> (bool, String) {
    use MonitorEvent as E;
    let (failure, name, peer, reason, status) = match ev {
        E::Listening { .. } => (false, "listening", None, None, None),
        E::BindFailed { reason, .. } => (true, "bind-failed", None, Some(reason.to_string()), None),
        E::Accepted { peer, .. } => (false, "accepted", Some(peer), None, None),
        E::Connected { peer, .. } => (false, "connected", Some(peer), None, None),
        E::ConnectRetried { .. } => (false, "connect-retried", None, None, None),
        E::HandshakeSucceeded { peer, .. } => {
            (false, "handshake-succeeded", Some(peer), None, None)
        }
        E::HandshakeFailed { peer, reason, .. } => {
            use zmtp_sockets::HandshakeFailure as H;
            let (r, s) = match reason {
                H::Auth { status } => ("authentication".to_owned(), Some(*status)),
                H::MechanismMismatch => ("mechanism-mismatch".to_owned(), None),
                H::Protocol(t) => (format!("protocol: {t}"), None),
                H::NoDetail(t) => (format!("closed: {t}"), None),
                _ => ("other".to_owned(), None),
            };
            (true, "handshake-failed", Some(peer), Some(r), s)
        }
        E::ConnectStopped { reason, .. } => (
            true,
            "connect-stopped",
            None,
            Some(reason.to_string()),
            None,
        ),
        E::Refused { peer, reason, .. } => {
            (true, "refused", Some(peer), Some(reason.to_string()), None)
        }
        E::Disconnected { peer, reason, .. } => (
            reason.is_some(),
            "disconnected",
            Some(peer),
            reason.as_ref().map(ToString::to_string),
            None,
        ),
        E::Closed { .. } => (false, "closed", None, None, None),
        _ => (false, "other", None, None, None),
    };
    let mut line = format!("event={name} endpoint={}", ev.endpoint());
    if let Some(p) = peer {
        line.push_str(&format!(" peer={p}"));
    }
    if let Some(r) = reason {
        line.push_str(&format!(" reason={}", r.replace(' ', "_")));
    }
    if let Some(s) = status {
        line.push_str(&format!(" status={s}"));
    }
    (failure, line)
}

pub(crate) fn run(kind: Kind, a: Args) -> i32 {
    let start = Instant::now();
    let ty = kind.socket_type();
    if a.bind.is_empty() && a.connect.is_empty() {
        crate::die(2, "give at least one --bind or --connect");
    }
    check_flags(kind, &a);
    let sep = a.sep.replace("\\t", "\t").into_bytes();
    let run = Run {
        sep,
        hex: a.hex,
        deadline: a.timeout_ms.map(|t| start + Duration::from_millis(t)),
        count: a.count,
    };
    let ctx = Context::new();
    let socket = ctx.socket(ty).unwrap_or_else(|e| crate::die(1, e));
    let mut opts_err = None;
    socket
        .configure(|o| {
            a.security.apply(o);
            o.linger = Some(Duration::from_millis(a.linger_ms));
            if let Some(id) = &a.routing_id {
                o.routing_id = Bytes::from(id.clone().into_bytes());
            }
            o.router_mandatory = a.router_mandatory;
            o.xpub_verbose = a.xpub_verbose;
        })
        .unwrap_or_else(|e| opts_err = Some(e));
    if let Some(e) = opts_err {
        crate::die(2, e);
    }
    let monitor = socket.monitor();
    let verbose = a.verbose;
    // Without a bound endpoint, the run is over once every connect
    // endpoint has stopped (its peer refused us or broke the protocol).
    let mut connecting = if a.bind.is_empty() {
        a.connect.len()
    } else {
        usize::MAX
    };
    std::thread::spawn(move || {
        while let Some(ev) = monitor.next_blocking() {
            let (failure, line) = event_line(&ev);
            if verbose || failure {
                eprintln!("{line}");
            }
            if let MonitorEvent::ConnectStopped { .. } = ev {
                connecting = connecting.saturating_sub(1);
                if connecting == 0 {
                    crate::die(1, "no endpoint left: every connect was refused by its peer");
                }
            }
        }
    });
    match kind {
        Kind::Sub => {
            if a.subscribe.is_empty() {
                socket.subscribe("").unwrap_or_else(|e| crate::die(1, e));
            }
            for p in &a.subscribe {
                socket.subscribe(p).unwrap_or_else(|e| crate::die(1, e));
            }
        }
        Kind::XSub => {
            let prefixes = if a.subscribe.is_empty() {
                vec![String::new()]
            } else {
                a.subscribe.clone()
            };
            for p in prefixes {
                let mut m = vec![1u8];
                m.extend_from_slice(p.as_bytes());
                socket
                    .send_blocking(Message::from(m))
                    .unwrap_or_else(|e| crate::die(1, e));
            }
        }
        _ => {}
    }
    for ep in a.bind.iter().chain(&a.connect) {
        crate::refuse_inproc(ep);
    }
    crate::bind_and_connect(&socket, &a.bind, &a.connect);
    if let Some(n) = a.wait_subscribers
        && !wait_until(&run, || socket.subscription_count() >= n)
    {
        return 3;
    }
    let linger = Duration::from_millis(a.linger_ms);
    let code = match kind {
        Kind::Pull | Kind::Sub => receive_loop(&run, &socket),
        Kind::Push | Kind::Pub => send_loop(&run, &socket, linger),
        Kind::Req => req_loop(&run, &socket),
        Kind::Rep => rep_loop(&run, &socket, a.echo),
        // ROUTER --echo answers as REP --echo does: each message goes back
        // whole (a ROUTER's routing id leads it to its peer).
        Kind::Router if a.echo => rep_loop(&run, &socket, true),
        Kind::Dealer | Kind::Router | Kind::Pair | Kind::XSub => {
            duplex(&run, &socket, Format::Plain, linger)
        }
        Kind::XPub => duplex(&run, &socket, Format::Subscriptions, linger),
    };
    // Do not wait for lingering connections: the code is decided.
    crate::exit(code);
}

fn wait_until(run: &Run, mut f: impl FnMut() -> bool) -> bool {
    loop {
        if f() {
            return true;
        }
        if run.remaining().is_some_and(|r| r.is_zero()) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn set_rcvtimeo(run: &Run, socket: &Socket) {
    let t = run.remaining();
    let _ = socket.configure(|o| o.rcvtimeo = t);
}

fn receive_loop(run: &Run, socket: &Socket) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    loop {
        if run.count.is_some_and(|c| n >= c) {
            return 0;
        }
        set_rcvtimeo(run, socket);
        match socket.recv_blocking() {
            Ok(msg) => {
                run.print(&mut out, &msg);
                n += 1;
            }
            Err(Error::WouldBlock) => return run.timed_out(),
            Err(e) => crate::die(1, e),
        }
    }
}

/// Lines of stdin, read on a thread so that the deadline still applies.
fn stdin_lines() -> async_channel_lite::Receiver {
    async_channel_lite::spawn()
}

mod async_channel_lite {
    //! A line reader on its own thread, with a receive timeout.
    use std::io::BufRead;
    use std::sync::mpsc;
    use std::time::Duration;

    pub(crate) struct Receiver(mpsc::Receiver<Vec<u8>>);

    pub(crate) fn spawn() -> Receiver {
        let (tx, rx) = mpsc::sync_channel(1024);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut line = Vec::new();
                match lock.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Receiver(rx)
    }

    pub(crate) enum Line {
        Text(Vec<u8>),
        End,
        Timeout,
    }

    impl Receiver {
        pub(crate) fn next(&self, timeout: Option<Duration>) -> Line {
            match timeout {
                None => self.0.recv().map_or(Line::End, Line::Text),
                Some(t) => match self.0.recv_timeout(t) {
                    Ok(l) => Line::Text(l),
                    Err(mpsc::RecvTimeoutError::Timeout) => Line::Timeout,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Line::End,
                },
            }
        }
    }
}

use async_channel_lite::Line;

/// Sends one stdin line within the time left; `Err` carries the exit code
/// for a send that timed out.
fn send_line(run: &Run, socket: &Socket, line: Vec<u8>) -> Result<(), i32> {
    let msg = run.parse_line(line);
    let t = run.remaining();
    let _ = socket.configure(|o| o.sndtimeo = t);
    match socket.send_blocking(msg) {
        Ok(()) => Ok(()),
        Err(Error::WouldBlock) => Err(run.timed_out()),
        Err(e) => crate::die(1, e),
    }
}

fn send_loop(run: &Run, socket: &Socket, linger: Duration) -> i32 {
    let lines = stdin_lines();
    let mut n = 0;
    loop {
        if run.count.is_some_and(|c| n >= c) {
            break;
        }
        match lines.next(run.remaining()) {
            Line::Text(l) => match send_line(run, socket, l) {
                Ok(()) => n += 1,
                Err(code) => return code,
            },
            Line::End => break,
            Line::Timeout => return run.timed_out(),
        }
    }
    let wait = run.remaining().map_or(linger, |r| r.min(linger));
    let unsent = socket.flush_blocking(wait);
    if unsent > 0 {
        eprintln!("unsent: {unsent}");
        return 4;
    }
    0
}

fn req_loop(run: &Run, socket: &Socket) -> i32 {
    let lines = stdin_lines();
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    loop {
        if run.count.is_some_and(|c| n >= c) {
            return 0;
        }
        let line = match lines.next(run.remaining()) {
            Line::Text(l) => l,
            Line::End => return 0,
            Line::Timeout => return run.timed_out(),
        };
        let t = run.remaining();
        let _ = socket.configure(|o| o.sndtimeo = t);
        match socket.send_blocking(run.parse_line(line)) {
            Ok(()) => {}
            Err(Error::WouldBlock) => return run.timed_out(),
            Err(e) => crate::die(1, e),
        }
        set_rcvtimeo(run, socket);
        match socket.recv_blocking() {
            Ok(msg) => {
                run.print(&mut out, &msg);
                n += 1;
            }
            Err(Error::WouldBlock) => return run.timed_out(),
            Err(e) => crate::die(1, e),
        }
    }
}

fn rep_loop(run: &Run, socket: &Socket, echo: bool) -> i32 {
    let lines = if echo { None } else { Some(stdin_lines()) };
    let mut n = 0;
    loop {
        if run.count.is_some_and(|c| n >= c) {
            // Let the last reply reach the kernel.
            socket.flush_blocking(run.remaining().unwrap_or(Duration::from_secs(5)));
            return 0;
        }
        set_rcvtimeo(run, socket);
        let request = match socket.recv_blocking() {
            Ok(m) => m,
            Err(Error::WouldBlock) => return run.timed_out(),
            Err(e) => crate::die(1, e),
        };
        let reply = match &lines {
            None => request,
            Some(lines) => match lines.next(run.remaining()) {
                Line::Text(l) => run.parse_line(l),
                Line::End => return 0,
                Line::Timeout => return run.timed_out(),
            },
        };
        if let Err(e) = socket.send_blocking(reply) {
            crate::die(1, e);
        }
        n += 1;
    }
}

/// How received messages are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Frames as they are.
    Plain,
    /// XPUB: a subscription as `+prefix` and a cancel as `-prefix` (with
    /// --hex, the leading 0x01 or 0x00 byte is printed in hex instead).
    Subscriptions,
}

/// Sends each stdin line and prints each message received, at the same
/// time (DEALER, ROUTER, PAIR, XPUB, XSUB). With --count, ends once N
/// messages were received and stdin has ended (its messages written within
/// the linger: 4 if some are not); otherwise at --timeout-ms.
fn duplex(run: &Run, socket: &Socket, format: Format, linger: Duration) -> i32 {
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let lines = stdin_lines();
            loop {
                match lines.next(run.remaining()) {
                    Line::Text(l) => {
                        if let Err(code) = send_line(run, socket, l) {
                            crate::exit(code);
                        }
                    }
                    Line::End => break,
                    Line::Timeout => crate::exit(run.timed_out()),
                }
            }
            let wait = run.remaining().map_or(linger, |r| r.min(linger));
            socket.flush_blocking(wait)
        });
        let mut out = std::io::stdout().lock();
        let mut n = 0;
        loop {
            if run.count.is_some_and(|c| n >= c) {
                break;
            }
            set_rcvtimeo(run, socket);
            match socket.recv_blocking() {
                Ok(msg) => {
                    run.print_as(&mut out, &msg, format);
                    n += 1;
                }
                Err(Error::WouldBlock) => crate::exit(run.timed_out()),
                Err(e) => crate::die(1, e),
            }
        }
        match sender.join() {
            Ok(0) => 0,
            Ok(unsent) => {
                eprintln!("unsent: {unsent}");
                4
            }
            Err(_) => 1,
        }
    })
}

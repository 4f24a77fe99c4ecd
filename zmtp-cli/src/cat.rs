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
    /// REP: reply with each request unchanged.
    #[arg(long)]
    echo: bool,
    /// PUB: wait for N subscriptions before reading stdin.
    #[arg(long, value_name = "N")]
    wait_subscribers: Option<usize>,
    /// SUB: subscribe to a prefix (repeatable; none subscribes to all).
    #[arg(long, value_name = "PREFIX")]
    subscribe: Vec<String>,
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
    if s.len() % 2 != 0 {
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
            std::process::exit(0);
        }
    }
}

fn event_line(ev: &MonitorEvent) -> (bool, String) {
    use MonitorEvent as E;
    let (failure, name, peer, reason, status) = match ev {
        E::Listening { .. } => (false, "listening", None, None, None),
        E::BindFailed { reason, .. } => (true, "bind-failed", None, Some(reason.clone()), None),
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
        E::Disconnected { peer, reason, .. } => (
            reason.is_some(),
            "disconnected",
            Some(peer),
            reason.clone(),
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

pub(crate) fn run(ty: SocketType, a: Args) -> i32 {
    let start = Instant::now();
    if a.bind.is_empty() && a.connect.is_empty() {
        crate::die(2, "give at least one --bind or --connect");
    }
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
        })
        .unwrap_or_else(|e| opts_err = Some(e));
    if let Some(e) = opts_err {
        crate::die(2, e);
    }
    let monitor = socket.monitor();
    let verbose = a.verbose;
    std::thread::spawn(move || {
        while let Some(ev) = monitor.next_blocking() {
            let (failure, line) = event_line(&ev);
            if verbose || failure {
                eprintln!("{line}");
            }
        }
    });
    if ty == SocketType::Sub {
        if a.subscribe.is_empty() {
            socket.subscribe("").unwrap_or_else(|e| crate::die(1, e));
        }
        for p in &a.subscribe {
            socket.subscribe(p).unwrap_or_else(|e| crate::die(1, e));
        }
    }
    for ep in &a.bind {
        match socket.bind(ep) {
            Ok(bound) => eprintln!("listening {bound}"),
            Err(Error::Endpoint(e)) => crate::die(2, format_args!("bad endpoint {e}")),
            Err(e) => crate::die(1, format_args!("bind {ep}: {e}")),
        }
    }
    for ep in &a.connect {
        match socket.connect(ep) {
            Ok(()) => {}
            Err(Error::Endpoint(e)) => crate::die(2, format_args!("bad endpoint {e}")),
            Err(e) => crate::die(1, format_args!("connect {ep}: {e}")),
        }
    }
    let code = match ty {
        SocketType::Pull | SocketType::Sub => receive_loop(&run, &socket),
        SocketType::Push | SocketType::Pub => {
            if let Some(n) = a.wait_subscribers {
                let ok = wait_until(&run, || socket.subscription_count() >= n);
                if !ok {
                    return 3;
                }
            }
            send_loop(&run, &socket, Duration::from_millis(a.linger_ms))
        }
        SocketType::Req => req_loop(&run, &socket),
        SocketType::Rep => rep_loop(&run, &socket, a.echo),
        _ => crate::die(2, "unsupported socket type"),
    };
    // Do not wait for lingering connections: the code is decided.
    std::process::exit(code);
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

fn send_loop(run: &Run, socket: &Socket, linger: Duration) -> i32 {
    let lines = stdin_lines();
    let mut n = 0;
    loop {
        if run.count.is_some_and(|c| n >= c) {
            break;
        }
        match lines.next(run.remaining()) {
            Line::Text(l) => {
                let msg = run.parse_line(l);
                let t = run.remaining();
                let _ = socket.configure(|o| o.sndtimeo = t);
                match socket.send_blocking(msg) {
                    Ok(()) => n += 1,
                    Err(Error::WouldBlock) => return run.timed_out(),
                    Err(e) => crate::die(1, e),
                }
            }
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

//! The `zmtp` command-line tool.
//!
//! - `zmtp keygen`: a fresh X25519 key pair in Z85 (CURVE and NOISE).
//! - `zmtp <TYPE> --bind/--connect ...`: cat-style sockets for scripts and
//!   other languages' test suites: stdin lines become messages, received
//!   messages become stdout lines.
//! - `zmtp proxy`: a broker or forwarder between two sockets.
//! - `zmtp bench`: throughput, latency and the application thread's CPU per
//!   send, with both ends in one process.
//!
//! Exit codes: 0 done; 1 runtime failure; 2 bad arguments or keys; 3
//! `--count` not reached within `--timeout-ms`; 4 messages unsent at linger
//! expiry.

mod bench;
mod cat;
mod keygen;
mod pin;
mod probe;
mod proxy;
mod security;
mod tally;

use clap::{Parser, Subcommand};
use zmtp_sockets::{Error, Socket};

/// ZeroMQ (ZMTP 3.1) sockets from the shell, in pure Rust.
#[derive(Parser, Debug)]
#[command(
    name = "zmtp",
    version,
    about,
    after_help = "Exit codes: 0 done (or --timeout-ms reached without --count); 1 runtime \
failure (a bind failed, every connect was refused by its peer, a socket error); 2 bad \
arguments, keys or endpoints; 3 --count not reached within --timeout-ms; 4 messages still \
unsent when the linger ran out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a fresh X25519 key pair in Z85.
    Keygen(keygen::Args),
    /// A REQ socket: sends each stdin line, prints each reply.
    Req(cat::Args),
    /// A REP socket: answers with --echo or with stdin lines.
    Rep(cat::Args),
    /// A PUB socket: publishes each stdin line.
    Pub(cat::Args),
    /// A SUB socket: prints what matches its subscriptions.
    Sub(cat::Args),
    /// A PUSH socket: sends each stdin line.
    Push(cat::Args),
    /// A PULL socket: prints each message.
    Pull(cat::Args),
    /// A DEALER socket: sends each stdin line and prints each message
    /// received, at the same time.
    Dealer(cat::Args),
    /// A ROUTER socket: prints each message with its peer's routing id as
    /// the first frame, and sends each stdin line to the peer its first
    /// frame names (or, with --echo, sends every message back).
    Router(cat::Args),
    /// A PAIR socket: sends each stdin line and prints each message.
    Pair(cat::Args),
    /// An XPUB socket: publishes each stdin line and prints each
    /// subscription (+prefix) and cancel (-prefix) it receives.
    Xpub(cat::Args),
    /// An XSUB socket: subscribes with --subscribe, sends each stdin line
    /// upstream, and prints every message it receives.
    Xsub(cat::Args),
    /// A proxy between two sockets (zmq_proxy): a broker (router/dealer),
    /// a forwarder (xsub/xpub) or a streamer (pull/push). Security flags
    /// apply to the frontend.
    Proxy(proxy::Args),
    /// Measure throughput and latency.
    Bench(bench::Args),
}

/// The socket files of the ipc endpoints this process bound.
static IPC_FILES: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Binds `socket` to `endpoint`; an ipc endpoint's socket file is noted
/// for [`exit`] to remove. The endpoint as bound.
pub(crate) fn bind(socket: &Socket, endpoint: &str) -> zmtp_sockets::Result<String> {
    let bound = socket.bind(endpoint)?;
    if let Some(path) = bound.strip_prefix("ipc://") {
        IPC_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.into());
    }
    Ok(bound)
}

/// Binds and connects a command's socket, printing a `listening` line per
/// bound endpoint; ends the process on a bad endpoint (exit 2) or a
/// failure (exit 1).
pub(crate) fn bind_and_connect(socket: &Socket, binds: &[String], connects: &[String]) {
    for ep in binds {
        match bind(socket, ep) {
            Ok(bound) => eprintln!("listening {bound}"),
            Err(Error::Endpoint(e)) => die(2, format_args!("bad endpoint {e}")),
            Err(e) => die(1, format_args!("bind {ep}: {e}")),
        }
    }
    for ep in connects {
        match socket.connect(ep) {
            Ok(()) => {}
            Err(Error::Endpoint(e)) => die(2, format_args!("bad endpoint {e}")),
            Err(e) => die(1, format_args!("connect {ep}: {e}")),
        }
    }
}

/// Ends the process. A closed socket removes the socket files of its ipc
/// endpoints, but the process ends without closing its sockets (a
/// lingering connection must not hold up an exit code already decided),
/// so the files are removed here, as a closed socket would have.
pub(crate) fn exit(code: i32) -> ! {
    for path in IPC_FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        let _ = std::fs::remove_file(path);
    }
    std::process::exit(code)
}

/// Ends the process with a message on stderr, prefixed `error:` as clap's
/// own are, whatever the exit code.
pub(crate) fn die(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    exit(code)
}

/// Refuses an inproc endpoint (exit 2): it reaches sockets of the same
/// process only, and the command's sockets have no other to pair with, so
/// it would be accepted and never connect.
pub(crate) fn refuse_inproc(ep: &str) {
    if ep.starts_with("inproc://") {
        die(
            2,
            format_args!(
                "{ep}: inproc reaches sockets of one process only; from the command line use tcp:// or ipc://"
            ),
        );
    }
}

fn main() {
    let cli = Cli::parse();
    use cat::Kind as K;
    let code = match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Req(a) => cat::run(K::Req, a),
        Command::Rep(a) => cat::run(K::Rep, a),
        Command::Pub(a) => cat::run(K::Pub, a),
        Command::Sub(a) => cat::run(K::Sub, a),
        Command::Push(a) => cat::run(K::Push, a),
        Command::Pull(a) => cat::run(K::Pull, a),
        Command::Dealer(a) => cat::run(K::Dealer, a),
        Command::Router(a) => cat::run(K::Router, a),
        Command::Pair(a) => cat::run(K::Pair, a),
        Command::Xpub(a) => cat::run(K::XPub, a),
        Command::Xsub(a) => cat::run(K::XSub, a),
        Command::Proxy(a) => proxy::run(a),
        Command::Bench(a) => bench::run(a),
    };
    exit(code);
}

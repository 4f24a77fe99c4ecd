//! The `zmtp` command-line tool.
//!
//! - `zmtp keygen`: a fresh X25519 key pair in Z85 (CURVE and NOISE).
//! - `zmtp <TYPE> --bind/--connect ...`: cat-style sockets for scripts and
//!   other languages' test suites: stdin lines become messages, received
//!   messages become stdout lines.
//! - `zmtp bench`: throughput, latency and the application thread's CPU per
//!   send, with both ends in one process.
//!
//! Exit codes: 0 done; 1 runtime failure; 2 bad arguments or keys; 3
//! `--count` not reached within `--timeout-ms`; 4 messages unsent at linger
//! expiry.

mod bench;
mod cat;
mod keygen;
mod probe;
mod security;

use clap::{Parser, Subcommand};

/// ZeroMQ (ZMTP 3.1) sockets from the shell, in pure Rust.
#[derive(Parser, Debug)]
#[command(name = "zmtp", version, about)]
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
    /// Measure throughput and latency.
    Bench(bench::Args),
}

/// Ends the process with a message on stderr.
pub(crate) fn die(code: i32, msg: impl std::fmt::Display) -> ! {
    if code == 2 {
        eprintln!("error: {msg}");
    } else {
        eprintln!("zmtp: {msg}");
    }
    std::process::exit(code)
}

fn main() {
    let cli = Cli::parse();
    use zmtp_sockets::SocketType as T;
    let code = match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Req(a) => cat::run(T::Req, a),
        Command::Rep(a) => cat::run(T::Rep, a),
        Command::Pub(a) => cat::run(T::Pub, a),
        Command::Sub(a) => cat::run(T::Sub, a),
        Command::Push(a) => cat::run(T::Push, a),
        Command::Pull(a) => cat::run(T::Pull, a),
        Command::Bench(a) => bench::run(a),
    };
    std::process::exit(code);
}

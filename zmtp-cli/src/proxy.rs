//! `zmtp proxy`: a broker or forwarder between two sockets, as
//! `zmq_proxy`.

use std::time::{Duration, Instant};

use zmtp_sockets::{Context, Error, Socket, SocketType};

use crate::security::SecurityArgs;

/// Options of `zmtp proxy`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The frontend's socket type (router, xsub, pull, …).
    #[arg(long, value_name = "TYPE")]
    frontend: String,
    /// Bind the frontend to an endpoint (repeatable).
    #[arg(long, value_name = "EP")]
    frontend_bind: Vec<String>,
    /// Connect the frontend to an endpoint (repeatable).
    #[arg(long, value_name = "EP")]
    frontend_connect: Vec<String>,
    /// The backend's socket type (dealer, xpub, push, …).
    #[arg(long, value_name = "TYPE")]
    backend: String,
    /// Bind the backend to an endpoint (repeatable).
    #[arg(long, value_name = "EP")]
    backend_bind: Vec<String>,
    /// Connect the backend to an endpoint (repeatable).
    #[arg(long, value_name = "EP")]
    backend_connect: Vec<String>,
    /// A PUB socket bound here gets a copy of every message moved.
    #[arg(long, value_name = "EP")]
    capture_bind: Option<String>,
    /// How long queued messages are still sent when the proxy stops.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    linger_ms: u64,
    /// Stop after this long (exit 0); without it the proxy runs until
    /// killed.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print every monitor event, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Security of the frontend (the backend runs NULL).
    #[command(flatten)]
    security: SecurityArgs,
}

fn socket_type(flag: &str, name: &str) -> SocketType {
    SocketType::from_name(name.as_bytes())
        .unwrap_or_else(|| crate::die(2, format_args!("{flag}: unknown socket type {name}")))
}

/// A socket of the proxy: made, configured, monitored (its events printed
/// with its role), bound and connected.
fn side(
    ctx: &Context,
    role: &str,
    t: SocketType,
    binds: &[String],
    connects: &[String],
    a: &Args,
    secure: bool,
) -> Socket {
    if binds.is_empty() && connects.is_empty() {
        crate::die(2, format_args!("give --{role}-bind or --{role}-connect"));
    }
    let s = ctx.socket(t).unwrap_or_else(|e| crate::die(2, e));
    let mut err = None;
    s.configure(|o| {
        if secure {
            a.security.apply(o);
        }
        o.linger = Some(Duration::from_millis(a.linger_ms));
    })
    .unwrap_or_else(|e| err = Some(e));
    if let Some(e) = err {
        crate::die(2, e);
    }
    let monitor = s.monitor();
    let (verbose, role_name) = (a.verbose, role.to_owned());
    std::thread::spawn(move || {
        while let Some(ev) = monitor.next_blocking() {
            let (failure, line) = crate::cat::event_line(&ev);
            if verbose || failure {
                eprintln!("{line} socket={role_name}");
            }
        }
    });
    crate::bind_and_connect(&s, binds, connects);
    s
}

pub(crate) fn run(a: Args) -> i32 {
    let start = Instant::now();
    for ep in a
        .frontend_bind
        .iter()
        .chain(&a.frontend_connect)
        .chain(&a.backend_bind)
        .chain(&a.backend_connect)
        .chain(&a.capture_bind)
    {
        crate::refuse_inproc(ep);
    }
    let (ft, bt) = (
        socket_type("--frontend", &a.frontend),
        socket_type("--backend", &a.backend),
    );
    let ctx = Context::new();
    let frontend = side(
        &ctx,
        "frontend",
        ft,
        &a.frontend_bind,
        &a.frontend_connect,
        &a,
        true,
    );
    let backend = side(
        &ctx,
        "backend",
        bt,
        &a.backend_bind,
        &a.backend_connect,
        &a,
        false,
    );
    let capture = a.capture_bind.as_ref().map(|ep| {
        side(
            &ctx,
            "capture",
            SocketType::Pub,
            std::slice::from_ref(ep),
            &[],
            &a,
            false,
        )
    });
    if let Some(t) = a.timeout_ms {
        // The run's bound, from process start: then exit 0.
        let deadline = start + Duration::from_millis(t);
        std::thread::spawn(move || {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            crate::exit(0);
        });
    }
    match zmtp_sockets::proxy_blocking(&frontend, &backend, capture.as_ref()) {
        Ok(()) | Err(Error::Closed) => 0,
        Err(e) => crate::die(1, e),
    }
}

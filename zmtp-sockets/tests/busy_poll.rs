//! I/O threads poll for a bounded time after running out of work, then
//! sleep: an idle context costs no CPU. Alone in its own test process, so
//! that every `zmtp-io-*` thread is this test's own.
#![cfg(target_os = "linux")]

use std::time::Duration;

use zmtp_sockets::{Context, Socket, SocketType};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The tests measure every I/O thread of the process: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Time on a CPU of every I/O thread of this process, in nanoseconds
/// (`/proc/self/task/*/schedstat`).
fn io_thread_cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("zmtp-io-") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// A context with two I/O threads and the given polling budget, and a
/// PUSH connected to a PULL in it, over tcp.
fn push_pull(busy_poll: Duration) -> (Context, Socket, Socket) {
    let ctx = Context::builder()
        .io_threads(2)
        .busy_poll(busy_poll)
        .build();
    let pull = ctx.socket(SocketType::Pull).expect("pull");
    let push = ctx.socket(SocketType::Push).expect("push");
    pull.configure(|o| o.rcvtimeo = Some(TIMEOUT))
        .expect("options");
    let ep = pull.bind("tcp://127.0.0.1:0").expect("bind");
    push.connect(&ep).expect("connect");
    (ctx, push, pull)
}

fn idle_cpu_after_traffic(busy_poll: Duration) -> Duration {
    let (ctx, push, pull) = push_pull(busy_poll);
    for i in 0..100u32 {
        push.send_blocking(i.to_be_bytes().to_vec()).expect("send");
        assert_eq!(
            pull.recv_blocking().expect("recv").frames(),
            &[i.to_be_bytes().to_vec()]
        );
    }
    // Traffic has ended; whatever the threads do now is their idle cost.
    let before = io_thread_cpu_ns();
    std::thread::sleep(Duration::from_millis(500));
    let spent = io_thread_cpu_ns() - before;
    ctx.term();
    Duration::from_nanos(spent)
}

/// I/O thread CPU per wall-clock time while a message goes every 200 µs,
/// longer than the polling budgets used here: polling never catches the
/// next message.
fn cpu_share_under_paced_traffic(busy_poll: Duration) -> f64 {
    let (ctx, push, pull) = push_pull(busy_poll);
    push.send_blocking(vec![0u8]).expect("send");
    pull.recv_blocking().expect("first message");
    let (before, start) = (io_thread_cpu_ns(), std::time::Instant::now());
    for i in 0..1500u32 {
        // Pacing, not waiting for an event: the gap is what is measured.
        std::thread::sleep(Duration::from_micros(200));
        push.send_blocking(i.to_be_bytes().to_vec()).expect("send");
        assert_eq!(
            pull.recv_blocking().expect("recv").frames(),
            &[i.to_be_bytes().to_vec()]
        );
    }
    let share = (io_thread_cpu_ns() - before) as f64 / start.elapsed().as_nanos() as f64;
    ctx.term();
    share
}

#[test]
fn paced_traffic_does_not_keep_io_threads_polling() {
    // A budget of 150 µs, polled in full after each message, would cost each
    // of the two threads about half a core more than sleeping at once; the
    // adapted budget, a few percent.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let base = cpu_share_under_paced_traffic(Duration::ZERO);
    let share = cpu_share_under_paced_traffic(Duration::from_micros(150));
    assert!(
        share < base + 0.15,
        "I/O threads used {:.0} % of a core, {:.0} % without polling",
        share * 100.0,
        base * 100.0
    );
}

#[test]
fn idle_io_threads_stop_polling_and_sleep() {
    // Two I/O threads over half a second: polling without end would take
    // about a second of CPU; each thread polls at most `busy_poll` after
    // its last work, then sleeps.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for busy_poll in [Duration::ZERO, zmtp_sockets::DEFAULT_BUSY_POLL] {
        let spent = idle_cpu_after_traffic(busy_poll);
        assert!(
            spent < Duration::from_millis(50),
            "busy_poll {busy_poll:?}: I/O threads used {spent:?} of CPU while idle"
        );
    }
}

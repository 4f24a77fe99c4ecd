//! Counting what several receiving threads take, for the benchmarks (used
//! by `zmtp bench` and, through a path, by `zmtp-compare`'s libzmq side,
//! so that both stacks are counted alike).

use std::time::{Duration, Instant};

/// How many messages several receiving threads took between them, and
/// when the last arrived. Each thread counts on its own and adds its count
/// to the shared one once per [`Tally::BATCH`] messages, and reads the
/// clock only then and over its last messages: an atomic addition that the
/// threads share, and a read of the clock, each cost as much as a small
/// message, which the harness would otherwise add to every message.
#[derive(Default)]
pub(crate) struct Tally {
    total: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Tally {
    /// Messages a thread counts between additions to the shared count.
    const BATCH: u64 = 256;

    /// Receives with `recv` (false: it timed out or failed) until the
    /// `threads` have `count` messages between them, or 60 s have passed.
    /// A thread reads the clock at each of its last [`Tally::BATCH`]
    /// messages before its share of `count`, and at every message after.
    pub(crate) fn receive(&self, count: u64, threads: usize, mut recv: impl FnMut() -> bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let deadline = Instant::now() + Duration::from_secs(60);
        let near_end = (count / threads.max(1) as u64).saturating_sub(Self::BATCH);
        let (mut mine, mut seen) = (0, 0);
        let mut last = None;
        loop {
            let got = recv();
            if got {
                mine += 1;
                seen += 1;
                if seen >= near_end || mine == Self::BATCH {
                    last = Some(Instant::now());
                }
            }
            // A full batch, or a quiet spell (the last messages may be
            // in): publish this thread's count, and see whether all are.
            if mine == Self::BATCH || (!got && mine > 0) {
                self.total.fetch_add(mine, Relaxed);
                mine = 0;
            }
            if mine == 0 && (self.total.load(Relaxed) >= count || Instant::now() >= deadline) {
                break;
            }
        }
        let mut g = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *g = (*g).max(last);
    }

    /// How many messages the threads took.
    pub(crate) fn received(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the last message arrived (none before the first).
    pub(crate) fn last(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

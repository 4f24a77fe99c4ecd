//! The locks of the message path: a pipe's queue, the inbox's two sides
//! and the socket's state, each held for a few dozen instructions (a push,
//! a pop, a swap of buffers, a routing decision).
//!
//! A standard `Mutex` costs two atomic read-modify-writes per use: the
//! compare-and-swap that takes it and the swap that releases it (the swap
//! tells the holder whether a thread sleeps on it). On x86 each is a full
//! barrier, which waits for the stores before it to reach the cache. A
//! message passed three such locks between `send` and `recv` (the socket's
//! state and the pipe's queue as it is sent, the inbox as it is received;
//! a send to a busy connection task now skips the queue's, see
//! `pipe::Channel::Staged`), and each batch two more (the connection
//! tasks' sides). When
//! two threads meet on one, the standard lock spins briefly, then sleeps in
//! the kernel, and the holder's release must enter the kernel to wake it:
//! with the sending thread and its I/O thread on two CPUs, they met on the
//! pipe at nearly every batch.
//!
//! [`Lock`] is released with a plain store, so it keeps no record of
//! waiters and none sleeps in the kernel on it: a thread that finds it
//! held spins for a while, then yields the CPU (to the holder, when the
//! holder was preempted on this CPU), and after [`YIELDS`] yields in a row
//! sleeps [`NAP`] between attempts. The naps bound the CPU a waiter burns
//! behind a holder that cannot run, and let a holder of lower real-time
//! priority than the waiter run at all (a waiter that only yielded would
//! yield to its own priority only, for ever).
//!
//! Measured against the standard lock (`zmtp bench`, whole process CPU per
//! 16-byte message, interleaved runs; the figures are in BENCHMARKS.md):
//! PUSH/PULL with the four threads pinned together 0.88x, pinned apart
//! 0.68x, 32 PUSH into one PULL 0.87x.

use std::time::Duration;

use spin::mutex::{SpinMutex, SpinMutexGuard};

/// How many times a waiter checks the lock, with the CPU's spin hint
/// between checks, before each attempt that yields, as the standard lock
/// spins before it sleeps: a holder running on another CPU releases within
/// that time. With 8, a round trip between REQ and REP (4 threads on 2
/// CPUs, each I/O thread polling for a while before it sleeps) yielded to
/// a polling I/O thread now and then: 4 of 9 runs' median round trip was
/// 36-38 µs, against 21-31 µs with the standard lock (`zmtp bench
/// --pattern req-rep --count 20000`); with 100, level with it.
const SPINS: u32 = 100;

/// How many times in a row a waiter yields the CPU before it naps.
const YIELDS: u32 = 64;

/// How long a waiter sleeps between attempts once it has yielded
/// [`YIELDS`] times in a row.
const NAP: Duration = Duration::from_micros(50);

/// A lock for short critical sections on the message path (see the
/// module's documentation).
#[derive(Default)]
pub(crate) struct Lock<T>(SpinMutex<T>);

/// What [`Lock::lock`] returns: the value, until it is dropped.
pub(crate) type Guard<'a, T> = SpinMutexGuard<'a, T>;

impl<T> Lock<T> {
    /// A lock holding `value`.
    pub(crate) const fn new(value: T) -> Lock<T> {
        Lock(SpinMutex::new(value))
    }

    /// Takes the lock: one compare-and-swap when it is free.
    #[inline(always)]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        match self.0.try_lock() {
            Some(g) => g,
            None => self.contended(),
        }
    }

    /// Takes the lock if it is free, without waiting.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.0.try_lock()
    }

    #[cold]
    #[inline(never)]
    fn contended(&self) -> Guard<'_, T> {
        let mut yields = 0u32;
        loop {
            for _ in 0..SPINS {
                if !self.0.is_locked() {
                    break;
                }
                std::hint::spin_loop();
            }
            if let Some(g) = self.0.try_lock() {
                return g;
            }
            if yields < YIELDS {
                yields += 1;
                std::thread::yield_now();
            } else {
                std::thread::sleep(NAP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn threads_that_meet_on_the_lock_each_get_it_and_lose_no_update() {
        let lock = Arc::new(Lock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a thread panicked");
        }
        assert_eq!(*lock.lock(), 400_000);
    }

    #[test]
    fn a_waiter_behind_a_long_holder_gets_the_lock_once_it_is_released() {
        // Held past the waiter's yields, so that it naps: it still takes
        // the lock once the holder lets go, and sees the holder's write.
        let lock = Arc::new(Lock::new(0u32));
        let held = lock.lock();
        let started = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (lock, started) = (lock.clone(), started.clone());
            std::thread::spawn(move || {
                started.store(true, Ordering::SeqCst);
                *lock.lock()
            })
        };
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let mut held = held;
        *held = 7;
        // Long enough for the waiter to run out of yields.
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert_eq!(waiter.join().expect("the waiter panicked"), 7);
    }
}

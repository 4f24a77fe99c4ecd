//! Waiters that are woken outside the lock that holds their wakers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

/// Tasks and threads waiting for a condition (messages in the inbox, room
/// in a pipe).
///
/// Like an `event_listener::Event`, except that [`Waiters::wake_all`] takes
/// the wakers out and wakes them after releasing its lock: event-listener
/// wakes while holding its list's lock, and the receiving thread, scheduled
/// at once on the other core, then blocked on that lock to see it was
/// notified (a futex wait and wake per message in a request/reply
/// exchange, `perf record -e syscalls:sys_enter_futex`).
#[derive(Default)]
pub(crate) struct Waiters {
    /// Entries in `list`, read without the lock by [`Waiters::wake_all`].
    waiting: AtomicUsize,
    list: Mutex<Vec<(u64, Waker)>>,
    next: AtomicU64,
}

fn lock_list(m: &Mutex<Vec<(u64, Waker)>>) -> MutexGuard<'_, Vec<(u64, Waker)>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Waiters {
    /// How many are registered.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Wakes every waiter. Call it after making the condition true. On an
    /// I/O thread the wake-ups are given when its turn ends (see
    /// [`crate::reactor::wake_after_turn`]); a turn that ran long gives
    /// those kept from before first.
    pub(crate) fn wake_all(&self) {
        crate::reactor::wake_kept_if_late();
        // Pairs with the fence in `Entry::register`: a waiter that
        // registered before looking at the condition, and found it false,
        // is seen here.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut l = lock_list(&self.list);
            self.waiting.store(0, Ordering::SeqCst);
            std::mem::take(&mut *l)
        };
        crate::reactor::wake_after_turn(
            std::ptr::from_ref(self).addr(),
            woken.into_iter().map(|(_, w)| w),
        );
    }
}

/// One waiter's place among the [`Waiters`], removed when it is dropped.
pub(crate) struct Entry<'a> {
    waiters: &'a Waiters,
    id: Option<u64>,
}

impl<'a> Entry<'a> {
    /// A place not yet registered.
    pub(crate) fn new(waiters: &'a Waiters) -> Entry<'a> {
        Entry { waiters, id: None }
    }

    /// Registers (or updates) the waker. Look at the condition again
    /// afterwards: a wake-up in between is not missed.
    pub(crate) fn register(&mut self, waker: &Waker) {
        let mut l = lock_list(&self.waiters.list);
        let existing = self.id.and_then(|id| l.iter_mut().find(|(k, _)| *k == id));
        match existing {
            Some((_, w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
            }
            None => {
                let id = self.waiters.next.fetch_add(1, Ordering::Relaxed);
                l.push((id, waker.clone()));
                self.id = Some(id);
            }
        }
        self.waiters.waiting.store(l.len(), Ordering::SeqCst);
        drop(l);
        fence(Ordering::SeqCst);
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        if self.waiters.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut l = lock_list(&self.waiters.list);
        l.retain(|(k, _)| *k != id);
        self.waiters.waiting.store(l.len(), Ordering::SeqCst);
    }
}

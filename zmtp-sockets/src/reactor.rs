//! Readiness for the I/O threads, one epoll per thread (Linux).
//!
//! `async-io` has one reactor per process: when several threads run
//! `async_io::block_on`, one of them (or async-io's own helper thread) waits
//! in epoll for all of them and hands each event to its owner with a futex
//! wake. Every message of a request/reply then crossed one more thread than
//! it had to. Here, as in libzmq, each I/O thread waits in its own epoll for
//! the streams of its own connection tasks.
//!
//! Interest is one-shot and re-armed by each wait that would block, so the
//! kernel looks at the stream's state again at every wait and no readiness
//! can be missed. (Edge-triggered registration, tried first, saves that
//! `epoll_ctl` per wait but lost the end of a connection now and then under
//! a connect/disconnect storm: the task then held its descriptor until the
//! handshake deadline.)
//!
//! A timerfd in the same epoll wakes a task at a moment microseconds away
//! ([`wake_at`]). Accepting, connecting and other timers stay on
//! `async-io`; only the streams of established connections use this
//! reactor, and only when their task runs on an I/O thread (elsewhere they
//! fall back to `async-io`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, epoll, eventfd};

/// The epoll data of the thread's wake-up eventfd.
const NOTIFY: u64 = u64::MAX;
/// The epoll data of the thread's timerfd (see [`wake_at`]).
const TIMER: u64 = u64::MAX - 1;

thread_local! {
    static CURRENT: RefCell<Option<Arc<Reactor>>> = const { RefCell::new(None) };
    /// Wake-ups the tasks of this I/O thread asked for (see [`wake_at`]).
    static DUE: RefCell<Vec<(Instant, Waker)>> = const { RefCell::new(Vec::new()) };
    /// Whether this I/O thread sleeps as soon as it is idle (busy polling
    /// off; see [`sleeps_at_once`]).
    static SLEEPS_AT_ONCE: Cell<bool> = const { Cell::new(false) };
    /// Wake-ups many milliseconds away (see [`wake_later`]), and the
    /// earliest of them.
    static LATER: RefCell<Vec<(Instant, Waker)>> = const { RefCell::new(Vec::new()) };
    static NEXT_LATER: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Whether wake-ups are kept for the end of the turn (see
    /// [`wake_after_turn`]): true inside an I/O thread's `block_on`.
    static DEFERS: Cell<bool> = const { Cell::new(false) };
    /// The wake-ups kept until the end of the turn; and when the first of
    /// them was kept and whose they are (see [`wake_after_turn`]'s
    /// `from`), `None` while none are kept.
    static DEFERRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    static KEPT: Cell<Option<(Instant, usize)>> = const { Cell::new(None) };
}

/// The longest a wake-up is kept by [`wake_after_turn`] while the turn
/// goes on (checked at the next wake-up asked for on the thread).
const MAX_DEFER: Duration = Duration::from_micros(50);

/// Wakes `wakers`, the waiters of one condition (`from` tells it from
/// others): on an I/O thread, once the tasks that are ready have all run
/// (the end of the executor's turn), or [`MAX_DEFER`] after the first was
/// kept if the turn goes on; elsewhere at once.
///
/// A receiving thread that sleeps on an empty inbox is woken by the first
/// message of a turn. When a thousand connections each bring a message
/// now and then, the turn has several of them, and a wake-up given at once
/// (a futex wake, and a context switch on each side) woke the receiver for
/// the first only: it took it, slept again and was woken again for the
/// next, a sleep and a wake-up per message (`perf stat -e
/// syscalls:sys_enter_futex` of `zmtp bench --pattern trickle-alone`).
/// Kept to the turn's end, one wake-up carries them all.
///
/// Only one condition's waiters are kept at a time: a wake-up asked for
/// another condition first gives those kept. Waiting gains nothing when each
/// connection of the turn feeds a receiver of its own (PUB to 64
/// subscribers, each on a thread), and those receivers would start late.
pub(crate) fn wake_after_turn(from: usize, wakers: impl Iterator<Item = Waker>) {
    if !DEFERS.with(Cell::get) {
        wakers.for_each(Waker::wake);
        return;
    }
    let kept = KEPT.with(Cell::get);
    let same = kept.is_some_and(|(_, f)| f == from);
    if kept.is_some() && !same {
        wake_kept();
    }
    DEFERRED.with(|d| d.borrow_mut().extend(wakers));
    if !same {
        KEPT.with(|k| k.set(Some((Instant::now(), from))));
    }
}

/// Gives the kept wake-ups if the first was kept more than [`MAX_DEFER`]
/// ago: the turn is a long one (a connection reading on and on, or very
/// many connections with work).
pub(crate) fn wake_kept_if_late() {
    if let Some((since, _)) = KEPT.with(Cell::get)
        && since.elapsed() >= MAX_DEFER
    {
        wake_kept();
    }
}

/// Gives the wake-ups kept by [`wake_after_turn`].
fn wake_kept() {
    if KEPT.with(Cell::take).is_none() {
        return;
    }
    let mut kept = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for w in kept.drain(..) {
        w.wake();
    }
    // The list's memory is kept for the next turn.
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_empty() {
            *d = kept;
        }
    });
}

/// Asks this I/O thread to wake `waker` at `at`, a moment many
/// milliseconds away, give or take a millisecond: unlike [`wake_at`] it
/// does not keep the thread from polling meanwhile; the thread looks at it
/// each time it runs out of work, and sleeps no longer than until then
/// (the sleep's timeout). Each call adds a wake-up, so a task asks again
/// only after the last one came. `false` when this is not an I/O thread: the caller
/// must not count on the wake-up.
pub(crate) fn wake_later(at: Instant, waker: &Waker) -> bool {
    if CURRENT.with(|c| c.borrow().is_none()) {
        return false;
    }
    LATER.with(|l| l.borrow_mut().push((at, waker.clone())));
    NEXT_LATER.with(|n| n.set(Some(n.get().map_or(at, |t| t.min(at)))));
    true
}

/// Wakes the tasks whose [`wake_later`] moment has come.
fn fire_later(now: Instant) {
    let due = LATER.with(|l| {
        let mut l = l.borrow_mut();
        let due = take_due(&mut l, now);
        NEXT_LATER.with(|n| n.set(l.iter().map(|(t, _)| *t).min()));
        due
    });
    due.into_iter().for_each(Waker::wake);
}

/// Takes the wakers whose moment has come out of `list`.
fn take_due(list: &mut Vec<(Instant, Waker)>, now: Instant) -> Vec<Waker> {
    list.extract_if(.., |(t, _)| *t <= now)
        .map(|(_, w)| w)
        .collect()
}

/// Whether this thread is an I/O thread that sleeps as soon as it is idle,
/// without polling first (`ContextBuilder::busy_poll` of zero): each wait
/// for work then costs a sleep and a wake-up.
pub(crate) fn sleeps_at_once() -> bool {
    SLEEPS_AT_ONCE.with(Cell::get)
}

/// Asks this I/O thread to wake `waker` at `at`, a moment a few
/// microseconds away: the thread sleeps until then on its timerfd (an
/// `epoll_wait` timeout counts whole milliseconds) instead of polling.
/// `false` when this is not an I/O thread: the caller must not count on
/// the wake-up.
pub(crate) fn wake_at(at: Instant, waker: &Waker) -> bool {
    if CURRENT.with(|c| c.borrow().is_none()) {
        return false;
    }
    DUE.with(|d| {
        let mut d = d.borrow_mut();
        match d.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(e) => e.0 = e.0.min(at),
            None => d.push((at, waker.clone())),
        }
    });
    true
}

/// The earliest wake-up asked for with [`wake_at`].
fn next_due() -> Option<Instant> {
    DUE.with(|d| d.borrow().iter().map(|(t, _)| *t).min())
}

/// Wakes the tasks whose [`wake_at`] moment has come.
fn fire_due(now: Instant) {
    let due = DUE.with(|d| take_due(&mut d.borrow_mut(), now));
    due.into_iter().for_each(Waker::wake);
}

/// One I/O thread's epoll and the readiness of its streams.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    /// Armed for the earliest [`wake_at`] moment.
    timer: OwnedFd,
    notify: Arc<Notify>,
    sources: Mutex<Sources>,
}

#[derive(Default)]
struct Sources {
    next: u64,
    map: HashMap<u64, Readiness>,
    /// `epoll_ctl` calls made to arm interest (for the tests).
    #[cfg(test)]
    arms: usize,
}

/// Readiness seen since the last wait that consumed it, and who waits.
#[derive(Default)]
struct Readiness {
    readable: bool,
    writable: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The one-shot interest armed in the kernel and not yet fired (an
    /// event disarms it all). A wait whose interest is already armed
    /// makes no system call: a connection task woken for another reason
    /// (a message to send) waited for its socket again at every turn, one
    /// `epoll_ctl` each, three per message with a thousand trickling peers.
    /// Each armed direction has its waker stored (wakers leave only with
    /// an event), so whatever fires wakes the task that re-arms the rest.
    armed: epoll::EventFlags,
}

/// The thread's waker: wakes the thread out of `epoll_wait` only when it
/// sleeps there (one eventfd write), never while it runs.
struct Notify {
    fd: OwnedFd,
    pending: AtomicBool,
    sleeping: AtomicBool,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Sequentially consistent with the thread's `sleeping` store and
        // `pending` load, so that one of the two sides sees the other.
        if !self.pending.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }
}

fn lock(m: &Mutex<Sources>) -> MutexGuard<'_, Sources> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reactor {
    fn new() -> io::Result<Arc<Reactor>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let timer = rustix::time::timerfd_create(
            rustix::time::TimerfdClockId::Monotonic,
            rustix::time::TimerfdFlags::CLOEXEC | rustix::time::TimerfdFlags::NONBLOCK,
        )?;
        // Edge-triggered: every write (every expiry) is an event, so the
        // eventfd's counter is never read back (the timerfd's is, when it
        // is armed again).
        for (source, key) in [(&fd, NOTIFY), (&timer, TIMER)] {
            epoll::add(
                &epoll,
                source,
                epoll::EventData::new_u64(key),
                epoll::EventFlags::IN | epoll::EventFlags::ET,
            )?;
        }
        Ok(Arc::new(Reactor {
            epoll,
            timer,
            notify: Arc::new(Notify {
                fd,
                pending: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
            }),
            sources: Mutex::default(),
        }))
    }

    /// The reactor of the current thread, if it is an I/O thread.
    pub(crate) fn current() -> Option<Arc<Reactor>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Registers a stream for read and write readiness (one-shot).
    pub(crate) fn register(self: &Arc<Self>, fd: BorrowedFd<'_>) -> io::Result<Registration> {
        let key = {
            let mut s = lock(&self.sources);
            let key = s.next;
            s.next += 1;
            s.map.insert(key, Readiness::default());
            key
        };
        // Armed with nobody waiting: the first events fire soon (a new
        // stream is writable) and only set the flags; `armed` stays empty,
        // so the first wait arms what it needs.
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ONESHOT;
        if let Err(e) = epoll::add(&self.epoll, fd, epoll::EventData::new_u64(key), flags) {
            lock(&self.sources).map.remove(&key);
            return Err(e.into());
        }
        Ok(Registration {
            reactor: self.clone(),
            key,
        })
    }

    /// Runs `fut` on this thread until it completes, waiting for I/O in
    /// this thread's own epoll. Falls back to `async_io::block_on` if the
    /// epoll cannot be made.
    pub(crate) fn block_on<T>(fut: impl Future<Output = T>, busy_poll: Duration) -> T {
        let r = match Reactor::new() {
            Ok(r) => r,
            Err(_) => return async_io::block_on(fut),
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(r.clone()));
        SLEEPS_AT_ONCE.with(|s| s.set(busy_poll.is_zero()));
        DEFERS.with(|d| d.set(true));
        let waker = Waker::from(r.notify.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        // Wakers taken out under the lock and woken after it, kept across
        // waits so that a wake-up allocates nothing.
        let mut wake: Vec<Waker> = Vec::new();
        let mut poll = BusyPoll::new(busy_poll);
        // The moment the timerfd is armed for.
        let mut armed: Option<Instant> = None;
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            r.notify.pending.store(false, Ordering::SeqCst);
            let polled = fut.as_mut().poll(&mut cx);
            wake_kept();
            if let Poll::Ready(t) = polled {
                DEFERS.with(|d| d.set(false));
                CURRENT.with(|c| *c.borrow_mut() = None);
                DUE.with(|d| d.borrow_mut().clear());
                LATER.with(|l| l.borrow_mut().clear());
                NEXT_LATER.with(|n| n.set(None));
                SLEEPS_AT_ONCE.with(|s| s.set(false));
                return t;
            }
            events.clear();
            let idle_since = Instant::now();
            if NEXT_LATER.with(Cell::get).is_some_and(|t| t <= idle_since) {
                fire_later(idle_since);
                continue;
            }
            let due = next_due();
            if let Some(d) = due {
                if idle_since >= d {
                    fire_due(idle_since);
                    continue;
                }
                // A task waits for its moment: sleep until then (or until
                // a wake or I/O) rather than poll.
                if armed != Some(d) {
                    r.arm(d - idle_since);
                    armed = Some(d);
                }
            } else if !poll.budget.is_zero() && r.spin(&mut events, &zero, poll.budget) {
                poll.idle(idle_since.elapsed());
                r.dispatch(&events, &mut wake);
                continue;
            }
            r.notify.sleeping.store(true, Ordering::SeqCst);
            // Woken while polling: look for I/O without sleeping. (`events`
            // is empty: cleared above, and a spin that found nothing left
            // nothing in it.) Otherwise sleep until a `wake_later` moment
            // at most (the timerfd keeps `wake_at`'s).
            let later = match NEXT_LATER.with(Cell::get) {
                Some(t) if due.is_none() => {
                    let d = t.saturating_duration_since(Instant::now());
                    Some(rustix::time::Timespec {
                        tv_sec: d.as_secs() as _,
                        tv_nsec: d.subsec_nanos() as _,
                    })
                }
                _ => None,
            };
            let timeout = if r.notify.pending.load(Ordering::SeqCst) {
                Some(&zero)
            } else {
                later.as_ref()
            };
            let _ = epoll::wait(
                &r.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout,
            );
            r.notify.sleeping.store(false, Ordering::SeqCst);
            match due {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        armed = None;
                        fire_due(now);
                    }
                }
                None => poll.idle(idle_since.elapsed()),
            }
            r.dispatch(&events, &mut wake);
        }
    }

    /// Looks for work without sleeping for up to `busy_poll`, yielding
    /// the core between looks; returns whether a task was woken or I/O is
    /// ready (in `events`).
    fn spin(
        &self,
        events: &mut Vec<epoll::Event>,
        zero: &rustix::time::Timespec,
        busy_poll: Duration,
    ) -> bool {
        let deadline = Instant::now() + busy_poll;
        loop {
            if self.notify.pending.load(Ordering::SeqCst) {
                return true;
            }
            let _ = epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(events),
                Some(zero),
            );
            if !events.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Arms the timerfd to fire once, `after` from now.
    fn arm(&self, after: Duration) {
        // Whatever fired before and was not read.
        let _ = rustix::io::read(&self.timer, &mut [0u8; 8]);
        let after = after.max(Duration::from_micros(1));
        let spec = rustix::time::Itimerspec {
            it_interval: rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: rustix::time::Timespec {
                tv_sec: after.as_secs() as _,
                tv_nsec: after.subsec_nanos() as _,
            },
        };
        let _ = rustix::time::timerfd_settime(
            &self.timer,
            rustix::time::TimerfdTimerFlags::empty(),
            &spec,
        );
    }

    fn dispatch(&self, events: &[epoll::Event], wake: &mut Vec<Waker>) {
        {
            let mut s = lock(&self.sources);
            for e in events {
                let key = e.data.u64();
                if key == NOTIFY || key == TIMER {
                    continue;
                }
                let Some(rd) = s.map.get_mut(&key) else {
                    continue;
                };
                let f = e.flags;
                rd.armed = epoll::EventFlags::empty();
                let fault = epoll::EventFlags::ERR | epoll::EventFlags::HUP;
                if f.intersects(epoll::EventFlags::IN | epoll::EventFlags::RDHUP | fault) {
                    rd.readable = true;
                    wake.extend(rd.reader.take());
                }
                if f.intersects(epoll::EventFlags::OUT | fault) {
                    rd.writable = true;
                    wake.extend(rd.writer.take());
                }
            }
        }
        for w in wake.drain(..) {
            w.wake();
        }
    }
}

/// How long an idle I/O thread polls before it sleeps, adapted to how
/// soon work has been coming back.
///
/// Polling pays when the next piece of work comes within the polling time
/// (the reply in a request/reply exchange, the next batch of a stream of
/// small messages) and is wasted when it comes later (a message every few
/// hundred microseconds would have the thread poll for nothing each time).
/// So the thread keeps a running estimate of its idle spells, counting a
/// spell longer than the full budget as zero, and polls for four times
/// that estimate: between a sixteenth of the full budget and all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BusyPoll {
    full: Duration,
    typical: Duration,
    budget: Duration,
}

impl BusyPoll {
    fn new(full: Duration) -> BusyPoll {
        BusyPoll {
            full,
            typical: full / 2,
            budget: full,
        }
    }

    /// The thread was idle for `idle` (polling, then sleeping if polling
    /// found nothing) before work came.
    fn idle(&mut self, idle: Duration) {
        let sample = if idle <= self.full {
            idle
        } else {
            Duration::ZERO
        };
        self.typical = (self.typical * 3 + sample) / 4;
        self.budget = (self.typical * 4).clamp(self.full / 16, self.full);
    }
}

/// A stream's registration with an I/O thread's reactor.
pub(crate) struct Registration {
    reactor: Arc<Reactor>,
    key: u64,
}

impl Registration {
    /// Waits until `fd`, the registered stream, is readable (`write ==
    /// false`) or writable. Readiness seen is consumed by the wait that
    /// returns it; a wait that has to block re-arms the one-shot interest
    /// for every direction someone waits on, and the kernel then reports at
    /// once what is already ready.
    #[cfg(test)]
    pub(crate) async fn ready(&self, fd: BorrowedFd<'_>, write: bool) {
        std::future::poll_fn(|cx| self.poll_ready(cx, fd, write)).await
    }

    /// `Registration::ready` (tests) as a poll: ready, or `cx` is woken when it
    /// may be.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut std::task::Context<'_>,
        fd: BorrowedFd<'_>,
        write: bool,
    ) -> Poll<()> {
        let interest = {
            let mut s = lock(&self.reactor.sources);
            let Some(rd) = s.map.get_mut(&self.key) else {
                return Poll::Ready(());
            };
            let (flag, waiter) = if write {
                (&mut rd.writable, &mut rd.writer)
            } else {
                (&mut rd.readable, &mut rd.reader)
            };
            if std::mem::take(flag) {
                return Poll::Ready(());
            }
            match waiter {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waiter = Some(cx.waker().clone()),
            }
            let mut interest = epoll::EventFlags::empty();
            if rd.reader.is_some() {
                interest |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
            }
            if rd.writer.is_some() {
                interest |= epoll::EventFlags::OUT;
            }
            if rd.armed.contains(interest) {
                return Poll::Pending;
            }
            // Marked before the call: an event of the interest armed before
            // that the dispatch takes meanwhile clears it again, and the next
            // wait arms anew (a call too many, never one too few).
            rd.armed = interest;
            #[cfg(test)]
            {
                s.arms += 1;
            }
            interest
        };
        let data = epoll::EventData::new_u64(self.key);
        let flags = interest | epoll::EventFlags::ONESHOT;
        if epoll::modify(&self.reactor.epoll, fd, data, flags).is_err() {
            // Not waitable here any more: let the caller's I/O report why.
            // Nothing was armed, so a later wait must try again rather than
            // find it armed and sleep for good.
            if let Some(rd) = lock(&self.reactor.sources).map.get_mut(&self.key) {
                rd.armed = epoll::EventFlags::empty();
            }
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Whether this registration belongs to the current thread's reactor.
    pub(crate) fn is_current(&self) -> bool {
        CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|r| Arc::ptr_eq(r, &self.reactor))
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The epoll entry goes with the descriptor when the stream closes.
        lock(&self.reactor.sources).map.remove(&self.key);
    }
}

/// Registers `fd` with the current thread's reactor, if it has one.
pub(crate) fn register_current(fd: impl AsFd) -> Option<Registration> {
    Reactor::current()?.register(fd.as_fd()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn readiness_wakes_the_waiting_task_and_is_consumed() {
        for busy_poll in [Duration::ZERO, crate::DEFAULT_BUSY_POLL] {
            readiness(busy_poll);
        }
    }

    fn readiness(busy_poll: Duration) {
        let (mut a, b) = UnixStream::pair().expect("pair");
        b.set_nonblocking(true).expect("nonblocking");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            a.write_all(b"ping").expect("write");
            a
        });
        let got = Reactor::block_on(
            async {
                let reg = register_current(&b).expect("an I/O thread's reactor");
                assert!(reg.is_current());
                // Writable at once (reported by the registration).
                reg.ready(b.as_fd(), true).await;
                let mut buf = [0u8; 8];
                loop {
                    reg.ready(b.as_fd(), false).await;
                    match (&b).read(&mut buf) {
                        Ok(n) => break buf[..n].to_vec(),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            },
            busy_poll,
        );
        assert_eq!(got, b"ping");
        drop(writer.join());
        assert!(Reactor::current().is_none());
    }

    #[test]
    fn a_wait_for_what_is_already_armed_makes_no_system_call() {
        let (mut a, b) = UnixStream::pair().expect("pair");
        b.set_nonblocking(true).expect("nonblocking");
        let fd = b.as_fd();
        Reactor::block_on(
            async {
                let reg = register_current(&b).expect("an I/O thread's reactor");
                let arms = || lock(&reg.reactor.sources).arms;
                // The first wait for reading arms; waits again, woken for
                // something else in between, find it armed.
                std::future::poll_fn(|cx| {
                    for _ in 0..3 {
                        assert!(reg.poll_ready(cx, fd, false).is_pending());
                    }
                    Poll::Ready(())
                })
                .await;
                assert_eq!(arms(), 1);
                // Waiting to write too widens the interest: armed again.
                reg.ready(fd, true).await;
                assert_eq!(arms(), 2);
                // What fires disarms it all: the next wait arms anew, and
                // the data written wakes it.
                a.write_all(b"ping").expect("write");
                reg.ready(fd, false).await;
                assert_eq!(arms(), 3);
                let mut buf = [0u8; 8];
                assert_eq!((&b).read(&mut buf).expect("read"), 4);
                std::future::poll_fn(|cx| {
                    assert!(reg.poll_ready(cx, fd, false).is_pending());
                    Poll::Ready(())
                })
                .await;
                assert_eq!(arms(), 4);
            },
            Duration::ZERO,
        );
    }

    #[test]
    fn a_wait_that_could_not_arm_is_not_taken_for_armed() {
        let (_a, b) = UnixStream::pair().expect("pair");
        let (_c, d) = UnixStream::pair().expect("pair");
        Reactor::block_on(
            async {
                let reg = register_current(&b).expect("an I/O thread's reactor");
                // `d` is not in this reactor's epoll set: arming fails, and
                // the wait returns for the caller's I/O to say why, every
                // time it is asked.
                std::future::poll_fn(|cx| {
                    for _ in 0..3 {
                        assert!(reg.poll_ready(cx, d.as_fd(), false).is_ready());
                    }
                    Poll::Ready(())
                })
                .await;
            },
            Duration::ZERO,
        );
    }

    /// A waker made off any I/O thread.
    fn stray_waker() -> Waker {
        Waker::from(Arc::new(Notify {
            fd: eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd"),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
        }))
    }

    #[test]
    fn a_wake_at_a_moment_comes_on_time_on_an_io_thread() {
        // Not an I/O thread: refused, so that the caller waits otherwise.
        let w = stray_waker();
        assert!(!wake_at(Instant::now(), &w));
        // An I/O thread wakes the task at the moment, with nothing else to
        // wake it, long before a millisecond timeout could, whether it
        // polls or not.
        for busy_poll in [Duration::ZERO, crate::DEFAULT_BUSY_POLL] {
            let at = Instant::now() + Duration::from_micros(300);
            let (woken, polls) = Reactor::block_on(
                async {
                    let mut polls = 0;
                    std::future::poll_fn(|cx| {
                        polls += 1;
                        if Instant::now() >= at {
                            return Poll::Ready(());
                        }
                        assert!(wake_at(at, cx.waker()));
                        Poll::Pending
                    })
                    .await;
                    (Instant::now(), polls)
                },
                busy_poll,
            );
            assert!(woken >= at);
            assert!(
                woken < at + Duration::from_millis(500),
                "woken at the moment, not by a later timeout"
            );
            assert!(polls >= 2, "woken by the moment, not polled once");
        }
        assert!(DUE.with(|d| d.borrow().is_empty()));
    }

    #[test]
    fn a_wake_later_comes_whether_the_thread_polls_or_sleeps() {
        let w = stray_waker();
        assert!(!wake_later(Instant::now(), &w), "not an I/O thread");
        for busy_poll in [Duration::ZERO, crate::DEFAULT_BUSY_POLL] {
            let start = Instant::now();
            let first = start + Duration::from_millis(20);
            let second = start + Duration::from_millis(40);
            let (woken, polls) = Reactor::block_on(
                async {
                    let mut polls = 0;
                    std::future::poll_fn(|cx| {
                        polls += 1;
                        if Instant::now() >= second {
                            return Poll::Ready(());
                        }
                        // Two moments asked for at the first poll: the
                        // task is woken at the first, and at the second
                        // (at once, on a machine that stalled past both).
                        // A watchdog wakes it much later, so that a lost
                        // wake-up fails below instead of hanging.
                        if polls == 1 {
                            assert!(wake_later(second, cx.waker()));
                            assert!(wake_later(first, cx.waker()));
                            let w = cx.waker().clone();
                            std::thread::spawn(move || {
                                std::thread::sleep(Duration::from_secs(30));
                                w.wake();
                            });
                        }
                        Poll::Pending
                    })
                    .await;
                    (Instant::now(), polls)
                },
                busy_poll,
            );
            assert!(woken >= second);
            assert!(
                woken < second + Duration::from_secs(20),
                "woken at the moment, not left asleep"
            );
            assert!(polls >= 2, "{polls} polls");
        }
        assert!(LATER.with(|l| l.borrow().is_empty()));
        assert!(NEXT_LATER.with(Cell::get).is_none());
    }

    #[test]
    fn busy_poll_budget_follows_idle_spells() {
        let full = Duration::from_micros(64);
        let mut p = BusyPoll::new(full);
        assert_eq!(p.budget, full);
        // Work every millisecond: polling never catches it.
        for _ in 0..20 {
            p.idle(Duration::from_millis(1));
        }
        assert_eq!(p.budget, full / 16);
        // Work coming back within 10 µs: poll for about four times that.
        for _ in 0..20 {
            p.idle(Duration::from_micros(10));
        }
        let b = p.budget.as_micros();
        assert!((36..=40).contains(&b), "{b} µs");
        // Never more than the full budget.
        for _ in 0..20 {
            p.idle(Duration::from_micros(70));
        }
        assert_eq!(p.budget, full / 16, "70 µs is longer than the budget");
        for _ in 0..20 {
            p.idle(Duration::from_micros(50));
        }
        assert_eq!(p.budget, full);
        // Zero stays zero: the thread never polls.
        let mut off = BusyPoll::new(Duration::ZERO);
        off.idle(Duration::from_millis(1));
        off.idle(Duration::ZERO);
        assert!(off.budget.is_zero());
    }

    #[test]
    fn a_wake_from_another_thread_interrupts_the_wait() {
        for busy_poll in [Duration::ZERO, crate::DEFAULT_BUSY_POLL] {
            wake_interrupts_wait(busy_poll);
        }
    }

    fn wake_interrupts_wait(busy_poll: Duration) {
        let (tx, rx) = async_channel::bounded::<u32>(1);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send_blocking(7).expect("send");
        });
        assert_eq!(Reactor::block_on(rx.recv(), busy_poll), Ok(7));
        t.join().expect("join");
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counted(std::sync::atomic::AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counted {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn wake_ups_asked_for_on_an_io_thread_are_given_when_the_turn_ends() {
        let receiver = Arc::new(Counted::default());
        Reactor::block_on(
            async {
                let w = Waker::from(receiver.clone());
                // Two connections' messages in one turn: neither wakes
                // the receiver before the ready tasks have run.
                wake_after_turn(1, std::iter::once(w.clone()));
                wake_after_turn(1, std::iter::once(w));
                assert_eq!(receiver.count(), 0);
                // The task yields: the turn ends, both are given.
                let mut yielded = false;
                std::future::poll_fn(|cx| {
                    if yielded {
                        return Poll::Ready(());
                    }
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                })
                .await;
                assert_eq!(receiver.count(), 2);
            },
            Duration::ZERO,
        );
        // Elsewhere a wake-up is given at once.
        wake_after_turn(1, std::iter::once(Waker::from(receiver.clone())));
        assert_eq!(receiver.count(), 3);
    }

    #[test]
    fn the_kept_wake_ups_of_one_condition_are_given_when_another_asks() {
        let first = Arc::new(Counted::default());
        let second = Arc::new(Counted::default());
        Reactor::block_on(
            async {
                wake_after_turn(1, std::iter::once(Waker::from(first.clone())));
                assert_eq!(first.count(), 0);
                // Another receiver's turn: the first gains nothing by
                // waiting on, and is woken now.
                wake_after_turn(2, std::iter::once(Waker::from(second.clone())));
                assert_eq!((first.count(), second.count()), (1, 0));
                // The same condition again: kept with the rest.
                wake_after_turn(2, std::iter::once(Waker::from(second.clone())));
                assert_eq!((first.count(), second.count()), (1, 0));
            },
            Duration::ZERO,
        );
        assert_eq!((first.count(), second.count()), (1, 2));
    }

    #[test]
    fn a_long_turn_gives_the_kept_wake_ups_after_at_most_max_defer() {
        let receiver = Arc::new(Counted::default());
        Reactor::block_on(
            async {
                wake_after_turn(1, std::iter::once(Waker::from(receiver.clone())));
                // The task works on without yielding.
                let t = Instant::now();
                while t.elapsed() < MAX_DEFER {
                    std::hint::spin_loop();
                }
                assert_eq!(receiver.count(), 0);
                // The next wake-up asked for on the thread gives it.
                wake_kept_if_late();
                assert_eq!(receiver.count(), 1);
            },
            Duration::ZERO,
        );
        assert_eq!(receiver.count(), 1);
    }
}

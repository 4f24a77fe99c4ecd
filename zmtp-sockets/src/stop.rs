//! The signal that ends an endpoint's tasks: its listener or reconnect loop
//! and each of its connections.
//!
//! A flag and an [`Event`] behind one `Arc`: about a tenth of the memory a
//! one-slot channel takes (768 bytes, most of it padding between the
//! queue's ends), paid once per endpoint, and a poll that a connection's
//! wait calls among its other sources without a future of its own.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

struct Inner {
    raised: AtomicBool,
    event: Event,
}

/// A new signal: the first half raises it when dropped, the second waits.
pub(crate) fn signal() -> (StopOnDrop, Stop) {
    let inner = Arc::new(Inner {
        raised: AtomicBool::new(false),
        event: Event::new(),
    });
    (StopOnDrop(Stop(inner.clone())), Stop(inner))
}

/// Raises its signal when dropped (an endpoint's handle, held by the socket
/// while the endpoint lives).
pub(crate) struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let inner = &self.0.0;
        inner.raised.store(true, Ordering::SeqCst);
        inner.event.notify(usize::MAX);
    }
}

/// The waiting side of a signal, cloned into each task that stops with it.
#[derive(Clone)]
pub(crate) struct Stop(Arc<Inner>);

impl Stop {
    /// Whether the signal was raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::SeqCst)
    }

    /// Ready once the signal is raised; `listener` holds the registration
    /// between polls (start it at `None`).
    pub(crate) fn poll_raised(
        &self,
        cx: &mut Context<'_>,
        listener: &mut Option<EventListener>,
    ) -> Poll<()> {
        loop {
            if self.is_raised() {
                return Poll::Ready(());
            }
            match listener {
                // Registered: the flag is checked again after each notice,
                // and once more after registering (a raise in between is
                // then not missed).
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *listener = None;
                }
                None => *listener = Some(self.0.event.listen()),
            }
        }
    }

    /// Waits until the signal is raised.
    pub(crate) async fn raised(&self) {
        let mut listener = None;
        poll_fn(|cx| self.poll_raised(cx, &mut listener)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_waiter_sees_the_drop_of_the_raising_half() {
        let (raise, stop) = signal();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || futures_lite::future::block_on(stop.raised()))
            })
            .collect();
        assert!(!stop.is_raised());
        drop(raise);
        for w in waiters {
            w.join().unwrap();
        }
        assert!(stop.is_raised());
        // Raised before the wait starts: ready at once.
        futures_lite::future::block_on(stop.raised());
    }
}

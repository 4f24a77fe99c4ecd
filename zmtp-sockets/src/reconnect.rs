//! A connect endpoint's task: connects, runs a session, and reconnects with
//! back-off, until the endpoint is disconnected or the socket is closed and
//! its queue is sent (or its linger has passed).

use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use futures_lite::future::{or, pending};

use crate::endpoint::Endpoint;
use crate::monitor::MonitorEvent;
use crate::pipe::{PipeId, PipeRx};
use crate::session::{self, End, PeerAddr, PipeSlot, report};
use crate::shared::SocketShared;
use crate::stop::Stop;
use crate::transport::Stream;

/// Connects, runs the connection, and reconnects, until stopped.
pub(crate) async fn run(
    shared: Arc<SocketShared>,
    ep: Endpoint,
    endpoint: String,
    pipe: Option<(PipeId, PipeRx)>,
    stop: Stop,
) {
    let base = shared.options().reconnect_ivl;
    let mut ivl = base;
    let mut slot = match pipe {
        Some((id, rx)) => PipeSlot::Persistent(id, rx),
        None => PipeSlot::OnHandshake,
    };
    loop {
        if done_connecting(&shared, &stop, &slot) {
            break;
        }
        let attempt = or(async { Some(Stream::connect(&ep).await) }, async {
            wait_stop_or_linger(&shared, &stop).await;
            None
        })
        .await;
        if let Some(Ok((stream, peer))) = attempt {
            shared.emit(MonitorEvent::Connected {
                endpoint: endpoint.clone(),
                peer: peer.clone(),
            });
            let addr = PeerAddr {
                endpoint: &endpoint,
                address: &peer,
                ip: None,
            };
            let end = session::run(&shared, stream, addr, &mut slot, &stop).await;
            if matches!(end, End::Lost(_)) {
                // It worked: start backing off afresh.
                ivl = base;
            }
            let stopped = end
                .stops_reconnecting()
                .filter(|_| !shared.options().reconnect_after_error);
            report(&shared, &endpoint, &peer, end);
            if let Some(reason) = stopped {
                shared.emit(MonitorEvent::ConnectStopped {
                    endpoint: endpoint.clone(),
                    reason,
                });
                break;
            }
            match std::mem::replace(&mut slot, PipeSlot::OnHandshake) {
                PipeSlot::Attached(id, _) => {
                    shared.detach_pipe(id);
                }
                PipeSlot::Persistent(id, rx) => {
                    // The pipe waits for the next peer, which sends its own
                    // subscriptions and has its own routing id.
                    shared.peer_detached(id);
                    slot = PipeSlot::Persistent(id, rx);
                }
                PipeSlot::OnHandshake => {}
            }
        }
        if done_connecting(&shared, &stop, &slot) {
            break;
        }
        shared.emit(MonitorEvent::ConnectRetried {
            endpoint: endpoint.clone(),
            interval: ivl,
        });
        let _ = or(
            async {
                Timer::after(ivl).await;
            },
            wait_stop_or_linger(&shared, &stop),
        )
        .await;
        if let Some(max) = shared.options().reconnect_ivl_max
            && max > base
        {
            ivl = (ivl * 2).min(max);
        }
    }
    if let PipeSlot::Persistent(id, _) | PipeSlot::Attached(id, _) = slot {
        shared.detach_pipe(id);
    }
    shared.emit(MonitorEvent::Closed { endpoint });
}

/// A connecter stops when its endpoint was disconnected, or when the socket
/// is closed and its queue is empty or its linger has passed.
fn done_connecting(shared: &SocketShared, stop: &Stop, slot: &PipeSlot) -> bool {
    if !stop.is_raised() {
        return false;
    }
    if !shared.is_closed() {
        return true;
    }
    let queue_empty = slot.get().is_none_or(|(_, rx)| rx.is_empty());
    queue_empty
        || shared
            .linger_deadline()
            .is_some_and(|d| Instant::now() >= d)
}

async fn wait_stop_or_linger(shared: &SocketShared, stop: &Stop) {
    stop.raised().await;
    if shared.is_closed() {
        match shared.linger_deadline() {
            Some(d) => {
                Timer::at(d).await;
            }
            None => pending::<()>().await,
        }
    }
}

//! A bound endpoint's task: accepts connections and gives each its own
//! session task, until the endpoint is unbound or the socket closed.

use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future::or;

use crate::monitor::MonitorEvent;
use crate::session::{self, PeerAddr, PipeSlot, report};
use crate::shared::SocketShared;
use crate::stop::Stop;
use crate::transport::Listener;

/// Accepts connections until stopped.
pub(crate) async fn run(
    shared: Arc<SocketShared>,
    listener: Listener,
    endpoint: String,
    stop: Stop,
) {
    loop {
        let accepted = or(async { Some(listener.accept().await) }, async {
            stop.raised().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer, ip))) => {
                shared.emit(MonitorEvent::Accepted {
                    endpoint: endpoint.clone(),
                    peer: peer.clone(),
                });
                let (s, ep, stop) = (shared.clone(), endpoint.clone(), stop.clone());
                shared.spawner.spawn(async move {
                    let mut slot = PipeSlot::OnHandshake;
                    let addr = PeerAddr {
                        endpoint: &ep,
                        address: &peer,
                        ip,
                    };
                    let end = session::run(&s, stream, addr, &mut slot, &stop).await;
                    report(&s, &ep, &peer, end);
                    if let PipeSlot::Attached(id, _) = slot {
                        s.detach_pipe(id);
                    }
                });
            }
            Some(Err(_)) => {
                // Out of descriptors or similar: back off instead of spinning.
                let _ = or(
                    async {
                        Timer::after(Duration::from_millis(100)).await;
                    },
                    stop.raised(),
                )
                .await;
            }
        }
    }
    // Closed means closed: the port is released before the event.
    drop(listener);
    shared.emit(MonitorEvent::Closed { endpoint });
}

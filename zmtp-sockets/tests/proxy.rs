//! The proxy between our own sockets: a request broker, a forwarder with a
//! capture socket, and a streamer steered through a control socket.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use zmtp_sockets::{
    Context, Error, Message, Socket, SocketType, proxy_blocking, proxy_steerable_blocking,
};

const TIMEOUT: Duration = Duration::from_secs(20);

fn socket(ctx: &Context, t: SocketType) -> Socket {
    let s = ctx.socket(t).unwrap();
    s.configure(|o| {
        o.rcvtimeo = Some(TIMEOUT);
        o.sndtimeo = Some(TIMEOUT);
        o.linger = Some(Duration::ZERO);
    })
    .unwrap();
    s
}

fn bound(ctx: &Context, t: SocketType) -> (Socket, String) {
    let s = socket(ctx, t);
    let ep = s.bind("tcp://127.0.0.1:0").unwrap();
    (s, ep)
}

#[test]
fn a_router_dealer_proxy_brokers_requests_to_workers() {
    let ctx = Context::new();
    let (frontend, clients_ep) = bound(&ctx, SocketType::Router);
    let (backend, workers_ep) = bound(&ctx, SocketType::Dealer);
    std::thread::scope(|scope| {
        let broker = scope.spawn(|| proxy_blocking(&frontend, &backend, None));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let rep = socket(&ctx, SocketType::Rep);
                rep.connect(&workers_ep).unwrap();
                scope.spawn(move || common::serve_tagged(&rep, w))
            })
            .collect();
        for c in 0..3 {
            let req = socket(&ctx, SocketType::Req);
            req.connect(&clients_ep).unwrap();
            for i in 0..20 {
                let q = format!("c{c}-{i}");
                req.send_blocking(q.clone().into_bytes()).unwrap();
                let reply = req.recv_blocking().unwrap();
                let text = String::from_utf8(reply.frames()[0].to_vec()).unwrap();
                assert!(text.ends_with(&q), "{text}");
            }
        }
        // Closing the context ends the proxy with ETERM's equivalent.
        ctx.clone().term();
        assert!(matches!(broker.join().unwrap(), Err(Error::Closed)));
        for w in workers {
            w.join().unwrap();
        }
    });
}

#[test]
fn an_xsub_xpub_proxy_forwards_data_down_and_subscriptions_up_with_a_capture() {
    let ctx = Context::new();
    let (xsub, upstream) = bound(&ctx, SocketType::XSub);
    let (xpub, downstream) = bound(&ctx, SocketType::XPub);
    let (capture, capture_ep) = bound(&ctx, SocketType::Push);
    let copies = socket(&ctx, SocketType::Pull);
    copies.connect(&capture_ep).unwrap();
    std::thread::scope(|scope| {
        let forwarder = scope.spawn(|| proxy_blocking(&xsub, &xpub, Some(&capture)));
        let publisher = socket(&ctx, SocketType::Pub);
        publisher.connect(&upstream).unwrap();
        let sub = socket(&ctx, SocketType::Sub);
        sub.subscribe("A").unwrap();
        sub.connect(&downstream).unwrap();
        // The subscription went up through the proxy to the publisher.
        let deadline = Instant::now() + TIMEOUT;
        while publisher.subscription_count() == 0 {
            assert!(Instant::now() < deadline, "the subscription never arrived");
            std::thread::sleep(Duration::from_millis(2));
        }
        for m in ["A1", "B1", "A2"] {
            publisher.send_blocking(m).unwrap();
        }
        assert_eq!(sub.recv_blocking().unwrap().frames()[0], "A1");
        assert_eq!(sub.recv_blocking().unwrap().frames()[0], "A2");
        // The capture saw the subscription (up) and the data (down).
        let mut seen: Vec<Bytes> = (0..3)
            .map(|_| copies.recv_blocking().unwrap().frames()[0].clone())
            .collect();
        seen.sort();
        assert_eq!(seen, [&b"\x01A"[..], b"A1", b"A2"]);
        ctx.clone().term();
        assert!(forwarder.join().unwrap().is_err());
    });
}

fn command(control: &Socket, cmd: &str) -> Message {
    control.send_blocking(cmd.as_bytes().to_vec()).unwrap();
    control.recv_blocking().unwrap()
}

fn counters(reply: &Message) -> Vec<u64> {
    reply
        .frames()
        .iter()
        .map(|f| u64::from_ne_bytes(f[..].try_into().unwrap()))
        .collect()
}

#[test]
fn a_steerable_streamer_pauses_resumes_reports_and_terminates() {
    let ctx = Context::new();
    let (frontend, in_ep) = bound(&ctx, SocketType::Pull);
    let (backend, out_ep) = bound(&ctx, SocketType::Push);
    let (control, control_ep) = bound(&ctx, SocketType::Rep);
    let push = socket(&ctx, SocketType::Push);
    push.connect(&in_ep).unwrap();
    let pull = socket(&ctx, SocketType::Pull);
    pull.connect(&out_ep).unwrap();
    let steer = socket(&ctx, SocketType::Req);
    steer.connect(&control_ep).unwrap();
    std::thread::scope(|scope| {
        let streamer =
            scope.spawn(|| proxy_steerable_blocking(&frontend, &backend, None, &control));
        for i in 0..10u8 {
            push.send_blocking(Message::from_frames([vec![i], vec![0; 9]]))
                .unwrap();
        }
        for i in 0..10u8 {
            assert_eq!(pull.recv_blocking().unwrap().frames()[0][..], [i]);
        }
        let stats = counters(&command(&steer, "STATISTICS"));
        // 10 messages of 2 frames and 10 bytes, in at the frontend and out
        // of the backend.
        assert_eq!(stats, [20, 100, 0, 0, 0, 0, 20, 100]);
        assert!(command(&steer, "PAUSE").frames()[0].is_empty());
        for i in 10..20u8 {
            push.send_blocking(vec![i]).unwrap();
        }
        // Paused: nothing more was moved.
        assert_eq!(counters(&command(&steer, "STATISTICS"))[0], 20);
        assert!(command(&steer, "RESUME").frames()[0].is_empty());
        for i in 10..20u8 {
            assert_eq!(pull.recv_blocking().unwrap().frames()[0][..], [i]);
        }
        assert!(command(&steer, "TERMINATE").frames()[0].is_empty());
        let stats = streamer.join().unwrap().unwrap();
        assert_eq!(stats.frontend.msgs_in, 30);
        assert_eq!(stats.backend.msgs_out, 30);
    });
}

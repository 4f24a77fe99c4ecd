//! Our proxy between libzmq peers: REQ -> ROUTER/DEALER proxy -> REP, and
//! PUB -> XSUB/XPUB proxy -> SUB, the libzmq sockets connecting to the
//! proxy's bound ones.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use zmtp_interop::{TIMEOUT, require_libzmq};
use zmtp_sockets::{Context, Socket, SocketType, proxy_blocking};

const MS: i32 = 20_000;

fn bound(ctx: &Context, t: SocketType) -> (Socket, String) {
    let s = ctx.socket(t).unwrap();
    s.configure(|o| o.linger = Some(Duration::ZERO)).unwrap();
    let ep = s.bind("tcp://127.0.0.1:0").unwrap();
    (s, ep)
}

fn theirs(z: &zmq::Context, t: zmq::SocketType, ep: &str) -> zmq::Socket {
    let s = z.socket(t).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(MS).unwrap();
    s.set_sndtimeo(MS).unwrap();
    if t == zmq::SUB {
        s.set_subscribe(b"A").unwrap();
    }
    s.connect(ep).unwrap();
    s
}

#[test]
fn libzmq_req_through_our_router_dealer_proxy_to_libzmq_rep() {
    require_libzmq();
    let ctx = Context::new();
    let (frontend, front_ep) = bound(&ctx, SocketType::Router);
    let (backend, back_ep) = bound(&ctx, SocketType::Dealer);
    let z = zmq::Context::new();
    let rep = theirs(&z, zmq::REP, &back_ep);
    let req = theirs(&z, zmq::REQ, &front_ep);
    std::thread::scope(|scope| {
        let broker = scope.spawn(|| proxy_blocking(&frontend, &backend, None));
        for i in 0..20u8 {
            req.send_multipart([&[b'q', i][..], b"two frames"], 0)
                .unwrap();
            let got = rep.recv_multipart(0).unwrap();
            assert_eq!(got, vec![vec![b'q', i], b"two frames".to_vec()]);
            rep.send(&[b'r', i][..], 0).unwrap();
            assert_eq!(req.recv_bytes(0).unwrap(), vec![b'r', i]);
        }
        ctx.clone().term();
        assert!(broker.join().unwrap().is_err());
    });
}

#[test]
fn libzmq_pub_through_our_xsub_xpub_proxy_to_libzmq_sub() {
    require_libzmq();
    let ctx = Context::new();
    let (xsub, up_ep) = bound(&ctx, SocketType::XSub);
    let (xpub, down_ep) = bound(&ctx, SocketType::XPub);
    let z = zmq::Context::new();
    let publisher = theirs(&z, zmq::PUB, &up_ep);
    let sub = theirs(&z, zmq::SUB, &down_ep);
    std::thread::scope(|scope| {
        let forwarder = scope.spawn(|| proxy_blocking(&xsub, &xpub, None));
        // The subscription travels SUB -> our XPUB -> proxy -> our XSUB ->
        // PUB, which filters: publish until it is in effect.
        sub.set_rcvtimeo(20).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            publisher.send("B-unwanted", 0).unwrap();
            publisher.send("A-probe", 0).unwrap();
            if let Ok(m) = sub.recv_bytes(0) {
                assert_eq!(m, b"A-probe");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the subscription never reached the publisher"
            );
        }
        sub.set_rcvtimeo(MS).unwrap();
        publisher.send("B-unwanted", 0).unwrap();
        publisher.send("A-final", 0).unwrap();
        loop {
            let m = sub.recv_bytes(0).unwrap();
            assert!(m.starts_with(b"A"), "{m:?}");
            if m == b"A-final" {
                break;
            }
        }
        ctx.clone().term();
        assert!(forwarder.join().unwrap().is_err());
    });
}

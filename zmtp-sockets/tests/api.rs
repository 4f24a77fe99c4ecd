//! The API as a new user meets it: messages from owned and borrowed data,
//! options set with the socket, options refused when set too late, and an
//! empty message refused.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use zmtp_sockets::{Context, Error, Message, SocketType};

#[test]
fn messages_come_from_strings_vectors_and_borrowed_frames() {
    let ctx = Context::new();
    let pull = ctx
        .socket_with(SocketType::Pull, |o| {
            o.rcvtimeo = Some(Duration::from_secs(20))
        })
        .unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.connect(&ep).unwrap();
    let n = 21;
    push.send_blocking(format!("temperature {n}")).unwrap();
    let topic = String::from("weather");
    push.send_blocking(Message::from_frames([
        topic.as_bytes(),
        format!("{n}").as_bytes(),
    ]))
    .unwrap();
    let borrowed = topic.clone();
    push.send_blocking(borrowed.as_str()).unwrap();
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "temperature 21");
    assert_eq!(
        pull.recv_blocking().unwrap().frames(),
        [&b"weather"[..], b"21"]
    );
    assert_eq!(pull.recv_blocking().unwrap().frames()[0], "weather");
}

#[test]
fn a_message_without_a_frame_is_refused_and_an_empty_frame_is_not() {
    let ctx = Context::new();
    let push = ctx
        .socket_with(SocketType::Push, |o| o.linger = Some(Duration::ZERO))
        .unwrap();
    push.connect("tcp://127.0.0.1:9").unwrap();
    assert!(matches!(
        push.try_send(Message::new()),
        Err(Error::EmptyMessage)
    ));
    assert!(matches!(
        push.send_blocking(Message::new()),
        Err(Error::EmptyMessage)
    ));
    assert!(matches!(
        futures_lite::future::block_on(push.send(Message::new())),
        Err(Error::EmptyMessage)
    ));
    // One empty frame is a message (it waits for the peer's queue).
    assert!(push.try_send("").is_ok());
}

#[test]
fn options_are_set_with_the_socket_and_refused_when_too_late() {
    let ctx = Context::new();
    let pull = ctx
        .socket_with(SocketType::Pull, |o| {
            o.rcvhwm = 10;
            o.sndhwm = 20;
        })
        .unwrap();
    assert_eq!((pull.options().rcvhwm, pull.options().sndhwm), (10, 20));
    // A socket_with whose options do not apply fails as configure does.
    assert!(matches!(
        ctx.socket_with(SocketType::Pull, |o| o.router_mandatory = true),
        Err(Error::InvalidOption(_))
    ));
    pull.bind("tcp://127.0.0.1:0").unwrap();
    // The receive queue exists now: a new bound would be ignored.
    assert!(matches!(
        pull.configure(|o| o.rcvhwm = 50),
        Err(Error::InvalidOption(_))
    ));
    assert_eq!(pull.options().rcvhwm, 10);
    // Options that apply to later connections are still accepted.
    pull.configure(|o| o.sndhwm = 30).unwrap();
}

/// A blocking call that would wait on one of the context's I/O threads
/// (here, inside an Authenticator) returns an error instead of hanging the
/// thread that would have to end the wait.
#[test]
fn a_blocking_call_on_an_io_thread_is_refused_not_hung() {
    use std::sync::{Arc, Mutex};
    use zmtp_sockets::security::{AuthRequest, AuthVerdict, FnAuthenticator};
    use zmtp_sockets::{MonitorEvent, Security};
    let ctx = Context::new();
    let idle = Arc::new(ctx.socket(SocketType::Pull).unwrap());
    let _ = idle.bind("tcp://127.0.0.1:0").unwrap();
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let (idle2, seen2) = (idle.clone(), seen.clone());
    let server = ctx
        .socket_with(SocketType::Pull, |o| {
            o.security = Security::Null;
            o.authenticator = Some(Arc::new(FnAuthenticator(move |_: &AuthRequest| {
                let r = idle2.recv_blocking();
                *seen2.lock().unwrap() = Some(format!("{r:?}"));
                AuthVerdict::allow()
            })));
        })
        .unwrap();
    let mon = server.monitor();
    let ep = server.bind("tcp://127.0.0.1:0").unwrap();
    let client = ctx.socket(SocketType::Push).unwrap();
    client.connect(&ep).unwrap();
    let ev = mon.wait_for_blocking(Duration::from_secs(20), |e| {
        matches!(e, MonitorEvent::HandshakeSucceeded { .. })
    });
    assert!(ev.is_some(), "the handshake went on");
    let seen = seen.lock().unwrap().clone().unwrap();
    assert!(seen.contains("I/O thread"), "{seen}");
}

#[test]
fn an_ipc_endpoint_removes_its_socket_file_when_unbound_or_closed() {
    use zmtp_sockets::MonitorEvent;
    let timeout = Duration::from_secs(20);
    let ctx = Context::new();
    let path = std::env::temp_dir().join(format!("zmtp-api-unbind-{}.sock", std::process::id()));
    let ep = format!("ipc://{}", path.display());
    let closed = |mon: &zmtp_sockets::Monitor| {
        mon.wait_for_blocking(timeout, |e| matches!(e, MonitorEvent::Closed { .. }))
            .expect("the endpoint's Closed event");
    };
    let s = ctx.socket(SocketType::Pull).unwrap();
    let mon = s.monitor();
    s.bind(&ep).unwrap();
    assert!(path.exists());
    s.unbind(&ep).unwrap();
    closed(&mon);
    assert!(!path.exists(), "removed at unbind");
    s.bind(&ep).unwrap();
    assert!(path.exists());
    drop(s);
    closed(&mon);
    assert!(!path.exists(), "removed when the socket closed");
}

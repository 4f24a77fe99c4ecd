//! The same sockets from async-std tasks and from plain threads, and proof
//! that the application thread never seals or opens a frame.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::TIMEOUT;
use zmtp_sockets::core::{
    FrameCipher, HandshakeContext, Mechanism, MechanismName, Null, Result as CoreResult, Step,
    Traffic,
};
use zmtp_sockets::{Context, Message, Security, SocketType};

#[test]
fn async_std_tasks_drive_the_sockets() {
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    push.connect(&ep).unwrap();
    let got = async_std::task::block_on(async move {
        let sender = async_std::task::spawn(async move {
            for i in 0..1000u32 {
                push.send(Message::from(i.to_be_bytes().to_vec()))
                    .await
                    .unwrap();
            }
            push
        });
        let mut got = Vec::new();
        for _ in 0..1000 {
            let m = async_std::future::timeout(TIMEOUT, pull.recv())
                .await
                .expect("in time")
                .unwrap();
            got.push(u32::from_be_bytes(m.frames()[0][..].try_into().unwrap()));
        }
        drop(sender.await);
        got
    });
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

#[test]
fn plain_threads_with_the_blocking_api() {
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).unwrap();
    let ep = rep.bind("tcp://127.0.0.1:0").unwrap();
    let server = std::thread::spawn(move || {
        rep.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
        for _ in 0..10 {
            let m = rep.recv_blocking().unwrap();
            rep.send_blocking(m).unwrap();
        }
    });
    let req = ctx.socket(SocketType::Req).unwrap();
    req.configure(|o| o.rcvtimeo = Some(TIMEOUT)).unwrap();
    req.connect(&ep).unwrap();
    for i in 0..10u8 {
        req.send_blocking(vec![i]).unwrap();
        assert_eq!(&req.recv_blocking().unwrap().frames()[0][..], &[i]);
    }
    server.join().unwrap();
}

/// Thread names on which the cipher ran.
type Seen = Arc<Mutex<Vec<String>>>;

/// NULL's handshake with a traffic cipher that XORs each frame and records
/// the thread it runs on: a stand-in for CURVE's box, made observable.
struct Counting {
    inner: Null,
    seen: Seen,
}

struct XorCipher {
    seen: Seen,
}

fn record(seen: &Seen) {
    let name = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned();
    seen.lock().expect("not poisoned").push(name);
}

impl FrameCipher for XorCipher {
    fn overhead(&self) -> usize {
        1
    }
    fn seal(
        &mut self,
        more: bool,
        command: bool,
        body: &[u8],
        out: &mut BytesMut,
    ) -> CoreResult<()> {
        record(&self.seen);
        out.extend_from_slice(&[u8::from(more) | (u8::from(command) << 1)]);
        out.extend(body.iter().map(|b| b ^ 0x5A));
        Ok(())
    }
    fn open(&mut self, mut wire: BytesMut) -> CoreResult<(bool, bool, BytesMut)> {
        record(&self.seen);
        let flags = wire[0];
        let mut body = wire.split_off(1);
        body.iter_mut().for_each(|b| *b ^= 0x5A);
        Ok((flags & 1 != 0, flags & 2 != 0, body))
    }
}

impl Mechanism for Counting {
    fn name(&self) -> MechanismName {
        MechanismName::NULL
    }
    fn as_server(&self) -> bool {
        false
    }
    fn start(&mut self, ctx: &HandshakeContext<'_>, out: &mut Vec<Bytes>) -> CoreResult<Step> {
        self.inner.start(ctx, out)
    }
    fn handle_command(&mut self, body: Bytes, out: &mut Vec<Bytes>) -> CoreResult<Step> {
        self.inner.handle_command(body, out)
    }
    fn into_traffic(self: Box<Self>) -> Traffic {
        Traffic::Frames(Box::new(XorCipher { seen: self.seen }))
    }
}

#[test]
fn the_application_thread_never_seals_or_opens() {
    let seen: Seen = Arc::default();
    let factory = {
        let seen = seen.clone();
        Arc::new(move || {
            Box::new(Counting {
                inner: Null::new(),
                seen: seen.clone(),
            }) as Box<dyn Mechanism>
        })
    };
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).unwrap();
    let push = ctx.socket(SocketType::Push).unwrap();
    for s in [&pull, &push] {
        let f = factory.clone();
        s.configure(|o| {
            o.security = Security::Custom(f);
            o.rcvtimeo = Some(TIMEOUT);
        })
        .unwrap();
    }
    let ep = pull.bind("tcp://127.0.0.1:0").unwrap();
    push.connect(&ep).unwrap();
    for i in 0..200u8 {
        push.send_blocking(Message::from_frames([vec![i], vec![i; 100]]))
            .unwrap();
    }
    for i in 0..200u8 {
        let m = pull.recv_blocking().unwrap();
        assert_eq!(m.frames()[1], vec![i; 100]);
    }
    let seen = seen.lock().unwrap();
    // 200 messages of 2 frames, sealed once and opened once each.
    assert_eq!(seen.len(), 800);
    assert!(
        seen.iter().all(|t| t.starts_with("zmtp-io-")),
        "cipher ran on {:?}",
        seen.iter().find(|t| !t.starts_with("zmtp-io-"))
    );
    let _ = Duration::ZERO;
}

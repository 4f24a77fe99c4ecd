//! Fuzz target bodies (feature `fuzzing`). The thin files in `fuzz/` call
//! these, and the workspace tests replay `fuzz/corpus/` through them.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::wire::{Command, Metadata};
use crate::{Config, Connection, FrameDecoder, Greeting, Null, SocketType};

/// Feeds arbitrary bytes to the frame decoder, with a limit and without,
/// in chunks whose size the first byte picks, and checks after each chunk
/// that the growth it asks for follows the bytes received, never a size a
/// header announces.
pub fn frame_decoder(data: &[u8]) {
    let step = data.first().map_or(1, |&b| usize::from(b) + 1);
    for limit in [Some(1 << 20), None] {
        let mut dec = FrameDecoder::new(limit);
        let mut buf = BytesMut::new();
        'feed: for chunk in data.chunks(step) {
            buf.extend_from_slice(chunk);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            let hint = dec.reserve_hint(&buf);
            assert!(hint <= crate::codec::READ_CHUNK.max(3 * buf.len()));
        }
    }
}

/// Decodes a greeting; whatever parses must emit identical bytes.
pub fn greeting(data: &[u8]) {
    if let Ok(Some(g)) = Greeting::decode(data) {
        let again = Greeting::decode(&g.emit()).ok().flatten();
        assert_eq!(again, Some(g));
    }
}

/// Parses a command body and metadata; whatever parses re-encodes to the
/// same bytes (the round-trip target).
pub fn command(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    if let Ok(cmd) = Command::parse(&body) {
        let emitted = cmd.to_bytes();
        match &cmd {
            // Names are emitted canonically, so READY compares parsed forms.
            Command::Ready(m) => {
                assert_eq!(
                    Command::parse(&emitted).ok(),
                    Some(Command::Ready(m.clone()))
                );
            }
            Command::Error(r) if r.len() > 255 => {}
            _ => assert_eq!(&emitted[..], data),
        }
    }
    let _ = Metadata::parse(&body);
}

/// A NULL connection fed a valid greeting, then arbitrary bytes; a second
/// one, fed the same, is drained with `poll_messages` (a few messages at a
/// time) and must give the same messages, events and ending.
pub fn connection(data: &[u8]) {
    let now = Instant::now();
    let limit = 1 + usize::from(data.first().copied().unwrap_or(0) % 4);
    for t in [SocketType::Pub, SocketType::Pull, SocketType::Rep] {
        let fed = || {
            let mut c = Connection::new(Config::new(t), Box::new(Null::new()), now);
            let mut input = Greeting::new(crate::MechanismName::NULL, false)
                .emit()
                .to_vec();
            input.extend_from_slice(data);
            c.recv_buffer().extend_from_slice(&input);
            c
        };
        let mut one = fed();
        let mut by_event = Vec::new();
        let end_one = loop {
            match one.poll_event(now) {
                Ok(Some(ev)) => by_event.push(format!("{ev:?}")),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let mut two = fed();
        let mut by_batch = Vec::new();
        let end_two = loop {
            let mut n = 0;
            let polled = two.poll_messages(now, limit, |m| {
                n += 1;
                by_batch.push(format!("{:?}", crate::Event::Message(m)));
            });
            match polled {
                Ok(Some(ev)) => by_batch.push(format!("{ev:?}")),
                Ok(None) if n == limit => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(by_event, by_batch);
        assert_eq!(end_one, end_two);
    }
}

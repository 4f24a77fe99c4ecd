//! Fuzz target bodies (feature `fuzzing`). The thin files in `fuzz/` call
//! these, and the workspace tests replay `fuzz/corpus/` through them.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::wire::{Command, Metadata};
use crate::{Config, Connection, FrameDecoder, Greeting, Null, SocketType};

/// Feeds arbitrary bytes to the frame decoder with a limit.
pub fn frame_decoder(data: &[u8]) {
    let mut dec = FrameDecoder::new(Some(1 << 20));
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = dec.decode(&mut buf) {}
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

/// A NULL connection fed a valid greeting, then arbitrary bytes.
pub fn connection(data: &[u8]) {
    let now = Instant::now();
    for t in [SocketType::Pub, SocketType::Pull, SocketType::Rep] {
        let mut c = Connection::new(Config::new(t), Box::new(Null::new()), now);
        let mut input = Greeting::new(crate::MechanismName::NULL, false)
            .emit()
            .to_vec();
        input.extend_from_slice(data);
        c.recv_buffer().extend_from_slice(&input);
        while let Ok(Some(_)) = c.poll_event(now) {}
    }
}

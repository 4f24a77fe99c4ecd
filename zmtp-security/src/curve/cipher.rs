//! CURVE traffic: one MESSAGE box per frame (RFC 26 §"MESSAGE", libzmq's
//! `curve_mechanism_base_t::encode`/`decode`).
//!
//! ```text
//! MESSAGE = %x07 "MESSAGE" short-nonce(8) box[flags(1) payload]
//! flags   = bit 0 MORE, bit 1 COMMAND
//! ```
//!
//! libzmq sends MESSAGE in an ordinary data frame (flags 0x00, or 0x02 when
//! long), not a command frame; a MESSAGE in a command frame is decrypted by
//! libzmq and then silently dropped. MORE and COMMAND travel inside the box.
//! Short nonces strictly increase; a replayed or reordered MESSAGE closes the
//! connection (the CVE-2014-7203 lesson).

use bytes::{Buf, BytesMut};
use zmtp_core::{Error, FrameCipher, Result};

use super::crypto::{BoxKey, TAG_LEN, nonce};
use zmtp_core::error::cryptographic as crypto_err;

const MESSAGE: &[u8; 8] = b"\x07MESSAGE";
/// Command name, short nonce, tag and the flags byte.
const OVERHEAD: usize = 8 + 8 + TAG_LEN + 1;

/// Proof that a handshake authenticated the peer. Only the CURVE handshake
/// states can make one, so no code path builds a cipher without it.
pub(crate) struct Authenticated(());

impl Authenticated {
    pub(crate) fn new() -> Authenticated {
        Authenticated(())
    }
}

/// The traffic cipher of an established CURVE connection.
pub(crate) struct CurveCipher {
    key: BoxKey,
    send_prefix: &'static [u8; 16],
    recv_prefix: &'static [u8; 16],
    next_send: u64,
    last_recv: u64,
}

impl CurveCipher {
    /// `next_send` is our next short nonce; `last_recv` is the peer's last
    /// one seen in the handshake.
    pub(crate) fn new(
        key: BoxKey,
        is_client: bool,
        next_send: u64,
        last_recv: u64,
        _proof: Authenticated,
    ) -> CurveCipher {
        let (send_prefix, recv_prefix) = if is_client {
            (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES")
        } else {
            (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC")
        };
        CurveCipher {
            key,
            send_prefix,
            recv_prefix,
            next_send,
            last_recv,
        }
    }
}

impl FrameCipher for CurveCipher {
    fn overhead(&self) -> usize {
        OVERHEAD
    }

    #[inline]
    fn seal(&mut self, more: bool, command: bool, body: &[u8], out: &mut BytesMut) -> Result<()> {
        let n = self.next_send;
        // A nonce is never reused: stop before the counter wraps.
        self.next_send = n
            .checked_add(1)
            .ok_or_else(|| crypto_err("nonce space exhausted"))?;
        let start = out.len();
        out.reserve(OVERHEAD + body.len());
        out.extend_from_slice(MESSAGE);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(&[u8::from(more) | (u8::from(command) << 1)]);
        out.extend_from_slice(body);
        let tag = self.key.seal_in_place(
            &nonce(self.send_prefix, &n.to_be_bytes()),
            &mut out[start + 32..],
        );
        out[start + 16..start + 32].copy_from_slice(&tag);
        Ok(())
    }

    #[inline]
    fn open(&mut self, mut wire: BytesMut) -> Result<(bool, bool, BytesMut)> {
        if wire.len() < OVERHEAD || &wire[..8] != MESSAGE {
            return Err(Error::Peer(zmtp_core::PeerError::Malformed(
                "CURVE MESSAGE",
            )));
        }
        let mut short = [0u8; 8];
        short.copy_from_slice(&wire[8..16]);
        let n = u64::from_be_bytes(short);
        if n <= self.last_recv {
            return Err(crypto_err("replayed or reordered MESSAGE nonce"));
        }
        let (head, ct) = wire.split_at_mut(32);
        self.key
            .open_in_place(&nonce(self.recv_prefix, &short), &head[16..32], ct)?;
        self.last_recv = n;
        let flags = wire[32];
        wire.advance(OVERHEAD);
        Ok((flags & 0x01 != 0, flags & 0x02 != 0, wire))
    }
}

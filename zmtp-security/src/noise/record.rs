//! The record layer.
//!
//! ```text
//! record    = length(2, network order) noise-message(length)
//! length    = 16 .. 65535   (a Noise message: ciphertext and 16-byte tag)
//! plaintext = the ZMTP frame stream (headers and bodies), in order
//! ```
//!
//! The writer seals everything queued when it runs into as few records as
//! fit (at most 65519 plaintext bytes each; a large frame continues in the
//! next record) and waits for nothing more. The reader rejects a record
//! shorter than the tag and any record that does not decrypt; nonces are
//! implicit counters, so a replayed, reordered or dropped record fails to
//! decrypt and closes the connection. Both directions rekey (Noise `REKEY`)
//! after every [`REKEY_INTERVAL`] records they sent or received.

use bytes::{Buf, BytesMut};
use snow::TransportState;
use zmtp_core::error::{PeerError, cryptographic as crypto};
use zmtp_core::{Error, Result, StreamCipher};

/// Largest Noise message (the Noise specification's limit).
pub const MAX_RECORD: usize = 65535;
/// Largest plaintext in one record.
pub const MAX_PLAINTEXT: usize = MAX_RECORD - TAG;
/// Records per direction between rekeys.
pub const REKEY_INTERVAL: u64 = 1000;

const TAG: usize = 16;

/// The record cipher of an established NOISE connection.
pub(crate) struct Records {
    transport: TransportState,
    sent: u64,
    received: u64,
}

impl Records {
    /// `sent` and `received` count the transport messages already used in
    /// each direction (the server's READY is one).
    pub(crate) fn new(transport: TransportState, sent: u64, received: u64) -> Records {
        Records {
            transport,
            sent,
            received,
        }
    }
}

impl StreamCipher for Records {
    fn seal(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<()> {
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            let len = chunk.len() + TAG;
            let start = out.len();
            out.resize(start + 2 + len, 0);
            out[start..start + 2].copy_from_slice(&(len as u16).to_be_bytes());
            let n = self
                .transport
                .write_message(chunk, &mut out[start + 2..])
                .map_err(|_| crypto("record sealing failed"))?;
            debug_assert_eq!(n, len);
            self.sent += 1;
            if self.sent % REKEY_INTERVAL == 0 {
                self.transport.rekey_outgoing();
            }
        }
        Ok(())
    }

    fn open(&mut self, wire: &mut BytesMut, plain: &mut BytesMut) -> Result<()> {
        loop {
            if wire.len() < 2 {
                return Ok(());
            }
            let len = usize::from(u16::from_be_bytes([wire[0], wire[1]]));
            if len < TAG {
                return Err(Error::Peer(PeerError::Malformed(
                    "NOISE record shorter than its tag",
                )));
            }
            if wire.len() < 2 + len {
                return Ok(());
            }
            let start = plain.len();
            plain.resize(start + len - TAG, 0);
            let n = match self
                .transport
                .read_message(&wire[2..2 + len], &mut plain[start..])
            {
                Ok(n) => n,
                Err(_) => {
                    // Leave no trace of a record that failed.
                    plain.truncate(start);
                    return Err(crypto(
                        "record does not decrypt (tampered, replayed or reordered)",
                    ));
                }
            };
            plain.truncate(start + n);
            wire.advance(2 + len);
            self.received += 1;
            if self.received % REKEY_INTERVAL == 0 {
                self.transport.rekey_incoming();
            }
        }
    }
}

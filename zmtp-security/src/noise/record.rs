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

use bytes::{Buf, BufMut, BytesMut};
use zeroize::Zeroizing;
use zmtp_core::error::{PeerError, cryptographic as crypto};
use zmtp_core::{Error, Result, StreamCipher};

use super::cipher::{AesGcm, TAG};

/// Largest Noise message (the Noise specification's limit).
pub const MAX_RECORD: usize = 65535;
/// Largest plaintext in one record.
pub const MAX_PLAINTEXT: usize = MAX_RECORD - TAG;
/// Records per direction between rekeys.
pub const REKEY_INTERVAL: u64 = 1000;

/// One direction's Noise `CipherState`: the key and the next nonce.
struct Direction {
    cipher: AesGcm,
    nonce: u64,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Direction {
        Direction {
            cipher: AesGcm::new(key),
            nonce: 0,
        }
    }

    /// Takes the next nonce; 2^64-1 is reserved for rekeying.
    fn take(&self) -> Result<u64> {
        if self.nonce == u64::MAX {
            return Err(crypto("NOISE nonces exhausted"));
        }
        Ok(self.nonce)
    }

    /// Counts a message sealed or opened with the nonce from [`take`], and
    /// rekeys after every [`REKEY_INTERVAL`] messages.
    ///
    /// [`take`]: Direction::take
    fn advance(&mut self) {
        self.nonce += 1;
        if self.nonce.is_multiple_of(REKEY_INTERVAL) {
            self.cipher.rekey();
        }
    }

    fn seal(&mut self, buf: &mut [u8]) -> Result<[u8; TAG]> {
        let tag = self.cipher.seal(self.take()?, &[], buf);
        self.advance();
        Ok(tag)
    }

    fn open(&mut self, buf: &mut [u8], tag: &[u8; TAG]) -> Result<()> {
        if !self.cipher.open(self.take()?, &[], buf, tag) {
            buf.fill(0);
            return Err(crypto(
                "record does not decrypt (tampered, replayed or reordered)",
            ));
        }
        self.advance();
        Ok(())
    }
}

/// The record cipher of an established NOISE connection: the two cipher
/// states of the handshake's `Split()`, counting every transport message
/// (the server's READY is the first in its direction).
pub(crate) struct Records {
    tx: Direction,
    rx: Direction,
}

impl Records {
    /// `split` is the handshake's `Split()`: the initiator's (client's)
    /// sending key first.
    pub(crate) fn new(initiator: bool, split: ([u8; 32], [u8; 32])) -> Records {
        let (a, b) = (Zeroizing::new(split.0), Zeroizing::new(split.1));
        let (tx, rx) = if initiator { (a, b) } else { (b, a) };
        Records {
            tx: Direction::new(&tx),
            rx: Direction::new(&rx),
        }
    }

    /// Seals one transport message (READY's body): ciphertext and tag.
    pub(crate) fn seal_message(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(plaintext.len() + TAG);
        v.extend_from_slice(plaintext);
        let tag = self.tx.seal(&mut v)?;
        v.extend_from_slice(&tag);
        Ok(v)
    }

    /// Opens one transport message (READY's body).
    pub(crate) fn open_message(&mut self, message: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let len = message
            .len()
            .checked_sub(TAG)
            .ok_or(Error::Peer(PeerError::Malformed(
                "NOISE message shorter than its tag",
            )))?;
        let (body, tag) = message.split_at(len);
        let tag: &[u8; TAG] = tag.try_into().expect("TAG bytes");
        let mut v = Zeroizing::new(body.to_vec());
        self.rx.open(&mut v, tag)?;
        Ok(v)
    }
}

impl StreamCipher for Records {
    fn seal(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<()> {
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            out.reserve(2 + chunk.len() + TAG);
            out.put_u16((chunk.len() + TAG) as u16);
            let start = out.len();
            out.extend_from_slice(chunk);
            let tag = self.tx.seal(&mut out[start..])?;
            out.extend_from_slice(&tag);
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
            let body = 2 + len - TAG;
            let tag: [u8; TAG] = wire[body..2 + len].try_into().expect("TAG bytes");
            let start = plain.len();
            plain.extend_from_slice(&wire[2..body]);
            if let Err(e) = self.rx.open(&mut plain[start..], &tag) {
                // Leave no trace of a record that failed.
                plain.truncate(start);
                return Err(e);
            }
            wire.advance(2 + len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished NN handshake with fixed ephemeral keys, on snow's own
    /// resolver (RustCrypto's AES-256-GCM, not ring): the same keys every
    /// time it runs.
    fn handshake() -> (snow::HandshakeState, snow::HandshakeState) {
        use super::super::handshake::snow_reference;
        let params: snow::params::NoiseParams = "Noise_NN_25519_AESGCM_BLAKE2s".parse().unwrap();
        let mut i = snow::Builder::with_resolver(params.clone(), snow_reference())
            .fixed_ephemeral_key_for_testing_only(&[1; 32])
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::with_resolver(params, snow_reference())
            .fixed_ephemeral_key_for_testing_only(&[2; 32])
            .build_responder()
            .unwrap();
        let (mut m, mut p) = ([0u8; 128], [0u8; 128]);
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut p).unwrap();
        (i, r)
    }

    /// Nonces and rekeys match an independent Noise implementation across
    /// several rekeys, in both directions.
    #[test]
    fn records_match_snow_transport_across_rekeys() {
        let (i, r) = handshake();
        let (mut snow_i, mut snow_r) = (
            i.into_transport_mode().unwrap(),
            r.into_transport_mode().unwrap(),
        );
        let (mut i, mut r) = handshake();
        let mut ours_i = Records::new(true, i.dangerously_get_raw_split());
        let mut ours_r = Records::new(false, r.dangerously_get_raw_split());
        let mut buf = [0u8; 64];
        for n in 0..REKEY_INTERVAL * 3 + 5 {
            let msg = n.to_le_bytes();
            let len = snow_i.write_message(&msg, &mut buf).unwrap();
            assert_eq!(ours_i.seal_message(&msg).unwrap(), &buf[..len], "{n}");
            let opened = ours_r.open_message(&buf[..len]).unwrap();
            assert_eq!(&opened[..], &msg);
            let len = snow_r.write_message(&msg, &mut buf).unwrap();
            assert_eq!(ours_r.seal_message(&msg).unwrap(), &buf[..len], "{n}");
            assert_eq!(&ours_i.open_message(&buf[..len]).unwrap()[..], &msg);
            if (n + 1) % REKEY_INTERVAL == 0 {
                snow_i.rekey_outgoing();
                snow_r.rekey_outgoing();
            }
        }
    }

    /// The handshake cipher (ring, through snow's `Cipher`) and snow's own
    /// (RustCrypto) interoperate in both roles, payloads included.
    #[test]
    fn handshake_cipher_interoperates_with_snow_default() {
        use super::super::handshake::{Resolver, snow_reference};
        let params: snow::params::NoiseParams = "Noise_XX_25519_AESGCM_BLAKE2s".parse().unwrap();
        let ours = || Box::new(Resolver::os());
        for ours_initiates in [true, false] {
            let (ri, rr): (
                snow::resolvers::BoxedCryptoResolver,
                snow::resolvers::BoxedCryptoResolver,
            ) = if ours_initiates {
                (ours(), snow_reference())
            } else {
                (snow_reference(), ours())
            };
            let mut i = snow::Builder::with_resolver(params.clone(), ri)
                .local_private_key(&[5; 32])
                .unwrap()
                .build_initiator()
                .unwrap();
            let mut r = snow::Builder::with_resolver(params.clone(), rr)
                .local_private_key(&[6; 32])
                .unwrap()
                .build_responder()
                .unwrap();
            let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
            let n = i.write_message(b"one", &mut m).unwrap();
            let k = r.read_message(&m[..n], &mut p).unwrap();
            assert_eq!(&p[..k], b"one");
            let n = r.write_message(b"two", &mut m).unwrap();
            let k = i.read_message(&m[..n], &mut p).unwrap();
            assert_eq!(&p[..k], b"two");
            let n = i.write_message(b"three", &mut m).unwrap();
            let k = r.read_message(&m[..n], &mut p).unwrap();
            assert_eq!(&p[..k], b"three");
            assert_eq!(i.get_handshake_hash(), r.get_handshake_hash());
            // A flipped byte in a sealed payload fails on the other side.
            let mut i = i.into_transport_mode().unwrap();
            let mut r = r.into_transport_mode().unwrap();
            let n = i.write_message(b"four", &mut m).unwrap();
            m[0] ^= 1;
            assert!(r.read_message(&m[..n], &mut p).is_err());
        }
    }

    #[test]
    fn a_failed_record_leaves_no_plaintext_and_stops_the_stream() {
        let (mut i, mut r) = handshake();
        let mut tx = Records::new(true, i.dangerously_get_raw_split());
        let mut rx = Records::new(false, r.dangerously_get_raw_split());
        let mut wire = BytesMut::new();
        tx.seal(b"first", &mut wire).unwrap();
        tx.seal(b"second", &mut wire).unwrap();
        let flip = wire.len() - 3;
        wire[flip] ^= 0x40;
        let mut plain = BytesMut::new();
        assert!(rx.open(&mut wire, &mut plain).is_err());
        // The first record opened; nothing of the tampered one remains.
        assert_eq!(&plain[..], b"first");
    }
}

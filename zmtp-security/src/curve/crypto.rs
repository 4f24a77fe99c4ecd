//! NaCl boxes for CURVE, composed from well-kept primitives.
//!
//! `crypto_box_beforenm` is X25519 followed by HSalsa20 over a zero nonce;
//! the box itself is XSalsa20-Poly1305 (`crypto_secretbox`). We compute the
//! X25519 step with x25519-dalek so that a non-contributory shared secret
//! (a low-order public key) is refused, as libsodium refuses it, and then
//! build the same XSalsa20-Poly1305 key `crypto_box` would.
//!
//! A box on the wire is the 16-byte Poly1305 tag followed by the ciphertext,
//! the layout of libsodium's `crypto_box_easy` and of libzmq's CURVE.

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use salsa20::cipher::consts::U10;
use zeroize::Zeroizing;
use zmtp_core::Error;
use zmtp_core::error::PeerError;

use crate::keys::{PublicKey, SecretKey};

/// Bytes a box adds.
pub(crate) const TAG_LEN: usize = 16;

pub(crate) fn crypto_err(what: &'static str) -> Error {
    Error::Peer(PeerError::Cryptographic(what))
}

/// A precomputed box key (libsodium's `beforenm`), or a secretbox key.
pub(crate) struct BoxKey(XSalsa20Poly1305);

impl BoxKey {
    /// The box key between our secret and the peer's public key.
    pub(crate) fn new(ours: &SecretKey, theirs: &PublicKey) -> Result<BoxKey, Error> {
        let shared = ours
            .diffie_hellman(theirs)
            .ok_or_else(|| crypto_err("non-contributory shared secret"))?;
        let key = Zeroizing::new(salsa20::hsalsa::<U10>(
            shared.as_slice().into(),
            &Default::default(),
        ));
        Ok(BoxKey(XSalsa20Poly1305::new(&key)))
    }

    /// A secretbox key (the cookie key).
    pub(crate) fn secret(key: &[u8; 32]) -> BoxKey {
        BoxKey(XSalsa20Poly1305::new(key.into()))
    }

    /// Encrypts `buf` in place and returns the tag.
    #[inline]
    pub(crate) fn seal_in_place(&self, nonce: &[u8; 24], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Encryption only fails for over-long buffers (> 2^38 bytes).
        self.0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", buf)
            .map(Into::into)
            .unwrap_or([0; TAG_LEN])
    }

    /// Appends the box (tag then ciphertext) of `plaintext` to `out`.
    pub(crate) fn seal(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(plaintext);
        let tag = self.seal_in_place(nonce, &mut out[start + TAG_LEN..]);
        out[start..start + TAG_LEN].copy_from_slice(&tag);
    }

    /// Decrypts `ct` in place given its tag.
    #[inline]
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; 24],
        tag: &[u8],
        ct: &mut [u8],
    ) -> Result<(), Error> {
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), b"", ct, Tag::from_slice(tag))
            .map_err(|_| crypto_err("box does not open"))
    }

    /// Opens a box (tag then ciphertext) into a new, zeroized-on-drop buffer.
    pub(crate) fn open(&self, nonce: &[u8; 24], boxed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if boxed.len() < TAG_LEN {
            return Err(crypto_err("box shorter than its tag"));
        }
        let mut pt = Zeroizing::new(boxed[TAG_LEN..].to_vec());
        self.open_in_place(nonce, &boxed[..TAG_LEN], &mut pt)?;
        Ok(pt)
    }
}

/// A 24-byte nonce from a prefix and the rest.
pub(crate) fn nonce(prefix: &[u8], rest: &[u8]) -> [u8; 24] {
    debug_assert_eq!(prefix.len() + rest.len(), 24);
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(rest);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::aead::Aead;

    #[test]
    fn matches_crypto_box_salsabox() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        let ours = BoxKey::new(&a, &b.public_key()).unwrap();
        let reference = crypto_box::SalsaBox::new(
            &crypto_box::PublicKey::from(*b.public_key().as_bytes()),
            &crypto_box::SecretKey::from(*a.as_bytes()),
        );
        let n = nonce(b"CurveZMQMESSAGEC", &7u64.to_be_bytes());
        let msg = b"the same bytes as libsodium's crypto_box_easy";
        let mut sealed = Vec::new();
        ours.seal(&n, msg, &mut sealed);
        let expect = reference.encrypt(Nonce::from_slice(&n), &msg[..]).unwrap();
        assert_eq!(sealed, expect);
        // The other side opens it with its own key.
        let theirs = BoxKey::new(&b, &a.public_key()).unwrap();
        assert_eq!(&theirs.open(&n, &sealed).unwrap()[..], msg);
        sealed[20] ^= 1;
        assert!(theirs.open(&n, &sealed).is_err());
    }
}

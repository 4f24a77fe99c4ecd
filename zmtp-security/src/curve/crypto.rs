//! NaCl boxes for CURVE, composed from well-kept primitives.
//!
//! `crypto_box_beforenm` is X25519 followed by HSalsa20 over a zero nonce;
//! the box itself is `crypto_secretbox`: XSalsa20 whose first 32 keystream
//! bytes key a one-time Poly1305 over the ciphertext. We compute the X25519
//! step with x25519-dalek so that a non-contributory shared secret (a
//! low-order public key) is refused, as libsodium refuses it.
//!
//! Small boxes come from two well-kept crates: RustCrypto's `salsa20` for
//! the stream and orion's Poly1305. Large boxes come from `salsabox`, whose
//! Salsa20 core is SIMD chosen at run time (SSE4.2, AVX2, AVX-512; no
//! `unsafe`) and whose Poly1305 is RustCrypto's: measured here
//! (`cargo bench -p zmtp-security --bench curve`), it seals 64 KiB about
//! three times as fast as the portable `salsa20`, at libsodium's rate. Its
//! Poly1305 pays a fixed set-up of about a microsecond per box in a default
//! build (no `-C target-cpu`; a library cannot set RUSTFLAGS for its users),
//! so below [`LARGE_BOX`] bytes the portable stream with orion's Poly1305,
//! about 0.1 µs for a short message, is faster. Both produce the same
//! bytes; the tests check them against `crypto_box::SalsaBox`.
//!
//! A box on the wire is the 16-byte Poly1305 tag followed by the ciphertext,
//! the layout of libsodium's `crypto_box_easy` and of libzmq's CURVE.

use orion::hazardous::mac::poly1305::{OneTimeKey, Poly1305};
use salsa20::XSalsa20;
use salsa20::cipher::consts::U10;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;
use zmtp_core::Error;
use zmtp_core::error::cryptographic as crypto_err;

use crate::keys::{PublicKey, SecretKey};

/// From this many bytes on, boxes are sealed and opened by `salsabox`.
pub(crate) const LARGE_BOX: usize = 1024;

/// Poly1305 of `data` under a one-time key (orion's portable one).
#[inline]
fn mac(otk: &[u8; 32], data: &[u8]) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    // A 32-byte slice always makes a key, and one-shot MACs only fail on a
    // bad key.
    if let Ok(t) = OneTimeKey::from_slice(otk).and_then(|k| Poly1305::poly1305(&k, data)) {
        tag.copy_from_slice(t.unprotected_as_bytes());
    }
    tag
}

/// Bytes a box adds.
pub(crate) const TAG_LEN: usize = 16;

/// A precomputed box key (libsodium's `beforenm`), or a secretbox key: the
/// key itself for small boxes, and `salsabox`'s copy of it for large ones.
pub(crate) struct BoxKey(Zeroizing<[u8; 32]>, salsabox::SecretBox);

impl BoxKey {
    /// The box key between our secret and the peer's public key.
    pub(crate) fn new(ours: &SecretKey, theirs: &PublicKey) -> Result<BoxKey, Error> {
        let shared = ours
            .diffie_hellman(theirs)
            .ok_or_else(|| crypto_err("non-contributory shared secret"))?;
        let key = Zeroizing::new(salsa20::hsalsa::<U10>(
            &(*shared).into(),
            &Default::default(),
        ));
        Ok(BoxKey::secret(&(*key).into()))
    }

    /// A secretbox key (the cookie key).
    pub(crate) fn secret(key: &[u8; 32]) -> BoxKey {
        BoxKey(Zeroizing::new(*key), salsabox::SecretBox::from_key(key))
    }

    /// The stream for `nonce`, advanced past the 32 bytes that make the
    /// one-time Poly1305 key, and that key.
    #[inline]
    fn stream(&self, nonce: &[u8; 24]) -> (XSalsa20, Zeroizing<[u8; 32]>) {
        let mut cipher = XSalsa20::new((&*self.0).into(), nonce.into());
        let mut otk = Zeroizing::new([0u8; 32]);
        cipher.apply_keystream(&mut otk[..]);
        (cipher, otk)
    }

    /// Encrypts `buf` in place and returns the tag.
    #[inline]
    pub(crate) fn seal_in_place(&self, nonce: &[u8; 24], buf: &mut [u8]) -> [u8; TAG_LEN] {
        if buf.len() >= LARGE_BOX {
            return self.1.encrypt_detached(nonce, buf);
        }
        let (mut cipher, otk) = self.stream(nonce);
        cipher.apply_keystream(buf);
        mac(&otk, buf)
    }

    /// Appends the box (tag then ciphertext) of `plaintext` to `out`.
    pub(crate) fn seal(&self, nonce: &[u8; 24], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(plaintext);
        let tag = self.seal_in_place(nonce, &mut out[start + TAG_LEN..]);
        out[start..start + TAG_LEN].copy_from_slice(&tag);
    }

    /// Checks the tag (in constant time), then decrypts `ct` in place.
    #[inline]
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; 24],
        tag: &[u8],
        ct: &mut [u8],
    ) -> Result<(), Error> {
        if ct.len() >= LARGE_BOX {
            let tag: &[u8; TAG_LEN] = tag
                .try_into()
                .map_err(|_| crypto_err("box does not open"))?;
            return self
                .1
                .decrypt_detached(nonce, ct, tag)
                .map_err(|_| crypto_err("box does not open"));
        }
        let (mut cipher, otk) = self.stream(nonce);
        let expected = mac(&otk, ct);
        if !bool::from(expected.ct_eq(tag)) {
            return Err(crypto_err("box does not open"));
        }
        cipher.apply_keystream(ct);
        Ok(())
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
        let expect = reference
            .encrypt(crypto_box::Nonce::from_slice(&n), &msg[..])
            .unwrap();
        assert_eq!(sealed, expect);
        // The other side opens it with its own key.
        let theirs = BoxKey::new(&b, &a.public_key()).unwrap();
        assert_eq!(&theirs.open(&n, &sealed).unwrap()[..], msg);
        sealed[20] ^= 1;
        assert!(theirs.open(&n, &sealed).is_err());
        // Every length around the 64-byte Salsa20 block boundaries and the
        // switch between the two implementations, both ways, and tampering
        // caught by both.
        for len in [
            0usize,
            1,
            31,
            32,
            33,
            63,
            64,
            65,
            127,
            1000,
            LARGE_BOX - 1,
            LARGE_BOX,
            LARGE_BOX + 1,
            4095,
            4096,
            70_000,
        ] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut sealed = Vec::new();
            ours.seal(&n, &msg, &mut sealed);
            let expect = reference
                .encrypt(crypto_box::Nonce::from_slice(&n), &msg[..])
                .unwrap();
            assert_eq!(sealed, expect, "length {len}");
            assert_eq!(&theirs.open(&n, &sealed).unwrap()[..], &msg[..]);
            let last = sealed.len() - 1;
            sealed[last] ^= 0x80;
            assert!(theirs.open(&n, &sealed).is_err(), "tampered, length {len}");
        }
    }

    #[test]
    fn secretbox_matches_nacl() {
        use crypto_secretbox::KeyInit;
        let k = [0x42u8; 32];
        let n = nonce(b"COOKIE--", &[9u8; 16]);
        let mut ours = Vec::new();
        BoxKey::secret(&k).seal(&n, b"cookie contents", &mut ours);
        let reference = crypto_secretbox::XSalsa20Poly1305::new((&k).into())
            .encrypt((&n).into(), &b"cookie contents"[..])
            .unwrap();
        assert_eq!(ours, reference);
        assert_eq!(
            &BoxKey::secret(&k).open(&n, &ours).unwrap()[..],
            b"cookie contents"
        );
        assert_eq!(ours.len(), 16 + 15);
    }
}

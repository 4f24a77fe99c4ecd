//! AESGCM (AES-256-GCM) as the Noise specification uses it, on `ring`'s
//! implementation.
//!
//! The cipher was chosen by measurement (`cargo bench -p zmtp-security
//! --bench aead`, one Noise message sealed in a default release build):
//! ring's AES-256-GCM sealed a 65519-byte record at 8.6 GB/s and a 64-byte
//! one in 78 ns, ring's ChaCha20-Poly1305 at 2.7 GB/s and 168 ns,
//! RustCrypto's `chacha20poly1305` (what snow's own resolver uses) at
//! 1.6 GB/s and 1,600 ns. Records are the whole cost of a NOISE connection
//! in traffic, so the fastest is used for both the handshake (through
//! snow's [`snow::types::Cipher`]) and the record layer (in place, no
//! copy). ring uses the processor's AES and carry-less multiply
//! instructions where it has them and a constant-time software AES where
//! it does not.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// Bytes of a GCM tag.
pub(crate) const TAG: usize = 16;

/// One Noise cipher key. Nonces are the caller's: a Noise `CipherState`
/// never reuses one, and [`Records`](super::record::Records) counts them.
pub(crate) struct AesGcm {
    key: LessSafeKey,
}

impl std::fmt::Debug for AesGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesGcm(..)")
    }
}

/// The Noise AESGCM nonce: 32 zero bits, then the counter in big-endian
/// order.
fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(b)
}

impl AesGcm {
    pub(crate) fn new(key: &[u8; 32]) -> AesGcm {
        AesGcm {
            // A 32-byte key is the only thing `new` checks.
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key")),
        }
    }

    /// Encrypts `buf` in place; returns the tag.
    pub(crate) fn seal(&self, n: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG] {
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(n), Aad::from(ad), buf)
            .expect("AES-256-GCM seals any Noise message");
        let mut t = [0u8; TAG];
        t.copy_from_slice(tag.as_ref());
        t
    }

    /// Decrypts `buf` in place when `tag` authenticates it; on failure the
    /// contents of `buf` are unspecified and must not be used.
    pub(crate) fn open(&self, n: u64, ad: &[u8], buf: &mut [u8], tag: &[u8; TAG]) -> bool {
        self.key
            .open_in_place_separate_tag(nonce(n), Aad::from(ad), Tag::from(*tag), buf, 0..)
            .is_ok()
    }

    /// Noise `REKEY`: the first 32 bytes of 32 zero bytes sealed with the
    /// nonce 2^64-1 and no associated data.
    pub(crate) fn rekey(&mut self) {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        let _tag = self.seal(u64::MAX, &[], &mut k[..]);
        *self = AesGcm::new(&k);
    }
}

/// snow's cipher interface over [`AesGcm`], for the handshake messages.
#[derive(Default)]
pub(crate) struct SnowAesGcm(Option<AesGcm>);

impl SnowAesGcm {
    fn key(&self) -> &AesGcm {
        // snow sets the key before it encrypts or decrypts anything.
        self.0.as_ref().expect("snow set the key first")
    }
}

impl snow::types::Cipher for SnowAesGcm {
    fn name(&self) -> &'static str {
        "AESGCM"
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.0 = Some(AesGcm::new(key));
    }

    fn encrypt(&self, n: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        out[..len].copy_from_slice(plaintext);
        let tag = self.key().seal(n, ad, &mut out[..len]);
        out[len..len + TAG].copy_from_slice(&tag);
        len + TAG
    }

    fn decrypt(
        &self,
        n: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let len = ciphertext
            .len()
            .checked_sub(TAG)
            .ok_or(snow::Error::Decrypt)?;
        if out.len() < len {
            return Err(snow::Error::Decrypt);
        }
        let (body, tag) = ciphertext.split_at(len);
        let tag: &[u8; TAG] = tag.try_into().map_err(|_| snow::Error::Decrypt)?;
        out[..len].copy_from_slice(body);
        if self.key().open(n, ad, &mut out[..len], tag) {
            Ok(len)
        } else {
            out[..len].fill(0);
            Err(snow::Error::Decrypt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::hex;
    use super::*;

    // The GCM specification's (McGrew and Viega) AES-256 test cases 13 and
    // 14: a zero key and a zero 96-bit IV, which is also the Noise nonce 0.
    #[test]
    fn gcm_specification_vectors() {
        let c = AesGcm::new(&[0; 32]);
        assert_eq!(
            hex(&c.seal(0, &[], &mut [])),
            "530f8afbc74536b9a963b4f1c4cb738b"
        );
        let mut buf = [0u8; 16];
        let tag = c.seal(0, &[], &mut buf);
        assert_eq!(hex(&buf), "cea7403d4d606b6e074ec5d3baf39d18");
        assert_eq!(hex(&tag), "d0d1c8a799996bf0265b98b5d48ab919");
    }

    #[test]
    fn the_counter_is_big_endian_after_four_zero_bytes() {
        // Nonce 1 must be the IV 00..0001, not 00000000 01000000 00000000.
        let c = AesGcm::new(&[7; 32]);
        let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
        let mut iv = [0u8; 12];
        iv[11] = 1;
        let mut a = *b"sixteen byte msg";
        let mut b = a;
        let ta = c.seal(1, b"ad", &mut a);
        let tb = raw
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(b"ad"), &mut b)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(&ta[..], tb.as_ref());
    }

    #[test]
    fn open_rejects_a_flipped_bit_and_the_wrong_nonce() {
        let c = AesGcm::new(&[9; 32]);
        let mut buf = *b"sixteen byte msg";
        let tag = c.seal(5, b"ad", &mut buf);
        let sealed = buf;
        assert!(c.open(5, b"ad", &mut buf, &tag));
        assert_eq!(&buf, b"sixteen byte msg");
        let mut b = sealed;
        assert!(!c.open(6, b"ad", &mut b, &tag));
        let mut b = sealed;
        b[3] ^= 1;
        assert!(!c.open(5, b"ad", &mut b, &tag));
        let mut b = sealed;
        assert!(!c.open(5, b"", &mut b, &tag));
    }
}

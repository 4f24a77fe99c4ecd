//! The Diffie-Hellman function and the hash of our NOISE protocols, for
//! snow's handshake: X25519 from `x25519-dalek` (the CURVE mechanism's
//! too) and BLAKE2s from `blake2`. The cipher, AES-256-GCM, is ring's
//! (`cipher.rs`). Supplying these ourselves keeps snow's default resolver,
//! and the ChaCha20-Poly1305 it cannot be built without, out of the
//! library. The tests check both against snow's own implementations.

use blake2::Digest;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// X25519 as snow's `Dh`: RFC 7748's function, the secret clamped, the
/// result not checked for being all zero (as snow's own, and Noise §12.1
/// allows: the protocols here never use a public key they did not get
/// through the handshake's transcript).
#[derive(Default)]
pub(super) struct X25519 {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl X25519 {
    fn derive(&mut self) {
        let s = StaticSecret::from(*self.secret);
        self.public = PublicKey::from(&s).to_bytes();
    }
}

impl snow::types::Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let n = privkey.len().min(32);
        self.secret[..n].copy_from_slice(&privkey[..n]);
        self.derive();
    }

    fn generate(&mut self, rng: &mut dyn snow::types::Random) -> Result<(), snow::Error> {
        rng.try_fill_bytes(&mut self.secret[..])?;
        self.derive();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.secret[..]
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let theirs: [u8; 32] = pubkey
            .get(..32)
            .and_then(|p| p.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        let shared = StaticSecret::from(*self.secret).diffie_hellman(&PublicKey::from(theirs));
        let n = out.len().min(32);
        out[..n].copy_from_slice(&shared.as_bytes()[..n]);
        Ok(())
    }
}

/// BLAKE2s-256 as snow's `Hash` (HMAC and HKDF are snow's, from it).
#[derive(Default)]
pub(super) struct Blake2s(blake2::Blake2s256);

impl snow::types::Hash for Blake2s {
    fn name(&self) -> &'static str {
        "BLAKE2s"
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        32
    }

    fn reset(&mut self) {
        Digest::reset(&mut self.0);
    }

    fn input(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let digest = self.0.finalize_reset();
        let n = out.len().min(32);
        out[..n].copy_from_slice(&digest[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    use snow::types::{Dh, Hash};

    #[test]
    fn x25519_agrees_with_snows_own() {
        let mut theirs = DefaultResolver
            .resolve_dh(&snow::params::DHChoice::Curve25519)
            .unwrap();
        for seed in 0..20u8 {
            let a: Vec<u8> = (0..32).map(|i| i ^ seed).collect();
            let b: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7) ^ seed).collect();
            let mut ours = X25519::default();
            ours.set(&a);
            theirs.set(&a);
            assert_eq!(ours.pubkey(), theirs.pubkey());
            let mut other = X25519::default();
            other.set(&b);
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            ours.dh(other.pubkey(), &mut x).unwrap();
            theirs.dh(other.pubkey(), &mut y).unwrap();
            assert_eq!(x, y);
        }
    }

    #[test]
    fn blake2s_agrees_with_snows_own_hash_and_hmac() {
        let mut theirs = DefaultResolver
            .resolve_hash(&snow::params::HashChoice::Blake2s)
            .unwrap();
        let mut ours = Blake2s::default();
        for len in [0usize, 1, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            ours.reset();
            ours.input(&data);
            ours.result(&mut x);
            theirs.reset();
            theirs.input(&data);
            theirs.result(&mut y);
            assert_eq!(x, y, "hash of {len} bytes");
            ours.hmac(&[9; 32], &data, &mut x);
            theirs.hmac(&[9; 32], &data, &mut y);
            assert_eq!(x, y, "hmac of {len} bytes");
        }
    }
}

//! Where the mechanisms take their random bytes from: ephemeral keys,
//! nonces and cookies.
//!
//! Each mechanism is given its source when it is made, the operating
//! system's generator ([`OsRandom`]) unless told otherwise; nothing global
//! changes it, and no Cargo feature does. Tests and fuzz targets give a
//! [`Deterministic`] source to the mechanisms they make, so that a recorded
//! handshake replays byte for byte.

use std::sync::{Arc, Mutex};

use rand_core::RngCore;

/// A source of random bytes.
pub trait RandomSource: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// A shared source, as the mechanisms hold it.
pub type Random = Arc<dyn RandomSource>;

/// The operating system's cryptographically secure generator
/// (`getrandom`). The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        rand_core::OsRng.fill_bytes(buf);
    }
}

/// The operating system's generator, shared.
pub fn os() -> Random {
    Arc::new(OsRandom)
}

/// A fixed sequence of bytes from a seed (splitmix64): the same seed gives
/// the same keys and nonces every time. **Not random**: for tests and fuzz
/// targets only, never for keys that protect anything.
#[derive(Debug)]
pub struct Deterministic {
    state: Mutex<u64>,
}

impl Deterministic {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Deterministic {
        Deterministic {
            state: Mutex::new(seed),
        }
    }
}

impl RandomSource for Deterministic {
    fn fill(&self, buf: &mut [u8]) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for b in buf.iter_mut() {
            let mut z = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *s = z;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *b = (z ^ (z >> 31)) as u8;
        }
    }
}

/// `N` bytes from `r`.
pub(crate) fn array<const N: usize>(r: &dyn RandomSource) -> [u8; N] {
    let mut a = [0u8; N];
    r.fill(&mut a);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_sequence_and_the_os_another_each_time() {
        let (a, b) = (Deterministic::new(7), Deterministic::new(7));
        assert_eq!(array::<32>(&a), array::<32>(&b));
        assert_ne!(array::<32>(&a), array::<32>(&Deterministic::new(8)));
        assert_ne!(array::<32>(&OsRandom), array::<32>(&OsRandom));
    }
}

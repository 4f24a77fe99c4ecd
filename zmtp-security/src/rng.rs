//! The one source of randomness for keys, nonces and cookies.
//!
//! Normally the operating system's CSPRNG (`getrandom`, through
//! `rand_core::OsRng`). With the `fuzzing` feature — never enabled in a normal
//! build — a deterministic generator per thread, so that a recorded valid
//! handshake in a fuzz corpus can be replayed and mutated past its first
//! message.

#[cfg(not(feature = "fuzzing"))]
pub(crate) fn fill(buf: &mut [u8]) {
    use rand_core::RngCore;
    rand_core::OsRng.fill_bytes(buf);
}

#[cfg(feature = "fuzzing")]
const SEED: u64 = 0x5EED_0000_0000_0001;

#[cfg(feature = "fuzzing")]
thread_local!(static STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(SEED) });

#[cfg(feature = "fuzzing")]
pub(crate) fn fill(buf: &mut [u8]) {
    STATE.with(|s| {
        for b in buf.iter_mut() {
            // splitmix64: deterministic, and good enough to give distinct keys.
            let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *b = (z ^ (z >> 31)) as u8;
        }
    });
}

/// Restarts this thread's deterministic generator (fuzzing builds only), so
/// that every fuzz input sees the same keys and nonces.
#[cfg(feature = "fuzzing")]
pub fn reset_deterministic() {
    STATE.with(|s| s.set(SEED));
}

pub(crate) fn array<const N: usize>() -> [u8; N] {
    let mut a = [0u8; N];
    fill(&mut a);
    a
}

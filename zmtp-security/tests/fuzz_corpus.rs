//! Replays every file of `fuzz/corpus/<target>/` through its target body, so
//! that the stable test command covers every fuzz target without
//! cargo-fuzz. Build with `--features fuzzing`.
#![cfg(feature = "fuzzing")]
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn replay(target: &str, body: fn(&[u8])) {
    let files = corpus(target);
    for (path, data) in &files {
        let r = std::panic::catch_unwind(|| body(data));
        assert!(r.is_ok(), "{target}: {} panicked", path.display());
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn frame_decoder() {
    replay("frame_decoder", zmtp_core::fuzz::frame_decoder);
}

#[test]
fn greeting() {
    replay("greeting", zmtp_core::fuzz::greeting);
}

#[test]
fn command() {
    replay("command", zmtp_core::fuzz::command);
}

#[test]
fn connection() {
    replay("connection", zmtp_core::fuzz::connection);
}

#[test]
fn z85() {
    replay("z85", zmtp_security::fuzz::z85);
}

#[test]
fn plain_server() {
    replay("plain_server", zmtp_security::fuzz::plain_server);
}

#[test]
fn plain_client() {
    replay("plain_client", zmtp_security::fuzz::plain_client);
}

#[test]
fn curve_server() {
    replay("curve_server", zmtp_security::fuzz::curve_server);
}

#[test]
fn curve_client() {
    replay("curve_client", zmtp_security::fuzz::curve_client);
}

use zmtp_security::NoisePattern;

macro_rules! noise_targets {
    ($($name:ident, $target:literal, $f:ident, $p:ident;)*) => {$(
        #[test]
        fn $name() {
            replay($target, |d| zmtp_security::fuzz::$f(NoisePattern::$p, d));
        }
    )*};
}

noise_targets! {
    noise_xx_server, "noise_xx_server", noise_server, XX;
    noise_xx_client, "noise_xx_client", noise_client, XX;
    noise_ik_server, "noise_ik_server", noise_server, IK;
    noise_ik_client, "noise_ik_client", noise_client, IK;
    noise_nk_server, "noise_nk_server", noise_server, NK;
    noise_nk_client, "noise_nk_client", noise_client, NK;
}

/// The recorded handshakes are deep seeds: replayed, they complete the
/// handshake, and so do the committed copies.
#[test]
fn seeds_are_valid_handshakes() {
    for (target, data) in zmtp_security::fuzz::seeds() {
        if target == "z85" {
            continue;
        }
        assert!(
            zmtp_security::fuzz::handshake_completes(target, &data),
            "{target}"
        );
        let committed = corpus(target);
        assert!(
            committed
                .iter()
                .any(|(_, d)| zmtp_security::fuzz::handshake_completes(target, d)),
            "no committed {target} seed completes the handshake"
        );
    }
}

/// The seeds recorded from a real libzmq peer (`fuzz/record_libzmq_seeds.py`:
/// a libzmq client for the server targets, a libzmq server for the client
/// targets) replay as complete handshakes too.
#[test]
fn libzmq_seeds_are_valid_handshakes() {
    let mut found = 0;
    for target in [
        "curve_server",
        "plain_server",
        "curve_client",
        "plain_client",
    ] {
        for (path, data) in corpus(target) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("libzmq-") {
                found += 1;
                assert!(
                    zmtp_security::fuzz::handshake_completes(target, &data),
                    "{target}/{name}"
                );
            }
        }
    }
    assert_eq!(
        found, 4,
        "libzmq-recorded seeds for the PLAIN and CURVE targets"
    );
}

/// Writes the seed corpora (run once, by hand:
/// `cargo test -p zmtp-security --features fuzzing --test fuzz_corpus -- --ignored`).
#[test]
#[ignore]
fn write_seeds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (n, (target, data)) in zmtp_security::fuzz::seeds().into_iter().enumerate() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{n}")), &data).unwrap();
    }
}

/// Issue: the `fuzzing` feature replaced the operating system's generator
/// for every key in the process, so any crate enabling it made
/// `KeyPair::generate()` print the same key on every run. This file is
/// built with that feature: keys must still come from the operating
/// system, and only a mechanism given a `Deterministic` source draws from
/// it.
#[test]
fn keys_stay_random_with_the_fuzzing_feature() {
    use zmtp_security::KeyPair;
    use zmtp_security::random::Deterministic;
    let seeded = KeyPair::generate_with(&Deterministic::new(0x5EED_0000_0000_0001)).public;
    // A fresh thread: the old thread-local generator started at its seed.
    let first = std::thread::spawn(|| KeyPair::generate().public)
        .join()
        .expect("thread");
    assert_ne!(first, seeded);
    assert_ne!(KeyPair::generate().public, KeyPair::generate().public);
}

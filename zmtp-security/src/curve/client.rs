//! The CURVE client, as typestate:
//!
//! ```text
//! start ──HELLO──► ExpectWelcome ──INITIATE──► ExpectReady ──► Established
//! ```
//!
//! Each state is consumed by its transition, and only `ExpectReady::ready`
//! (a READY that opened under the session key) yields the proof the traffic
//! cipher needs.

use bytes::Bytes;
use zeroize::Zeroizing;
use zmtp_core::wire::RawCommand;
use zmtp_core::{Metadata, Result};

use super::cipher::{Authenticated, CurveCipher};
use super::crypto::{BoxKey, nonce};
use crate::keys::{KeyPair, PublicKey};
use crate::random::RandomSource;
use zmtp_core::error::cryptographic as crypto_err;
use zmtp_core::error::{malformed, protocol};

/// Waiting for WELCOME, after HELLO.
pub(super) struct ExpectWelcome {
    ours: KeyPair,
    server: PublicKey,
    transient: KeyPair,
    /// c' with S: opens WELCOME.
    hello_key: BoxKey,
    local: Metadata,
}

/// Waiting for READY, after INITIATE.
pub(super) struct ExpectReady {
    session: BoxKey,
}

/// HELLO: version 1.0, 72 zero bytes, C', short nonce 1, and a box of 64
/// zero bytes from C' to S.
pub(super) fn start(
    ours: KeyPair,
    server: PublicKey,
    local: Metadata,
    random: &dyn RandomSource,
) -> Result<(ExpectWelcome, Bytes)> {
    let transient = KeyPair::generate_with(random);
    let hello_key = BoxKey::new(&transient.secret, &server)?;
    let short = 1u64.to_be_bytes();
    let mut hello = Vec::with_capacity(200);
    hello.extend_from_slice(b"\x05HELLO\x01\x00");
    // RFC 25's prose says 70 bytes of padding; libzmq sends 72, which makes
    // the 200-byte HELLO that every peer checks for.
    hello.extend_from_slice(&[0; 72]);
    hello.extend_from_slice(transient.public.as_bytes());
    hello.extend_from_slice(&short);
    hello_key.seal(&nonce(b"CurveZMQHELLO---", &short), &[0; 64], &mut hello);
    debug_assert_eq!(hello.len(), 200);
    Ok((
        ExpectWelcome {
            ours,
            server,
            transient,
            hello_key,
            local,
        },
        hello.into(),
    ))
}

impl ExpectWelcome {
    /// WELCOME: a 16-byte long nonce and a box of S' and the cookie. Answers
    /// with INITIATE: the cookie, short nonce 2, and a box of C, the vouch
    /// and our metadata.
    pub(super) fn welcome(
        self,
        body: &Bytes,
        random: &dyn RandomSource,
    ) -> Result<(ExpectReady, Bytes)> {
        let cmd = RawCommand::parse(body)?;
        if !cmd.is(b"WELCOME") {
            return Err(protocol("CURVE client: expected WELCOME"));
        }
        if body.len() != 168 {
            return Err(malformed("CURVE WELCOME"));
        }
        let data = &cmd.data;
        let pt = self
            .hello_key
            .open(&nonce(b"WELCOME-", &data[..16]), &data[16..])?;
        let server_transient =
            PublicKey::try_from(&pt[..32]).map_err(|_| crypto_err("zero key"))?;
        let cookie = &pt[32..128];
        let session = BoxKey::new(&self.transient.secret, &server_transient)?;

        // The vouch: C' and S boxed from C to S', proving we hold C's secret.
        let vouch_nonce: [u8; 16] = crate::random::array(random);
        let mut vouch_pt = [0u8; 64];
        vouch_pt[..32].copy_from_slice(self.transient.public.as_bytes());
        vouch_pt[32..].copy_from_slice(self.server.as_bytes());
        let vouch_key = BoxKey::new(&self.ours.secret, &server_transient)?;
        let mut vouch = Vec::with_capacity(80);
        vouch_key.seal(&nonce(b"VOUCH---", &vouch_nonce), &vouch_pt, &mut vouch);

        let mut inner = Zeroizing::new(Vec::with_capacity(128 + self.local.wire_len()));
        inner.extend_from_slice(self.ours.public.as_bytes());
        inner.extend_from_slice(&vouch_nonce);
        inner.extend_from_slice(&vouch);
        self.local.emit(&mut inner);

        let short = 2u64.to_be_bytes();
        let mut initiate = Vec::with_capacity(9 + 96 + 8 + 16 + inner.len());
        initiate.extend_from_slice(b"\x08INITIATE");
        initiate.extend_from_slice(cookie);
        initiate.extend_from_slice(&short);
        session.seal(&nonce(b"CurveZMQINITIATE", &short), &inner, &mut initiate);
        Ok((ExpectReady { session }, initiate.into()))
    }
}

impl ExpectReady {
    /// READY: short nonce and a box of the server's metadata under the
    /// session key. Opening it authenticates the server.
    pub(super) fn ready(self, body: &Bytes) -> Result<(CurveCipher, Metadata)> {
        let cmd = RawCommand::parse(body)?;
        if !cmd.is(b"READY") {
            return Err(protocol("CURVE client: expected READY"));
        }
        if body.len() < 30 {
            return Err(malformed("CURVE READY"));
        }
        let data = &cmd.data;
        let short = &data[..8];
        let pt = self
            .session
            .open(&nonce(b"CurveZMQREADY---", short), &data[8..])?;
        let peer = Metadata::parse(&Bytes::copy_from_slice(&pt))?;
        let mut s = [0u8; 8];
        s.copy_from_slice(short);
        let last_recv = u64::from_be_bytes(s);
        // Our HELLO was 1 and INITIATE 2: messages start at 3.
        let cipher = CurveCipher::new(self.session, true, 3, last_recv, Authenticated::new());
        Ok((cipher, peer))
    }
}

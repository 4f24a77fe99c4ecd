//! The CURVE server, as typestate:
//!
//! ```text
//! ExpectHello ──WELCOME──► ExpectInitiate ──► AwaitVerdict ──READY──► Established
//!                                                  └──ERROR (400/500) or silence (300)
//! ```
//!
//! As in libzmq (and unlike RFC 26's stateless ideal) the server keeps C',
//! s' and a per-connection cookie key between WELCOME and INITIATE; the
//! cookie is still checked, so a forged or replayed INITIATE fails.

use bytes::Bytes;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;
use zmtp_core::mechanism::{deny, merge_auth};
use zmtp_core::wire::RawCommand;
use zmtp_core::{AuthRequest, AuthVerdict, Credentials, MechanismName, Metadata, Result};

use super::cipher::{Authenticated, CurveCipher};
use super::crypto::{BoxKey, nonce};
use crate::keys::{KeyPair, PublicKey};
use crate::random::RandomSource;
use zmtp_core::error::cryptographic as crypto_err;
use zmtp_core::error::{malformed, protocol};

/// Waiting for INITIATE, after WELCOME.
pub(super) struct ExpectInitiate {
    client_transient: PublicKey,
    transient: KeyPair,
    cookie_key: Zeroizing<[u8; 32]>,
}

/// Waiting for the Authenticator, after a valid INITIATE.
pub(super) struct AwaitVerdict {
    session: BoxKey,
    peer: Metadata,
    initiate_nonce: u64,
}

fn short_nonce(b: &[u8]) -> u64 {
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[..8]);
    u64::from_be_bytes(s)
}

/// HELLO: exactly 200 bytes, version 1.0, C', and a box from C' to S that
/// must open. Answers with WELCOME.
pub(super) fn hello(
    keys: &KeyPair,
    body: &Bytes,
    random: &dyn RandomSource,
) -> Result<(ExpectInitiate, Bytes)> {
    let cmd = RawCommand::parse(body)?;
    if !cmd.is(b"HELLO") {
        return Err(protocol("CURVE server: expected HELLO"));
    }
    if body.len() != 200 {
        return Err(malformed("CURVE HELLO"));
    }
    let data = &cmd.data;
    if data[..2] != [1, 0] {
        return Err(protocol("CURVE HELLO: version is not 1.0"));
    }
    let client_transient =
        PublicKey::try_from(&data[74..106]).map_err(|_| crypto_err("zero client key"))?;
    let short = &data[106..114];
    let hello_key = BoxKey::new(&keys.secret, &client_transient)?;
    // The box holds 64 zero bytes; opening it proves the client knows S.
    hello_key.open(&nonce(b"CurveZMQHELLO---", short), &data[114..194])?;

    let transient = KeyPair::generate_with(random);
    let cookie_key = Zeroizing::new(crate::random::array::<32>(random));
    // Cookie: C' and s' in a secretbox under the cookie key.
    let cookie_nonce: [u8; 16] = crate::random::array(random);
    let mut cookie_pt = Zeroizing::new([0u8; 64]);
    cookie_pt[..32].copy_from_slice(client_transient.as_bytes());
    cookie_pt[32..].copy_from_slice(transient.secret.as_bytes());
    let mut welcome_pt = Zeroizing::new(Vec::with_capacity(128));
    welcome_pt.extend_from_slice(transient.public.as_bytes());
    welcome_pt.extend_from_slice(&cookie_nonce);
    BoxKey::secret(&cookie_key).seal(
        &nonce(b"COOKIE--", &cookie_nonce),
        &cookie_pt[..],
        &mut welcome_pt,
    );

    let welcome_nonce: [u8; 16] = crate::random::array(random);
    let mut welcome = Vec::with_capacity(168);
    welcome.extend_from_slice(b"\x07WELCOME");
    welcome.extend_from_slice(&welcome_nonce);
    hello_key.seal(
        &nonce(b"WELCOME-", &welcome_nonce),
        &welcome_pt,
        &mut welcome,
    );
    debug_assert_eq!(welcome.len(), 168);
    Ok((
        ExpectInitiate {
            client_transient,
            transient,
            cookie_key,
        },
        welcome.into(),
    ))
}

impl ExpectInitiate {
    /// INITIATE: the cookie must open under our cookie key and hold the same
    /// C' and s'; the box must open under the session key; the vouch must
    /// open from C to S' and hold C' and S. Then the Authenticator decides.
    pub(super) fn initiate(
        self,
        keys: &KeyPair,
        body: &Bytes,
    ) -> Result<(AwaitVerdict, AuthRequest)> {
        let cmd = RawCommand::parse(body)?;
        if !cmd.is(b"INITIATE") {
            return Err(protocol("CURVE server: expected INITIATE"));
        }
        if body.len() < 257 {
            return Err(malformed("CURVE INITIATE"));
        }
        let data = &cmd.data;
        let cookie = &data[..96];
        let cookie_pt = BoxKey::secret(&self.cookie_key)
            .open(&nonce(b"COOKIE--", &cookie[..16]), &cookie[16..])?;
        let same_client = cookie_pt[..32].ct_eq(self.client_transient.as_bytes());
        let same_secret = cookie_pt[32..64].ct_eq(self.transient.secret.as_bytes());
        if !bool::from(same_client & same_secret) {
            return Err(crypto_err("cookie does not match"));
        }
        let short = &data[96..104];
        let session = BoxKey::new(&self.transient.secret, &self.client_transient)?;
        let pt = session.open(&nonce(b"CurveZMQINITIATE", short), &data[104..])?;
        // pt = C(32) vouch-nonce(16) vouch(80) metadata; at least 128 bytes
        // since INITIATE is at least 257.
        let client_key =
            PublicKey::try_from(&pt[..32]).map_err(|_| crypto_err("zero client key"))?;
        let vouch_key = BoxKey::new(&self.transient.secret, &client_key)?;
        let vouch = vouch_key.open(&nonce(b"VOUCH---", &pt[32..48]), &pt[48..128])?;
        let vouch_ok = vouch[..32].ct_eq(self.client_transient.as_bytes())
            & vouch[32..64].ct_eq(keys.public.as_bytes());
        if vouch.len() != 64 || !bool::from(vouch_ok) {
            return Err(crypto_err("vouch does not match"));
        }
        let peer = Metadata::parse(&Bytes::copy_from_slice(&pt[128..]))?;
        let request = AuthRequest {
            mechanism: MechanismName::CURVE,
            credentials: Credentials::Curve(*client_key.as_bytes()),
        };
        Ok((
            AwaitVerdict {
                session,
                peer,
                initiate_nonce: short_nonce(short),
            },
            request,
        ))
    }
}

impl AwaitVerdict {
    /// On 200, READY with our metadata under the session key (short nonce 1)
    /// and the established cipher; otherwise ERROR (400/500) or silence (300).
    pub(super) fn verdict(
        self,
        verdict: AuthVerdict,
        local: &Metadata,
        out: &mut Vec<Bytes>,
    ) -> Result<(CurveCipher, Metadata)> {
        let AwaitVerdict {
            session,
            mut peer,
            initiate_nonce,
        } = self;
        let (user_id, properties) = match verdict.decision() {
            Ok(allowed) => allowed,
            Err(status) => return Err(deny(status, out)),
        };
        merge_auth(&mut peer, user_id, properties);
        let short = 1u64.to_be_bytes();
        let mut meta = Zeroizing::new(Vec::with_capacity(local.wire_len()));
        local.emit(&mut meta);
        let mut ready = Vec::with_capacity(30 + meta.len());
        ready.extend_from_slice(b"\x05READY");
        ready.extend_from_slice(&short);
        session.seal(&nonce(b"CurveZMQREADY---", &short), &meta, &mut ready);
        out.push(ready.into());
        // READY was 1: messages start at 2.
        let cipher = CurveCipher::new(session, false, 2, initiate_nonce, Authenticated::new());
        Ok((cipher, peer))
    }
}

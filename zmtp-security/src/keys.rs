//! X25519 keys in Z85, key generation, and zcert certificate files.
//!
//! The same keys serve CURVE and NOISE. Certificate files use the ZPL format
//! that czmq's `zcert` and pyzmq's `zmq.auth` write, so existing keys keep
//! working:
//!
//! ```text
//! metadata
//! curve
//!     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//!     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::KeyError;
use crate::z85;

/// A public key (X25519, 32 bytes).
#[derive(Clone, Copy)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// From raw bytes. All-zero keys are refused (libsodium refuses them).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<PublicKey, KeyError> {
        if bytes == [0u8; 32] {
            return Err(KeyError::ZeroKey);
        }
        Ok(PublicKey(bytes))
    }

    /// From 40 Z85 characters.
    pub fn from_z85(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(z85::decode_key(text)?)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 40-character Z85 form.
    pub fn to_z85(&self) -> String {
        // 32 bytes is a multiple of 4.
        z85::encode(&self.0).unwrap_or_default()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for PublicKey {}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: equal keys have equal bytes.
        self.0.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_z85())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_z85(s)
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = KeyError;
    fn try_from(b: &[u8]) -> Result<PublicKey, KeyError> {
        let arr: [u8; 32] = b.try_into().map_err(|_| KeyError::KeyLength(b.len()))?;
        PublicKey::from_bytes(arr)
    }
}

/// A secret key (X25519, 32 bytes). Zeroized on drop; `Debug` never shows
/// it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> SecretKey {
        SecretKey::generate_with(&crate::random::OsRandom)
    }

    /// A secret key from the given source (tests and fuzzing give a
    /// deterministic one; [`SecretKey::generate`] uses the operating
    /// system's).
    pub fn generate_with(random: &dyn crate::random::RandomSource) -> SecretKey {
        SecretKey(crate::random::array(random))
    }

    /// From raw bytes. All-zero keys are refused.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<SecretKey, KeyError> {
        if bytes == [0u8; 32] {
            return Err(KeyError::ZeroKey);
        }
        Ok(SecretKey(bytes))
    }

    /// From 40 Z85 characters.
    pub fn from_z85(text: &str) -> Result<SecretKey, KeyError> {
        let mut bytes = z85::decode_key(text)?;
        let key = SecretKey::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// The raw bytes. Handle with care.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The Z85 form, zeroized when dropped.
    pub fn to_z85(&self) -> Zeroizing<String> {
        Zeroizing::new(z85::encode(&self.0).unwrap_or_default())
    }

    /// The public key of this secret.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// X25519 with a peer's public key, refusing a non-contributory result
    /// (an all-zero shared secret from a low-order point), as libsodium's
    /// `crypto_box_beforenm` does.
    pub(crate) fn diffie_hellman(&self, peer: &PublicKey) -> Option<Zeroizing<[u8; 32]>> {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return None;
        }
        Some(Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &SecretKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

impl FromStr for SecretKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<SecretKey, KeyError> {
        SecretKey::from_z85(s)
    }
}

/// A public key with its secret.
///
/// ```
/// use zmtp_security::KeyPair;
/// let server = KeyPair::generate();
/// // Z85 text, as libzmq's `zmq_curve_keypair` prints it.
/// let public = server.public.to_z85();
/// assert_eq!(public.len(), 40);
/// // The secret never shows in Debug output.
/// assert!(!format!("{server:?}").contains(server.secret.to_z85().as_str()));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The public half.
    pub public: PublicKey,
    /// The secret half.
    pub secret: SecretKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("secret", &self.secret)
            .finish()
    }
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> KeyPair {
        KeyPair::from_secret(SecretKey::generate())
    }

    /// A key pair from the given source of randomness.
    pub fn generate_with(random: &dyn crate::random::RandomSource) -> KeyPair {
        KeyPair::from_secret(SecretKey::generate_with(random))
    }

    /// The pair of a secret key.
    pub fn from_secret(secret: SecretKey) -> KeyPair {
        KeyPair {
            public: secret.public_key(),
            secret,
        }
    }

    /// Loads a zcert certificate file. A secret certificate gives a full
    /// pair; a public one is refused (use [`load_public_certificate`]).
    pub fn load(path: impl AsRef<Path>) -> Result<KeyPair, KeyError> {
        let text = Zeroizing::new(read(path.as_ref())?);
        let cert = parse_certificate(&text)?;
        let secret = cert.secret.ok_or_else(|| {
            KeyError::Certificate(format!("{}: no secret-key", path.as_ref().display()))
        })?;
        let pair = KeyPair::from_secret(secret);
        if let Some(public) = cert.public
            && public != pair.public
        {
            return Err(KeyError::Certificate(
                "public-key does not match secret-key".into(),
            ));
        }
        Ok(pair)
    }

    /// Writes the public certificate at `path` and the secret one at
    /// `path` followed by `_secret` (mode 0600 on Unix), as czmq's
    /// `zcert_save` and pyzmq's `zmq.auth.create_certificates` name them.
    /// Refuses, with [`KeyError::Exists`], to replace either file; see
    /// [`KeyPair::save_replacing`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        self.write_certificates(path.as_ref(), false)
    }

    /// [`KeyPair::save`], replacing the files if they exist.
    pub fn save_replacing(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        self.write_certificates(path.as_ref(), true)
    }

    fn write_certificates(&self, path: &Path, replace: bool) -> Result<(), KeyError> {
        let public = self.public.to_z85();
        let secret = self.secret.to_z85();
        let secret_text = Zeroizing::new(format!(
            "#   ****  Generated by zmtp  ****\n\
             #   ZeroMQ CURVE **Secret** Certificate\n\
             #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n\
             metadata\ncurve\n    public-key = \"{public}\"\n    secret-key = \"{}\"\n",
            secret.as_str()
        ));
        let public_text = format!(
            "#   ****  Generated by zmtp  ****\n\
             #   ZeroMQ CURVE Public Certificate\n\
             #   Exchange securely, or use a secure mechanism to verify the contents\n\
             #   of this file after exchange. Store public certificates in your home\n\
             #   directory, in the .curve subdirectory.\n\n\
             metadata\ncurve\n    public-key = \"{public}\"\n"
        );
        let secret_path = secret_certificate_path(path);
        if !replace {
            for p in [path, secret_path.as_path()] {
                if p.exists() {
                    return Err(KeyError::Exists(p.display().to_string()));
                }
            }
        }
        write_private(&secret_path, secret_text.as_bytes())?;
        std::fs::write(path, public_text)
            .map_err(|e| KeyError::Certificate(format!("{}: {e}", path.display())))
    }
}

/// Where [`KeyPair::save`] puts the secret certificate of `path`:
/// `path_secret`, as czmq does.
pub fn secret_certificate_path(path: impl AsRef<Path>) -> std::path::PathBuf {
    let mut p = path.as_ref().as_os_str().to_owned();
    p.push("_secret");
    p.into()
}

/// Loads the public key from a zcert file (public or secret certificate).
pub fn load_public_certificate(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
    let text = Zeroizing::new(read(path.as_ref())?);
    let cert = parse_certificate(&text)?;
    match (cert.public, cert.secret) {
        (Some(p), _) => Ok(p),
        (None, Some(s)) => Ok(s.public_key()),
        (None, None) => Err(KeyError::Certificate("no public-key".into())),
    }
}

/// Reads a secret key from a file holding either a zcert secret
/// certificate or the 40-character Z85 key alone.
pub fn load_secret_key(path: impl AsRef<Path>) -> Result<SecretKey, KeyError> {
    let text = Zeroizing::new(read(path.as_ref())?);
    let trimmed = text.trim();
    if trimmed.len() == 40 && !trimmed.contains('\n') {
        return SecretKey::from_z85(trimmed);
    }
    parse_certificate(&text)?
        .secret
        .ok_or_else(|| KeyError::Certificate("no secret-key".into()))
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path)
        .map_err(|e| KeyError::Certificate(format!("{}: {e}", path.display())))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e: std::io::Error| KeyError::Certificate(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    // An existing file keeps its mode on open; force 0600.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    f.write_all(data).map_err(err)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    std::fs::write(path, data)
        .map_err(|e| KeyError::Certificate(format!("{}: {e}", path.display())))
}

struct Certificate {
    public: Option<PublicKey>,
    secret: Option<SecretKey>,
}

/// Parses the parts of ZPL (ZeroMQ property language, RFC 4) that zcert
/// uses: a `curve` section whose indented children are `name = value`, the
/// value optionally quoted.
fn parse_certificate(text: &str) -> Result<Certificate, KeyError> {
    let mut section = String::new();
    let mut cert = Certificate {
        public: None,
        secret: None,
    };
    for line in text.lines() {
        // Only whole lines are comments: '#' is also a Z85 character.
        let content = line;
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indented = content.starts_with(' ') || content.starts_with('\t');
        let content = content.trim();
        if !indented {
            section = content
                .trim_end_matches(|c: char| c == '=' || c.is_whitespace())
                .to_owned();
            continue;
        }
        if section != "curve" {
            continue;
        }
        let Some((name, value)) = content.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        match name.trim() {
            "public-key" => cert.public = Some(PublicKey::from_z85(value)?),
            "secret-key" => cert.secret = Some(SecretKey::from_z85(value)?),
            _ => {}
        }
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The key pairs of the zmq_curve(7) manual page.
    const SERVER_PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const SERVER_SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
    const CLIENT_PUBLIC: &str = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    const CLIENT_SECRET: &str = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";

    #[test]
    fn public_derives_from_secret() {
        for (public, secret) in [
            (SERVER_PUBLIC, SERVER_SECRET),
            (CLIENT_PUBLIC, CLIENT_SECRET),
        ] {
            let s = SecretKey::from_z85(secret).unwrap();
            assert_eq!(s.public_key().to_z85(), public);
        }
        let pair = KeyPair::generate();
        assert_eq!(pair.secret.public_key(), pair.public);
        assert_ne!(KeyPair::generate().public, pair.public);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let pair = KeyPair::from_secret(SecretKey::from_z85(SERVER_SECRET).unwrap());
        let shown = format!("{pair:?} {:?}", pair.secret);
        assert!(!shown.contains(SERVER_SECRET));
        assert!(shown.contains("redacted"));
        assert!(shown.contains(SERVER_PUBLIC));
    }

    #[test]
    fn zero_keys_and_bad_lengths_are_refused() {
        assert_eq!(PublicKey::from_bytes([0; 32]), Err(KeyError::ZeroKey));
        assert!(SecretKey::from_bytes([0; 32]).is_err());
        assert_eq!(
            PublicKey::try_from(&[1u8; 31][..]),
            Err(KeyError::KeyLength(31))
        );
        assert_eq!(
            PublicKey::from_z85("0000000000000000000000000000000000000000"),
            Err(KeyError::ZeroKey)
        );
        assert!(PublicKey::from_z85("short").is_err());
    }

    #[test]
    fn diffie_hellman_refuses_low_order_points() {
        let s = SecretKey::generate();
        // A low-order point (order 8) on Curve25519.
        let mut low = [0u8; 32];
        low[0] = 1;
        let p = PublicKey::from_bytes(low).unwrap();
        assert!(s.diffie_hellman(&p).is_none());
        let other = KeyPair::generate();
        let a = s.diffie_hellman(&other.public).unwrap();
        let b = other.secret.diffie_hellman(&s.public_key()).unwrap();
        assert_eq!(*a, *b);
    }

    #[test]
    fn zcert_save_and_load() {
        let dir = std::env::temp_dir().join(format!("zmtp-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pub_path = dir.join("server.key");
        let _ = std::fs::remove_file(&pub_path);
        let path = secret_certificate_path(&pub_path);
        let _ = std::fs::remove_file(&path);
        let pair = KeyPair::generate();
        pair.save(&pub_path).unwrap();
        assert_eq!(KeyPair::load(&path).unwrap(), pair);
        assert_eq!(load_public_certificate(&pub_path).unwrap(), pair.public);
        assert!(KeyPair::load(&pub_path).is_err());
        assert_eq!(load_secret_key(&path).unwrap(), pair.secret);
        // Never replaced unless asked.
        let other = KeyPair::generate();
        assert!(matches!(other.save(&pub_path), Err(KeyError::Exists(_))));
        assert_eq!(KeyPair::load(&path).unwrap(), pair);
        other.save_replacing(&pub_path).unwrap();
        assert_eq!(KeyPair::load(&path).unwrap(), other);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_pyzmq_certificates() {
        // As written by pyzmq's zmq.auth.create_certificates.
        let text = "#   ****  Generated on 2024-01-01 by pyzmq  ****\n\
                    #   ZeroMQ CURVE **Secret** Certificate\n\
                    #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n\
                    metadata\n    name = \"x\"\ncurve\n\
                    \x20   public-key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n\
                    \x20   secret-key = \"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\"\n";
        let cert = parse_certificate(text).unwrap();
        assert_eq!(cert.public.unwrap().to_z85(), SERVER_PUBLIC);
        assert_eq!(cert.secret.unwrap().public_key().to_z85(), SERVER_PUBLIC);
    }
}

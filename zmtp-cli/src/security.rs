//! Security options shared by the socket commands and the benchmark.

use std::sync::Arc;

use zmtp_sockets::security::{
    KeyPair, NoisePattern, PlainCredentials, PublicKey, PublicKeyAllowList, SecretKey,
    load_secret_key,
};
use zmtp_sockets::{Options, Security};

/// Security options. The role is independent of bind and connect.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct SecurityArgs {
    /// Act as PLAIN server, accepting exactly --plain-user/--plain-password.
    #[arg(long)]
    plain_server: bool,
    /// PLAIN username.
    #[arg(long, value_name = "U", allow_hyphen_values = true)]
    plain_user: Option<String>,
    /// PLAIN password (visible to local users: prefer the file or
    /// ZMTP_PLAIN_PASSWORD).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    plain_password: Option<String>,
    /// File holding the PLAIN password.
    #[arg(long, value_name = "FILE")]
    plain_password_file: Option<std::path::PathBuf>,
    /// Act as CURVE server.
    #[arg(long)]
    curve_server: bool,
    /// CURVE secret key in Z85 (visible to local users: prefer the file or
    /// ZMTP_CURVE_SECRET).
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    curve_secret: Option<String>,
    /// zcert file or file holding the Z85 CURVE secret key.
    #[arg(long, value_name = "FILE")]
    curve_secret_file: Option<std::path::PathBuf>,
    /// CURVE server: accept only this client public key (repeatable).
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    curve_allow: Vec<String>,
    /// CURVE client: the server's public key.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    curve_serverkey: Option<String>,
    /// Act as NOISE server.
    #[arg(long)]
    noise_server: bool,
    /// NOISE pattern: xx, ik or nk.
    #[arg(long, value_name = "PATTERN")]
    noise: Option<String>,
    /// NOISE static secret key in Z85.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    noise_secret: Option<String>,
    /// File holding the NOISE static secret key.
    #[arg(long, value_name = "FILE")]
    noise_secret_file: Option<std::path::PathBuf>,
    /// NOISE server: accept only this client static key (repeatable).
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    noise_allow: Vec<String>,
    /// NOISE client: the server's static public key.
    #[arg(long, value_name = "Z85", allow_hyphen_values = true)]
    noise_serverkey: Option<String>,
}

/// Which end of a mechanism's handshake a flag belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

fn bad(msg: impl std::fmt::Display) -> ! {
    crate::die(2, msg)
}

fn warn_cmdline(flag: &str, file_flag: &str, env: &str) {
    eprintln!(
        "warning: {flag} on the command line is visible to other local users; use {file_flag} or {env}"
    );
}

/// A secret from the command line (with a warning), a file, or the
/// environment, in that order.
fn secret_text(
    arg: &Option<String>,
    flag: &str,
    file: &Option<std::path::PathBuf>,
    file_flag: &str,
    env: &str,
) -> Option<String> {
    if let Some(v) = arg {
        warn_cmdline(flag, file_flag, env);
        return Some(v.clone());
    }
    if let Some(path) = file {
        return Some(
            std::fs::read_to_string(path)
                .unwrap_or_else(|e| bad(format_args!("{}: {e}", path.display())))
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        );
    }
    std::env::var(env).ok()
}

fn noise_secret(a: &SecurityArgs) -> Option<SecretKey> {
    if a.noise_secret.is_none() && a.noise_secret_file.is_some() {
        let path = a.noise_secret_file.as_ref()?;
        return Some(
            load_secret_key(path).unwrap_or_else(|e| bad(format_args!("{}: {e}", path.display()))),
        );
    }
    let text = secret_text(
        &a.noise_secret,
        "--noise-secret",
        &None,
        "--noise-secret-file",
        "ZMTP_NOISE_SECRET",
    )?;
    Some(
        SecretKey::from_z85(text.trim())
            .unwrap_or_else(|e| bad(format_args!("NOISE secret key: {e}"))),
    )
}

fn curve_secret(a: &SecurityArgs) -> Option<SecretKey> {
    if a.curve_secret.is_none() && a.curve_secret_file.is_some() {
        let path = a.curve_secret_file.as_ref()?;
        return Some(
            load_secret_key(path).unwrap_or_else(|e| bad(format_args!("{}: {e}", path.display()))),
        );
    }
    let text = secret_text(
        &a.curve_secret,
        "--curve-secret",
        &None,
        "--curve-secret-file",
        "ZMTP_CURVE_SECRET",
    )?;
    Some(
        SecretKey::from_z85(text.trim())
            .unwrap_or_else(|e| bad(format_args!("CURVE secret key: {e}"))),
    )
}

fn public(text: &str, what: &str) -> PublicKey {
    PublicKey::from_z85(text.trim()).unwrap_or_else(|e| bad(format_args!("{what}: {e}")))
}

impl SecurityArgs {
    fn apply_noise(&self, o: &mut Options) {
        let pattern: NoisePattern = self
            .noise
            .as_deref()
            .unwrap_or_else(|| bad("--noise-server needs --noise xx|ik|nk"))
            .parse()
            .unwrap_or_else(|e: String| bad(e));
        if self.noise_server {
            let secret =
                noise_secret(self).unwrap_or_else(|| bad("--noise-server needs a secret key"));
            o.security = Security::NoiseServer {
                pattern,
                keys: KeyPair::from_secret(secret),
            };
            if !self.noise_allow.is_empty() {
                // NOISE specification §5: NK clients have no key to judge.
                if pattern == NoisePattern::NK {
                    bad("--noise-allow cannot apply to --noise nk: NK clients have no key");
                }
                let list: PublicKeyAllowList = self
                    .noise_allow
                    .iter()
                    .map(|k| public(k, "--noise-allow"))
                    .collect();
                o.authenticator = Some(Arc::new(list));
            }
        } else {
            let server = self
                .noise_serverkey
                .as_deref()
                .map(|k| public(k, "--noise-serverkey"));
            if pattern.needs_server_key() && server.is_none() {
                bad(format_args!("--noise {pattern} needs --noise-serverkey"));
            }
            let keys = noise_secret(self).map(KeyPair::from_secret);
            o.security = Security::NoiseClient {
                pattern,
                keys,
                server,
            };
        }
    }

    /// Every security flag given, with its mechanism and the role it
    /// belongs to (`None`: either role).
    fn given(&self) -> Vec<(&'static str, &'static str, Option<Role>)> {
        use Role::{Client, Server};
        let flags = [
            ("--plain-server", self.plain_server, "PLAIN", Some(Server)),
            ("--plain-user", self.plain_user.is_some(), "PLAIN", None),
            (
                "--plain-password",
                self.plain_password.is_some(),
                "PLAIN",
                None,
            ),
            (
                "--plain-password-file",
                self.plain_password_file.is_some(),
                "PLAIN",
                None,
            ),
            ("--curve-server", self.curve_server, "CURVE", Some(Server)),
            (
                "--curve-allow",
                !self.curve_allow.is_empty(),
                "CURVE",
                Some(Server),
            ),
            (
                "--curve-serverkey",
                self.curve_serverkey.is_some(),
                "CURVE",
                Some(Client),
            ),
            ("--curve-secret", self.curve_secret.is_some(), "CURVE", None),
            (
                "--curve-secret-file",
                self.curve_secret_file.is_some(),
                "CURVE",
                None,
            ),
            ("--noise", self.noise.is_some(), "NOISE", None),
            ("--noise-server", self.noise_server, "NOISE", Some(Server)),
            (
                "--noise-allow",
                !self.noise_allow.is_empty(),
                "NOISE",
                Some(Server),
            ),
            (
                "--noise-serverkey",
                self.noise_serverkey.is_some(),
                "NOISE",
                Some(Client),
            ),
            ("--noise-secret", self.noise_secret.is_some(), "NOISE", None),
            (
                "--noise-secret-file",
                self.noise_secret_file.is_some(),
                "NOISE",
                None,
            ),
        ];
        flags
            .into_iter()
            .filter(|f| f.1)
            .map(|(flag, _, mech, role)| (flag, mech, role))
            .collect()
    }

    /// Refuses flags of two mechanisms, or of both roles of one: the
    /// socket would otherwise run one of them and drop the other silently.
    fn check_conflicts(&self) {
        let given = self.given();
        for (i, (a, mech_a, role_a)) in given.iter().enumerate() {
            for (b, mech_b, role_b) in &given[i + 1..] {
                if mech_a != mech_b {
                    bad(format_args!(
                        "{a} ({mech_a}) and {b} ({mech_b}) cannot be used together: a socket has one mechanism"
                    ));
                }
                if let (Some(ra), Some(rb)) = (role_a, role_b)
                    && ra != rb
                {
                    bad(format_args!(
                        "{a} ({mech_a} {ra:?}) and {b} ({mech_b} {rb:?}) cannot be used together: a socket plays one role"
                    ));
                }
            }
        }
        let has = |flag: &str| given.iter().any(|g| g.0 == flag);
        for (flag, needs) in [
            ("--curve-allow", "--curve-server"),
            ("--noise-allow", "--noise-server"),
        ] {
            if has(flag) && !has(needs) {
                bad(format_args!("{flag} needs {needs}"));
            }
        }
        if (has("--plain-password") || has("--plain-password-file"))
            && !has("--plain-user")
            && !has("--plain-server")
        {
            bad("a PLAIN password needs --plain-user");
        }
    }

    /// Applies these options to a socket's options; exits 2 on bad input,
    /// including flags that conflict.
    pub(crate) fn apply(&self, o: &mut Options) {
        self.check_conflicts();
        if self.noise.is_some() || self.noise_server {
            self.apply_noise(o);
            return;
        }
        let plain_password = || {
            secret_text(
                &self.plain_password,
                "--plain-password",
                &self.plain_password_file,
                "--plain-password-file",
                "ZMTP_PLAIN_PASSWORD",
            )
        };
        if self.plain_server {
            let user = self
                .plain_user
                .clone()
                .unwrap_or_else(|| bad("--plain-server needs --plain-user"));
            let pass = plain_password().unwrap_or_else(|| bad("--plain-server needs a password"));
            let mut t = PlainCredentials::new();
            t.allow(user, pass);
            o.security = Security::PlainServer;
            o.authenticator = Some(Arc::new(t));
        } else if self.curve_server {
            let secret =
                curve_secret(self).unwrap_or_else(|| bad("--curve-server needs a secret key"));
            o.security = Security::CurveServer {
                keys: KeyPair::from_secret(secret),
            };
            if !self.curve_allow.is_empty() {
                let list: PublicKeyAllowList = self
                    .curve_allow
                    .iter()
                    .map(|k| public(k, "--curve-allow"))
                    .collect();
                o.authenticator = Some(Arc::new(list));
            }
        } else if let Some(server) = &self.curve_serverkey {
            let server = public(server, "--curve-serverkey");
            let keys = curve_secret(self).map_or_else(KeyPair::generate, KeyPair::from_secret);
            o.security = Security::CurveClient { keys, server };
        } else if let Some(user) = &self.plain_user {
            let pass = plain_password().unwrap_or_default();
            if user.len() > 255 || pass.len() > 255 {
                bad("PLAIN username and password are at most 255 bytes");
            }
            o.security = Security::PlainClient {
                username: user.clone().into(),
                password: pass.into(),
            };
        }
    }
}

//! `zmtp keygen`.

use std::path::PathBuf;

use zmtp_sockets::security::KeyPair;

/// Options of `zmtp keygen`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print `{"public": "...", "secret": "..."}`.
    #[arg(long)]
    json: bool,
    /// Write a zcert public certificate at PATH and the secret one at
    /// PATH_secret (mode 0600), as czmq and pyzmq name them; print nothing.
    /// Existing files are not replaced without --force.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// With --out: replace existing certificate files.
    #[arg(long, requires = "out")]
    force: bool,
}

pub(crate) fn run(a: Args) -> i32 {
    let pair = KeyPair::generate();
    if let Some(path) = a.out {
        let saved = if a.force {
            pair.save_replacing(&path)
        } else {
            pair.save(&path)
        };
        if let Err(e) = saved {
            crate::die(1, e);
        }
        return 0;
    }
    let public = pair.public.to_z85();
    let secret = pair.secret.to_z85();
    if a.json {
        // Z85 never contains '"' or '\\', so no escaping is needed.
        println!(
            "{{\"public\": \"{public}\", \"secret\": \"{}\"}}",
            secret.as_str()
        );
    } else {
        println!("public: {public}");
        println!("secret: {}", secret.as_str());
    }
    0
}

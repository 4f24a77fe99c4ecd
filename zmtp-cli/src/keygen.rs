//! `zmtp keygen`.

use std::path::PathBuf;

use zmtp_sockets::security::KeyPair;

/// Options of `zmtp keygen`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print `{"public": "...", "secret": "..."}`.
    #[arg(long)]
    json: bool,
    /// Write a zcert secret certificate at PATH (mode 0600) and the public
    /// one at PATH.pub; print nothing.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

pub(crate) fn run(a: Args) -> i32 {
    let pair = KeyPair::generate();
    if let Some(path) = a.out {
        if let Err(e) = pair.save(&path) {
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

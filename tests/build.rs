//! Fails the interop suite with a clear message when libzmq is missing,
//! instead of a linker error: the suite never skips.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let found = std::process::Command::new("pkg-config")
        .args(["--exists", "libzmq"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        || [
            "/usr/lib/x86_64-linux-gnu/libzmq.so",
            "/usr/lib/aarch64-linux-gnu/libzmq.so",
            "/usr/lib/libzmq.so",
            "/usr/local/lib/libzmq.so",
        ]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !found {
        panic!(
            "\n\nThe interop tests need the real libzmq (with CURVE) to test against, and it is missing.\n\
             Install Debian's libzmq3-dev (apt-get install libzmq3-dev), or run `bash .ci/run`, which does.\n\
             The suite fails rather than skips without it.\n\n"
        );
    }
}

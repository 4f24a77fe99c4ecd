//! The workspace's declared `rust-version` is at least every `rust-version`
//! that the library crates' normal dependencies declare, transitively (the
//! Rust a user needs to build them); dev-dependencies and the benchmark and
//! interop crates do not count.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::process::Command;

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

#[test]
fn the_declared_msrv_covers_every_dependency() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: HashMap<&str, &serde_json::Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let libraries = ["zmtp-core", "zmtp-security", "zmtp-sockets", "zmtp-cli"];
    let ours = packages
        .values()
        .find(|p| p["name"] == "zmtp-core")
        .and_then(|p| p["rust_version"].as_str())
        .expect("zmtp-core declares a rust-version");
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let mut todo: Vec<&str> = packages
        .iter()
        .filter(|(_, p)| libraries.contains(&p["name"].as_str().unwrap()))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(todo.len(), libraries.len());
    let mut seen = HashSet::new();
    let mut too_new = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let p = packages[id];
        if let Some(rv) = p["rust_version"].as_str()
            && version(rv) > version(ours)
        {
            too_new.push(format!("{} {} needs {rv}", p["name"], p["version"]));
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    assert!(seen.len() > libraries.len(), "no dependency was read");
    assert!(
        too_new.is_empty(),
        "rust-version {ours} is below what these need: {too_new:?}"
    );
}

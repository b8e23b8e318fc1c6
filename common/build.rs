//! Build facts for `halite_common::versions` (`--versions-report`): the versions of key
//! dependencies as the workspace's `Cargo.lock` pins them, and the compiler's version.

use std::path::Path;
use std::process::Command;

/// The crates `--versions-report` names, as Salt names its Python libraries.
const CRATES: [&str; 11] = [
    "argh",
    "env_logger",
    "minijinja",
    "minijinja-contrib",
    "mio",
    "regex",
    "saphyr-parser",
    "serde",
    "serde_json",
    "serde_yaml",
    "sodiumoxide",
];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock = Path::new(&manifest).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let pinned = locked_versions(&text);
    let report: Vec<String> = CRATES
        .iter()
        .map(|name| {
            let versions: Vec<&str> =
                pinned.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
            format!("{name}={}", versions.join(", "))
        })
        .collect();
    println!("cargo:rustc-env=HALITE_DEPENDENCY_VERSIONS={}", report.join(";"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().trim_start_matches("rustc ").to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=HALITE_RUSTC_VERSION={version}");
}

/// `(name, version)` of every `[[package]]` in a `Cargo.lock`.
fn locked_versions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        let value = |key: &str| {
            let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
            Some(rest.strip_prefix('"')?.strip_suffix('"')?.to_string())
        };
        if line == "[[package]]" {
            name = None;
        } else if let Some(n) = value("name") {
            name = Some(n);
        } else if let (Some(v), Some(n)) = (value("version"), name.take()) {
            out.push((n, v));
        }
    }
    out
}

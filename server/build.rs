//! Embeds the git commit the binary was built from (`bss-control --version`), so a team can
//! tell which build its panel runs. `unknown` outside a git checkout (e.g. a source tarball).
use std::{path::Path, process::Command};

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    // Not a BSS_ name: cargo also sets it for `cargo test` runs, whose children (a spawned
    // `bss-control serve`) would refuse it as an unknown BSS_ setting.
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // A new commit or checkout moves one of these; only existing paths are watched (a
    // missing one would rerun this script on every build).
    for p in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

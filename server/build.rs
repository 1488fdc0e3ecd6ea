//! Embeds the git commit the binary was built from (`bss-control --version`), so a team can
//! tell which build its panel runs. `unknown` outside a git checkout (e.g. a source tarball).
//!
//! The project's scripts (`dev/scripts/env.sh`) give the commit in `BUILD_GIT_COMMIT`, and
//! then only a change of that value reruns this script: the build cache is shared by every
//! checkout on the machine and keyed by content (cargo's checksum freshness), and a fresh
//! clone's `.git` files are all new, which would otherwise rebuild the server and every test
//! binary for an unchanged commit. A plain `cargo build` asks git and watches `.git`.
use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    let given = std::env::var("BUILD_GIT_COMMIT").ok().filter(|c| !c.is_empty());
    let commit = given.clone().unwrap_or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "unknown".into())
    });
    // Not a BSS_ name: cargo also sets it for `cargo test` runs, whose children (a spawned
    // `bss-control serve`) would refuse it as an unknown BSS_ setting.
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    if given.is_none() {
        // A new commit or checkout moves one of these; only existing paths are watched (a
        // missing one would rerun this script on every build).
        for p in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
            if Path::new(p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
}

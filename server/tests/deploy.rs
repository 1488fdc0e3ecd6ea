//! The deployment files a platform team installs (`dev/deploy/`): the env template is a
//! valid configuration that means shared mode behind a proxy, and systemd accepts the unit
//! as written (every key known, every value parsed, the binary executable).
use std::{path::PathBuf, process::Command};

fn deploy(file: &str) -> PathBuf {
    // At run time, not `env!`: a test binary reused by another checkout (the build cache
    // keys by content) must read that checkout's files.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../dev/deploy").join(file)
}

#[test]
fn the_env_template_is_a_shared_mode_configuration() {
    let text = std::fs::read_to_string(deploy("bss-control.env")).unwrap();
    let vars: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    assert!(vars.len() >= 5, "{vars:?}");
    // Unknown BSS_ names are refused by the loader: a typo in the template fails here.
    let cfg = server::config::Config::load(None, vars).expect("the template loads");
    assert!(cfg.auth_required().unwrap(), "sign-in on");
    assert!(cfg.server.listen.ip().is_loopback(), "behind the proxy, on loopback");
    assert!(!cfg.server.trusted_proxies.is_empty() && !cfg.server.allowed_hosts.is_empty());
}

#[test]
fn systemd_accepts_the_unit() {
    let unit = std::fs::read_to_string(deploy("bss-control.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/bss-control serve"));
    // Verified as installed, with the binary where the unit expects it (here: the one cargo built).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bss-control.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/bss-control", env!("CARGO_BIN_EXE_bss-control"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze (Debian's systemd package; toolchain.sh installs it)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // systemd only warns about unknown keys and bad values: any line about the unit fails.
    let about_it: Vec<&str> = said.lines().filter(|l| l.contains("bss-control.service")).collect();
    assert!(out.status.success() && about_it.is_empty(), "{said}");
}

/// `bss-control --version` names the release and the commit it was built from.
#[test]
fn the_version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_bss-control")).arg("--version").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(out.status.success() && head.len() == 12, "{said} / {head}");
    assert_eq!(said, format!("bss-control {} (commit {head})", env!("CARGO_PKG_VERSION")));
}

#!/usr/bin/env bash
# Installs everything bss-control needs to build and test on a fresh Debian bookworm
# machine, offline except for the package registries. Idempotent: every step checks
# first and is cached per machine under $BSS_CACHE (default ~/.cache/bss-control).
#
# Why this route: rustup cannot download the wasm32 target here, so both halves are built
# with Debian's rustc-web (1.96) and std is rebuilt for wasm from Debian's rust-web-src.
# cargo-leptos would download wasm-bindgen/wasm-opt if missing from PATH, so we put our
# own (exact locked wasm-bindgen, npm binaryen — Debian's wasm-opt 108 corrupts the
# externref table) first in PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. dev/scripts/env.sh

log() { printf '\033[1;34m[toolchain]\033[0m %s\n' "$*" >&2; }

APT_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 chromium docker.io
  debootstrap busybox-static sqlite3 pkg-config libssl-dev ca-certificates
  build-essential cmake zlib1g-dev python3-venv
  systemd  # systemd-analyze checks dev/deploy/bss-control.service
  nginx  # the TLS proxy in front of the panel's image in tests/image.rs (never started as a service)
  docker-compose)  # tests/adopt.rs: a stack started by compose, then taken over

apt_install() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 update -q
    # Packages with a daemon are installed, not started: the tests run their own nginx on
    # loopback (a default one on port 80 serves no one), and dev/scripts/docker.sh starts
    # an engine when none answers.
    local policy=/usr/sbin/policy-rc.d ours=""
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && ours=1
      # Interrupted, it must not stay behind: it would stop every later service start.
      trap 'rm -f /usr/sbin/policy-rc.d; exit 130' INT TERM
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" || rc=$?
    if [[ -n $ours ]]; then rm -f "$policy"; trap - INT TERM; fi
    return "$rc"
  fi
}

# Debian's cargo/rustc/rustdoc ahead of the rustup proxies.
shim_bin() {
  mkdir -p "$BSS_BIN"
  for t in cargo rustc rustdoc; do ln -sfn "/usr/bin/$t" "$BSS_BIN/$t"; done
}

# cargo-leptos only orchestrates (cargo, wasm-bindgen and wasm-opt do the heavy work), so
# an unoptimised build of it is as fast in use, and installs in a fraction of the time of
# its release profile (fat LTO, one codegen unit: 42 min on a fresh 2-core machine).
cargo_leptos() {
  local v=0.3.11
  if [[ -x $BSS_TOOLS/bin/cargo-leptos ]] && "$BSS_TOOLS/bin/cargo-leptos" --version 2>/dev/null | grep -q "$v"; then return; fi
  log "cargo-leptos $v: building from crates.io (unoptimised, once per machine)"
  # Its own target dir: `cargo install` honours CARGO_TARGET_DIR, and sharing the tests'
  # would lock them out until this background install is done (measured on a fresh cache:
  # the integration steps waited on "file lock on build directory").
  CARGO_TARGET_DIR=$BSS_CACHE/install-target CARGO_PROFILE_DEV_DEBUG=0 \
    cargo install cargo-leptos --version "$v" --locked --debug --root "$BSS_TOOLS"
}

locked_version() { # crate name -> version from Cargo.lock
  awk -v n="$1" '$0=="name = \""n"\"" {getline; gsub(/version = |"/,""); print; exit}' "$ROOT/Cargo.lock"
}

wasm_bindgen_cli() {
  [[ -f $ROOT/Cargo.lock ]] || cargo generate-lockfile --manifest-path "$ROOT/Cargo.toml"
  local v; v=$(locked_version wasm-bindgen)
  [[ -n $v ]] || { echo "wasm-bindgen not in Cargo.lock" >&2; exit 1; }
  if [[ -x $BSS_TOOLS/bin/wasm-bindgen ]] && "$BSS_TOOLS/bin/wasm-bindgen" --version | grep -q " $v"; then return; fi
  log "wasm-bindgen-cli $v (must equal the locked crate)"
  local src=$BSS_CACHE/src/wasm-bindgen-cli-$v
  if [[ ! -d $src ]]; then
    mkdir -p "$BSS_CACHE/src"
    # Fetch the .crate through cargo (the registry is reachable, downloads of binaries are not).
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && cargo init -q --name fetchwb && \
      printf 'wasm-bindgen-cli = "=%s"\n' "$v" >> Cargo.toml && cargo fetch -q) || true
    local crate; crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/wasm-bindgen-cli-"$v".crate | head -1)
    tar -C "$BSS_CACHE/src" -xzf "$crate"
    rm -rf "$tmp"
  fi
  # Its lockfile pins a webpki-roots the reachable registry lacks.
  (cd "$src" && { cargo update -q -p webpki-roots --precise 1.0.10 2>/dev/null || true; } && \
    CARGO_TARGET_DIR=$BSS_CACHE/install-target cargo install -q --path . --locked --root "$BSS_TOOLS" --force)
}

wasm_opt() {
  if [[ ! -x $BSS_TOOLS/node/node_modules/.bin/wasm-opt ]]; then
    log "npm binaryen@132.0.0 (wasm-opt)"
    mkdir -p "$BSS_TOOLS/node"
    npm install -s --prefix "$BSS_TOOLS/node" binaryen@132.0.0 >/dev/null
  fi
  ln -sfn "$BSS_TOOLS/node/node_modules/.bin/wasm-opt" "$BSS_BIN/wasm-opt"
}

node_tools() {
  wasm_opt
  # Installed again whenever the lock file changes (a stamp of its hash in node_modules).
  local stamp=$ROOT/end2end/node_modules/.bss-lock-sha
  local want; want=$(sha256sum "$ROOT/end2end/package-lock.json" | cut -d' ' -f1)
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "npm: Playwright test runner and axe-core (no browser download; Debian chromium is used)"
    (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci -s --no-audit --no-fund)
    echo "$want" > "$stamp"
  fi
}

# schemathesis (PyPI) fuzzes the live server against its OpenAPI description in make test;
# its own venv per pinned version.
schemathesis() {
  local v=4.32.5 venv=$BSS_TOOLS/schemathesis-4.32.5
  [[ -x $venv/bin/schemathesis ]] && return
  log "PyPI schemathesis $v (own venv)"
  rm -rf "$venv" && python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$v"
}

# The target dir is shared by every checkout on this machine (dependencies stay warm), but
# cargo fingerprints workspace crates by their path relative to the workspace root while
# checking the absolute source paths in their dep-info: a build from another checkout
# would look fresh here. When the checkout changes, drop the workspace crates' fingerprints
# (not the dependencies') so they rebuild from this checkout's sources.
fresh_checkout() {
  local mark=$CARGO_TARGET_DIR/.bss-checkout
  if [[ -d $CARGO_TARGET_DIR && "$(cat "$mark" 2>/dev/null)" != "$ROOT" ]]; then
    log "new checkout ($ROOT): workspace crates will rebuild, dependencies stay cached"
    find "$CARGO_TARGET_DIR" -path '*/.fingerprint/*' \( -name 'app-*' -o -name 'server-*' \) -prune -exec rm -rf {} + 2>/dev/null || true
  fi
  mkdir -p "$CARGO_TARGET_DIR" && printf '%s' "$ROOT" > "$mark"
}

# `base` is what the Rust tests need; `front` what the browser bundle needs (test.sh runs
# it in the background while the tests build and run); `run` what `make run` needs (no
# test tools: Playwright's runner, schemathesis); `runbase` what run.sh needs before it
# starts the server's build (the browser half's tools then install beside it).
case "${1:-all}" in
  apt) apt_install ;;
  base) apt_install; shim_bin; node_tools; schemathesis; fresh_checkout ;;
  front) shim_bin; cargo_leptos; wasm_bindgen_cli ;;
  run) apt_install; shim_bin; wasm_opt; fresh_checkout; cargo_leptos; wasm_bindgen_cli ;;
  runbase) apt_install; shim_bin; wasm_opt; fresh_checkout ;;
  leptos) shim_bin; cargo_leptos ;;
  all) apt_install; shim_bin; node_tools; schemathesis; fresh_checkout; cargo_leptos; wasm_bindgen_cli ;;
  *) echo "usage: $0 [all|base|front|run|runbase|apt|leptos]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Builds with cargo-leptos, then proves the wasm would hydrate.
#   build.sh          release build of both halves (make build, make run)
#   build.sh front    only the browser half, in release (wasm-opt, size profile): make test
#                     serves it from the debug server its Rust tests already built, so a CI
#                     run compiles the server's dependencies once, not twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/scripts/env.sh
# cargo-leptos' `cargo metadata` wants crates of every platform, and -Zbuild-std wants
# std's own dependencies: fetch both (no-op when cached).
cargo fetch -q
cargo fetch -q -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown
# The browser half depends only on what is hashed here: the app crate, the styles and
# assets, the workspace's manifests and lock file, the cargo config (wasm rustflags), the
# toolchain and these scripts. A bundle built from the same inputs is kept per machine
# (the last 4) and reused: a clean clone of an unchanged app skips the release wasm build
# (LTO, build-std, wasm-opt: minutes of both cores), as the offline images do.
front_key() {
  {
    find app style public -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum Cargo.toml Cargo.lock .cargo/config.toml dev/scripts/build.sh dev/scripts/toolchain.sh dev/scripts/check-wasm.mjs
    "$RUSTC" -vV; cargo leptos --version; wasm-bindgen --version; wasm-opt --version
    echo "LEPTOS_OUTPUT_NAME=$LEPTOS_OUTPUT_NAME"
  } | sha256sum | cut -c1-16
}
case "${1:-all}" in
  all)
    cargo leptos build --release --split
    node dev/scripts/check-wasm.mjs target/site/pkg/bss-control.wasm ;;
  front)
    key=$(front_key)
    kept=$BSS_CACHE/site/$key
    if [[ -f $kept/.complete ]]; then
      echo "browser bundle: inputs unchanged (key $key), the bundle built from them reused"
      rm -rf target/site && mkdir -p target && cp -a "$kept/site" target/site
      touch "$kept"  # recently used: the pruning below keeps it
      node dev/scripts/check-wasm.mjs target/site/pkg/bss-control.wasm
    else
      cargo leptos build --release --frontend-only --split
      node dev/scripts/check-wasm.mjs target/site/pkg/bss-control.wasm
      rm -rf "$kept" && mkdir -p "$kept" && cp -a target/site "$kept/site" && touch "$kept/.complete"
      # The 4 most recently used bundles stay.
      ls -1dt "$BSS_CACHE"/site/*/ 2>/dev/null | tail -n +5 | xargs -r rm -rf
    fi ;;
  *) echo "usage: $0 [all|front]" >&2; exit 2 ;;
esac

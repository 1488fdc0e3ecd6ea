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
case "${1:-all}" in
  all) cargo leptos build --release --split ;;
  front) cargo leptos build --release --frontend-only --split ;;
  *) echo "usage: $0 [all|front]" >&2; exit 2 ;;
esac
node dev/scripts/check-wasm.mjs target/site/pkg/bss-control.wasm

#!/usr/bin/env bash
# Release build of both halves with cargo-leptos, then prove the wasm would hydrate.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/scripts/env.sh
# cargo-leptos' `cargo metadata` wants crates of every platform, and -Zbuild-std wants
# std's own dependencies: fetch both (no-op when cached).
cargo fetch -q
cargo fetch -q -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown
cargo leptos build --release "$@"
node dev/scripts/check-wasm.mjs target/site/pkg/bss-control.wasm

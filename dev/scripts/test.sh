#!/usr/bin/env bash
# Everything CI checks: Rust tests (unit + real-service integration), the release build
# with its wasm check, then Playwright in Debian chromium against the built server and a
# real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
dev/scripts/toolchain.sh
. dev/scripts/env.sh
eval "$(dev/scripts/docker.sh ensure)"
export DOCKER_HOST

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }

step "cargo test (server + app, ssr)"
cargo test --workspace --features app/ssr

step "release build (cargo-leptos) + wasm check"
dev/scripts/build.sh

step "Playwright (end2end) in Debian chromium"
E2E_STATE=$(mktemp -d)
trap 'rm -rf "$E2E_STATE"' EXIT
export E2E_SERVER="env BSS_STORE_PATH=$E2E_STATE/state.db BSS_SITE_ROOT=$ROOT/target/site $CARGO_TARGET_DIR/release/bss-control serve"
(cd end2end && npx playwright test)

#!/usr/bin/env bash
# Everything CI checks: Rust tests (unit + real-engine integration), the Phase 3 stack
# provisioned from the offline images and checked service by service, the release build
# with its wasm check, then Playwright in Debian chromium against the built server, the
# real Docker engine and the real stack.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
export BSS_COMPOSE=dev/compose.yml,dev/compose.offline.yml BSS_PROJECT=bss

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }
E2E_STATE=$(mktemp -d)
cleanup() {
  # Leave nothing running: the stack is torn down (volumes kept for a faster next run).
  [[ -x $CARGO_TARGET_DIR/debug/bss-control ]] && \
    BSS_STORE_PATH=$E2E_STATE/cli.db "$CARGO_TARGET_DIR/debug/bss-control" down >/dev/null 2>&1 || true
  rm -rf "$E2E_STATE"
}
trap cleanup EXIT

step "cargo test (unit + real Docker engine)"
cargo test --workspace --features app/ssr

step "offline images for the Phase 3 stack (cached by input hash)"
dev/images/build.sh

step "DB router on the real primary + replicas: spread, lag ejection, read-your-writes, failures"
cargo test -p server --features app/ssr --test db -- --ignored --nocapture

step "BSS API (customers, orders) through the router: read-your-writes, CloudEvents, bad input, bus down"
cargo test -p server --features app/ssr --test bss_api -- --ignored --nocapture

step "Kafka stream processors on the three real brokers: in = out + DLQ, restart mid-stream, DLQ reasons"
cargo test -p server --features app/ssr --test streams -- --ignored --nocapture

step "Alerts and gateway on the real AlertManager, Prometheus, Envoy, HAProxy"
cargo test -p server --features app/ssr --test alerts -- --ignored --nocapture

step "Verification suite and Kafka demo on the real stack (a stopped replica is named)"
cargo test -p server --features app/ssr --test verify -- --ignored --nocapture --test-threads 1

step "Phase 3 stack: provision, check every service, heal a killed replica, tear down"
cargo test -p server --features app/ssr --test stack -- --ignored --nocapture

step "release build (cargo-leptos) + wasm check"
dev/scripts/build.sh

step "Playwright (end2end) in Debian chromium"
BIN=$CARGO_TARGET_DIR/release/bss-control
export E2E_SERVER="env BSS_STORE_PATH=$E2E_STATE/state.db BSS_SITE_ROOT=$ROOT/target/site $BIN serve"
export E2E_SHARED_SERVER="env BSS_STREAMS_AUTOSTART=off BSS_STORE_PATH=$E2E_STATE/shared.db BSS_SITE_ROOT=$ROOT/target/site $BIN serve"
# Users of the sign-in server: a fresh random password per run, given on stdin.
E2E_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export E2E_PASSWORD
for u in vera:viewer olga:operator oscar:operator; do
  printf '%s\n' "$E2E_PASSWORD" | BSS_STORE_PATH=$E2E_STATE/shared.db "$BIN" user add --name "${u%%:*}" --role "${u##*:}"
done
(cd end2end && npx playwright test)

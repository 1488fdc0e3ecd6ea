#!/usr/bin/env bash
# make run: install what is missing, build, make sure a Docker engine answers, build the
# offline stack images (cached), serve. The stack itself is provisioned from the UI
# (Services → Provision stack) or with `bss-control up`.
#
# The server is the debug build `make test` builds too (one build of the server's
# dependencies per machine, not a debug one for the tests and a release one for the
# panel): from an empty cache the release build of the server was most of `make run`'s
# 65 minutes. The browser half is always the release build (size profile, split per
# page). BSS_RUN_RELEASE=1 serves the optimised server instead (what `make build` and the
# panel's container image use: the processors' transforms run several times faster).
#
# Like `make test`, the slow independent parts run side by side: the offline images
# (network and disk bound) and the browser half (cargo-leptos, wasm-bindgen-cli, the
# release wasm, at low CPU priority) build in the background while the server builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T0=$(date +%s)
say() { printf '\033[1;34m[run %4ss]\033[0m %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
dev/scripts/toolchain.sh runbase
. dev/scripts/env.sh
eval "$(dev/scripts/docker.sh ensure)"
export DOCKER_HOST

LOGS=$BSS_CACHE/run-logs
mkdir -p "$LOGS"
BG=()
trap 'for p in "${BG[@]}"; do kill -- "-$p" 2>/dev/null || true; done' EXIT
# bg NAME CMD...: CMD in its own process group, output to $LOGS/NAME.log.
bg() { local n=$1; shift; setsid "$@" >"$LOGS/$n.log" 2>&1 & BG+=($!); eval "PID_${n//-/_}=$!"; }
wait_bg() {
  local n=$1 pid; pid=$(eval "echo \$PID_${n//-/_}")
  if ! wait "$pid"; then tail -40 "$LOGS/$n.log" >&2; say "$n failed (log: $LOGS/$n.log)"; exit 1; fi
  say "$n done: $(tail -1 "$LOGS/$n.log")"
}

bg images dev/images/build.sh
if [[ ${BSS_RUN_RELEASE:-0} == 1 ]]; then
  say "release build of both halves (BSS_RUN_RELEASE=1)"
  dev/scripts/toolchain.sh front
  dev/scripts/build.sh
  BIN=$CARGO_TARGET_DIR/release/bss-control
else
  bg front nice -n 19 bash -c 'dev/scripts/toolchain.sh front && dev/scripts/build.sh front'
  say "building the server (debug, shared with make test); the browser half and the images build beside it (logs: $LOGS)"
  # The same package selection and features as make test's cargo calls, so either reuses
  # the other's build.
  cargo build --workspace --features app/ssr
  BIN=$CARGO_TARGET_DIR/debug/bss-control
  wait_bg front
fi
wait_bg images
export BSS_SITE_ROOT=${BSS_SITE_ROOT:-$ROOT/target/site}
# No registry here: the offline override is the default for `make run`.
export BSS_COMPOSE=${BSS_COMPOSE:-dev/compose.yml,dev/compose.offline.yml}
say "serving $BIN on http://localhost:3000"
trap - EXIT
exec "$BIN" serve

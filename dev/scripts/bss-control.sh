#!/usr/bin/env bash
# Finds and runs the bss-control binary with the dev stack's settings (for the seed's
# script names): $BSS_CONTROL if set, else `bss-control` on PATH, else the release then the
# debug build in the per-machine target dir. Exits with the binary's exit code.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/scripts/env.sh
BIN=${BSS_CONTROL:-}
if [[ -z $BIN ]]; then
  for c in "$(command -v bss-control || true)" "$CARGO_TARGET_DIR/release/bss-control" "$CARGO_TARGET_DIR/debug/bss-control"; do
    if [[ -n $c && -x $c ]]; then BIN=$c; break; fi
  done
fi
[[ -n $BIN ]] || { echo "bss-control is not built yet: run \`make build\` (or \`make run\`) first" >&2; exit 2; }
export BSS_COMPOSE=${BSS_COMPOSE:-dev/compose.yml,dev/compose.offline.yml}
if [[ -z ${DOCKER_HOST:-} ]]; then eval "$(dev/scripts/docker.sh ensure)"; export DOCKER_HOST; fi
exec "$BIN" "$@"

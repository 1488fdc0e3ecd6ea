#!/usr/bin/env bash
# Finds and runs the bss-control binary with the dev stack's settings (for the seed's
# script names): $BSS_CONTROL if set, else `bss-control` on PATH, else the newer of the
# release and debug builds in the per-machine target dir. Exits with the binary's exit code.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/scripts/env.sh
BIN=${BSS_CONTROL:-}
if [[ -z $BIN ]]; then
  BIN=$(command -v bss-control || true)
  # Else the newer of the two builds (`make run` and `make test` build the debug one,
  # `make build` the release one): a release binary left from long ago must not win.
  if [[ -z $BIN ]]; then
    for c in "$CARGO_TARGET_DIR/release/bss-control" "$CARGO_TARGET_DIR/debug/bss-control"; do
      [[ -x $c ]] && { [[ -z $BIN || $c -nt $BIN ]]; } && BIN=$c
    done
  fi
fi
[[ -n $BIN ]] || { echo "bss-control is not built yet: run \`make build\` (or \`make run\`) first" >&2; exit 2; }
export BSS_COMPOSE=${BSS_COMPOSE:-dev/compose.yml,dev/compose.offline.yml}
if [[ -z ${DOCKER_HOST:-} ]]; then eval "$(dev/scripts/docker.sh ensure)"; export DOCKER_HOST; fi
exec "$BIN" "$@"

#!/usr/bin/env bash
# make run: install what is missing, build, make sure a Docker engine answers, build the
# offline stack images (cached), serve. The stack itself is provisioned from the UI
# (Services → Provision stack) or with `bss-control up`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
dev/scripts/toolchain.sh run
. dev/scripts/env.sh
eval "$(dev/scripts/docker.sh ensure)"
export DOCKER_HOST
# The offline images (network- and disk-bound, cached by input hash) build beside the
# CPU-bound Rust build instead of after it.
IMAGES_LOG=$BSS_CACHE/images-build.log
dev/images/build.sh >"$IMAGES_LOG" 2>&1 &
IMAGES=$!
dev/scripts/build.sh
if ! wait "$IMAGES"; then tail -40 "$IMAGES_LOG" >&2; echo "building the offline images failed (log: $IMAGES_LOG)" >&2; exit 1; fi
tail -2 "$IMAGES_LOG"
export DOCKER_HOST BSS_SITE_ROOT=${BSS_SITE_ROOT:-$ROOT/target/site}
# No registry here: the offline override is the default for `make run`.
export BSS_COMPOSE=${BSS_COMPOSE:-dev/compose.yml,dev/compose.offline.yml}
exec "$CARGO_TARGET_DIR/release/bss-control" serve

#!/usr/bin/env bash
# make run: install what is missing, build, make sure a Docker engine answers, serve.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
dev/scripts/toolchain.sh
dev/scripts/build.sh
. dev/scripts/env.sh
eval "$(dev/scripts/docker.sh ensure)"
export DOCKER_HOST BSS_SITE_ROOT=${BSS_SITE_ROOT:-$ROOT/target/site}
exec "$CARGO_TARGET_DIR/release/bss-control" serve

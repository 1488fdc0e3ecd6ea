#!/usr/bin/env bash
# make run: install what is missing, build, make sure a Docker engine answers, build the
# offline stack images (cached), serve. The stack itself is provisioned from the UI
# (Services → Provision stack) or with `bss-control up`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
dev/scripts/toolchain.sh
dev/scripts/build.sh
. dev/scripts/env.sh
eval "$(dev/scripts/docker.sh ensure)"
dev/images/build.sh
export DOCKER_HOST BSS_SITE_ROOT=${BSS_SITE_ROOT:-$ROOT/target/site}
# No registry here: the offline override is the default for `make run`.
export BSS_COMPOSE=${BSS_COMPOSE:-dev/compose.yml,dev/compose.offline.yml}
exec "$CARGO_TARGET_DIR/release/bss-control" serve

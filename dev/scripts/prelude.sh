# Sourced by test.sh and bench.sh: install what is missing, load the per-machine
# environment, and make sure a Docker engine answers (DOCKER_HOST exported).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
dev/scripts/toolchain.sh
. dev/scripts/env.sh
eval "$(dev/scripts/docker.sh ensure)"
export DOCKER_HOST

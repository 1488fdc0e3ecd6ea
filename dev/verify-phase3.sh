#!/usr/bin/env bash
# The seed's `verify-phase3.sh`, by name: runs bss-control's verification suite against the
# running stack (every check beside the seed's claim). Exit 0 when every check passes, 1
# when one fails. Extra arguments go to `bss-control verify` (e.g. --json).
exec "$(dirname "$0")/scripts/bss-control.sh" verify "$@"

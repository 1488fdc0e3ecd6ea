#!/usr/bin/env bash
# The seed's `demo-kafka-streams.sh`, by name: produces customer and order CloudEvents and
# follows them through both stream processors (`bss-control demo`). Exit 0 when every event
# is accounted for (processed or dead-lettered), 1 otherwise or on bad arguments.
# Arguments go to `bss-control demo`: --events N --rate R --malformed-every K --json.
exec "$(dirname "$0")/scripts/bss-control.sh" demo "$@"

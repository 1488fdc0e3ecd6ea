#!/usr/bin/env bash
# The swarm test bed itself, on real engines: 3 hosts form a swarm of 3 managers, a global
# service on an attachable overlay runs one task per host, the hosts' tasks reach each other
# across hosts by the service's dnsrr name, a host's engine killed is seen Down by the
# others and its node comes back Ready when its engine starts again. Everything is removed
# at the end, whatever happened. Bounded: each wait has its own limit.
set -euo pipefail
cd "$(dirname "$0")/../.."
H=dev/swarm/hosts.sh
T0=$(date +%s)
say() { printf '[swarm-test %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() { say "FAILED: $*"; "$H" status || true; exit 1; }
trap '"$H" down >/dev/null 2>&1 || true' EXIT
# wait_for SECONDS WHAT CMD...: CMD succeeds within SECONDS, else fail.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do (( $(date +%s) < end )) || fail "$what not within ${limit} s"; sleep 1; done
  say "$what"
}
on() { local h=$1; shift; DOCKER_HOST=unix://$("$H" sock "$h") docker "$@"; }

"$H" down >/dev/null 2>&1 || true
IMG=bss-local/sink:latest
BSS_SWARM_IMAGES=$IMG "$H" up 3 >/dev/null
managers=$(on h1 node ls --filter role=manager --format '{{.Hostname}} {{.Status}}' | sort)
say "managers: $(echo "$managers" | tr '\n' ' ')"
[[ $(echo "$managers" | grep -c ' Ready$') == 3 ]] || fail "3 Ready managers expected"
for h in h1 h2 h3; do
  [[ $(on h1 node inspect -f '{{index .Spec.Labels "bss.host"}}' "$h") == "$h" ]] || fail "node $h not labelled bss.host=$h"
done

on h1 network create --driver overlay --attachable bss-swarm-test >/dev/null
on h1 service create --detach --name probe --mode global --endpoint-mode dnsrr --network bss-swarm-test \
  --no-resolve-image --restart-condition any "$IMG" nc -lk 7000 >/dev/null
running_on_each() {
  [[ $(on h1 service ps probe --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' | grep -c ' Running') == 3 ]]
}
wait_for 90 "one probe task running on each of the 3 hosts" running_on_each
# Across hosts over the overlay: from h1's task, the dnsrr name resolves to the 3 task IPs
# and h3's task accepts a TCP connection.
c1=$(on h1 ps -q --filter label=com.docker.swarm.service.name=probe | head -1)
ips=$(on h1 exec "$c1" getent ahostsv4 tasks.probe | awk '{print $1}' | sort -u)
[[ $(echo "$ips" | wc -l) == 3 ]] || fail "tasks.probe resolves to $(echo "$ips" | wc -l) addresses, 3 expected"
c3=$(on h3 ps -q --filter label=com.docker.swarm.service.name=probe | head -1)
ip3=$(on h3 inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$c3" | tr ' ' '\n' | grep -Fx -f <(echo "$ips") | head -1)
[[ -n $ip3 ]] || fail "h3's task has none of the dnsrr addresses"
wait_for 20 "h1's task reaches h3's task ($ip3:7000) across the overlay" on h1 exec "$c1" nc -z -w 2 "$ip3" 7000

"$H" kill h3
t=$(date +%s)
h3_down() { [[ $(on h1 node inspect -f '{{.Status.State}}' h3) == down ]]; }
wait_for 60 "h3 seen down by the managers" h3_down
say "  $(( $(date +%s) - t )) s after its engine was killed"
"$H" start h3
h3_ready() { [[ $(on h1 node inspect -f '{{.Status.State}}' h3) == ready ]]; }
wait_for 90 "h3 ready again after its engine started" h3_ready
say "passed"

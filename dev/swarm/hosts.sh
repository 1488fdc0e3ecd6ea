#!/usr/bin/env bash
# dev/swarm/hosts.sh — several Docker "hosts" on one machine, joined into one Swarm: the
# test bed of the Swarm backend (#18) where no second machine is at hand.
#
# Each host is a network namespace with its own dockerd (own socket, data root, exec root,
# hostname), wired by a veth pair to a bridge in the root namespace. The first three are
# managers, the rest workers; every node is labelled `bss.host=<host>`; the stack's offline
# images (bss-local/*) are copied into every engine (no registry: `docker save | docker
# load`; BSS_SWARM_IMAGES="a b" loads only those), and each daemon runs with
# DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1.
#
#   dev/swarm/hosts.sh up [N]     N hosts (default 3), the swarm formed, images loaded;
#                                 idempotent. Prints `export DOCKER_HOST=…` (the first
#                                 manager) for eval.
#   dev/swarm/hosts.sh status     each host: engine answers?, node role, availability, state
#   dev/swarm/hosts.sh kill HOST  loses a host: SIGKILL its dockerd (a drill's fault)
#   dev/swarm/hosts.sh start HOST starts a killed host's dockerd again (it rejoins)
#   dev/swarm/hosts.sh cut HOST   loses a host whole: its link down (engine and containers
#                                 cut off together, as a machine that dies or a partition)
#   dev/swarm/hosts.sh heal HOST  its link up again
#   dev/swarm/hosts.sh sock HOST  prints the unix socket of HOST's engine
#   dev/swarm/hosts.sh down       removes everything: engines, namespaces, bridge, state
#
# Limits of this kernel, not of Swarm (measured, ../ENVIRONMENT.md): no IPVS, so services
# use `endpoint_mode: dnsrr` and host-mode published ports; no ESP, so no encrypted
# overlays. Needs root. Addresses: 198.18.0.0/24 (RFC 2544 benchmarking range), bridge .254.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/scripts/env.sh
STATE=$BSS_CACHE/swarm
BRIDGE=bssw0
NET=198.18.0
HEARTBEAT=${BSS_SWARM_HEARTBEAT:-1s}
log() { printf '\033[1;35m[swarm]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sock() { echo "$STATE/$1/docker.sock"; }
on() { local h=$1; shift; DOCKER_HOST=unix://$(sock "$h") docker "$@"; }
answers() { on "$1" version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; }
hosts() { ls -1 "$STATE" 2>/dev/null | grep -E '^h[0-9]+$' | sort -V || true; }
addr() { echo "$NET.${1#h}"; }

bridge_up() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || {
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.254/24" dev "$BRIDGE"
  }
  ip link set "$BRIDGE" up
}

# The namespace and its link: veth `bsswN` in the root namespace on the bridge, `eth0` inside.
netns_up() {
  local h=$1 n=${1#h}
  ip netns list | grep -qw "^$h" || ip netns add "$h"
  if ! ip -n "$h" link show eth0 >/dev/null 2>&1; then
    ip link add "bssw$n" type veth peer name eth0 netns "$h"
    ip link set "bssw$n" master "$BRIDGE" up
    ip -n "$h" addr add "$(addr "$h")/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    ip -n "$h" route add default via "$NET.254"
  fi
  # What Docker's own rules do on a real host (these engines run with --iptables=false):
  # containers' traffic leaving the host takes the host's address, so what answers outside
  # it — the control plane at the bed's gateway ($NET.254: Envoy's upstream, Prometheus's
  # scrape of bss-control) — can reply. Without it such connections time out.
  local nat=(POSTROUTING -o eth0 ! -s "$(addr "$h")" -j MASQUERADE)
  ip netns exec "$h" iptables -t nat -C "${nat[@]}" 2>/dev/null || ip netns exec "$h" iptables -t nat -A "${nat[@]}"
}

# dockerd inside the namespace. `ip netns exec` mounts a fresh /sys without the cgroup
# hierarchies dockerd needs ("Devices cgroup isn't mounted"): mount them again in the
# namespace's own mount table, under a UTS namespace with the host's name.
engine_up() {
  local h=$1 d=$STATE/$1
  answers "$h" && return 0
  mkdir -p "$d/data" "$d/exec"
  log "$h: starting dockerd ($(addr "$h"))"
  setsid ip netns exec "$h" unshare --uts bash -c '
    set -e
    hostname "$1"
    mount -t tmpfs cgroup /sys/fs/cgroup
    for c in $(awk '\''$4 == 1 && $1 !~ /^#/ {print $1}'\'' /proc/cgroups); do
      mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || true
    done
    mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd || true
    exec env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 dockerd --host "unix://$2/docker.sock" \
      --data-root "$2/data" --exec-root "$2/exec" --pidfile "$2/docker.pid" \
      --storage-driver overlay2 --iptables=false
  ' _ "$h" "$d" >"$d/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do answers "$h" && return 0; sleep 0.5; done
  tail -20 "$d/dockerd.log" >&2
  die "$h: dockerd did not answer within 30 s"
}

swarm_state() { on "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

swarm_form() {
  local all=("$@") first=$1 i=0
  if [[ $(swarm_state "$first") != active ]]; then
    log "$first: swarm init (dispatcher heartbeat $HEARTBEAT)"
    on "$first" swarm init --advertise-addr "$(addr "$first")" --listen-addr "$(addr "$first"):2377" \
      --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
  fi
  local mtoken wtoken
  mtoken=$(on "$first" swarm join-token -q manager)
  wtoken=$(on "$first" swarm join-token -q worker)
  for h in "${all[@]}"; do
    i=$((i + 1))
    [[ $h == "$first" || $(swarm_state "$h") == active ]] && continue
    local token=$wtoken role=worker
    if (( i <= 3 )); then token=$mtoken role=manager; fi
    log "$h: joining as $role"
    on "$h" swarm join --token "$token" --advertise-addr "$(addr "$h")" --listen-addr "$(addr "$h"):2377" \
      "$(addr "$first"):2377" >/dev/null
  done
  # Node labels pin what must stay with its volume (the primary, each replica, each broker).
  for h in "${all[@]}"; do
    local id
    id=$(on "$h" info --format '{{.Swarm.NodeID}}')
    on "$first" node update --label-add "bss.host=$h" "$id" >/dev/null
  done
}

# The stack's images, from the main engine into each host's (skipped where the same image id
# is there already).
images_load() {
  local imgs=${BSS_SWARM_IMAGES:-}
  [[ -n $imgs ]] || imgs=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^bss-local/' | grep ':latest$' | grep -v bss-control || true)
  [[ -n $imgs ]] || { log "no bss-local images in the main engine (dev/images/build.sh): none loaded"; return 0; }
  for h in "$@"; do
    local missing=()
    for img in $imgs; do
      [[ $(on "$h" image inspect -f '{{.Id}}' "$img" 2>/dev/null) == "$(docker image inspect -f '{{.Id}}' "$img")" ]] || missing+=("$img")
    done
    (( ${#missing[@]} )) || continue
    log "$h: loading ${#missing[@]} images"
    docker save "${missing[@]}" | on "$h" load -q >/dev/null
  done
}

up() {
  local n=${1:-3}
  [[ $n =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 9 )) || die "N must be 1..9, got '$n'"
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces, dockerd)"
  # The main engine (images come from it).
  eval "$(dev/scripts/docker.sh ensure)"; export DOCKER_HOST
  local main=$DOCKER_HOST all=()
  bridge_up
  for i in $(seq 1 "$n"); do all+=("h$i"); mkdir -p "$STATE/h$i"; netns_up "h$i"; engine_up "h$i"; done
  swarm_form "${all[@]}"
  DOCKER_HOST=$main images_load "${all[@]}"
  log "swarm of ${#all[@]} hosts up; managers: $(on h1 node ls --filter role=manager -q | wc -l)"
  echo "export DOCKER_HOST=unix://$(sock h1)"
}

status() {
  for h in $(hosts); do
    if answers "$h"; then
      printf '%s %s %s\n' "$h" "$(addr "$h")" "$(on "$h" info --format '{{.Swarm.LocalNodeState}} manager={{.Swarm.ControlAvailable}}')"
    else
      printf '%s %s engine down\n' "$h" "$(addr "$h")"
    fi
  done
}

kill_host() {
  local h=${1:?host}; [[ -f $STATE/$h/docker.pid ]] || die "$h: no dockerd pid"
  kill -9 "$(cat "$STATE/$h/docker.pid")" 2>/dev/null || true
  log "$h: dockerd killed (SIGKILL)"
}

link() {
  local h=${1:?host} state=$2
  ip link show "bssw${h#h}" >/dev/null 2>&1 || die "$h: no link bssw${h#h}"
  ip link set "bssw${h#h}" "$state"
  log "$h: link $state"
}

down() {
  for h in $(hosts); do
    if answers "$h"; then on "$h" swarm leave --force >/dev/null 2>&1 || true; fi
    if [[ -f $STATE/$h/docker.pid ]]; then
      local pid; pid=$(cat "$STATE/$h/docker.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    # Containers' shims outlive a killed dockerd; they hold mounts under the data root.
    pkill -9 -f "containerd-shim.*$STATE/$h/" 2>/dev/null || true
    ip netns del "$h" 2>/dev/null || true
    ip link del "bssw${h#h}" 2>/dev/null || true
    grep -o " $STATE/$h/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "${STATE:?}/$h"
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  log "swarm hosts removed"
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  status) status ;;
  kill) kill_host "${2:-}" ;;
  start) engine_up "${2:?host}" ;;
  cut) link "${2:-}" down ;;
  heal) link "${2:-}" up ;;
  sock) sock "${2:?host}" ;;
  down) down ;;
  *) echo "usage: $0 up [N] | status | kill HOST | start HOST | cut HOST | heal HOST | sock HOST | down" >&2; exit 2 ;;
esac

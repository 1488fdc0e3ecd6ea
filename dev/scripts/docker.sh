#!/usr/bin/env bash
# ensure: make a Docker engine answer. Uses $DOCKER_HOST or /var/run/docker.sock when one
# answers; otherwise starts Debian's dockerd (20.10) under $BSS_CACHE/docker, bound to a
# unix socket only (never TCP), and records that we started it.
# stop: stops the engine only if this script started it.
# Prints `export DOCKER_HOST=...` on stdout for `eval`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/scripts/env.sh
STATE=$BSS_CACHE/docker
SOCK=$STATE/docker.sock
log() { printf '\033[1;34m[docker]\033[0m %s\n' "$*" >&2; }

answers() { DOCKER_HOST=$1 timeout 5 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; }

ensure() {
  if [[ -n ${DOCKER_HOST:-} ]] && answers "$DOCKER_HOST"; then echo "export DOCKER_HOST=$DOCKER_HOST"; return; fi
  if [[ -S /var/run/docker.sock ]] && answers unix:///var/run/docker.sock; then echo "export DOCKER_HOST=unix:///var/run/docker.sock"; return; fi
  if [[ -S $SOCK ]] && answers "unix://$SOCK"; then echo "export DOCKER_HOST=unix://$SOCK"; return; fi
  command -v dockerd >/dev/null || { log "dockerd missing: run dev/scripts/toolchain.sh"; exit 1; }
  [[ $(id -u) == 0 ]] || { log "starting dockerd needs root; start a Docker engine or set DOCKER_HOST"; exit 1; }
  mkdir -p "$STATE/data" "$STATE/exec"
  log "starting dockerd (state in $STATE)"
  # setsid: a long-lived parent of its own, so it survives the make/CI step that started it.
  setsid dockerd --host "unix://$SOCK" --data-root "$STATE/data" --exec-root "$STATE/exec" \
    --pidfile "$STATE/docker.pid" --storage-driver overlay2 --iptables=false \
    --ip-forward=false --ip-masq=false >"$STATE/dockerd.log" 2>&1 < /dev/null &
  touch "$STATE/started-by-bss"
  for _ in $(seq 1 60); do
    if answers "unix://$SOCK"; then log "dockerd up"; echo "export DOCKER_HOST=unix://$SOCK"; return; fi
    sleep 0.5
  done
  log "dockerd did not answer within 30 s; last log lines:"; tail -20 "$STATE/dockerd.log" >&2; exit 1
}

stop() {
  if [[ -f $STATE/started-by-bss && -f $STATE/docker.pid ]]; then
    kill "$(cat "$STATE/docker.pid")" 2>/dev/null || true
    rm -f "$STATE/started-by-bss"; log "stopped the dockerd we started"
  else
    log "no dockerd started by bss-control; nothing stopped"
  fi
}

case "${1:-ensure}" in ensure) ensure ;; stop) stop ;; *) echo "usage: $0 ensure|stop" >&2; exit 2 ;; esac

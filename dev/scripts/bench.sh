#!/usr/bin/env bash
# make bench: measured in one run, reported as ratios against a baseline from the same run
# (this machine is shared and noisy; absolute numbers are printed but not asserted).
#
# 1. Provisioning: bss-control's supervisor (`bss-control up`, which returns when every
#    service is healthy) vs Debian's docker-compose v1 (`up -d`, then polled until every
#    container is healthy and kafka-init exited 0), same offline images, fresh volumes.
# 2. Stream processors vs a raw rdkafka pipe and vs Kafka Streams (dev/bench/kstreams).
# 3. The read/write router vs direct sqlx pools, and its read distribution.
# 4. /healthz latency idle vs during 300 parallel bad sign-ins.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
command -v docker-compose >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=300 update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q docker-compose
}
dev/images/build.sh >/dev/null
cargo build -q -p server --features app/ssr
BIN=$CARGO_TARGET_DIR/debug/bss-control
STATE=$(mktemp -d); trap 'rm -rf "$STATE"' EXIT
export BSS_STORE_PATH=$STATE/bench.db BSS_COMPOSE=dev/compose.yml,dev/compose.offline.yml
COMPOSE=(docker-compose -p bssbench -f dev/compose.yml -f dev/compose.offline.yml)
ROUNDS=${BENCH_ROUNDS:-2}

now() { date +%s.%N; }
compose_healthy() {
  local ids; ids=$("${COMPOSE[@]}" ps -q)
  [[ -n $ids ]] || return 1
  local bad=0
  while read -r name status health code; do
    case "$name" in
      *kafka-init*) [[ $status == exited && $code == 0 ]] || bad=1 ;;
      *) [[ $status == running && $health == healthy ]] || bad=1 ;;
    esac
  done < <(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' $ids)
  return $bad
}

declare -a ours theirs
for r in $(seq 1 "$ROUNDS"); do
  "$BIN" down --volumes >/dev/null 2>&1 || true
  "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
  t0=$(now); "$BIN" up >/dev/null 2>&1; t1=$(now)
  ours+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  "$BIN" down --volumes >/dev/null 2>&1

  t0=$(now); "${COMPOSE[@]}" up -d >/dev/null 2>&1
  until compose_healthy; do sleep 0.5; done; t1=$(now)
  theirs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  "${COMPOSE[@]}" down -v >/dev/null 2>&1
  printf 'round %d: bss-control up %.1f s, docker-compose v1 %.1f s\n' "$r" "${ours[-1]}" "${theirs[-1]}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
printf '\nprovision to all-healthy (median of %d): bss-control %.1f s, docker-compose v1 %.1f s, ratio %.2f (lower is faster)\n' \
  "$ROUNDS" "$mo" "$mt" "$(awk -v a="$mo" -v b="$mt" 'BEGIN{print a/b}')"

# 2. Stream processors vs a raw consume→produce pipe and vs Kafka Streams (server/benches/streams.rs).
KS_OUT=$BSS_CACHE/kstreams-bench
mvn -q -B -f dev/bench/kstreams/pom.xml -Dbench.out="$KS_OUT" -DskipTests package
export KSTREAMS_CP="$KS_OUT/kstreams-bench-1.jar:$KS_OUT/lib/*"
"$BIN" up >/dev/null
cargo bench -q -p server --features app/ssr --bench streams

# 3. The read/write router vs direct sqlx pools (server/benches/router.rs).
cargo bench -q -p server --features app/ssr --bench router
"$BIN" down >/dev/null

# 4. /healthz latency while 300 bad sign-ins run (server/benches/signin.rs).
cargo bench -q -p server --features app/ssr --bench signin

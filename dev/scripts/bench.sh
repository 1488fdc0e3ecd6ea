#!/usr/bin/env bash
# make bench: measured in one run, reported as ratios against a baseline from the same run
# (this machine is shared and noisy; absolute numbers are printed but not asserted).
#
# 1. Provisioning: bss-control's supervisor (`bss-control up`, which returns when every
#    service is healthy) vs Debian's docker-compose v1 (`up -d`, then polled until every
#    container is healthy and kafka-init exited 0), same offline images, fresh volumes.
# 2. One hop (produce → acknowledged / consumed at 100 ev/s, acks=all and acks=1), then the
#    stream processors vs a raw rdkafka pipe and vs Kafka Streams (dev/bench/kstreams).
# 3. The read/write router vs direct sqlx pools, and its read distribution.
# 4. /healthz latency idle vs during 300 parallel bad sign-ins.
# 5. The seed's gateway claim (100,000+ req/s, p99 < 5 ms) through Envoy, and its read claim
#    (3x with replicas) through the router (part 3).
# 6. The stack's CPU at rest (goal ≤ 10 % of one core).
# 7. The browser bundle: the wasm fetched for a first page, gzipped, heaviest page and the
#    overview (goal ≤ 400 KB), from the release build's check (dev/scripts/check-wasm.mjs).
# Every part prints GOAL lines (server/src/goals.rs) and FIGURE lines (a figure reported
# without a goal of its own, e.g. the single hop); the end is one table of all of them,
# kept in $BSS_CACHE/bench/last.tsv for the verify suite. BENCH_PARTS="1 3" runs a subset
# (its rows replace the same rows of the last table; the others are kept, with their date).
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
command -v docker-compose >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=300 update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q docker-compose
}
dev/images/build.sh >/dev/null
# The package selection make test and make run use, so their debug build is reused.
cargo build -q --workspace --features app/ssr
BIN=$CARGO_TARGET_DIR/debug/bss-control
STATE=$(mktemp -d); trap 'rm -rf "$STATE"' EXIT
export BSS_STORE_PATH=$STATE/bench.db BSS_COMPOSE=dev/compose.yml,dev/compose.offline.yml
COMPOSE_PROJECT=bssbench
COMPOSE=(docker-compose -p "$COMPOSE_PROJECT" -f dev/compose.yml -f dev/compose.offline.yml)
ROUNDS=${BENCH_ROUNDS:-3}
# BENCH_PARTS picks parts (e.g. "1 3 5"); all by default.
PARTS=" ${BENCH_PARTS:-1 2 3 4 5 6 7 8} "
part() { [[ $PARTS == *" $1 "* ]]; }
RESULTS=$BSS_CACHE/bench
mkdir -p "$RESULTS"
LOG=$RESULTS/run-$(date -u +%Y%m%dT%H%M%SZ).log

now() { date +%s.%N; }
compose_healthy() {
  # The engine's own list by compose's project label, not `docker-compose ps`: that starts
  # a Python process per poll (0.4 CPU-s each, ~70 % of a core at 2 polls a second), which
  # slowed the very stack it was timing.
  local ids; ids=$(docker ps -aq --filter label=com.docker.compose.project=$COMPOSE_PROJECT)
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

provisioning() {
declare -a ours theirs
for r in $(seq 1 "$ROUNDS"); do
  "$BIN" down --volumes >/dev/null 2>&1 || true
  "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
  t0=$(now); stack_up; t1=$(now)
  ours+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  "$BIN" down --volumes >/dev/null 2>&1

  t0=$(now); "${COMPOSE[@]}" up -d >/dev/null 2>&1
  until compose_healthy; do sleep 0.5; done; t1=$(now)
  theirs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  "${COMPOSE[@]}" down -v >/dev/null 2>&1
  printf 'round %d: bss-control up %.1f s, docker-compose v1 %.1f s\n' "$r" "${ours[-1]}" "${theirs[-1]}"
done
local mo mt ratio
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}"); ratio=$(awk -v a="$mo" -v b="$mt" 'BEGIN{printf "%.2f", a/b}')
printf '\nprovision to all-healthy (median of %d): bss-control %.1f s, docker-compose v1 %.1f s, ratio %s (lower is faster)\n' "$ROUNDS" "$mo" "$mt" "$ratio"
goal "provisioning: bss-control up / docker-compose v1 up (median)" "$ratio" "≤ 0.80" "$(awk -v r="$ratio" 'BEGIN{print (r <= 0.8) ? "met" : "not met"}')"
}
# The stack up for a part; its progress lines go to a file, shown only if it fails.
stack_up() { "$BIN" up >"$STATE/up.log" 2>&1 || { cat "$STATE/up.log" >&2; return 1; }; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
goal() { printf 'GOAL\t%s\t%s\t%s\t%s\n' "$@"; }

# The stack at rest: every container's CPU, summed, 10 samples of `docker stats` after a
# 30 s settle, nothing flowing (no processors, no load). 100 % = one core.
idle_cpu() {
  stack_up
  sleep 30
  local samples=() s
  for _ in $(seq 1 10); do
    s=$(docker stats --no-stream --format '{{.CPUPerc}}' $(docker ps -q --filter label=io.bss-control.project=${BSS_PROJECT:-bss}) | tr -d % | awk '{t+=$1} END {printf "%.1f", t}')
    samples+=("$s")
  done
  local m; m=$(median "${samples[@]}")
  printf 'stack at rest (median of 10 docker stats samples, %s containers): %s %% of one core (samples: %s)\n' \
    "$(docker ps -q --filter label=io.bss-control.project=${BSS_PROJECT:-bss} | wc -l)" "$m" "${samples[*]}"
  goal "stack idle CPU, nothing flowing" "$m % of one core" "≤ 10 %" "$(awk -v r="$m" 'BEGIN{print (r <= 10) ? "met" : "not met"}')"
}

run_benches() {
# 1. Provisioning.
part 1 && provisioning
# 6. The stack's cost at rest.
part 6 && idle_cpu
# 2. Stream processors vs a raw consume→produce pipe and vs Kafka Streams (server/benches/streams.rs).
if part 2; then
  KS_OUT=$BSS_CACHE/kstreams-bench
  mvn -q -B -f dev/bench/kstreams/pom.xml -Dbench.out="$KS_OUT" -DskipTests package
  export KSTREAMS_CP="$KS_OUT/kstreams-bench-1.jar:$KS_OUT/lib/*"
  stack_up
  cargo bench -q -p server --features app/ssr --bench hop
  cargo bench -q -p server --features app/ssr --bench streams
fi
# 8. The control plane's memory while the demo runs at 10 000 ev/s (server/benches/memory.rs).
if part 8; then stack_up; cargo bench -q -p server --features app/ssr --bench memory; fi
# 3. The read/write router vs direct sqlx pools, and the seed's read claim (server/benches/router.rs).
if part 3; then stack_up; cargo bench -q -p server --features app/ssr --bench router; fi
# 5. The seed's gateway claim: Envoy's bench listener, the BSS API direct and through Envoy
#    (server/benches/gateway.rs).
if part 5; then stack_up; cargo bench -q -p server --features app/ssr --bench gateway; fi
"$BIN" down >/dev/null
# 4. /healthz latency while 300 bad sign-ins run (server/benches/signin.rs).
part 4 && cargo bench -q -p server --features app/ssr --bench signin
# 7. The browser bundle (a release build of the browser half; its check prints the goals).
if part 7; then dev/scripts/toolchain.sh front && dev/scripts/build.sh front | grep -v swc_ecma; fi
return 0
}

run_benches 2>&1 | tee "$LOG"
[[ ${PIPESTATUS[0]} == 0 ]] || { echo "make bench failed (log: $LOG)" >&2; exit 1; }
# One table of every goal measured in this run; the verify suite reads the last one.
# A subset run (BENCH_PARTS) replaces only the rows it measured: the other parts' rows stay,
# with the date of the run that measured them in the header, so the verify suite never
# loses a figure to a partial run.
HEADER="# $(date -u +%Y-%m-%dT%H:%MZ) ($(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown))"
NEW=$(grep -a -E $'^(GOAL|FIGURE)\t' "$LOG" || true)
if [[ -n ${BENCH_PARTS:-} && -f $RESULTS/last.tsv ]]; then
  OLD_HEADER=$(head -1 "$RESULTS/last.tsv" | sed 's/^# //; s/; parts .*//')
  KEPT=$(awk -F'\t' 'NR == FNR { if (NF > 1) seen[$2] = 1; next } /^(GOAL|FIGURE)\t/ && !($2 in seen)' \
    <(printf '%s\n' "$NEW") "$RESULTS/last.tsv")
  HEADER="$HEADER; parts $BENCH_PARTS; other rows from $OLD_HEADER"
  NEW=$(printf '%s\n%s' "$NEW" "$KEPT")
fi
printf '%s\n%s\n' "$HEADER" "$NEW" | grep -v '^$' > "$RESULTS/last.tsv.new" && mv "$RESULTS/last.tsv.new" "$RESULTS/last.tsv"
echo
echo "make bench — every goal of this run (log: $LOG)"
{ printf 'goal\tmeasured\ttarget\tresult\n'; grep -a $'^GOAL\t' "$LOG" | cut -f2-; } | column -t -s $'\t'
if grep -qa $'^FIGURE\t' "$LOG"; then
  echo
  echo "figures reported beside the goals"
  grep -a $'^FIGURE\t' "$LOG" | cut -f2- | column -t -s $'\t'
fi

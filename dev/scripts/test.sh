#!/usr/bin/env bash
# Everything CI checks: Rust tests (unit + real-engine integration), the Phase 3 stack
# provisioned from the offline images and checked service by service, the browser bundle
# with its wasm check, then Playwright in Debian chromium against the server the tests
# built, the real Docker engine and the real stack.
#
# Pipelined for a fresh 2-core machine: the offline images (network and disk bound) and the
# browser half (cargo-leptos install, then the release wasm build, at low CPU priority) run
# in the background while the Rust tests build and run in the foreground. One build
# profile serves the tests and the end-to-end server. Each step prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T0=$(date +%s)
step() { printf '\n\033[1;32m==> [%4ss] %s\033[0m\n' "$(($(date +%s) - T0))" "$*"; }

step "toolchain (apt, Debian rustc, npm tools)"
dev/scripts/toolchain.sh base
. dev/scripts/env.sh
# The per-machine build cache keeps every checkout's artifacts (cargo keys them by path)
# and grows run after run: past 40 GB, or with under 15 GB left on its disk, start it
# afresh (a cold build fits the CI budget; a full disk fails everything).
if [[ -d $CARGO_TARGET_DIR ]]; then
  used_gb=$(du -s --block-size=1G "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)
  free_gb=$(df --output=avail --block-size=1G "$CARGO_TARGET_DIR" | tail -1 | tr -d ' ')
  if (( used_gb > 40 || free_gb < 15 )); then
    echo "build cache $CARGO_TARGET_DIR: ${used_gb} GB used, ${free_gb} GB free on its disk: starting it afresh"
    rm -rf "$CARGO_TARGET_DIR"
  fi
fi
eval "$(dev/scripts/docker.sh ensure)"
export DOCKER_HOST
export BSS_COMPOSE=dev/compose.yml,dev/compose.offline.yml BSS_PROJECT=bss

LOGS=$(mktemp -d)
E2E_STATE=$(mktemp -d)
BG=()
cleanup() {
  local p; for p in "${BG[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  # Leave nothing running: the stack is torn down (its volumes go at the next run's start).
  [[ -x $CARGO_TARGET_DIR/debug/bss-control ]] && \
    BSS_STORE_PATH=$E2E_STATE/cli.db "$CARGO_TARGET_DIR/debug/bss-control" down >/dev/null 2>&1 || true
  rm -rf "$E2E_STATE" "$LOGS"
}
trap cleanup EXIT
# bg NAME CMD...: runs CMD in its own process group, output to $LOGS/NAME.log.
bg() { local n=$1; shift; setsid "$@" >"$LOGS/$n.log" 2>&1 & BG+=($!); eval "PID_${n//-/_}=$!"; }
# wait_bg NAME [SED]: waits for it; on failure prints its log and fails; on success prints
# the lines of its log the sed script SED selects (by default the last three).
wait_bg() {
  local n=$1 pid; pid=$(eval "echo \$PID_${n//-/_}")
  if ! wait "$pid"; then tail -60 "$LOGS/$n.log" >&2; echo "background step $n failed" >&2; exit 1; fi
  if [[ -n ${2:-} ]]; then sed -n "$2" "$LOGS/$n.log"; else tail -3 "$LOGS/$n.log"; fi
}

bg images dev/images/build.sh
bg front nice -n 19 bash -c "dev/scripts/toolchain.sh front && dev/scripts/build.sh front && touch '$LOGS/front.done'"

# Every cargo call selects the same packages (--workspace): with only -p server, `app` is
# a plain dependency (rlib) instead of a member (cdylib + rlib), which rebuilt both crates
# (about 2 min) between the unit and the integration steps.
step "cargo test (unit + real Docker engine)"
cargo test --workspace --features app/ssr

step "offline images for the Phase 3 stack (cached by input hash)"
wait_bg images
# Every run starts from empty stack volumes, as a fresh machine does. Kept volumes carried
# every earlier run's scratch topics: the KRaft metadata log reached 290 000 records, the
# controllers took seconds per event on this 2-core machine and lost their quorum under
# load, brokers were fenced and replica fetchers gave up on partitions ("marked as
# failed"), so ISRs stayed short and acks=all produces timed out (the crash test, twice).
BSS_STORE_PATH=$E2E_STATE/cli.db "$CARGO_TARGET_DIR/debug/bss-control" down --volumes >/dev/null 2>&1 || true

step "DB router on the real primary + replicas: spread, lag ejection, read-your-writes, failures"
cargo test --workspace --features app/ssr --test db -- --ignored --nocapture

step "BSS API (customers, orders) through the router: read-your-writes, CloudEvents, bad input, bus down, the outbox under failure"
cargo test --workspace --features app/ssr --test bss_api -- --ignored --nocapture --test-threads 1

step "Kafka stream processors on the three real brokers: in = out + DLQ, restart mid-stream, DLQ reasons"
cargo test --workspace --features app/ssr --test streams -- --ignored --nocapture

step "The control plane SIGKILLed mid-stream (100 000 events): at-least-once loses nothing, exactly-once repeats nothing"
cargo test --workspace --features app/ssr --test crash -- --ignored --nocapture

step "Alerts and gateway on the real AlertManager, Prometheus, Envoy, HAProxy"
cargo test --workspace --features app/ssr --test alerts -- --ignored --nocapture

step "The seed's traffic path: the BSS API through Envoy (15006) to the control plane's container-facing listener, rate limit, retries, Prometheus scrape"
cargo test --workspace --features app/ssr --test traffic -- --ignored --nocapture

step "Verification suite and Kafka demo on the real stack (a stopped replica is named)"
cargo test --workspace --features app/ssr --test verify -- --ignored --nocapture --test-threads 1

step "The seed's scripts by name: dev/verify-phase3.sh and dev/demo-kafka-streams.sh pass their exit codes through"
# A settled stack first (the steps before stop and restart a replica): both standbys UP in
# HAProxy's read pool, as its stats say, for up to 60 s.
for _ in $(seq 60); do
  [[ $(curl -s 'http://127.0.0.1:8084/stats;csv' | awk -F, '$1=="pg_replicas" && $2 ~ /^postgres-replica/ && $18=="UP"' | wc -l) == 2 ]] && break
  sleep 1
done
BSS_CONTROL=$CARGO_TARGET_DIR/debug/bss-control dev/verify-phase3.sh > "$LOGS/verify-phase3.out" 2>&1 \
  || { cat "$LOGS/verify-phase3.out" >&2
       echo "HAProxy's server transitions:" >&2; docker logs --since 10m bss-haproxy 2>&1 | grep -E "^\[(WARNING|ALERT)\]" | tail -20 >&2
       echo "dev/verify-phase3.sh failed" >&2; exit 1; }
tail -2 "$LOGS/verify-phase3.out"
BSS_CONTROL=$CARGO_TARGET_DIR/debug/bss-control dev/demo-kafka-streams.sh --events 400 --rate 400 --malformed-every 20
if BSS_CONTROL=$CARGO_TARGET_DIR/debug/bss-control dev/demo-kafka-streams.sh --events 0 2> "$LOGS/demo-bad.err"; then
  echo "dev/demo-kafka-streams.sh --events 0 should have failed" >&2; exit 1
fi
grep -q "events must be between 1" "$LOGS/demo-bad.err" || { cat "$LOGS/demo-bad.err" >&2; exit 1; }

step "Fault drills under load: brokers killed and cut off, a processor crash, replicas, primary, HAProxy, the healer, Envoy's upstream failing; a control plane killed mid-drill; a stopped broker paged as KafkaBrokerDown, its partitions seen offline and under-replicated"
cargo test --workspace --features app/ssr --test drills -- --ignored --nocapture --test-threads 1

# Two lanes from here. The Swarm test bed is a stack of its own (three engines in network
# namespaces on 198.18.0.0/24, its control plane on 127.0.0.1:3102, about 11 min) and runs
# in the background while the engine stack's remaining checks run in the foreground: the
# alert rules' test (mostly waiting out each rule's `for:` hold, about 8 min), the fuzzer,
# the stack and the image tests. The fuzzer stays out of the bed's way: beside it, the
# load slowed the bed's verify burst of 20 requests through its Envoy enough for the token
# bucket to refill three times (13 passed where the check then allowed 11; a clean-clone
# run of 57b0a04's order, 2026-12-03; the check now allows for refills over the burst's
# measured span, but the bed's other timing bounds still want the load lighter). The adoption's `docker-compose up` gives up on the first
# health check a starting broker fails, which it did beside the bed's engines (a
# clean-clone run of ac20670: kafka-init "is unhealthy", 2026-12-03), so it runs after the
# lane ends, with Playwright.
step "In the background: the Swarm test bed with the whole stack on it"
# (3 engines in network namespaces, one 3-manager swarm, overlay dnsrr, an engine killed and
# back; then the stack with the swarm backend: placement, KRaft across hosts, replicas
# streaming, idempotent up, verify against the swarm, the Cluster page in Chromium draining
# h3, h3 cut off and back, said on the live feed.) Its Chromium test needs the browser
# bundle: on a fresh machine it may still be building (cargo-leptos, wasm-bindgen-cli, the
# release wasm), so the lane waits for it.
bg lanes bash -c "until [[ -f '$LOGS/front.done' ]]; do sleep 2; done && SWARM_E2E=1 dev/swarm/test.sh"

step "Alert rules fire on real faults: a replica stopped, processors stopped with records waiting, Envoy's upstream failing then gone, the replication slot idle"
cargo test --workspace --features app/ssr --test rules -- --ignored --nocapture

step "schemathesis fuzzing the OpenAPI description against the live server (as an operator, then a viewer)"
dev/scripts/schemathesis.sh "$CARGO_TARGET_DIR/debug/bss-control" | sed '/^  - JUnit/d'

step "Phase 3 stack: provision, check every service, heal a killed replica, tear down"
cargo test --workspace --features app/ssr --test stack -- --ignored --nocapture

step "The panel's container image (offline, from the stack's base): shared mode, health check, sign-in, an operator action, state across a restart"
cargo test --workspace --features app/ssr --test image -- --ignored --nocapture

# Waited for first, so a failed bundle build fails the run instead of leaving the lane
# waiting for it.
step "browser bundle (cargo-leptos, release wasm split per page) + wasm check: hydrates, every page's first load ≤ 400 KB gzipped"
wait_bg front

step "The Swarm test bed (started beside the rules' test)"
wait_bg lanes '/^\[swarm-test/p'

step "A stack started with Debian's docker-compose is adopted by bss-control up: nothing recreated, every service supervised"
cargo test --workspace --features app/ssr --test adopt -- --ignored --nocapture

step "Playwright (end2end) in Debian chromium"
BIN=$CARGO_TARGET_DIR/debug/bss-control
# The pages provision the stack themselves, from empty volumes: the drills' broker kills and
# partitions, then the stack test's teardown, once left both state changelogs with no
# leader (ISR and ELR empty on all three brokers), and processors started on that cluster
# restarted forever on "UnknownPartition" (the four failing Playwright tests of a run).
BSS_STORE_PATH=$E2E_STATE/cli.db "$BIN" down --volumes >/dev/null 2>&1 || true
export E2E_SERVER="env BSS_STORE_PATH=$E2E_STATE/state.db BSS_SITE_ROOT=$ROOT/target/site $BIN serve"
export E2E_SHARED_SERVER="env BSS_STREAMS_AUTOSTART=off BSS_STORE_PATH=$E2E_STATE/shared.db BSS_SITE_ROOT=$ROOT/target/site $BIN serve"
# Users of the sign-in server: a fresh random password per run, given on stdin.
E2E_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export E2E_PASSWORD
for u in vera:viewer olga:operator oscar:operator ada:admin; do
  printf '%s\n' "$E2E_PASSWORD" | BSS_STORE_PATH=$E2E_STATE/shared.db "$BIN" user add --name "${u%%:*}" --role "${u##*:}"
done
(cd end2end && npx playwright test)
step "done"

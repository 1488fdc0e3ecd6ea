#!/bin/bash
# One-shot (service kafka-init): create the Phase 3 topics once the three brokers are healthy.
# Idempotent (--if-not-exists); 3 partitions, replication factor 3, min.insync.replicas 2.
set -euo pipefail
BOOT=${BOOTSTRAP_SERVERS:-kafka-1:19092,kafka-2:19092,kafka-3:19092}
TOPICS=/opt/kafka/bin/kafka-topics.sh
for topic in bss.customer.events bss.order.events bss.analytics.events bss.dlq.events; do
  extra=()
  # dead letters are kept 14 days (the others use the broker default, 7 days)
  [[ $topic == bss.dlq.events ]] && extra=(--config retention.ms=1209600000)
  "$TOPICS" --bootstrap-server "$BOOT" --create --if-not-exists --topic "$topic" \
    --partitions 3 --replication-factor 3 --config min.insync.replicas=2 "${extra[@]}"
done
"$TOPICS" --bootstrap-server "$BOOT" --describe --topic 'bss\..*'
echo "kafka-init: topics ready"

# Warm the group coordinator: the first FindCoordinator makes the brokers create
# __consumer_offsets (50 partitions, RF 3), which took over 20 s on a busy machine and
# stalled the first consumer group to join after `up`. Done here, `up` returns a stack
# whose groups join at once. Bounded (2 minutes); a slow cluster is reported, not fatal.
for _ in $(seq 1 40); do
  /opt/kafka/bin/kafka-consumer-groups.sh --bootstrap-server "$BOOT" --describe --group bss-kafka-init >/dev/null 2>&1 || true
  if "$TOPICS" --bootstrap-server "$BOOT" --describe --topic __consumer_offsets >/dev/null 2>&1 &&
     [[ -z $("$TOPICS" --bootstrap-server "$BOOT" --describe --topic __consumer_offsets --unavailable-partitions 2>/dev/null) ]]; then
    echo "kafka-init: group coordinator ready"
    exit 0
  fi
  sleep 1
done
echo "kafka-init: __consumer_offsets not ready after 2 minutes; consumer groups will wait for it" >&2

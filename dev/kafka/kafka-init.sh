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

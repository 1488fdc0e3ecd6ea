#!/bin/bash
# kafka-server-start.sh CONFIG: the broker/controller process (kafka.Kafka).
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$@"

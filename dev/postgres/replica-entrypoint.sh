#!/bin/bash
# Entrypoint of postgres-replica-N (runs as the postgres user). On first start (empty $PGDATA)
# it clones the primary with
#   pg_basebackup -R -S $REPLICA_SLOT -X stream -c fast
# which writes standby.signal and primary_conninfo (with application_name=$REPLICA_NAME and
# primary_slot_name) into postgresql.auto.conf; later starts reuse the data directory.
# Then it execs the command (postgres ... with hot_standby=on).
# Env: PRIMARY_HOST, PRIMARY_PORT, REPLICATION_USER, REPLICATION_PASSWORD, REPLICA_SLOT, REPLICA_NAME.
set -Eeuo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:=replicator}"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  echo "replica: waiting for $PRIMARY_HOST:$PRIMARY_PORT"
  for _ in $(seq 1 120); do pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" && break; sleep 1; done
  mkdir -p "$PGDATA"
  find "$PGDATA" -mindepth 1 -delete          # leftovers of an interrupted clone
  echo "replica: pg_basebackup from $PRIMARY_HOST slot=$REPLICA_SLOT application_name=$REPLICA_NAME"
  PGPASSWORD=$REPLICATION_PASSWORD pg_basebackup -D "$PGDATA" -R -S "$REPLICA_SLOT" -X stream -c fast \
    -d "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER application_name=$REPLICA_NAME"
  chmod 700 "$PGDATA"
  # -R writes e.g. primary_conninfo = '... application_name=''postgres-replica-1'' ...'
  if ! grep -Eq "^primary_conninfo = .*application_name='*$REPLICA_NAME'* " "$PGDATA/postgresql.auto.conf" \
     || ! grep -q "^primary_slot_name = '$REPLICA_SLOT'" "$PGDATA/postgresql.auto.conf"; then
    echo "replica: postgresql.auto.conf lacks application_name/slot; wiping the clone" >&2
    cat "$PGDATA/postgresql.auto.conf" >&2 || true
    find "$PGDATA" -mindepth 1 -delete
    exit 1
  fi
  echo "replica: clone done"
fi
exec "$@"

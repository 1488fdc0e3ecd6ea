#!/bin/bash
# Runs once, on the primary's first start (mounted into /docker-entrypoint-initdb.d; works with
# the official postgres:15 entrypoint and with bss-local/postgres's). Creates:
#   replicator     REPLICATION role used by pg_basebackup and the standbys' walreceivers
#   replica_1/_2   physical replication slots, one per standby, reserving WAL from creation
#   bss_monitor    member of pg_monitor, for postgres-exporter (sees pg_stat_replication lags)
#   haproxy_check  LOGIN only, no privileges: HAProxy's tcp-check logs in with it
# and writes pg_hba.conf (scram-sha-256 for every TCP login except haproxy_check's cleartext
# `password` check login; trust only on the container-local unix socket, used by health checks).
# All passwords come from the environment and are dev-only values.
set -eo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v repl_pw="$REPLICATION_PASSWORD" -v mon_pw="$MONITOR_PASSWORD" -v chk_pw="$HAPROXY_CHECK_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'repl_pw';
CREATE ROLE bss_monitor WITH LOGIN PASSWORD :'mon_pw' IN ROLE pg_monitor;
CREATE ROLE haproxy_check WITH LOGIN PASSWORD :'chk_pw';
-- immediately_reserve => true: the slots hold WAL from now on, not only from the standby's first
-- connection (else a concurrent pg_basebackup can lose a segment: "requested WAL segment ...
-- has already been removed", seen when both standbys cloned at once).
SELECT pg_create_physical_replication_slot('replica_1', true);
SELECT pg_create_physical_replication_slot('replica_2', true);
SQL

cat >"$PGDATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE     USER           ADDRESS   METHOD
local   all          all                      trust
host    replication  replicator     all       scram-sha-256
host    postgres     haproxy_check  all       password
host    all          all            all       scram-sha-256
HBA
echo "primary-init: roles, slots replica_1/replica_2 and pg_hba.conf ready"

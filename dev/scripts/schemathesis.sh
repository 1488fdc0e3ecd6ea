#!/usr/bin/env bash
# The OpenAPI description (/api/openapi.json) fuzzed against the live server by
# schemathesis: a shared-mode server (sign-in on) on its own store and port, in front of the
# running stack's PostgreSQL, signed in once as an operator and once as a viewer. Bounded
# in examples per operation and in time. Fails on any 5xx, any response the description
# does not allow (status, content type, headers, body schema), any schema-violating input
# that is accepted, and any viewer's write that is not refused (dev/schemathesis/hooks.py).
#
# Usage: dev/scripts/schemathesis.sh BSS_CONTROL_BINARY   (the stack must be up)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:?usage: $0 path/to/bss-control}
ST=$BSS_TOOLS/schemathesis-4.32.5/bin/schemathesis
PORT=${ST_PORT:-3947}
BASE=http://127.0.0.1:$PORT
EXAMPLES=${ST_EXAMPLES:-40}
DIR=$(mktemp -d)
SERVER=
trap '[[ -n $SERVER ]] && kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT

PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
for u in fuzz-op:operator fuzz-viewer:viewer; do
  printf '%s\n' "$PASSWORD" | BSS_STORE_PATH=$DIR/state.db "$BIN" user add --name "${u%%:*}" --role "${u##*:}" >/dev/null
done
BSS_AUTH=on BSS_LISTEN=127.0.0.1:$PORT BSS_STORE_PATH=$DIR/state.db BSS_STREAMS_AUTOSTART=off BSS_STACK_LISTEN=off BSS_LOG=warn \
  "$BIN" serve > "$DIR/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 120); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.5; done
curl -sf "$BASE/api/openapi.json" -o "$DIR/openapi.json" || { cat "$DIR/server.log" >&2; echo "no /api/openapi.json" >&2; exit 1; }

session() { # name -> session cookie value
  curl -s -o /dev/null -D - -H "Origin: $BASE" --data-urlencode "name=$1" --data-urlencode "password=$PASSWORD" "$BASE/auth/login" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: bss_session=\([^;]*\);.*/\1/p'
}

run() { # role user
  local role=$1 cookie; cookie=$(session "$2")
  [[ -n $cookie ]] || { echo "could not sign in as $2" >&2; cat "$DIR/server.log" >&2; exit 1; }
  echo "--- as $role ($2): at most $EXAMPLES examples per operation, ${ST_SECONDS:-120} s"
  # Logout is left out: it would end the session the run uses. One worker: with two,
  # CPython 3.11's AST parser (used by hypothesis to describe strategies) failed across
  # threads ("AST constructor recursion depth mismatch").
  local rc=0
  BSS_FUZZ_SESSION=$cookie BSS_FUZZ_ROLE=$role PYTHONPATH=dev/schemathesis SCHEMATHESIS_HOOKS=hooks timeout 420 \
    "$ST" --config-file dev/schemathesis/schemathesis.toml --no-color run "$BASE/api/openapi.json" \
    -H "Origin: $BASE" \
    --exclude-path /auth/logout \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,viewer_writes_refused \
    --phases examples,coverage,fuzzing --max-examples "$EXAMPLES" --max-time "${ST_SECONDS:-120}" --seed "${ST_SEED:-$RANDOM}" \
    --workers 1 --request-timeout 20 \
    --report junit --report-junit-path "$DIR/$role.xml" > "$DIR/$role.out" 2>&1 || rc=$?
  if (( rc != 0 )); then cat "$DIR/$role.out"; else sed -n '/= SUMMARY =/,$p' "$DIR/$role.out"; fi
  # Requests actually sent, from the JUnit report's test cases (one per operation).
  grep -o 'tests="[0-9]*"' "$DIR/$role.xml" | head -1 | sed "s/^/$role: operations /"
  if (( rc != 0 )); then
    echo "schemathesis as $role failed (exit $rc); server warnings:" >&2
    grep -E "WARN|ERROR" "$DIR/server.log" | tail -20 >&2
    exit 1
  fi
}
run operator fuzz-op
run viewer fuzz-viewer
# The viewer's run created nothing (every create is audited; a refused one never reaches the write).
created=$(sqlite3 "$DIR/state.db" "SELECT count(*) FROM audit_log WHERE actor='fuzz-viewer' AND action LIKE 'bss.%.create' AND result = 'ok'")
[[ $created == 0 ]] || { echo "the viewer's run created $created rows" >&2; exit 1; }
echo "operator's run: $(sqlite3 "$DIR/state.db" "SELECT count(*) FROM audit_log WHERE actor='fuzz-op' AND action LIKE 'bss.%.create' AND result = 'ok'") rows created"
echo "schemathesis: operator and viewer runs passed"

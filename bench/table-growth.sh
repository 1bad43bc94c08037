#!/usr/bin/env bash
# Table growth (issue 9): /authenticate and /refresh latency on PostgreSQL with empty tables
# and with a million refresh tokens and a hundred thousand keys, in the same run:
#   bench/table-growth.sh
# Two servers run side by side, one on an empty database and one on a seeded one, and the
# rounds alternate between them, so both see the same machine noise.
# Prints p50/p99 latency and requests/s of both endpoints at both sizes and the ratios
# (target: full / empty <= 1.2). Loopback only, bounded in time, cleans up after itself.
#
# Settings (environment):
#   GROWTH_ROUNDS=3        rounds; each round measures both endpoints for one slice
#   GROWTH_SLICE=3         seconds of one load in one round
#   GROWTH_CONNECTIONS=16  concurrent connections (latency, not throughput, is the question)
#   GROWTH_TOKENS=1000000 GROWTH_KEYS=100000   rows seeded
#   GROWTH_CLUSTER=own     own: a PostgreSQL cluster of the run's own (initdb, as the postgres
#                          user, default settings plus pg_stat_statements), quiet whatever else
#                          runs on the shared one; shared: the cluster at GROWTH_POSTGRES_URL
#   GROWTH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432   (GROWTH_CLUSTER=shared)
#   GROWTH_PORT=18090      the servers' ports (and the own cluster's: GROWTH_PORT + 10)
# With the own cluster it prints, per database, what pg_stat_statements saw of the refresh and
# authenticate statements during the measurement, and the checkpoints the cluster ran.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${GROWTH_ROUNDS:-3}
SLICE=${GROWTH_SLICE:-3}
CONNECTIONS=${GROWTH_CONNECTIONS:-16}
TOKENS=${GROWTH_TOKENS:-1000000}
KEYS=${GROWTH_KEYS:-100000}
CLUSTER=${GROWTH_CLUSTER:-own}
POSTGRES_URL=${GROWTH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${GROWTH_PORT:-18090}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
EMPTY_DB=jwt_growth_empty_$$
FULL_DB=jwt_growth_full_$$
WORK=$(mktemp -d)
PIDS=()

log() { printf '== %s\n' "$*" >&2; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for db in "$EMPTY_DB" "$FULL_DB"; do
        psql -q "$POSTGRES_URL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if [ -n "${PG_BIN:-}" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$CLUSTER" = own ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    chmod 711 "$WORK" && mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
        -o "-p $((PORT + 10)) -c listen_addresses=127.0.0.1 -k $WORK/pg -c shared_preload_libraries=pg_stat_statements -c track_io_timing=on" \
        start >/dev/null
    POSTGRES_URL=postgres://postgres@127.0.0.1:$((PORT + 10))
    log "own PostgreSQL cluster on port $((PORT + 10)) ($("$PG_BIN/postgres" --version))"
fi

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

log "building the server (release)"
cargo build --release -q -p jwthenticator-server
BINARY=$CARGO_TARGET_DIR/release/jwthenticator-server

"$BINARY" keygen --algorithm RS256 --private-key-out "$WORK/key.pem" >/dev/null
IDENTIFIER=$(cat /proc/sys/kernel/random/uuid)
KEY_BODY="{\"key\": \"growth-device-key-0001\", \"identifier\": \"$IDENTIFIER\"}"

# start_server <database> <port>: a server on that database; writes the refresh token of the
# benchmark's key to $WORK/refresh-<port> (no subshell, so its pid reaches the cleanup).
start_server() {
    psql -q "$POSTGRES_URL/postgres" -c "CREATE DATABASE $1" >/dev/null
    DATABASE_URL="$POSTGRES_URL/$1" HOST=127.0.0.1 PORT=$2 RSA_PRIVATE_KEY_PATH="$WORK/key.pem" \
        KEY_HASH_SECRET=bench-key-hash-secret-of-32-characters-or-more \
        AUTH_FAILURES_PER_IDENTIFIER=0 AUTH_FAILURES_PER_ADDRESS=0 RUST_LOG=warn \
        "$BINARY" >"$WORK/server-$2.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$2/health" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$2/register_key" -d "$KEY_BODY" >/dev/null
    curl -sf "http://127.0.0.1:$2/authenticate" -d "$KEY_BODY" \
        | python3 -c 'import sys, json; print(json.load(sys.stdin)["refresh_token"])' >"$WORK/refresh-$2"
}

start_server "$EMPTY_DB" "$PORT"
start_server "$FULL_DB" $((PORT + 1))
EMPTY_REFRESH=$(cat "$WORK/refresh-$PORT")
FULL_REFRESH=$(cat "$WORK/refresh-$((PORT + 1))")
log "seeding $TOKENS refresh tokens and $KEYS keys"
psql -q "$POSTGRES_URL/$FULL_DB" <<SQL
INSERT INTO keys (key_hash, identifier, created, expires_at)
SELECT encode(sha512(('seed-key-' || i)::bytea), 'hex'), gen_random_uuid(), now(), now() + interval '30 days'
FROM generate_series(1, $KEYS) AS i;
INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at, family_id)
SELECT encode(sha512(('seed-token-' || i)::bytea), 'hex'), (SELECT min(id) FROM keys) + (i % $KEYS), now(),
       now() + interval '30 days', gen_random_uuid()
FROM generate_series(1, $TOKENS) AS i;
VACUUM ANALYZE keys;
VACUUM ANALYZE refresh_tokens;
SQL
# The seed wrote about a gigabyte of WAL; its checkpoint would otherwise spread its writes over
# the next minutes, into the measurement of one database and not of the other.
psql -q "$POSTGRES_URL/postgres" -c CHECKPOINT >/dev/null
if [ "$CLUSTER" = own ]; then
    for db in "$EMPTY_DB" "$FULL_DB"; do
        psql -q "$POSTGRES_URL/$db" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
            -c 'SELECT pg_stat_statements_reset()' >/dev/null
    done
    psql -q "$POSTGRES_URL/postgres" -c "SELECT pg_stat_reset_shared('bgwriter')" >/dev/null
fi
log "seeded: $(psql -tA "$POSTGRES_URL/$FULL_DB" -c 'SELECT count(*) FROM refresh_tokens') refresh tokens, $(psql -tA "$POSTGRES_URL/$FULL_DB" -c 'SELECT count(*) FROM keys') keys"

# slice <port> <route> <body>: one slice of wrk; prints "<req/s> <p50 µs> <p99 µs> <errors>".
slice() {
    BENCH_METHOD=POST BENCH_BODY="$3" timeout $((SLICE + 60)) wrk -t 2 -c "$CONNECTIONS" -d "${SLICE}s" \
        -s "$ROOT/bench/wrk/bench.lua" "http://127.0.0.1:$1/$2" | awk '/^RESULT/ {print $2, $3, $4, $5}'
}

refresh_body() { echo "{\"refresh_token\": \"$1\", \"identifier\": \"$IDENTIFIER\"}"; }

log "measuring: $ROUNDS rounds alternating between the empty and the seeded database"
SAMPLES=$(for round in $(seq 1 "$ROUNDS"); do
    echo "empty authenticate $(slice "$PORT" authenticate "$KEY_BODY")"
    echo "full authenticate $(slice $((PORT + 1)) authenticate "$KEY_BODY")"
    echo "empty refresh $(slice "$PORT" refresh "$(refresh_body "$EMPTY_REFRESH")")"
    echo "full refresh $(slice $((PORT + 1)) refresh "$(refresh_body "$FULL_REFRESH")")"
done)
# Medians over the rounds: "<label> <endpoint> <req/s> <p50> <p99> <errors>".
MEDIANS=$(echo "$SAMPLES" | awk '
    { k = $1 " " $2; n[k]++; rps[k, n[k]] = $3; p50[k, n[k]] = $4; p99[k, n[k]] = $5; err[k] += $6 }
    function median(a, k, c,   i, j, t, v) { for (i = 1; i <= c; i++) v[i] = a[k, i]
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return v[int((c + 1) / 2)] }
    END { for (k in n) printf "%s %.0f %.0f %.0f %d\n", k, median(rps, k, n[k]), median(p50, k, n[k]), median(p99, k, n[k]), err[k] }')
EMPTY=$(echo "$MEDIANS" | grep '^empty')
FULL=$(echo "$MEDIANS" | grep '^full')

printf '\n| endpoint | rows | req/s | p50 µs | p99 µs | errors |\n|---|---|---:|---:|---:|---:|\n'
printf '%s\n%s\n' "$EMPTY" "$FULL" | sort -k2,2 -k1,1 | while read -r label endpoint rps p50 p99 errors; do
    rows=$([ "$label" = full ] && echo "${TOKENS} tokens, ${KEYS} keys" || echo empty)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$endpoint" "$rows" "$rps" "$p50" "$p99" "$errors"
done
printf '\n| endpoint | p50 full/empty | p99 full/empty | target |\n|---|---:|---:|---|\n'
printf '%s\n%s\n' "$EMPTY" "$FULL" | awk '
    { p50[$1, $2] = $4; p99[$1, $2] = $5; seen[$2] = 1 }
    END { for (e in seen) printf "| %s | %.2f | %.2f | <= 1.2 |\n", e, p50["full", e] / p50["empty", e], p99["full", e] / p99["empty", e] }'

if [ "$CLUSTER" = own ]; then
    printf '\n| database | statement | calls | mean ms | max ms | buffers hit/call | read/call | dirtied/call | WAL FPI/call | WAL bytes/call |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    for db in "$EMPTY_DB" "$FULL_DB"; do
        label=$([ "$db" = "$FULL_DB" ] && echo full || echo empty)
        psql -tA -F ' | ' "$POSTGRES_URL/$db" -c "
            SELECT '$label', left(regexp_replace(query, '\s+', ' ', 'g'), 60), calls,
                   round(mean_exec_time::numeric, 3), round(max_exec_time::numeric, 3),
                   round(shared_blks_hit::numeric / calls, 1), round(shared_blks_read::numeric / calls, 2),
                   round(shared_blks_dirtied::numeric / calls, 2), round(wal_fpi::numeric / calls, 2),
                   round(wal_bytes / calls, 0)
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND (query LIKE '%FROM refresh_tokens r%' OR query LIKE 'INSERT INTO refresh_tokens%'
                   OR query LIKE '%FROM keys%key_hash = ANY%')
            ORDER BY query" | sed 's/^/| /; s/$/ |/'
    done
    printf '\ncheckpoints during the measurement: %s\n' "$(psql -tA "$POSTGRES_URL/postgres" -c \
        "SELECT checkpoints_timed || ' timed, ' || checkpoints_req || ' requested, ' || buffers_checkpoint || ' buffers written by checkpoints, ' || buffers_backend || ' by backends' FROM pg_stat_bgwriter")"
fi

#!/usr/bin/env bash
# Table growth (issue 9): /authenticate and /refresh latency on PostgreSQL with empty tables,
# then with a million refresh tokens and a hundred thousand keys, in the same run:
#   bench/table-growth.sh
# Prints p50/p99 latency and requests/s of both endpoints at both sizes and the ratios
# (target: full / empty <= 1.2). Loopback only, bounded in time, cleans up after itself.
#
# Settings (environment):
#   GROWTH_ROUNDS=3        rounds; each round measures both endpoints for one slice
#   GROWTH_SLICE=3         seconds of one load in one round
#   GROWTH_CONNECTIONS=16  concurrent connections (latency, not throughput, is the question)
#   GROWTH_TOKENS=1000000 GROWTH_KEYS=100000   rows seeded
#   GROWTH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432
#   GROWTH_PORT=18090
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${GROWTH_ROUNDS:-3}
SLICE=${GROWTH_SLICE:-3}
CONNECTIONS=${GROWTH_CONNECTIONS:-16}
TOKENS=${GROWTH_TOKENS:-1000000}
KEYS=${GROWTH_KEYS:-100000}
POSTGRES_URL=${GROWTH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${GROWTH_PORT:-18090}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DATABASE=jwt_growth_$$
WORK=$(mktemp -d)
SERVER_PID=""

log() { printf '== %s\n' "$*" >&2; }
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    psql -q "$POSTGRES_URL/postgres" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

log "building the server (release)"
cargo build --release -q -p jwthenticator-server
BINARY=$CARGO_TARGET_DIR/release/jwthenticator-server

psql -q "$POSTGRES_URL/postgres" -c "CREATE DATABASE $DATABASE" >/dev/null
"$BINARY" keygen --algorithm RS256 --private-key-out "$WORK/key.pem" >/dev/null
DATABASE_URL="$POSTGRES_URL/$DATABASE" HOST=127.0.0.1 PORT=$PORT RSA_PRIVATE_KEY_PATH="$WORK/key.pem" \
    AUTH_FAILURES_PER_IDENTIFIER=0 AUTH_FAILURES_PER_ADDRESS=0 RUST_LOG=warn \
    "$BINARY" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

BASE=http://127.0.0.1:$PORT
IDENTIFIER=$(cat /proc/sys/kernel/random/uuid)
KEY_BODY="{\"key\": \"growth-key\", \"identifier\": \"$IDENTIFIER\"}"
curl -sf "$BASE/register_key" -d "$KEY_BODY" >/dev/null
REFRESH=$(curl -sf "$BASE/authenticate" -d "$KEY_BODY" | python3 -c 'import sys, json; print(json.load(sys.stdin)["refresh_token"])')
REFRESH_BODY="{\"refresh_token\": \"$REFRESH\", \"identifier\": \"$IDENTIFIER\"}"

# One slice of wrk; prints "<req/s> <p50 µs> <p99 µs> <errors>".
slice() {
    BENCH_METHOD=POST BENCH_BODY="$2" timeout $((SLICE + 60)) wrk -t 2 -c "$CONNECTIONS" -d "${SLICE}s" \
        -s "$ROOT/bench/wrk/bench.lua" "$BASE/$1" | awk '/^RESULT/ {print $2, $3, $4, $5}'
}

# Medians over the rounds of each endpoint: "<endpoint> <req/s> <p50> <p99> <errors>".
measure() {
    local label=$1
    for round in $(seq 1 "$ROUNDS"); do
        echo "authenticate $(slice authenticate "$KEY_BODY")"
        echo "refresh $(slice refresh "$REFRESH_BODY")"
    done | sort -k1,1 | awk -v label="$label" '
        { n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4; err[$1] += $5 }
        function median(a, e, k,   i, j, t, v) { for (i = 1; i <= k; i++) v[i] = a[e, i]
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            return v[int((k + 1) / 2)] }
        END { for (e in n) printf "%s %s %.0f %.0f %.0f %d\n", label, e, median(rps, e, n[e]), median(p50, e, n[e]), median(p99, e, n[e]), err[e] }'
}

log "measuring with (nearly) empty tables"
EMPTY=$(measure empty)
log "seeding $TOKENS refresh tokens and $KEYS keys"
psql -q "$POSTGRES_URL/$DATABASE" <<SQL
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
log "measuring with $(psql -tA "$POSTGRES_URL/$DATABASE" -c 'SELECT count(*) FROM refresh_tokens') refresh tokens and $(psql -tA "$POSTGRES_URL/$DATABASE" -c 'SELECT count(*) FROM keys') keys"
FULL=$(measure full)

printf '\n| endpoint | rows | req/s | p50 µs | p99 µs | errors |\n|---|---|---:|---:|---:|---:|\n'
printf '%s\n%s\n' "$EMPTY" "$FULL" | sort -k2,2 -k1,1 | while read -r label endpoint rps p50 p99 errors; do
    rows=$([ "$label" = full ] && echo "${TOKENS} tokens, ${KEYS} keys" || echo empty)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$endpoint" "$rows" "$rps" "$p50" "$p99" "$errors"
done
printf '\n| endpoint | p50 full/empty | p99 full/empty | target |\n|---|---:|---:|---|\n'
printf '%s\n%s\n' "$EMPTY" "$FULL" | awk '
    { p50[$1, $2] = $4; p99[$1, $2] = $5; seen[$2] = 1 }
    END { for (e in seen) printf "| %s | %.2f | %.2f | <= 1.2 |\n", e, p50["full", e] / p50["empty", e], p99["full", e] / p99["empty", e] }'

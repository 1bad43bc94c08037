#!/usr/bin/env bash
# Soak (issue 17, item 5): a long fixed-rate mixed load on three replicas that share their
# signing keys through PostgreSQL and rotate them every two minutes:
#   bench/soak.sh                      # 10 minutes
#   SOAK_MINUTES=2 bench/soak.sh       # a trial
# The load (`jwthenticator-bench soak`) cycles /authenticate, /refresh (rotation on: every
# refresh hands in the client's token and keeps the successor), /validate, /validate_request
# and /jwks over the replicas at a fixed rate. Per minute it prints requests, errors, p50/p99
# latency, and the RSS and open file descriptors of each replica (from /proc), then the verdict
# against the targets: RSS grows <= 10 % after the first minute, FDs stay flat, 0 errors, p99 of
# the last minute <= 1.5 x the second. Loopback only, bounded, cleans up after itself.
#
# Settings (environment):
#   SOAK_MINUTES=10 SOAK_RATE=150 (req/s, all replicas) SOAK_CLIENTS=64 SOAK_REPLICAS=3
#   SOAK_KEY_ROTATION_PERIOD=120 SOAK_KEY_REFRESH_INTERVAL=5 SOAK_KEY_ROTATION_PREPUBLISH=30
#   SOAK_JWT_LEASE_TIME=300   (so retired keys leave the JWKS during the run)
#   SOAK_POSTGRES_URL=postgres://postgres@127.0.0.1:5432   SOAK_PORT=18290
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${SOAK_MINUTES:-10}
RATE=${SOAK_RATE:-150}
CLIENTS=${SOAK_CLIENTS:-64}
REPLICAS=${SOAK_REPLICAS:-3}
POSTGRES_URL=${SOAK_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${SOAK_PORT:-18290}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DB=jwt_soak_$$
WORK=$(mktemp -d)
PIDS=()

log() { printf '== %s\n' "$*" >&2; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql -q "$POSTGRES_URL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "building the server and the load generator (release)"
# Built one at a time, as bench/table-growth.sh and bench/run.sh build them (the same features,
# the same artifacts).
cargo build --release -q -p jwthenticator-server
cargo build --release -q -p jwthenticator-bench
BINARY=$CARGO_TARGET_DIR/release/jwthenticator-server
BENCH=$CARGO_TARGET_DIR/release/jwthenticator-bench

psql -q "$POSTGRES_URL/postgres" -c "CREATE DATABASE $DB" >/dev/null
ARGS=()
for replica in $(seq 1 "$REPLICAS"); do
    port=$((PORT + replica - 1))
    DATABASE_URL="$POSTGRES_URL/$DB" HOST=127.0.0.1 PORT=$port \
        KEY_ENCRYPTION_SECRET=soak-key-encryption-secret-of-the-replicas \
        KEY_HASH_SECRET=soak-key-hash-secret-of-32-characters-or-more \
        KEY_ROTATION_PERIOD=${SOAK_KEY_ROTATION_PERIOD:-120} \
        KEY_REFRESH_INTERVAL=${SOAK_KEY_REFRESH_INTERVAL:-5} \
        KEY_ROTATION_PREPUBLISH=${SOAK_KEY_ROTATION_PREPUBLISH:-30} \
        JWT_LEASE_TIME=${SOAK_JWT_LEASE_TIME:-300} \
        ROTATE_REFRESH_TOKENS=true RUST_LOG=warn \
        "$BINARY" >"$WORK/replica-$replica.log" 2>&1 &
    PIDS+=($!)
    ARGS+=(--url "http://127.0.0.1:$port" --pid "$!")
    # One replica at a time: the first creates the shared keys, the others load them.
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
        kill -0 "$!" 2>/dev/null || { cat "$WORK/replica-$replica.log" >&2; exit 1; }
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null \
        || { log "replica $replica is not ready"; cat "$WORK/replica-$replica.log" >&2; exit 1; }
done

log "commit $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "$MINUTES min at $RATE req/s on $REPLICAS replicas"
status=0
timeout $((MINUTES * 60 + 120)) "$BENCH" soak "${ARGS[@]}" --rate "$RATE" --minutes "$MINUTES" \
    --clients "$CLIENTS" || status=$?
log "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); signing keys stored: $(psql -tA "$POSTGRES_URL/$DB" -c 'SELECT count(*) FROM signing_keys'), refresh tokens: $(psql -tA "$POSTGRES_URL/$DB" -c 'SELECT count(*) FROM refresh_tokens')"
for replica in $(seq 1 "$REPLICAS"); do
    if grep -qiE 'error|panic' "$WORK/replica-$replica.log"; then
        log "replica $replica logged:"
        grep -iE 'error|panic' "$WORK/replica-$replica.log" | head -n 20 >&2
    fi
done
exit "$status"

#!/usr/bin/env bash
# The load benchmark of issue 8, in one command: bench/run.sh
#
# Builds in release mode, installs wrk (Debian) when missing, measures the baselines (raw RS256
# sign and verify on every core, the server's own /health), drives every endpoint of the server
# on SQLite and on PostgreSQL with wrk, compares the tower layer with tower-oauth2-resource-server
# on the same axum handler, measures the reqwest middleware's overhead, and prints the tables of
# BENCHMARKS.md: every figure as a ratio to its baseline from this very run, with the targets.
#
# The machine is shared and noisy, so loads are not run one after the other: each round runs
# every load of a group (an endpoint and its baseline, or the three services) for one short
# slice, and the rounds repeat. Each figure then sums its slices, and a baseline and the loads
# compared with it see the same noise.
#
# Loopback only; every load is bounded in time; servers are stopped and the PostgreSQL
# database dropped on exit, whatever happens. About 7 minutes after the build with the defaults.
#
# Settings (environment):
#   BENCH_ROUNDS=5             rounds; every load runs once per round
#   BENCH_SLICE=2              seconds of one load in one round (so 10 s per load by default)
#   BENCH_CONNECTIONS=64       concurrent connections of every load
#   BENCH_WRK_THREADS=2        wrk threads
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432   a server that lets us create a database
#   BENCH_PORT=18080           first of the three loopback ports used
#   BENCH_TOKENS=50000*BENCH_ROUNDS*BENCH_SLICE   distinct tokens for the "every token new" loads
#   BENCH_OUT=$CARGO_TARGET_DIR/bench   where results.tsv, report.md and the server logs go
#   CARGO_TARGET_DIR           as for cargo (default: target/ of the workspace)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-5}
SLICE=${BENCH_SLICE:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${BENCH_PORT:-18080}
TOKENS=${BENCH_TOKENS:-$((50000 * ROUNDS * SLICE))}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench}
HOST=127.0.0.1

WORK=$(mktemp -d)
RESULTS=$OUT/results.tsv
SERVER_PID=""
LAYER_PIDS=()
DATABASE=""

log() { printf '== %s\n' "$*" >&2; }

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

drop_database() {
    if [[ -n $DATABASE ]]; then
        psql -q "$POSTGRES_URL/postgres" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null || true
        DATABASE=""
    fi
}

cleanup() {
    stop_server
    stop_layers
    drop_database
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 30 s) until $1 answers HTTP (any status: a protected `/` answers 401).
wait_until_up() {
    local url=$1
    for _ in $(seq 1 300); do
        if curl -s -o /dev/null "$url" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "the server exited; see the logs in $OUT"
            return 1
        fi
        sleep 0.1
    done
    log "$url did not come up within 30 s"
    return 1
}

# Runs wrk against $1 for one slice, with the environment given before the call; prints the
# RESULT fields (see wrk/bench.lua).
load() {
    local url=$1 output
    output=$(timeout $((SLICE + 60)) wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${SLICE}s" \
        --timeout 10s -s "$ROOT/bench/wrk/bench.lua" "$url")
    grep '^RESULT' <<<"$output" | cut -f2-
}

# The server's peak RSS (KiB) since the last reset.
peak_rss() {
    awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"
}
reset_peak_rss() {
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0); without it the peak is cumulative.
    echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true
}

# The part of the token file for round $1: no token of an "every token new" load comes twice.
token_part() {
    printf '%s/tokens.%03d' "$WORK" $(($1 - 1))
}

# One slice of load on an endpoint of the server: a `server` record.
server_load() {
    local backend=$1 endpoint=$2 path=$3 round=$4 fields
    reset_peak_rss
    fields=$(load "http://$HOST:$PORT$path")
    printf 'server\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$endpoint" "$round" "${fields%$'\t'*}" \
        "$(peak_rss)" >>"$RESULTS"
}

# The raw RS256 rates (`crypto` records): all three at the start and the end of the run, the
# sign and verify rates (one slice each) in every round of a backend and of the layers.
crypto_baseline() {
    local context=$1 seconds=$2 which=$3
    "$BENCH" crypto --seconds "$seconds" --which "$which" | while IFS=$'\t' read -r name value; do
        printf 'crypto\t%s\t%s\t%s\n' "$context" "$name" "$value"
    done >>"$RESULTS"
}

bench_backend() {
    local backend=$1 database_url
    case $backend in
    sqlite) database_url="sqlite://$WORK/bench.db" ;;
    postgres)
        DATABASE="jwthenticator_bench_$$"
        psql -q "$POSTGRES_URL/postgres" -c "CREATE DATABASE $DATABASE" >/dev/null
        database_url="$POSTGRES_URL/$DATABASE"
        ;;
    *) log "unknown backend $backend" && return 1 ;;
    esac
    log "server on $backend: $ROUNDS rounds of health, validate, validate_request, jwks, raw sign, authenticate, refresh, health_new, validate_request_new"
    HOST=$HOST PORT=$PORT DATABASE_URL=$database_url RSA_PRIVATE_KEY_PATH=$WORK/signing-key.pem \
        KEY_HASH_SECRET=bench-key-hash-secret-of-32-characters-or-more \
        RUST_LOG=warn AUTH_FAILURES_PER_IDENTIFIER=0 AUTH_FAILURES_PER_ADDRESS=0 \
        "$SERVER" >"$OUT/server-$backend.log" 2>&1 &
    SERVER_PID=$!
    wait_until_up "http://$HOST:$PORT/health"

    local identifier key="bench-device-key-$$" tokens jwt refresh
    identifier=$(cat /proc/sys/kernel/random/uuid)
    curl -fsS -o /dev/null "http://$HOST:$PORT/register_key" \
        -d "{\"key\": \"$key\", \"identifier\": \"$identifier\"}"
    tokens=$(curl -fsS "http://$HOST:$PORT/authenticate" -d "{\"key\": \"$key\", \"identifier\": \"$identifier\"}")
    jwt=$(sed -n 's/.*"jwt":"\([^"]*\)".*/\1/p' <<<"$tokens")
    refresh=$(sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p' <<<"$tokens")
    [[ -n $jwt && -n $refresh ]] || { log "authenticate did not answer tokens: $tokens"; return 1; }

    for round in $(seq 1 "$ROUNDS"); do
        server_load "$backend" health /health "$round"
        BENCH_METHOD=POST BENCH_BODY="{\"jwt\": \"$jwt\"}" server_load "$backend" validate /validate "$round"
        BENCH_BEARER=$jwt server_load "$backend" validate_request /validate_request "$round"
        server_load "$backend" jwks /jwks "$round"
        crypto_baseline "$backend" "$SLICE" raw
        BENCH_METHOD=POST BENCH_BODY="{\"key\": \"$key\", \"identifier\": \"$identifier\"}" \
            server_load "$backend" authenticate /authenticate "$round"
        BENCH_METHOD=POST BENCH_BODY="{\"refresh_token\": \"$refresh\", \"identifier\": \"$identifier\"}" \
            server_load "$backend" refresh /refresh "$round"
        # Every request a token the server has not seen (its cache of verified tokens never
        # answers), and /health driven the same way (wrk's Lua builds each request) as its baseline.
        BENCH_TOKENS_FILE=$(token_part "$round") BENCH_THREADS=$WRK_THREADS \
            server_load "$backend" health_new /health "$round"
        BENCH_TOKENS_FILE=$(token_part "$round") BENCH_THREADS=$WRK_THREADS \
            server_load "$backend" validate_request_new /validate_request "$round"
        log "$backend round $round/$ROUNDS done"
    done

    stop_server
    drop_database
}

# One slice of load on a protected service: a `layer` record.
layer_load() {
    local layer=$1 tokens=$2 round=$3 port=$4 fields
    fields=$(load "http://$HOST:$port/")
    printf 'layer\t%s\t%s\t%s\t%s\n' "$layer" "$tokens" "$round" "$fields" >>"$RESULTS"
}

bench_layers() {
    local first port layers=(none jwthenticator oauth2)
    first=$(head -n 1 "$WORK/tokens.txt")
    for index in "${!layers[@]}"; do
        port=$((PORT + index))
        "$BENCH" protected --listen "$HOST:$port" --jwks "$WORK/jwks.json" --layer "${layers[$index]}" \
            >"$OUT/protected-${layers[$index]}.log" 2>&1 &
        SERVER_PID=$!
        LAYER_PIDS+=("$SERVER_PID")
        wait_until_up "http://$HOST:$port/"
    done
    SERVER_PID=""
    log "tower layers: $ROUNDS rounds of none, jwthenticator, oauth2, with a repeated token and with every token new"
    for round in $(seq 1 "$ROUNDS"); do
        local part
        part=$(token_part "$round")
        crypto_baseline layers "$SLICE" raw
        for index in "${!layers[@]}"; do
            BENCH_BEARER=$first layer_load "${layers[$index]}" repeated "$round" $((PORT + index))
            # wrk's per-request Lua costs CPU too, so the unprotected handler is measured that
            # way as well: the baseline of the "every token new" loads.
            BENCH_TOKENS_FILE=$part BENCH_THREADS=$WRK_THREADS \
                layer_load "${layers[$index]}" new "$round" $((PORT + index))
        done
        log "layers round $round/$ROUNDS done"
    done
    stop_layers
}

stop_layers() {
    for pid in "${LAYER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    LAYER_PIDS=()
}

mkdir -p "$OUT"
: >"$RESULTS"

if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian)"
    if [[ $(id -u) -ne 0 ]]; then
        log "wrk is missing: install it (apt-get install wrk) or run as root"
        exit 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v psql >/dev/null || [[ $BACKENDS != *postgres* ]] || { log "psql is needed for PostgreSQL"; exit 1; }

log "release build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release -p jwthenticator-server -p jwthenticator-bench)
SERVER=$CARGO_TARGET_DIR/release/jwthenticator-server
BENCH=$CARGO_TARGET_DIR/release/jwthenticator-bench

{
    printf 'info\tcommand\tbench/run.sh (BENCH_ROUNDS=%s BENCH_SLICE=%s BENCH_CONNECTIONS=%s BENCH_WRK_THREADS=%s)\n' \
        "$ROUNDS" "$SLICE" "$CONNECTIONS" "$WRK_THREADS"
    printf 'info\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'info\tcommit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    printf 'info\tcores (nproc)\t%s\n' "$(nproc)"
    printf 'info\tCPU\t%s\n' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    printf 'info\tload average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'info\twrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
} >>"$RESULTS"

"$SERVER" keygen --algorithm RS256 --private-key-out "$WORK/signing-key.pem" >/dev/null
log "$TOKENS distinct RS256 tokens signed with the server's key, and its JWKS"
"$BENCH" tokens --count "$TOKENS" --private-key "$WORK/signing-key.pem" \
    --tokens-out "$WORK/tokens.txt" --jwks-out "$WORK/jwks.json"
# One part per round, so that no token of an "every token new" load comes twice.
split -n "l/$ROUNDS" -d -a 3 "$WORK/tokens.txt" "$WORK/tokens."

log "raw RS256 rates (start of the run)"
crypto_baseline start 3 all
for backend in $BACKENDS; do
    bench_backend "$backend"
done
bench_layers
log "reqwest middleware against a plain client"
"$BENCH" client --requests 500 --rounds $((ROUNDS * 6)) | while IFS=$'\t' read -r name value; do
    printf 'client\t%s\t%s\n' "$name" "$value"
done >>"$RESULTS"
log "raw RS256 rates (end of the run)"
crypto_baseline end 3 all
printf 'info\tload average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"

"$BENCH" report --results "$RESULTS" | tee "$OUT/report.md"
log "results: $RESULTS, report: $OUT/report.md"

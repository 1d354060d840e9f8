#!/usr/bin/env bash
# bench/gateway/run.sh: pgapp-gateway against a Node relay written the usual
# way (relay.mjs: ws + pg LISTEN, one process), both driven by the same load
# generator (loadgen.mjs: raw WebSockets speaking Phoenix V2 JSON), on one
# temporary cluster in the same run:
#
#   (a) fan-out: FANOUT_SOCKETS (1,000) sockets joined to one topic,
#       broadcasts from SQL (BEGIN; SELECT pgapp.broadcast(...); COMMIT, from
#       WRITERS connections, at most WINDOW broadcasts not yet received by
#       every socket): deliveries per second over SECONDS_PER_RUN after
#       WARMUP, the server's CPU time per delivery, and COMMIT-to-socket
#       latency p50/p99 at light load (LATENCY_N broadcasts one at a time)
#       and under the throughput run;
#   (b) memory: IDLE_SOCKETS (10,000) idle joined sockets from IDLE_PROCS
#       load-generator processes: the server's VmRSS before (after start
#       and a warm-up of 100 sockets, closed again) and after, per
#       connection; for the relay also after a full garbage collection;
#   (c) churn: CHURN_SOCKETS (50) sockets each joining and leaving one
#       topic in a loop, join + leave pairs per second; the relay twice:
#       JOIN=sql (the join function in the database, as the gateway does)
#       and JOIN=local (no database call at all).
#
# Each part runs ROUNDS (3) rounds, the servers interleaved, a fresh server
# process per run; the medians count, the ratios are of the medians.
#
#   bash bench/gateway/run.sh
#   PARTS="a" ROUNDS=1 SECONDS_PER_RUN=3 bash bench/gateway/run.sh     a quick look at (a)
#   IDLE_SOCKETS=2000 PARTS=b ...                                        (b) smaller
#   GATEWAY_BIN=/path/to/pgapp-gateway ...                               another build (A/B)
#   KEEP=1 ...                                                           keep the directory (logs, results.jsonl)
#
# Settings: BENCH_PORT (55460, a Unix socket only), GW_PORT (31461), RELAY_PORT
# (31462; both below the ephemeral port range, which the load generators'
# thousands of connections draw from), POOL (4:
# the gateway's --db-pool and the relay's pool size).  Needs node/npm (npm ci
# of bench/gateway/package-lock.json is run here) and a raised open-file
# limit (set here: root may raise it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PARTS=${PARTS:-"a b c"}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
WARMUP=${WARMUP:-2}
FANOUT_SOCKETS=${FANOUT_SOCKETS:-1000}
WINDOW=${WINDOW:-16}
WRITERS=${WRITERS:-4}
LATENCY_N=${LATENCY_N:-200}
BODY=${BODY:-100}
IDLE_SOCKETS=${IDLE_SOCKETS:-10000}
IDLE_PROCS=${IDLE_PROCS:-4}
CHURN_SOCKETS=${CHURN_SOCKETS:-50}
POOL=${POOL:-4}
GW_PORT=${GW_PORT:-31461}
RELAY_PORT=${RELAY_PORT:-31462}
source "$HERE/../lib.sh"
GATEWAY_BIN=${GATEWAY_BIN:-$PG_BIN/pgapp-gateway}
[ -x "$GATEWAY_BIN" ] || { echo "no $GATEWAY_BIN: make && make install first" >&2; exit 1; }

(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
# every socket is a descriptor in the server and in a load generator
want=$((IDLE_SOCKETS + 2000))
if [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -Hn "$((want * 2))" 2>/dev/null || true
    ulimit -n "$((want * 2))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
[ "$(ulimit -n)" -ge "$want" ] || { echo "the open-file limit is $(ulimit -n); (b) needs $want (run as root, or lower IDLE_SOCKETS)" >&2; exit 1; }

bench_cluster gateway "${BENCH_PORT:-55460}" "shared_preload_libraries = 'pgapp'"
BENCH_CLEANUP='stop_server; stop_idle'
SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '+/=\n' | head -c 48)
bench_psql -c "ALTER SYSTEM SET pgapp.auth_jwt_secret = '$SECRET'" -c "SELECT pg_reload_conf()" >/dev/null
bench_psql -f "$HERE/schema.sql" >/dev/null
# a session started after the reload signs (a few tries at most)
for _ in 1 2 3 4 5 6 7 8 9 10; do
    TOKEN=$(bench_psql -At -c "SELECT pgapp.encode_token('bench', '{\"role\": \"bench_user\"}', '4 hours')" 2>/dev/null) && break
done
export TOKEN PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
RESULTS=$DIR/results.jsonl
: >"$RESULTS"
CLK_TCK=$(getconf CLK_TCK)

SPID=
SPORT=
IDLE_PIDS=()
start_server() {
    case "$1" in
    gateway)
        "$GATEWAY_BIN" --port "$GW_PORT" --host 127.0.0.1 --verbose 2 \
            --db "host=$DIR port=$PORT dbname=postgres user=bench_auth" \
            --max-connections "$((IDLE_SOCKETS + 1000))" --db-pool "$POOL" 2>>"$DIR/gateway.log" &
        SPID=$! SPORT=$GW_PORT ;;
    relay|relay-local)
        local join=sql
        [ "$1" = relay-local ] && join=local
        env PGUSER=bench_auth RELAY_PORT="$RELAY_PORT" RELAY_JWT_SECRET="$SECRET" JOIN="$join" POOL="$POOL" \
            node --expose-gc "$HERE/relay.mjs" >>"$DIR/relay.log" 2>&1 &
        SPID=$! SPORT=$RELAY_PORT ;;
    esac
    node "$HERE/loadgen.mjs" wait "$SPORT"
}
stop_server() {
    if [ -n "$SPID" ]; then kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
    SPID=
}
stop_idle() {
    local p
    for p in "${IDLE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${IDLE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    IDLE_PIDS=()
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SPID/status"; }
record() { echo "{\"part\": \"$1\", \"server\": \"$2\", \"round\": $3, \"r\": $4}" >>"$RESULTS"; }
loadgen() { node "$HERE/loadgen.mjs" "$@" --pid "$SPID" --clk-tck "$CLK_TCK" | sed -n 's/^RESULT //p'; }

# n idle sockets on SPORT from IDLE_PROCS processes (fewer for a few): wait
# until every process has all its sockets joined
idle_up() {
    local n=$1 procs=$IDLE_PROCS i each out
    [ "$n" -lt 1000 ] && procs=1
    each=$(( (n + procs - 1) / procs ))
    for i in $(seq 1 "$procs"); do
        out=$DIR/idle.$i.out
        : >"$out"
        node "$HERE/loadgen.mjs" idle "$SPORT" --sockets "$each" --topic bench:idle >"$out" 2>&1 &
        IDLE_PIDS+=($!)
    done
    for i in $(seq 1 "$procs"); do
        out=$DIR/idle.$i.out
        for _ in $(seq 1 1200); do
            grep -q '^ready' "$out" && break
            kill -0 "${IDLE_PIDS[$((i - 1))]}" 2>/dev/null || { cat "$out" >&2; return 1; }
            sleep 0.1
        done
        grep -q '^ready' "$out" || { echo "load generator $i: not ready after 120 s" >&2; return 1; }
    done
}

head_line() {
    echo "bench/gateway: $(date -u '+%Y-%m-%d %H:%M UTC'); repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- gateway bench/gateway 2>/dev/null || echo ' + uncommitted changes')"
    echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); node $(node --version); libwebsockets $(pkg-config --modversion libwebsockets 2>/dev/null || echo '?')"
    echo "gateway: $GATEWAY_BIN ($(md5sum "$GATEWAY_BIN" | cut -c1-12)); --db-pool $POOL; relay: $HERE/relay.mjs, pool $POOL"
}
head_line

for part in $PARTS; do
    for round in $(seq 1 "$ROUNDS"); do
        case "$part" in
        a)
            for s in gateway relay; do
                start_server "$s"
                r=$(loadgen fanout "$SPORT" --sockets "$FANOUT_SOCKETS" --seconds "$SECONDS_PER_RUN" \
                    --warmup "$WARMUP" --window "$WINDOW" --writers "$WRITERS" --latency-n "$LATENCY_N" --body "$BODY")
                stop_server
                [ -n "$r" ] || { echo "(a) $s round $round: no result" >&2; exit 1; }
                record a "$s" "$round" "$r"
                echo "(a) round $round $s: $r"
            done ;;
        b)
            for s in gateway relay; do
                start_server "$s"
                idle_up 100 && stop_idle
                sleep 1
                before=$(rss_kb)
                idle_up "$IDLE_SOCKETS"
                sleep 3
                after=$(rss_kb)
                after_gc=$after
                if [ "$s" = relay ]; then
                    kill -USR2 "$SPID"
                    for _ in $(seq 1 100); do grep -q 'gc done' "$DIR/relay.log" && break; sleep 0.1; done
                    sed -i 's/gc done/gc (seen)/' "$DIR/relay.log"
                    sleep 1
                    after_gc=$(rss_kb)
                fi
                stop_idle
                stop_server
                r="{\"sockets\": $IDLE_SOCKETS, \"rss_before_kb\": $before, \"rss_after_kb\": $after, \"rss_after_gc_kb\": $after_gc}"
                record b "$s" "$round" "$r"
                echo "(b) round $round $s: $r"
            done ;;
        c)
            for s in gateway relay relay-local; do
                start_server "$s"
                r=$(loadgen churn "$SPORT" --sockets "$CHURN_SOCKETS" --seconds "$SECONDS_PER_RUN" \
                    --warmup "$WARMUP" --topic bench:churn)
                stop_server
                [ -n "$r" ] || { echo "(c) $s round $round: no result" >&2; exit 1; }
                record c "$s" "$round" "$r"
                echo "(c) round $round $s: $r"
            done ;;
        esac
    done
done

echo
head_line
node "$HERE/report.mjs" "$RESULTS"

#!/usr/bin/env bash
# bench/ratelimit/run.sh: pgapp.check_rate against SELECT 1, a trivial
# function call on the same key (hashtext, the floor for any function call),
# and a PL/pgSQL fixed-window limiter on an UNLOGGED table, in the same run,
# at 1, 8 and 32 clients (pgbench -M prepared).  Optional: Redis with a Lua
# INCR+EXPIRE limiter when redis-server and redis-benchmark are installed.
#
#   bash bench/ratelimit/run.sh          SECONDS_PER_RUN=5 ROUNDS=3 CLIENTS="1 8 32"
#
# Each variant runs ROUNDS times, interleaved with the others (so that a
# slow moment of the machine hits every variant alike); the median counts.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 8 32"}
PORT=${BENCH_PORT:-55435}
DIR=$(mktemp -d /tmp/pgapp-bench-rl.XXXXXX)

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
cleanup() {
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
as_pg sh -c "printf \"port = $PORT\nlisten_addresses = ''\nunix_socket_directories = '$DIR'\nshared_preload_libraries = 'pgapp'\nmax_connections = 100\npgapp.ratelimit_max_keys = 30000\n\" >> '$DIR/data/postgresql.conf'"
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
as_pg "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -f "$HERE/schema.sql" >/dev/null
for f in select1 hashtext check_spread check_hot check_named plpgsql_spread; do cp "$HERE/$f.sql" "$DIR/"; done
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"/*.sql

tps() {
    as_pg "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -M prepared -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
        -T "$SECONDS_PER_RUN" -f "$DIR/$1.sql" postgres 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}' || true
}

echo "machine: $(nproc) cores; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); pgbench -M prepared, ${SECONDS_PER_RUN}s per run, median of $ROUNDS interleaved rounds"
VARIANTS="select1 hashtext check_spread check_hot check_named plpgsql_spread"
declare -A runs r
for round in $(seq 1 "$ROUNDS"); do
    for c in $CLIENTS; do
        for f in $VARIANTS; do
            runs[$f,$c]="${runs[$f,$c]:-} $(tps "$f" "$c")"
        done
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
printf '%-16s' "TPS"
for c in $CLIENTS; do printf '%14s' "$c client(s)"; done
echo
for f in $VARIANTS; do
    printf '%-16s' "$f"
    for c in $CLIENTS; do
        r[$f,$c]=$(echo "${runs[$f,$c]}" | median)
        printf '%14s' "${r[$f,$c]}"
    done
    echo "   (runs:$(for c in $CLIENTS; do printf ' [%s]' "${runs[$f,$c]# }"; done))"
done
as_pg "$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres -c "SELECT 'rate_stats: ' || row(s.*)::text FROM pgapp.rate_stats s"
echo "ratios (same client count):"
for c in $CLIENTS; do
    awk -v s="${r[select1,$c]}" -v h="${r[hashtext,$c]}" -v cs="${r[check_spread,$c]}" -v ch="${r[check_hot,$c]}" \
        -v p="${r[plpgsql_spread,$c]}" -v cn="${r[check_named,$c]}" -v c="$c" 'BEGIN {
        printf "  %2d clients: check_rate/SELECT 1 %.2fx, check_rate/hashtext %.2fx, check_rate/plpgsql %.2fx, hot/spread %.2fx, named/default %.2fx\n",
               c, cs / s, cs / h, cs / p, ch / cs, cn / cs }'
done

if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    redis-server --port 56379 --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
    REDIS_PID=$!
    sleep 1
    sha=$(redis-cli -p 56379 SCRIPT LOAD "local c = redis.call('INCR', KEYS[1]) if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return c" | tail -1)
    echo "redis (Lua INCR+EXPIRE via EVALSHA, redis-benchmark, rps):"
    for c in $CLIENTS; do
        rps=$(redis-benchmark -p 56379 -c "$c" -n 200000 -r 10000 -q EVALSHA "$sha" 1 'user:__rand_int__' 60 2>/dev/null \
              | awk '{for (i = 1; i <= NF; i++) if ($i ~ /requests/) print $(i-1)}' | tail -1)
        echo "  $c client(s): $rps"
    done
else
    echo "redis: not installed (apt-get install redis-server) - skipped"
fi

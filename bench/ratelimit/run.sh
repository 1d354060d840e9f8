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
source "$HERE/../lib.sh"
bench_cluster rl "${BENCH_PORT:-55435}" "shared_preload_libraries = 'pgapp'
pgapp.ratelimit_max_keys = 30000"
BENCH_CLEANUP='[ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true'
bench_psql -f "$HERE/schema.sql" >/dev/null
measure "select1 hashtext check_spread check_hot check_named plpgsql_spread"
bench_psql -At -c "SELECT 'rate_stats: ' || row(s.*)::text FROM pgapp.rate_stats s"
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

#!/usr/bin/env bash
# bench/query/run.sh: pgapp.paginate (filters + sort + preload) over 1M products
# against the same page written by hand, in the same run on a temporary cluster.
#
#   bash bench/query/run.sh        (pgapp installed: make install)
#   ROUNDS=3 SECONDS_PER_RUN=15 bash bench/query/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PG_BIN=${PGAPP_PG_BIN:-/usr/lib/postgresql/15/bin}   # PGAPP_PG_BIN: another build (an A/B run)
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
PORT=${BENCH_PORT:-55434}
DIR=$(mktemp -d /tmp/pgapp-bench-query.XXXXXX)

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
cleanup() { as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
as_pg sh -c "printf \"port = $PORT\nlisten_addresses = ''\nunix_socket_directories = '$DIR'\nshared_preload_libraries = 'pgapp,pg_stat_statements'\nshared_buffers = '512MB'\npg_stat_statements.track = all\n\" >> '$DIR/data/postgresql.conf'"
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
psql_b() { as_pg "$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
echo "loading 1M products, 2M variants..."
psql_b -f "$HERE/schema.sql" >/dev/null
for f in pgapp hand; do cp "$HERE/$f.sql" "$DIR/$f.sql"; done
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"/*.sql

# the two return the same page (the hand-written one with its variables filled in)
hand_sql=$(sed -e '/^\\set/d' -e '/^--/d' -e 's/:cat::int/3/g' -e 's/:page::int/2/g' "$HERE/hand.sql")
same=$(psql_b -c "SELECT pgapp.paginate(pgapp.sort_by(pgapp.sort_by(pgapp.preload(pgapp.filter_by(pgapp.filter_by(
    pgapp.from('product'), 'category_id', 3), 'status', 'published'::text), ARRAY['category', 'variant']), 'name'), 'id'), 2, 20)
  = (${hand_sql%;})")
echo "same result as the hand-written query: $same"

# statements per page: one (no N+1)
psql_b -c "CREATE EXTENSION pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
psql_b -c "SELECT pgapp.paginate(pgapp.preload(pgapp.filter_by(pgapp.from('product'), 'category_id', 5), ARRAY['variant']), 1, 20)" >/dev/null
echo "statements that read variant for one page of 20 products: $(psql_b -c "SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE '%variant%' AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'SELECT pgapp.paginate%'")"

echo "pgbench: -M prepared, 1 client, ${SECONDS_PER_RUN}s per run, $ROUNDS rounds interleaved (TPS)"
declare -A tps
for r in $(seq 1 "$ROUNDS"); do
    for f in hand pgapp; do
        t=$(as_pg "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -M prepared -c 1 -T "$SECONDS_PER_RUN" \
            -f "$DIR/$f.sql" postgres 2>"$DIR/pgbench.err" | awk '/^tps/ {printf "%.1f", $3}') || true
        [ -n "$t" ] || { tail -n 5 "$DIR/pgbench.err" >&2; t=0; }
        tps[$f]="${tps[$f]:-} $t"
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
h=$(echo "${tps[hand]}" | median)
p=$(echo "${tps[pgapp]}" | median)
printf '%-8s %10s   %s\n' query "median" "rounds"
printf '%-8s %10s  %s\n' hand "$h" "${tps[hand]}"
printf '%-8s %10s  %s\n' pgapp "$p" "${tps[pgapp]}"
awk -v h="$h" -v p="$p" 'BEGIN { printf "ratio pgapp/hand: %.2fx\n", p / h }'

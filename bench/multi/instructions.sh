#!/usr/bin/env bash
# bench/multi/instructions.sh: instructions per call of each variant of
# bench/multi/schema.sql, counted by valgrind's callgrind in a single-user
# backend: a count that other load on the machine does not move, for
# comparing builds when TPS is too noisy to tell a few percent apart.
#
#   make install && bash bench/multi/instructions.sh
#
# Each variant runs N and 2N times, one transaction per call, in a fresh
# single-user backend of a cluster of its own (synchronous_commit off,
# autovacuum off); the difference divided by N is the count per call
# (start-up, library loading and the first calls' caches cancel out).
# Settings: N (50), VARIANTS (all), PGAPP_PG_BIN.  Needs valgrind (Debian's).
# Instructions are not time (cache misses, locks and the commit's flush are
# not in them): quote TPS from run.sh, use this to see where a change helps.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
N=${N:-50}
ORDER="'[{\"product_id\": 700, \"quantity\": 2}, {\"product_id\": 34, \"quantity\": 1}, {\"product_id\": 367, \"quantity\": 3}]', '{\"card\": \"4242424242424242\"}'"
declare -A CALL=(
    [ten_plpgsql_void]="SELECT bench.ten_plpgsql_void(1);"
    [ten_plpgsql]="SELECT bench.ten_plpgsql(1);"
    [ten_changesets]="SELECT bench.ten_changesets(1);"
    [ten_multi]="SELECT bench.ten_multi(1);"
    [ten_multi_rows]="SELECT bench.ten_multi_rows(1);"
    [order_hand]="SELECT bench.create_order_hand(1, $ORDER);"
    [order_multi]="SELECT bench.create_order(1, $ORDER);"
)
VARIANTS=${VARIANTS:-"ten_plpgsql_void ten_plpgsql ten_changesets ten_multi ten_multi_rows order_hand order_multi"}
source "$HERE/../lib.sh"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

bench_cluster multi-ir "${BENCH_PORT:-55437}" "shared_preload_libraries = 'pgapp'
synchronous_commit = off
autovacuum = off"
bench_psql -f "$HERE/schema.sql" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null

# instructions of k calls of sql in one single-user backend
count() {
    local sql=$1 k=$2 out="$DIR/cg.$2"
    for _ in $(seq 1 "$k"); do echo "$sql"; done >"$DIR/in.sql"
    chmod 644 "$DIR/in.sql"
    as_pg valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$PG_BIN/postgres" --single -D "$DIR/data" postgres <"$DIR/in.sql" >"$DIR/out.txt" 2>"$DIR/cg.err"
    if grep -q 'ERROR' "$DIR/out.txt"; then grep -m1 'ERROR' "$DIR/out.txt" >&2; exit 1; fi
    grep -m1 'Collected' "$DIR/cg.err" | awk '{gsub(",", "", $NF); print $NF}'
}

echo "instructions per call (callgrind, single-user backend, ($N x 2 - $N) calls); pgapp.so $(md5sum "$("$PG_BIN/pg_config" --pkglibdir)/pgapp.so" | cut -c1-12)"
declare -A ir
for v in $VARIANTS; do
    a=$(count "${CALL[$v]}" "$N")
    b=$(count "${CALL[$v]}" $((2 * N)))
    ir[$v]=$(( (b - a) / N ))
    printf '  %-18s %8d k\n' "$v" $(( ir[$v] / 1000 ))
done
ratio() { [ -n "${ir[$1]:-}" ] && [ -n "${ir[$2]:-}" ] && awk -v a="${ir[$1]}" -v b="${ir[$2]}" -v l="$3" 'BEGIN {printf "  %-34s %.2fx the instructions (%.2fx the calls per second, if instructions were time)\n", l, b / a, a / b}'; }
echo "ratios"
ratio ten_plpgsql ten_multi "ten_multi vs ten_plpgsql" || true
ratio ten_plpgsql ten_multi_rows "ten_multi_rows vs ten_plpgsql" || true
ratio ten_changesets ten_multi "ten_multi vs ten_changesets" || true
ratio order_hand order_multi "create_order vs by hand" || true

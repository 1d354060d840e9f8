#!/usr/bin/env bash
# bench/multi/run.sh: pgapp.transact against the same work written by hand in
# PL/pgSQL, in the same run, on a temporary cluster of its own.
#
#   make install && bash bench/multi/run.sh      (from the checkout)
#
# (a) transact's overhead: a multi of ten multi_insert steps (built and run
#     in a function) vs the same ten INSERTs in a PL/pgSQL function that
#     returns the rows as JSON too (ten_plpgsql), vs the ten INSERTs
#     alone (ten_plpgsql_void), and vs the same ten changesets written one
#     by one with pgapp.insert (ten_changesets: what transact itself adds),
#     and vs a multi of ten insert_all steps of one row each (ten_multi_rows:
#     the multi of plain inserts, no changeset);
#     pgbench TPS at CLIENTS_A clients.
# (b) an order of three products: create_order built on pgapp.multi (the
#     shop recipe's steps: validate_stock with FOR UPDATE in id order,
#     create_order, create_items through insert_all with $refs, update_stock,
#     calculate_total, process_payment) vs the same order written by hand as
#     one PL/pgSQL function with SELECT ... FOR UPDATE; TPS and the p99
#     latency (from pgbench's per-transaction log) at CLIENTS_B clients, in
#     two workloads: "uniform" (three products out of 999, orders rarely
#     share one: CPU and commit bound) and "hot" (every order has one of three
#     hot products: bound by the wait for that product's row lock).
# schema.sql holds both sides of both; check.sql first checks that the two
# orders give the same items, prices, total, payment, stock and failures,
# and that both ten-insert functions write the same rows (or stops).
# Rounds are interleaved (every variant at every client count, then again),
# the median of ROUNDS counts; every run is printed.  Measures only.
#
# Settings (environment): ROUNDS (3), SECONDS_PER_RUN (10), CLIENTS_A
# ("1 8"), CLIENTS_B ("1 8 16"), PARTS ("a b"), WORKLOADS ("uniform hot"), BENCH_PORT (55436),
# PGAPP_PG_BIN (the PostgreSQL build), KEEP=1 (keep the directory).
# A quick smoke run: ROUNDS=1 SECONDS_PER_RUN=2 bash bench/multi/run.sh (~30 s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CLIENTS_A=${CLIENTS_A:-"1 8"}
CLIENTS_B=${CLIENTS_B:-"1 8 16"}
PARTS=${PARTS:-"a b"}
WORKLOADS=${WORKLOADS:-"uniform hot"}
source "$HERE/../lib.sh"

[ -f "$("$PG_BIN/pg_config" --sharedir)/extension/pgapp.control" ] ||
    { echo "pgapp is not installed in $("$PG_BIN/pg_config" --sharedir): run make install first" >&2; exit 1; }

bench_cluster multi "${BENCH_PORT:-55436}" "shared_preload_libraries = 'pgapp'"
lib=$("$PG_BIN/pg_config" --pkglibdir)/pgapp.so
echo "pgapp.so: $(md5sum "$lib" | cut -c1-12), installed $(date -r "$lib" '+%Y-%m-%d %H:%M'); checkout $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}'); $(uname -r)"
bench_psql -f "$HERE/schema.sql" >/dev/null

checks=$(bench_psql -f "$HERE/check.sql" 2>&1) || true
echo "$checks" | sed 's/^/check: /'
if ! echo "$checks" | grep -q '|t$' || echo "$checks" | grep -qv '|t$'; then
    echo "the two sides differ (or a check failed): nothing measured" >&2
    exit 1
fi

vacuum() { bench_psql -c "VACUUM bench.product" -c "CHECKPOINT"; }

# (a) ten inserts
if [[ " $PARTS " == *" a "* ]]; then
    echo
    echo "(a) ten single-row inserts in one call"
    CLIENTS=$CLIENTS_A
    measure "ten_plpgsql_void ten_plpgsql ten_changesets ten_multi ten_multi_rows"
    echo "ratios (TPS, same client count):"
    for c in $CLIENTS_A; do
        awk -v m="${r[ten_multi,$c]}" -v p="${r[ten_plpgsql,$c]}" -v v="${r[ten_plpgsql_void,$c]}" \
            -v s="${r[ten_changesets,$c]}" -v w="${r[ten_multi_rows,$c]}" -v c="$c" 'BEGIN {
            printf "  %2d client(s): multi/plpgsql %.2fx, multi/plpgsql_void %.2fx, multi/changesets %.2fx, multi_rows/plpgsql %.2fx\n", c, m / p, m / v, m / s, w / p }'
    done
    bench_psql -c "TRUNCATE bench.t"
fi

# (b) orders: TPS and p99 from pgbench's per-transaction log (column 3: the
# latency in microseconds)
run_logged() {   # variant clients round -> "tps p99_ms"
    local prefix="$DIR/log_$1_$2_$3" t p99
    t=$(as_pg "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -M prepared -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
        -T "$SECONDS_PER_RUN" -l --log-prefix="$prefix" -f "$DIR/$1.sql" postgres 2>"$DIR/pgbench.err" \
        | awk '/^tps/ {printf "%.0f", $3}') || true
    [ -n "$t" ] || { tail -n 5 "$DIR/pgbench.err" >&2; t=0; }
    p99=$(cat "$prefix".* 2>/dev/null | awk '{print $3}' | sort -n | awk '{v[NR] = $1} END {
        if (NR == 0) { print "-"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", v[i] / 1000 }')
    rm -f "$prefix".*
    echo "$t $p99"
}

if [[ " $PARTS " == *" b "* ]]; then
    echo
    echo "(b) create_order, 3 items: multi vs hand-written PL/pgSQL (SELECT ... FOR UPDATE)"
    for f in order_hand order_multi order_hand_hot order_multi_hot; do cp "$HERE/$f.sql" "$DIR/"; done
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"/*.sql
    echo "pgbench -M prepared -l, ${SECONDS_PER_RUN}s per run, median of $ROUNDS interleaved rounds; p99 in ms"
    declare -A bt bp p99
    suffix() { [ "$1" = hot ] && echo _hot || true; }
    for round in $(seq 1 "$ROUNDS"); do
        for w in $WORKLOADS; do
            for c in $CLIENTS_B; do
                for f in order_hand order_multi; do
                    vacuum >/dev/null
                    read -r t q < <(run_logged "$f$(suffix "$w")" "$c" "$round")
                    bt[$f,$w,$c]="${bt[$f,$w,$c]:-} $t"
                    bp[$f,$w,$c]="${bp[$f,$w,$c]:-} $q"
                done
            done
        done
    done
    printf '%-12s %-8s %8s %8s %8s   %s\n' variant workload clients TPS p99_ms "runs (TPS / p99)"
    for w in $WORKLOADS; do
        for c in $CLIENTS_B; do
            for f in order_hand order_multi; do
                r[$f,$w,$c]=$(echo "${bt[$f,$w,$c]}" | median)
                p99[$f,$w,$c]=$(echo "${bp[$f,$w,$c]}" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
                printf '%-12s %-8s %8s %8s %8s   [%s] / [%s]\n' "$f" "$w" "$c" "${r[$f,$w,$c]}" "${p99[$f,$w,$c]}" "${bt[$f,$w,$c]# }" "${bp[$f,$w,$c]# }"
            done
        done
    done
    echo "ratios:"
    for w in $WORKLOADS; do
        for c in $CLIENTS_B; do
            awk -v m="${r[order_multi,$w,$c]}" -v h="${r[order_hand,$w,$c]}" -v pm="${p99[order_multi,$w,$c]}" -v ph="${p99[order_hand,$w,$c]}" -v c="$c" -v w="$w" 'BEGIN {
                printf "  %-7s %2d client(s): TPS multi/hand %.2fx; p99 multi %s ms, hand %s ms\n", w, c, m / h, pm, ph }'
        done
    done
    bench_psql -At -c "SELECT 'orders: ' || count(*) || ', items: ' || (SELECT count(*) FROM bench.order_item) || ', payments: ' || (SELECT count(*) FROM bench.payment) || ', units sold: ' || (SELECT 999::bigint * 1000000000 - sum(stock) FROM bench.product) || ', units in items: ' || (SELECT sum(quantity) FROM bench.order_item) FROM bench.orders"
fi

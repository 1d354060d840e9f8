#!/usr/bin/env bash
# bench/changeset/run.sh: insert task rows through pgapp's C validation
# trigger, through the same rules written as a PL/pgSQL trigger, and with no
# validation, in the same run, on a temporary cluster of its own.
#
#   make install && bash bench/changeset/run.sh      (from the checkout)
#
# Steps: initdb + start (port 55433, shared_preload_libraries = 'pgapp',
# fsync and synchronous_commit at their defaults), schema.sql, check.sql
# (both triggers give the same errors, or stop), one untimed warm-up insert
# per table, then
#   1. bulk: ROUNDS x one INSERT ... SELECT of ROWS rows (bulk.sql), timed by
#      psql \timing including the commit; then the same with assignee_id
#      NULL, which skips the foreign-key lookup (a cheaper insert, so the
#      triggers weigh more);
#   2. pgbench: PGBENCH_ROUNDS x single-row inserts (insert_<t>.sql),
#      -M prepared, 1 and 2 clients, PGBENCH_SECONDS each;
# each round runs none, c, plpgsql in turn, on a truncated table after a
# CHECKPOINT.  Prints every value, the medians and the ratios, then one
# EXPLAIN ANALYZE per table to show where the time goes, and stops the
# cluster.  Measures only: nothing here passes or fails on a number.
#
# Settings (environment): ROWS (100000), ROUNDS (5), PGBENCH_ROUNDS (3),
# PGBENCH_SECONDS (10), BENCH_PORT (55433), PG_CONFIG (pg_config),
# KEEP=1 keeps the cluster's directory (printed) for a look afterwards.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROWS=${ROWS:-100000}
ROUNDS=${ROUNDS:-5}
PGBENCH_ROUNDS=${PGBENCH_ROUNDS:-3}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
PORT=${BENCH_PORT:-55433}
BIN=$("${PG_CONFIG:-pg_config}" --bindir)
TABLES="none c plpgsql"

[ -f "$("${PG_CONFIG:-pg_config}" --sharedir)/extension/pgapp.control" ] ||
    { echo "pgapp is not installed: run make install first" >&2; exit 1; }

DIR=$(mktemp -d /tmp/pgapp-bench-changeset.XXXXXX)
chmod 755 "$DIR"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$DIR"
    as_owner() { runuser -u postgres -- "$@"; }
else
    as_owner() { "$@"; }
fi

stop() {
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap stop EXIT

as_owner "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log"
cat >>"$DIR/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pgapp'
EOF
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null ||
    { cat "$DIR/server.log" >&2; exit 1; }

export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
sql() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

sql -f "$HERE/schema.sql" >/dev/null
check=$(sql ${VERBOSE_CHECK:+-v verbose_check=1} -f "$HERE/check.sql")
echo "$check"
case "$check" in
    *", 0 differ"*) ;;
    *) echo "the C and PL/pgSQL triggers disagree: not measuring" >&2; exit 1 ;;
esac

fresh() { sql -c "TRUNCATE task_$1" -c "CHECKPOINT"; }

# one bulk insert into task_$1, assignee set ($2 = true) or not; prints ms
bulk() {
    fresh "$1"
    sql -v tbl="task_$1" -v rows="$ROWS" -v fk="$2" -f "$HERE/bulk.sql" | awk '/^Time:/ {print $2}'
}

# one pgbench run; prints its TPS
tps() {
    local out
    fresh "$1"
    out=$("$BIN/pgbench" -n -M prepared -c "$2" -j "$2" -T "$PGBENCH_SECONDS" \
          -f "$HERE/insert_$1.sql" 2>&1) || { echo "$out" >&2; return 1; }
    echo "$out" | awk '/^tps/ {printf "%.0f\n", $3}'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1}
    END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# medians and their ratios as time ratios; $1 = "time" (ms) or "rate" (TPS);
# for times, also what validation adds to none, C against PL/pgSQL
report() {
    local kind=$1 unit=$2 label=$3 n c p
    n=$(echo "${res[$label/none]}" | median)
    c=$(echo "${res[$label/c]}" | median)
    p=$(echo "${res[$label/plpgsql]}" | median)
    awk -v k="$kind" -v u="$unit" -v l="$label" -v n="$n" -v c="$c" -v p="$p" 'BEGIN {
        printf "%-20s %-4s %9s %9s %9s  %6.2fx %6.2fx %6.2fx", l, u, n, c, p,
            k == "rate" ? n / c : c / n, k == "rate" ? n / p : p / n, k == "rate" ? c / p : p / c
        if (k == "time")
            printf "   %+.0f ms vs %+.0f ms%s", c - n, p - n, (c > n) ? sprintf(" (%.1fx)", (p - n) / (c - n)) : ""
        printf "\n" }'
}

declare -A res
start=$SECONDS
echo "machine: $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}') RAM, load average $(cut -d" " -f1-3 /proc/loadavg); $("$BIN/postgres" --version); $(date -u +%F)"
echo "settings: fsync=$(sql -c 'SHOW fsync'), synchronous_commit=$(sql -c 'SHOW synchronous_commit'), shared_buffers=$(sql -c 'SHOW shared_buffers')"

for t in $TABLES; do bulk "$t" true >/dev/null; done    # warm-up, not counted

echo "bulk: INSERT ... SELECT of $ROWS rows, $ROUNDS rounds (ms, commit included)"
for variant in "bulk" "bulk, no FK lookup"; do
    fk=true
    [ "$variant" = bulk ] || fk=false
    for r in $(seq "$ROUNDS"); do
        line="  $variant, round $r:"
        for t in $TABLES; do
            ms=$(bulk "$t" "$fk")
            res[$variant/$t]="${res[$variant/$t]:-} $ms"
            line="$line $t $ms"
        done
        echo "$line"
    done
done

echo "pgbench: one row per transaction, -M prepared, ${PGBENCH_SECONDS}s, $PGBENCH_ROUNDS rounds (TPS)"
for r in $(seq "$PGBENCH_ROUNDS"); do
    for clients in 1 2; do
        line="  round $r, $clients client(s):"
        for t in $TABLES; do
            v=$(tps "$t" "$clients")
            res[pgbench $clients client(s)/$t]="${res[pgbench $clients client(s)/$t]:-} $v"
            line="$line $t $v"
        done
        echo "$line"
    done
done

echo
echo "medians; ratios are of time per row (for TPS: none's TPS / the other's); validation adds (c vs plpgsql)"
printf '%-20s %-4s %9s %9s %9s  %7s %7s %7s\n' measurement unit none c plpgsql c/none pl/none pl/c
report time ms "bulk"
report time ms "bulk, no FK lookup"
report rate TPS "pgbench 1 client(s)"
report rate TPS "pgbench 2 client(s)"

echo
echo "where the time goes: EXPLAIN ANALYZE of the bulk insert (rolled back), trigger lines"
{ echo "BEGIN;"; echo "EXPLAIN (ANALYZE, COSTS OFF)"; grep -v -e '^\\' -e '^--' "$HERE/bulk.sql"; echo "ROLLBACK;"; } >"$DIR/explain.sql"
for t in $TABLES; do
    fresh "$t"
    sql -v tbl="task_$t" -v rows="$ROWS" -v fk=true -f "$DIR/explain.sql" |
        awk -v t="$t" '/Execution Time|^ *Trigger/ {sub(/^ +/, ""); printf "  %-8s %s\n", t, $0}'
done
echo "elapsed: $((SECONDS - start)) s; load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"

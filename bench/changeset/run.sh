#!/usr/bin/env bash
# bench/changeset/run.sh: 100k task rows through pgapp's C validation trigger,
# the same rules in PL/pgSQL, and no validation, measured in the same run on a
# temporary cluster.  Prints medians and ratios (no timing assertions: this
# is a measurement, not a test).
#
#   bash bench/changeset/run.sh            (pgapp installed: make install)
#   ROWS=100000 ROUNDS=5 PGBENCH_SECONDS=10 bash bench/changeset/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
ROWS=${ROWS:-100000}
ROUNDS=${ROUNDS:-5}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
PORT=${BENCH_PORT:-55433}
DIR=$(mktemp -d /tmp/pgapp-bench.XXXXXX)

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
cleanup() { as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
as_pg sh -c "printf \"port = $PORT\nlisten_addresses = ''\nunix_socket_directories = '$DIR'\nshared_preload_libraries = 'pgapp'\nshared_buffers = '256MB'\n\" >> '$DIR/data/postgresql.conf'"
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
psql_b() { as_pg "$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql_b -f "$HERE/schema.sql" >/dev/null

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); fsync and synchronous_commit on"
echo "bulk: INSERT ... SELECT of $ROWS rows, $ROUNDS rounds interleaved (none, c, plpgsql), tables truncated before each"
declare -A times
for r in $(seq 1 "$ROUNDS"); do
    for t in none c plpgsql; do
        psql_b -c "TRUNCATE task_$t" -c "CHECKPOINT" >/dev/null
        ms=$(psql_b -c "SELECT bulk_insert_ms('task_$t', $ROWS)")
        times[$t]="${times[$t]:-} $ms"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
none=$(echo "${times[none]}" | median)
c=$(echo "${times[c]}" | median)
plpgsql=$(echo "${times[plpgsql]}" | median)
printf '%-10s %10s   %s\n' table "median ms" "all rounds (ms)"
for t in none c plpgsql; do printf '%-10s %10s  %s\n' "$t" "$(echo "${times[$t]}" | median)" "${times[$t]}"; done
awk -v n="$none" -v c="$c" -v p="$plpgsql" 'BEGIN {
    printf "ratios: c/none %.2fx   plpgsql/none %.2fx   plpgsql/c %.2fx\n", c / n, p / n, p / c
    if (c > n) printf "validation cost over no validation: c %.1f ms, plpgsql %.1f ms (%.1fx)\n", c - n, p - n, (p - n) / (c - n) }'

echo
echo "pgbench: one row per transaction, -M prepared, ${PGBENCH_SECONDS}s per run (TPS)"
printf '%-10s %10s %10s\n' table "1 client" "2 clients"
for t in none c plpgsql; do
    # -M prepared binds variables as parameters, so the table name is written in
    sed "s/:tbl/task_$t/" "$HERE/insert.sql" > "$DIR/insert_$t.sql"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR/insert_$t.sql"
    line=$(printf '%-10s' "$t")
    for clients in 1 2; do
        tps=$(as_pg "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -M prepared -c "$clients" -j "$clients" \
              -T "$PGBENCH_SECONDS" -f "$DIR/insert_$t.sql" postgres 2>"$DIR/pgbench.err" \
              | awk '/^tps/ {printf "%.0f", $3}') || true
        [ -n "$tps" ] || { tail -n 5 "$DIR/pgbench.err" >&2; tps=error; }
        line="$line $(printf "%10s" "$tps")"
    done
    echo "$line"
done

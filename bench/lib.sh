# bench/lib.sh: what the pgbench runners share (sourced).
#
#   bench_cluster NAME PORT "postgresql.conf lines"   a temporary cluster in $DIR, stopped on exit
#   bench_psql ...                                     psql on it as postgres
#   measure "variant ..."                              every variant (bench dir/<variant>.sql) at
#                                                      every $CLIENTS, $ROUNDS rounds interleaved,
#                                                      $SECONDS_PER_RUN each; prints the medians and
#                                                      the raw runs, and leaves them in r[variant,clients]
# Settings: SECONDS_PER_RUN (5), ROUNDS (3), CLIENTS ("1 8 32"); KEEP=1 keeps the directory.
set -euo pipefail
PG_BIN=${PGAPP_PG_BIN:-/usr/lib/postgresql/15/bin}   # PGAPP_PG_BIN: another build (an A/B run)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 8 32"}
declare -A r

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

bench_cleanup() {
    [ -n "${BENCH_CLEANUP:-}" ] && eval "$BENCH_CLEANUP"
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then echo "kept $DIR (server.log)"; else rm -rf "$DIR"; fi
}

bench_cluster() {
    DIR=$(mktemp -d "/tmp/pgapp-bench-$1.XXXXXX")
    PORT=$2
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
    trap bench_cleanup EXIT
    as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
    printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\nmax_connections = 100\n%s\n" \
        "$PORT" "$DIR" "$3" | as_pg tee -a "$DIR/data/postgresql.conf" >/dev/null
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
}

bench_psql() { as_pg "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

tps() {
    as_pg "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -M prepared -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
        -T "$SECONDS_PER_RUN" -f "$DIR/$1.sql" postgres 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}' || true
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }

measure() {
    local variants=$1 f c round
    declare -A runs
    for f in $variants; do cp "$HERE/$f.sql" "$DIR/"; done
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"/*.sql
    echo "machine: $(nproc) cores; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); pgbench -M prepared, ${SECONDS_PER_RUN}s per run, median of $ROUNDS interleaved rounds"
    for round in $(seq 1 "$ROUNDS"); do
        for c in $CLIENTS; do
            for f in $variants; do
                runs[$f,$c]="${runs[$f,$c]:-} $(tps "$f" "$c")"
            done
        done
    done
    printf '%-16s' "TPS"
    for c in $CLIENTS; do printf '%14s' "$c client(s)"; done
    echo
    for f in $variants; do
        printf '%-16s' "$f"
        for c in $CLIENTS; do
            r[$f,$c]=$(echo "${runs[$f,$c]}" | median)
            printf '%14s' "${r[$f,$c]}"
        done
        echo "   (runs:$(for c in $CLIENTS; do printf ' [%s]' "${runs[$f,$c]# }"; done))"
    done
}

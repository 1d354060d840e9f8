#!/usr/bin/env bash
# bench/auth/login.sh: pgapp.login throughput at the configured Argon2id
# costs (libsodium INTERACTIVE: 64 MB, 2 passes), and the peak memory of the
# cluster while 32 clients log in, with the hashing cap at its default (2)
# and lifted (32).  Memory: the sum of RssAnon (private anonymous resident
# memory) of every process of the cluster, read from /proc every 50 ms
# during the run; shared memory (RssShmem) is left out, since every backend
# maps the same shared buffers and a sum of VmRSS would count them once per
# process.  libsodium maps each hash's 64 MB and unmaps it at the end, so it
# shows only while the hash runs.
#
#   bash bench/auth/login.sh          SECONDS_PER_RUN=8 BENCH_DIR=<new dir> BENCH_PORT=55445
#
# A successful login is one hash (verify), one access token and one refresh
# token row.  pgbench -c N -j 2, one run per setting (short: the machine
# is shared).
set -euo pipefail
PG_BIN=${PGAPP_PG_BIN:-/usr/lib/postgresql/15/bin}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
PORT=${BENCH_PORT:-55445}
DIR=${BENCH_DIR:-$(mktemp -d /tmp/pgapp-bench-login.XXXXXX)}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR"

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
cleanup() {
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    [ -n "${KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\nmax_connections = 100
shared_preload_libraries = 'pgapp'\npgapp.auth_jwt_secret = 'bench-secret-0123456789abcdef-0123456789'
pgapp.auth_login_max_attempts = 1000000\npgapp.auth_login_client_max_attempts = 1000000
pgapp.auth_default_role = ''\npgapp.auth_max_sessions = 1000\n" "$PORT" "$DIR" \
    | as_pg tee -a "$DIR/data/postgresql.conf" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
psql_q() { as_pg "$PG_BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql_q -c "CREATE EXTENSION pgapp" \
       -c "SELECT count(pgapp.register('bench' || i || '@example.com', 'bench password 1')) FROM generate_series(1, 32) AS i" >/dev/null
cp "$HERE/login.sql" "$DIR/login.sql"
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR/login.sql"
postmaster=$(head -1 "$DIR/data/postmaster.pid")

# sum of RssAnon (kB) of the postmaster and its children
rss() {
    local total=0 p v
    for p in $postmaster $(pgrep -P "$postmaster"); do
        v=$(awk '/^RssAnon:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

run() {  # run CAP CLIENTS -> "logins/s peak_rss_MB"
    psql_q -c "ALTER SYSTEM SET pgapp.auth_hash_concurrency = $1" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    local peak=0 out pid v
    as_pg "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
        -T "$SECONDS_PER_RUN" -f "$DIR/login.sql" postgres >"$DIR/pgbench.out" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        v=$(rss)
        [ "$v" -gt "$peak" ] && peak=$v
        sleep 0.05
    done
    wait "$pid" || { cat "$DIR/pgbench.out"; exit 1; }
    out=$(awk '/^tps/ {printf "%.1f", $3}' "$DIR/pgbench.out")
    echo "$out $((peak / 1024))"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); libsodium costs: $(psql_q -c "SELECT current_setting('pgapp.auth_password_memlimit') || ', ' || current_setting('pgapp.auth_password_opslimit') || ' passes'"); ${SECONDS_PER_RUN}s per run"
echo "idle cluster, private memory: $(( $(rss) / 1024 )) MB"
printf '%-34s %12s %22s\n' "run" "logins/s" "peak private RSS (MB)"
read -r t m <<<"$(run 2 1)";  printf '%-34s %12s %22s\n' "1 client, cap 2" "$t" "$m"
read -r t m <<<"$(run 2 32)"; printf '%-34s %12s %22s\n' "32 clients, cap 2 (default)" "$t" "$m"
read -r t m <<<"$(run 32 32)"; printf '%-34s %12s %22s\n' "32 clients, cap 32" "$t" "$m"
psql_q -c "SELECT 'auth_hash_stats: ' || row(s.*)::text FROM pgapp.auth_hash_stats s"

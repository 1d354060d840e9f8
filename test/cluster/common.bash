# test/cluster/common.bash: what the single-server scripts of test/cluster
# share (sourced; its name keeps it out of scripts/test's *.sh).
#
#   source "$(dirname "$0")/common.bash"
#   start_cluster ["extra postgresql.conf line" ...]   initdb + start, or exit with "not ok"
#   q "SQL"                 one statement on database postgres, its result unaligned
#   check "what" got want   one TAP line; on failure got/want and the log's tail
#   pgctl start|stop ...    pg_ctl on this cluster
#   finish                  stop the server and print the plan
#
# Environment (set by scripts/test): PG_BIN, PGAPP_CLUSTER_DIR (an empty
# directory), PGAPP_CLUSTER_PORT, PGAPP_CONF (test/pgapp.conf).  The server
# is stopped on exit, whatever happens.
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=${PGAPP_CLUSTER_DIR:?}
PORT=${PGAPP_CLUSTER_PORT:?}
DATA=$DIR/data
LOG=$DIR/server.log
n=0

pgctl() { "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w "$@" >/dev/null; }
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d postgres -c "$1"; }

check() {
    n=$((n + 1))
    if [ "$2" = "$3" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        echo "#   got:      $2"
        echo "#   expected: $3"
        tail -n 15 "$LOG" | sed 's/^/#   log: /'
    fi
}

cleanup() { pgctl -m immediate stop 2>/dev/null || true; }
trap cleanup EXIT

start_cluster() {
    local line
    "$PG_BIN/initdb" -D "$DATA" -U postgres -A trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
        || { echo "not ok 1 - initdb"; sed 's/^/# /' "$DIR/initdb.log"; exit 1; }
    {
        cat "$PGAPP_CONF"
        echo "port = $PORT"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$DIR'"
        echo "cron.database_name = 'postgres'"
        for line in "$@"; do echo "$line"; done
    } >>"$DATA/postgresql.conf"
    pgctl start || { echo "not ok 1 - server start"; tail -n 20 "$LOG" | sed 's/^/# /'; exit 1; }
}

finish() {
    pgctl -m fast stop
    trap - EXIT
    echo "1..$n"
}

#!/usr/bin/env bash
# test/concurrency/login.sh: a login storm never runs more password hashes
# at once than pgapp.auth_hash_concurrency.  16 pgbench clients make 160
# logins (right and wrong passwords, and unknown emails) at 8 MB per hash;
# pgapp.auth_hash_stats must then show a peak no higher than the cap, no
# slot left taken, every hash counted, and clients that had to wait (so the
# cap was what held them back).  Then a storm whose clients are cancelled
# by statement_timeout while they wait or hash: every slot comes back.
# Prints TAP.  Needs PGHOST/PGPORT/PGUSER/PGDATABASE of a server with pgapp
# preloaded and installed, and pgbench on PATH or in $PG_BIN.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=$(mktemp -d)

psql_q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
    psql_q -c "ALTER SYSTEM RESET pgapp.auth_jwt_secret" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    psql_q -c "DELETE FROM pgapp.auth_user WHERE email LIKE 'storm%@example.com'" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

psql_q -c "ALTER SYSTEM SET pgapp.auth_jwt_secret = 'storm-secret-0123456789abcdef-0123456789'" \
       -c "SELECT pg_reload_conf()" >/dev/null
export PGOPTIONS="-c pgapp.auth_password_memlimit=8MB -c pgapp.auth_password_opslimit=1 -c pgapp.auth_default_role= \
-c pgapp.auth_login_max_attempts=100000 -c pgapp.auth_login_client_max_attempts=100000"
psql_q -c "SELECT count(*) FROM (SELECT pgapp.register('storm' || i || '@example.com', 'storm password') FROM generate_series(1, 4) AS i) AS r" >/dev/null
cap=$(psql_q -c "SELECT concurrency FROM pgapp.auth_hash_stats")
before=$(psql_q -c "SELECT hashes || ' ' || waits FROM pgapp.auth_hash_stats")

cat > "$DIR/login.sql" <<'SQL'
\set n random(1, 6)
DO $$
BEGIN
    PERFORM pgapp.login('storm' || :n || '@example.com', CASE WHEN :n % 2 = 0 THEN 'storm password' ELSE 'wrong' END);
EXCEPTION WHEN SQLSTATE 'PT401' THEN
    NULL;
END $$;
SQL
if ! "$PG_BIN/pgbench" -n -c 16 -j 2 -t 10 -f "$DIR/login.sql" >"$DIR/pgbench.log" 2>&1; then
    echo "not ok 1 - storm: pgbench failed"
    sed 's/^/# /' "$DIR/pgbench.log"
else
    read -r in_use peak hashes waits <<<"$(psql_q -F ' ' -c "SELECT in_use, peak, hashes, waits FROM pgapp.auth_hash_stats")"
    read -r hashes0 waits0 <<<"$before"
    if [ "$peak" -le "$cap" ] && [ "$in_use" = 0 ] && [ $((hashes - hashes0)) -ge 160 ] && [ $((waits - waits0)) -gt 0 ]; then
        echo "ok 1 - storm: 16 clients, 160 logins, at most $peak of $cap hashes at once, $((waits - waits0)) waited"
    else
        echo "not ok 1 - storm: peak $peak (cap $cap), in use $in_use, $((hashes - hashes0)) hashes, $((waits - waits0)) waits"
    fi
fi

# cancelled while waiting or hashing: statement_timeout 30 ms against 8 MB hashes behind a cap of 2
PGOPTIONS="$PGOPTIONS -c statement_timeout=30" "$PG_BIN/pgbench" -n -c 16 -j 2 -t 10 -f "$DIR/login.sql" \
    >"$DIR/pgbench2.log" 2>&1 || true
cancelled=$(grep -c "canceling statement due to statement timeout" "$DIR/pgbench2.log" || true)
in_use=$(psql_q -c "SELECT in_use FROM pgapp.auth_hash_stats")
if [ "$in_use" = 0 ] && [ "$cancelled" -gt 0 ]; then
    echo "ok 2 - cancelled logins ($cancelled cancels) gave every slot back"
else
    echo "not ok 2 - after cancels: $in_use slots in use, $cancelled cancels"
    tail -5 "$DIR/pgbench2.log" | sed 's/^/# /'
fi
# and the cap still admits work afterwards
if psql_q -c "SELECT pgapp.login('storm2@example.com', 'storm password') ? 'access_token'" | grep -q t; then
    echo "ok 3 - a login after the cancels succeeds"
else
    echo "not ok 3 - a login after the cancels failed"
fi

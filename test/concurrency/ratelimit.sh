#!/usr/bin/env bash
# test/concurrency/ratelimit.sh: concurrent checks on one hot key never allow
# more than the limit.  8 pgbench clients make 800 checks of one key with a
# limit of 50 and record each allowed request; exactly 50 must be recorded,
# for each algorithm.  Then the same while the clients also flood the table
# (64 keys in test/pgapp.conf) with 800 fresh keys: evictions race with the
# checks, the hot key (which has counted more than any fresh key) is never
# evicted, and no check finds nothing to evict.  Prints TAP.  Needs PGHOST/PGPORT/PGUSER/PGDATABASE of
# a server with pgapp preloaded and installed, and pgbench on PATH or in $PG_BIN.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

psql_q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

psql_q -c "DROP TABLE IF EXISTS rl_allowed" -c "CREATE TABLE rl_allowed (algorithm text, n int)"
# start 10 s into a fresh day, so that one 1-day window holds the whole run
offset=$(psql_q -c "SELECT 86400 - (extract(epoch FROM clock_timestamp())::bigint % 86400) + 10")

n=0
for alg in fixed sliding gcra; do
    n=$((n + 1))
    # gcra: 50 per day with a burst of 49 more, i.e. 50 at once
    burst=0; [ "$alg" = gcra ] && burst=49
    key="hot-$alg-$$"
    cat > "$DIR/$alg.sql" <<SQL
INSERT INTO rl_allowed SELECT '$alg', 1 WHERE (pgapp.check_rate('$key', 50, 86400, '$alg', $burst)).allowed;
SQL
    if ! PGOPTIONS="-c pgapp.ratelimit_clock_offset=$offset" \
        "$PG_BIN/pgbench" -n -c 8 -j 2 -t 100 -f "$DIR/$alg.sql" >"$DIR/pgbench.log" 2>&1; then
        echo "not ok $n - $alg: pgbench failed"
        sed 's/^/# /' "$DIR/pgbench.log"
        continue
    fi
    allowed=$(psql_q -c "SELECT count(*) FROM rl_allowed WHERE algorithm = '$alg'")
    if [ "$allowed" = 50 ]; then
        echo "ok $n - $alg: 8 clients, 800 checks of one key, exactly 50 allowed"
    else
        echo "not ok $n - $alg: 8 clients, 800 checks of one key, $allowed allowed instead of 50"
    fi
done
# the flood: every transaction makes a fresh key (evicting another) and checks the hot key
key="hot-flood-$$"
PGOPTIONS="-c pgapp.ratelimit_clock_offset=$offset" psql_q -c "SELECT pgapp.check_rate('$key', 50, 86400), pgapp.check_rate('$key', 50, 86400)" >/dev/null
full_before=$(psql_q -c "SELECT full_events FROM pgapp.rate_stats")
evictions_before=$(psql_q -c "SELECT evictions FROM pgapp.rate_stats")
cat > "$DIR/flood.sql" <<SQL
\\set r random(1, 1000000000)
SELECT pgapp.check_rate('flood-' || :client_id || '-' || :r, 5, 86400);
INSERT INTO rl_allowed SELECT 'flood', 1 WHERE (pgapp.check_rate('$key', 50, 86400)).allowed;
SQL
n=$((n + 1))
if ! PGOPTIONS="-c pgapp.ratelimit_clock_offset=$offset" \
    "$PG_BIN/pgbench" -n -c 8 -j 2 -t 100 -f "$DIR/flood.sql" >"$DIR/pgbench.log" 2>&1; then
    echo "not ok $n - flood: pgbench failed"
    sed 's/^/# /' "$DIR/pgbench.log"
else
    allowed=$(psql_q -c "SELECT count(*) FROM rl_allowed WHERE algorithm = 'flood'")
    stats=$(psql_q -c "SELECT full_events - $full_before, evictions - $evictions_before >= 700 FROM pgapp.rate_stats")
    if [ "$allowed" = 48 ] && [ "$stats" = "0|t" ]; then
        echo "ok $n - flood: 800 fresh keys evicting each other, the hot key's last 48 of 50 allowed exactly, nothing uncounted"
    else
        echo "not ok $n - flood: $allowed of the hot key's last 48 allowed; full events, evictions >= 700: $stats"
    fi
fi
psql_q -c "DROP TABLE rl_allowed"
echo "1..$n"

#!/usr/bin/env bash
# test/cluster/auth_revoke.sh: token revocations across restarts.  The
# cache in shared memory starts empty at every server start; the first
# check in a database loads it from pgapp.auth_revoked_token and
# pgapp.auth_subject_cutoff.
#   - after a clean restart a revoked jti and a subject's cutoff still hold;
#   - after a backend is killed with SIGKILL (the postmaster resets shared
#     memory) they hold too, and the cache is loaded again;
#   - a revocation whose transaction was cut off by the crash revokes nothing.
# Prints TAP (test/cluster/common.bash).
source "$(dirname "$0")/common.bash"
start_cluster "pgapp.auth_jwt_secret = 'cluster-revoke-secret-0123456789abcdef'"

q "CREATE EXTENSION pgapp" >/dev/null
q "CREATE TABLE tok AS SELECT name, pgapp.encode_token(sub, '{}', '1 hour') AS token
     FROM (VALUES ('revoked', 'alice'), ('kept', 'alice'), ('victim', 'bob'), ('uncommitted', 'carol')) AS v(name, sub)" >/dev/null
q "SELECT pgapp.revoke_token(pgapp.decode_token(token) ->> 'jti', now() + interval '1 hour') FROM tok WHERE name = 'revoked'" >/dev/null
q "SELECT pgapp.revoke_subject('bob')" >/dev/null

# every token's check result, in name order
results() {
    q "CREATE OR REPLACE FUNCTION pg_temp.e(t text) RETURNS text LANGUAGE plpgsql AS \$\$
       BEGIN PERFORM pgapp.decode_token(t); RETURN 'ok';
       EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END \$\$;
       SELECT string_agg(name || '=' || pg_temp.e(token), ' ' ORDER BY name) FROM tok"
}
cache() { q "SELECT pgapp.auth_revocation_status() ->> 'cache'"; }
want="kept=ok revoked=PJ005 uncommitted=ok victim=PJ005"

check "before any restart" "$(results)" "$want"

# 1. clean restart: the cache starts empty and the first check loads it
pgctl -m fast stop
pgctl start
check "after a clean restart the cache is empty" "$(cache)" "no slot"
check "after a clean restart the revocations hold" "$(results)" "$want"
check "the first check loaded the cache" "$(cache)" "loaded"

# 2. a crash: SIGKILL a backend that is in the middle of a revocation
crash() {
    local victim= i
    "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -d postgres \
        -c "BEGIN" \
        -c "SELECT pgapp.revoke_token(pgapp.decode_token(token) ->> 'jti', now() + interval '1 hour') FROM tok WHERE name = 'uncommitted'" \
        -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
    for i in $(seq 1 100); do
        victim=$(q "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")
        [ -n "$victim" ] && break
        sleep 0.1
    done
    kill -9 "$victim"
    wait
    for i in $(seq 1 100); do   # wait for the crash restart, at most 10 s
        grep -q 'database system is ready to accept connections' <(sed -n '/terminated by signal 9/,$p' "$LOG") && break
        sleep 0.1
    done
}
crash
check "after a crash the cache is empty" "$(cache)" "no slot"
check "after a crash the revocations hold, the cut-off one revokes nothing" "$(results)" "$want"
check "the first check after the crash loaded the cache again" "$(cache)" "loaded"
check "the cut-off revocation left no row" \
    "$(q "SELECT count(*) FROM pgapp.auth_revoked_token")" 1

# 3. a revocation committed after the load reaches the cache and the table
q "SELECT pgapp.revoke_token(pgapp.decode_token(token) ->> 'jti', now() + interval '1 hour') FROM tok WHERE name = 'uncommitted'" >/dev/null
check "a revocation committed after the load holds" "$(results)" "kept=ok revoked=PJ005 uncommitted=PJ005 victim=PJ005"
pgctl -m fast stop
pgctl start
check "and still after another restart" "$(results)" "kept=ok revoked=PJ005 uncommitted=PJ005 victim=PJ005"
finish

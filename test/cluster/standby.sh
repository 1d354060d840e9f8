#!/usr/bin/env bash
# test/cluster/standby.sh: the rate limiter and token revocation on a hot
# standby.  Revocation: the replica's shared memory cannot hear of what the
# primary revokes, so in recovery every check reads the replicated tables: a
# jti and a subject revoked on the primary are refused on the replica once
# replayed, and revoking on the replica is refused (25006).  A primary with
# pgapp and a streaming replica made by pg_basebackup -R: on the replica,
# which is read-only (CREATE TABLE fails with 25006), check_rate counts in
# the replica's own shared memory (2 allowed, then denied with a
# retry_after) and rate_buckets shows the bucket; on the primary, check_rate
# and rate_limit (PT429 on the second call) work inside BEGIN READ ONLY, as
# PostgREST runs a GET, and its buckets do not have the replica's key.
#
# Run by "scripts/test cluster" as the cluster owner, with PG_BIN,
# PGAPP_CONF (test/pgapp.conf), PGAPP_CLUSTER_DIR (an empty directory) and
# PGAPP_CLUSTER_PORT (uses that port and the next).  Prints TAP; stops both
# servers on exit, and when a test failed prints the tails of their logs and
# exits with status 1.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
: "${PGAPP_CONF:?}" "${PGAPP_CLUSTER_DIR:?}" "${PGAPP_CLUSTER_PORT:?}"

DIR=$PGAPP_CLUSTER_DIR
PRIMARY_PORT=$PGAPP_CLUSTER_PORT
REPLICA_PORT=$((PGAPP_CLUSTER_PORT + 1))
STARTED=()
N=0
FAILED=0

ok() {
    N=$((N + 1))
    if [ "$1" = 0 ]; then
        echo "ok $N - $2"
    else
        echo "not ok $N - $2"
        FAILED=$((FAILED + 1))
    fi
}

# is "$2" (what we got) equal to "$3" (what we want)?  Test named $1.
is() {
    local r=0
    [ "$2" = "$3" ] || r=1
    ok "$r" "$1"
    [ "$r" = 0 ] || printf '#   got:      %s\n#   expected: %s\n' "$2" "$3"
}

finish() {
    local rc=$? d i
    if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
        for d in "${STARTED[@]}"; do
            echo "# --- tail of the $d's server log"
            tail -n 25 "$DIR/$d/server.log" 2>/dev/null | sed 's/^/# /'
        done
    fi
    # the replica first, so that it does not lose its primary
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        "$PG_BIN/pg_ctl" -D "$DIR/${STARTED[i]}/data" -m fast -w stop >/dev/null 2>&1 || true
    done
    echo "1..$N"
    # non-zero when a test failed, so that scripts/test shows the diagnostics
    [ "$rc" -ne 0 ] || [ "$FAILED" -eq 0 ] || rc=1
    exit "$rc"
}
trap finish EXIT

# psql on node $1 (primary or replica), database postgres
pq() {
    local node=$1 port=$PRIMARY_PORT
    shift
    [ "$node" = replica ] && port=$REPLICA_PORT
    "$PG_BIN/psql" -X -q -At -h "$DIR/$node" -p "$port" -U postgres -d postgres "$@"
}

# (recorded first: a start that timed out may still leave a server running)
start() {
    STARTED+=("$1")
    "$PG_BIN/pg_ctl" -D "$DIR/$1/data" -l "$DIR/$1/server.log" -w -t 30 start >/dev/null
}

# node $1 listens on port $2 in its own socket directory
configure() {
    printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\ncron.database_name = 'postgres'\n" \
        "$2" "$DIR/$1" >>"$DIR/$1/data/postgresql.conf"
}

# The primary.  Streaming needs wal_level = replica and max_wal_senders > 0
# (both the defaults, set here to say so) and a pg_hba.conf line for local
# replication connections: initdb -A trust writes "local replication all
# trust".
mkdir -p "$DIR/primary" "$DIR/replica"
"$PG_BIN/initdb" -D "$DIR/primary/data" -U postgres -A trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$DIR/primary/initdb.log" 2>&1 || { sed 's/^/# /' "$DIR/primary/initdb.log"; exit 1; }
cat "$PGAPP_CONF" >>"$DIR/primary/data/postgresql.conf"
configure primary "$PRIMARY_PORT"
printf "wal_level = replica\nmax_wal_senders = 10\n" >>"$DIR/primary/data/postgresql.conf"
# a token secret for the revocation checks at the end (copied to the replica)
echo "pgapp.auth_jwt_secret = 'standby-revoke-secret-0123456789abcdef'" >>"$DIR/primary/data/postgresql.conf"
start primary
pq primary -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pgapp"

# The replica: a base backup with standby.signal and primary_conninfo (-R),
# then its own port and socket directory (appended, so they win).
"$PG_BIN/pg_basebackup" -h "$DIR/primary" -p "$PRIMARY_PORT" -U postgres -D "$DIR/replica/data" \
    -R -X stream -c fast >"$DIR/replica/basebackup.log" 2>&1 \
    || { sed 's/^/# /' "$DIR/replica/basebackup.log"; exit 1; }
configure replica "$REPLICA_PORT"
start replica

# Wait (at most 30 s) until the replica is in recovery, streams from the
# primary and has the extension.
state=
for _ in $(seq 150); do
    state=$(pq replica -c "SELECT pg_is_in_recovery(),
                                  (SELECT status FROM pg_stat_wal_receiver),
                                  EXISTS (SELECT FROM pg_extension WHERE extname = 'pgapp')" 2>/dev/null || true)
    [ "$state" = "t|streaming|t" ] && break
    sleep 0.2
done
echo "# replica: in recovery|wal receiver|pgapp installed = $state"
is "the replica is in recovery" "$(cut -d'|' -f1 <<<"$state")" t
is "the replica streams from the primary" "$(cut -d'|' -f2 <<<"$state")" streaming
is "the replica has replayed CREATE EXTENSION pgapp" "$(cut -d'|' -f3 <<<"$state")" t

# Three checks of one key on the replica, in one session whose limiter
# clock reads 10 s past the next full hour, so that the fixed window cannot
# end between them.
out=$(pq replica -v ON_ERROR_STOP=1 2>&1 <<'SQL' || true
SELECT set_config('pgapp.ratelimit_clock_offset',
                  (3600 - extract(epoch FROM clock_timestamp())::bigint % 3600 + 10)::text, false) \g /dev/null
SELECT allowed, remaining, retry_after > 0 FROM pgapp.check_rate('k', 2, 3600);
SELECT allowed, remaining, retry_after > 0 FROM pgapp.check_rate('k', 2, 3600);
SELECT allowed, remaining, retry_after > 0 FROM pgapp.check_rate('k', 2, 3600);
SQL
)
is "replica: 1st check_rate('k', 2, 3600) is allowed, remaining 1" "$(sed -n 1p <<<"$out")" "t|1|f"
is "replica: 2nd check is allowed, remaining 0" "$(sed -n 2p <<<"$out")" "t|0|f"
is "replica: 3rd check is denied, retry_after > 0" "$(sed -n 3p <<<"$out")" "f|0|t"
[ "$(wc -l <<<"$out")" -le 3 ] || sed 's/^/# /' <<<"$out"

# The replica is read-only: a table write fails.
out=$(pq replica 2>&1 <<'SQL' || true
CREATE TABLE standby_write (i int);
\echo sqlstate :LAST_ERROR_SQLSTATE
SQL
)
is "replica: CREATE TABLE fails with 25006 (read-only)" "$(grep '^sqlstate' <<<"$out")" "sqlstate 25006"

out=$(pq replica -v ON_ERROR_STOP=1 -c "SELECT count(*) >= 1, bool_or(key = 'k' AND count = 2) FROM pgapp.rate_buckets" 2>&1 || true)
is "replica: rate_buckets has the bucket of 'k' with count 2" "$out" "t|t"

# On the primary, in a READ ONLY transaction, as PostgREST runs a GET:
# check_rate answers, rate_limit allows once and then raises PT429, and the
# transaction commits.
out=$(pq primary -v ON_ERROR_STOP=1 2>&1 <<'SQL' || true
BEGIN READ ONLY;
SELECT current_setting('transaction_read_only'), allowed, remaining FROM pgapp.check_rate('p', 2, 3600);
DO $$
BEGIN
    PERFORM pgapp.rate_limit('k2', 1, 3600);
    BEGIN
        PERFORM pgapp.rate_limit('k2', 1, 3600);
        RAISE NOTICE 'second rate_limit: no error';
    EXCEPTION WHEN SQLSTATE 'PT429' THEN
        RAISE NOTICE 'second rate_limit: %', SQLSTATE;
    END;
END
$$;
COMMIT;
\echo committed
SQL
)
is "primary: check_rate in BEGIN READ ONLY is allowed" "$(sed -n 1p <<<"$out")" "on|t|1"
is "primary: in the same transaction, the 2nd rate_limit('k2', 1, 3600) raises PT429" \
    "$(grep -o 'second rate_limit: .*' <<<"$out" || true)" "second rate_limit: PT429"
is "primary: the READ ONLY transaction commits" "$(tail -n 1 <<<"$out")" "committed"

out=$(pq primary -v ON_ERROR_STOP=1 -c "SELECT string_agg(key, ',' ORDER BY key) FROM pgapp.rate_buckets" 2>&1 || true)
is "primary: its buckets are its own ('k' of the replica is not there)" "$out" "k2,p"

# Revocation on the replica: tokens minted on the primary, checked on both.
# (the replica can create nothing, not even a temporary function: the
# primary makes the checking function, and the replica replays it)
pq primary -v ON_ERROR_STOP=1 -c "CREATE TABLE tok AS SELECT name, pgapp.encode_token(sub, '{}', '1 hour') AS token
    FROM (VALUES ('jti', 'alice'), ('kept', 'alice'), ('subject', 'bob')) AS v(name, sub)" \
    -c "CREATE FUNCTION tok_check(t text) RETURNS text LANGUAGE plpgsql AS \$\$
        BEGIN PERFORM pgapp.decode_token(t); RETURN 'ok';
        EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END \$\$" >/dev/null
results() {
    pq "$1" -v ON_ERROR_STOP=1 -c "SELECT string_agg(name || '=' || tok_check(token), ' ' ORDER BY name) FROM tok" 2>&1
}
replayed() {   # wait (at most 30 s) until the replica has replayed the primary's WAL so far
    local lsn
    lsn=$(pq primary -c "SELECT pg_current_wal_lsn()")
    for _ in $(seq 150); do
        [ "$(pq replica -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return
        sleep 0.2
    done
}
replayed
is "replica: every token is valid before any revocation" "$(results replica)" "jti=ok kept=ok subject=ok"
pq primary -v ON_ERROR_STOP=1 -c "SELECT pgapp.revoke_token(pgapp.decode_token(token) ->> 'jti', now() + interval '1 hour') FROM tok WHERE name = 'jti'" \
    -c "SELECT pgapp.revoke_subject('bob')" >/dev/null
replayed
is "primary: the revocations hold" "$(results primary)" "jti=PJ005 kept=ok subject=PJ005"
is "replica: the primary's revocations hold once replayed (read from the tables)" "$(results replica)" "jti=PJ005 kept=ok subject=PJ005"
out=$(pq replica -c "SELECT pgapp.revoke_subject('carol')" 2>&1 || true)
is "replica: revoking is refused during recovery" "$(grep -o 'cannot revoke tokens during recovery' <<<"$out")" "cannot revoke tokens during recovery"

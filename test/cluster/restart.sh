#!/usr/bin/env bash
# test/cluster/restart.sh: the rate limiter across restarts, and the
# housekeeper's report of a full table.
#   - a clean shutdown saves the buckets and the next start restores them
#     (a client does not get a fresh window), named limiters included;
#   - a crash (a backend killed with SIGKILL) restores nothing;
#   - pgapp.ratelimit_save = off saves nothing;
#   - a damaged save file is ignored with a LOG line;
#   - a named limiter belongs to its database;
#   - a bucket whose window is over pgapp.ratelimit_max_window is not restored;
#   - evictions, and checks that find nothing to evict, are logged once per
#     sweep interval.
# Prints TAP (test/cluster/common.bash).
source "$(dirname "$0")/common.bash"
start_cluster

q "CREATE EXTENSION pgapp" >/dev/null
q "SELECT pgapp.create_limiter('api', 8, 3, 86400)" >/dev/null
# 2 of 5 used in a one-day window, 1 of 3 in the named limiter
q "SELECT pgapp.check_rate('client', 5, 86400)" >/dev/null
q "SELECT pgapp.check_rate('client', 5, 86400)" >/dev/null
q "SELECT pgapp.check_rate('client', 'api')" >/dev/null

# 1. clean restart: the counts survive
pgctl -m fast stop
check "a clean shutdown writes the save file" "$(test -f "$DATA/pg_stat/pgapp_ratelimit.stat" && echo yes)" yes
pgctl start
check "the window goes on after a clean restart (3rd of 5: 2 left)" \
    "$(q "SELECT (pgapp.check_rate('client', 5, 86400)).remaining")" 2
check "a named limiter's bucket and quota come back" \
    "$(q "SELECT (pgapp.check_rate('client', 'api')).remaining || '/' || (SELECT max_keys FROM pgapp.rate_limiters WHERE name = 'api')")" 1/8
check "the save file is removed once read" "$(test -e "$DATA/pg_stat/pgapp_ratelimit.stat" && echo present || echo gone)" gone
check "the restore is logged" "$(grep -c 'restored 2 rate limit bucket' "$LOG")" 1

# 2. a crash restores nothing (counters may be inconsistent after a crash):
#    kill -9 one backend, and the postmaster resets shared memory
"$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -d postgres -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
victim=
for _ in $(seq 1 100); do
    victim=$(q "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")
    [ -n "$victim" ] && break
    sleep 0.1
done
kill -9 "$victim"
wait
for _ in $(seq 1 100); do   # wait for the crash restart, at most 10 s
    grep -q 'database system is ready to accept connections' <(sed -n '/terminated by signal 9/,$p' "$LOG") && break
    sleep 0.1
done
check "after a crash the window starts afresh (1st of 5: 4 left)" \
    "$(q "SELECT (pgapp.check_rate('client', 5, 86400)).remaining")" 4

# 3. pgapp.ratelimit_save = off keeps nothing
q "ALTER SYSTEM SET pgapp.ratelimit_save = off" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
pgctl -m fast stop
check "with pgapp.ratelimit_save = off no file is written" \
    "$(test -e "$DATA/pg_stat/pgapp_ratelimit.stat" && echo present || echo absent)" absent
q_reset() { q "ALTER SYSTEM RESET pgapp.ratelimit_save" >/dev/null && q "SELECT pg_reload_conf()" >/dev/null; }

# 4. a damaged file is ignored, and the server starts
printf 'not a pgapp file at all' >"$DATA/pg_stat/pgapp_ratelimit.stat"
pgctl start
q_reset
check "a damaged save file is ignored with a LOG line" "$(grep -c 'ignoring damaged rate limiter file' "$LOG")" 1
check "and the limiter works" "$(q "SELECT (pgapp.check_rate('client', 5, 86400)).remaining")" 4

# 5. named limiters belong to their database: "api" in another database is another limiter
q "CREATE DATABASE other" >/dev/null
q_other() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d other -c "$1"; }
q_other "CREATE EXTENSION pgapp" >/dev/null
q_other "SELECT pgapp.create_limiter('api', 4, 1, 86400)" >/dev/null
check "the same limiter name in two databases: two limiters, each with its own limits" \
    "$(q_other "SELECT (pgapp.check_rate('client', 'api')).remaining")/$(q "SELECT (pgapp.check_rate('client', 'api')).remaining")" 0/2
check "and its own quota" \
    "$(q_other "SELECT string_agg(name || '=' || max_keys, ',' ORDER BY name) FROM pgapp.rate_limiters")/$(q "SELECT string_agg(name || '=' || max_keys, ',' ORDER BY name) FROM pgapp.rate_limiters")" \
    "api=4,default=52/api=8,default=52"
q_other "SELECT pgapp.drop_limiter('api')" >/dev/null
check "dropping it in one database leaves the other's" \
    "$(q "SELECT (pgapp.check_rate('client', 'api')).remaining")" 1

# 6. the save file does not bring back a window longer than the cap allows
#    at the next start (pgapp.ratelimit_max_window, 1 day by default)
q "ALTER SYSTEM SET pgapp.ratelimit_max_window = '2d'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
q "SELECT pgapp.check_rate('two days', 5, 172800), pgapp.check_rate('one day', 5, 86400)" >/dev/null
q "ALTER SYSTEM RESET pgapp.ratelimit_max_window" >/dev/null
pgctl -m fast stop
pgctl start
check "a bucket over the window cap is not restored, one within it is" \
    "$(q "SELECT string_agg(key, ',' ORDER BY key) FROM pgapp.rate_buckets WHERE key IN ('one day', 'two days')")" "one day"

# 7. a flood is reported by the housekeeper, once per interval
#    (test/pgapp.conf: 64 keys, sweep every second); wait at most 10 s
q "SELECT count(*) FROM generate_series(1, 100) AS g, pgapp.check_rate('fill:' || g, 5, 86400)" >/dev/null
for _ in $(seq 1 100); do
    grep -q 'were evicted since the last sweep' "$LOG" && break
    sleep 0.1
done
check "the housekeeper logs the live buckets evicted to make room" \
    "$(grep -c 'live rate limit buckets were evicted since the last sweep to make room for new keys' "$LOG")" 1

# 8. checks that find nothing to evict are logged too: the named limiters
#    reserve the whole table and "default" holds no bucket
q "SET pgapp.ratelimit_clock_offset = 200000; SELECT pgapp.rate_sweep()" >/dev/null
q "SELECT pgapp.check_rate('registered', 'api')" >/dev/null
q "SELECT pgapp.create_limiter('rest', 64 - (SELECT sum(max_keys)::int FROM pgapp.rate_limiter))" >/dev/null
check "with no place and nothing to evict, a check is denied (pgapp.ratelimit_on_full = deny)" \
    "$(q "SELECT count(*) FILTER (WHERE d.allowed) FROM generate_series(1, 10) AS g, pgapp.check_rate('full:' || g, 5, 86400) AS d")" 0
for _ in $(seq 1 100); do
    grep -q 'found no free bucket' "$LOG" && break
    sleep 0.1
done
check "the housekeeper logs the checks that found the table full" \
    "$(grep -c 'checks found no free bucket and none to evict since the last sweep and were denied' "$LOG")" 1

finish

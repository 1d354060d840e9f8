#!/usr/bin/env bash
# test/cluster/pubsub.sh: outbox messages are never lost between commit and
# delivery.  With no background worker slot free, committed outbox messages
# wait (the writer gets a WARNING, not an error); the server then crashes
# (immediate stop) and starts again with room for workers: the housekeeper
# starts the database's delivery worker by itself, which sends every waiting
# message once.  Prints TAP (test/cluster/common.bash).
source "$(dirname "$0")/common.bash"
# the housekeeper and pg_cron's launcher take both slots: no room for a delivery worker
start_cluster 'max_worker_processes = 2'
q "CREATE EXTENSION pgapp" >/dev/null

q "SELECT pgapp.broadcast('orders:1', 'queued', jsonb_build_object('n', g), mode => 'outbox') FROM generate_series(1, 3) AS g" >/dev/null 2>&1
q "BEGIN; SELECT pgapp.broadcast('orders:1', 'queued', '{\"n\": 4}', mode => 'outbox'); COMMIT;" >/dev/null 2>&1
check "the committed messages wait in the outbox" "$(q "SELECT count(*) FROM pgapp.outbox")" 4
check "the worker that cannot start is a WARNING in the log, never an error to the writer" \
    "$(grep -c 'WARNING:  could not start background worker "pgapp pubsub"' "$LOG" | awk '{print ($1 > 0)}')" 1

# a crash, then a start with room for workers
pgctl -m immediate stop
sed -i 's/^max_worker_processes = 2$/max_worker_processes = 8/' "$DATA/postgresql.conf"
pgctl start || { echo "not ok $((n + 1)) - restart"; tail -n 20 "$LOG" | sed 's/^/# /'; exit 1; }
# nobody writes: the housekeeper starts the worker, which delivers (wait at most 20 s)
for _ in $(seq 1 200); do
    [ "$(q "SELECT count(*) FROM pgapp.outbox")" = 0 ] && break
    sleep 0.1
done
check "after the crash and restart the worker delivers all 4 waiting messages by itself" \
    "$(q "SELECT pending || '/' || delivered || '/' || worker_state FROM pgapp.pubsub_outbox")" "0/4/running"
check "one delivery worker runs for the database" \
    "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgapp pubsub'")" 1

finish

#!/usr/bin/env bash
# test/cluster/jobs.sh: jobs survive crashes.  kill -9 of a queue worker in
# the middle of a job (the postmaster then restarts every process) and kill -9
# of the postmaster itself: no job is lost, none stays "executing", the
# interrupted attempt is counted and recorded, its writes are gone, and a
# unique job is not duplicated.  A queue whose workers keep crashing opens
# its circuit (logged) without holding back another queue; databases
# created and dropped (plainly: pgapp's workers step aside; or WITH (FORCE)
# while a job runs) never stop the launcher; pgapp.jobs_databases
# keeps workers out of the databases it does not list; too few background
# worker slots is a WARNING with a hint, and the jobs still run.
# Prints TAP (test/cluster/common.bash).
source "$(dirname "$0")/common.bash"
start_cluster 'pgapp.jobs_circuit_cooldown = 2'

wait_for() {  # wait_for "SQL returning true" [tenths of a second, default 300]
    local i
    for i in $(seq 1 "${2:-300}"); do
        [ "$(q "$1" 2>/dev/null)" = t ] && return 0
        sleep 0.1
    done
    return 1
}

ready() { wait_for "SELECT true" 300; }

q "CREATE EXTENSION pgapp" >/dev/null
q "CREATE TABLE ran (job_id bigint, attempt int)" >/dev/null
# the first attempt hangs (until killed), later ones finish
q "CREATE FUNCTION hang_once(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN
       INSERT INTO ran VALUES (job.id, job.attempt);
       IF job.attempt = 1 THEN PERFORM pg_sleep(60); END IF;
       RETURN jsonb_build_object('attempt', job.attempt);
   END \$\$" >/dev/null
q "CREATE FUNCTION crash(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(10); RETURN '{}'; END \$\$" >/dev/null
q "CREATE FUNCTION ok(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$" >/dev/null
q "SELECT pgapp.create_queue('hang', 1), pgapp.create_queue('crashy', 1), pgapp.create_queue('steady', 1)" >/dev/null

# --- kill -9 of a worker in the middle of a job
unique=$(q "SELECT pgapp.enqueue('steady', 'ok', '{\"report\": 1}', unique_by => '{report}', unique_for => '1 hour')")
j1=$(q "SELECT pgapp.enqueue('hang', 'hang_once', '{}', max_attempts => 3)")
wait_for "SELECT EXISTS (SELECT FROM pgapp.workers WHERE job = $j1)" \
    || echo "# job $j1 never started"
pid=$(q "SELECT pid FROM pgapp.workers WHERE job = $j1")
kill -9 "$pid"
sleep 0.5
ready
wait_for "SELECT state = 'completed' FROM pgapp.job WHERE id = $j1"
check "after kill -9 of its worker, the job runs again and completes" \
    "$(q "SELECT state || ' attempt ' || attempt FROM pgapp.job WHERE id = $j1")" "completed attempt 2"
check "the killed attempt is recorded as rescued" \
    "$(q "SELECT errors -> 0 ->> 'sqlstate' || ' ' || (errors -> 0 ->> 'attempt') FROM pgapp.job WHERE id = $j1")" "57P01 1"
check "the killed attempt's writes are gone, the second attempt's are there" \
    "$(q "SELECT string_agg(attempt::text, ',') FROM ran WHERE job_id = $j1")" "2"
check "the unique job is not duplicated by the crash" \
    "$(q "SELECT pgapp.enqueue('steady', 'ok', '{\"report\": 1}', unique_by => '{report}', unique_for => '1 hour') = $unique")" t

# --- kill -9 of the postmaster in the middle of a job
j2=$(q "SELECT pgapp.enqueue('hang', 'hang_once', '{}', max_attempts => 3)")
wait_for "SELECT EXISTS (SELECT FROM pgapp.workers WHERE job = $j2)" \
    || echo "# job $j2 never started"
kill -9 "$(head -1 "$DATA/postmaster.pid")"
# the orphaned processes leave when they notice the postmaster's death
for _ in $(seq 1 100); do
    pgrep -f -- "-D $DATA" >/dev/null || pgrep -u "$(id -u)" -f "postgres: .*pgapp" >/dev/null || break
    sleep 0.1
done
for _ in $(seq 1 100); do
    "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w start >/dev/null 2>&1 && break
    sleep 0.2
done
ready
wait_for "SELECT state = 'completed' FROM pgapp.job WHERE id = $j2"
check "after kill -9 of the postmaster and a restart, the job completes" \
    "$(q "SELECT state || ' attempt ' || attempt FROM pgapp.job WHERE id = $j2")" "completed attempt 2"
check "no job is left executing" "$(q "SELECT count(*) FROM pgapp.job WHERE state = 'executing'")" 0
check "every job enqueued before the crashes is accounted for" \
    "$(q "SELECT string_agg(state::text, ',' ORDER BY id) FROM pgapp.job")" "completed,completed,completed"

# --- the claim commits without waiting for its flush: a crash can lose it, and the
# running job's note (a file in the data directory) counts the attempt instead.
# Here the notes are written by hand while the server is stopped, for jobs whose
# claim did not survive: one with attempts left, one at its last attempt.
q "SELECT pgapp.create_queue('noted', 1, paused => true)" >/dev/null
ja=$(q "SELECT pgapp.enqueue('noted', 'ok', '{\"a\": 1}', max_attempts => 3)")
jb=$(q "SELECT pgapp.enqueue('noted', 'ok', '{\"b\": 1}', max_attempts => 1)")
dboid=$(q "SELECT oid FROM pg_database WHERE datname = current_database()")
pgctl -m fast stop
perl -e 'binmode STDOUT; print pack("L4", 0x50474a52, 2, 0, 0), pack("Llq<", $ARGV[0], 1, $ARGV[1]),
         pack("Llq<", $ARGV[0], 1, $ARGV[2])' "$dboid" "$ja" "$jb" >"$DATA/pgapp_jobs.running"
pgctl start
ready
wait_for "SELECT attempt = 1 FROM pgapp.job WHERE id = $ja" 100
check "a job noted as running at a crash whose claim was lost has its attempt counted" \
    "$(q "SELECT state || ' ' || attempt || ' ' || (errors -> 0 ->> 'sqlstate') FROM pgapp.job WHERE id = $ja")" "available 1 57P01"
check "one noted at its last attempt is discarded" \
    "$(q "SELECT state || ' ' || attempt FROM pgapp.job WHERE id = $jb")" "discarded 1"
check "the restart logs the noted jobs" \
    "$(grep -c '2 jobs were running when the server stopped' "$LOG" | awk '{print ($1 > 0)}')" 1
q "SELECT pgapp.resume_queue('noted')" >/dev/null
wait_for "SELECT state = 'completed' FROM pgapp.job WHERE id = $ja" 100
check "the noted job then runs as its second attempt" \
    "$(q "SELECT state || ' ' || attempt FROM pgapp.job WHERE id = $ja")" "completed 2"

# --- a job that kills its backend (so the server restarts) each time it runs
# stops after max_attempts, whether or not its claim reached the disk
q "CREATE FUNCTION kill_server(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''kill -9 \$PPID'''; RETURN '{}'; END \$\$" >/dev/null
q "SELECT pgapp.create_queue('killer', 1)" >/dev/null
jk=$(q "SELECT pgapp.enqueue('killer', 'kill_server', '{}', max_attempts => 2)")
for _ in $(seq 1 300); do
    [ "$(q "SELECT state FROM pgapp.job WHERE id = $jk" 2>/dev/null)" = discarded ] && break
    sleep 0.1
done
ready
check "a job that kills the server every time is discarded after its 2 attempts" \
    "$(q "SELECT state || ' ' || attempt || ' ' || jsonb_array_length(errors) FROM pgapp.job WHERE id = $jk")" "discarded 2 2"
check "the server restarted twice for it" \
    "$(grep -c "Failed process was running: pgapp jobs: job $jk\$" "$LOG")" 2

# --- a queue whose workers keep crashing opens its circuit; another queue runs on
q "SELECT pgapp.enqueue_many('crashy', 'crash', (SELECT jsonb_agg(jsonb_build_object('n', g)) FROM generate_series(1, 6) AS g), max_attempts => 1)" >/dev/null
wait_for "SELECT count(*) >= 5 FROM pgapp.job WHERE queue = 'crashy' AND state = 'discarded'" 600
check "five crashes within a minute open the queue's circuit (logged)" \
    "$(grep -c 'LOG:  the workers of queue "crashy" crashed 5 times within a minute' "$LOG" | awk '{print ($1 > 0)}')" 1
j3=$(q "SELECT pgapp.enqueue('steady', 'ok', '{\"meanwhile\": true}')")
wait_for "SELECT state = 'completed' FROM pgapp.job WHERE id = $j3" 100
check "another queue runs while the circuit is open" "$(q "SELECT state FROM pgapp.job WHERE id = $j3")" completed
wait_for "SELECT count(*) = 6 FROM pgapp.job WHERE queue = 'crashy' AND state = 'discarded'" 300
check "after the cooling period the crashing queue gets workers again" \
    "$(q "SELECT count(*) FROM pgapp.job WHERE queue = 'crashy' AND state = 'discarded'")" 6

# --- a supervisor that ends without leaving on purpose is a crash: the launcher
# restarts it after its backoff (core/dbworker.c: 2 s after a first crash)
sup=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgapp jobs supervisor' AND datname = 'postgres'")
q "SELECT pg_terminate_backend($sup)" >/dev/null
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pgapp jobs supervisor'
                         AND datname = 'postgres' AND pid <> ${sup:-0})" 150
check "a terminated supervisor is restarted by the launcher (logged)" \
    "$(grep -c 'LOG:  restarting background worker "pgapp jobs supervisor" of database' "$LOG" | awk '{print ($1 > 0)}')" 1

# --- databases come and go; none of it stops the launcher
qd() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d "$1" -c "$2"; }
q "CREATE DATABASE d2" >/dev/null
qd d2 "CREATE EXTENSION pgapp" >/dev/null
qd d2 "CREATE FUNCTION ok(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$" >/dev/null
qd d2 "SELECT pgapp.create_queue('q', 1)" >/dev/null
j=$(qd d2 "SELECT pgapp.enqueue('q', 'ok', '{}')")
qd d2 "SELECT pgapp.broadcast('t', 'e', '{}', mode => 'outbox')" >/dev/null
for _ in $(seq 1 100); do
    [ "$(qd d2 "SELECT state FROM pgapp.job WHERE id = $j")" = completed ] && break
    sleep 0.1
done
check "in a new database, the first enqueue starts its supervisor and the job runs" \
    "$(qd d2 "SELECT state || ' ' || (SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'd2' AND backend_type IN ('pgapp jobs supervisor', 'pgapp pubsub')) FROM pgapp.job WHERE id = $j")" "completed true"
check "a plain DROP DATABASE sends pgapp's workers away and succeeds" \
    "$(q "DROP DATABASE d2" 2>&1 && echo dropped)" dropped
q "CREATE DATABASE d3" >/dev/null
qd d3 "CREATE EXTENSION pgapp" >/dev/null
qd d3 "CREATE FUNCTION slow(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT pg_sleep(60); SELECT '{}'::jsonb \$\$" >/dev/null
qd d3 "SELECT pgapp.create_queue('q', 1)" >/dev/null
j=$(qd d3 "SELECT pgapp.enqueue('q', 'slow', '{}')")
for _ in $(seq 1 100); do
    [ "$(qd d3 "SELECT count(*) FROM pgapp.workers WHERE job = $j")" = 1 ] && break
    sleep 0.1
done
check "DROP DATABASE WITH (FORCE) while a job runs there succeeds" \
    "$(q "DROP DATABASE d3 WITH (FORCE)" 2>&1 && echo dropped)" dropped
q "CREATE DATABASE d4" >/dev/null
sleep 1.5
j=$(q "SELECT pgapp.enqueue('steady', 'ok', '{\"after_drops\": true}')")
wait_for "SELECT state = 'completed' FROM pgapp.job WHERE id = $j" 100
check "after databases were dropped, or made without pgapp, the launcher and the other database's jobs go on" \
    "$(q "SELECT state || ' ' || (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgapp housekeeper') FROM pgapp.job WHERE id = $j")" "completed 1"

# --- pgapp.jobs_databases restricts where workers run jobs
q "ALTER SYSTEM SET pgapp.jobs_databases = 'elsewhere'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type IN ('pgapp jobs supervisor', 'pgapp jobs worker'))" 100
check "a database left out of pgapp.jobs_databases loses its supervisor and workers (logged)" \
    "$(grep -c 'database "postgres" is no longer in "pgapp.jobs_databases"' "$LOG" | awk '{print ($1 > 0)}')" 1
j4=$(q "SELECT pgapp.enqueue('steady', 'ok', '{\"excluded\": true}')")
sleep 1
check "there, an enqueued job waits (no supervisor is started for it)" \
    "$(q "SELECT state || ' ' || (SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('pgapp jobs supervisor', 'pgapp jobs worker')) FROM pgapp.job WHERE id = $j4")" "available 0"
q "ALTER SYSTEM RESET pgapp.jobs_databases" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.2
j5=$(q "SELECT pgapp.enqueue('steady', 'ok', '{\"included\": true}')")
wait_for "SELECT count(*) = 2 FROM pgapp.job WHERE id IN ($j4, $j5) AND state = 'completed'" 100
check "listed again, the next enqueue starts the supervisor and both jobs run" \
    "$(q "SELECT count(*) FROM pgapp.job WHERE id IN ($j4, $j5) AND state = 'completed'")" 2

# --- too few background worker slots: a WARNING with a hint; the jobs still run
pgctl -m fast stop
# housekeeper, pg_cron, the logical replication launcher, the pubsub worker, the supervisor, one queue worker
sed -i 's/^max_worker_processes = .*/max_worker_processes = 6/' "$DATA/postgresql.conf"
grep -q '^max_worker_processes = 6' "$DATA/postgresql.conf" || echo 'max_worker_processes = 6' >>"$DATA/postgresql.conf"
pgctl start
ready
q "SELECT pgapp.create_queue('wide', 3)" >/dev/null
q "CREATE FUNCTION nap(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT pg_sleep(0.3); SELECT '{}'::jsonb \$\$" >/dev/null
q "SELECT pgapp.enqueue_many('wide', 'nap', '[{}, {}, {}, {}, {}, {}]')" >/dev/null
wait_for "SELECT count(*) = 6 FROM pgapp.job WHERE queue = 'wide' AND state = 'completed'" 300
check "with too few worker processes every job still completes" \
    "$(q "SELECT count(*) FROM pgapp.job WHERE queue = 'wide' AND state = 'completed'")" 6
check "the missing worker processes are a WARNING naming max_worker_processes" \
    "$(grep -A1 'WARNING:  could not start a worker for queue "wide"' "$LOG" | grep -c 'max_worker_processes' | awk '{print ($1 > 0)}')" 1

finish

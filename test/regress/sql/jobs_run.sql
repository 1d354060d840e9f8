--
-- jobs_run: jobs run by pgapp's background workers.  Waiting is a bounded
-- poll of the job's state (at most 10 s, then an error), never a blind sleep.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/listener_helpers.sql
-- wait until the job is in one of the states (at most 10 s)
CREATE FUNCTION pg_temp.wait_job(jid bigint, states text[] DEFAULT '{completed,discarded,cancelled,retryable}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT state INTO st FROM pgapp.job WHERE id = jid;
        IF st = ANY (states) THEN RETURN st; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % still % after 10 s (waited for %)', jid, st, states;
END $$;
-- wait until a worker of the queue runs the job (at most 10 s)
CREATE FUNCTION pg_temp.wait_running(jid bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1000 LOOP
        IF EXISTS (SELECT FROM pgapp.workers WHERE job = jid) THEN RETURN true; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % did not start within 10 s', jid;
END $$;
\set ECHO all

CREATE TABLE public.job_log (job_id bigint, attempt integer, args jsonb, run_as name);
GRANT INSERT ON public.job_log TO PUBLIC;
-- a worker: logs its run, fails when asked, reports progress and waits when asked
CREATE FUNCTION public.log_job(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.job_log VALUES (job.id, job.attempt, args, current_user);
    IF (args ->> 'fail_until')::integer >= job.attempt THEN
        RAISE EXCEPTION 'attempt % fails as asked', job.attempt USING ERRCODE = 'P0001', DETAIL = 'on purpose';
    END IF;
    IF args ? 'progress' THEN
        PERFORM pgapp.job_progress((args ->> 'progress')::numeric, 'working');
    END IF;
    IF args ? 'wait' THEN
        PERFORM pg_sleep((args ->> 'wait')::float8);
    END IF;
    RETURN jsonb_build_object('attempt', job.attempt, 'queue', job.queue);
END $$;

SELECT pgapp.create_queue('run', 2);

-- a job runs at once; its effects and its completion commit together
SELECT pgapp.enqueue('run', 'log_job', '{"n": 1}') AS j1 \gset
SELECT pg_temp.wait_job(:j1);
SELECT state, attempt, result, attempted_by ~ '^pgapp worker \d+$' AS by_worker, completed_at IS NOT NULL AS done_at
  FROM pgapp.job WHERE id = :j1;
SELECT attempt, args, run_as FROM public.job_log WHERE job_id = :j1;

-- a failing job: its own writes roll back, the error is recorded, retried after the backoff
SELECT pgapp.enqueue('run', 'log_job', '{"fail_until": 1}', max_attempts => 3) AS j2 \gset
SELECT pg_temp.wait_job(:j2);
SELECT state, attempt, scheduled_at > now() + interval '15 s' AS backed_off,
       (errors -> 0) - 'at' AS error
  FROM pgapp.job WHERE id = :j2;
SELECT count(*) AS logged_rows FROM public.job_log WHERE job_id = :j2;
-- retry now: the second attempt succeeds
SELECT pgapp.retry_job(:j2);
SELECT pg_temp.wait_job(:j2, '{completed}');
SELECT state, attempt, result FROM pgapp.job WHERE id = :j2;
SELECT array_agg(attempt) AS logged_attempts FROM public.job_log WHERE job_id = :j2;

-- the last attempt's failure discards it
SELECT pgapp.enqueue('run', 'log_job', '{"fail_until": 9}', max_attempts => 1) AS j3 \gset
SELECT pg_temp.wait_job(:j3);
SELECT state, attempt, discarded_at IS NOT NULL AS discarded_at_set, errors -> 0 ->> 'message' AS message
  FROM pgapp.job WHERE id = :j3;

-- one failure in a batch does not undo the others
SELECT pgapp.pause_queue('run');
SELECT pgapp.enqueue_many('run', 'log_job', '[{"b": 1}, {"b": 2, "fail_until": 9}, {"b": 3}]', max_attempts => 1) AS batch \gset
SELECT pgapp.resume_queue('run');
SELECT pg_temp.wait_job(id) AS state, args FROM pgapp.job WHERE args ? 'b' ORDER BY id;
SELECT array_agg(args ->> 'b' ORDER BY args ->> 'b') AS logged FROM public.job_log WHERE args ? 'b';

-- a job runs as the role that enqueued it
CREATE ROLE jobs_runner;
SET ROLE jobs_runner;
SELECT pgapp.enqueue('run', 'log_job', '{"who": true}') AS j4 \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j4);
SELECT run_as FROM public.job_log WHERE job_id = :j4;

-- a job scheduled for later runs when due (the supervisor wakes for it)
SELECT pgapp.enqueue('run', 'log_job', '{"later": true}', scheduled_at => clock_timestamp() + interval '300 ms') AS j5 \gset
SELECT state FROM pgapp.job WHERE id = :j5;
SELECT pg_temp.wait_job(:j5);
SELECT attempted_at >= scheduled_at AS not_before_its_time FROM pgapp.job WHERE id = :j5;

-- progress: in pgapp.workers and queue_stats while it runs, broadcast on jobs:<id>
SELECT pgapp.pause_queue('run');
SELECT pgapp.enqueue('run', 'log_job', '{"progress": 40, "wait": 60}') AS j6 \gset
SELECT pg_temp.listen('jobs:' || :j6) IS NOT NULL AS listening;
SELECT pgapp.resume_queue('run');
SELECT pg_temp.wait_running(:j6);
SELECT pg_temp.wait_for('progress');
SELECT channel = 'jobs:' || :j6 AS on_its_topic, message ->> 'topic' = channel AS topic_ok,
       (message -> 'payload' ->> 'id')::bigint = :j6 AS its_id, (message #- '{payload,id}') - 'topic' AS message
  FROM pg_temp.received();
SELECT queue, state, progress, progress_message FROM pgapp.workers WHERE job = :j6;
SELECT busy >= 1 AS busy, (progress -> 0 ->> 'job')::bigint = :j6 AS its_job, (progress -> 0) - 'job' AS progress
  FROM pgapp.queue_stats WHERE queue = 'run';
-- cancelling a running job interrupts it; its effects roll back
SELECT pgapp.cancel_job(:j6);
SELECT pg_temp.wait_job(:j6, '{cancelled}');
SELECT pg_temp.wait_job(:j6, '{cancelled}') AS still;
SELECT count(*) AS logged_rows FROM public.job_log WHERE job_id = :j6;
-- the worker is free again at once
SELECT pgapp.enqueue('run', 'log_job', '{"after_cancel": true}') AS j7 \gset
SELECT pg_temp.wait_job(:j7);

-- a cancel made in a savepoint that was released holds, though a later
-- sibling savepoint rolls back (PL/pgSQL's BEGIN ... EXCEPTION blocks make
-- this pattern): the request is the parent's once the savepoint is released
SELECT pgapp.enqueue('run', 'log_job', '{"wait": 60, "savepoints": true}') AS j7b \gset
SELECT pg_temp.wait_running(:j7b);
BEGIN;
SAVEPOINT a;
SELECT pgapp.cancel_job(:j7b);
RELEASE a;
SAVEPOINT b;
SELECT 1/0;
ROLLBACK TO b;
COMMIT;
SELECT pg_temp.wait_job(:j7b, '{cancelled}');
-- the same with PL/pgSQL blocks: one that ends (released), then one whose
-- error is caught (rolled back)
SELECT pgapp.enqueue('run', 'log_job', '{"wait": 60, "plpgsql": true}') AS j7c \gset
SELECT pg_temp.wait_running(:j7c);
SELECT set_config('pgapp_test.job', :'j7c', false) IS NOT NULL AS noted;
DO $$
BEGIN
    BEGIN
        PERFORM pgapp.cancel_job(current_setting('pgapp_test.job')::bigint);
    EXCEPTION WHEN OTHERS THEN RAISE;
    END;
    BEGIN
        PERFORM 1/0;
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
END $$;
SELECT pg_temp.wait_job(:j7c, '{cancelled}');
-- an enqueue in a released savepoint keeps its wake-up: an idle worker
-- takes the job at once.  A lost wake-up would leave it to the next round
-- of the worker or the supervisor (each up to 1 s away): eight jobs all
-- taken within 500 ms of their commit would then be a chance of 1 in 256.
CREATE TEMPORARY TABLE wake_delay (job bigint, committed timestamptz);
DO $$
DECLARE jid bigint;
BEGIN
    FOR i IN 1..8 LOOP
        BEGIN
            jid := pgapp.enqueue('run', 'log_job', jsonb_build_object('wake', i));
        EXCEPTION WHEN OTHERS THEN RAISE;
        END;
        BEGIN
            PERFORM 1/0;
        EXCEPTION WHEN division_by_zero THEN NULL;
        END;
        COMMIT;
        INSERT INTO wake_delay VALUES (jid, clock_timestamp());
        FOR k IN 1..1000 LOOP
            EXIT WHEN (SELECT state FROM pgapp.job WHERE id = jid) = 'completed';
            PERFORM pg_sleep(0.01);
        END LOOP;
        COMMIT;
    END LOOP;
END $$;
SELECT count(*) AS jobs, count(*) FILTER (WHERE j.attempted_at - d.committed < interval '500 ms') AS taken_at_once
  FROM wake_delay AS d JOIN pgapp.job AS j ON j.id = d.job;

-- a worker function's statement_timeout limits its job
CREATE FUNCTION public.slow_job(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE plpgsql SET statement_timeout = '100ms' AS $$ BEGIN PERFORM pg_sleep(30); RETURN '{}'; END $$;
SELECT pgapp.enqueue('run', 'slow_job', '{}', max_attempts => 1) AS j8 \gset
SELECT pg_temp.wait_job(:j8);
SELECT errors -> 0 ->> 'sqlstate' AS sqlstate, errors -> 0 ->> 'message' AS message FROM pgapp.job WHERE id = :j8;

-- job_progress outside a job
SELECT * FROM pg_temp.show($$SELECT pgapp.job_progress(10)$$);

-- a paused queue runs nothing, while another queue runs
SELECT pgapp.create_queue('other', 1);
SELECT pgapp.pause_queue('run');
SELECT pgapp.enqueue('run', 'log_job', '{"paused": true}') AS j9 \gset
SELECT pgapp.enqueue('other', 'log_job', '{"meanwhile": true}') AS j10 \gset
SELECT pg_temp.wait_job(:j10);
SELECT state FROM pgapp.job WHERE id = :j9;
SELECT pgapp.resume_queue('run');
SELECT pg_temp.wait_job(:j9);

-- a rate-limited queue: its workers start no more than the limit allows
SELECT pgapp.limit_queue('other', 1, '1 hour');
SELECT pgapp.enqueue('other', 'log_job', '{"limited": 1}') AS l1 \gset
SELECT pgapp.enqueue('other', 'log_job', '{"limited": 2}') AS l2 \gset
SELECT pg_temp.wait_job(:l1);
SELECT pgapp.enqueue('run', 'log_job', '{"marker": true}') AS marker \gset
SELECT pg_temp.wait_job(:marker);
SELECT state FROM pgapp.job WHERE id = :l2;
-- lifted, the waiting job runs (the supervisor wakes the queue's idle worker)
SELECT pgapp.limit_queue('other', NULL, NULL);
SELECT pg_temp.wait_job(:l2);

-- lowering the concurrency makes the extra workers leave (no restart needed)
SELECT pgapp.enqueue_many('run', 'log_job', '[{"wait": 0.5}, {"wait": 0.5}]') AS pair \gset
CREATE FUNCTION pg_temp.wait_workers(q text, cmp text, n integer) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE c integer;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT count(*) INTO c FROM pgapp.workers WHERE queue = q;
        IF (cmp = '>=' AND c >= n) OR (cmp = '<=' AND c <= n) THEN RETURN true; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'queue % has % workers after 10 s, wanted % %', q, c, cmp, n;
END $$;
SELECT pg_temp.wait_workers('run', '>=', 2) AS two_workers;
UPDATE pgapp.queue SET concurrency = 1 WHERE name = 'run';
SELECT pg_temp.wait_workers('run', '<=', 1) AS one_worker_left;

-- a job that kills its worker: rescued with the attempt counted, then discarded
-- after its last attempt; the supervisor restarts the queue's worker with
-- backoff, and the other queue is not disturbed
SELECT pgapp.create_queue('crashy', 1);
CREATE FUNCTION public.crash_job(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
    PERFORM pg_sleep(10);
    RETURN '{}';
END $$;
SELECT pgapp.enqueue('crashy', 'crash_job', '{}', max_attempts => 2) AS j11 \gset
SELECT pgapp.enqueue('other', 'log_job', '{"while_crashing": true}') AS j12 \gset
SELECT pg_temp.wait_job(:j12);
SELECT pg_temp.wait_job(:j11, '{discarded}');
SELECT state, attempt, jsonb_array_length(errors) AS errors, errors -> 0 ->> 'sqlstate' AS sqlstate,
       errors -> 1 ->> 'message' AS message
  FROM pgapp.job WHERE id = :j11;
-- the crashing queue works again with a job that does not crash
SELECT pgapp.enqueue('crashy', 'log_job', '{"after_crashes": true}') AS j13 \gset
SELECT pg_temp.wait_job(:j13);

-- past discard_after, a worker's claim discards the job instead of running it
-- (the workers' claim statement, jobs_worker.c; fetch_jobs's is tested in jobs.sql)
SELECT pgapp.enqueue('run', 'log_job', '{"stale": true}', discard_after => '1 microsecond') AS j14 \gset
SELECT pg_temp.wait_job(:j14, '{discarded}');
SELECT state, attempt, discarded_at IS NOT NULL AS discarded_at_set,
       (SELECT count(*) FROM public.job_log WHERE job_id = :j14) AS runs
  FROM pgapp.job WHERE id = :j14;

-- slow jobs are claimed a few at a time: a claim holds about one commit
-- interval (200 ms) of work at the queue's pace, here 150 ms a job, so after
-- the first claim (one job) every claim takes one; by doubling alone the
-- claims would have been 1, 2 and 3 jobs
SELECT pgapp.create_queue('paced', 1);
SELECT cardinality(pgapp.enqueue_many('paced', 'log_job', '[{"wait": 0.15}, {"wait": 0.15}, {"wait": 0.15},
                                                            {"wait": 0.15}, {"wait": 0.15}, {"wait": 0.15}]')) AS paced;
SELECT pg_temp.wait_job(max(id)) FROM pgapp.job WHERE queue = 'paced';
SELECT count(*) AS claims, max(n) AS largest_claim, sum(n) AS jobs
  FROM (SELECT count(*) AS n FROM pgapp.job WHERE queue = 'paced' AND state = 'completed'
         GROUP BY attempted_by, attempted_at) AS c;

-- a worker started for a backlog takes its share of it once its first job
-- showed the pace: 30 quick jobs due when the queue resumes, one worker, so
-- claims of 1 and then the 29 left (by doubling alone: 1, 2, 4, 8 and 15).
-- The share is bounded by one commit interval of work at that pace, and a
-- new process's first job is slow (its caches are cold), on a loaded machine
-- more than 200 ms / 29: a commit interval of 10 s for this part.  A new
-- connection shows what the postmaster has loaded, so what a worker it starts
-- next gets.
CREATE FUNCTION pg_temp.wait_setting(name text, value text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT t.v INTO v FROM dblink(format('host=%s port=%s dbname=%s',
                                             split_part(current_setting('unix_socket_directories'), ',', 1),
                                             current_setting('port'), current_database()),
                                      format('SHOW %I', name)) AS t(v text);
        IF v = value THEN RETURN v; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION '% is still % after 10 s (waited for %)', name, v, value;
END $$;
ALTER SYSTEM SET pgapp.jobs_commit_interval = '10s';
SELECT pg_reload_conf();
SELECT pg_temp.wait_setting('pgapp.jobs_commit_interval', '10s');
SELECT pgapp.create_queue('backlog', 1, paused => true);
SELECT cardinality(pgapp.enqueue_many('backlog', 'log_job',
                                      (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 30)))) AS backlog;
SELECT pgapp.resume_queue('backlog');
SELECT pg_temp.wait_job(max(id)) FROM pgapp.job WHERE queue = 'backlog';
SELECT array_agg(n ORDER BY at) AS claims
  FROM (SELECT attempted_at AS at, count(*) AS n FROM pgapp.job WHERE queue = 'backlog' AND state = 'completed'
         GROUP BY attempted_by, attempted_at) AS c;
ALTER SYSTEM RESET pgapp.jobs_commit_interval;
SELECT pg_reload_conf();
SELECT pg_temp.wait_setting('pgapp.jobs_commit_interval', '200ms');

-- what a job sets ends with it: a later job of the same worker (here the
-- third, in the same transaction as the second) sees the database's settings
CREATE FUNCTION public.guc_setter(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.job_local', 'set by a job', true);
    SET work_mem = '77MB';
    RETURN jsonb_build_object('local', current_setting('app.job_local', true), 'work_mem', current_setting('work_mem'));
END $$;
CREATE FUNCTION public.guc_reader(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('local', coalesce(current_setting('app.job_local', true), ''),
                              'work_mem', current_setting('work_mem'),
                              'same_worker', (SELECT count(DISTINCT attempted_by) = 1 FROM pgapp.job
                                               WHERE queue = 'guc' AND state <> 'available'))
$$;
GRANT EXECUTE ON FUNCTION public.guc_setter(jsonb, pgapp.job_info), public.guc_reader(jsonb, pgapp.job_info) TO PUBLIC;
SELECT pgapp.create_queue('guc', 1, paused => true);
SELECT pgapp.enqueue('guc', 'guc_setter') AS g1 \gset
SELECT pgapp.enqueue('guc', 'guc_setter') AS g2 \gset
SELECT pgapp.enqueue('guc', 'guc_reader') AS g3 \gset
SELECT pgapp.resume_queue('guc');
SELECT pg_temp.wait_job(:g3);
SELECT id - :g1 + 1 AS job, worker, state, result FROM pgapp.job WHERE queue = 'guc' ORDER BY id;
-- nor does a session-level advisory lock a job took stay with the worker
CREATE FUNCTION public.lock_taker(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('locked', pg_try_advisory_lock(4242))
$$;
GRANT EXECUTE ON FUNCTION public.lock_taker(jsonb, pgapp.job_info) TO PUBLIC;
SELECT pgapp.enqueue('guc', 'lock_taker') AS g4 \gset
SELECT pg_temp.wait_job(:g4);
SELECT result FROM pgapp.job WHERE id = :g4;
SELECT pid IS NOT NULL AS worker_alive FROM pgapp.workers WHERE queue = 'guc';
SELECT pg_try_advisory_lock(4242) AS free_after_the_job, pg_advisory_unlock(4242) AS unlocked;

SELECT attempt, sqlstate, message FROM pgapp.job_errors WHERE queue = 'run' ORDER BY job_id, attempt;
SELECT pgapp.drop_queue('run', force => true), pgapp.drop_queue('other', force => true),
       pgapp.drop_queue('crashy', force => true), pgapp.drop_queue('paced', force => true),
       pgapp.drop_queue('backlog', force => true), pgapp.drop_queue('guc', force => true);
DROP ROLE jobs_runner;
SELECT dblink_disconnect('listener');

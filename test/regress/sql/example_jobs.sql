--
-- example_jobs: examples/jobs.sql, its jobs run by pgapp's background
-- workers.  Waiting is a bounded poll (at most 10 s, then an error), never a
-- blind sleep.  The import is held between its batches by a second
-- connection (dblink) that locks the first row of the next batch, so that
-- its progress can be watched one batch at a time.  No id is printed: the
-- ids depend on the tests run before this one.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- (quiet: CREATE ... IF NOT EXISTS says what it skips)
SET client_min_messages = warning;
\i examples/jobs.sql
-- loading it again changes nothing
\i examples/jobs.sql
RESET client_min_messages;
\i test/helpers/listener_helpers.sql
-- wait until the job is in one of the states, at its attempt or later (at most 10 s)
CREATE FUNCTION pg_temp.wait_job(jid bigint, states text[] DEFAULT '{completed,discarded,cancelled,retryable}',
                                 min_attempt integer DEFAULT 0)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; att integer;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT state, attempt INTO st, att FROM pgapp.job WHERE id = jid;
        IF st = ANY (states) AND att >= min_attempt THEN RETURN st; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % still % (attempt %) after 10 s (waited for % at attempt %)', jid, st, att, states, min_attempt;
END $$;
-- wait until pgapp.workers shows this progress message for the job (at most 10 s)
CREATE FUNCTION pg_temp.wait_progress(jid bigint, msg text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE seen text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT progress_message INTO seen FROM pgapp.workers WHERE job = jid;
        IF seen = msg THEN RETURN seen; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % shows progress "%" after 10 s, not "%"', jid, seen, msg;
END $$;
-- wait until the listener got this event on this channel (with this
-- payload message, if given); other messages may arrive meanwhile
CREATE FUNCTION pg_temp.wait_message(chan text, event_name text, msg text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1000 LOOP
        INSERT INTO got (channel, message) SELECT notify_name, extra::jsonb FROM dblink_get_notify('listener');
        IF EXISTS (SELECT FROM got AS g WHERE g.channel = chan AND g.message ->> 'event' = event_name
                                            AND (msg IS NULL OR g.message -> 'payload' ->> 'message' = msg)) THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'no "%" message on % within 10 s', event_name, chan;
END $$;
-- a second connection holds a lock on the staged row at offset nth of an
-- import (in id order), until released
CREATE FUNCTION pg_temp.hold_row(conn text, imp bigint, nth integer) RETURNS bigint LANGUAGE sql AS $$
    SELECT dblink_connect(conn, format('host=%s port=%s dbname=%s',
               split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
               current_database())) IS NULL;
    SELECT dblink_exec(conn, 'BEGIN') IS NULL;
    -- (only that row: FOR UPDATE would also lock the rows OFFSET skips)
    SELECT n FROM dblink(conn, format('SELECT count(*) FROM (SELECT FROM jobs.import_row WHERE id =
                                       (SELECT id FROM jobs.import_row WHERE import_id = %s ORDER BY id OFFSET %s LIMIT 1)
                                       FOR UPDATE) AS x', imp, nth)) AS t(n bigint)
$$;
CREATE FUNCTION pg_temp.release(conn text) RETURNS text LANGUAGE sql AS $$
    SELECT dblink_exec(conn, 'COMMIT');
    SELECT dblink_disconnect(conn)
$$;
-- what pg_cron runs for a schedule (kept in schedule below), run now: the job id
CREATE FUNCTION pg_temp.run_schedule(name text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE jid bigint;
BEGIN
    EXECUTE (SELECT command FROM schedule WHERE jobname = name) INTO jid;
    RETURN jid;
END $$;
\set ECHO all

-- the queues (created when missing: loading the file twice made them once)
SELECT name, concurrency, paused FROM pgapp.queue
 WHERE name IN ('default', 'emails', 'reports', 'imports') ORDER BY concurrency DESC;
SELECT name, subject FROM jobs.email_template ORDER BY name;
SELECT email, name FROM jobs.contact ORDER BY email;
-- the schedules: cleanup daily at 02:00, the analytics report on Mondays
SELECT jobname, schedule, command FROM cron.job WHERE jobname LIKE 'jobs-%' ORDER BY jobname;
-- kept here and unscheduled, so that pg_cron enqueues nothing while this
-- test runs; their commands are run by hand at the end
CREATE TEMP TABLE schedule AS SELECT jobname, command FROM cron.job WHERE jobname LIKE 'jobs-%';
SELECT pgapp.unschedule('jobs-cleanup') AS unscheduled, pgapp.unschedule('jobs-weekly-analytics') AS unscheduled;

---------------------------------------------------------------------------
-- Emails
---------------------------------------------------------------------------

-- POST /rpc/send_email as app_user, twice within the minute for one
-- recipient and template: one job (the second call returns its id)
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.jwt.claims', '{"role": "app_user", "sub": "ada@example.com"}', true) IS NOT NULL AS claims_set;
SELECT api.send_email('ada@example.com', 'welcome', '{"name": "Ada"}') AS welcome_job \gset
SELECT api.send_email(recipient => 'ADA@example.com', template => 'welcome', vars => '{"name": "Ada L."}')
       = :welcome_job AS same_job;
SELECT api.send_email('ada@example.com', 'password_reset', '{"link": "https://example.com/reset/abc"}') AS reset_job \gset
SELECT :reset_job <> :welcome_job AS other_template_other_job;
-- bad input fails at once, no job is made
SELECT * FROM pg_temp.show($$SELECT api.send_email('ada at example.com', 'welcome', '{"name": "Ada"}')$$);
SELECT * FROM pg_temp.show($$SELECT api.send_email('ada@example.com', 'newsletter')$$);
SELECT * FROM pg_temp.show($$SELECT api.send_email('ada@example.com', 'welcome')$$);
COMMIT;
SELECT pg_temp.wait_job(:welcome_job) AS welcome, pg_temp.wait_job(:reset_job) AS reset;
-- 3 attempts, given up after 24 hours; the job's result names its outbox row
SELECT queue, worker, args, state, attempt, max_attempts, discard_after, result - 'outbox_id' AS result
  FROM pgapp.job WHERE id = :welcome_job;
SELECT o.recipient, o.template, o.subject, o.body, (j.result ->> 'outbox_id')::bigint = o.id AS in_result
  FROM jobs.outbox AS o JOIN pgapp.job AS j ON j.id = o.job_id
 WHERE o.job_id IN (:welcome_job, :reset_job) ORDER BY o.template DESC;
-- anon may not send email
BEGIN;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set;
SELECT * FROM pg_temp.show($$SELECT api.send_email('ada@example.com', 'welcome', '{"name": "Ada"}')$$);
COMMIT;

-- a failing email: its outbox row rolls back, retried after the backoff
-- (retry_job here, not to wait), then discarded after its third attempt
SELECT jobs.enqueue_email('{"recipient": "grace@example.com", "template": "welcome",
                            "vars": {"name": "Grace"}, "simulate_failure": true}') AS failing \gset
SELECT pg_temp.wait_job(:failing, '{retryable}', 1);
SELECT state, attempt, max_attempts, scheduled_at > now() + interval '15 s' AS backed_off,
       errors -> 0 ->> 'message' AS error
  FROM pgapp.job WHERE id = :failing;
SELECT pgapp.retry_job(:failing);
SELECT pg_temp.wait_job(:failing, '{retryable,discarded}', 2);
SELECT pgapp.retry_job(:failing);
SELECT pg_temp.wait_job(:failing, '{discarded}', 3);
SELECT state, attempt, discarded_at IS NOT NULL AS discarded_at_set FROM pgapp.job WHERE id = :failing;
SELECT attempt, sqlstate, message, detail FROM pgapp.job_errors WHERE job_id = :failing ORDER BY attempt;
SELECT count(*) AS outbox_rows FROM jobs.outbox WHERE job_id = :failing;

-- discard_after: a job enqueued almost 24 hours ago is not retried after
-- its first failure, attempts left or not (the retry would come too late)
SELECT pgapp.pause_queue('emails');
SELECT jobs.enqueue_email('{"recipient": "edsger@example.com", "template": "welcome",
                            "vars": {"name": "Edsger"}, "simulate_failure": true}') AS late \gset
UPDATE pgapp.job SET inserted_at = now() - interval '23 hours 59 minutes 50 seconds' WHERE id = :late;
SELECT pgapp.resume_queue('emails');
SELECT pg_temp.wait_job(:late, '{discarded}');
SELECT state, attempt, max_attempts, jsonb_array_length(errors) AS errors FROM pgapp.job WHERE id = :late;

---------------------------------------------------------------------------
-- Reports
---------------------------------------------------------------------------

-- Ada subscribes to her topic, then asks for the contacts report
SELECT pg_temp.listen('user:ada@example.com') AS channel;
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.jwt.claims', '{"role": "app_user", "sub": "ada@example.com"}', true) IS NOT NULL AS claims_set;
SELECT (r ->> 'job_id')::bigint AS report_job, r ->> 'topic' AS report_topic FROM api.request_report('contacts') AS r \gset
SELECT :'report_topic' AS topic;
SELECT * FROM pg_temp.show($$SELECT api.request_report('sales')$$);
COMMIT;
SELECT pg_temp.wait_job(:report_job);
SELECT pg_temp.wait_message('user:ada@example.com', 'report_ready');
SELECT channel, message - 'id' - 'at' #- '{payload,report_id}' #- '{payload,job_id}' AS message,
       (message -> 'payload' ->> 'job_id')::bigint = :report_job AS this_job
  FROM got WHERE channel = 'user:ada@example.com';
SELECT (message -> 'payload' ->> 'report_id')::bigint AS report_id FROM got WHERE channel = 'user:ada@example.com' \gset
DELETE FROM got;
SELECT requested_by, kind, params, row_count, job_id = :report_job AS this_job FROM jobs.report WHERE id = :report_id;
-- GET /rpc/get_report?id=... as Ada: the CSV (quoted where it needs to be)
BEGIN READ ONLY;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set,
       set_config('request.jwt.claims', '{"role": "app_user", "sub": "ada@example.com"}', true) IS NOT NULL AS claims_set;
SELECT r ->> 'kind' AS kind, r -> 'row_count' AS row_count, r -> 'params' AS params FROM api.get_report(:report_id) AS r;
SELECT l.n, l.line
  FROM api.get_report(:report_id) AS r,
       regexp_split_to_table(rtrim(r ->> 'csv', E'\n'), E'\n') WITH ORDINALITY AS l(line, n)
 ORDER BY l.n;
COMMIT;
-- as Grace: not found (404, PostgREST's body)
BEGIN READ ONLY;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set,
       set_config('request.jwt.claims', '{"role": "app_user", "sub": "grace@example.com"}', true) IS NOT NULL AS claims_set;
SELECT api.get_report(:report_id) AS body, current_setting('response.status', true) AS status;
COMMIT;

---------------------------------------------------------------------------
-- Imports
---------------------------------------------------------------------------

-- 1,200 staged rows: 12 invalid addresses, Ada again (in other case, with
-- spaces) and one address twice
INSERT INTO jobs.import (source) VALUES ('contacts.csv') RETURNING id AS imp \gset
INSERT INTO jobs.import_row (import_id, email, name)
SELECT :imp,
       CASE WHEN g % 100 = 0 THEN format('person%s at example.org', g)
            WHEN g = 7 THEN ' ADA@example.com '
            WHEN g = 1101 THEN 'Person50@Example.org'
            ELSE format('person%s@example.org', g) END,
       CASE WHEN g = 7 THEN 'King, Ada' ELSE format('Person %s', g) END
  FROM generate_series(1, 1200) AS g ORDER BY g;
-- the first rows of batches 2 and 3 are held by other connections
SELECT pg_temp.hold_row('batch2', :imp, 500) AS held, pg_temp.hold_row('batch3', :imp, 1000) AS held;
-- the queue is paused while the listener subscribes to the job's topic
SELECT pgapp.pause_queue('imports');
SELECT jobs.start_import(:imp) AS import_job \gset
SELECT jobs.start_import(:imp) = :import_job AS one_job_per_import;
SELECT pg_temp.listen('jobs:' || :import_job) = 'jobs:' || :import_job AS listening;
SELECT pgapp.resume_queue('imports');
-- batch 1 done: 500 of 1200 rows, in pgapp.workers and on jobs:<id>
SELECT pg_temp.wait_progress(:import_job, '500 of 1200 rows');
SELECT queue, state, progress, progress_message FROM pgapp.workers WHERE job = :import_job;
SELECT pg_temp.wait_message('jobs:' || :import_job, 'progress', '500 of 1200 rows');
SELECT message ->> 'event' AS event, (message -> 'payload') - 'id' AS payload,
       (message -> 'payload' ->> 'id')::bigint = :import_job AS this_job
  FROM got WHERE channel = 'jobs:' || :import_job ORDER BY n;
DELETE FROM got;
SELECT source, job_state, staged_rows, progress, progress_message, total_rows, finished_at
  FROM jobs.imports WHERE id = :imp;
-- nothing of it is committed yet
SELECT count(*) AS imported_so_far FROM jobs.contact WHERE import_id = :imp;
-- batch 2
SELECT pg_temp.release('batch2');
SELECT pg_temp.wait_progress(:import_job, '1000 of 1200 rows');
SELECT pg_temp.wait_message('jobs:' || :import_job, 'progress', '1000 of 1200 rows');
SELECT message ->> 'event' AS event, (message -> 'payload') - 'id' AS payload
  FROM got WHERE channel = 'jobs:' || :import_job ORDER BY n;
DELETE FROM got;
-- batch 3, and the import commits
SELECT pg_temp.release('batch3');
SELECT pg_temp.wait_job(:import_job);
SELECT state, attempt, result - 'import_id' AS result, (result ->> 'import_id')::bigint = :imp AS this_import
  FROM pgapp.job WHERE id = :import_job;
SELECT source, job_state, staged_rows, total_rows, inserted, updated, invalid, finished_at IS NOT NULL AS finished
  FROM jobs.imports WHERE id = :imp;
SELECT outcome, count(*) FROM jobs.import_row WHERE import_id = :imp GROUP BY outcome ORDER BY outcome;
SELECT email, name, import_id = :imp AS by_import FROM jobs.contact
 WHERE email IN ('ada@example.com', 'person50@example.org', 'person1200@example.org') ORDER BY email;
SELECT count(*) AS contacts FROM jobs.contact;
-- started again, the job (kept until pruned) is the same
SELECT jobs.start_import(:imp) = :import_job AS same_job;

-- a running import cancelled: interrupted while it waits for batch 2, and
-- nothing of it stays
INSERT INTO jobs.import (source) VALUES ('more.csv') RETURNING id AS imp2 \gset
INSERT INTO jobs.import_row (import_id, email, name)
SELECT :imp2, format('late%s@example.net', g), format('Late %s', g) FROM generate_series(1, 1000) AS g ORDER BY g;
SELECT pg_temp.hold_row('batch2', :imp2, 500) AS held;
SELECT jobs.start_import(:imp2) AS cancelled_job \gset
SELECT pg_temp.wait_progress(:cancelled_job, '500 of 1000 rows');
SELECT jobs.cancel_import(:imp2) AS cancelled;
SELECT pg_temp.wait_job(:cancelled_job, '{cancelled}');
SELECT pg_temp.release('batch2');
SELECT state, attempt, result, errors FROM pgapp.job WHERE id = :cancelled_job;
SELECT source, job_state, staged_rows, total_rows, inserted, finished_at FROM jobs.imports WHERE id = :imp2;
SELECT count(*) AS imported, (SELECT count(*) FROM jobs.import_row WHERE import_id = :imp2 AND outcome IS NULL) AS still_staged
  FROM jobs.contact WHERE import_id = :imp2;
SELECT jobs.cancel_import(:imp2) AS cancel_again;
-- started again: a new job, which imports it all
SELECT jobs.start_import(:imp2) AS restarted_job \gset
SELECT :restarted_job <> :cancelled_job AS new_job;
SELECT pg_temp.wait_job(:restarted_job);
SELECT state, result - 'import_id' AS result FROM pgapp.job WHERE id = :restarted_job;
SELECT source, job_state, total_rows, inserted, updated, invalid FROM jobs.imports WHERE id = :imp2;
-- a finished import cannot be cancelled
SELECT jobs.cancel_import(:imp2) AS cancel_finished;

---------------------------------------------------------------------------
-- The schedules, run now as pg_cron would run them
---------------------------------------------------------------------------

-- Monday's analytics report: asked by nobody, announced on "reports"
SELECT pg_temp.listen('reports') AS channel;
-- (fired twice within a minute, it enqueues once: one transaction, one minute)
BEGIN;
SELECT pg_temp.run_schedule('jobs-weekly-analytics') AS analytics_job \gset
SELECT pg_temp.run_schedule('jobs-weekly-analytics') = :analytics_job AS once_a_minute;
COMMIT;
SELECT pg_temp.wait_job(:analytics_job);
SELECT pg_temp.wait_message('reports', 'report_ready');
SELECT channel, message - 'id' - 'at' #- '{payload,report_id}' #- '{payload,job_id}' AS message
  FROM got WHERE channel = 'reports';
DELETE FROM got;
SELECT requested_by, kind, params, row_count FROM jobs.report WHERE job_id = :analytics_job;
SELECT l.n, l.line
  FROM jobs.report AS r,
       regexp_split_to_table(rtrim(r.csv, E'\n'), E'\n') WITH ORDINALITY AS l(line, n)
 WHERE r.job_id = :analytics_job ORDER BY l.n;

-- the nightly cleanup: what is older than 30 days goes
UPDATE jobs.outbox SET created_at = now() - interval '31 days' WHERE job_id = :reset_job;
UPDATE jobs.report SET created_at = now() - interval '31 days' WHERE id = :report_id;
UPDATE jobs.import SET finished_at = now() - interval '31 days' WHERE id = :imp;
SELECT pg_temp.run_schedule('jobs-cleanup') AS cleanup_job \gset
SELECT pg_temp.wait_job(:cleanup_job);
SELECT queue, state, result FROM pgapp.job WHERE id = :cleanup_job;
SELECT (SELECT count(*) FROM jobs.outbox) AS outbox, (SELECT count(*) FROM jobs.report) AS reports,
       (SELECT count(*) FROM jobs.import) AS imports, (SELECT count(*) FROM jobs.import_row) AS staged_rows,
       (SELECT count(*) FROM jobs.contact) AS contacts;

-- everything these queues did
SELECT queue, concurrency, available, executing, retryable, completed, discarded, cancelled
  FROM pgapp.queue_stats WHERE queue IN ('default', 'emails', 'reports', 'imports') ORDER BY concurrency DESC;

SELECT dblink_disconnect('listener');

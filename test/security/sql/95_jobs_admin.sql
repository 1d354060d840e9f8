--
-- security/95_jobs_admin: the jobs admin page's channels (examples/jobs.sql,
-- docs/web.md#jobs-admin).  Only members of pgapp_admin act (retry, cancel,
-- pause, resume, start an import); app_user watches a view without args or
-- error texts; no one acts by calling the functions directly; the role a
-- token names (jobs_admin) carries none of pgapp_admin's privileges, and the
-- step-up to pgapp_admin does not outlive the function that takes it;
-- hostile payloads get error replies, never a crash.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
SET client_min_messages = warning;
\i examples/jobs.sql
RESET client_min_messages;
\set ECHO all

-- a failed job of the loader's (a superuser's), and a job due tomorrow
SELECT pgapp.enqueue('emails', 'jobs.email_worker',
                     '{"recipient": "ada@example.com", "template": "sec-missing", "vars": {"secret": "s3cr3t"}}',
                     max_attempts => 1) AS failed \gset
SELECT pgapp.enqueue('reports', 'jobs.report_worker', '{"kind": "contacts"}',
                     scheduled_at => now() + interval '1 day') AS waiting \gset
CREATE FUNCTION pg_temp.wait_state(jid bigint, st text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE now_st text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT state INTO now_st FROM pgapp.job WHERE id = jid;
        IF now_st = st THEN RETURN now_st; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN now_st;
END $$;
SELECT pg_temp.wait_state(:failed, 'discarded');
SELECT count(*) AS imports FROM jobs.import;

-- A. A role with only PUBLIC's rights: no join, no push, no function
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT jobs.admin_join('jobs_admin', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT jobs.admin_handle_in('jobs_admin', 'pause', '{"queue": "emails"}') $$);
SELECT * FROM pg_temp.show($$ SELECT jobs._admin_overview() $$);
SELECT * FROM pg_temp.show($$ SELECT jobs._admin_start_import(10) $$);
RESET ROLE;

-- B. app_user (the page's viewer): the view, without args or error texts ...
SET ROLE app_user;
SELECT r -> 'ok' ->> 'admin' AS admin, r -> 'ok' -> 'details' AS details,
       (SELECT count(*) FROM jsonb_array_elements(r -> 'ok' -> 'jobs') AS j WHERE j ? 'args' OR j ? 'last_error') AS leaked,
       (SELECT j -> 'errors' FROM jsonb_array_elements(r -> 'ok' -> 'jobs') AS j WHERE (j ->> 'id')::bigint = :failed) AS errors
  FROM jobs.admin_join('jobs_admin', '{}') AS r;
-- ... every action refused with a reply ...
SELECT jobs.admin_handle_in('jobs_admin', 'pause', '{"queue": "emails"}');
SELECT jobs.admin_handle_in('jobs_admin', 'resume', '{"queue": "emails"}');
SELECT jobs.admin_handle_in('jobs_admin', 'retry', jsonb_build_object('id', :failed));
SELECT jobs.admin_handle_in('jobs_admin', 'cancel', jsonb_build_object('id', :waiting));
SELECT jobs.admin_handle_in('jobs_admin', 'start_import', '{"rows": 10}');
SELECT jobs.job_channel_join('jobs:' || :waiting, '{}');
SELECT jobs.job_channel_handle_in('jobs:' || :waiting, 'state', '{}');
-- ... and so is every direct call
SELECT * FROM pg_temp.show($$ SELECT pgapp.pause_queue('emails') $$);
SELECT * FROM pg_temp.show($$ SELECT jobs._admin_start_import(10) $$);
SELECT * FROM pg_temp.show(format($$ SELECT jobs._admin_job_details('{%s}') $$, :failed));
SELECT regexp_replace(s, 'job \d+', 'job N') AS show FROM pg_temp.show(format($$ SELECT pgapp.retry_job(%s) $$, :failed)) AS s;
SELECT regexp_replace(s, 'job \d+', 'job N') AS show FROM pg_temp.show(format($$ SELECT pgapp.cancel_job(%s) $$, :waiting)) AS s;
SELECT * FROM pg_temp.show($$ SELECT count(*) FROM pgapp.job $$);
SELECT * FROM pg_temp.show($$ SELECT jobs._admin_jobs_changed() $$);
RESET ROLE;
-- nothing changed
SELECT paused FROM pgapp.queue WHERE name = 'emails';
SELECT state, attempt FROM pgapp.job WHERE id = :failed;
SELECT state FROM pgapp.job WHERE id = :waiting;
SELECT count(*) AS imports FROM jobs.import;

-- C. jobs_admin, the role an admin's token names: a token may name it (no
--    pgapp_admin privileges of its own: NOINHERIT) ...
SELECT rolinherit FROM pg_roles WHERE rolname = 'jobs_admin';
SELECT pg_has_role('jobs_admin', 'pgapp_admin', 'MEMBER') AS member,
       pg_has_role('jobs_admin', 'pgapp_admin', 'USAGE') AS has_its_privileges;
SET ROLE jobs_admin;
SELECT * FROM pg_temp.show($$ SELECT pgapp.pause_queue('emails') $$);
SELECT * FROM pg_temp.show($$ SELECT count(*) FROM pgapp.job $$);
SELECT * FROM pg_temp.show($$ SELECT jobs._admin_start_import(10) $$);
-- ... it acts through the channel's functions, whose step-up ends with them
-- (in the same transaction and statement, after a success or an error)
BEGIN;
SELECT jobs.admin_handle_in('jobs_admin', 'pause', '{"queue": "emails"}'), current_user;
SELECT current_user, current_setting('role') AS role;
SELECT * FROM pg_temp.show($$ SELECT count(*) FROM pgapp.job $$);
SELECT jobs.admin_handle_in('jobs_admin', 'retry', '{"id": 999999999}'), current_user;
SELECT (jobs.admin_view() ->> 'admin') AS admin, current_user;
SELECT jobs.job_channel_join('jobs:999999999', '{}'), current_user;
SELECT * FROM pg_temp.show($$ SELECT count(*) FROM pgapp.job $$);
COMMIT;
SELECT jobs.admin_handle_in('jobs_admin', 'resume', '{"queue": "emails"}');
SELECT r -> 'ok' ->> 'admin' AS admin,
       r -> 'ok' -> 'details' -> (:failed)::text -> 'last_error' ->> 'message' AS last_error
  FROM jobs.admin_join('jobs_admin', '{}') AS r;
SELECT current_user;
-- hostile payloads: error replies
SELECT jobs.admin_handle_in('jobs_admin', 'retry', '{"id": "1; DROP TABLE jobs.contact"}');
SELECT jobs.admin_handle_in('jobs_admin', 'retry', '{"id": -1}');
SELECT jobs.admin_handle_in('jobs_admin', 'retry', '{"id": 1.5}');
SELECT jobs.admin_handle_in('jobs_admin', 'retry', '{"id": 99999999999999999999}');
SELECT jobs.admin_handle_in('jobs_admin', 'retry', '{"id": {"id": 1}}');
SELECT jobs.admin_handle_in('jobs_admin', 'cancel', '{"id": 999999999}');
SELECT jobs.admin_handle_in('jobs_admin', 'pause', '{"queue": "emails''); DROP TABLE jobs.contact; --"}');
SELECT jobs.admin_handle_in('jobs_admin', 'pause', '{"queue": ["emails"]}');
SELECT jobs.admin_handle_in('jobs_admin', 'pause', '[]');
SELECT jobs.admin_handle_in('jobs_admin', 'start_import', '{"rows": 1000000000}');
SELECT jobs.admin_handle_in('jobs_admin', 'start_import', '{"rows": "many"}');
SELECT jobs.admin_handle_in('jobs_admin', 'start_import', '{"rows": 10, "batch_size": 0}');
SELECT jobs.admin_handle_in('jobs_admin', 'start_import', '{"rows": 10, "pause_ms": 600000}');
SELECT jobs.admin_handle_in('jobs_admin', 'refresh', '{"state": "x'' OR true"}');
SELECT length(jobs.admin_handle_in('jobs_admin', repeat('x', 100000), '{}') ->> 'error') < 300 AS short_reply;
SELECT jobs.job_channel_join('jobs:abc', '{}');
SELECT jobs.job_channel_join('jobs:1;SELECT 1', '{}');
SELECT jobs.job_channel_join('jobs:99999999999999999999', '{}');
SELECT jobs.job_channel_join('jobs:999999999', '{}');
SELECT jobs.job_channel_handle_in('jobs:999999999', 'state', '{}');
SELECT jobs.job_channel_handle_in('jobs:999999999', 'cancel', '{}');
SELECT jobs.job_channel_handle_in('jobs:' || :waiting, 'state', '{}') -> 'ok' -> 'state' AS state;
RESET ROLE;
SELECT paused FROM pgapp.queue WHERE name = 'emails';
SELECT count(*) AS imports FROM jobs.import;
SELECT to_regclass('jobs.contact') IS NOT NULL AS contacts_intact;

-- D. a member of pgapp_admin that inherits (sec_admin) acts too; a cancel
--    through the page's function is pgapp's cancel_job
SET ROLE sec_admin;
SELECT jobs.admin_handle_in('jobs_admin', 'cancel', jsonb_build_object('id', :waiting)) -> 'ok' -> 'state' AS state;
RESET ROLE;
SELECT state FROM pgapp.job WHERE id = :waiting;

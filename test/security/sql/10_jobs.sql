--
-- security/10_jobs: a job runs as the role that enqueued it, and nothing it
-- leaves behind runs with more: not at its worker's COMMIT, not in the next
-- job of the same worker process (another role's).  Every job here runs in
-- one worker process (queue "sec", concurrency 1), one after the other.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- wait until the job has finished (at most 10 s)
CREATE FUNCTION pg_temp.wait_job(jid bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT state INTO st FROM pgapp.job WHERE id = jid;
        IF st IN ('completed', 'discarded', 'cancelled', 'retryable') THEN RETURN st; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % still % after 10 s', jid, st;
END $$;
-- the last error of a job, without its time
CREATE FUNCTION pg_temp.job_error(jid bigint) RETURNS TABLE (state text, sqlstate text, message text)
LANGUAGE sql AS $$
    SELECT state::text, errors -> -1 ->> 'sqlstate', errors -> -1 ->> 'message' FROM pgapp.job WHERE id = jid
$$;
\set ECHO all

SELECT pgapp.create_queue('sec', 1);
-- what ran, as whom: the attacker's functions write here
CREATE TABLE public.ran_as (what text, usr name, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON public.ran_as TO PUBLIC;
-- a function only the superuser may call, like pg_read_file
CREATE FUNCTION public.spy(what text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.ran_as (what, usr) VALUES (what, current_user);
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN 'not superuser';
    END IF;
    RETURN pg_read_file('PG_VERSION');
END $$;
GRANT EXECUTE ON FUNCTION public.spy(text) TO PUBLIC;

SET ROLE sec_attacker;
-- 1. a deferred constraint trigger armed by the job fires at the worker's
--    COMMIT: it must fire as the job's owner
CREATE TABLE public.trap (id int);
CREATE FUNCTION public.trap_fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM public.spy('deferred trigger'); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER trap_later AFTER INSERT ON public.trap
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.trap_fire();
CREATE FUNCTION public.arm_trigger(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.trap VALUES (1); RETURN '{}'; END $$;
SELECT pgapp.enqueue('sec', 'public.arm_trigger', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
SELECT * FROM pg_temp.job_error(:j);
SELECT what, usr FROM public.ran_as ORDER BY at;

-- ... while the same constraint made immediate fires in the job, as its owner
SET ROLE sec_attacker;
CREATE FUNCTION public.trigger_now(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN SET CONSTRAINTS ALL IMMEDIATE; INSERT INTO public.trap VALUES (2); RETURN '{}'; END $$;
SELECT pgapp.enqueue('sec', 'public.trigger_now', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
SELECT what, usr FROM public.ran_as ORDER BY at;
TRUNCATE public.ran_as;

-- 1b. the same with the issue's temporary table: refused in the job
SET ROLE sec_attacker;
CREATE FUNCTION public.arm_temp(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE trap_tmp (id int);
    RETURN '{}';
END $$;
SELECT pgapp.enqueue('sec', 'public.arm_temp', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
SELECT * FROM pg_temp.job_error(:j);

-- 1c. a WITH HOLD cursor's query would run at COMMIT: refused
SET ROLE sec_attacker;
CREATE FUNCTION public.arm_cursor(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'DECLARE c CURSOR WITH HOLD FOR SELECT public.spy(''held cursor'') FROM generate_series(1, 2)';
    RETURN '{}';
END $$;
SELECT pgapp.enqueue('sec', 'public.arm_cursor', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
SELECT * FROM pg_temp.job_error(:j);

-- 1d. a cursor the job leaves open is closed with it (else it would live on
--     until the batch commits, with the worker's role)
SET ROLE sec_attacker;
CREATE FUNCTION public.leave_cursor(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE c refcursor := 'left_open';
BEGIN
    OPEN c FOR SELECT public.spy('open cursor') FROM generate_series(1, 2);
    RETURN '{}';
END $$;
SELECT pgapp.enqueue('sec', 'public.leave_cursor', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
-- nothing ran as anyone but the attacker, and nothing ran twice
SELECT what, usr, count(*) FROM public.ran_as GROUP BY 1, 2 ORDER BY 1;

-- 2. what one role's job leaves in the worker process, the next job (the
--    victim's) does not see: settings, prepared statements, temporary
--    objects, LISTEN, sequence state, advisory locks.  The job tries each
--    (its security-restricted operation refuses most).
SET ROLE sec_attacker;
CREATE SEQUENCE public.attacker_seq;
CREATE FUNCTION public.plant(who text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb := '{}'; step text;
BEGIN
    FOREACH step IN ARRAY ARRAY['search_path', 'note', 'prepare', 'temp table', 'temp function',
                                'listen', 'nextval', 'advisory lock'] LOOP
        BEGIN
            CASE step
            WHEN 'search_path' THEN PERFORM set_config('search_path', 'attacker, public', false);
            WHEN 'note' THEN PERFORM set_config('app.note', who, false);
            WHEN 'prepare' THEN EXECUTE format('PREPARE planted_%s AS SELECT 1', who);
            WHEN 'temp table' THEN EXECUTE format('CREATE TEMP TABLE audit_%s (what text)', who);
            WHEN 'temp function' THEN
                EXECUTE format('CREATE FUNCTION pg_temp.f_%s() RETURNS int LANGUAGE sql AS %L', who, 'SELECT 1');
            WHEN 'listen' THEN EXECUTE 'LISTEN planted';
            WHEN 'nextval' THEN PERFORM nextval('public.attacker_seq');
            WHEN 'advisory lock' THEN PERFORM pg_advisory_lock(4242);
            END CASE;
            r := r || jsonb_build_object(step, 'done');
        EXCEPTION WHEN OTHERS THEN
            r := r || jsonb_build_object(step, SQLSTATE);
        END;
    END LOOP;
    RETURN r;
END $$;
CREATE TABLE public.planted (who text, result jsonb);
CREATE FUNCTION public.leave_state(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted SELECT 'job', public.plant('job');
    RETURN '{}';
END $$;
SELECT pgapp.enqueue('sec', 'public.leave_state', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
SELECT * FROM pg_temp.job_error(:j);
-- what each managed to plant ("done") or was refused (SQLSTATE)
SELECT who, key, value FROM public.planted, jsonb_each_text(result) ORDER BY 1, 2;

CREATE TABLE public.victim_saw (what text, value text);
GRANT INSERT ON public.victim_saw TO sec_victim;
SET ROLE sec_victim;
CREATE FUNCTION public.look_around(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
    INSERT INTO public.victim_saw VALUES ('search_path', current_setting('search_path'));
    INSERT INTO public.victim_saw VALUES ('app.note', coalesce(current_setting('app.note', true), '(unset)'));
    INSERT INTO public.victim_saw SELECT 'prepared', count(*)::text FROM pg_prepared_statements;
    INSERT INTO public.victim_saw
        SELECT 'temp tables', count(*)::text FROM pg_class WHERE relnamespace = pg_my_temp_schema()
         UNION ALL
        SELECT 'temp functions', count(*)::text FROM pg_proc WHERE pronamespace = pg_my_temp_schema();
    INSERT INTO public.victim_saw SELECT 'listening', count(*)::text FROM pg_listening_channels();
    BEGIN
        v := lastval()::text;
    EXCEPTION WHEN OTHERS THEN
        v := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO public.victim_saw VALUES ('lastval', v);
    INSERT INTO public.victim_saw VALUES ('advisory lock 4242 free', pg_try_advisory_lock(4242)::text);
    PERFORM pg_advisory_unlock(4242);
    RETURN '{}';
END $$;
SELECT pgapp.enqueue('sec', 'public.look_around', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
SELECT pg_temp.wait_job(:j);
SELECT * FROM public.victim_saw;

-- 10. EXECUTE on the worker is checked when the job runs, not only at enqueue
CREATE FUNCTION public.revocable(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"ran": true}'::jsonb $$;
REVOKE EXECUTE ON FUNCTION public.revocable(jsonb, pgapp.job_info) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.revocable(jsonb, pgapp.job_info) TO sec_attacker;
SELECT pgapp.pause_queue('sec');
SET ROLE sec_attacker;
SELECT pgapp.enqueue('sec', 'public.revocable', '{}', max_attempts => 1) AS j \gset
RESET ROLE;
REVOKE EXECUTE ON FUNCTION public.revocable(jsonb, pgapp.job_info) FROM sec_attacker;
SELECT pgapp.resume_queue('sec');
SELECT pg_temp.wait_job(:j);
SELECT * FROM pg_temp.job_error(:j);

-- ... and a function in a temporary schema is no worker
SET ROLE sec_attacker;
CREATE FUNCTION pg_temp.temp_worker(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT regexp_replace(e, 'pg_temp_\d+', 'pg_temp_N') AS error
  FROM pg_temp.show($$SELECT pgapp.enqueue('sec', 'pg_temp.temp_worker', '{}')$$) AS e;
RESET ROLE;

-- 6. a unique key is the enqueuing role's own: the attacker's job, enqueued
--    first and never due, does not stand in for the victim's (the queue is
--    paused, so that the victim's job is still there to cancel)
SELECT pgapp.pause_queue('sec');
SET ROLE sec_attacker;
SELECT pgapp.enqueue('sec', 'public.look_around', '{"order": 7}', scheduled_at => 'infinity',
                     unique_by => '{order}') AS attacker_job \gset
RESET ROLE;
SET ROLE sec_victim;
SELECT pgapp.enqueue('sec', 'public.look_around', '{"order": 7}', unique_by => '{order}') AS victim_job \gset
SELECT :victim_job <> :attacker_job AS own_job;
-- ... and the victim's own duplicate is still one job
SELECT pgapp.enqueue('sec', 'public.look_around', '{"order": 7}', unique_by => '{order}') = :victim_job AS deduplicated;
SELECT pgapp.cancel_job(:victim_job);
RESET ROLE;
SELECT owner::regrole, state FROM pgapp.job WHERE id IN (:attacker_job, :victim_job) ORDER BY id;

-- 8. storage: the size of one job's args and the jobs of one call are bounded
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('sec', 'public.look_around',
    jsonb_build_object('blob', repeat(md5(random()::text), 32768)))$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue_many('sec', 'public.look_around',
    (SELECT jsonb_agg(jsonb_build_object('n', i)) FROM generate_series(1, 10001) AS i))$$);
-- ... and so are the jobs one role keeps waiting (5 here; 10,000 by default)
RESET ROLE;
SELECT pgapp.pause_queue('sec');
SET pgapp.jobs_max_queued_per_role = 5;
SET ROLE sec_attacker;
SELECT cardinality(pgapp.enqueue_many('sec', 'public.look_around', '[{"q": 1}, {"q": 2}, {"q": 3}]')) AS enqueued;
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue_many('sec', 'public.look_around', '[{"q": 4}, {"q": 5}]')$$);
-- (its job scheduled for 'infinity' above is one of them: 5 now, the limit)
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('sec', 'public.look_around', '{"q": 6}')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('sec', 'public.look_around', '{"q": 7}')$$);
-- another role is not held back by the attacker's jobs
SET ROLE sec_victim;
SELECT pgapp.enqueue('sec', 'public.look_around', '{"victim": true}') > 0 AS victim_enqueued;
RESET ROLE;
RESET pgapp.jobs_max_queued_per_role;
SET ROLE sec_attacker;
-- the limits are the superuser's to change
SELECT * FROM pg_temp.show($$SET pgapp.jobs_max_batch = 0$$);
SELECT * FROM pg_temp.show($$SET pgapp.jobs_max_queued_per_role = 0$$);
RESET ROLE;
SELECT count(*) AS attacker_jobs FROM pgapp.job WHERE owner = 'sec_attacker'::regrole;

-- 11. the backoff of a large attempt is a sane interval
SELECT pgapp.job_backoff(100, 20, 0) AS backoff_100, pgapp.job_backoff(100, 20, 0) = pgapp.job_backoff(20, 20, 0) AS capped;

SELECT pgapp.drop_queue('sec', force => true);

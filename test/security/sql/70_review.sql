--
-- security/70_review: holes found by the attacker's review of issue 15.
--
\set ECHO none
-- wait until no job of queue rev is left to run (at most 20 s)
CREATE FUNCTION pg_temp.wait_queue(q text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..2000 LOOP
        IF NOT EXISTS (SELECT FROM pgapp.job WHERE queue = q
                        AND state NOT IN ('completed', 'discarded', 'cancelled', 'retryable')) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'jobs of queue % still waiting after 20 s', q;
END $$;
\set ECHO all

-- 1. A large-object descriptor a job leaves open is closed with the job.
--    lo_open checks the opener's rights once; the descriptor is a number
--    good until the transaction ends, and the jobs of a batch shared one.
--    The victim's job opens its own large object and returns; the
--    attacker's jobs, queued after it in the same worker process, read
--    descriptor 0.  (Before the fix, one of them read "victim secret".)
SELECT pgapp.create_queue('rev', 1);
CREATE TABLE public.lo_seen (who text, what text, xid xid8);
GRANT INSERT ON public.lo_seen TO sec_attacker, sec_victim;
SET ROLE sec_victim;
CREATE FUNCTION public.victim_lo(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE o oid := lo_from_bytea(0, 'victim secret'::bytea);
BEGIN
    INSERT INTO public.lo_seen VALUES ('victim', 'fd ' || lo_open(o, 262144), pg_current_xact_id());
    RETURN '{}';
END $$;
RESET ROLE;
SET ROLE sec_attacker;
CREATE FUNCTION public.attacker_lo(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    BEGIN
        r := convert_from(loread(0, 100), 'UTF8');
    EXCEPTION WHEN OTHERS THEN
        r := SQLSTATE;
    END;
    INSERT INTO public.lo_seen VALUES ('attacker', r, pg_current_xact_id());
    RETURN '{}';
END $$;
RESET ROLE;
SELECT pgapp.pause_queue('rev');
SET ROLE sec_attacker;
SELECT count(pgapp.enqueue('rev', 'public.attacker_lo', '{}', max_attempts => 1)) FROM generate_series(1, 20);
SET ROLE sec_victim;
SELECT pgapp.enqueue('rev', 'public.victim_lo', '{}', max_attempts => 1) IS NOT NULL AS enqueued;
SET ROLE sec_attacker;
SELECT count(pgapp.enqueue('rev', 'public.attacker_lo', '{}', max_attempts => 1)) FROM generate_series(1, 40);
RESET ROLE;
SELECT pgapp.resume_queue('rev');
SELECT pg_temp.wait_queue('rev');
SELECT state, count(*) FROM pgapp.job WHERE queue = 'rev' GROUP BY 1;
-- no attacker job ran in the victim's transaction (another role's job
-- starts a new one: case 2), and none of them could read descriptor 0
-- (42704, the descriptor is closed)
SELECT count(*) > 0 AS attacker_shared_the_transaction
  FROM public.lo_seen a JOIN public.lo_seen v USING (xid)
 WHERE a.who = 'attacker' AND v.who = 'victim';
SELECT who, what, count(*) FROM public.lo_seen WHERE who = 'attacker' GROUP BY 1, 2;

-- 2. SET CONSTRAINTS lasts until the transaction ends, and the jobs of a
--    batch shared one: the attacker's jobs defer every constraint, and the
--    victim's jobs after them, whose foreign key is DEFERRABLE INITIALLY
--    IMMEDIATE, failed (a security-restricted operation fires no deferred
--    trigger, 42501) and were discarded.  Another role's job now starts a
--    transaction of its own: every victim job completes.
CREATE TABLE public.sc_seen (who text, xid xid8);
GRANT INSERT ON public.sc_seen TO sec_attacker, sec_victim;
SET ROLE sec_victim;
CREATE TABLE public.v_parent (id int PRIMARY KEY);
CREATE TABLE public.v_child (id int REFERENCES public.v_parent DEFERRABLE INITIALLY IMMEDIATE);
INSERT INTO public.v_parent VALUES (1);
CREATE FUNCTION public.victim_fk(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.v_child VALUES (1);
    INSERT INTO public.sc_seen VALUES ('victim', pg_current_xact_id());
    RETURN '{}';
END $$;
RESET ROLE;
SET ROLE sec_attacker;
CREATE FUNCTION public.defer_all(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    SET CONSTRAINTS ALL DEFERRED;
    INSERT INTO public.sc_seen VALUES ('attacker', pg_current_xact_id());
    RETURN '{}';
END $$;
RESET ROLE;
SELECT pgapp.pause_queue('rev');
SET ROLE sec_attacker;
SELECT count(pgapp.enqueue('rev', 'public.defer_all', '{}', max_attempts => 1)) FROM generate_series(1, 20);
SET ROLE sec_victim;
SELECT count(pgapp.enqueue('rev', 'public.victim_fk', '{}', max_attempts => 1)) FROM generate_series(1, 20);
RESET ROLE;
SELECT pgapp.resume_queue('rev');
SELECT pg_temp.wait_queue('rev');
SELECT state, errors -> -1 ->> 'sqlstate' AS sqlstate, count(*)
  FROM pgapp.job WHERE worker = 'public.victim_fk'::regproc GROUP BY 1, 2;
SELECT count(*) AS victim_rows FROM public.v_child;
-- no victim job ran in a transaction of an attacker job
SELECT count(*) AS shared_transactions
  FROM public.sc_seen a JOIN public.sc_seen v USING (xid)
 WHERE a.who = 'attacker' AND v.who = 'victim';

-- 3. The plan cache's caps hold for statements that fail when they run.
--    A plan was measured (and the caps enforced) only after it ran, so
--    every query that failed at execution -- here, on a table anon may not
--    read: planned first, refused by the executor -- stayed in the cache
--    unmeasured (0 bytes) and uncounted until a later success: 400
--    growing queries kept 600 MB in one backend, a PostgREST connection
--    shared by everyone.
CREATE TABLE public.not_for_anon (id int PRIMARY KEY);
SET pgapp.query_cache_memory = '2MB';
SET ROLE anon;
DO $$
DECLARE q pgapp.query := pgapp.from('public.not_for_anon');
BEGIN
    FOR i IN 1..400 LOOP
        q := pgapp.filter_by(q, 'id', i);
        BEGIN
            PERFORM pgapp.all(q);
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
    END LOOP;
END $$;
RESET ROLE;
-- what the backend's plans hold (measured by PostgreSQL, not by pgapp)
SELECT sum(total_bytes) < 8 * 1024 * 1024 AS plans_under_8mb
  FROM pg_backend_memory_contexts WHERE name IN ('CachedPlanSource', 'CachedPlanQuery', 'CachedPlan');
SELECT entries < 256 AS fewer_than_max, bytes > 0 AS measured, bytes <= max_bytes AS under_cap, max_bytes
  FROM pgapp.query_cache_stats();
RESET pgapp.query_cache_memory;

-- 4. A job's result and its errors are bounded like its args.  The result
--    (any size the job returns) and every attempt's error (message, detail,
--    hint and context the job raises, in full) went into pgapp.job: 32 MB
--    per job or per attempt, from a role with PUBLIC's rights.  The result
--    is now refused past pgapp.jobs_max_args_size (54000, the job fails),
--    and each text of an error keeps 4096 characters.
SET ROLE sec_attacker;
CREATE FUNCTION public.big_result(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('x', repeat('r', 300 * 1024))
$$;
CREATE FUNCTION public.big_error(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', repeat('m', 1000000)
        USING DETAIL = repeat('d', 1000000), HINT = repeat('h', 1000000);
END $$;
CREATE FUNCTION public.fine_result(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('x', repeat('r', 200 * 1024))
$$;
SELECT pgapp.enqueue('rev', 'public.big_result', '{}', max_attempts => 1) AS big_result \gset
SELECT pgapp.enqueue('rev', 'public.big_error', '{}', max_attempts => 1) AS big_error \gset
SELECT pgapp.enqueue('rev', 'public.fine_result', '{}', max_attempts => 1) AS fine_result \gset
RESET ROLE;
SELECT pg_temp.wait_queue('rev');
SELECT id = :big_result AS big_result, state, result IS NULL AS no_result,
       errors -> -1 ->> 'sqlstate' AS sqlstate, errors -> -1 ->> 'message' AS message
  FROM pgapp.job WHERE id IN (:big_result, :fine_result) ORDER BY id;
SELECT state, length(errors -> -1 ->> 'message') AS message_chars, length(errors -> -1 ->> 'detail') AS detail_chars,
       length(errors -> -1 ->> 'hint') AS hint_chars, right(errors -> -1 ->> 'message', 5) AS message_ends
  FROM pgapp.job WHERE id = :big_error;

-- 5. A scope's or stat's names resolve as when it was defined, never in a
--    schema another role can write.  The expression is text parsed in each
--    query; under the reader's search_path, an exact-match operator that
--    sec_attacker put in public (where 00_setup lets it create) took over
--    "status = 'published'" on a varchar column, and ran as the superuser
--    who queried.  define_scope now keeps the definer's path less the
--    schemas other roles may create in (pg_temp last), and every query
--    that uses the scope runs with it.
CREATE TABLE public.rev_prod (id int PRIMARY KEY, status varchar NOT NULL);
INSERT INTO public.rev_prod VALUES (1, 'published'), (2, 'draft');
ALTER TABLE public.rev_prod OWNER TO sec_admin;
GRANT SELECT ON public.rev_prod TO PUBLIC;
SET ROLE sec_admin;
SELECT pgapp.define_scope('public.rev_prod', 'pub', 'status = ''published''');
RESET ROLE;
SELECT search_path FROM pgapp.query_expression WHERE source = 'public.rev_prod'::regclass;
SET ROLE sec_attacker;
CREATE FUNCTION public.hijack_eq(a varchar, b varchar) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'hijacked = ran as %', current_user;
    RETURN true;
END $$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.hijack_eq);
RESET ROLE;
-- the superuser queries through the scope, its path starting with public:
-- no NOTICE, and only the published row
SET search_path = public, pg_catalog;
SELECT * FROM pgapp.all(pgapp.scope(pgapp.from('public.rev_prod'), 'pub'));
SELECT count FROM pgapp.count(pgapp.scope(pgapp.from('public.rev_prod'), 'pub')) AS count;
RESET search_path;
-- a name the kept path cannot see is refused when the scope is defined
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SET ROLE sec_admin;
SELECT * FROM pg_temp.show($$SELECT pgapp.define_stat('public.rev_prod', 'n', '(SELECT count(*) FROM rev_prod)')$$);
SELECT pgapp.define_stat('public.rev_prod', 'n', '(SELECT count(*) FROM public.rev_prod)');
RESET ROLE;
DROP OPERATOR public.= (varchar, varchar);

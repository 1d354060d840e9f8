-- test/pgtap/08_jobs.sql
-- Jobs: signatures, objects, privileges, SQLSTATEs and the external-worker
-- contract.  Only a queue of external workers (concurrency 0) is used, and
-- everything is rolled back, so no background worker ever sees these jobs.
BEGIN;
SELECT plan(126);

-- The public jobs functions and the internal pgapp._job_* ones (pgapp.job_progress,
-- which comes with the background workers, is left to their tests).
CREATE TEMP VIEW tap_jobs_fn AS
SELECT p.oid, p.proname, p.oid::regprocedure::text AS sig, p.prosecdef, p.provolatile, p.proconfig,
       p.proargnames, p.pronargdefaults, l.lanname
  FROM pg_proc AS p
  JOIN pg_language AS l ON l.oid = p.prolang
 WHERE p.pronamespace = 'pgapp'::regnamespace
   AND (p.proname LIKE '\_job\_%'
        OR p.proname IN ('enqueue', 'enqueue_many', 'cancel_job', 'retry_job', 'create_queue', 'pause_queue',
                         'resume_queue', 'drop_queue', 'schedule', 'unschedule', 'fetch_jobs', 'heartbeat',
                         'complete_job', 'fail_job', 'report_progress', 'prune_jobs', 'job_backoff'));

---------------------------------------------------------------------------
-- Signatures (docs/reference.md, Jobs)
---------------------------------------------------------------------------
SELECT function_returns('pgapp', 'enqueue', ARRAY['text', 'regproc', 'jsonb', 'timestamp with time zone', 'integer',
    'integer', 'text[]', 'interval', 'interval'], 'bigint');
SELECT function_returns('pgapp', 'enqueue_many', ARRAY['text', 'regproc', 'jsonb', 'timestamp with time zone', 'integer',
    'integer', 'text[]', 'interval', 'interval'], 'bigint[]');
SELECT function_returns('pgapp', 'cancel_job', ARRAY['bigint'], 'boolean');
SELECT function_returns('pgapp', 'retry_job', ARRAY['bigint'], 'boolean');
SELECT function_returns('pgapp', 'create_queue', ARRAY['text', 'integer', 'boolean'], 'void');
SELECT function_returns('pgapp', 'pause_queue', ARRAY['text'], 'void');
SELECT function_returns('pgapp', 'resume_queue', ARRAY['text'], 'void');
SELECT function_returns('pgapp', 'drop_queue', ARRAY['text', 'boolean'], 'void');
SELECT function_returns('pgapp', 'schedule', ARRAY['text', 'text', 'text', 'regproc', 'jsonb'], 'bigint');
SELECT function_returns('pgapp', 'unschedule', ARRAY['text'], 'boolean');
SELECT function_returns('pgapp', 'fetch_jobs', ARRAY['text', 'integer', 'interval'], 'setof pgapp.job');
SELECT function_returns('pgapp', 'heartbeat', ARRAY['bigint[]', 'integer[]'], 'bigint[]');
SELECT function_returns('pgapp', 'complete_job', ARRAY['bigint', 'jsonb', 'integer'], 'boolean');
SELECT function_returns('pgapp', 'fail_job', ARRAY['bigint', 'text', 'integer'], 'boolean');
SELECT function_returns('pgapp', 'report_progress', ARRAY['bigint', 'numeric', 'text', 'integer'], 'boolean');
SELECT function_returns('pgapp', 'prune_jobs', ARRAY['interval', 'integer'], 'bigint');
SELECT function_returns('pgapp', 'job_progress', ARRAY['numeric', 'text'], 'void');
SELECT is((SELECT provolatile::text FROM pg_proc WHERE oid = 'pgapp.job_progress(numeric,text)'::regprocedure), 'v',
    'job_progress is VOLATILE');
SELECT function_returns('pgapp', 'job_backoff', ARRAY['integer', 'integer', 'double precision'], 'interval');
-- named arguments (PostgREST) and the defaults that make the short calls work,
-- e.g. pgapp.fetch_jobs(queue, n) and pgapp.create_queue(name, concurrency)
SELECT results_eq(
    $$SELECT proname::text COLLATE "default", array_to_string(proargnames, ',') COLLATE "default", pronargdefaults::integer
        FROM tap_jobs_fn WHERE proname NOT LIKE '\_%' ORDER BY proname$$,
    $$VALUES ('cancel_job', 'id', 0),
             ('complete_job', 'id,result,attempt', 2),
             ('create_queue', 'name,concurrency,paused', 1),
             ('drop_queue', 'name,force', 1),
             ('enqueue', 'queue,worker,args,scheduled_at,priority,max_attempts,unique_by,unique_for,discard_after', 7),
             ('enqueue_many', 'queue,worker,args_list,scheduled_at,priority,max_attempts,unique_by,unique_for,discard_after', 6),
             ('fail_job', 'id,error,attempt', 1),
             ('fetch_jobs', 'queue,n,lease', 1),
             ('heartbeat', 'ids,attempts', 1),
             ('job_backoff', 'attempt,max_attempts,jitter', 2),
             ('pause_queue', 'name', 0),
             ('prune_jobs', 'older_than,batch_size', 2),
             ('report_progress', 'id,percent,message,attempt', 2),
             ('resume_queue', 'name', 0),
             ('retry_job', 'id', 0),
             ('schedule', 'name,cron,queue,worker,args', 1),
             ('unschedule', 'name', 0)$$,
    'each public jobs function exists once, with named arguments and its defaults');
SELECT is(ARRAY(SELECT sig FROM tap_jobs_fn WHERE proname NOT LIKE '\_%' AND proname <> 'job_backoff'
                   AND provolatile <> 'v' ORDER BY sig), '{}'::text[],
    'every jobs function that writes is VOLATILE');
SELECT volatility_is('pgapp', 'job_backoff', ARRAY['integer', 'integer', 'double precision'], 'immutable');

---------------------------------------------------------------------------
-- Tables, types, views
---------------------------------------------------------------------------
SELECT has_table('pgapp', 'queue', 'queues live in pgapp.queue');
SELECT results_eq(
    $$SELECT attname::text COLLATE "default", format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
       WHERE attrelid = 'pgapp.queue'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum$$,
    $$VALUES ('name', 'text', true), ('concurrency', 'integer', true), ('paused', 'boolean', true),
             ('created_at', 'timestamp with time zone', true), ('rate_limit', 'integer', false),
             ('rate_period', 'interval', false), ('rate_tokens', 'double precision', false),
             ('rate_updated_at', 'timestamp with time zone', false)$$,
    'pgapp.queue: columns, types and NOT NULL');
SELECT col_is_pk('pgapp', 'queue', 'name', 'a queue is known by its name');
SELECT has_table('pgapp', 'job', 'jobs live in pgapp.job');
SELECT results_eq(
    $$SELECT attname::text COLLATE "default", format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
       WHERE attrelid = 'pgapp.job'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum$$,
    $$VALUES ('id', 'bigint', true), ('queue', 'text', true), ('worker', 'regproc', true), ('args', 'jsonb', true),
             ('state', 'pgapp.job_state', true), ('priority', 'integer', true), ('attempt', 'integer', true),
             ('max_attempts', 'integer', true), ('inserted_at', 'timestamp with time zone', true),
             ('scheduled_at', 'timestamp with time zone', true), ('attempted_at', 'timestamp with time zone', false),
             ('completed_at', 'timestamp with time zone', false), ('discarded_at', 'timestamp with time zone', false),
             ('cancelled_at', 'timestamp with time zone', false), ('discard_after', 'interval', false),
             ('errors', 'jsonb', true), ('unique_key', 'text', false), ('progress', 'numeric', false),
             ('result', 'jsonb', false), ('owner', 'oid', true), ('attempted_by', 'text', false),
             ('lease', 'interval', false), ('expires_at', 'timestamp with time zone', false),
             ('cancel_requested_at', 'timestamp with time zone', false),
             ('claimable', 'boolean', true), ('holds_key', 'boolean', true)$$,
    'pgapp.job: columns, types and NOT NULL (fetch_jobs returns these rows)');
SELECT col_is_pk('pgapp', 'job', 'id', 'a job is known by its id');
SELECT is(ARRAY(SELECT indexname::text FROM pg_indexes
                 WHERE schemaname = 'pgapp' AND tablename = 'job'
                   AND indexdef ~ '\m(state|completed_at|discarded_at|cancelled_at|result|progress|errors)\M'),
    '{}'::text[], 'no index of pgapp.job names a column that finishing a job changes (so it can be a HOT update)');
SELECT is(ARRAY(SELECT indexrelid::regclass::text FROM pg_index
                 WHERE indrelid = 'pgapp.job'::regclass AND indpred IS NULL),
    ARRAY['pgapp.job_pkey'],
    'the primary key is the only index of pgapp.job over every row (a claim writes one index entry)');
SELECT fk_ok('pgapp', 'job', 'queue', 'pgapp', 'queue', 'name');
SELECT has_enum('pgapp', 'job_state', 'enum pgapp.job_state exists');
SELECT enum_has_labels('pgapp', 'job_state',
    ARRAY['scheduled', 'available', 'executing', 'retryable', 'completed', 'discarded', 'cancelled'],
    'pgapp.job_state has the seven states, in order');
SELECT has_composite('pgapp', 'job_info', 'composite pgapp.job_info exists (a worker''s second argument)');
SELECT results_eq(
    $$SELECT attname::text COLLATE "default", format_type(atttypid, atttypmod) FROM pg_attribute
       WHERE attrelid = 'pgapp.job_info'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum$$,
    $$VALUES ('id', 'bigint'), ('queue', 'text'), ('worker', 'regproc'), ('attempt', 'integer'),
             ('max_attempts', 'integer'), ('priority', 'integer'), ('inserted_at', 'timestamp with time zone'),
             ('scheduled_at', 'timestamp with time zone'), ('errors', 'jsonb')$$,
    'pgapp.job_info: attributes and types');
SELECT has_view('pgapp', 'queue_stats', 'view pgapp.queue_stats exists');
-- a subset: the background workers add columns of their own (workers, progress)
SELECT is(ARRAY(SELECT c FROM unnest(ARRAY['queue', 'concurrency', 'paused', 'scheduled', 'due', 'available', 'executing',
                                           'retryable', 'completed', 'discarded', 'cancelled', 'oldest_due_age']) AS c
                 WHERE NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'pgapp.queue_stats'::regclass
                                      AND attname = c AND NOT attisdropped)), '{}'::text[],
    'pgapp.queue_stats has the queue, its jobs counted by state, due and oldest_due_age');
SELECT has_view('pgapp', 'workers', 'view pgapp.workers exists');
SELECT columns_are('pgapp', 'workers', ARRAY['slot', 'pid', 'queue', 'state', 'job', 'since', 'job_started',
    'jobs_done', 'progress', 'progress_message'], 'pgapp.workers: slot, pid, queue, state, job, since and progress');
SELECT ok(has_table_privilege('pgapp_admin', 'pgapp.workers', 'SELECT')
      AND NOT has_table_privilege('public', 'pgapp.workers', 'SELECT'),
    'pgapp_admin, not everyone, may read pgapp.workers');
SELECT has_view('pgapp', 'job_errors', 'view pgapp.job_errors exists');
SELECT columns_are('pgapp', 'job_errors', ARRAY['job_id', 'queue', 'worker', 'state', 'attempt', 'at', 'sqlstate',
    'message', 'detail']);

---------------------------------------------------------------------------
-- Roles and privileges
---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname IN ('pgapp_admin', 'pgapp_worker') AND NOT rolcanlogin
                 ORDER BY rolname), ARRAY['pgapp_admin', 'pgapp_worker'],
    'the extension''s roles pgapp_admin and pgapp_worker exist (NOLOGIN)');
SELECT is(ARRAY(SELECT f FROM unnest(ARRAY[
                    'pgapp.enqueue(text,regproc,jsonb,timestamptz,integer,integer,text[],interval,interval)',
                    'pgapp.enqueue_many(text,regproc,jsonb,timestamptz,integer,integer,text[],interval,interval)',
                    'pgapp.cancel_job(bigint)', 'pgapp.retry_job(bigint)', 'pgapp.job_backoff(integer,integer,float8)']) AS f
                 WHERE to_regprocedure(f) IS NULL OR NOT has_function_privilege('public', to_regprocedure(f), 'EXECUTE')),
    '{}'::text[], 'everyone may enqueue, cancel and retry (their own) jobs');
SELECT is(ARRAY(SELECT f FROM unnest(ARRAY[
                    'pgapp.create_queue(text,integer,boolean)', 'pgapp.pause_queue(text)', 'pgapp.resume_queue(text)',
                    'pgapp.drop_queue(text,boolean)', 'pgapp.prune_jobs(interval,integer)',
                    'pgapp.limit_queue(text,integer,interval)',
                    'pgapp.fetch_jobs(text,integer,interval)', 'pgapp.heartbeat(bigint[],integer[])',
                    'pgapp.complete_job(bigint,jsonb,integer)', 'pgapp.fail_job(bigint,text,integer)',
                    'pgapp.report_progress(bigint,numeric,text,integer)']) AS f
                 WHERE to_regprocedure(f) IS NULL OR has_function_privilege('public', to_regprocedure(f), 'EXECUTE')),
    '{}'::text[], 'not everyone may administer queues or act as an external worker');
SELECT is(ARRAY(SELECT sig FROM tap_jobs_fn WHERE proname LIKE '\_job\_%'
                   AND has_function_privilege('public', oid, 'EXECUTE') ORDER BY sig), '{}'::text[],
    'no internal pgapp._job_* function is executable by everyone');
SELECT is(ARRAY(SELECT f FROM unnest(ARRAY[
                    'pgapp.fetch_jobs(text,integer,interval)', 'pgapp.heartbeat(bigint[],integer[])',
                    'pgapp.complete_job(bigint,jsonb,integer)', 'pgapp.fail_job(bigint,text,integer)',
                    'pgapp.report_progress(bigint,numeric,text,integer)']) AS f
                 WHERE to_regprocedure(f) IS NULL OR NOT has_function_privilege('pgapp_worker', to_regprocedure(f), 'EXECUTE')),
    '{}'::text[], 'pgapp_worker may fetch, heartbeat, complete and fail jobs and report progress');
SELECT is(ARRAY(SELECT f FROM unnest(ARRAY[
                    'pgapp.create_queue(text,integer,boolean)', 'pgapp.pause_queue(text)', 'pgapp.resume_queue(text)',
                    'pgapp.drop_queue(text,boolean)', 'pgapp.prune_jobs(interval,integer)']) AS f
                 WHERE to_regprocedure(f) IS NULL OR has_function_privilege('pgapp_worker', to_regprocedure(f), 'EXECUTE')),
    '{}'::text[], 'pgapp_worker may not administer queues');
SELECT is(ARRAY(SELECT f FROM unnest(ARRAY[
                    'pgapp.create_queue(text,integer,boolean)', 'pgapp.pause_queue(text)', 'pgapp.resume_queue(text)',
                    'pgapp.drop_queue(text,boolean)', 'pgapp.prune_jobs(interval,integer)',
                    'pgapp.limit_queue(text,integer,interval)']) AS f
                 WHERE to_regprocedure(f) IS NULL OR NOT has_function_privilege('pgapp_admin', to_regprocedure(f), 'EXECUTE')),
    '{}'::text[], 'pgapp_admin may administer queues');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.schedule(text,text,text,regproc,jsonb)', 'EXECUTE')
      AND NOT has_function_privilege('public', 'pgapp.schedule(text,text,text,regproc,jsonb)', 'EXECUTE')
      AND NOT has_function_privilege('public', 'pgapp.unschedule(text)', 'EXECUTE'),
    'pgapp_admin, not everyone, may make cron schedules');
SELECT ok(has_table_privilege('pgapp_admin', 'pgapp.job', 'SELECT')
      AND has_table_privilege('pgapp_admin', 'pgapp.queue_stats', 'SELECT')
      AND has_table_privilege('pgapp_admin', 'pgapp.job_errors', 'SELECT')
      AND has_table_privilege('pgapp_admin', 'pgapp.queue', 'SELECT, INSERT, UPDATE, DELETE'),
    'pgapp_admin may read jobs, queue_stats and job_errors and change queues');
SELECT ok(NOT has_table_privilege('public', 'pgapp.job_prune_mark', 'SELECT, INSERT, UPDATE, DELETE')
      AND NOT has_table_privilege('pgapp_admin', 'pgapp.job_prune_mark', 'INSERT, UPDATE, DELETE'),
    'only pgapp.prune_jobs writes its marks');
SELECT ok(NOT has_table_privilege('public', 'pgapp.job', 'SELECT, INSERT, UPDATE, DELETE')
      AND NOT has_table_privilege('public', 'pgapp.queue_stats', 'SELECT')
      AND NOT has_table_privilege('public', 'pgapp.job_errors', 'SELECT')
      AND NOT has_table_privilege('public', 'pgapp.queue', 'INSERT, UPDATE, DELETE')
      AND has_table_privilege('public', 'pgapp.queue', 'SELECT'),
    'everyone may list the queues, but not read or write jobs, stats or errors');
SELECT is(ARRAY(SELECT sig FROM tap_jobs_fn
                 WHERE prosecdef AND NOT coalesce(proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp'], false)
                 ORDER BY sig), '{}'::text[],
    'every SECURITY DEFINER jobs function pins search_path = pg_catalog, pg_temp');
SELECT is(ARRAY(SELECT sig FROM tap_jobs_fn
                 WHERE proname LIKE '\_job\_%' AND lanname IN ('sql', 'plpgsql')
                   AND NOT coalesce(proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp'], false)
                 ORDER BY sig), '{}'::text[],
    'every internal SQL or PL/pgSQL pgapp._job_* function (run as the schema owner) pins search_path = pg_catalog, pg_temp');
SELECT is(ARRAY(SELECT sig FROM tap_jobs_fn WHERE prosecdef
                   AND proname IN ('enqueue', 'enqueue_many', 'cancel_job', 'retry_job') ORDER BY sig), '{}'::text[],
    'enqueue, enqueue_many, cancel_job and retry_job are not SECURITY DEFINER (they note the calling role)');

---------------------------------------------------------------------------
-- Behaviour: a queue of external workers, inside this transaction
---------------------------------------------------------------------------
CREATE FUNCTION public.tap_job_worker(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION public.tap_job_one_arg(args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
CREATE TEMP TABLE tap_ids (label text PRIMARY KEY, id bigint);

SELECT lives_ok($$SELECT pgapp.create_queue('tap_ext', 0)$$, 'create_queue makes a queue of external workers');
SELECT results_eq($$SELECT concurrency, paused FROM pgapp.queue WHERE name = 'tap_ext'$$,
    $$VALUES (0, false)$$, 'the queue is in pgapp.queue: concurrency 0, not paused');

INSERT INTO tap_ids SELECT 'plain', pgapp.enqueue('tap_ext', 'tap_job_worker', '{"n": 1}');
SELECT results_eq(
    $$SELECT j.queue, j.worker::text, j.args, j.state::text, j.attempt, j.max_attempts, j.priority
        FROM pgapp.job AS j JOIN tap_ids AS t USING (id) WHERE t.label = 'plain'$$,
    $$VALUES ('tap_ext', 'tap_job_worker', '{"n": 1}'::jsonb, 'available', 0, 20, 0)$$,
    'enqueue returns the bigint id of the new job: available, attempt 0, the defaults');

INSERT INTO tap_ids SELECT 'unique1', pgapp.enqueue('tap_ext', 'tap_job_worker', '{"k": "a", "n": 1}',
    unique_by => '{k}', unique_for => '1 hour');
INSERT INTO tap_ids SELECT 'unique2', pgapp.enqueue('tap_ext', 'tap_job_worker', '{"k": "a", "n": 2}',
    unique_by => '{k}', unique_for => '1 hour');
INSERT INTO tap_ids SELECT 'unique3', pgapp.enqueue('tap_ext', 'tap_job_worker', '{"k": "b"}',
    unique_by => '{k}', unique_for => '1 hour');
SELECT is((SELECT id FROM tap_ids WHERE label = 'unique2'), (SELECT id FROM tap_ids WHERE label = 'unique1'),
    'a duplicate unique job (same unique_by values within unique_for) returns the existing id');
SELECT results_eq($$SELECT args FROM pgapp.job WHERE queue = 'tap_ext' AND args ? 'k' ORDER BY id$$,
    $$VALUES ('{"k": "a", "n": 1}'::jsonb), ('{"k": "b"}'::jsonb)$$,
    'the duplicate inserted nothing; other unique_by values made a job of their own');

SELECT is(cardinality(pgapp.enqueue_many('tap_ext', 'tap_job_worker', '[{"m": 1}, {"m": 2}, {"m": 3}]')), 3,
    'enqueue_many returns one id per element');
INSERT INTO tap_ids SELECT 'later', pgapp.enqueue('tap_ext', 'tap_job_worker', '{"later": true}',
    scheduled_at => now() + interval '1 hour');
INSERT INTO tap_ids SELECT 'urgent', pgapp.enqueue('tap_ext', 'tap_job_worker', '{"urgent": true}', priority => -5);
SELECT is((SELECT state::text FROM pgapp.job JOIN tap_ids USING (id) WHERE label = 'later'), 'scheduled',
    'a job due later is scheduled');

-- fetch_jobs: the most urgent first, then the rest; SETOF pgapp.job rows, executing, attempt 1
SELECT results_eq($$SELECT id, state::text, attempt FROM pgapp.fetch_jobs('tap_ext', 1)$$,
    $$SELECT id, 'executing', 1 FROM tap_ids WHERE label = 'urgent'$$,
    'fetch_jobs(queue, 1) hands out the most urgent job, executing, attempt 1');
CREATE TEMP TABLE tap_fetched AS SELECT f AS job FROM pgapp.fetch_jobs('tap_ext', 100) AS f;
SELECT is((SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'tap_fetched'::regclass
            AND attname = 'job'), 'pgapp.job', 'fetch_jobs returns pgapp.job rows');
SELECT results_eq($$SELECT (job).state::text, (job).attempt, count(*)::integer FROM tap_fetched GROUP BY 1, 2$$,
    $$VALUES ('executing', 1, 6)$$,
    'fetch_jobs claims every due job (6): state executing, attempt 1');
SELECT ok((SELECT bool_and((job).expires_at = (job).attempted_at + interval '30 seconds'
                       AND (job).attempted_by ~ '^external ') FROM tap_fetched),
    'each claim has a 30 s lease by default and names the external worker');
SELECT is((SELECT count(*)::integer FROM pgapp.fetch_jobs('tap_ext', 100)), 0,
    'claimed jobs and jobs due later are not handed out');
SELECT is((SELECT count(*)::integer FROM tap_fetched JOIN tap_ids ON id = (job).id WHERE label = 'later'), 0,
    'the job due later was not fetched');

-- heartbeat, complete_job, fail_job
SELECT is(pgapp.heartbeat(ARRAY[(SELECT id FROM tap_ids WHERE label = 'plain'), -1]),
    ARRAY[(SELECT id FROM tap_ids WHERE label = 'plain')], 'heartbeat returns the ids still held');
SELECT is(pgapp.complete_job((SELECT id FROM tap_ids WHERE label = 'plain'), '{"done": true}'), true,
    'complete_job of an executing job returns true');
SELECT is(pgapp.complete_job((SELECT id FROM tap_ids WHERE label = 'plain')), false,
    'complete_job of a job that no longer runs returns false');
SELECT results_eq($$SELECT state::text, result, completed_at IS NOT NULL FROM pgapp.job JOIN tap_ids USING (id)
                     WHERE label = 'plain'$$,
    $$VALUES ('completed', '{"done": true}'::jsonb, true)$$, 'the completed job keeps its result');
SELECT is(pgapp.heartbeat(ARRAY[(SELECT id FROM tap_ids WHERE label = 'plain')]), '{}'::bigint[],
    'heartbeat no longer holds a completed job');
SELECT is(pgapp.fail_job((SELECT id FROM tap_ids WHERE label = 'unique1'), 'boom'), true,
    'fail_job of an executing job returns true');
SELECT results_eq($$SELECT state::text, scheduled_at > now() FROM pgapp.job JOIN tap_ids USING (id) WHERE label = 'unique1'$$,
    $$VALUES ('retryable', true)$$, 'a failed attempt makes the job retryable after a backoff');
SELECT results_eq($$SELECT e.attempt, e.message FROM pgapp.job_errors AS e JOIN tap_ids AS t ON t.id = e.job_id
                     WHERE t.label = 'unique1'$$,
    $$VALUES (1, 'boom')$$, 'pgapp.job_errors shows the failure');

-- the lease check of the external workers' calls, and the one claim
SELECT is((pgapp._job_for_lease((SELECT min((job).id) FROM tap_fetched WHERE (job).args ? 'm'), 1)).state::text,
    'executing', '_job_for_lease: a fetched job at its attempt is the fetch''s');
SELECT is((pgapp._job_for_lease((SELECT min((job).id) FROM tap_fetched WHERE (job).args ? 'm'), 2)).id, NULL,
    '_job_for_lease: at another attempt (a later fetch) it is not');
SELECT is((pgapp._job_for_lease((SELECT id FROM tap_ids WHERE label = 'plain'), NULL)).id, NULL,
    '_job_for_lease: a completed job is no fetch''s');
SELECT throws_ok($$SELECT pgapp._job_for_lease(-1, NULL)$$, '42704', 'job -1 does not exist',
    '_job_for_lease of an unknown job is 42704');
DO $$
BEGIN
    PERFORM pgapp.create_queue('tap_claim', 0);
    PERFORM pgapp.enqueue_many('tap_claim', 'tap_job_worker', '[{"c": 1}, {"c": 2}]');
    PERFORM pgapp.enqueue('tap_claim', 'tap_job_worker', '{"c": 0}', priority => -1);
END $$;
SELECT results_eq($$SELECT args, state::text, attempt, attempted_by, lease, expires_at
                      FROM pgapp._job_claim_due('tap_claim', 2, 'tap claimer', NULL)$$,
    $$VALUES ('{"c": 0}'::jsonb, 'executing', 1, 'tap claimer', NULL::interval, NULL::timestamptz),
             ('{"c": 1}'::jsonb, 'executing', 1, 'tap claimer', NULL::interval, NULL::timestamptz)$$,
    '_job_claim_due claims the n most urgent due jobs, attempt counted, without a lease when given none');
SELECT results_eq($$SELECT args, lease FROM pgapp._job_claim_due('tap_claim', 5, 'tap claimer', interval '1 minute')$$,
    $$VALUES ('{"c": 2}'::jsonb, interval '1 minute')$$,
    '_job_claim_due: then the rest, with the lease given');

-- cancel_job, retry_job
SELECT is(pgapp.cancel_job((SELECT id FROM tap_ids WHERE label = 'later')), true, 'cancel_job of a scheduled job: true');
SELECT is(pgapp.cancel_job((SELECT id FROM tap_ids WHERE label = 'later')), false, 'cancel_job again: false');
SELECT is(pgapp.retry_job((SELECT id FROM tap_ids WHERE label = 'later')), true, 'retry_job of a cancelled job: true');
SELECT is((SELECT state::text FROM pgapp.job JOIN tap_ids USING (id) WHERE label = 'later'), 'available',
    'a retried job is available');

SELECT results_eq(
    $$SELECT concurrency, paused, scheduled, available, executing, retryable, completed, discarded, cancelled
        FROM pgapp.queue_stats WHERE queue = 'tap_ext'$$,
    $$VALUES (0, false, 0::bigint, 1::bigint, 5::bigint, 1::bigint, 1::bigint, 0::bigint, 0::bigint)$$,
    'pgapp.queue_stats counts the queue''s jobs by state');

-- bad input: SQLSTATEs
SELECT throws_ok($$SELECT pgapp.enqueue('tap_nope', 'tap_job_worker')$$, '42704', 'queue "tap_nope" does not exist',
    'enqueue on an unknown queue is 42704');
SELECT throws_ok($$SELECT pgapp.enqueue('tap_ext', 'tap_job_one_arg')$$, '22023', NULL,
    'a worker of the wrong signature is 22023');
SELECT throws_ok($$SELECT pgapp.enqueue('tap_ext', 'tap_job_worker', '[1]')$$, '22023', 'job args must be a JSON object',
    'args that are not an object are 22023');
SELECT throws_ok($$SELECT pgapp.enqueue_many('tap_ext', 'tap_job_worker', '[{"a": 1}, 2]')$$, '22023',
    'job args must be a JSON object', 'enqueue_many: an element that is not an object is 22023');
SELECT throws_ok($$SELECT pgapp.enqueue('tap_ext', 'tap_job_worker', '{}', max_attempts => 0)$$, '22023',
    'max_attempts must be at least 1', 'max_attempts 0 is 22023');
SELECT throws_ok($$SELECT pgapp.create_queue('tap_neg', -1)$$, '22023', 'concurrency must be between 0 and 1000',
    'a negative concurrency is 22023');
SELECT throws_ok($$SELECT pgapp.create_queue('tap_ext', 0)$$, '42710', 'queue "tap_ext" already exists',
    'a duplicate queue is 42710');
SELECT throws_ok($$SELECT pgapp.fetch_jobs('tap_nope', 1)$$, '42704', 'queue "tap_nope" does not exist',
    'fetch_jobs on an unknown queue is 42704');
SELECT throws_ok($$SELECT pgapp.fetch_jobs('tap_ext', 0)$$, '22023', 'n must be between 1 and 10000',
    'fetch_jobs of 0 jobs is 22023');
SELECT throws_ok($$SELECT pgapp.complete_job(-1)$$, '42704', 'job -1 does not exist', 'complete_job of an unknown job is 42704');
SELECT throws_ok($$SELECT pgapp.cancel_job(-1)$$, '42704', 'job -1 does not exist', 'cancel_job of an unknown job is 42704');
SELECT throws_ok($$SELECT pgapp.drop_queue('tap_ext')$$, '55006', NULL,
    'drop_queue of a queue with unfinished jobs is 55006 (without force)');

-- the roles at work
CREATE ROLE tap_jobs_user;
SET ROLE tap_jobs_user;
SELECT lives_ok($$SELECT pgapp.enqueue('tap_ext', 'tap_job_worker', '{"by": "user"}')$$, 'a plain role may enqueue');
SELECT throws_ok($$SELECT pgapp.fetch_jobs('tap_ext', 1)$$, '42501', NULL, 'a plain role may not fetch jobs');
SELECT throws_ok($$SELECT pgapp.create_queue('tap_mine', 0)$$, '42501', NULL, 'a plain role may not create a queue');
SELECT throws_ok($$SELECT count(*) FROM pgapp.job$$, '42501', NULL, 'a plain role may not read pgapp.job');
SET ROLE pgapp_worker;
SELECT results_eq(
    $$SELECT f.args, f.state::text, pgapp.complete_job(f.id, '{}') FROM pgapp.fetch_jobs('tap_ext', 10) AS f ORDER BY f.id$$,
    $$VALUES ('{"later": true}'::jsonb, 'executing', true), ('{"by": "user"}'::jsonb, 'executing', true)$$,
    'pgapp_worker fetches the due jobs (the retried one and the plain role''s) and completes them');
SET ROLE pgapp_admin;
SELECT lives_ok($$SELECT pgapp.create_queue('tap_admin', 0)$$, 'pgapp_admin may create a queue');
SELECT lives_ok($$SELECT pgapp.pause_queue('tap_admin'), pgapp.resume_queue('tap_admin')$$,
    'pgapp_admin may pause and resume a queue');
SELECT lives_ok($$SELECT pgapp.prune_jobs()$$, 'pgapp_admin may prune jobs');
SELECT lives_ok($$SELECT pgapp.drop_queue('tap_admin')$$, 'pgapp_admin may drop a queue');
SELECT results_eq($$SELECT args FROM pgapp.job WHERE queue = 'tap_ext' AND state = 'completed' ORDER BY id$$,
    $$VALUES ('{"n": 1}'::jsonb), ('{"later": true}'::jsonb), ('{"by": "user"}'::jsonb)$$,
    'pgapp_admin may read pgapp.job: the completed jobs');
RESET ROLE;

-- fencing: a job's attempt, as fetch_jobs returned it, is that fetch's token
CREATE TEMP TABLE tap_fence_setup AS SELECT FROM pgapp.create_queue('tap_fence', 0);
INSERT INTO tap_ids SELECT 'fenced', pgapp.enqueue('tap_fence', 'tap_job_worker', '{"f": 1}');
CREATE TEMP TABLE tap_fetch1 AS SELECT id, attempt FROM pgapp.fetch_jobs('tap_fence', 1, lease => '1 second');
-- its lease runs out (backdated here); the next fetch rescues the job and takes it again
UPDATE pgapp.job SET expires_at = now() - interval '1 second' WHERE id = (SELECT id FROM tap_fetch1);
CREATE TEMP TABLE tap_fetch2 AS SELECT id, attempt FROM pgapp.fetch_jobs('tap_fence', 1);
SELECT results_eq($$SELECT f1.id = f2.id, f1.attempt, f2.attempt FROM tap_fetch1 AS f1, tap_fetch2 AS f2$$,
    $$VALUES (true, 1, 2)$$, 'a job whose lease ran out is rescued and fetched again, as attempt 2');
SELECT is(pgapp.heartbeat(ARRAY[id], ARRAY[attempt]), '{}'::bigint[],
    'heartbeat with the first fetch''s attempt no longer holds the job') FROM tap_fetch1;
SELECT is(pgapp.heartbeat(ARRAY[id], ARRAY[attempt]), ARRAY[id],
    'heartbeat with the second fetch''s attempt holds it') FROM tap_fetch2;
SELECT is(pgapp.complete_job(id, '{"by": 1}', attempt), false,
    'complete_job with the first fetch''s attempt is refused') FROM tap_fetch1;
SELECT is(pgapp.fail_job(id, 'late', attempt), false,
    'fail_job with the first fetch''s attempt is refused') FROM tap_fetch1;
SELECT is(pgapp.heartbeat(ARRAY[id]), ARRAY[id],
    'heartbeat without attempts holds any fetched job (the short call)') FROM tap_fetch1;
SELECT is(pgapp.complete_job(id, '{"by": 2}', attempt), true,
    'complete_job with the current attempt completes the job') FROM tap_fetch2;
SELECT results_eq($$SELECT state::text, result, jsonb_array_length(errors) FROM pgapp.job
                    WHERE id = (SELECT id FROM tap_fetch1)$$,
    $$VALUES ('completed', '{"by": 2}'::jsonb, 1)$$,
    'the second fetch''s result is recorded; the first''s late calls changed nothing');
-- an external worker's progress
INSERT INTO tap_ids SELECT 'progressing', pgapp.enqueue('tap_fence', 'tap_job_worker', '{"p": 1}');
CREATE TEMP TABLE tap_fetch3 AS SELECT id, attempt FROM pgapp.fetch_jobs('tap_fence', 1);
SELECT is(pgapp.report_progress(id, 40, 'rows 400 of 1000', attempt), true,
    'report_progress on a fetched job returns true') FROM tap_fetch3;
SELECT results_eq($$SELECT j.progress, s.progress FROM pgapp.job AS j, pgapp.queue_stats AS s
                    WHERE j.id = (SELECT id FROM tap_fetch3) AND s.queue = 'tap_fence'$$,
    $$SELECT 40::numeric, jsonb_build_array(jsonb_build_object('job', (SELECT id FROM tap_fetch3), 'percent', 40))$$,
    'the progress is kept on the job and shown by queue_stats');
SELECT is(pgapp.report_progress(id, 50, NULL, attempt + 1), false,
    'report_progress with another fetch''s attempt is refused') FROM tap_fetch3;
SELECT throws_ok($$SELECT pgapp.report_progress((SELECT id FROM tap_fetch3), 150)$$, '22023',
    'percent must be between 0 and 100', 'report_progress outside 0..100 is 22023');
SELECT throws_ok($$SELECT pgapp.report_progress(NULL, 10)$$, '22004',
    'job id and percent must not be null', 'report_progress of a NULL job is 22004');
SELECT throws_ok($$SELECT pgapp.report_progress(-1, 10)$$, '42704', 'job -1 does not exist',
    'report_progress of an unknown job is 42704');
SELECT is(pgapp.report_progress((SELECT id FROM tap_ids WHERE label = 'plain'), 10), false,
    'report_progress of a job that no longer runs returns false');
SELECT throws_ok($$SELECT pgapp.heartbeat(ARRAY[1, 2]::bigint[], ARRAY[1])$$, '22023',
    'attempts must have one element per id', 'heartbeat with attempts that do not match the ids is 22023');

SELECT * FROM finish();
ROLLBACK;

--
-- jobs: queues, enqueue, uniqueness, states, backoff, the external-worker
-- API, rescue, cancel/retry, pruning, cron and every bad input.  The queues
-- here have concurrency 0 (served by external workers only) or are paused,
-- so that no background worker runs their jobs behind the test's back.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/listener_helpers.sql
\set ECHO all

CREATE FUNCTION public.noop(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('echo', args, 'attempt', job.attempt) $$;
CREATE FUNCTION public.one_arg(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION public.returns_int(args jsonb, job pgapp.job_info) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;

-- queues
SELECT pgapp.create_queue('ext', 0);
SELECT pgapp.create_queue('held', 5, paused => true);
SELECT name, concurrency, paused FROM pgapp.queue ORDER BY name;
SELECT * FROM pg_temp.show($$SELECT pgapp.create_queue('ext', 1)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.create_queue('no spaces', 1)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.create_queue(repeat('q', 53), 1)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.create_queue('neg', -1)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.create_queue(NULL, 1)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.pause_queue('nope')$$);

-- enqueue: the id; state available, or scheduled when due later
SELECT pgapp.enqueue('ext', 'noop', '{"n": 1}') AS first_id;
SELECT pgapp.enqueue('ext', 'noop', '{"n": 2}', scheduled_at => now() + interval '1 hour', priority => 3) AS later_id \gset
SELECT id, queue, worker, args, state, priority, attempt, max_attempts, owner::regrole
  FROM pgapp.job ORDER BY id;

-- bad input: unknown queue, unknown worker, wrong signature, args not an object, limits
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('nope', 'noop')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'no_such_function')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'one_arg')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'returns_int')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'noop', '[1, 2]')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'noop', NULL)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'noop', '{}', max_attempts => 0)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'noop', '{}', unique_for => '-1 minute')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'noop', '{}', discard_after => '0 s')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue_many('ext', 'noop', '[{"a": 1}, "b"]')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue_many('ext', 'noop', '{"a": 1}')$$);
-- nothing of the failed calls was written
SELECT count(*) AS jobs FROM pgapp.job;

-- enqueue_many: one job per element, ids in order
SELECT pgapp.enqueue_many('ext', 'noop', '[{"i": 1}, {"i": 2}, {"i": 3}]') AS ids;
SELECT pgapp.enqueue_many('ext', 'noop', '[]') AS no_ids;

-- uniqueness: the same unique_by values within unique_for give the existing id
BEGIN;
SELECT pgapp.enqueue('ext', 'noop', '{"to": "a@x", "template": "welcome", "n": 1}',
                     unique_by => '{to,template}', unique_for => '1 minute') AS unique_id \gset
SELECT pgapp.enqueue('ext', 'noop', '{"to": "a@x", "template": "welcome", "n": 2}',
                     unique_by => '{to,template}', unique_for => '1 minute') = :unique_id AS duplicate_gets_same_id;
SELECT pgapp.enqueue('ext', 'noop', '{"to": "b@x", "template": "welcome"}',
                     unique_by => '{to,template}', unique_for => '1 minute') <> :unique_id AS other_values_new_job;
SELECT pgapp.enqueue('held', 'noop', '{"to": "a@x", "template": "welcome"}',
                     unique_by => '{to,template}', unique_for => '1 minute') <> :unique_id AS other_queue_new_job;
-- in one call, duplicates collapse too
SELECT ids[1] = ids[2] AS same, ids[1] <> ids[3] AS differs
  FROM pgapp.enqueue_many('ext', 'noop', '[{"k": 1}, {"k": 1}, {"k": 2}]', unique_for => '1 hour') AS ids;
COMMIT;
-- a time bucket that has passed: a new job (buckets of one microsecond, separate statements)
SELECT pgapp.enqueue('ext', 'noop', '{"tick": 1}', unique_for => '1 microsecond') AS t1 \gset
SELECT pgapp.enqueue('ext', 'noop', '{"tick": 1}', unique_for => '1 microsecond') <> :t1 AS next_bucket_new_job;
-- unique_by without unique_for: unique for ever; a cancelled job releases its key
SELECT pgapp.enqueue('ext', 'noop', '{"once": true}', unique_by => '{once}') AS once_id \gset
SELECT pgapp.enqueue('ext', 'noop', '{"once": true}', unique_by => '{once}') = :once_id AS still_same;
SELECT pgapp.cancel_job(:once_id) AS cancelled;
SELECT pgapp.enqueue('ext', 'noop', '{"once": true}', unique_by => '{once}') AS once2 \gset
SELECT :once2 <> :once_id AS new_after_cancel;
-- the cancelled job keeps its key, not holding it; retry_job takes it back
-- unless another job holds it now
SELECT id = :once_id AS first, state, unique_key IS NOT NULL AS has_key, holds_key
  FROM pgapp.job WHERE id IN (:once_id, :once2) ORDER BY id;
SELECT * FROM pg_temp.show(format('SELECT pgapp.retry_job(%s)', :once_id));
SELECT state FROM pgapp.job WHERE id = :once_id;
SELECT pgapp.cancel_job(:once2) AS cancelled_second, pgapp.retry_job(:once_id) AS retried_first;
SELECT pgapp.enqueue('ext', 'noop', '{"once": true}', unique_by => '{once}') = :once_id AS first_holds_key_again;
-- (and back: the second job available again, holding the key)
SELECT pgapp.cancel_job(:once_id) AS cancelled_first, pgapp.retry_job(:once2) AS retried_second;
SELECT id = :once_id AS first, state, holds_key FROM pgapp.job WHERE id IN (:once_id, :once2) ORDER BY id;

-- backoff: 15 s + 2^attempt s, up to 10% jitter; scaled onto 20 attempts beyond that
SELECT a, pgapp.job_backoff(a, 20, 0) AS no_jitter, pgapp.job_backoff(a, 20, 1) AS full_jitter
  FROM generate_series(1, 5) AS a;
SELECT pgapp.job_backoff(20, 40, 0) = pgapp.job_backoff(10, 20, 0) AS scaled;
SELECT bool_and(pgapp.job_backoff(3) BETWEEN interval '23 s' AND interval '25.3 s') AS jitter_within_10_percent
  FROM generate_series(1, 200);

-- the external-worker API: a queue of its own
SELECT pgapp.create_queue('api', 0);
-- a NOTIFY on pgapp_jobs:<queue> when work arrives (external queues only)
SELECT c FROM dblink('listener', 'LISTEN "pgapp_jobs:api"; SELECT 1') AS t(c int);
SELECT pgapp.enqueue_many('api', 'noop', '[{"job": "a"}, {"job": "b"}, {"job": "c"}]', max_attempts => 2) AS api_ids;
SELECT pgapp.enqueue('api', 'noop', '{"job": "urgent"}', priority => -1) AS urgent_id;
SELECT pg_temp.wait_for('available', 2);
SELECT * FROM pg_temp.received();
-- claimed in priority order, attempt counted, lease set
SELECT id, args ->> 'job' AS job, state, attempt, attempted_by ~ '^external postgres \(\d+\)$' AS by_ok,
       expires_at - attempted_at AS lease
  FROM pgapp.fetch_jobs('api', 2, lease => '5 minutes');
-- claimed jobs are not fetched again
SELECT array_agg(args ->> 'job') AS next FROM pgapp.fetch_jobs('api', 10);
-- heartbeat renews each lease by its length and returns the ids still held
UPDATE pgapp.job SET expires_at = now() + interval '3 seconds' WHERE queue = 'api' AND state = 'executing';
SELECT pgapp.heartbeat(array_agg(id) || 999::bigint) = array_agg(id ORDER BY id) AS held_all_but_unknown
  FROM pgapp.job WHERE queue = 'api' AND state = 'executing';
SELECT args ->> 'job' AS job, lease, expires_at - now() BETWEEN lease - interval '5 s' AND lease AS renewed
  FROM pgapp.job WHERE queue = 'api' AND state = 'executing' ORDER BY id;
-- an external worker's progress: kept on the job, broadcast on jobs:<id>
SELECT pg_temp.listen('jobs:' || id) IS NOT NULL AS listening FROM pgapp.job WHERE args ->> 'job' = 'urgent';
SELECT pgapp.report_progress(id, 25, 'a quarter', attempt) AS reported FROM pgapp.job WHERE args ->> 'job' = 'urgent';
SELECT pg_temp.wait_for('progress');
SELECT g.channel = 'jobs:' || j.id AS on_its_topic, (g.message -> 'payload' ->> 'id')::bigint = j.id AS its_id,
       (g.message -> 'payload') - 'id' AS payload, j.progress
  FROM pg_temp.received() AS g, pgapp.job AS j WHERE j.args ->> 'job' = 'urgent';
SELECT pgapp.complete_job(id, '{"sent": true}') AS completed FROM pgapp.job WHERE args ->> 'job' = 'urgent';
SELECT pgapp.complete_job(id) AS again FROM pgapp.job WHERE args ->> 'job' = 'urgent';
SELECT pgapp.fail_job(id, 'smtp timeout') AS failed FROM pgapp.job WHERE args ->> 'job' = 'a';
SELECT args ->> 'job' AS job, state, attempt, result,
       scheduled_at - now() BETWEEN interval '17 s' AND interval '18.7 s' AS backoff_ok,
       errors -> 0 ->> 'message' AS error
  FROM pgapp.job WHERE queue = 'api' ORDER BY id;
SELECT * FROM pg_temp.show($$SELECT pgapp.complete_job(999)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.fail_job(NULL, 'x')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.fetch_jobs('api', 0)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.fetch_jobs('api', 1, lease => '0 s')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.fetch_jobs('nope', 1)$$);
-- the last attempt's failure discards the job
UPDATE pgapp.job SET scheduled_at = now() WHERE args ->> 'job' = 'a';
SELECT args ->> 'job' AS job, attempt FROM pgapp.fetch_jobs('api', 1);
SELECT pgapp.fail_job(id, 'smtp timeout again') FROM pgapp.job WHERE args ->> 'job' = 'a';
SELECT state, attempt, discarded_at IS NOT NULL AS discarded_at_set, jsonb_array_length(errors) AS errors
  FROM pgapp.job WHERE args ->> 'job' = 'a';
-- a lease that ran out: the job is rescued (available again at once, the attempt counted)
UPDATE pgapp.job SET expires_at = now() - interval '1 s' WHERE args ->> 'job' = 'b';
SELECT args ->> 'job' AS job, attempt FROM pgapp.fetch_jobs('api', 1);
SELECT errors -> 0 ->> 'sqlstate' AS sqlstate, errors -> 0 ->> 'message' ~ 'stopped renewing its lease' AS why
  FROM pgapp.job WHERE args ->> 'job' = 'b';
-- past discard_after, a job is discarded instead of run
SELECT pgapp.enqueue('api', 'noop', '{"job": "stale"}', discard_after => '1 microsecond') AS stale_id \gset
SELECT count(*) AS fetched FROM pgapp.fetch_jobs('api', 5);
SELECT state, attempt FROM pgapp.job WHERE id = :stale_id;
-- a paused queue hands out nothing
SELECT pgapp.enqueue('held', 'noop', '{"job": "held"}') AS held_id \gset
SELECT count(*) AS from_paused FROM pgapp.fetch_jobs('held', 5);
-- (resumed and paused again in one transaction: no worker may run its jobs)
BEGIN;
SELECT pgapp.resume_queue('held');
SELECT pgapp.pause_queue('held');
COMMIT;

-- cancel and retry
SELECT pgapp.cancel_job(:held_id) AS cancel_available, pgapp.cancel_job(:later_id) AS cancel_scheduled;
SELECT pgapp.cancel_job(:held_id) AS cancel_again;
SELECT state, cancelled_at IS NOT NULL AS cancelled_at_set FROM pgapp.job WHERE id = :held_id;
SELECT pgapp.retry_job(:held_id) AS retry_cancelled;
SELECT pgapp.retry_job(:held_id) AS retry_available;
SELECT state, cancelled_at FROM pgapp.job WHERE id = :held_id;
-- a discarded job retried gets one more attempt
SELECT pgapp.retry_job(id) AS retry_discarded, state AS was FROM pgapp.job WHERE args ->> 'job' = 'a';
SELECT state, attempt, max_attempts FROM pgapp.job WHERE args ->> 'job' = 'a';
SELECT * FROM pg_temp.show($$SELECT pgapp.cancel_job(999)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.retry_job(NULL)$$);

-- roles: a job runs as its enqueuer, who must be allowed to execute the worker;
-- only the enqueuer or pgapp_admin may cancel or retry it
CREATE ROLE jobs_alice;
CREATE ROLE jobs_bob;
CREATE ROLE jobs_admin IN ROLE pgapp_admin;
CREATE FUNCTION public.secret_worker(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
REVOKE EXECUTE ON FUNCTION public.secret_worker(jsonb, pgapp.job_info) FROM PUBLIC;
SET ROLE jobs_alice;
SELECT pgapp.enqueue('ext', 'noop', '{"by": "alice"}') AS alice_job \gset
SELECT * FROM pg_temp.show($$SELECT pgapp.enqueue('ext', 'secret_worker')$$);
SELECT * FROM pg_temp.show($$SELECT * FROM pgapp.job$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.fetch_jobs('ext', 1)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.create_queue('mine', 1)$$);
SET ROLE jobs_bob;
SELECT * FROM pg_temp.show(format('SELECT pgapp.cancel_job(%s)', :alice_job));
SET ROLE jobs_admin;
SELECT pgapp.cancel_job(:alice_job) AS admin_cancels;
RESET ROLE;
SELECT owner::regrole FROM pgapp.job WHERE id = :alice_job;

-- monitoring
SELECT queue, concurrency, paused, scheduled, due, available, executing, retryable, completed,
       discarded, cancelled, oldest_due_age IS NOT NULL AS has_due
  FROM pgapp.queue_stats ORDER BY queue;
SELECT job_id, queue, worker, state, attempt, sqlstate, message FROM pgapp.job_errors ORDER BY job_id, attempt;

-- pruning: finished jobs older than the retention, in batches
-- (the times are made up: no prune may have noted the ids issued since then, see below)
TRUNCATE pgapp.job_prune_mark;
UPDATE pgapp.job SET inserted_at = now() - interval '3 days', completed_at = now() - interval '2 days' WHERE state = 'completed';
SELECT pgapp.prune_jobs(batch_size => 1) AS pruned, pgapp.prune_jobs() AS pruned_rest;
SELECT count(*) FILTER (WHERE state = 'completed') AS completed_left, count(*) > 0 AS others_kept FROM pgapp.job;
SELECT * FROM pg_temp.show($$SELECT pgapp.prune_jobs(batch_size => 0)$$);
-- each prune notes the last id issued; a later prune stops at the note of the first
-- prune at or after its cutoff (jobs finished before it had their ids issued before it)
SELECT count(*) AS marks, max(last_id) = (SELECT last_value FROM pgapp.job_id_seq) AS mark_is_last_id
  FROM pgapp.job_prune_mark;
SELECT pgapp.create_queue('prune', 0);
SELECT pgapp.enqueue('prune', 'noop') AS before_mark \gset
SELECT pgapp.enqueue('prune', 'noop') AS after_mark \gset
TRUNCATE pgapp.job_prune_mark;
INSERT INTO pgapp.job_prune_mark VALUES (now() - interval '2 days', 0), (now() - interval '12 hours', :before_mark);
UPDATE pgapp.job SET state = 'completed', completed_at = now() - interval '3 days'
 WHERE id IN (:before_mark, :after_mark);
SELECT pgapp.prune_jobs() AS pruned_up_to_mark;
SELECT id = :after_mark AS kept_past_mark FROM pgapp.job WHERE id IN (:before_mark, :after_mark);
-- marks older than the retention go; the mark of this prune stays
SELECT array_agg(last_id = :before_mark ORDER BY at) AS mark_12h_ago,
       array_agg(at > now() - interval '1 minute' ORDER BY at) AS mark_now FROM pgapp.job_prune_mark;
SELECT pgapp.prune_jobs() AS pruned_then;
SELECT pgapp.drop_queue('prune', force => true);

-- a queue's rate limit: at most max_jobs started per period (a token bucket)
SELECT pgapp.create_queue('limited', 0);
SELECT pgapp.limit_queue('limited', 2, '1 hour');
SELECT name, rate_limit, rate_period, rate_tokens FROM pgapp.queue WHERE name = 'limited';
SELECT cardinality(pgapp.enqueue_many('limited', 'noop', '[{}, {}, {}, {}, {}]')) AS enqueued;
SELECT count(*) AS first_fetch FROM pgapp.fetch_jobs('limited', 5);
SELECT count(*) AS no_token_left FROM pgapp.fetch_jobs('limited', 5);
-- half a period later one token has come back
UPDATE pgapp.queue SET rate_updated_at = rate_updated_at - interval '30 minutes' WHERE name = 'limited';
SELECT count(*) AS half_a_period_later FROM pgapp.fetch_jobs('limited', 5);
-- without the limit, the rest
SELECT pgapp.limit_queue('limited', NULL, NULL);
SELECT count(*) AS unlimited FROM pgapp.fetch_jobs('limited', 5);
SELECT * FROM pg_temp.show($$SELECT pgapp.limit_queue('limited', 0, '1 hour')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.limit_queue('limited', 5, NULL)$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.limit_queue('nope', 5, '1 s')$$);
SELECT pgapp.drop_queue('limited', force => true);

-- dropping a queue with unfinished jobs needs force
SELECT * FROM pg_temp.show($$SELECT pgapp.drop_queue('api')$$);
SELECT pgapp.drop_queue('api', force => true);
SELECT count(*) AS api_jobs_left FROM pgapp.job WHERE queue = 'api';
SELECT * FROM pg_temp.show($$SELECT pgapp.drop_queue('api')$$);

-- cron through pg_cron: the schedule enqueues a unique job each time it fires
SELECT pgapp.schedule('nightly-noop', '0 2 * * *', 'ext', 'noop', '{"cron": true}') > 0 AS scheduled;
SELECT schedule, command, database = current_database() AS here FROM cron.job WHERE jobname = 'nightly-noop';
-- what pg_cron will run works, and twice within the minute enqueues once
SELECT command AS cron_command FROM cron.job WHERE jobname = 'nightly-noop' \gset
BEGIN;
:cron_command;
:cron_command;
SELECT count(*) AS cron_jobs FROM pgapp.job WHERE args = '{"cron": true}';
ROLLBACK;
SELECT pgapp.schedule('nightly-noop', '30 3 * * *', 'ext', 'noop', '{"cron": true}') > 0 AS rescheduled;
SELECT schedule FROM cron.job WHERE jobname = 'nightly-noop';
SELECT * FROM pg_temp.show($$SELECT pgapp.schedule('bad', 'every day', 'ext', 'noop')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.schedule('bad', '* * * * *', 'nope', 'noop')$$);
SELECT * FROM pg_temp.show($$SELECT pgapp.schedule('bad', '* * * * *', 'ext', 'noop', '[]')$$);
SELECT pgapp.unschedule('nightly-noop') AS unscheduled;
SELECT * FROM pg_temp.show($$SELECT pgapp.unschedule('nightly-noop')$$);

SELECT dblink_disconnect('listener');
DROP ROLE jobs_alice, jobs_bob, jobs_admin;

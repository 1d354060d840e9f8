-- sql/parts/82_jobs_supervision.sql: jobs: monitoring, wake-ups, the supervisor, pruning (docs/jobs.md)

CREATE FUNCTION pgapp._job_workers(
    OUT slot integer, OUT pid integer, OUT queue text, OUT state text, OUT job bigint,
    OUT since timestamptz, OUT job_started timestamptz, OUT jobs_done bigint,
    OUT progress double precision, OUT progress_message text, OUT progress_seq bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgapp_job_workers'
LANGUAGE C VOLATILE;

CREATE VIEW pgapp.workers AS
SELECT w.slot, w.pid, w.queue, w.state, w.job, w.since, w.job_started, w.jobs_done,
       w.progress, w.progress_message
  FROM pgapp._job_workers() AS w;

COMMENT ON VIEW pgapp.workers IS
'The queue workers of this database: slot, process, queue, state, the job running and its progress';

CREATE FUNCTION pgapp.job_progress(percent numeric, message text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_job_progress'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.job_progress(numeric, text) IS
'From inside a job: report how far it has come (broadcast on jobs:<id>, shown in pgapp.workers and queue_stats)';

CREATE VIEW pgapp.queue_stats AS
SELECT q.name AS queue, q.concurrency, q.paused,
       count(j.id) FILTER (WHERE j.state = 'scheduled') AS scheduled,
       count(j.id) FILTER (WHERE j.state = 'available'
                              OR (j.state IN ('scheduled', 'retryable') AND j.scheduled_at <= now())) AS due,
       count(j.id) FILTER (WHERE j.state = 'available') AS available,
       count(j.id) FILTER (WHERE j.state = 'executing') AS executing,
       count(j.id) FILTER (WHERE j.state = 'retryable') AS retryable,
       count(j.id) FILTER (WHERE j.state = 'completed') AS completed,
       count(j.id) FILTER (WHERE j.state = 'discarded') AS discarded,
       count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       now() - min(j.scheduled_at) FILTER (WHERE j.state IN ('scheduled', 'available', 'retryable')
                                             AND j.scheduled_at <= now()) AS oldest_due_age,
       (SELECT count(*) FROM pgapp._job_workers() AS w WHERE w.queue = q.name) AS workers,
       (SELECT count(*) FROM pgapp._job_workers() AS w WHERE w.queue = q.name AND w.job IS NOT NULL) AS busy,
       (SELECT jsonb_agg(p.p ORDER BY p.job)
          FROM (SELECT w.job, jsonb_strip_nulls(jsonb_build_object('job', w.job, 'percent', w.progress,
                                                                   'message', w.progress_message)) AS p
                  FROM pgapp._job_workers() AS w WHERE w.queue = q.name AND w.progress IS NOT NULL
                UNION ALL
                -- external workers' (pgapp.report_progress)
                SELECT x.id, jsonb_build_object('job', x.id, 'percent', x.progress)
                  FROM pgapp.job AS x
                 WHERE x.queue = q.name AND x.state = 'executing' AND x.lease IS NOT NULL
                   AND x.progress IS NOT NULL) AS p) AS progress
  FROM pgapp.queue AS q
  LEFT JOIN pgapp.job AS j ON j.queue = q.name
 GROUP BY q.name, q.concurrency, q.paused;

COMMENT ON VIEW pgapp.queue_stats IS
'Per queue: jobs by state, how many are due now, how long the oldest due job has waited, workers and progress';

CREATE VIEW pgapp.job_errors AS
SELECT j.id AS job_id, j.queue, j.worker, j.state, (e.value ->> 'attempt')::integer AS attempt,
       (e.value ->> 'at')::timestamptz AS at, e.value ->> 'sqlstate' AS sqlstate,
       e.value ->> 'message' AS message, e.value ->> 'detail' AS detail
  FROM pgapp.job AS j
 CROSS JOIN LATERAL jsonb_array_elements(j.errors) AS e(value)
 WHERE j.errors <> '[]';

COMMENT ON VIEW pgapp.job_errors IS
'Every recorded failure of every job still kept, one row per attempt';

/*
 * Tell whoever runs a queue that work is due: its background workers (at
 * commit, through shared memory), or, for a queue of external workers
 * (concurrency 0), a NOTIFY on pgapp_jobs:<queue>.
 */
CREATE FUNCTION pgapp._job_wake_workers(queue text, n integer DEFAULT 1)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_job_wake_workers'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp._job_interrupt(id bigint, pid integer)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_job_interrupt'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp._job_wake(queue text, n integer DEFAULT 1)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pgapp.queue AS q WHERE q.name = queue AND q.concurrency = 0) THEN
        PERFORM pg_notify('pgapp_jobs:' || queue, jsonb_build_object('event', 'available', 'queue', queue)::text);
    END IF;
    -- an external queue still needs the supervisor (scheduled jobs falling due, rescue, pruning)
    PERFORM pgapp._job_wake_workers(queue, n);
END
$$;

/*
 * The supervisor's round (jobs_supervisor.c), in one transaction: jobs that
 * were running when the server crashed have their attempt counted (a
 * worker's claim commits without waiting for its WAL flush, so after a crash
 * the claim may be gone; the worker noted the running job in a file that
 * survives the crash: crashed / crashed_attempts); the jobs a worker that
 * ended had claimed but not started go back untouched; with rescue (the
 * first round, and a round after workers ended), executing jobs of pgapp
 * workers that are not among the live ones (read from shared memory just
 * before this statement began) become available again (discarded after
 * their last attempt); expired external leases too, every round;
 * external queues whose scheduled or retryable jobs fell due since the last
 * round are NOTIFYed; and each queue's state is returned: due = due jobs,
 * counted up to the concurrency; next_at = when the next one falls due.
 */
CREATE FUNCTION pgapp._job_supervise(live text[], since timestamptz, ended text[], ended_running bigint[],
                                     rescue boolean, crashed bigint[], crashed_attempts integer[])
RETURNS TABLE (queue text, concurrency integer, paused boolean, due integer, next_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(crashed) > 0 THEN
        -- as the rescue below would have, had the claim reached the disk
        UPDATE pgapp.job AS j
           SET attempt = c.attempt,
               errors = j.errors || jsonb_build_array(jsonb_build_object(
                   'attempt', c.attempt, 'at', now(), 'sqlstate', '57P01',
                   'message', 'the worker running the job ended before it finished; the job was rescued')),
               state = CASE WHEN c.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::pgapp.job_state,
               discarded_at = CASE WHEN c.attempt >= j.max_attempts THEN now() END,
               scheduled_at = now()
          FROM ROWS FROM (unnest(crashed), unnest(crashed_attempts)) AS c(id, attempt)
         WHERE j.id = c.id AND j.attempt < c.attempt
           AND j.state IN ('scheduled', 'available', 'retryable');
    END IF;
    -- a worker that ended (and was seen to) had claimed a batch: the jobs
    -- of it that had not started go back as they were, attempt not counted
    IF cardinality(ended) > 0 THEN
        UPDATE pgapp.job AS j
           SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'available' ELSE 'cancelled' END::pgapp.job_state,
               cancelled_at = CASE WHEN j.cancel_requested_at IS NULL THEN NULL ELSE now() END,
               attempt = greatest(j.attempt - 1, 0), scheduled_at = now()
         WHERE j.state = 'executing' AND j.lease IS NULL
           AND j.attempted_by = ANY (ended) AND j.id <> ALL (ended_running);
    END IF;
    IF rescue THEN
        WITH lost AS (
            SELECT j.id FROM pgapp.job AS j
             WHERE j.state = 'executing' AND j.lease IS NULL
               AND j.attempted_by <> ALL (live) AND j.attempted_at < statement_timestamp()
               FOR UPDATE SKIP LOCKED)
        UPDATE pgapp.job AS j
           SET errors = j.errors || jsonb_build_array(jsonb_build_object(
                   'attempt', j.attempt, 'at', now(), 'sqlstate', '57P01',
                   'message', 'the worker running the job ended before it finished; the job was rescued',
                   'worker', j.attempted_by)),
               state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                            WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::pgapp.job_state,
               discarded_at = CASE WHEN j.cancel_requested_at IS NULL AND j.attempt >= j.max_attempts THEN now() END,
               cancelled_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
               scheduled_at = now()
          FROM lost WHERE j.id = lost.id;
    END IF;
    PERFORM pgapp._job_rescue_expired(NULL);
    PERFORM pg_notify('pgapp_jobs:' || q.name, jsonb_build_object('event', 'available', 'queue', q.name)::text)
       FROM pgapp.queue AS q
      WHERE q.concurrency = 0 AND NOT q.paused
        AND EXISTS (SELECT FROM pgapp.job AS j
                     WHERE j.queue = q.name AND j.claimable
                       AND j.scheduled_at > since AND j.scheduled_at <= statement_timestamp()
                       AND j.inserted_at < j.scheduled_at);
    RETURN QUERY
    SELECT q.name, q.concurrency, q.paused,
           (SELECT count(*)::integer FROM (
                SELECT FROM pgapp.job AS j
                 WHERE j.queue = q.name AND j.claimable
                   AND j.scheduled_at <= statement_timestamp()
                 -- up to 64 a worker, for the share new workers take (at most 4096 read)
                 LIMIT least(greatest(q.concurrency, 1) * 64, 4096)) AS d),
           (SELECT j.scheduled_at FROM pgapp.job AS j
             WHERE j.queue = q.name AND j.claimable AND j.scheduled_at > j.inserted_at
               AND j.scheduled_at > statement_timestamp()
             ORDER BY j.scheduled_at LIMIT 1)
      FROM pgapp.queue AS q;
END
$$;

/*
 * Delete jobs finished longer ago than older_than, at most batch_size per
 * call (run it again while it returns batch_size).
 */
CREATE FUNCTION pgapp.prune_jobs(older_than interval DEFAULT NULL, batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    age interval := coalesce(older_than, current_setting('pgapp.jobs_retention', true)::interval, interval '1 day');
    n bigint;
    bound bigint;
BEGIN
    IF age < interval '0' OR coalesce(batch_size, 0) < 1 THEN
        RAISE EXCEPTION 'older_than must not be negative and batch_size must be at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- jobs finished before the cutoff have ids up to the first mark at or
    -- after it (none yet: the last id issued now)
    SELECT m.last_id INTO bound FROM pgapp.job_prune_mark AS m
     WHERE m.at >= now() - age ORDER BY m.at LIMIT 1;
    IF bound IS NULL THEN
        bound := coalesce(pg_sequence_last_value('pgapp.job_id_seq'), 0);
    END IF;
    DELETE FROM pgapp.job AS j
     WHERE j.id IN (SELECT x.id FROM pgapp.job AS x
                     WHERE x.id <= bound
                       AND x.state IN ('completed', 'discarded', 'cancelled')
                       AND coalesce(x.completed_at, x.discarded_at, x.cancelled_at) < now() - age
                     ORDER BY x.id
                     LIMIT batch_size
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- this prune's mark (one per second at most); marks before the cutoff
    -- serve no later prune of that age (nor of the retention's, when a
    -- shorter age was asked for)
    INSERT INTO pgapp.job_prune_mark (at, last_id)
    SELECT now(), coalesce(pg_sequence_last_value('pgapp.job_id_seq'), 0)
     WHERE NOT EXISTS (SELECT FROM pgapp.job_prune_mark AS m WHERE m.at > now() - interval '1 second')
    ON CONFLICT (at) DO NOTHING;
    DELETE FROM pgapp.job_prune_mark AS m
     WHERE m.at < now() - greatest(age, coalesce(current_setting('pgapp.jobs_retention', true)::interval,
                                                 interval '1 day'));
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp.prune_jobs(interval, integer) IS
'Delete finished jobs older than older_than (default pgapp.jobs_retention), batch_size at a time';

REVOKE ALL ON FUNCTION pgapp._job_wake(text, integer),
    pgapp._job_supervise(text[], timestamptz, text[], bigint[], boolean, bigint[], integer[]),
    pgapp._job_wake_workers(text, integer), pgapp._job_interrupt(bigint, integer), pgapp._job_workers()
    FROM PUBLIC;
GRANT SELECT ON pgapp.queue_stats, pgapp.job_errors TO pgapp_admin;
REVOKE ALL ON pgapp.queue_stats, pgapp.job_errors FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._job_workers() TO pgapp_admin;
REVOKE ALL ON pgapp.workers FROM PUBLIC;
GRANT SELECT ON pgapp.workers TO pgapp_admin;
REVOKE ALL ON FUNCTION pgapp.prune_jobs(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.prune_jobs(interval, integer) TO pgapp_admin;


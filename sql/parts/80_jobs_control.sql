-- sql/parts/80_jobs_control.sql: jobs: cancel and retry, queue administration, failures and rescue (docs/jobs.md)

-- The job, locked, that caller may change (their own, or pgapp_admin); errors otherwise.
CREATE FUNCTION pgapp._job_for_caller(id bigint, caller oid)
RETURNS pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'job id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO j FROM pgapp.job AS x WHERE x.id = _job_for_caller.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = 'undefined_object',
            HINT = 'Finished jobs are pruned after pgapp.jobs_retention.';
    END IF;
    IF j.owner IS DISTINCT FROM caller AND NOT pg_has_role(caller, 'pgapp_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied for job %', id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the role that enqueued a job, or a member of pgapp_admin, may change it.';
    END IF;
    RETURN j;
END
$$;

CREATE FUNCTION pgapp._job_cancel_job(id bigint, caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
BEGIN
    j := pgapp._job_for_caller(id, caller);
    IF j.state IN ('completed', 'discarded', 'cancelled') OR j.cancel_requested_at IS NOT NULL THEN
        RETURN false;
    END IF;
    IF j.state = 'executing' AND j.lease IS NULL THEN
        -- claimed by a pgapp worker: flag it, and at commit ask the worker,
        -- which cancels it (rolling its effects back) unless it has finished
        UPDATE pgapp.job AS x SET cancel_requested_at = now() WHERE x.id = j.id;
        PERFORM pgapp._job_interrupt(j.id, substring(j.attempted_by FROM '^pgapp worker (\d+)$')::integer);
        RETURN true;
    END IF;
    UPDATE pgapp.job AS x
       SET state = 'cancelled', cancelled_at = now(), expires_at = NULL
     WHERE x.id = j.id;
    RETURN true;
END
$$;

CREATE FUNCTION pgapp.cancel_job(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_job_cancel_job'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.cancel_job(bigint) IS
'Cancel a job that has not finished; a running one is interrupted. False when it had finished';

CREATE FUNCTION pgapp._job_retry_job(id bigint, caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
    holder bigint;
BEGIN
    j := pgapp._job_for_caller(id, caller);
    IF j.state IN ('available', 'executing') THEN
        RETURN false;
    END IF;
    -- a discarded or cancelled job takes its unique key back, unless another
    -- job was enqueued with it meanwhile
    IF NOT j.holds_key AND j.unique_key IS NOT NULL THEN
        SELECT x.id INTO holder FROM pgapp.job AS x WHERE x.unique_key = j.unique_key AND x.holds_key;
        IF FOUND THEN
            RAISE EXCEPTION 'job % cannot run again: job % now holds its unique key', j.id, holder
                USING ERRCODE = 'unique_violation',
                      DETAIL = format('Job %s was %s, which released its key; job %s was enqueued with it since.',
                                      j.id, j.state, holder),
                      HINT = format('Job %s runs in its place; cancel it first to run job %s again.', holder, j.id);
        END IF;
    END IF;
    UPDATE pgapp.job AS x
       SET state = 'available', scheduled_at = now(), completed_at = NULL, discarded_at = NULL,
           cancelled_at = NULL, cancel_requested_at = NULL,
           max_attempts = greatest(x.max_attempts, x.attempt + 1)
     WHERE x.id = j.id;
    PERFORM pgapp._job_wake(j.queue);
    RETURN true;
END
$$;

CREATE FUNCTION pgapp.retry_job(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_job_retry_job'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.retry_job(bigint) IS
'Run a scheduled, retryable or finished job again now; false when it is available or running';

CREATE FUNCTION pgapp.create_queue(name text, concurrency integer, paused boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR concurrency IS NULL OR paused IS NULL THEN
        RAISE EXCEPTION 'queue name, concurrency and paused must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,51}$' THEN
        RAISE EXCEPTION 'invalid queue name "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A queue name has 1 to 52 letters, digits, "_", "." or "-" and does not start with "." or "-".';
    END IF;
    IF concurrency < 0 OR concurrency > 1000 THEN
        RAISE EXCEPTION 'concurrency must be between 0 and 1000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', concurrency),
            HINT = 'Concurrency 0 makes a queue that only external workers serve (pgapp.fetch_jobs).';
    END IF;
    IF EXISTS (SELECT FROM pgapp.queue AS q WHERE q.name = create_queue.name) THEN
        RAISE EXCEPTION 'queue "%" already exists', name USING ERRCODE = 'duplicate_object',
            HINT = 'Change its concurrency with UPDATE pgapp.queue, or drop it first.';
    END IF;
    INSERT INTO pgapp.queue (name, concurrency, paused) VALUES (name, concurrency, paused);
    PERFORM pgapp._job_wake_workers(name);     -- the database's supervisor, at commit
END
$$;

COMMENT ON FUNCTION pgapp.create_queue(text, integer, boolean) IS
'Create a job queue run by up to concurrency background workers (0: external workers only)';

CREATE FUNCTION pgapp._job_set_paused(queue text, paused boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_check_queue(queue);
    UPDATE pgapp.queue AS q SET paused = _job_set_paused.paused WHERE q.name = queue;
    IF NOT paused THEN
        PERFORM pgapp._job_wake(queue);
    END IF;
END
$$;

CREATE FUNCTION pgapp.pause_queue(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_set_paused(name, true);
END
$$;

COMMENT ON FUNCTION pgapp.pause_queue(text) IS
'Stop starting jobs of a queue (running ones finish)';

CREATE FUNCTION pgapp.resume_queue(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_set_paused(name, false);
END
$$;

COMMENT ON FUNCTION pgapp.resume_queue(text) IS
'Start running the jobs of a paused queue again';

CREATE FUNCTION pgapp.drop_queue(name text, force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pending bigint;
BEGIN
    PERFORM pgapp._job_check_queue(name);
    PERFORM FROM pgapp.queue AS q WHERE q.name = drop_queue.name FOR UPDATE;
    SELECT count(*) INTO pending FROM pgapp.job AS j
     WHERE j.queue = drop_queue.name AND j.state NOT IN ('completed', 'discarded', 'cancelled');
    IF pending > 0 AND NOT coalesce(force, false) THEN
        RAISE EXCEPTION 'queue "%" has % unfinished jobs', name, pending
            USING ERRCODE = 'object_in_use',
                  HINT = 'Wait for them, cancel them, or drop the queue with force => true to delete them.';
    END IF;
    DELETE FROM pgapp.queue AS q WHERE q.name = drop_queue.name;
END
$$;

CREATE FUNCTION pgapp.limit_queue(name text, max_jobs integer, per interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_check_queue(name);
    IF (max_jobs IS NULL) <> (per IS NULL) THEN
        RAISE EXCEPTION 'max_jobs and per must both be given, or both be null to remove the limit'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_jobs < 1 OR per <= interval '0' THEN
        RAISE EXCEPTION 'a queue''s rate limit needs max_jobs >= 1 and a positive period'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s per %s.', max_jobs, per);
    END IF;
    UPDATE pgapp.queue AS q
       SET rate_limit = max_jobs, rate_period = per, rate_tokens = max_jobs, rate_updated_at = now()
     WHERE q.name = limit_queue.name;
    PERFORM pgapp._job_wake(name);
END
$$;

COMMENT ON FUNCTION pgapp.limit_queue(text, integer, interval) IS
'Let a queue start at most max_jobs jobs per period (a token bucket); NULL, NULL removes the limit';

COMMENT ON FUNCTION pgapp.drop_queue(text, boolean) IS
'Drop a queue and its finished jobs; force => true also deletes unfinished ones';

/*
 * Record a failed attempt of an executing job: retryable after the backoff,
 * or discarded after max_attempts or when the retry would come past
 * discard_after.  error: {"message", "sqlstate", ...}.
 */
CREATE FUNCTION pgapp._job_record_failure(jid bigint, error jsonb)
RETURNS pgapp.job_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result pgapp.job_state;
BEGIN
    UPDATE pgapp.job AS j
       SET errors = CASE WHEN d.state = 'cancelled' THEN j.errors
                         ELSE j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', clock_timestamp()) || error) END,
           state = d.state,
           scheduled_at = CASE WHEN d.state = 'retryable' THEN d.retry_at ELSE j.scheduled_at END,
           discarded_at = CASE WHEN d.state = 'discarded' THEN clock_timestamp() END,
           cancelled_at = CASE WHEN d.state = 'cancelled' THEN clock_timestamp() END,
           expires_at = NULL
      FROM (SELECT x.id,
                   clock_timestamp() + pgapp.job_backoff(x.attempt, x.max_attempts) AS retry_at,
                   CASE WHEN x.cancel_requested_at IS NOT NULL THEN 'cancelled'
                        WHEN x.attempt >= x.max_attempts
                          OR x.inserted_at + x.discard_after < clock_timestamp() + pgapp.job_backoff(x.attempt, x.max_attempts, 0)
                        THEN 'discarded' ELSE 'retryable' END::pgapp.job_state AS state
              FROM pgapp.job AS x WHERE x.id = jid) AS d
     WHERE j.id = d.id AND j.state = 'executing'
    RETURNING j.state INTO result;
    RETURN result;
END
$$;

/*
 * Executing jobs whose external worker stopped renewing its lease go back
 * to available at once (their attempt counted and an error recorded), or
 * to discarded after their last attempt.  Run by fetch_jobs and the
 * launcher.
 */
CREATE FUNCTION pgapp._job_rescue_expired(queue text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    WITH lost AS (
        SELECT j.id FROM pgapp.job AS j
         WHERE j.lease IS NOT NULL AND j.expires_at < statement_timestamp() AND j.state = 'executing'
           AND (_job_rescue_expired.queue IS NULL OR j.queue = _job_rescue_expired.queue)
           FOR UPDATE SKIP LOCKED)
    UPDATE pgapp.job AS j
       SET errors = j.errors || jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'at', now(), 'sqlstate', '57P01',
               'message', 'the worker stopped renewing its lease; the job was rescued',
               'worker', j.attempted_by)),
           state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::pgapp.job_state,
           discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
           scheduled_at = now(), expires_at = NULL
      FROM lost WHERE j.id = lost.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION pgapp._job_for_caller(bigint, oid), pgapp._job_cancel_job(bigint, oid),
    pgapp._job_retry_job(bigint, oid), pgapp._job_set_paused(text, boolean),
    pgapp._job_record_failure(bigint, jsonb), pgapp._job_rescue_expired(text)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.create_queue(text, integer, boolean), pgapp.pause_queue(text),
    pgapp.resume_queue(text), pgapp.drop_queue(text, boolean), pgapp.limit_queue(text, integer, interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.create_queue(text, integer, boolean), pgapp.pause_queue(text),
    pgapp.resume_queue(text), pgapp.drop_queue(text, boolean), pgapp.limit_queue(text, integer, interval)
    TO pgapp_admin;


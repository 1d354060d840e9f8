-- sql/parts/81_jobs_external.sql: jobs: external workers, any process that can call SQL (pgapp_worker role) (docs/jobs.md)

/*
 * THE claim, for every claimer: up to n due jobs of the queue, highest
 * priority first, locked with SKIP LOCKED, made executing with their
 * attempt counted (or discarded when past their discard_after); returns the
 * executing ones in priority order.  by names the claimer (attempted_by);
 * lease is NULL for pgapp's own workers (the supervisor watches their
 * processes) and the heartbeat deadline for external ones.  No check of the
 * queue (paused, rate limit): pgapp._job_claim and the workers' claim
 * (src/jobs/jobs_claim.c) call it after theirs.  PL/pgSQL for its plan,
 * kept for the session and generic (the custom plans are the same plan,
 * yet would be made at every call): as LANGUAGE sql it was planned at
 * every call, which doubled the claim's time (bench/jobs: claim_p50
 * 0.36-0.48 ms -> 0.74-0.86 ms; PL/pgSQL 0.41-0.42 ms).
 */
CREATE FUNCTION pgapp._job_claim_due(queue text, n integer, by text, lease interval)
RETURNS SETOF pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT j.id FROM pgapp.job AS j
         WHERE j.queue = _job_claim_due.queue AND j.claimable
           AND j.scheduled_at <= statement_timestamp()
         ORDER BY j.priority, j.scheduled_at, j.id
         LIMIT _job_claim_due.n
           FOR UPDATE OF j SKIP LOCKED),
    claimed AS (
        UPDATE pgapp.job AS j
           SET state = CASE WHEN j.inserted_at + j.discard_after < statement_timestamp()
                            THEN 'discarded' ELSE 'executing' END::pgapp.job_state,
               discarded_at = CASE WHEN j.inserted_at + j.discard_after < statement_timestamp() THEN now() END,
               attempt = j.attempt + CASE WHEN j.inserted_at + j.discard_after < statement_timestamp() THEN 0 ELSE 1 END,
               attempted_at = statement_timestamp(),
               attempted_by = _job_claim_due.by,
               lease = _job_claim_due.lease,
               expires_at = statement_timestamp() + _job_claim_due.lease
         WHERE j.id = ANY (ARRAY(SELECT picked.id FROM picked))
        RETURNING j.*)
    SELECT * FROM claimed AS c WHERE c.state = 'executing'
     ORDER BY c.priority, c.scheduled_at, c.id;
END
$$;

/*
 * Claim up to n due jobs of a queue: executing, attempt counted, in
 * priority order; jobs past their discard_after are discarded instead.
 * by names the claimer (attempted_by); lease is NULL for pgapp's own
 * workers (the supervisor watches their processes) and the heartbeat
 * deadline for external ones.  Nothing for a paused queue; a rate-limited
 * one takes no more than its token bucket holds.  The claim itself is
 * pgapp._job_claim_due.
 */
CREATE FUNCTION pgapp._job_claim(queue text, n integer, by text, lease interval)
RETURNS SETOF pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue;
    tokens double precision;
    claimed integer;
BEGIN
    q := pgapp._job_check_queue(queue);
    IF q.paused THEN
        RETURN;
    END IF;
    IF q.rate_limit IS NOT NULL THEN
        -- the bucket refills at rate_limit per rate_period, up to rate_limit;
        -- claims of the queue take turns on its row for as long as they last
        SELECT * INTO q FROM pgapp.queue AS x WHERE x.name = q.name FOR NO KEY UPDATE;
        tokens := least(q.rate_limit::double precision,
                        coalesce(q.rate_tokens, q.rate_limit)
                        + q.rate_limit * extract(epoch FROM statement_timestamp() - coalesce(q.rate_updated_at, statement_timestamp()))
                                       / extract(epoch FROM q.rate_period));
        n := least(n, floor(tokens)::integer);
        IF n < 1 THEN
            UPDATE pgapp.queue AS x SET rate_tokens = tokens, rate_updated_at = statement_timestamp()
             WHERE x.name = q.name;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM pgapp._job_claim_due(q.name, n, by, lease);
    IF q.rate_limit IS NOT NULL THEN
        GET DIAGNOSTICS claimed = ROW_COUNT;
        UPDATE pgapp.queue AS x SET rate_tokens = tokens - claimed, rate_updated_at = statement_timestamp()
         WHERE x.name = q.name;
    END IF;
END
$$;

CREATE FUNCTION pgapp.fetch_jobs(queue text, n integer, lease interval DEFAULT interval '30 seconds')
RETURNS SETOF pgapp.job
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_check_queue(queue);
    IF n IS NULL OR n < 1 OR n > 10000 THEN
        RAISE EXCEPTION 'n must be between 1 and 10000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', coalesce(n::text, 'NULL'));
    END IF;
    IF lease IS NULL OR lease < interval '1 second' THEN
        RAISE EXCEPTION 'lease must be at least 1 second' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', coalesce(lease::text, 'NULL'));
    END IF;
    PERFORM pgapp._job_rescue_expired(queue);
    RETURN QUERY SELECT * FROM pgapp._job_claim(queue, n, format('external %s (%s)', session_user, pg_backend_pid()), lease);
END
$$;

COMMENT ON FUNCTION pgapp.fetch_jobs(text, integer, interval) IS
'Claim up to n due jobs of a queue for an external worker, which must finish them or renew the lease (heartbeat) before it ends';

/*
 * The external worker's calls on the jobs it fetched.  attempt (the job's
 * attempt as fetch_jobs returned it) is the fetch's fencing token: given,
 * the call acts only while the job is still that fetch -- not after its
 * lease ran out and the job was rescued, fetched again and so renumbered.
 */
CREATE FUNCTION pgapp.heartbeat(ids bigint[], attempts integer[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held bigint[];
BEGIN
    IF attempts IS NOT NULL AND cardinality(attempts) <> cardinality(ids) THEN
        RAISE EXCEPTION 'attempts must have one element per id' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s id(s) and %s attempt(s).', cardinality(ids), cardinality(attempts)),
            HINT = 'Pass each job''s attempt as fetch_jobs returned it, in the order of ids.';
    END IF;
    WITH renewed AS (
        UPDATE pgapp.job AS j SET expires_at = statement_timestamp() + j.lease
         WHERE j.id IN (SELECT h.id FROM unnest(ids, attempts) AS h(id, attempt)
                         WHERE attempts IS NULL OR h.attempt IS NOT DISTINCT FROM j.attempt)
           AND j.state = 'executing' AND j.lease IS NOT NULL
        RETURNING j.id)
    SELECT coalesce(array_agg(r.id ORDER BY r.id), '{}') INTO held FROM renewed AS r;
    RETURN held;
END
$$;

COMMENT ON FUNCTION pgapp.heartbeat(bigint[], integer[]) IS
'Renew the leases of fetched jobs (attempts: their fencing tokens); returns the ids still held (a missing id was cancelled or rescued: stop working on it)';

/*
 * The job an external worker fetched, locked, while it is still that
 * fetch's: executing under a lease and, when attempt is given (the fetch's
 * fencing token), at that attempt.  NULL when it no longer is (cancelled,
 * finished, or rescued after its lease ran out and perhaps fetched again);
 * an error when the job does not exist.
 */
CREATE FUNCTION pgapp._job_for_lease(id bigint, attempt integer)
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
    SELECT * INTO j FROM pgapp.job AS x
     WHERE x.id = _job_for_lease.id AND x.state = 'executing' AND x.lease IS NOT NULL
       AND (_job_for_lease.attempt IS NULL OR x.attempt = _job_for_lease.attempt)
       FOR UPDATE;
    IF FOUND THEN
        RETURN j;
    END IF;
    PERFORM FROM pgapp.job AS x WHERE x.id = _job_for_lease.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgapp.complete_job(id bigint, result jsonb DEFAULT NULL, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (pgapp._job_for_lease(id, attempt)).id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE pgapp.job AS j
       SET state = 'completed', completed_at = clock_timestamp(), result = complete_job.result, expires_at = NULL
     WHERE j.id = complete_job.id;
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.complete_job(bigint, jsonb, integer) IS
'Record a fetched job as completed; false when it no longer runs (cancelled, or rescued after its lease ran out; with attempt, also when fetched again since)';

CREATE FUNCTION pgapp.fail_job(id bigint, error text, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- locked: the job stays this fetch's until its failure is recorded
    IF (pgapp._job_for_lease(id, attempt)).id IS NULL THEN
        RETURN false;
    END IF;
    RETURN pgapp._job_record_failure(id, jsonb_build_object('message', coalesce(error, 'failed'))) IS NOT NULL;
END
$$;

COMMENT ON FUNCTION pgapp.fail_job(bigint, text, integer) IS
'Record a failed attempt of a fetched job (attempt: its fencing token): retryable after the backoff, or discarded after its last attempt';


/*
 * An external worker's progress on a job it fetched (pgapp.job_progress is
 * for jobs pgapp's workers run): kept in the job's progress column, shown
 * by queue_stats, and broadcast on jobs:<id> as pgapp's workers' progress
 * is.  attempt fences the call as for complete_job.
 */
CREATE FUNCTION pgapp.report_progress(id bigint, percent numeric, message text DEFAULT NULL,
                                      attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF id IS NULL OR percent IS NULL THEN
        RAISE EXCEPTION 'job id and percent must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (percent >= 0 AND percent <= 100) THEN
        RAISE EXCEPTION 'percent must be between 0 and 100' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', percent);
    END IF;
    IF (pgapp._job_for_lease(id, attempt)).id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE pgapp.job AS j SET progress = report_progress.percent WHERE j.id = report_progress.id;
    PERFORM pgapp._broadcast_system('jobs:' || id, 'progress',
                            jsonb_strip_nulls(jsonb_build_object('id', id, 'percent', percent, 'message', message)),
                            'direct');
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.report_progress(bigint, numeric, text, integer) IS
'An external worker''s progress on a fetched job (percent 0..100): kept on the job, shown by queue_stats, broadcast on jobs:<id>; false when the job is no longer that fetch''s';

REVOKE ALL ON FUNCTION pgapp._job_claim_due(text, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._job_claim(text, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._job_for_lease(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.fetch_jobs(text, integer, interval), pgapp.heartbeat(bigint[], integer[]),
    pgapp.complete_job(bigint, jsonb, integer), pgapp.fail_job(bigint, text, integer),
    pgapp.report_progress(bigint, numeric, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.fetch_jobs(text, integer, interval), pgapp.heartbeat(bigint[], integer[]),
    pgapp.complete_job(bigint, jsonb, integer), pgapp.fail_job(bigint, text, integer),
    pgapp.report_progress(bigint, numeric, text, integer) TO pgapp_worker, pgapp_admin;


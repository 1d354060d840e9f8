-- sql/updates/pgapp--0.1.0--0.2.0.sql: from 0.1.0 to 0.2.0 (written by hand)
--
-- 0.2.0 builds its install script from sql/parts/; an updated 0.1.0 and a
-- fresh 0.2.0 have the same objects (the upgrade suite of scripts/test
-- compares them).

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgapp UPDATE TO '0.2.0'" to load this file. \quit

-- Jobs (sql/parts/81_jobs_external.sql): the claim exists once,
-- pgapp._job_claim_due, called by pgapp._job_claim and by the workers'
-- claim (src/jobs/jobs_claim.c); the lease and fencing checks of the
-- external workers' calls exist once, pgapp._job_for_lease.
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

REVOKE ALL ON FUNCTION pgapp._job_claim_due(text, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._job_for_lease(bigint, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgapp._job_claim(queue text, n integer, by text, lease interval)
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

CREATE OR REPLACE FUNCTION pgapp.complete_job(id bigint, result jsonb DEFAULT NULL, attempt integer DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION pgapp.fail_job(id bigint, error text, attempt integer DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION pgapp.report_progress(id bigint, percent numeric, message text DEFAULT NULL,
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


-- Tell a running PostgREST to reload its schema cache (delivered at commit),
-- as the install script does at its end.
NOTIFY pgrst, 'reload schema';

-- sql/parts/83_jobs_cron.sql: jobs: cron through pg_cron (docs/jobs.md)

CREATE FUNCTION pgapp._job_cron_command(queue text, worker regproc, args jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- unique by all args within the minute: a schedule that fires twice in a minute enqueues once
    SELECT format('SELECT pgapp.enqueue(%L, %L::pg_catalog.regprocedure, %L::jsonb, unique_for => interval %L)',
                  queue, worker::regprocedure::text, args::text, '1 minute')
$$;

CREATE FUNCTION pgapp.schedule(name text, cron text, queue text, worker regproc, args jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobid bigint;
BEGIN
    IF name IS NULL OR cron IS NULL THEN
        RAISE EXCEPTION 'schedule name and cron text must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pgapp._job_check_queue(queue);
    PERFORM pgapp._job_check_worker(worker, current_user::regrole::oid);
    IF args IS NULL OR jsonb_typeof(args) <> 'object' THEN
        RAISE EXCEPTION 'job args must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', coalesce(jsonb_typeof(args), 'NULL'));
    END IF;
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Add pg_cron to shared_preload_libraries, run CREATE EXTENSION pg_cron in the '
                                'database named by cron.database_name (%s), and call pgapp.schedule there; '
                                'everything else of pgapp works without it.',
                                coalesce(current_setting('cron.database_name', true), 'postgres'));
    END IF;
    BEGIN
        EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4)'
           INTO jobid
          USING name, cron, pgapp._job_cron_command(queue, worker, args), current_database();
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'invalid cron schedule "%"', cron
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = SQLERRM,
                  HINT = 'Five fields: minute hour day-of-month month day-of-week, e.g. ''0 2 * * *'' (daily at 02:00), or ''@daily''.';
    END;
    RETURN jobid;
END
$$;

COMMENT ON FUNCTION pgapp.schedule(text, text, text, regproc, jsonb) IS
'Enqueue a job on a cron schedule (pg_cron); the same name replaces the schedule. Returns the pg_cron job id';

CREATE FUNCTION pgapp.unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found boolean;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM cron.job WHERE jobname = $1 AND username = current_user)'
       INTO found USING name;
    IF NOT found THEN
        RAISE EXCEPTION 'schedule "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' INTO found USING name;
    RETURN found;
END
$$;

COMMENT ON FUNCTION pgapp.unschedule(text) IS
'Remove a schedule made by pgapp.schedule';

REVOKE ALL ON FUNCTION pgapp._job_cron_command(text, regproc, jsonb) FROM PUBLIC;
-- schedules run as the role that makes them (pg_cron), which needs USAGE on schema cron
REVOKE ALL ON FUNCTION pgapp.schedule(text, text, text, regproc, jsonb), pgapp.unschedule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.schedule(text, text, text, regproc, jsonb), pgapp.unschedule(text),
    pgapp._job_check_queue(text), pgapp._job_check_worker(regproc, oid),
    pgapp._job_cron_command(text, regproc, jsonb) TO pgapp_admin;


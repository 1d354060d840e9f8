-- bench/jobs/schema.sql: pgapp's side (database "pgapp"): the no-op worker and
-- the latency probe.
CREATE EXTENSION IF NOT EXISTS pgapp;

-- the no-op job of the throughput runs
CREATE FUNCTION bench_noop(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE sql AS 'SELECT NULL::jsonb';

-- the latency probe: when its handler started (clock_timestamp(), first thing), and, for the
-- breakdown, when the claim that took it began and committed (the row's xmin is the claim's
-- transaction while the job runs)
CREATE TABLE lat_start (
    job_id       bigint PRIMARY KEY,
    started      timestamptz NOT NULL,
    claimed_at   timestamptz,
    claim_commit timestamptz
);
CREATE FUNCTION bench_mark(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    INSERT INTO lat_start
    SELECT job.id, t, j.attempted_at, pg_xact_commit_timestamp(j.xmin) FROM pgapp.job AS j WHERE j.id = job.id;
    RETURN NULL;
END
$$;
SELECT pgapp.create_queue('lat', 10);

-- sql/parts/80_jobs.sql: jobs: queues, jobs, enqueue (docs/jobs.md)
--
-- Queues and jobs live in two tables.  pgapp.job is hot: fillfactor leaves
-- room for HOT updates of the columns no index covers (heartbeats,
-- progress), its partial indexes cover only what the claim, the rescue and
-- the pruning read, autovacuum visits it early (every claim leaves a dead
-- entry in the claim index), and finished jobs are pruned after
-- pgapp.jobs_retention.
-- The functions that act for a role (enqueue, cancel, retry) are C entry
-- points that note who calls them and then run the pgapp._job_* function
-- of the same name as the schema owner: a job runs as the role that
-- enqueued it, and only that role or pgapp_admin may cancel or retry it.

-- pgapp_worker: the role external workers log in with (fetch_jobs,
-- heartbeat, complete_job, fail_job).  Cluster-wide, like pgapp_admin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'pgapp_worker') THEN
        CREATE ROLE pgapp_worker NOLOGIN;
    END IF;
END
$$;

CREATE TYPE pgapp.job_state AS ENUM
    ('scheduled', 'available', 'executing', 'retryable', 'completed', 'discarded', 'cancelled');

CREATE TABLE pgapp.queue (
    name        text PRIMARY KEY,
    concurrency integer NOT NULL,
    paused      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- optional rate limit (pgapp.limit_queue): at most rate_limit jobs started
    -- per rate_period, as a token bucket the claims draw from
    rate_limit      integer,
    rate_period     interval,
    rate_tokens     double precision,
    rate_updated_at timestamptz,
    CONSTRAINT queue_rate_check CHECK ((rate_limit IS NULL) = (rate_period IS NULL)
                                       AND rate_limit OPERATOR(pg_catalog.>) 0
                                       AND rate_period OPERATOR(pg_catalog.>) interval '0'),
    -- the channel pgapp_jobs:<name> must fit NOTIFY's 63 bytes
    CONSTRAINT queue_name_check CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,51}$'),
    CONSTRAINT queue_concurrency_check CHECK (concurrency BETWEEN 0 AND 1000)
);

COMMENT ON TABLE pgapp.queue IS
'Job queues: concurrency = background workers running its jobs at once (0: external workers only)';

CREATE TABLE pgapp.job (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text NOT NULL REFERENCES pgapp.queue (name) ON DELETE CASCADE,
    worker        regproc NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}',
    state         pgapp.job_state NOT NULL DEFAULT 'available',
    priority      integer NOT NULL DEFAULT 0,
    attempt       integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 20,
    inserted_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    scheduled_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attempted_at  timestamptz,
    completed_at  timestamptz,
    discarded_at  timestamptz,
    cancelled_at  timestamptz,
    discard_after interval,
    errors        jsonb NOT NULL DEFAULT '[]',
    unique_key    text,
    progress      numeric,
    result        jsonb,
    owner         oid NOT NULL,
    attempted_by  text,
    lease         interval,
    expires_at    timestamptz,
    -- pgapp.cancel_job of a job a pgapp worker has claimed: the worker cancels it
    cancel_requested_at timestamptz,
    -- waiting to be claimed (scheduled, available or retryable): the claim
    -- index's predicate.  Not the state itself, so that a completion, which
    -- changes the state but leaves the job unclaimable, touches no indexed
    -- column and is a HOT update (no index entries written)
    claimable     boolean NOT NULL GENERATED ALWAYS AS (state IN ('scheduled', 'available', 'retryable')) STORED,
    -- the job holds its unique key (job_unique_idx): it has one and is not
    -- discarded or cancelled.  The key itself stays on the job, so that
    -- retry_job can take it back
    holds_key     boolean NOT NULL GENERATED ALWAYS AS (unique_key IS NOT NULL AND state NOT IN ('discarded', 'cancelled')) STORED,
    CONSTRAINT job_args_check CHECK (pg_catalog.jsonb_typeof(args) OPERATOR(pg_catalog.=) 'object'),
    CONSTRAINT job_max_attempts_check CHECK (max_attempts OPERATOR(pg_catalog.>=) 1),
    CONSTRAINT job_attempt_check CHECK (attempt OPERATOR(pg_catalog.>=) 0)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);

COMMENT ON TABLE pgapp.job IS
'Jobs: one row per job, finished ones pruned after pgapp.jobs_retention';

-- The indexes never name state, completed_at, result or progress: a
-- job's completion then rewrites its row in place when the page has room
-- (HOT), and only the claim writes index entries (the primary key's).
-- what a queue's workers claim next
CREATE INDEX job_claim_idx ON pgapp.job (queue, priority, scheduled_at, id) WHERE claimable;
-- when the next scheduled or retryable job falls due (the supervisor's
-- wake-up); jobs enqueued to run now are not in it
CREATE INDEX job_scheduled_idx ON pgapp.job (queue, scheduled_at) WHERE claimable AND scheduled_at > inserted_at;
-- external workers' leases, for their rescue when they run out
CREATE INDEX job_leased_idx ON pgapp.job (expires_at) WHERE lease IS NOT NULL;
-- the jobs each role has waiting (pgapp.jobs_max_queued_per_role)
CREATE INDEX job_owner_idx ON pgapp.job (owner) WHERE claimable;
-- one job per unique key and time bucket (pgapp.enqueue's unique_by / unique_for)
CREATE UNIQUE INDEX job_unique_idx ON pgapp.job (unique_key) WHERE holds_key;

-- Pruning's bound, instead of an index on inserted_at (which every claim
-- would write to): at each prune, the last job id issued then.  A job that
-- finished before a time had its id issued before it, so the jobs finished
-- before a cutoff all have ids up to the mark of the first prune at or after
-- that cutoff, and pruning walks the primary key up to there.
CREATE TABLE pgapp.job_prune_mark (
    at       timestamptz PRIMARY KEY,
    last_id  bigint NOT NULL
);

COMMENT ON TABLE pgapp.job_prune_mark IS
'The last job id issued at each pgapp.prune_jobs: where a later prune''s scan of the primary key stops';

-- What a worker function receives besides its args.
CREATE TYPE pgapp.job_info AS (
    id           bigint,
    queue        text,
    worker       regproc,
    attempt      integer,
    max_attempts integer,
    priority     integer,
    inserted_at  timestamptz,
    scheduled_at timestamptz,
    errors       jsonb
);

-- Oban's default retry curve: 15 s + 2^attempt s (the attempt scaled onto a
-- 20-attempt curve when max_attempts is larger), plus up to 10% jitter.
CREATE FUNCTION pgapp.job_backoff(attempt integer, max_attempts integer DEFAULT 20,
                                  jitter double precision DEFAULT pg_catalog.random())
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT make_interval(secs => (15 + power(2, least(
               CASE WHEN max_attempts <= 20 THEN greatest(attempt, 0)
                    ELSE round(greatest(attempt, 0)::numeric / max_attempts * 20)::integer END,
               20))) * (1 + 0.1 * least(greatest(coalesce(jitter, 0), 0), 1)))
$$;

COMMENT ON FUNCTION pgapp.job_backoff(integer, integer, double precision) IS
'Delay before retrying a job that failed its attempth attempt: 15 s + 2^attempt s, plus up to 10% jitter';

CREATE FUNCTION pgapp._job_check_queue(queue text)
RETURNS pgapp.queue
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue;
BEGIN
    IF queue IS NULL THEN
        RAISE EXCEPTION 'queue must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO q FROM pgapp.queue AS x WHERE x.name = queue;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with pgapp.create_queue(name, concurrency).';
    END IF;
    RETURN q;
END
$$;

-- A worker is fn(args jsonb, job pgapp.job_info) -> jsonb that the role may execute.
CREATE FUNCTION pgapp._job_check_worker(worker regproc, caller oid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
BEGIN
    IF worker IS NULL THEN
        RAISE EXCEPTION 'worker must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT pronargs, proargtypes, prorettype, proretset, prokind, pronamespace INTO p FROM pg_proc WHERE oid = worker;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function with OID % does not exist', worker::oid USING ERRCODE = 'undefined_function';
    END IF;
    IF p.prokind <> 'f' OR p.proretset OR p.prorettype <> 'jsonb'::regtype
       OR p.pronargs <> 2 OR p.proargtypes[0] <> 'jsonb'::regtype OR p.proargtypes[1] <> 'pgapp.job_info'::regtype THEN
        RAISE EXCEPTION 'function %(%) cannot be a job worker', worker,
                        pg_get_function_identity_arguments(worker)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A worker takes (args jsonb, job pgapp.job_info) and returns jsonb.',
                  HINT = format('CREATE FUNCTION %s(args jsonb, job pgapp.job_info) RETURNS jsonb ...', worker);
    END IF;
    IF p.pronamespace = pg_my_temp_schema() OR pg_is_other_temp_schema(p.pronamespace) THEN
        RAISE EXCEPTION 'job worker % is a temporary function', worker
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A temporary function belongs to one session; a job runs in a worker process.',
                  HINT = 'Create the worker in a schema of its own.';
    END IF;
    IF NOT has_function_privilege(caller, worker, 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function %', worker
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A job runs as the role that enqueues it, which must be allowed to execute its worker.';
    END IF;
END
$$;

/*
 * The unique key of a job: a digest of its owner, queue, worker and the
 * unique_by values of its args (all args when unique_by is NULL), and the
 * time bucket of unique_for (one bucket for ever when it is NULL).  The
 * owner is part of it, so that one role cannot take another's key (a job
 * enqueued first, that never runs, would stand in for the other's).
 */
CREATE FUNCTION pgapp._job_unique_key(queue text, worker regproc, args jsonb, unique_by text[],
                                      unique_for interval, at timestamptz, owner oid)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT md5(jsonb_build_array(queue, worker::oid, owner,
                   CASE WHEN unique_by IS NULL THEN args
                        ELSE (SELECT coalesce(jsonb_agg(coalesce(args -> k, 'null'::jsonb) ORDER BY o), '[]')
                                FROM unnest(unique_by) WITH ORDINALITY AS u(k, o)) END)::text)
           || ':' || CASE WHEN unique_for IS NULL THEN '0'
                          ELSE floor(extract(epoch FROM at) / extract(epoch FROM unique_for))::bigint::text END
$$;

/*
 * Insert jobs, one per element of args_list (a JSON array of objects);
 * returns their ids in that order, the existing job's id for a duplicate.
 * Run by pgapp.enqueue / enqueue_many as the schema owner.
 */
CREATE FUNCTION pgapp._job_enqueue_many(queue text, worker regproc, args_list jsonb, scheduled_at timestamptz,
                                        priority integer, max_attempts integer, unique_by text[],
                                        unique_for interval, discard_after interval, caller oid)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue;
    at timestamptz := coalesce(scheduled_at, now());
    st pgapp.job_state;
    ids bigint[] := '{}';
    a jsonb;
    k text;
    jid bigint;
    bad integer;
    big integer;
    max_batch integer;
    max_args bigint;
    max_queued integer;
    queued bigint;
BEGIN
    q := pgapp._job_check_queue(queue);
    PERFORM pgapp._job_check_worker(worker, caller);
    IF args_list IS NULL OR jsonb_typeof(args_list) <> 'array' THEN
        RAISE EXCEPTION 'jobs must be given as a JSON array of argument objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    max_batch := current_setting('pgapp.jobs_max_batch')::integer;
    IF max_batch > 0 AND jsonb_array_length(args_list) > max_batch THEN
        RAISE EXCEPTION 'too many jobs in one call: % (at most %)', jsonb_array_length(args_list), max_batch
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Enqueue them in smaller batches, or raise pgapp.jobs_max_batch (0: no limit).';
    END IF;
    max_args := pg_size_bytes(current_setting('pgapp.jobs_max_args_size'));
    SELECT min(o) FILTER (WHERE jsonb_typeof(v) <> 'object'),
           min(o) FILTER (WHERE max_args > 0 AND pg_column_size(v) > max_args)
      INTO bad, big
      FROM jsonb_array_elements(args_list) WITH ORDINALITY AS e(v, o);
    IF big IS NOT NULL AND bad IS NULL THEN
        RAISE EXCEPTION 'job args are too large: % bytes (at most %)',
                        pg_column_size(args_list -> (big - 1)), max_args
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('Element %s of the jobs.', big),
                  HINT = 'Store large data in a table and pass its key, or raise pgapp.jobs_max_args_size.';
    END IF;
    -- what one role keeps waiting is bounded (superusers are not)
    max_queued := current_setting('pgapp.jobs_max_queued_per_role')::integer;
    IF max_queued > 0 AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = caller) THEN
        SELECT count(*) INTO queued
          FROM (SELECT FROM pgapp.job AS j WHERE j.owner = caller AND j.claimable
                 LIMIT max_queued) AS w;
        IF queued + jsonb_array_length(args_list) > max_queued THEN
            RAISE EXCEPTION 'role % has too many jobs waiting: % (at most %)', caller::regrole,
                            CASE WHEN queued >= max_queued THEN format('%s or more', queued)
                                 ELSE queued::text END, max_queued
                USING ERRCODE = 'program_limit_exceeded',
                      DETAIL = format('This call would add %s.', jsonb_array_length(args_list)),
                      HINT = 'Let its jobs run first, or raise pgapp.jobs_max_queued_per_role.';
        END IF;
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'job args must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s (element %s).', jsonb_typeof(args_list -> (bad - 1)), bad),
                  HINT = 'Pass the arguments as an object, e.g. ''{"user_id": 1}''.';
    END IF;
    IF coalesce(max_attempts, 20) < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', max_attempts);
    END IF;
    IF unique_for <= interval '0' THEN
        RAISE EXCEPTION 'unique_for must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', unique_for);
    END IF;
    IF discard_after <= interval '0' THEN
        RAISE EXCEPTION 'discard_after must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', discard_after);
    END IF;
    st := CASE WHEN at > now() THEN 'scheduled' ELSE 'available' END;

    IF unique_by IS NULL AND unique_for IS NULL THEN
        WITH ins AS (
            INSERT INTO pgapp.job (queue, worker, args, state, priority, max_attempts, scheduled_at,
                                   discard_after, owner)
            SELECT q.name, worker, e.v, st, coalesce(priority, 0), coalesce(max_attempts, 20), at,
                   discard_after, caller
              FROM jsonb_array_elements(args_list) WITH ORDINALITY AS e(v, o)
             ORDER BY e.o
            RETURNING id)
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO ids FROM ins;
    ELSE
        FOR a IN SELECT v FROM jsonb_array_elements(args_list) AS e(v) LOOP
            k := pgapp._job_unique_key(q.name, worker, a, unique_by, unique_for, now(), caller);
            INSERT INTO pgapp.job AS j (queue, worker, args, state, priority, max_attempts, scheduled_at,
                                        discard_after, owner, unique_key)
            VALUES (q.name, worker, a, st, coalesce(priority, 0), coalesce(max_attempts, 20), at,
                    discard_after, caller, k)
            ON CONFLICT (unique_key) WHERE holds_key DO NOTHING
            RETURNING j.id INTO jid;
            IF jid IS NULL THEN
                SELECT j.id INTO jid FROM pgapp.job AS j WHERE j.unique_key = k AND j.holds_key;
                IF NOT FOUND THEN
                    -- committed after this transaction's snapshot (REPEATABLE READ and up)
                    RAISE EXCEPTION 'could not serialize access due to a concurrent enqueue of the same unique job'
                        USING ERRCODE = 'serialization_failure';
                END IF;
            END IF;
            ids := ids || jid;
        END LOOP;
    END IF;
    IF st = 'available' AND cardinality(ids) > 0 THEN
        PERFORM pgapp._job_wake(q.name, cardinality(ids));
    END IF;
    RETURN ids;
END
$$;

CREATE FUNCTION pgapp.enqueue(queue text, worker regproc, args jsonb DEFAULT '{}',
                              scheduled_at timestamptz DEFAULT now(), priority integer DEFAULT 0,
                              max_attempts integer DEFAULT 20, unique_by text[] DEFAULT NULL,
                              unique_for interval DEFAULT NULL, discard_after interval DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'pgapp_job_enqueue'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.enqueue(text, regproc, jsonb, timestamptz, integer, integer, text[], interval, interval) IS
'Enqueue a job; returns its id (the existing job''s id for a duplicate within unique_for)';

CREATE FUNCTION pgapp.enqueue_many(queue text, worker regproc, args_list jsonb,
                                   scheduled_at timestamptz DEFAULT now(), priority integer DEFAULT 0,
                                   max_attempts integer DEFAULT 20, unique_by text[] DEFAULT NULL,
                                   unique_for interval DEFAULT NULL, discard_after interval DEFAULT NULL)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'pgapp_job_enqueue_many'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.enqueue_many(text, regproc, jsonb, timestamptz, integer, integer, text[], interval, interval) IS
'Enqueue one job per element of a JSON array of argument objects; returns the ids in order';

REVOKE ALL ON pgapp.queue, pgapp.job, pgapp.job_prune_mark FROM PUBLIC;
GRANT SELECT ON pgapp.queue TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgapp.queue TO pgapp_admin;
GRANT SELECT ON pgapp.job TO pgapp_admin;
REVOKE ALL ON FUNCTION pgapp._job_check_queue(text), pgapp._job_check_worker(regproc, oid),
    pgapp._job_unique_key(text, regproc, jsonb, text[], interval, timestamptz, oid),
    pgapp._job_enqueue_many(text, regproc, jsonb, timestamptz, integer, integer, text[], interval, interval, oid)
    FROM PUBLIC;


-- examples/jobs.sql: background jobs for an application, built only on
-- pgapp's job queue: emails, reports and imports run by pgapp's background
-- workers, in four queues, and two schedules.
--
--   queue     workers  runs
--   default   10       jobs.cleanup_worker  (pg_cron, daily at 02:00)
--   emails     5       jobs.email_worker    (api.send_email)
--   reports    2       jobs.report_worker   (api.request_report; pg_cron, Mondays at 06:00)
--   imports    1       jobs.import_worker   (jobs.start_import)
--
--   POST /rpc/send_email      {"recipient": "ada@example.com", "template": "welcome", "vars": {"name": "Ada"}}
--   POST /rpc/request_report  {"kind": "contacts"}     -> {"job_id", "topic": "user:<sub>"}
--   GET  /rpc/get_report?id=1                          -> {"id", "kind", "row_count", "csv", ...}
--
-- A worker is a SQL function fn(args jsonb, job pgapp.job_info) -> jsonb.
-- Its writes and the job's completion commit together; an error rolls its
-- writes back and makes the job retryable (15 s + 2^attempt s later), or
-- discarded after max_attempts or past discard_after.
--
-- Emails: api.send_email validates and enqueues; the job renders the
-- template into jobs.outbox, which a mail relay sends from.  Three
-- attempts, given up after 24 hours, and one job per recipient and
-- template per minute (a second call in the same minute returns the first
-- job's id, so a double click sends one email).
--
-- Reports: the job builds a CSV into jobs.report and says so on the topic
-- user:<sub> ("report_ready"); the client subscribed to it beforehand, then
-- fetches the CSV with api.get_report.  The scheduled weekly report, asked
-- by nobody, is announced on the topic "reports".
--
-- Imports: rows are staged in jobs.import_row (COPY ... FROM STDIN), then
-- jobs.start_import(id) enqueues the job, which imports them into
-- jobs.contact 500 at a time and reports its progress after each batch
-- (pgapp.job_progress: broadcast on jobs:<job id>, shown in pgapp.workers
-- and the view jobs.imports).  The whole import commits at once, or not at
-- all: jobs.cancel_import (pgapp.cancel_job) interrupts it and its writes
-- roll back.
--
-- The API functions are SECURITY DEFINER: the jobs they enqueue run as the
-- role that loaded this file, which owns the tables; "app_user" may call
-- them, "anon" nothing.  Load into a database that has CREATE EXTENSION
-- pgapp (and pg_cron, for the schedules).  Loading it again changes
-- nothing: what exists is kept (queues, templates, seed rows), functions
-- are replaced and the schedules are set again under the same names.

CREATE SCHEMA IF NOT EXISTS jobs;
CREATE SCHEMA IF NOT EXISTS api;

---------------------------------------------------------------------------
-- Queues (created when missing: an existing queue keeps its settings)
---------------------------------------------------------------------------

DO $$
DECLARE
    q record;
BEGIN
    FOR q IN SELECT * FROM (VALUES ('default', 10), ('emails', 5), ('reports', 2), ('imports', 1)) AS v(name, concurrency)
    LOOP
        IF NOT EXISTS (SELECT FROM pgapp.queue WHERE name = q.name) THEN
            PERFORM pgapp.create_queue(q.name, q.concurrency);
        END IF;
    END LOOP;
END
$$;

---------------------------------------------------------------------------
-- Tables
---------------------------------------------------------------------------

-- {{name}} in subject and body is replaced by vars.name
CREATE TABLE IF NOT EXISTS jobs.email_template (
    name     text PRIMARY KEY,
    subject  text NOT NULL,
    body     text NOT NULL
);

-- What the mail relay sends (and marks sent_at).  One row per email job:
-- a job run again (pgapp.retry_job after it completed) writes nothing new.
CREATE TABLE IF NOT EXISTS jobs.outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint NOT NULL UNIQUE,
    recipient   text NOT NULL,
    template    text NOT NULL REFERENCES jobs.email_template,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON jobs.outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_created ON jobs.outbox (created_at);

CREATE TABLE IF NOT EXISTS jobs.contact (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE CHECK (email = lower(email)),
    name        text,
    import_id   bigint,                     -- the import that last wrote it
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An import: the counts and finished_at are written by its job when it ends.
CREATE TABLE IF NOT EXISTS jobs.import (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL,             -- e.g. the uploaded file's name
    job_id       bigint,                    -- the job of its last start
    total_rows   integer,
    inserted     integer,
    updated      integer,
    invalid      integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

-- Staged rows, e.g. COPY jobs.import_row (import_id, email, name) FROM STDIN
-- WITH (FORMAT csv, HEADER); imported in id order.  outcome is NULL until
-- the row is imported: 'imported' or 'invalid email'.
CREATE TABLE IF NOT EXISTS jobs.import_row (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    import_id   bigint NOT NULL REFERENCES jobs.import ON DELETE CASCADE,
    email       text,
    name        text,
    outcome     text
);
CREATE INDEX IF NOT EXISTS import_row_import ON jobs.import_row (import_id, id);

CREATE TABLE IF NOT EXISTS jobs.report (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint,
    requested_by  text,                     -- the JWT sub; NULL: the schedule
    kind          text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}',
    row_count     integer NOT NULL,
    csv           text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS report_requested_by ON jobs.report (requested_by, id);

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- Replace each {{key}} of the text by vars ->> key.
CREATE OR REPLACE FUNCTION jobs.render(template text, vars jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT key, value FROM jsonb_each_text(coalesce(vars, '{}')) LOOP
        template := replace(template, '{{' || v.key || '}}', coalesce(v.value, ''));
    END LOOP;
    RETURN template;
END
$$;

-- One CSV line (RFC 4180): a field with a comma, quote or line break is quoted.
CREATE OR REPLACE FUNCTION jobs.csv_line(VARIADIC fields text[])
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(CASE WHEN f ~ '[",\r\n]' THEN '"' || replace(f, '"', '""') || '"'
                           ELSE coalesce(f, '') END, ',' ORDER BY i)
      FROM unnest(fields) WITH ORDINALITY AS u(f, i)
$$;

-- Who calls: the JWT's sub in a PostgREST request, else the session's role.
CREATE OR REPLACE FUNCTION jobs.requester()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', session_user::text)
$$;

---------------------------------------------------------------------------
-- Emails
---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION jobs.email_worker(args jsonb, job pgapp.job_info)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t jobs.email_template;
    written bigint;
BEGIN
    SELECT * INTO t FROM jobs.email_template AS e WHERE e.name = args ->> 'template';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'email template "%" does not exist', args ->> 'template'
            USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO jobs.outbox (job_id, recipient, template, subject, body)
    VALUES (job.id, args ->> 'recipient', t.name,
            jobs.render(t.subject, args -> 'vars'), jobs.render(t.body, args -> 'vars'))
    ON CONFLICT (job_id) DO NOTHING
    RETURNING id INTO written;
    -- a stand-in for a mail relay that refuses the message: the row above
    -- rolls back with the error, and the job is retried
    IF (args ->> 'simulate_failure')::boolean THEN
        RAISE EXCEPTION 'the mail relay refused the message to % (simulated failure)', args ->> 'recipient'
            USING DETAIL = format('Attempt %s of %s.', job.attempt, job.max_attempts);
    END IF;
    RETURN jsonb_build_object('outbox_id', written, 'recipient', args ->> 'recipient');
END
$$;

COMMENT ON FUNCTION jobs.email_worker(jsonb, pgapp.job_info) IS
'Job: render an email template into jobs.outbox (args: recipient, template, vars)';

-- Enqueue an email job the one way emails are enqueued: 3 attempts, given up
-- after 24 hours, unique per recipient and template for a minute.
CREATE OR REPLACE FUNCTION jobs.enqueue_email(args jsonb)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgapp.enqueue('emails', 'jobs.email_worker', args,
                         max_attempts => 3,
                         discard_after => interval '24 hours',
                         unique_by => ARRAY['recipient', 'template'],
                         unique_for => interval '1 minute')
$$;

CREATE OR REPLACE FUNCTION api.send_email(recipient text, template text, vars jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t jobs.email_template;
    missing text[];
BEGIN
    IF recipient IS NULL OR recipient !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' THEN
        RAISE EXCEPTION 'invalid recipient %', coalesce(quote_literal(recipient), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'recipient';
    END IF;
    SELECT * INTO t FROM jobs.email_template AS e WHERE e.name = send_email.template;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'email template "%" does not exist', template
            USING ERRCODE = 'undefined_object',
                  HINT = (SELECT 'Templates: ' || string_agg(name, ', ' ORDER BY name) FROM jobs.email_template);
    END IF;
    IF vars IS NULL OR jsonb_typeof(vars) <> 'object' THEN
        RAISE EXCEPTION 'vars must be a JSON object' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'vars';
    END IF;
    -- fail now rather than in the job: every {{key}} needs a value
    SELECT array_agg(DISTINCT m[1] ORDER BY m[1]) INTO missing
      FROM regexp_matches(t.subject || t.body, '\{\{(\w+)\}\}', 'g') AS m
     WHERE NOT vars ? m[1];
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'template "%" needs %', template, array_to_string(missing, ', ')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'vars',
                  DETAIL = format('vars has no %s.', array_to_string(missing, ', '));
    END IF;
    RETURN jobs.enqueue_email(jsonb_build_object('recipient', lower(recipient), 'template', template, 'vars', vars));
END
$$;

COMMENT ON FUNCTION api.send_email(text, text, jsonb) IS
'Send an email
Renders a template for one recipient in a background job (3 attempts within 24 hours); the same
recipient and template again within the minute returns the job already made. Returns the job id.';

---------------------------------------------------------------------------
-- Reports
---------------------------------------------------------------------------

-- args: kind ("contacts" or "analytics"), days (analytics: the window, 7),
-- requested_by (who is told, on user:<requested_by>; without it, "reports").
CREATE OR REPLACE FUNCTION jobs.report_worker(args jsonb, job pgapp.job_info)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind text := args ->> 'kind';
    days integer := coalesce((args ->> 'days')::integer, 7);
    since timestamptz := now() - make_interval(days => days);
    header text;
    lines text[];
    rid bigint;
BEGIN
    CASE kind
    WHEN 'contacts' THEN
        header := jobs.csv_line('email', 'name');
        SELECT coalesce(array_agg(jobs.csv_line(c.email, c.name) ORDER BY c.email), '{}') INTO lines
          FROM jobs.contact AS c;
    WHEN 'analytics' THEN
        header := jobs.csv_line('metric', 'value');
        lines := ARRAY[
            jobs.csv_line('days', days::text),
            jobs.csv_line('emails_written', (SELECT count(*) FROM jobs.outbox AS o WHERE o.created_at >= since)::text),
            jobs.csv_line('contacts', (SELECT count(*) FROM jobs.contact)::text),
            jobs.csv_line('contacts_new', (SELECT count(*) FROM jobs.contact AS c WHERE c.created_at >= since)::text),
            jobs.csv_line('imports_finished', (SELECT count(*) FROM jobs.import AS i WHERE i.finished_at >= since)::text),
            jobs.csv_line('rows_imported', (SELECT coalesce(sum(i.inserted + i.updated), 0) FROM jobs.import AS i
                                             WHERE i.finished_at >= since)::text)];
    ELSE
        RAISE EXCEPTION 'unknown report kind %', coalesce(quote_literal(kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    INSERT INTO jobs.report (job_id, requested_by, kind, params, row_count, csv)
    VALUES (job.id, args ->> 'requested_by', kind, args - 'kind' - 'requested_by', cardinality(lines),
            array_to_string(header || lines, E'\n') || E'\n')
    RETURNING id INTO rid;
    -- delivered once this job commits (the outbox of pgapp PubSub)
    PERFORM pgapp.broadcast(coalesce('user:' || (args ->> 'requested_by'), 'reports'), 'report_ready',
                            jsonb_build_object('report_id', rid, 'job_id', job.id, 'kind', kind,
                                               'row_count', cardinality(lines)));
    RETURN jsonb_build_object('report_id', rid, 'row_count', cardinality(lines));
END
$$;

COMMENT ON FUNCTION jobs.report_worker(jsonb, pgapp.job_info) IS
'Job: build a CSV report into jobs.report and announce it (args: kind, days, requested_by)';

CREATE OR REPLACE FUNCTION api.request_report(kind text, days integer DEFAULT 7)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    who text := jobs.requester();
    jid bigint;
BEGIN
    IF kind IS NULL OR kind NOT IN ('contacts', 'analytics') THEN
        RAISE EXCEPTION 'unknown report kind %', coalesce(quote_literal(kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'kind',
                  HINT = 'Kinds: analytics, contacts.';
    END IF;
    IF days IS NULL OR days NOT BETWEEN 1 AND 366 THEN
        RAISE EXCEPTION 'days must be between 1 and 366' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'days';
    END IF;
    -- the same request again within the minute is the same job
    jid := pgapp.enqueue('reports', 'jobs.report_worker',
                         jsonb_build_object('kind', kind, 'requested_by', who)
                         || CASE WHEN kind = 'analytics' THEN jsonb_build_object('days', days) ELSE '{}' END,
                         unique_for => interval '1 minute', max_attempts => 5);
    RETURN jsonb_build_object('job_id', jid, 'topic', 'user:' || who);
END
$$;

COMMENT ON FUNCTION api.request_report(text, integer) IS
'Request a report
Builds a CSV report (kind "contacts" or "analytics" over the last days) in a background job and
broadcasts "report_ready" {"report_id", "job_id", "kind", "row_count"} on the topic returned
(user:<sub>): subscribe to it first. Returns {"job_id", "topic"}.';

CREATE OR REPLACE FUNCTION api.get_report(id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found jsonb;
BEGIN
    SELECT jsonb_build_object('id', r.id, 'kind', r.kind, 'params', r.params, 'row_count', r.row_count,
                              'csv', r.csv, 'created_at', r.created_at)
      INTO found
      FROM jobs.report AS r
     WHERE r.id = get_report.id AND r.requested_by = jobs.requester();
    IF found IS NULL THEN
        RETURN pgapp.report_error(404, '{"errors": {"detail": "Not Found"}}',
                                  message => format('report %s does not exist', get_report.id));
    END IF;
    RETURN found;
END
$$;

COMMENT ON FUNCTION api.get_report(bigint) IS
'One of your reports, with its CSV';

---------------------------------------------------------------------------
-- Imports
---------------------------------------------------------------------------

-- args: import_id, batch_size (500).  Imports the staged rows not imported
-- yet, so running it again after it completed changes nothing.
CREATE OR REPLACE FUNCTION jobs.import_worker(args jsonb, job pgapp.job_info)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    imp bigint := (args ->> 'import_id')::bigint;
    batch_size integer := coalesce((args ->> 'batch_size')::integer, 500);
    total integer;
    done integer := 0;
    batches integer := 0;
    last_id bigint := 0;
    ids bigint[];
    n_inserted integer := 0;
    n_updated integer := 0;
    n_invalid integer := 0;
    i integer;
    u integer;
    v integer;
BEGIN
    PERFORM FROM jobs.import AS x WHERE x.id = imp;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'import % does not exist', imp USING ERRCODE = 'undefined_object';
    END IF;
    SELECT count(*) INTO total FROM jobs.import_row AS r WHERE r.import_id = imp AND r.outcome IS NULL;
    LOOP
        -- the next batch, locked: rows being imported are not changed under us
        SELECT array_agg(b.id ORDER BY b.id) INTO ids
          FROM (SELECT r.id FROM jobs.import_row AS r
                 WHERE r.import_id = imp AND r.outcome IS NULL AND r.id > last_id
                 ORDER BY r.id
                 LIMIT batch_size
                   FOR UPDATE) AS b;
        EXIT WHEN ids IS NULL;
        last_id := ids[cardinality(ids)];

        UPDATE jobs.import_row AS r SET outcome = 'invalid email'
         WHERE r.id = ANY (ids) AND coalesce(btrim(r.email), '') !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$';
        GET DIAGNOSTICS v = ROW_COUNT;
        -- an address twice in a batch: its last row wins
        WITH valid AS (
            SELECT DISTINCT ON (lower(btrim(r.email))) lower(btrim(r.email)) AS email, nullif(btrim(r.name), '') AS name
              FROM jobs.import_row AS r
             WHERE r.id = ANY (ids) AND r.outcome IS NULL
             ORDER BY lower(btrim(r.email)), r.id DESC),
        written AS (
            INSERT INTO jobs.contact AS c (email, name, import_id)
            SELECT valid.email, valid.name, imp FROM valid
            ON CONFLICT (email) DO UPDATE
               SET name = coalesce(excluded.name, c.name), import_id = excluded.import_id, updated_at = now()
            RETURNING (c.xmax = 0) AS inserted)
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) INTO i, u FROM written;
        UPDATE jobs.import_row AS r SET outcome = 'imported' WHERE r.id = ANY (ids) AND r.outcome IS NULL;

        n_inserted := n_inserted + i;
        n_updated := n_updated + u;
        n_invalid := n_invalid + v;
        done := done + cardinality(ids);
        batches := batches + 1;
        -- seen at once in pgapp.workers and on the topic jobs:<job id>,
        -- though nothing of the import is committed yet
        PERFORM pgapp.job_progress(round(100.0 * done / total, 1), format('%s of %s rows', done, total));
    END LOOP;
    UPDATE jobs.import AS x
       SET total_rows = coalesce(x.total_rows, 0) + done,
           inserted = coalesce(x.inserted, 0) + n_inserted,
           updated = coalesce(x.updated, 0) + n_updated,
           invalid = coalesce(x.invalid, 0) + n_invalid,
           finished_at = now()
     WHERE x.id = imp;
    RETURN jsonb_build_object('import_id', imp, 'rows', done, 'batches', batches,
                              'inserted', n_inserted, 'updated', n_updated, 'invalid', n_invalid);
END
$$;

COMMENT ON FUNCTION jobs.import_worker(jsonb, pgapp.job_info) IS
'Job: import the staged rows of an import into jobs.contact, batch_size (500) at a time, reporting progress';

-- Start importing the rows staged for an import; returns the job id (the
-- running or finished job's while there is one: one job per import at a
-- time, a new one after a cancel).
CREATE OR REPLACE FUNCTION jobs.start_import(import_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jid bigint;
BEGIN
    PERFORM FROM jobs.import AS x WHERE x.id = start_import.import_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'import % does not exist', import_id USING ERRCODE = 'undefined_object';
    END IF;
    jid := pgapp.enqueue('imports', 'jobs.import_worker', jsonb_build_object('import_id', import_id),
                         unique_by => ARRAY['import_id'], max_attempts => 3);
    UPDATE jobs.import AS x SET job_id = jid WHERE x.id = start_import.import_id;
    RETURN jid;
END
$$;

-- Cancel an import's job (interrupting it if it runs: nothing of it stays).
-- False when it had finished.  (pgapp.cancel_job: only the role that
-- started the import, or a member of pgapp_admin, may.)
CREATE OR REPLACE FUNCTION jobs.cancel_import(import_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jid bigint;
BEGIN
    -- (the running job does not touch jobs.import before it ends, so this
    -- read never waits for it)
    SELECT x.job_id INTO jid FROM jobs.import AS x WHERE x.id = cancel_import.import_id;
    IF jid IS NULL THEN
        RETURN false;
    END IF;
    RETURN pgapp.cancel_job(jid);
END
$$;

-- Imports with their job's state and, while it runs, its progress.
CREATE OR REPLACE VIEW jobs.imports AS
SELECT i.id, i.source, i.job_id, j.state AS job_state,
       (SELECT count(*) FROM jobs.import_row AS r WHERE r.import_id = i.id) AS staged_rows,
       w.progress, w.progress_message,
       i.total_rows, i.inserted, i.updated, i.invalid, i.created_at, i.finished_at
  FROM jobs.import AS i
  LEFT JOIN pgapp.job AS j ON j.id = i.job_id
  LEFT JOIN pgapp.workers AS w ON w.job = i.job_id;

---------------------------------------------------------------------------
-- Cleanup (scheduled daily)
---------------------------------------------------------------------------

-- args: keep_days (30).  Deletes what is older: outbox rows, reports,
-- finished imports with their staged rows.
CREATE OR REPLACE FUNCTION jobs.cleanup_worker(args jsonb, job pgapp.job_info)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(days => coalesce((args ->> 'keep_days')::integer, 30));
    n_outbox bigint;
    n_reports bigint;
    n_imports bigint;
BEGIN
    DELETE FROM jobs.outbox AS o WHERE o.created_at < cutoff;
    GET DIAGNOSTICS n_outbox = ROW_COUNT;
    DELETE FROM jobs.report AS r WHERE r.created_at < cutoff;
    GET DIAGNOSTICS n_reports = ROW_COUNT;
    DELETE FROM jobs.import AS i WHERE i.finished_at < cutoff;
    GET DIAGNOSTICS n_imports = ROW_COUNT;
    RETURN jsonb_build_object('outbox', n_outbox, 'reports', n_reports, 'imports', n_imports);
END
$$;

COMMENT ON FUNCTION jobs.cleanup_worker(jsonb, pgapp.job_info) IS
'Job: delete outbox rows, reports and finished imports older than keep_days (30)';

---------------------------------------------------------------------------
-- Roles: app_user calls the API; the jobs run as this file's owner
---------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        CREATE ROLE app_user NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION api.send_email(text, text, jsonb), api.request_report(text, integer),
    api.get_report(bigint), jobs.email_worker(jsonb, pgapp.job_info), jobs.enqueue_email(jsonb),
    jobs.report_worker(jsonb, pgapp.job_info), jobs.import_worker(jsonb, pgapp.job_info),
    jobs.start_import(bigint), jobs.cancel_import(bigint), jobs.cleanup_worker(jsonb, pgapp.job_info)
    FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO anon, app_user;
GRANT EXECUTE ON FUNCTION api.send_email(text, text, jsonb), api.request_report(text, integer),
    api.get_report(bigint) TO app_user;

---------------------------------------------------------------------------
-- Seed (kept when loaded again)
---------------------------------------------------------------------------

INSERT INTO jobs.email_template (name, subject, body) VALUES
    ('welcome', 'Welcome, {{name}}!', E'Hello {{name}},\n\nyour account is ready.'),
    ('password_reset', 'Reset your password', E'Follow {{link}} within an hour to choose a new password.')
ON CONFLICT (name) DO NOTHING;

INSERT INTO jobs.contact (email, name) VALUES
    ('ada@example.com', 'Lovelace, Ada'),
    ('grace@example.com', 'Grace "Amazing Grace" Hopper'),
    ('edsger@example.com', 'Edsger W. Dijkstra')
ON CONFLICT (email) DO NOTHING;

---------------------------------------------------------------------------
-- Schedules, when pg_cron is installed
---------------------------------------------------------------------------

-- pgapp.schedule with a name replaces that schedule, so loading this again
-- keeps one of each.  Each firing enqueues a job (once per minute at most).
DO $$
BEGIN
    IF to_regnamespace('cron') IS NULL THEN
        RAISE NOTICE 'pg_cron is not installed: the cleanup and the weekly report are not scheduled';
        RETURN;
    END IF;
    PERFORM pgapp.schedule('jobs-cleanup', '0 2 * * *', 'default', 'jobs.cleanup_worker', '{"keep_days": 30}');
    PERFORM pgapp.schedule('jobs-weekly-analytics', '0 6 * * 1', 'reports', 'jobs.report_worker',
                           '{"kind": "analytics", "days": 7}');
END
$$;

-- examples/jobs.sql: background jobs for an application, built only on
-- pgapp's job queue: emails, reports and imports run by pgapp's background
-- workers, in four queues, and two schedules; and the channels of the jobs
-- admin page (examples/web/jobs.html) at the end.
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

-- args: import_id, batch_size (500), pause_ms (0: a pause after each batch,
-- at most 1000, for demonstrations).  Imports the staged rows not imported
-- yet, so running it again after it completed changes nothing.
CREATE OR REPLACE FUNCTION jobs.import_worker(args jsonb, job pgapp.job_info)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    imp bigint := (args ->> 'import_id')::bigint;
    batch_size integer := coalesce((args ->> 'batch_size')::integer, 500);
    -- a demo knob (the jobs page's "pause between batches"): so that a
    -- person can watch the progress bar, and cancel; at most a second
    pause_ms integer := least(greatest(coalesce((args ->> 'pause_ms')::integer, 0), 0), 1000);
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
        IF pause_ms > 0 THEN
            PERFORM pg_sleep(pause_ms / 1000.0);
        END IF;
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

---------------------------------------------------------------------------
-- The jobs admin page (examples/web/jobs.html, docs/web.md#jobs-admin),
-- over pgapp-gateway: Oban.Web's role
---------------------------------------------------------------------------
--
--   topic        join                      handle_in
--   jobs_admin   jobs.admin_join           jobs.admin_handle_in: refresh, retry, cancel,
--                                          pause, resume, start_import
--   jobs:<id>    jobs.job_channel_join     jobs.job_channel_handle_in: state
--                                          (pgapp broadcasts "progress" there)
--
-- Who: members of pgapp_admin act (retry, cancel, pause, resume, start an
-- import) and see everything; roles that may execute jobs._admin_overview
-- (app_user) watch a read-only view without args or error texts; others
-- are refused.  A token cannot name a role with pgapp_admin's privileges
-- (pgapp.encode_token refuses it, docs/auth.md), so the demo's admin role,
-- jobs_admin, is a NOINHERIT member of pgapp_admin: it has none of
-- pgapp_admin's privileges by itself, and these functions, having checked
-- the membership, switch to pgapp_admin (set_config('role', ..., true))
-- for the action alone and switch back before they return (an error rolls
-- the switch back with the rest).  Every action goes through a function
-- that checks again:
-- pgapp's own (pause_queue: EXECUTE for pgapp_admin only; cancel_job and
-- retry_job: the job's owner or pgapp_admin) or jobs._admin_start_import
-- (EXECUTE for pgapp_admin only), so calling them directly gives a
-- non-admin 42501 as well.
--
-- Live updates: triggers on pgapp.job and pgapp.queue broadcast on the
-- topic jobs_admin (direct mode: NOTIFY at commit, no outbox row): event
-- "jobs" {"jobs": [the changed jobs, newest 20], "count"} once per
-- statement that inserts jobs or changes their state, attempt or cancel
-- flag (at most about 4 kB: a NOTIFY, never a stored message); "jobs_deleted" {"count"} (pruning, drop_queue); "queue" {"op",
-- "name", "concurrency", "paused"}.  They carry no args and no error text
-- (viewers receive them too); a page treats them as a hint to re-read
-- (handle_in "refresh"), as docs/pubsub.md advises.  The cost is one
-- trigger call per statement on pgapp.job, and a NOTIFY per change.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobs_admin') THEN
        CREATE ROLE jobs_admin NOLOGIN NOINHERIT;
    END IF;
    -- NOINHERIT even if it existed: a token may then name it
    ALTER ROLE jobs_admin NOINHERIT;
    IF NOT pg_has_role('jobs_admin', 'pgapp_admin', 'MEMBER') THEN
        GRANT pgapp_admin TO jobs_admin;
    END IF;
END
$$;

-- The read-only view of the page, for any role allowed to watch: queues
-- with their counts by state, the 50 most recent jobs (of one state, if
-- given), the cron schedules that enqueue jobs, the 5 latest imports.  No
-- args, no error texts (jobs._admin_job_details adds them for admins).
CREATE OR REPLACE FUNCTION jobs._admin_overview(state text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF state IS NOT NULL AND NOT state = ANY (enum_range(NULL::pgapp.job_state)::text[]) THEN
        RAISE EXCEPTION 'unknown job state %', quote_literal(state)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'States: ' || array_to_string(enum_range(NULL::pgapp.job_state)::text[], ', ') || '.';
    END IF;
    RETURN jsonb_build_object(
        'queues', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'name', s.queue, 'concurrency', s.concurrency, 'paused', s.paused,
                              'workers', s.workers, 'busy', s.busy,
                              'counts', jsonb_build_object(
                                  'scheduled', s.scheduled, 'available', s.available, 'executing', s.executing,
                                  'retryable', s.retryable, 'completed', s.completed, 'discarded', s.discarded,
                                  'cancelled', s.cancelled))
                          ORDER BY s.queue), '[]')
                     FROM pgapp.queue_stats AS s),
        'state', state,
        'jobs', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'id', j.id, 'queue', j.queue, 'worker', j.worker::text, 'state', j.state,
                            'attempt', j.attempt, 'max_attempts', j.max_attempts,
                            'errors', jsonb_array_length(j.errors), 'cancelling', j.cancel_requested_at IS NOT NULL,
                            'inserted_at', j.inserted_at, 'scheduled_at', j.scheduled_at,
                            'finished_at', coalesce(j.completed_at, j.discarded_at, j.cancelled_at))
                        ORDER BY j.id DESC), '[]')
                   FROM (SELECT * FROM pgapp.job AS x
                          WHERE _admin_overview.state IS NULL OR x.state::text = _admin_overview.state
                          ORDER BY x.id DESC
                          LIMIT 50) AS j),
        'schedules', jobs._admin_schedules(),
        'imports', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                               'id', i.id, 'source', i.source, 'job_id', i.job_id, 'job_state', i.job_state,
                               'staged_rows', i.staged_rows, 'percent', i.progress, 'message', i.progress_message,
                               'inserted', i.inserted, 'updated', i.updated, 'invalid', i.invalid,
                               'finished_at', i.finished_at)
                           ORDER BY i.id DESC), '[]')
                      FROM (SELECT * FROM jobs.imports AS y ORDER BY y.id DESC LIMIT 5) AS i));
END
$$;

-- pg_cron's schedules that enqueue pgapp jobs (pgapp.schedule), whoever
-- owns them, with their last run; [] without pg_cron.
CREATE OR REPLACE FUNCTION jobs._admin_schedules()
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found jsonb;
BEGIN
    IF to_regclass('cron.job') IS NULL OR to_regclass('cron.job_run_details') IS NULL THEN
        RETURN '[]';
    END IF;
    EXECUTE $q$
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'name', c.jobname, 'schedule', c.schedule, 'active', c.active, 'owner', c.username,
                   'queue', substring(c.command FROM $re$^SELECT pgapp\.enqueue\('([^']*)'$re$),
                   'worker', substring(c.command FROM $re$^SELECT pgapp\.enqueue\('[^']*', '([^'(]*)$re$),
                   'last_status', r.status, 'last_start', r.start_time)
               ORDER BY c.jobname), '[]')
          FROM cron.job AS c
          LEFT JOIN LATERAL (SELECT d.status, d.start_time FROM cron.job_run_details AS d
                              WHERE d.jobid = c.jobid ORDER BY d.runid DESC LIMIT 1) AS r ON true
         WHERE c.command LIKE 'SELECT pgapp.enqueue(%'
           AND c.database = current_database()
    $q$ INTO found;
    RETURN found;
END
$$;

-- For admins (it reads pgapp.job with the caller's rights): the args and
-- the last error of the jobs of ids, as {"<id>": {"args", "last_error"}}.
CREATE OR REPLACE FUNCTION jobs._admin_job_details(ids bigint[])
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(j.id, jsonb_build_object(
               'args', left(j.args::text, 300),
               'last_error', CASE WHEN jsonb_array_length(j.errors) > 0 THEN
                   jsonb_build_object('message', left(j.errors -> -1 ->> 'message', 500),
                                      'sqlstate', j.errors -> -1 ->> 'sqlstate',
                                      'attempt', j.errors -> -1 -> 'attempt',
                                      'at', j.errors -> -1 ->> 'at') END)), '{}')
      FROM pgapp.job AS j
     WHERE j.id = ANY (ids[1:200])
$$;

-- What a page shows, as the calling role: for a member of pgapp_admin the
-- overview with the jobs' args and last errors, and "admin": true; for a
-- role that may execute jobs._admin_overview, the overview; else NULL.
-- params: {"state": a job state, to list only jobs in it}.
CREATE OR REPLACE FUNCTION jobs.admin_view(params jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    who text := current_user;
    caller_role text := current_setting('role');
    filter text := nullif(coalesce(params, '{}') ->> 'state', '');
    view jsonb;
BEGIN
    IF pg_has_role(who, 'pgapp_admin', 'MEMBER') THEN
        -- step up to read what pgapp_admin may, then back
        PERFORM set_config('role', 'pgapp_admin', true);
        view := jobs._admin_overview(filter);
        view := view || jsonb_build_object(
            'admin', true, 'role', who, 'user', pgapp.token_claims() ->> 'sub',
            'details', jobs._admin_job_details(ARRAY(SELECT (e ->> 'id')::bigint
                                                      FROM jsonb_array_elements(view -> 'jobs') AS e)));
        PERFORM set_config('role', caller_role, true);
        RETURN view;
    END IF;
    IF has_function_privilege('jobs._admin_overview(text)', 'EXECUTE') THEN
        RETURN jobs._admin_overview(filter) || jsonb_build_object(
            'admin', false, 'role', who, 'user', pgapp.token_claims() ->> 'sub', 'details', '{}'::jsonb);
    END IF;
    RETURN NULL;
END
$$;

-- Join of jobs_admin.
CREATE OR REPLACE FUNCTION jobs.admin_join(topic text, params jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    view jsonb;
BEGIN
    view := jobs.admin_view(params);
    IF view IS NULL THEN
        RETURN jsonb_build_object('error', jsonb_build_object(
            'reason', 'forbidden',
            'message', format('role %s may not watch the jobs (members of pgapp_admin and app_user may)', current_user)));
    END IF;
    RETURN jsonb_build_object('ok', view);
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN jsonb_build_object('error', jsonb_build_object('reason', 'bad request', 'message', SQLERRM));
END
$$;

-- Start an import of rows generated rows (person<i>@example.com), batch_size
-- at a time, pausing pause_ms after each batch; the job runs as this
-- function's owner.  Returns {"import_id", "job_id"}.
CREATE OR REPLACE FUNCTION jobs._admin_start_import(rows integer, batch_size integer DEFAULT 500,
                                                    pause_ms integer DEFAULT 0)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    imp bigint;
    jid bigint;
BEGIN
    IF rows IS NULL OR rows NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'rows must be between 1 and 100000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch_size IS NULL OR batch_size NOT BETWEEN 10 AND 5000 THEN
        RAISE EXCEPTION 'batch_size must be between 10 and 5000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pause_ms IS NULL OR pause_ms NOT BETWEEN 0 AND 1000 THEN
        RAISE EXCEPTION 'pause_ms must be between 0 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO jobs.import (source) VALUES (format('the jobs page: %s generated rows', rows))
    RETURNING id INTO imp;
    INSERT INTO jobs.import_row (import_id, email, name)
    SELECT imp, format('person%s@example.com', i), format('Person %s', i)
      FROM generate_series(1, rows) AS i;
    jid := pgapp.enqueue('imports', 'jobs.import_worker',
                         jsonb_build_object('import_id', imp, 'batch_size', batch_size, 'pause_ms', pause_ms),
                         unique_by => ARRAY['import_id'], max_attempts => 3);
    UPDATE jobs.import AS x SET job_id = jid WHERE x.id = imp;
    RETURN jsonb_build_object('import_id', imp, 'job_id', jid);
END
$$;

-- A job id from a payload's "id", or 22023.
CREATE OR REPLACE FUNCTION jobs._admin_job_id(payload jsonb)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF jsonb_typeof(payload -> 'id') = 'number' AND (payload ->> 'id') ~ '^[0-9]{1,18}$' THEN
        RETURN (payload ->> 'id')::bigint;
    END IF;
    RAISE EXCEPTION 'id must be a job id (a positive integer)' USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- handle_in of jobs_admin: "refresh" {"state"} -> what jobs.admin_view
-- shows; for members of pgapp_admin, "retry" / "cancel" {"id"}, "pause" /
-- "resume" {"queue"}, "start_import" {"rows", "batch_size", "pause_ms"}.
-- Errors are replies {"reason", "message"} (and "sqlstate" for a failed
-- action), never a crash.
CREATE OR REPLACE FUNCTION jobs.admin_handle_in(topic text, event text, payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    who text := current_user;
    caller_role text := current_setting('role');
    what text := CASE event WHEN 'retry' THEN 'retry jobs' WHEN 'cancel' THEN 'cancel jobs'
                            WHEN 'pause' THEN 'pause queues' WHEN 'resume' THEN 'resume queues'
                            WHEN 'start_import' THEN 'start imports' END;
    jid bigint;
    q text;
    done boolean;
    reply jsonb;
BEGIN
    payload := coalesce(payload, '{}');
    IF jsonb_typeof(payload) <> 'object' THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'bad request',
                                                              'message', 'the payload must be a JSON object'));
    END IF;
    IF event = 'refresh' THEN
        BEGIN
            reply := jobs.admin_view(payload);
        EXCEPTION WHEN invalid_parameter_value THEN
            RETURN jsonb_build_object('error', jsonb_build_object('reason', 'bad request', 'message', SQLERRM));
        END;
        RETURN CASE WHEN reply IS NULL
                    THEN jsonb_build_object('error', jsonb_build_object('reason', 'forbidden',
                             'message', format('role %s may not watch the jobs', who)))
                    ELSE jsonb_build_object('ok', reply) END;
    END IF;
    IF what IS NULL THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'unknown event',
            'message', format('unknown event %s (events: refresh, retry, cancel, pause, resume, start_import)',
                              quote_literal(left(event, 63)))));
    END IF;
    IF NOT pg_has_role(who, 'pgapp_admin', 'MEMBER') THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'forbidden',
            'message', format('only members of pgapp_admin may %s (your role is %s)', what, who)));
    END IF;
    BEGIN
        -- step up for the action, then back (an error rolls the step-up
        -- back with this block); what it calls checks the privilege again
        PERFORM set_config('role', 'pgapp_admin', true);
        CASE event
        WHEN 'retry', 'cancel' THEN
            jid := jobs._admin_job_id(payload);
            done := CASE event WHEN 'retry' THEN pgapp.retry_job(jid) ELSE pgapp.cancel_job(jid) END;
            SELECT jsonb_build_object('id', j.id, 'done', done, 'state', j.state,
                                      'cancelling', j.cancel_requested_at IS NOT NULL)
              INTO reply FROM pgapp.job AS j WHERE j.id = jid;
        WHEN 'pause', 'resume' THEN
            q := payload ->> 'queue';
            IF event = 'pause' THEN
                PERFORM pgapp.pause_queue(q);
            ELSE
                PERFORM pgapp.resume_queue(q);
            END IF;
            SELECT jsonb_build_object('queue', x.name, 'paused', x.paused) INTO reply
              FROM pgapp.queue AS x WHERE x.name = q;
        WHEN 'start_import' THEN
            reply := jobs._admin_start_import(coalesce((payload ->> 'rows')::integer, 20000),
                                              coalesce((payload ->> 'batch_size')::integer, 500),
                                              coalesce((payload ->> 'pause_ms')::integer, 0));
        END CASE;
        PERFORM set_config('role', caller_role, true);
    EXCEPTION WHEN OTHERS THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'failed', 'sqlstate', SQLSTATE,
                                                              'message', SQLERRM));
    END;
    RETURN jsonb_build_object('ok', reply);
END
$$;

-- Join of jobs:<id> (pgapp broadcasts the job's "progress" there), and its
-- push "state": members of pgapp_admin only; the reply is the job's state
-- and its progress so far.  (The gateway LISTENs after the join function
-- has run: a page asks "state" once joined, for what came in between.)
CREATE OR REPLACE FUNCTION jobs.job_channel_join(topic text, params jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    caller_role text := current_setting('role');
    jid bigint;
    reply jsonb;
BEGIN
    IF NOT pg_has_role(current_user, 'pgapp_admin', 'MEMBER') THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'forbidden',
            'message', 'only members of pgapp_admin may follow jobs here'));
    END IF;
    IF topic !~ '^jobs:[0-9]{1,18}$' THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'bad request',
                                                              'message', 'the topic must be jobs:<id>'));
    END IF;
    jid := substr(topic, 6)::bigint;
    PERFORM set_config('role', 'pgapp_admin', true);
    SELECT jsonb_build_object('id', j.id, 'queue', j.queue, 'state', j.state,
                              'percent', coalesce(w.progress, j.progress), 'message', w.progress_message)
      INTO reply
      FROM pgapp.job AS j
      LEFT JOIN pgapp.workers AS w ON w.job = j.id
     WHERE j.id = jid;
    PERFORM set_config('role', caller_role, true);
    IF reply IS NULL THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'not found',
                                                              'message', format('job %s does not exist', jid)));
    END IF;
    RETURN jsonb_build_object('ok', reply);
END
$$;

CREATE OR REPLACE FUNCTION jobs.job_channel_handle_in(topic text, event text, payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF event IS DISTINCT FROM 'state' THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'unknown event',
            'message', format('unknown event %s (events: state)', quote_literal(left(event, 63)))));
    END IF;
    RETURN jobs.job_channel_join(topic, '{}');
END
$$;

-- The triggers' broadcasts (see above).  SECURITY DEFINER: they fire in
-- whoever writes pgapp.job (an enqueuer, a worker, a job, the supervisor).
CREATE OR REPLACE FUNCTION jobs._admin_jobs_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    changed jsonb;
    n bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT count(*) INTO n FROM old_jobs;
        IF n > 0 THEN
            PERFORM pgapp.broadcast('jobs_admin', 'jobs_deleted', jsonb_build_object('count', n), 'direct');
        END IF;
        RETURN NULL;
    END IF;
    -- EXECUTE: planned at each call for the rows at hand.  A plan cached in
    -- a worker at its first claim (one row) would join the old and new rows
    -- of its 1000-row claims by nested loop: 4 times slower jobs, measured.
    EXECUTE format($q$
        WITH c AS (%s)
        SELECT (SELECT count(*) FROM c),
               (SELECT jsonb_agg(jsonb_build_object(
                           'id', l.id, 'queue', l.queue, 'worker', l.worker::text, 'state', l.state,
                           'attempt', l.attempt, 'max_attempts', l.max_attempts,
                           'errors', jsonb_array_length(l.errors), 'cancelling', l.cancel_requested_at IS NOT NULL,
                           'inserted_at', l.inserted_at)
                       ORDER BY l.id DESC)
                  FROM (SELECT * FROM c ORDER BY c.id DESC LIMIT 20) AS l)
        $q$,
        CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT * FROM new_jobs'
        ELSE 'SELECT nj.* FROM new_jobs AS nj JOIN old_jobs AS oj ON oj.id = nj.id
               WHERE (nj.state, nj.attempt, nj.cancel_requested_at IS NULL)
                     IS DISTINCT FROM (oj.state, oj.attempt, oj.cancel_requested_at IS NULL)' END)
    INTO n, changed;
    IF n > 0 THEN
        PERFORM pgapp.broadcast('jobs_admin', 'jobs', jsonb_build_object('jobs', changed, 'count', n), 'direct');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION jobs._admin_queue_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue := CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    PERFORM pgapp.broadcast('jobs_admin', 'queue',
                            jsonb_build_object('op', lower(TG_OP), 'name', q.name, 'concurrency', q.concurrency,
                                               'paused', q.paused),
                            'direct');
    RETURN NULL;
END
$$;

-- (a trigger with transition tables has one event)
CREATE OR REPLACE TRIGGER jobs_admin_inserted AFTER INSERT ON pgapp.job
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs._admin_jobs_changed();
CREATE OR REPLACE TRIGGER jobs_admin_updated AFTER UPDATE ON pgapp.job
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs._admin_jobs_changed();
CREATE OR REPLACE TRIGGER jobs_admin_deleted AFTER DELETE ON pgapp.job
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs._admin_jobs_changed();
CREATE OR REPLACE TRIGGER jobs_admin_queue_added AFTER INSERT OR DELETE ON pgapp.queue
    FOR EACH ROW EXECUTE FUNCTION jobs._admin_queue_changed();
CREATE OR REPLACE TRIGGER jobs_admin_queue_changed AFTER UPDATE ON pgapp.queue
    FOR EACH ROW
    WHEN (OLD.paused IS DISTINCT FROM NEW.paused OR OLD.concurrency IS DISTINCT FROM NEW.concurrency)
    EXECUTE FUNCTION jobs._admin_queue_changed();

REVOKE ALL ON FUNCTION jobs._admin_overview(text), jobs._admin_schedules(), jobs._admin_job_details(bigint[]),
    jobs.admin_view(jsonb), jobs.admin_join(text, jsonb), jobs._admin_start_import(integer, integer, integer),
    jobs._admin_job_id(jsonb), jobs.admin_handle_in(text, text, jsonb), jobs.job_channel_join(text, jsonb),
    jobs.job_channel_handle_in(text, text, jsonb), jobs._admin_jobs_changed(), jobs._admin_queue_changed()
    FROM PUBLIC;
-- the page's tokens: jobs_admin (NOINHERIT: grants to pgapp_admin do not
-- reach it before it steps up), app_user (read-only)
GRANT USAGE ON SCHEMA jobs TO app_user, jobs_admin, pgapp_admin;
GRANT EXECUTE ON FUNCTION jobs.admin_join(text, jsonb), jobs.admin_handle_in(text, text, jsonb),
    jobs.admin_view(jsonb), jobs.job_channel_join(text, jsonb), jobs.job_channel_handle_in(text, text, jsonb),
    jobs._admin_job_id(jsonb)
    TO app_user, jobs_admin, pgapp_admin;
GRANT EXECUTE ON FUNCTION jobs._admin_overview(text), jobs._admin_schedules() TO app_user, pgapp_admin;
GRANT EXECUTE ON FUNCTION jobs._admin_job_details(bigint[]), jobs._admin_start_import(integer, integer, integer)
    TO pgapp_admin;

DO $$
BEGIN
    PERFORM pgapp.define_channel('jobs_admin', 'jobs.admin_join(text, jsonb)', 'jobs.admin_handle_in(text, text, jsonb)');
    PERFORM pgapp.define_channel('jobs:*', 'jobs.job_channel_join(text, jsonb)',
                                 'jobs.job_channel_handle_in(text, text, jsonb)');
END
$$;

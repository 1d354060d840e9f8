--
-- errors: the error model (pgapp.report_error, pgapp.error_mode, error stats).
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

SELECT pgapp.error_stats_reset() IS NOT NULL AS reset;

-- error_of(statement): the message and detail of the error it raises
CREATE TYPE pg_temp.error_fields AS (sqlstate text, message text, detail text);
CREATE FUNCTION pg_temp.error_of(query text) RETURNS pg_temp.error_fields
LANGUAGE plpgsql AS $$
DECLARE
    r pg_temp.error_fields;
BEGIN
    EXECUTE query;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS r.sqlstate = RETURNED_SQLSTATE, r.message = MESSAGE_TEXT, r.detail = PG_EXCEPTION_DETAIL;
    RETURN r;
END
$$;

---------------------------------------------------------------------------
-- raise mode
---------------------------------------------------------------------------
SET pgapp.error_mode = 'raise';
SELECT pgapp.error_mode();

-- a validation body: PT422, message summarising the field errors, body in DETAIL
SELECT * FROM pg_temp.show($$
  SELECT pgapp.report_error(422, '{"errors": {"title": ["can''t be blank"]}}')
$$);
SELECT * FROM pg_temp.show($$
  SELECT pgapp.report_error(422,
    '{"errors": {"title": ["should be at least 3 character(s)", "has invalid format"],
                 "status": ["is invalid"]}}')
$$);

-- other statuses get their own SQLSTATE and a default message
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(409, '{"error": "out_of_stock", "product": "widget"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(404, '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(402, '{"error": "payment_failed"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(418, '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(500, '{}') $$);

-- caller's message and hint; column and table fields
CREATE TABLE task (id int PRIMARY KEY, title text);
SELECT * FROM pg_temp.show($$
  SELECT pgapp.report_error(422, '{"errors": {"title": ["can''t be blank"]}}',
                            message => 'title is required',
                            hint => 'Give the task a title.',
                            column_name => 'title', table_name => 'task')
$$);

-- numbers beyond int64 and double are JSON too: kept exactly, in DETAIL and in the returned body
SELECT * FROM pg_temp.show($$
  SELECT pgapp.report_error(422, '{"errors": {"qty": ["is too big"]}, "max": 123456789012345678901234567890, "exact": 0.1000000000000000000000000001, "huge": 1e40}')
$$);
BEGIN;
SET LOCAL pgapp.error_mode = 'return';
SELECT pgapp.report_error(409, '{"stock": 99999999999999999999999999999999999999.000000000000000000001}') AS body;
COMMIT;

-- field names and messages that echo the caller's input are cut in the MESSAGE
-- (64 characters, whole characters only, then "..."); DETAIL keeps the whole body
SELECT (r).message, length((r).detail) AS detail_length
  FROM (SELECT pg_temp.error_of(format($q$SELECT pgapp.report_error(422, %L)$q$,
          jsonb_build_object('errors', jsonb_build_object(repeat('é', 200), jsonb_build_array(repeat('x', 5000))))))
        AS r) AS t;
-- at most 20 field errors are listed in the MESSAGE
SELECT (r).message
  FROM (SELECT pg_temp.error_of(format($q$SELECT pgapp.report_error(422, %L)$q$,
          jsonb_build_object('errors', (SELECT jsonb_object_agg('f' || lpad(i::text, 2, '0'), jsonb_build_array('bad'))
                                          FROM generate_series(1, 25) AS i)))) AS r) AS t;

-- psql shows the same error as a client would
\set VERBOSITY default
SELECT pgapp.report_error(422, '{"errors": {"title": ["can''t be blank"]}}');

---------------------------------------------------------------------------
-- return mode
---------------------------------------------------------------------------
SET pgapp.error_mode = 'return';
SELECT pgapp.error_mode();
BEGIN;
SELECT pgapp.report_error(422, '{"errors": {"title": ["can''t be blank"]}}') AS body;
SELECT current_setting('response.status') AS status;
COMMIT;
-- response.status was local to that transaction
SELECT current_setting('response.status') AS status_after;

---------------------------------------------------------------------------
-- auto mode: return inside a PostgREST request (request.method set), else raise
---------------------------------------------------------------------------
RESET pgapp.error_mode;
SELECT pgapp.error_mode() AS outside_request;
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(429, '{"error": "slow down"}') $$);

BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.error_mode() AS inside_request;
SELECT pgapp.report_error(429, '{"error": "slow down"}') AS body;
SELECT current_setting('response.status') AS status;
COMMIT;
-- after the request the setting reads '' and auto raises again
SELECT current_setting('request.method') = '' AS method_empty, pgapp.error_mode();

---------------------------------------------------------------------------
-- A PostgREST RPC in return mode: the function undoes its own writes, reports
-- 422 with a Phoenix body, and the transaction commits with nothing written.
-- This reproduces the SQL PostgREST runs for one request (see example_tasks).
---------------------------------------------------------------------------
CREATE ROLE pgapp_web_anon NOLOGIN;
GRANT SELECT, INSERT ON task TO pgapp_web_anon;
CREATE FUNCTION create_task(id int, title text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
BEGIN
    BEGIN
        INSERT INTO task VALUES (create_task.id, create_task.title);
        IF coalesce(btrim(create_task.title), '') = '' THEN
            -- raise to roll the subtransaction (the INSERT) back ...
            RAISE SQLSTATE 'PT422' USING DETAIL = '{"errors": {"title": ["can''t be blank"]}}';
        END IF;
        PERFORM set_config('response.status', '201', true);
        RETURN to_jsonb(t) FROM task t WHERE t.id = create_task.id;
    EXCEPTION WHEN SQLSTATE 'PT422' THEN
        GET STACKED DIAGNOSTICS result = PG_EXCEPTION_DETAIL;
    END;
    -- ... then report through the error model: returns in a request, raises elsewhere
    RETURN pgapp.report_error(422, result, column_name => 'title', table_name => 'task');
END
$$;
GRANT EXECUTE ON FUNCTION create_task(int, text) TO pgapp_web_anon;

-- POST /rpc/create_task {"id": 1, "title": "  "}
BEGIN;
SELECT set_config('role', 'pgapp_web_anon', true) IS NOT NULL AS role_set;
SELECT set_config('request.method', 'POST', true),
       set_config('request.path', '/rpc/create_task', true),
       set_config('request.headers', '{"content-type": "application/json"}', true),
       set_config('request.jwt.claims', '{"role": "pgapp_web_anon"}', true);
SELECT create_task(id => 1, title => '  ') AS response_body;
SELECT current_setting('response.status', true) AS response_status;
COMMIT;
SELECT count(*) AS rows_written FROM task;

-- POST /rpc/create_task {"id": 2, "title": "Write docs"}
BEGIN;
SELECT set_config('role', 'pgapp_web_anon', true) IS NOT NULL AS role_set;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT create_task(id => 2, title => 'Write docs') AS response_body;
SELECT current_setting('response.status', true) AS response_status;
COMMIT;

-- the same function from psql raises, and nothing is written
SELECT * FROM pg_temp.show($$ SELECT create_task(3, '') $$);
SELECT id, title FROM task ORDER BY id;

---------------------------------------------------------------------------
-- bad input
---------------------------------------------------------------------------
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(200, '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(600, '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(-422, '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(NULL, '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, '["can''t be blank"]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, '"can''t be blank"') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, '{}', message => '') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, '{}', table_name => 'no_such_table') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, '{}', table_name => 999999::oid::regclass) $$);
-- malformed field errors are left out of the message, never crash
SELECT * FROM pg_temp.show($$
  SELECT pgapp.report_error(422, '{"errors": {"a": 1, "b": [2, "is invalid"], "c": "has invalid format"}}')
$$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(422, '{"errors": []}') $$);

---------------------------------------------------------------------------
-- statistics: every report counted, raised or returned, even when the
-- transaction rolled back; reset only for pgapp_admin
---------------------------------------------------------------------------
SELECT status, sqlstate, raised, returned FROM pgapp.error_stats ORDER BY status;

CREATE ROLE pgapp_test_admin;
GRANT pgapp_admin TO pgapp_test_admin;
SET ROLE pgapp_web_anon;
SELECT count(*) > 0 AS can_read FROM pgapp.error_stats;
SELECT * FROM pg_temp.show($$ SELECT pgapp.error_stats_reset() $$);
RESET ROLE;
SET ROLE pgapp_test_admin;
SELECT pgapp.error_stats_reset() <= now() + interval '1 hour' AS reset_by_admin;
RESET ROLE;
SELECT count(*) AS rows_after_reset FROM pgapp.error_stats;

-- a reset happens when its transaction commits: a rolled-back transaction,
-- a savepoint rolled back and a refused PREPARE keep the counters; a released
-- savepoint's reset counts at the commit; the counters are seen unchanged
-- until then, by the resetting session too
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(409, '{}') $$);
SELECT stats_reset AS reset_before FROM pgapp.error_stats \gset
BEGIN;
SELECT pgapp.error_stats_reset() IS NOT NULL AS reset_called;
SELECT status, raised, returned FROM pgapp.error_stats ORDER BY status;
ROLLBACK;
SELECT status, raised, returned, stats_reset = :'reset_before' AS same_reset_time
  FROM pgapp.error_stats ORDER BY status;
BEGIN;
SAVEPOINT s;
SELECT pgapp.error_stats_reset() IS NOT NULL AS reset_called;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT status, raised, returned FROM pgapp.error_stats ORDER BY status;
DO $$ BEGIN PERFORM pgapp.error_stats_reset(); RAISE division_by_zero; END $$;
SELECT status, raised, returned FROM pgapp.error_stats ORDER BY status;
BEGIN;
SELECT pgapp.error_stats_reset() IS NOT NULL AS reset_called;
PREPARE TRANSACTION 'pgapp_reset_prepared';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'pgapp_reset_prepared';
SELECT status, raised, returned FROM pgapp.error_stats ORDER BY status;
BEGIN;
SAVEPOINT s;
SELECT pgapp.error_stats_reset() IS NOT NULL AS reset_called;
RELEASE SAVEPOINT s;
SELECT status, raised, returned FROM pgapp.error_stats ORDER BY status;
COMMIT;
SELECT count(*) AS rows_after_commit FROM pgapp.error_stats;
SELECT * FROM pg_temp.show($$ SELECT pgapp.report_error(409, '{}') $$);
SELECT status, raised, returned, stats_reset > :'reset_before' AS reset_time_moved
  FROM pgapp.error_stats ORDER BY status;

DROP FUNCTION create_task(int, text);
DROP TABLE task;
DROP ROLE pgapp_web_anon;
DROP ROLE pgapp_test_admin;

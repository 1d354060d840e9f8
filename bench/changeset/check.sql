-- bench/changeset/check.sql: before timing anything, show that the C trigger
-- and the PL/pgSQL trigger accept and reject the same writes with the same
-- error (SQLSTATE, message, DETAIL, COLUMN, TABLE).  Prints one line per case
-- that differs and "check: N cases, N differ"; run.sh stops when any differs.
-- Runs in a transaction that is rolled back.
BEGIN;

CREATE FUNCTION pg_temp.outcome(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; col text; tbl text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            col = COLUMN_NAME, tbl = TABLE_NAME;
    RETURN replace(concat_ws(' | ', st, msg, det, col, tbl), 'task_plpgsql', 'task_c');
END
$$;

-- One row per table to update: a past due date, written with triggers off.
SET LOCAL session_replication_role = replica;
INSERT INTO task_c (id, title, due_date) OVERRIDING SYSTEM VALUE VALUES (-1, 'Old task', current_date - 10);
INSERT INTO task_plpgsql (id, title, due_date) OVERRIDING SYSTEM VALUE VALUES (-1, 'Old task', current_date - 10);
SET LOCAL session_replication_role = origin;

CREATE TEMP TABLE check_case (n serial, stmt text);
INSERT INTO check_case (stmt) VALUES
    -- inserts
    ($$INSERT INTO %s (title) VALUES ('Write the docs')$$),
    ($$INSERT INTO %s (title, priority, due_date, assignee_id) VALUES ('abc', 'urgent', current_date + 1, 1)$$),
    ($$INSERT INTO %s (title) VALUES (NULL)$$),
    ($$INSERT INTO %s (title) VALUES ('')$$),
    ($$INSERT INTO %s (title) VALUES (E' \t ')$$),
    ($$INSERT INTO %s (title) VALUES ('ab')$$),
    ($$INSERT INTO %s (title) VALUES ('  ab  ')$$),
    ($$INSERT INTO %s (title) VALUES ('éé')$$),
    ($$INSERT INTO %s (title) VALUES ('ééé')$$),
    ($$INSERT INTO %s (title) VALUES (repeat('x', 200))$$),
    ($$INSERT INTO %s (title) VALUES (repeat('é', 201))$$),
    ($$INSERT INTO %s (title, due_date) VALUES ('Write the docs', current_date)$$),
    ($$INSERT INTO %s (title, due_date) VALUES ('x', '2001-01-01')$$),
    ($$INSERT INTO %s (title, due_date) VALUES (NULL, current_date - 1)$$),
    ($$INSERT INTO %s (title, due_date) VALUES ('', current_date - 1)$$),
    ($$INSERT INTO %s (title, assignee_id) VALUES ('Write the docs', 12345)$$),
    -- updates of the row with a past due date
    ($$UPDATE %s SET title = 'Renamed task' WHERE id = -1$$),
    ($$UPDATE %s SET priority = 'high' WHERE id = -1$$),
    ($$UPDATE %s SET due_date = due_date WHERE id = -1$$),
    ($$UPDATE %s SET due_date = due_date - 1 WHERE id = -1$$),
    ($$UPDATE %s SET due_date = current_date + 1 WHERE id = -1$$),
    ($$UPDATE %s SET title = 'no' WHERE id = -1$$),
    ($$UPDATE %s SET title = ' ', due_date = current_date WHERE id = -1$$);

-- Each case runs on task_c, then on task_plpgsql, in order (the updates
-- build on each other).
CREATE TEMP TABLE check_result AS
SELECT n, stmt,
       pg_temp.outcome(format(stmt, 'task_c')) AS c,
       pg_temp.outcome(format(stmt, 'task_plpgsql')) AS plpgsql
  FROM check_case ORDER BY n;

\pset format unaligned
\pset tuples_only on
SELECT format(E'case %s differs: %s\n  c:       %s\n  plpgsql: %s', n, format(stmt, 'task'), c, plpgsql)
  FROM check_result WHERE c IS DISTINCT FROM plpgsql ORDER BY n;
SELECT format('check: %s cases (%s rejected), %s differ', count(*), count(*) FILTER (WHERE c <> 'ok'),
              count(*) FILTER (WHERE c IS DISTINCT FROM plpgsql))
  FROM check_result;
\if :{?verbose_check}
SELECT format('%s  %s', format(stmt, 'task'), c) FROM check_result ORDER BY n;
\endif

ROLLBACK;

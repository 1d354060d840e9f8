-- bench/changeset/schema.sql: three identical task tables, validated three ways.
--   task_none     no validation
--   task_c        pgapp's C trigger (pgapp.validate_table)
--   task_plpgsql  the same rules as an idiomatic PL/pgSQL trigger
CREATE EXTENSION IF NOT EXISTS pgapp;

CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done', 'cancelled');
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'urgent');
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 100) AS g;

CREATE TABLE task_none (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text NOT NULL,
    description text,
    status      task_status NOT NULL DEFAULT 'todo',
    priority    task_priority NOT NULL DEFAULT 'medium',
    due_date    date,
    assignee_id bigint REFERENCES users,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE task_c (LIKE task_none INCLUDING ALL, FOREIGN KEY (assignee_id) REFERENCES users);
CREATE TABLE task_plpgsql (LIKE task_none INCLUDING ALL, FOREIGN KEY (assignee_id) REFERENCES users);

SELECT pgapp.define_changeset('bench_task', 'task_c',
    ARRAY['title', 'description', 'status', 'priority', 'due_date', 'assignee_id'],
    '[{"required": ["title"]},
      {"length": "title", "min": 3, "max": 200},
      {"inclusion": "priority", "in": ["low", "medium", "high", "urgent"]},
      {"future": "due_date"}]');
SELECT pgapp.validate_table('task_c', 'bench_task');

-- The same rules and the same error: every field's errors at once, Ecto's
-- messages, newest first, validators only on present values, on UPDATE only
-- on changed columns, PT422 with the JSON in DETAIL.
CREATE FUNCTION validate_task_plpgsql() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    errors jsonb := '{}';
    n int;
BEGIN
    -- required
    IF NEW.title IS NULL OR btrim(NEW.title) = '' THEN
        errors := errors || jsonb_build_object('title', jsonb_build_array('can''t be blank'));
    END IF;
    -- length, only when changed and not blank
    IF NEW.title IS NOT NULL AND NOT errors ? 'title'
       AND (TG_OP = 'INSERT' OR NEW.title IS DISTINCT FROM OLD.title) THEN
        n := char_length(NEW.title);
        IF n < 3 THEN
            errors := errors || jsonb_build_object('title', jsonb_build_array('should be at least 3 character(s)'));
        ELSIF n > 200 THEN
            errors := errors || jsonb_build_object('title', jsonb_build_array('should be at most 200 character(s)'));
        END IF;
    END IF;
    -- inclusion
    IF NEW.priority IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.priority IS DISTINCT FROM OLD.priority)
       AND NOT NEW.priority::text = ANY (ARRAY['low', 'medium', 'high', 'urgent']) THEN
        errors := errors || jsonb_build_object('priority', jsonb_build_array('is invalid'));
    END IF;
    -- future
    IF NEW.due_date IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.due_date IS DISTINCT FROM OLD.due_date)
       AND NEW.due_date <= current_date THEN
        errors := errors || jsonb_build_object('due_date', jsonb_build_array('must be in the future'));
    END IF;
    IF errors <> '{}' THEN
        RAISE SQLSTATE 'PT422' USING MESSAGE = 'validation failed',
            DETAIL = jsonb_build_object('errors', errors)::text;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER validate BEFORE INSERT OR UPDATE ON task_plpgsql
    FOR EACH ROW EXECUTE FUNCTION validate_task_plpgsql();

-- One timed bulk insert of n valid rows into tbl, in milliseconds.
CREATE FUNCTION bulk_insert_ms(tbl regclass, n int) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE format('INSERT INTO %s (title, description, priority, due_date, assignee_id)
                    SELECT ''Task number '' || g, CASE WHEN g %% 3 = 0 THEN ''details '' || g END,
                           (ARRAY[''low'', ''medium'', ''high'', ''urgent''])[1 + g %% 4]::task_priority,
                           current_date + 1 + g %% 30, 1 + g %% 100
                      FROM generate_series(1, $1) AS g', tbl) USING n;
    RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1);
END
$$;

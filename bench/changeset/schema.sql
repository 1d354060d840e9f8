-- bench/changeset/schema.sql
--
-- Three identical task tables, validated three ways:
--   task_none     no validation
--   task_c        pgapp's C trigger (pgapp.define_changeset + pgapp.validate_table)
--   task_plpgsql  the same rules as a hand-written PL/pgSQL trigger
--
-- Autovacuum is off on the task tables so that a vacuum of the table filled
-- in one measurement does not run during the next one.

CREATE EXTENSION pgapp;

CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done', 'cancelled');
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'urgent');

CREATE TABLE users (
    id    bigserial PRIMARY KEY,
    email text UNIQUE NOT NULL
);
INSERT INTO users (email)
SELECT 'user' || g || '@example.com' FROM generate_series(1, 100) AS g;

CREATE TABLE task_none (
    id          bigserial PRIMARY KEY,
    title       text NOT NULL,
    description text,
    status      task_status NOT NULL DEFAULT 'todo',
    priority    task_priority NOT NULL DEFAULT 'medium',
    due_date    date,
    assignee_id bigint REFERENCES users (id),
    created_at  timestamptz DEFAULT now()
) WITH (autovacuum_enabled = off);

CREATE TABLE task_c (
    id          bigserial PRIMARY KEY,
    title       text NOT NULL,
    description text,
    status      task_status NOT NULL DEFAULT 'todo',
    priority    task_priority NOT NULL DEFAULT 'medium',
    due_date    date,
    assignee_id bigint REFERENCES users (id),
    created_at  timestamptz DEFAULT now()
) WITH (autovacuum_enabled = off);

CREATE TABLE task_plpgsql (
    id          bigserial PRIMARY KEY,
    title       text NOT NULL,
    description text,
    status      task_status NOT NULL DEFAULT 'todo',
    priority    task_priority NOT NULL DEFAULT 'medium',
    due_date    date,
    assignee_id bigint REFERENCES users (id),
    created_at  timestamptz DEFAULT now()
) WITH (autovacuum_enabled = off);

-- The C trigger.
SELECT pgapp.define_changeset('bench_task', 'task_c',
    ARRAY['title', 'description', 'status', 'priority', 'due_date', 'assignee_id'],
    '[{"required": ["title"]},
      {"length": "title", "min": 3, "max": 200},
      {"inclusion": "priority", "in": ["low", "medium", "high", "urgent"]},
      {"future": "due_date"}]');
SELECT pgapp.validate_table('task_c', 'bench_task');

-- The same rules in PL/pgSQL, written the way one would by hand, with the
-- C trigger's error behaviour (check.sql compares the two):
--   - every field's errors are collected, then one PT422 is raised with
--     {"errors": {...}} in DETAIL, "validation failed: <field> <message>; ..."
--     as the message, and the first failing field as COLUMN;
--   - within a field the newest error comes first;
--   - required looks at the new row (NULL or only white space is blank) and
--     adds only "can't be blank", and only to a field without an error yet;
--   - the other validators run only on non-blank values that are changes:
--     any non-null value on INSERT, a value different from OLD on UPDATE;
--     a blank title ('' or only white space) gets only "can't be blank";
--   - length counts characters.
CREATE FUNCTION task_plpgsql_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    errors jsonb := '{}';
    first_field text;
    is_insert boolean := TG_OP = 'INSERT';
    len int;
    msg text;
BEGIN
    -- {"required": ["title"]}
    IF (NEW.title IS NULL OR btrim(NEW.title, E' \t\n\r\f\v') = '') AND NOT errors ? 'title' THEN
        errors := jsonb_set(errors, '{title}', '["can''t be blank"]' || coalesce(errors -> 'title', '[]'));
        first_field := coalesce(first_field, 'title');
    END IF;

    -- {"length": "title", "min": 3, "max": 200}
    IF NEW.title IS NOT NULL AND btrim(NEW.title, E' \t\n\r\f\v') <> ''
       AND (is_insert OR NEW.title IS DISTINCT FROM OLD.title) THEN
        len := char_length(NEW.title);
        IF len < 3 THEN
            msg := 'should be at least 3 character(s)';
        ELSIF len > 200 THEN
            msg := 'should be at most 200 character(s)';
        END IF;
        IF msg IS NOT NULL THEN
            errors := jsonb_set(errors, '{title}', to_jsonb(msg) || coalesce(errors -> 'title', '[]'));
            first_field := coalesce(first_field, 'title');
        END IF;
    END IF;

    -- {"inclusion": "priority", "in": ["low", "medium", "high", "urgent"]}
    IF NEW.priority IS NOT NULL AND (is_insert OR NEW.priority IS DISTINCT FROM OLD.priority)
       AND NEW.priority NOT IN ('low', 'medium', 'high', 'urgent') THEN
        errors := jsonb_set(errors, '{priority}', '["is invalid"]' || coalesce(errors -> 'priority', '[]'));
        first_field := coalesce(first_field, 'priority');
    END IF;

    -- {"future": "due_date"}
    IF NEW.due_date IS NOT NULL AND (is_insert OR NEW.due_date IS DISTINCT FROM OLD.due_date)
       AND NEW.due_date <= current_date THEN
        errors := jsonb_set(errors, '{due_date}', '["must be in the future"]' || coalesce(errors -> 'due_date', '[]'));
        first_field := coalesce(first_field, 'due_date');
    END IF;

    IF first_field IS NOT NULL THEN
        SELECT 'validation failed: ' || string_agg(e.key || ' ' || m.value, '; ' ORDER BY e.ord, m.ord)
          INTO msg
          FROM jsonb_each(errors) WITH ORDINALITY AS e (key, value, ord),
               jsonb_array_elements_text(e.value) WITH ORDINALITY AS m (value, ord);
        RAISE EXCEPTION USING
            ERRCODE = 'PT422',
            MESSAGE = msg,
            DETAIL = jsonb_build_object('errors', errors)::text,
            COLUMN = first_field,
            TABLE = TG_TABLE_NAME,
            SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER task_plpgsql_validate BEFORE INSERT OR UPDATE ON task_plpgsql
    FOR EACH ROW EXECUTE FUNCTION task_plpgsql_validate();

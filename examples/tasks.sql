-- examples/tasks.sql: the tasks API, built only on pgapp's public contract.
--
-- Tables live in schema "tasks"; PostgREST serves schema "api" (db-schemas =
-- "api"), whose functions take named arguments:
--
--   POST /rpc/create_task  {"title": "Write docs", "priority": "high"}
--   POST /rpc/update_task  {"id": 1, "status": "done"}
--   POST /rpc/delete_task  {"id": 1}
--   GET  /rpc/get_task?id=1
--   GET  /rpc/list_tasks?status=todo&q=docs&sort_by=title&page=1
--
-- Roles: "anon" may read, "app_user" may also write.  Load into a database
-- that has CREATE EXTENSION pgapp (scripts/run does, in one transaction).
--
-- Writes need a token: PostgREST switches to app_user only for a request
-- whose bearer token carries "role": "app_user" (without one it runs as anon,
-- which cannot call the write functions: 401).  Accounts get such tokens from
-- pgapp.login when pgapp.auth_default_role is 'app_user' at registration;
-- with db-pre-request = "pgapp.pre_request" a logged-out or revoked token is
-- refused (401) before the function runs (docs/auth.md; the regress test
-- example_tasks_auth replays it).

CREATE SCHEMA tasks;
CREATE SCHEMA IF NOT EXISTS api;

CREATE TYPE tasks.task_status AS ENUM ('todo', 'in_progress', 'done', 'cancelled');
CREATE TYPE tasks.task_priority AS ENUM ('low', 'medium', 'high', 'urgent');

CREATE TABLE tasks.users (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email   text NOT NULL UNIQUE,
    name    text NOT NULL
);

CREATE TABLE tasks.task (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text NOT NULL,
    description text,
    status      tasks.task_status NOT NULL DEFAULT 'todo',
    priority    tasks.task_priority NOT NULL DEFAULT 'medium',
    due_date    date,
    assignee_id bigint REFERENCES tasks.users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX task_assignee ON tasks.task (assignee_id);
CREATE INDEX task_status_due ON tasks.task (status, due_date);

-- The status machine: done is final (done -> todo is forbidden); a cancelled
-- task can be reopened.  Every change is logged in pgapp.transition_log.
SELECT pgapp.define_machine('task_status', '{
    "todo":        ["in_progress", "done", "cancelled"],
    "in_progress": ["todo", "done", "cancelled"],
    "done":        [],
    "cancelled":   ["todo"]
}', initial => ARRAY['todo', 'in_progress']);
SELECT pgapp.enforce_transitions('tasks.task', 'status', 'task_status', log => true);

-- One changeset per action.  Both check what a client sends; task_create
-- also requires a title.  Constraint declarations turn a missing assignee
-- into {"assignee_id": ["does not exist"]} instead of a 23503 error.
SELECT pgapp.define_changeset('task_create', 'tasks.task',
    ARRAY['title', 'description', 'status', 'priority', 'due_date', 'assignee_id'],
    '[{"required": ["title"]},
      {"length": "title", "min": 3, "max": 200},
      {"length": "description", "max": 10000},
      {"future": "due_date"},
      {"transition": "status", "machine": "task_status"},
      {"foreign_key_constraint": "assignee_id"}]');

SELECT pgapp.define_changeset('task_update', 'tasks.task',
    ARRAY['title', 'description', 'status', 'priority', 'due_date', 'assignee_id'],
    '[{"required": ["title"]},
      {"length": "title", "min": 3, "max": 200},
      {"length": "description", "max": 10000},
      {"future": "due_date"},
      {"transition": "status", "machine": "task_status"},
      {"foreign_key_constraint": "assignee_id"}]');

-- The rules that must hold whatever the client (psql, a migration, another
-- service): every write to tasks.task goes through task_update's rules.  On
-- UPDATE only changed columns are checked, so an old task whose due date has
-- passed can still be renamed.
SELECT pgapp.validate_table('tasks.task', 'task_update');

CREATE FUNCTION tasks.touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER touch BEFORE UPDATE ON tasks.task
    FOR EACH ROW EXECUTE FUNCTION tasks.touch();

---------------------------------------------------------------------------
-- The API
---------------------------------------------------------------------------

CREATE FUNCTION api.create_task(
    title text,
    description text DEFAULT NULL,
    status tasks.task_status DEFAULT NULL,
    priority tasks.task_priority DEFAULT NULL,
    due_date date DEFAULT NULL,
    assignee_id bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- jsonb_strip_nulls: an argument left out is not a param, so the column
    -- default applies (Ecto's cast ignores missing params the same way)
    SELECT pgapp.insert(pgapp.changeset('task_create', jsonb_strip_nulls(jsonb_build_object(
        'title', title, 'description', description, 'status', status,
        'priority', priority, 'due_date', due_date, 'assignee_id', assignee_id))))
$$;

COMMENT ON FUNCTION api.create_task IS
'Create a task
Validates title (3..200 characters), due date (in the future), status (an initial state) and assignee.
@changeset task_create';

-- PATCH-like: only the arguments given become params.  PostgREST passes
-- exactly the keys of the JSON body, so a key left out keeps its default
-- (NULL) and is not a change.  To clear a nullable field, send
-- "clear": ["description"].
CREATE FUNCTION api.update_task(
    id bigint,
    title text DEFAULT NULL,
    description text DEFAULT NULL,
    status tasks.task_status DEFAULT NULL,
    priority tasks.task_priority DEFAULT NULL,
    due_date date DEFAULT NULL,
    assignee_id bigint DEFAULT NULL,
    clear text[] DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current jsonb;
    params jsonb;
BEGIN
    SELECT to_jsonb(t) INTO current FROM tasks.task AS t WHERE t.id = update_task.id FOR UPDATE;
    IF current IS NULL THEN
        RETURN pgapp.report_error(404, '{"errors": {"detail": "Not Found"}}',
                                  message => format('task %s does not exist', update_task.id));
    END IF;
    params := jsonb_strip_nulls(jsonb_build_object(
        'title', title, 'description', description, 'status', status,
        'priority', priority, 'due_date', due_date, 'assignee_id', assignee_id));
    -- cleared fields are params with value null
    IF EXISTS (SELECT 1 FROM unnest(clear) AS c WHERE c IS NULL OR c NOT IN ('description', 'due_date', 'assignee_id')) THEN
        RAISE EXCEPTION 'only description, due_date and assignee_id can be cleared'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('clear was %s.', clear);
    END IF;
    SELECT params || coalesce(jsonb_object_agg(c, NULL), '{}') INTO params
      FROM unnest(clear) AS c;
    RETURN pgapp.update(pgapp.changeset('task_update', params, current));
END
$$;

COMMENT ON FUNCTION api.update_task IS
'Update a task
Only the fields sent change; "clear" lists nullable fields to empty. done -> todo is refused.
@changeset task_update';

CREATE FUNCTION api.delete_task(id bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deleted jsonb;
BEGIN
    DELETE FROM tasks.task AS t WHERE t.id = delete_task.id RETURNING to_jsonb(t) INTO deleted;
    IF deleted IS NULL THEN
        RETURN pgapp.report_error(404, '{"errors": {"detail": "Not Found"}}',
                                  message => format('task %s does not exist', delete_task.id));
    END IF;
    RETURN deleted;
END
$$;

COMMENT ON FUNCTION api.delete_task IS
'Delete a task';

CREATE FUNCTION api.get_task(id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found jsonb;
BEGIN
    SELECT to_jsonb(t) || jsonb_build_object('assignee', to_jsonb(u))
      INTO found
      FROM tasks.task AS t LEFT JOIN tasks.users AS u ON u.id = t.assignee_id
     WHERE t.id = get_task.id;
    IF found IS NULL THEN
        RETURN pgapp.report_error(404, '{"errors": {"detail": "Not Found"}}',
                                  message => format('task %s does not exist', get_task.id));
    END IF;
    RETURN found;
END
$$;

COMMENT ON FUNCTION api.get_task IS
'One task with its assignee';

-- Listing: filters from the arguments, title search, a whitelisted sort, pages.
SELECT pgapp.allow_sort('tasks.task', ARRAY['title', 'due_date', 'priority', 'status', 'created_at', 'id']);

CREATE FUNCTION api.list_tasks(
    status tasks.task_status DEFAULT NULL,
    priority tasks.task_priority DEFAULT NULL,
    assignee_id bigint DEFAULT NULL,
    due_from date DEFAULT NULL,
    due_to date DEFAULT NULL,
    q text DEFAULT NULL,
    sort_by text DEFAULT 'due_date',
    sort_dir text DEFAULT 'asc',
    page integer DEFAULT 1,
    page_size integer DEFAULT 20)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgapp.paginate(
             pgapp.sort_by(                          -- id last: a stable order across pages
               pgapp.sort_by(
                 pgapp.preload(
                   pgapp.search(
                     pgapp.filter_range(
                       pgapp.apply_params(pgapp.from('tasks.task'),
                         jsonb_strip_nulls(jsonb_build_object(
                           'status', status, 'priority', priority, 'assignee_id', assignee_id)),
                         '{"status": "eq", "priority": "eq", "assignee_id": "eq"}'),
                       'due_date', due_from, due_to),
                     q, ARRAY['title', 'description']),
                   ARRAY['assignee']),
                 sort_by, sort_dir),
               'id'),
             page, page_size)
$$;

COMMENT ON FUNCTION api.list_tasks IS
'List tasks
Filters by status, priority, assignee and due date range; searches title and description; sorts by
title, due_date, priority, status or created_at; pages of up to pgapp.query_max_page_size.';

---------------------------------------------------------------------------
-- Roles: anon reads, app_user writes
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

REVOKE ALL ON FUNCTION api.create_task, api.update_task, api.delete_task, api.get_task, api.list_tasks FROM PUBLIC;
GRANT USAGE ON SCHEMA api, tasks TO anon, app_user;
GRANT EXECUTE ON FUNCTION api.get_task, api.list_tasks TO anon, app_user;
GRANT EXECUTE ON FUNCTION api.create_task, api.update_task, api.delete_task TO app_user;
GRANT SELECT ON tasks.task, tasks.users TO anon, app_user;
GRANT INSERT, UPDATE, DELETE ON tasks.task TO app_user;

---------------------------------------------------------------------------
-- Seed
---------------------------------------------------------------------------

INSERT INTO tasks.users (email, name) VALUES
    ('ada@example.com', 'Ada'),
    ('grace@example.com', 'Grace');
INSERT INTO tasks.task (title, description, priority, due_date, assignee_id) VALUES
    ('Write the changeset docs', 'Every validator with its message', 'high', current_date + 7, 1),
    ('Benchmark the trigger', NULL, 'medium', current_date + 14, 2),
    ('Plan the query builder', NULL, 'low', NULL, NULL);

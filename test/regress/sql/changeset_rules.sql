--
-- changeset_rules: named changesets (define_changeset / changeset), the
-- validate_table trigger, and pgapp.insert / pgapp.update with constraint
-- mapping, in raise and return mode.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

CREATE TYPE cr_status AS ENUM ('todo', 'in_progress', 'done', 'cancelled');
CREATE TYPE cr_priority AS ENUM ('low', 'medium', 'high', 'urgent');
CREATE TABLE cr_user (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE
);
CREATE TABLE cr_task (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text NOT NULL,
    description text,
    status      cr_status NOT NULL DEFAULT 'todo',
    priority    cr_priority NOT NULL DEFAULT 'medium',
    due_date    date,
    estimate    numeric(6,2) CONSTRAINT cr_task_estimate_check CHECK (estimate < 1000),
    assignee_id bigint REFERENCES cr_user,
    CONSTRAINT cr_task_title_key UNIQUE (title)
);
INSERT INTO cr_user (email) VALUES ('ada@example.com');

SELECT pgapp.define_machine('cr_status',
    '{"todo": ["in_progress", "done", "cancelled"], "in_progress": ["todo", "done", "cancelled"],
      "done": [], "cancelled": ["todo"]}');

SELECT pgapp.define_changeset('cr_task_create', 'cr_task',
    ARRAY['title', 'description', 'status', 'priority', 'due_date', 'estimate', 'assignee_id'],
    '[{"required": ["title"]},
      {"length": "title", "min": 3, "max": 200},
      {"inclusion": "priority", "in": ["low", "medium", "high", "urgent"]},
      {"future": "due_date"},
      {"number": "estimate", "greater_than": 0},
      {"transition": "status", "machine": "cr_status"},
      {"unique_constraint": "title"},
      {"foreign_key_constraint": "assignee_id"},
      {"check_constraint": "estimate", "name": "cr_task_estimate_check", "message": "is too large"}]');
SELECT name, source, permitted, jsonb_array_length(rules) AS rules FROM pgapp.changeset_def;

---------------------------------------------------------------------------
-- pgapp.changeset: cast + rules in one call
---------------------------------------------------------------------------
SELECT pgapp.errors(pgapp.changeset('cr_task_create', '{"title": " ", "estimate": 0, "due_date": "2001-01-01"}'));
SELECT pgapp.errors(pgapp.changeset('cr_task_create', '{"title": "ab", "priority": "whenever"}'));
SELECT cs->'valid' AS valid, cs->'changes' AS changes, cs->'required' AS required, cs->'action' AS action
  FROM pgapp.changeset('cr_task_create', '{"title": "Write the docs", "estimate": "2.5"}') AS cs;

---------------------------------------------------------------------------
-- pgapp.insert in raise mode (psql): PT422 with DETAIL, COLUMN and TABLE
---------------------------------------------------------------------------
SET pgapp.error_mode = 'raise';
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": ""}')) $$);
SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "Write the docs", "estimate": "2.5", "assignee_id": 1}')) - 'id' AS row;
-- constraints map to fields only once validations pass
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "Write the docs"}')) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "Another", "assignee_id": 42}')) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "Big", "estimate": 5000}')) $$);
-- an undeclared constraint is re-raised unchanged
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(pgapp.cast('cr_task', NULL, '{"title": "Write the docs"}', ARRAY['title'])) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(pgapp.cast('cr_task', NULL, '{"description": "no title"}', ARRAY['description'])) $$);
-- nothing half-written
SELECT count(*) AS tasks FROM cr_task;

---------------------------------------------------------------------------
-- pgapp.update: by primary key; transitions; no changes means no write
---------------------------------------------------------------------------
SELECT pgapp.update(pgapp.changeset('cr_task_create', '{"status": "done"}', to_jsonb(t))) ->> 'status' AS status
  FROM cr_task t WHERE title = 'Write the docs';
SELECT * FROM pg_temp.show($$
  SELECT pgapp.update(pgapp.changeset('cr_task_create', '{"status": "todo"}', to_jsonb(t)))
    FROM cr_task t WHERE title = 'Write the docs' $$);
SELECT pgapp.update(pgapp.changeset('cr_task_create', '{"status": "done", "title": "Write the docs"}', to_jsonb(t))) ->> 'title' AS unchanged
  FROM cr_task t WHERE title = 'Write the docs';
-- the row is gone: 404
SELECT * FROM pg_temp.show($$
  SELECT pgapp.update(pgapp.changeset('cr_task_create', '{"title": "Renamed"}',
                      '{"id": 999, "title": "Ghost", "status": "todo"}')) $$);
SELECT * FROM pg_temp.show($$
  SELECT pgapp.update(pgapp.changeset('cr_task_create', '{"title": "Renamed"}')) $$);
SELECT * FROM pg_temp.show($$
  SELECT pgapp.update(pgapp.changeset('cr_task_create', '{"title": "Renamed"}', '{"title": "no id"}')) $$);

---------------------------------------------------------------------------
-- return mode, as inside a PostgREST request: 422 body, nothing written
---------------------------------------------------------------------------
RESET pgapp.error_mode;
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "ab", "priority": "soon"}')) AS body,
       current_setting('response.status') AS status;
SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "Write the docs"}')) AS body,
       current_setting('response.status') AS status;
SELECT pgapp.insert(pgapp.changeset('cr_task_create', '{"title": "Fresh task"}')) ->> 'title' AS title,
       current_setting('response.status') AS status;
COMMIT;
SELECT title FROM cr_task ORDER BY id;

---------------------------------------------------------------------------
-- validate_table: the same rules on every write, whatever the client
---------------------------------------------------------------------------
SELECT pgapp.validate_table('cr_task', 'cr_task_create');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'cr_task'::regclass AND NOT tgisinternal;
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title, estimate, due_date) VALUES ('ab', -1, '2001-01-01') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title) VALUES ('   ') $$);
-- blank is nil: only "can't be blank", not the length error too
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title) VALUES ('') $$);
INSERT INTO cr_task (title, priority) VALUES ('Plain insert', 'high');
-- UPDATE checks changed columns ...
UPDATE cr_task SET due_date = '2001-01-01' WHERE title = 'Plain insert';
-- ... and only those: a past due date written behind the trigger's back is not re-checked
ALTER TABLE cr_task DISABLE TRIGGER USER;
UPDATE cr_task SET due_date = '2001-01-01' WHERE title = 'Plain insert';
ALTER TABLE cr_task ENABLE TRIGGER USER;
UPDATE cr_task SET priority = 'low' WHERE title = 'Plain insert';
-- ... and transitions from the old value
SELECT * FROM pg_temp.show($$ UPDATE cr_task SET status = 'done' WHERE title = 'Plain insert' $$);
UPDATE cr_task SET status = 'done' WHERE title = 'Fresh task';
SELECT * FROM pg_temp.show($$ UPDATE cr_task SET status = 'todo' WHERE title = 'Fresh task' $$);
-- no-op updates pass
UPDATE cr_task SET status = status WHERE title = 'Fresh task';
-- a multi-row statement fails whole
SELECT * FROM pg_temp.show($$ UPDATE cr_task SET title = left(title, 2) $$);
SELECT title, status FROM cr_task ORDER BY id;

-- pgapp.insert on a validated table: trigger errors join the changeset's in return mode
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.insert(pgapp.cast('cr_task', NULL, '{"title": "ab"}', ARRAY['title'])) AS body,
       current_setting('response.status') AS status;
COMMIT;

-- redefining the rules takes effect at once (cached definitions are invalidated)
SELECT pgapp.define_changeset('cr_task_create', 'cr_task', ARRAY['title'],
    '[{"length": "title", "min": 10}]');
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title) VALUES ('Too short') $$);
-- so does a change to the table the rules are compiled against
ALTER TABLE cr_task RENAME COLUMN title TO name;
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (name) VALUES ('Long enough name') $$);
ALTER TABLE cr_task RENAME COLUMN name TO title;
INSERT INTO cr_task (title) VALUES ('Long enough title');

---------------------------------------------------------------------------
-- bad definitions: each names the offending piece
---------------------------------------------------------------------------
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"lenght": "title", "min": 3}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "title", "mn": 3}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "title", "min": "3"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "title", "min": 2.5}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "titel", "min": 3}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['titel'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"format": "title", "pattern": "(("}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"inclusion": "priority", "in": ["low", "urgnt"]}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"inclusion": "priority", "in": "low"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "title", "format": "title"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '["required"]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '{"required": ["title"]}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"required": []}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"required": [1]}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"future": "title"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"transition": "status", "machine": "nope"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"check_constraint": "estimate"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "title", "min": 3, "message": 5}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'no_table', ARRAY['title'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('', 'cr_task', ARRAY['title'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset(NULL, 'cr_task', ARRAY['title'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset(repeat('x', 64), 'cr_task', ARRAY['title'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.changeset('no_such_changeset', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.changeset('cr_task_create', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_table('cr_user', 'cr_task_create') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_table('cr_task', 'no_such_changeset') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_changeset('cr_task_create') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('cr_task_create', 'cr_user', ARRAY['email'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_changeset('no_such_changeset') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert('{"source": "cr_task", "permitted": [], "changes": {"nope": 1}, "errors": {}, "valid": true}') $$);
-- a valid changeset's changes, and update's key, must fit their columns before the write
SELECT * FROM pg_temp.show($$ SELECT pgapp.insert(jsonb_set(pgapp.cast('cr_task', NULL, '{"title": "Dated"}', ARRAY['title', 'due_date']),
                                                   '{changes,due_date}', '"2031-02-30"')) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.update(pgapp.cast('cr_task', '{"id": "one"}', '{"title": "Renamed"}', ARRAY['title'])) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._changeset_trigger() $$);
CREATE TRIGGER misuse AFTER INSERT ON cr_user FOR EACH ROW EXECUTE FUNCTION pgapp._changeset_trigger('cr_task_create');
SELECT * FROM pg_temp.show($$ INSERT INTO cr_user (email) VALUES ('x@example.com') $$);
DROP TRIGGER misuse ON cr_user;
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"length": "title", "max": 3, "count": "letters"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"format": "estimate", "pattern": "^[0-9]+$"}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('bad', 'cr_task', ARRAY['title'], '[{"confirmation": "title", "required": "yes"}]') $$);
-- nothing was defined by the failures
SELECT name FROM pgapp.changeset_def ORDER BY name;

---------------------------------------------------------------------------
-- Ecto parity in rules: count (graphemes by default), confirmation's required
---------------------------------------------------------------------------
SELECT pgapp.define_changeset('cr_lengths', 'cr_task', ARRAY['title', 'description'],
    '[{"length": "title", "max": 1},
      {"length": "description", "max": 1, "count": "codepoints"},
      {"confirmation": "password", "required": true, "message": "must be confirmed"}]');
SELECT pgapp.errors(pgapp.changeset('cr_lengths', '{"title": "e\u0301", "description": "e\u0301", "password": "x"}'));
SELECT pgapp.errors(pgapp.changeset('cr_lengths', '{"password": "", "password_confirmation": "password"}'));
-- json_schema reads the same rules ("required": true is confirmation's option)
SELECT pgapp.json_schema('cr_lengths') -> 'required' AS required_fields;
-- the trigger counts the same way (the table also enforces cr_task_create: at least 10)
SELECT pgapp.define_changeset('cr_lengths', 'cr_task', ARRAY['title'], '[{"length": "title", "max": 10}]');
SELECT pgapp.validate_table('cr_task', 'cr_lengths');
INSERT INTO cr_task (title) VALUES ('abcdefghi' || U&'e\0301') RETURNING length(title) AS codepoints;
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title) VALUES ('abcdefghij' || U&'e\0301') $$);
SELECT pgapp.define_changeset('cr_lengths', 'cr_task', ARRAY['title'], '[{"length": "title", "max": 11, "count": "bytes"}]');
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title) VALUES ('abcdefghij' || 'é') $$);
SELECT pgapp.json_schema('cr_lengths') -> 'properties' -> 'title' AS title_schema;
DROP TRIGGER pgapp_validate_cr_lengths ON cr_task;
-- a named changeset carries its definition's permitted list: a value that widens it is refused
SELECT * FROM pg_temp.show($$
  SELECT pgapp.insert(jsonb_set(jsonb_set(pgapp.changeset('cr_lengths', '{"title": "ok"}'),
                                          '{permitted}', '["title", "estimate"]'),
                                '{changes,estimate}', '1')) $$);
SELECT * FROM pg_temp.show($$
  SELECT pgapp.insert(jsonb_set(pgapp.changeset('cr_lengths', '{"title": "ok"}'), '{changes,estimate}', '1')) $$);
SELECT pgapp.drop_changeset('cr_lengths');

---------------------------------------------------------------------------
-- privileges: definitions are for pgapp_admin and the table owner
---------------------------------------------------------------------------
CREATE ROLE cr_app;
GRANT SELECT, INSERT, UPDATE ON cr_task TO cr_app;
SET ROLE cr_app;
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('x', 'cr_task', ARRAY['title'], '[]') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO cr_task (title) VALUES ('short') $$);
SELECT count(*) > 0 AS can_read_definitions FROM pgapp.changeset_def;
RESET ROLE;
GRANT pgapp_admin TO cr_app;
SET ROLE cr_app;
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_changeset('x', 'cr_task', ARRAY['title'], '[]') $$);
RESET ROLE;

DROP TRIGGER pgapp_validate_cr_task_create ON cr_task;
SELECT pgapp.drop_changeset('cr_task_create');
SELECT pgapp.drop_machine('cr_status');
DROP TABLE cr_task, cr_user;
DROP TYPE cr_status, cr_priority;
DROP ROLE cr_app;

--
-- example_tasks: examples/tasks.sql, exercised the way PostgREST calls it.
--
-- Each request reproduces the SQL PostgREST runs for one request:
-- one transaction, SET LOCAL ROLE from the JWT role, request.* settings, the
-- call with named arguments, then response.status is read and the
-- transaction commits.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i examples/tasks.sql
\set ECHO all

SELECT id, title, status, priority, assignee_id FROM tasks.task ORDER BY id;

-- POST /rpc/create_task as app_user: 201 and the row
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.path', '/rpc/create_task', true) IS NOT NULL AS path_set,
       set_config('request.headers', '{"content-type": "application/json", "prefer": "return=representation"}', true) IS NOT NULL AS headers_set,
       set_config('request.jwt.claims', '{"role": "app_user", "sub": "ada@example.com"}', true) IS NOT NULL AS claims_set;
SELECT r - 'created_at' - 'updated_at' - 'due_date' AS body, current_setting('response.status', true) AS status
  FROM api.create_task(title => '  Review the API  ', priority => 'urgent', due_date => current_date + 3, assignee_id => 2) AS r;
COMMIT;

-- every field's error at once, with Ecto's messages: 422 and nothing written
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.create_task(title => 'ab', due_date => current_date - 1, assignee_id => 999, status => 'done') AS body,
       current_setting('response.status', true) AS status;
SELECT api.create_task(title => '   ') AS body, current_setting('response.status', true) AS status;
SELECT api.create_task(title => repeat('x', 201)) AS body, current_setting('response.status', true) AS status;
COMMIT;
-- the unknown assignee is reported once the validations pass
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.create_task(title => 'Orphan', assignee_id => 999) AS body,
       current_setting('response.status', true) AS status;
COMMIT;
SELECT count(*) AS tasks FROM tasks.task;

-- a bad enum value never reaches the function: PostgreSQL rejects the argument (22P02 -> 400)
SELECT * FROM pg_temp.show($$ SELECT api.create_task(title => 'Enum', priority => 'whenever') $$);

-- POST /rpc/update_task: legal moves, done -> todo refused, no-op
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.update_task(id => 1, status => 'in_progress') ->> 'status' AS status_now,
       current_setting('response.status', true) AS status;
SELECT api.update_task(id => 1, status => 'done') ->> 'status' AS status_now;
SELECT api.update_task(id => 1, status => 'todo') AS body, current_setting('response.status', true) AS status;
COMMIT;
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.update_task(id => 1, status => 'done') ->> 'status' AS no_op;
SELECT api.update_task(id => 2, title => 'Benchmark the C trigger', clear => ARRAY['due_date']) ->> 'title' AS renamed,
       current_setting('response.status', true) AS status;
SELECT api.update_task(id => 42, title => 'Ghost') AS body, current_setting('response.status', true) AS status;
COMMIT;
SELECT id, title, status, due_date IS NULL AS no_due_date FROM tasks.task WHERE id IN (1, 2) ORDER BY id;
SELECT row_key, from_state, to_state FROM pgapp.transition_log
 WHERE tbl = 'tasks.task'::regclass AND row_key = '{"id": 1}' ORDER BY id;
SELECT * FROM pg_temp.show($$ SELECT api.update_task(id => 2, clear => ARRAY['title']) $$);

-- GET /rpc/get_task?id=1 as anon: READ ONLY transaction, STABLE function
BEGIN READ ONLY;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set;
SELECT r ->> 'title' AS title, r -> 'assignee' ->> 'name' AS assignee, current_setting('response.status', true) AS status
  FROM api.get_task(id => 1) AS r;
SELECT api.get_task(id => 404) AS body, current_setting('response.status', true) AS status;
COMMIT;

-- GET /rpc/list_tasks?status=todo&sort_by=title as anon: one statement, assignee nested
BEGIN READ ONLY;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set;
SELECT r - 'entries' AS meta,
       (SELECT jsonb_agg(jsonb_build_object('title', e -> 'title', 'assignee', e -> 'assignee' -> 'name'))
          FROM jsonb_array_elements(r -> 'entries') AS e) AS entries
  FROM api.list_tasks(status => 'todo', sort_by => 'title') AS r;
SELECT r -> 'total' AS total, r -> 'entries' -> 0 ->> 'title' AS first
  FROM api.list_tasks(q => 'C TRIG', page_size => 1) AS r;
SELECT r -> 'total' AS total FROM api.list_tasks(due_from => current_date, due_to => current_date + 10) AS r;
SELECT r -> 'total' AS total, r -> 'total_pages' AS pages, jsonb_array_length(r -> 'entries') AS on_page
  FROM api.list_tasks(sort_by => 'priority', sort_dir => 'desc', page => 2, page_size => 2) AS r;
SELECT * FROM pg_temp.show($$ SELECT api.list_tasks(sort_by => 'description') $$);
SELECT * FROM pg_temp.show($$ SELECT api.list_tasks(sort_dir => 'asc; drop table tasks.task') $$);
SELECT * FROM pg_temp.show($$ SELECT api.list_tasks(page_size => 1000) $$);
COMMIT;

-- anon cannot write: 42501 (PostgREST answers 401 for the anonymous role)
BEGIN;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT * FROM pg_temp.show($$ SELECT api.create_task(title => 'Sneaky') $$);
SELECT * FROM pg_temp.show($$ SELECT api.delete_task(id => 1) $$);
SELECT * FROM pg_temp.show($$ INSERT INTO tasks.task (title) VALUES ('Sneaky') $$);
COMMIT;

-- POST /rpc/delete_task
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.delete_task(id => 3) ->> 'title' AS deleted;
SELECT api.delete_task(id => 3) AS body, current_setting('response.status', true) AS status;
COMMIT;

-- from psql the same calls raise, as a client library sees them
SELECT api.create_task(title => 'ab');
SELECT api.update_task(id => 1, status => 'todo');
-- and the table's rules hold for plain SQL too
INSERT INTO tasks.task (title, due_date) VALUES ('x', '2001-01-01');
UPDATE tasks.task SET status = 'todo' WHERE id = 1;

SELECT id, title, status FROM tasks.task ORDER BY id;

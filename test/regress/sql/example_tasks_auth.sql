--
-- example_tasks_auth: the tasks API's writes need a token (issue 19's
-- recipe), checked the way PostgREST runs a request: db-pre-request =
-- pgapp.pre_request, the role from the verified token, anon without one.
-- examples/tasks.sql was loaded by example_tasks.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'regress-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
-- cheap hashes for the test
SET pgapp.auth_password_memlimit = '8MB';
SET pgapp.auth_password_opslimit = 1;

-- An account whose tokens carry the role app_user (the role the tasks API
-- grants its writes to), and a session.
SET pgapp.auth_default_role = 'app_user';
SELECT pgapp.register('writer@example.com', 'writer password 1') ->> 'role' AS role;
RESET pgapp.auth_default_role;
SELECT pgapp.login('writer@example.com', 'writer password 1') ->> 'access_token' AS token \gset
SELECT pgapp.decode_token(:'token') ->> 'role' AS token_role;

-- POST /rpc/create_task without a token: PostgREST runs it as anon; the
-- pre-request check lets an anonymous request through, and the write is
-- refused (42501: PostgREST answers 401), nothing written.
BEGIN;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.path', '/rpc/create_task', true) IS NOT NULL AS path_set,
       set_config('request.headers', '{"content-type": "application/json"}', true) IS NOT NULL AS headers_set;
SELECT pgapp.pre_request();
SELECT * FROM pg_temp.show($$ SELECT api.create_task(title => 'Without a token') $$);
ROLLBACK;

-- GET /rpc/list_tasks without a token: reading stays open to anon.
BEGIN;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set;
SELECT pgapp.pre_request();
SELECT (api.list_tasks() -> 'total')::int > 0 AS listed;
ROLLBACK;

-- With the token: PostgREST verified it and switched to its role; the
-- pre-request check verifies it again, revocation included; 201.
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.path', '/rpc/create_task', true) IS NOT NULL AS path_set,
       set_config('request.headers', jsonb_build_object('authorization', 'Bearer ' || :'token')::text, true) IS NOT NULL AS headers_set,
       set_config('request.jwt.claims', pgapp.decode_token(:'token')::text, true) IS NOT NULL AS claims_set;
SELECT pgapp.pre_request();
SELECT api.create_task(title => 'With a token') ->> 'title' AS created,
       current_setting('response.status', true) AS status;
COMMIT;

-- After logout the same token is refused by the pre-request check (401),
-- before the function runs.
SELECT pgapp.logout(:'token');
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.headers', jsonb_build_object('authorization', 'Bearer ' || :'token')::text, true) IS NOT NULL AS headers_set,
       set_config('request.jwt.claims', convert_from(decode(translate(split_part(:'token', '.', 2), '-_', '+/') || repeat('=', (4 - length(split_part(:'token', '.', 2)) % 4) % 4), 'base64'), 'UTF8'), true) IS NOT NULL AS claims_set;
SELECT * FROM pg_temp.show($$ SELECT pgapp.pre_request() $$);
ROLLBACK;

SELECT title FROM tasks.task WHERE title IN ('Without a token', 'With a token') ORDER BY title;

ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

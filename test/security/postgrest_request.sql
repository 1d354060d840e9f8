\set ECHO none
-- test/security/postgrest_request.sql: one PostgREST request, replayed as
-- PostgREST runs it (included by the security files
-- with \i; not a test of its own).  Set :headers (request.headers, JSON)
-- first.  One transaction: BEGIN READ ONLY (a GET), the role and the
-- request.* settings, the db-pre-request hook, the main query, then what
-- PostgREST reads back (response.status, response.headers) and COMMIT; on
-- an error, ROLLBACK, and psql shows what PostgREST would turn into the
-- HTTP response.

BEGIN READ ONLY;
SELECT set_config('role', 'anon', true) AS role_set,
       set_config('request.jwt.claims', '{"role": "anon"}', true) AS claims_set,
       set_config('request.headers', :'headers', true) AS headers_set,
       set_config('request.cookies', '{}', true) AS cookies_set,
       set_config('request.method', 'GET', true) AS method_set,
       set_config('request.path', '/rpc/hello', true) AS path_set,
       set_config('search_path', 'public, pgapp', true) AS search_path_set \gset
SELECT pgapp.rate_limit_request() AS pre_request \gset
\if :ERROR
ROLLBACK;
\else
SELECT 'hello' AS main_query \gset
SELECT coalesce(nullif(current_setting('response.status', true), ''), '200') AS status,
       current_setting('response.headers', true) AS headers;
COMMIT;
\endif
\set ECHO all

-- test/pgtap/02_privileges.sql
-- Who may call what: admin functions are not executable by PUBLIC, internal
-- helpers (named _*) are never granted to PUBLIC (except the steps of
-- pgapp.openapi and pgapp.json_schema, which run with the caller's rights
-- and read only what the caller may read), and SECURITY DEFINER
-- functions pin search_path; definitions are written only by their
-- functions; the transition log shows each role the rows it may read; the
-- roles pgapp creates can do nothing else.
BEGIN;
SELECT plan(15);

SELECT ok(NOT has_function_privilege('public', 'pgapp.error_stats_reset()', 'EXECUTE'),
    'PUBLIC cannot reset error statistics');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.error_stats_reset()', 'EXECUTE'),
    'pgapp_admin can reset error statistics');

SELECT ok(has_schema_privilege('public', 'pgapp', 'USAGE'), 'PUBLIC may use schema pgapp');
SELECT ok(has_function_privilege('public', 'pgapp.health()', 'EXECUTE'), 'PUBLIC may call health()');
SELECT ok(has_table_privilege('public', 'pgapp.error_stats', 'SELECT'), 'PUBLIC may read error_stats');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text
        FROM pg_catalog.pg_proc p
       WHERE p.pronamespace = 'pgapp'::regnamespace
         AND p.proname LIKE '\_%'
         AND p.proname NOT IN ('_json_schema_rule', '_openapi_arguments', '_openapi_responses',
                               '_openapi_path', '_openapi_components')
         AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no internal helper (_*) is executable by PUBLIC');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text
        FROM pg_catalog.pg_proc p
       WHERE p.pronamespace = 'pgapp'::regnamespace
         AND p.proname IN ('_json_schema_rule', '_openapi_arguments', '_openapi_responses',
                           '_openapi_path', '_openapi_components')
         AND (p.prosecdef OR p.provolatile = 'v')$$,
    'the steps of openapi() and json_schema() run with the caller''s rights and write nothing');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text
        FROM pg_catalog.pg_proc p
       WHERE p.pronamespace = 'pgapp'::regnamespace
         AND p.prosecdef
         AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c
                          WHERE c LIKE 'search\_path=%')$$,
    'every SECURITY DEFINER function pins search_path');

SELECT is_empty(
    $$SELECT c.oid::regclass::text || ' ' || r.rolname
        FROM pg_catalog.pg_class c,
             (VALUES ('public'), ('pgapp_admin'), ('pgapp_worker')) AS r(rolname)
       WHERE c.relnamespace = 'pgapp'::regnamespace
         AND c.relname IN ('changeset_def', 'machine', 'query_expression', 'sort_allowed', 'transition_log')
         AND (has_table_privilege(r.rolname, c.oid, 'INSERT') OR has_table_privilege(r.rolname, c.oid, 'UPDATE')
              OR has_table_privilege(r.rolname, c.oid, 'DELETE') OR has_table_privilege(r.rolname, c.oid, 'TRUNCATE'))$$,
    'no role but the owner writes a definition table or the transition log');

SELECT is_empty(
    $$SELECT c.oid::regclass::text || ' ' || a.privilege_type
        FROM pg_catalog.pg_class c, aclexplode(c.relacl) AS a
       WHERE c.relnamespace = 'pgapp'::regnamespace AND a.grantee = 0
         AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')$$,
    'no pgapp table or view grants a write to PUBLIC');

SELECT ok((SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = 'pgapp.transition_log'::regclass)
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = 'pgapp.transition_log'::regclass),
    'the transition log filters rows with a row-level security policy');

SELECT ok(NOT (SELECT prosecdef FROM pg_catalog.pg_proc
                WHERE oid = 'pgapp.row_visible(regclass,jsonb,name[])'::regprocedure),
    'pgapp.row_visible runs as the caller');

SELECT ok(has_function_privilege('public', 'pgapp.row_visible(regclass,jsonb,name[])', 'EXECUTE'),
    'PUBLIC may call pgapp.row_visible (the log''s policy calls it as the reader)');

SELECT is_empty(
    $$SELECT rolname FROM pg_catalog.pg_roles
       WHERE rolname IN ('pgapp_admin', 'pgapp_worker')
         AND (rolsuper OR rolcanlogin OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.member = pg_roles.oid))$$,
    'pgapp_admin and pgapp_worker have no attribute and belong to no other role');

SELECT throws_ok(
    $q$DO $do$ BEGIN
        ALTER ROLE pgapp_admin LOGIN;
        EXECUTE 'DROP EXTENSION pgapp';
        EXECUTE 'CREATE EXTENSION pgapp';
    END $do$$q$,
    '55000', 'role "pgapp_admin" already exists with LOGIN',
    'CREATE EXTENSION refuses a pre-existing pgapp_admin that can log in');

SELECT * FROM finish();
ROLLBACK;

-- test/pgtap/02_privileges.sql
-- Who may call what: admin functions are not executable by PUBLIC, internal
-- helpers (named _*) are never granted to PUBLIC, and SECURITY DEFINER
-- functions pin search_path.
BEGIN;
SELECT plan(7);

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
         AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no internal helper (_*) is executable by PUBLIC');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text
        FROM pg_catalog.pg_proc p
       WHERE p.pronamespace = 'pgapp'::regnamespace
         AND p.prosecdef
         AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c
                          WHERE c LIKE 'search\_path=%')$$,
    'every SECURITY DEFINER function pins search_path');

SELECT * FROM finish();
ROLLBACK;

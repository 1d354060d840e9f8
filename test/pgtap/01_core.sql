-- test/pgtap/01_core.sql
-- Signatures, result types, volatility and the errors of the core functions.
BEGIN;
SELECT plan(25);

SELECT has_function('pgapp', 'version', ARRAY[]::text[]);
SELECT function_returns('pgapp', 'version', ARRAY[]::text[], 'text');
SELECT volatility_is('pgapp', 'version', ARRAY[]::text[], 'stable');

SELECT has_function('pgapp', 'health', ARRAY[]::text[]);
SELECT function_returns('pgapp', 'health', ARRAY[]::text[], 'jsonb');
SELECT volatility_is('pgapp', 'health', ARRAY[]::text[], 'stable',
    'health() is STABLE, so PostgREST serves it on GET');

SELECT has_function('pgapp', 'report_error',
    ARRAY['integer', 'jsonb', 'text', 'text', 'text', 'regclass']);
SELECT function_returns('pgapp', 'report_error',
    ARRAY['integer', 'jsonb', 'text', 'text', 'text', 'regclass'], 'jsonb');
SELECT volatility_is('pgapp', 'report_error',
    ARRAY['integer', 'jsonb', 'text', 'text', 'text', 'regclass'], 'volatile',
    'report_error() is VOLATILE: it sets response.status');
SELECT isnt_strict('pgapp', 'report_error',
    ARRAY['integer', 'jsonb', 'text', 'text', 'text', 'regclass'],
    'report_error() is not STRICT: NULL arguments are reported, not ignored');

SELECT has_function('pgapp', 'error_mode', ARRAY[]::text[]);
SELECT function_returns('pgapp', 'error_mode', ARRAY[]::text[], 'text');
SELECT has_view('pgapp', 'error_stats', 'view pgapp.error_stats exists');
SELECT columns_are('pgapp', 'error_stats',
    ARRAY['status', 'sqlstate', 'raised', 'returned', 'stats_reset']);
SELECT function_returns('pgapp', 'error_stats_reset', ARRAY[]::text[], 'timestamp with time zone');

-- SQLSTATE and message pairs
SET LOCAL pgapp.error_mode = 'raise';
SELECT throws_ok(
    $$SELECT pgapp.report_error(422, '{"errors": {"title": ["can''t be blank"]}}')$$,
    'PT422', 'validation failed: title can''t be blank',
    'a validation error raises PT422 with the field errors in the message');
SELECT throws_ok($$SELECT pgapp.report_error(409, '{}', 'stock changed')$$,
    'PT409', 'stock changed', 'the caller''s message is kept');
SELECT throws_ok($$SELECT pgapp.report_error(299, '{}')$$,
    '22023', 'error status 299 is out of range');
SELECT throws_ok($$SELECT pgapp.report_error(422, '[]')$$,
    '22023', 'error body must be a JSON object');
SELECT throws_ok($$SELECT pgapp.report_error(NULL, '{}')$$,
    '22004', 'status must not be null');
SELECT throws_ok($$SET pgapp.error_mode = 'sometimes'$$,
    '22023', 'invalid value for parameter "pgapp.error_mode": "sometimes"');

SET LOCAL pgapp.error_mode = 'return';
SELECT is(pgapp.report_error(404, '{"error": "not_found"}'), '{"error": "not_found"}'::jsonb,
    'return mode returns the body');
SELECT is(current_setting('response.status'), '404', 'return mode sets response.status');

SELECT is(pgapp.health()->>'status', 'ok', 'health is ok on a preloaded server');
SELECT is(pgapp.version(), (SELECT extversion FROM pg_extension WHERE extname = 'pgapp'),
    'library and installed extension versions agree');

SELECT * FROM finish();
ROLLBACK;

-- test/pgtap/06_ratelimit.sql
-- Rate limiting: signatures, privileges, SQLSTATEs.
BEGIN;
SELECT plan(33);

SELECT function_returns('pgapp', 'check_rate', ARRAY['text', 'integer', 'integer', 'text', 'integer', 'text'],
    'pgapp.rate_decision');
SELECT function_returns('pgapp', 'rate_limit', ARRAY['text', 'integer', 'integer', 'text', 'integer', 'text'], 'void');
SELECT function_returns('pgapp', 'rate_reset', ARRAY['text', 'text'], 'boolean');
SELECT has_view('pgapp', 'rate_stats', 'view pgapp.rate_stats exists');
SELECT function_returns('pgapp', 'rate_limit_request', ARRAY[]::text[], 'void');
SELECT has_table('pgapp', 'rate_plan', 'plans live in pgapp.rate_plan');
SELECT is((SELECT max_requests FROM pgapp.rate_plan WHERE name = 'default'), 100, 'the default plan: 100 per minute');
SELECT has_view('pgapp', 'rate_buckets', 'view pgapp.rate_buckets exists');
SELECT ok(has_function_privilege('public', 'pgapp.check_rate(text,integer,integer,text,integer,text)', 'EXECUTE'),
    'everyone may check a rate (PostgREST''s anonymous role too)');
SELECT ok(NOT has_function_privilege('public', 'pgapp.rate_reset(text,text)', 'EXECUTE')
      AND NOT has_table_privilege('public', 'pgapp.rate_buckets', 'SELECT'),
    'resetting keys and listing them is for pgapp_admin');
SELECT is((pgapp.check_rate('tap', 1, 60)).allowed, true, 'the first request is allowed');
SELECT is((pgapp.check_rate('tap', 1, 60)).allowed, false, 'the second is not');
SELECT throws_ok($$SELECT pgapp.rate_limit('tap', 1, 60)$$, 'PT429', NULL, 'rate_limit raises PT429');
SELECT throws_ok($$SELECT pgapp.check_rate('tap', 0, 60)$$, '22023', 'max_requests must be greater than 0, not 0');
SELECT throws_ok($$SELECT pgapp.check_rate('tap', 1, 60, limiter => 'nope')$$, '42704',
    'rate limiter "nope" does not exist');

-- named limiters
SELECT function_returns('pgapp', 'check_rate', ARRAY['text', 'text'], 'pgapp.rate_decision');
SELECT function_returns('pgapp', 'rate_limit', ARRAY['text', 'text'], 'void');
SELECT function_returns('pgapp', 'create_limiter', ARRAY['text', 'integer', 'integer', 'integer', 'text', 'integer'], 'void');
SELECT function_returns('pgapp', 'drop_limiter', ARRAY['text', 'boolean'], 'boolean');
SELECT function_returns('pgapp', 'rate_sweep', ARRAY[]::text[], 'integer');
SELECT has_view('pgapp', 'rate_limiters', 'view pgapp.rate_limiters exists');
SELECT columns_are('pgapp', 'rate_limiters', ARRAY['name', 'max_keys', 'max_requests', 'window_seconds',
    'algorithm', 'burst', 'buckets', 'checks', 'denials', 'evictions', 'full_events', 'in_use']);
SELECT ok(NOT has_function_privilege('public', 'pgapp.create_limiter(text,integer,integer,integer,text,integer)', 'EXECUTE')
      AND NOT has_function_privilege('public', 'pgapp.drop_limiter(text,boolean)', 'EXECUTE')
      AND has_function_privilege('pgapp_admin', 'pgapp.create_limiter(text,integer,integer,integer,text,integer)', 'EXECUTE'),
    'managing limiters is for pgapp_admin');
SELECT throws_ok($$SELECT pgapp.create_limiter('default', 10)$$, '42710', 'rate limiter "default" already exists');
SELECT throws_ok($$SELECT pgapp.drop_limiter('nope')$$, '42704', 'rate limiter "nope" does not exist');
SELECT throws_ok($$SELECT pgapp.check_rate('tap', 'nope')$$, '42704', 'rate limiter "nope" does not exist');


-- a full table evicts, windows are capped, limits are part of the key
SELECT columns_are('pgapp', 'rate_stats', ARRAY['checks', 'denials', 'evictions', 'full_events', 'buckets',
    'max_keys', 'swept']);
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pgapp.ratelimit_max_window'), '86400',
    'windows are capped at one day by default');
SELECT is((SELECT context FROM pg_settings WHERE name = 'pgapp.ratelimit_max_window'), 'superuser',
    'only a superuser may change the cap');
SELECT is(current_setting('pgapp.ratelimit_on_full'), 'deny', 'nothing to evict: deny by default');
SELECT throws_ok($$SELECT pgapp.check_rate('tap', 1, 86401)$$, '22023',
    'window_seconds must be at most 86400, not 86401');
SELECT throws_ok($$SELECT pgapp.check_rate('tap', 1, 60, 'gcra', 2147483647)$$, '22023',
    'burst must be at most 2147483646, not 2147483647');
SELECT is((pgapp.check_rate('tap', 2, 60)).allowed, true, 'the same key with other limits is another counter');

SELECT * FROM finish();
ROLLBACK;

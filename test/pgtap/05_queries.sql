-- test/pgtap/05_queries.sql
-- Composable queries: signatures, volatility, privileges, SQLSTATEs.
BEGIN;
SELECT plan(33);

CREATE TABLE tap_product (id int PRIMARY KEY, name text, price numeric);
SELECT function_returns('pgapp', 'from', ARRAY['regclass'], 'pgapp.query');
SELECT function_returns('pgapp', 'filter_by', ARRAY['pgapp.query', 'text', 'anyelement'], 'pgapp.query');
SELECT function_returns('pgapp', 'filter_range', ARRAY['pgapp.query', 'text', 'anycompatible', 'anycompatible'], 'pgapp.query');
SELECT function_returns('pgapp', 'search', ARRAY['pgapp.query', 'text', 'text[]'], 'pgapp.query');
SELECT function_returns('pgapp', 'sort_by', ARRAY['pgapp.query', 'text', 'text'], 'pgapp.query');
SELECT function_returns('pgapp', 'paginate', ARRAY['pgapp.query', 'integer', 'integer'], 'jsonb');
SELECT function_returns('pgapp', 'count', ARRAY['pgapp.query'], 'bigint');
SELECT function_returns('pgapp', 'to_sql', ARRAY['pgapp.query'], 'text');
SELECT function_returns('pgapp', 'paginate_after', ARRAY['pgapp.query', 'text', 'integer'], 'jsonb');
SELECT function_returns('pgapp', 'apply_params', ARRAY['pgapp.query', 'jsonb', 'jsonb'], 'pgapp.query');
SELECT function_returns('pgapp', 'scope', ARRAY['pgapp.query', 'text'], 'pgapp.query');
SELECT function_returns('pgapp', 'with_stats', ARRAY['pgapp.query', 'text[]'], 'pgapp.query');
SELECT function_returns('pgapp', 'preload', ARRAY['pgapp.query', 'text[]'], 'pgapp.query');
SELECT function_returns('pgapp', 'escape_like', ARRAY['text'], 'text');
SELECT function_returns('pgapp', 'check_query', ARRAY['pgapp.query'], 'pgapp.query');
SELECT function_returns('pgapp', 'query_cache_stats', ARRAY[]::text[], 'record');
SELECT is(pgapp.escape_like('a%b_c\d'), 'a\%b\_c\\d', 'escape_like escapes %, _ and \');
SELECT is(
    (SELECT array_agg(DISTINCT provolatile) FROM pg_proc
      WHERE pronamespace = 'pgapp'::regnamespace
        AND proname IN ('from', 'filter_by', 'filter_range', 'search', 'sort_by', 'all', 'one', 'count',
                        'paginate', 'paginate_after', 'to_sql', 'apply_params', 'scope', 'with_stats', 'preload',
                        'check_query')),
    ARRAY['s']::"char"[], 'builders and executors are STABLE: usable in GET requests and STABLE API functions');
SELECT ok(NOT has_function_privilege('public', 'pgapp.allow_sort(regclass,text[])', 'EXECUTE'),
    'PUBLIC cannot change sort whitelists');
SELECT ok(NOT has_function_privilege('public', 'pgapp.define_scope(regclass,text,text)', 'EXECUTE')
      AND NOT has_function_privilege('public', 'pgapp.define_stat(regclass,text,text)', 'EXECUTE'),
    'PUBLIC cannot define scopes or stats (they are SQL)');
SELECT throws_ok($$SELECT pgapp.define_scope('tap_product', 'x', 'true; DROP TABLE tap_product')$$,
    '42601', NULL, 'a scope must be one expression, not statements');

SELECT throws_ok($$SELECT pgapp.filter_by(pgapp.from('tap_product'), 'nope', 1)$$,
    '42703', 'column "nope" of relation "tap_product" does not exist');
SELECT throws_ok($$SELECT pgapp.sort_by(pgapp.from('tap_product'), 'name')$$,
    '22023', 'cannot sort tap_product by "name"');
SELECT throws_ok($$SELECT pgapp.filter_range(pgapp.from('tap_product'), 'name', 'a'::text, 'b'::text)$$,
    '42804', 'function "pgapp.filter_range" applies to numeric, date and time columns, but "name" is of type text');
SELECT throws_ok($$SELECT pgapp.paginate(pgapp.from('tap_product'), 1, 100000)$$,
    '22023', 'page_size must be between 1 and 100, not 100000');
INSERT INTO tap_product VALUES (1, '100%', 1), (2, '100 pct', 2);
SELECT is(pgapp.count(pgapp.search(pgapp.from('tap_product'), '100%', ARRAY['name'])), 1::bigint,
    'search terms match literally');
SELECT is(pgapp.paginate(pgapp.filter_range(pgapp.from('tap_product'), 'price', 2, NULL::int), 1, 10) -> 'total',
    '1'::jsonb, 'paginate reports the total');


-- hand-made values: one reader checks them before anything runs
SELECT throws_ok($$SELECT pgapp.count('{"source": "tap_product", "where": [{"op": "eq", "field": "name"}], "order": []}')$$,
    '22023', 'query condition 1 has no "value"', 'an eq without a value is 22023, not a crash');
SELECT throws_ok($$SELECT pgapp.all('{"source": "tap_product", "where": {"op": "null", "field": "name"}, "order": []}')$$,
    '22023', '"where" of a query must be an array, not an object', 'a where that is an object is 22023, not "no filter"');
SELECT throws_ok($$SELECT pgapp.to_sql('{"source": "tap_product", "where": [], "order": [{"field": "name", "dir": "asc", "nulls": "last"}]}')$$,
    '22023', 'cannot sort tap_product by "name"', 'a hand-made ordering goes through the sort whitelist');
SELECT is(pgapp.count('{"source": "tap_product", "where": [{"op": "eq", "field": "id", "value": 2}], "order": []}'),
    1::bigint, 'a JSON number compares as the column type');
SELECT is(pgapp.check_query(pgapp.from('tap_product')), pgapp.from('tap_product'), 'check_query returns a good value');
SELECT is((SELECT context || ' ' || unit || ' ' || boot_val FROM pg_settings WHERE name = 'pgapp.query_cache_memory'),
    'superuser kB 8192', 'pgapp.query_cache_memory: kB, 8MB by default, only a superuser raises it');

SELECT * FROM finish();
ROLLBACK;

-- test/pgtap/04_changesets.sql
-- Changesets: signatures, volatility, privileges and the SQLSTATE +
-- message of each kind of bad input (status machines: 03_machines.sql).
BEGIN;
SELECT plan(52);

-- every validator takes a changeset first and returns one (Ecto's pipe)
SELECT is(
    (SELECT count(*)::int FROM pg_proc
      WHERE pronamespace = 'pgapp'::regnamespace
        AND (proname LIKE 'validate\_%' AND proname <> 'validate_table'
             OR proname IN ('add_error', 'unique_constraint', 'foreign_key_constraint',
                            'check_constraint', 'exclusion_constraint'))
        AND proargtypes[0] = 'pgapp.changeset'::regtype
        AND prorettype = 'pgapp.changeset'::regtype),
    15, 'the 10 validators and 5 error/constraint helpers take and return pgapp.changeset');
SELECT function_returns('pgapp', 'cast', ARRAY['regclass', 'jsonb', 'jsonb', 'text[]'], 'pgapp.changeset');
SELECT function_returns('pgapp', 'changeset', ARRAY['text', 'jsonb', 'jsonb'], 'pgapp.changeset');
SELECT function_returns('pgapp', 'insert', ARRAY['pgapp.changeset'], 'jsonb');
SELECT function_returns('pgapp', 'update', ARRAY['pgapp.changeset'], 'jsonb');
SELECT function_returns('pgapp', 'errors', ARRAY['pgapp.changeset'], 'jsonb');
SELECT function_returns('pgapp', 'is_valid', ARRAY['pgapp.changeset'], 'boolean');
SELECT volatility_is('pgapp', 'cast', ARRAY['regclass', 'jsonb', 'jsonb', 'text[]'], 'stable',
    'cast() is STABLE: PostgREST may call it in GET requests');
SELECT volatility_is('pgapp', 'insert', ARRAY['pgapp.changeset'], 'volatile');
SELECT volatility_is('pgapp', 'update', ARRAY['pgapp.changeset'], 'volatile');
SELECT is(
    (SELECT array_agg(DISTINCT provolatile) FROM pg_proc
      WHERE pronamespace = 'pgapp'::regnamespace AND proname LIKE 'validate\_%'
        AND proname <> 'validate_table'),
    ARRAY['s']::"char"[], 'validators are STABLE (they read definitions and the clock)');
SELECT function_returns('pgapp', 'json_schema', ARRAY['text'], 'jsonb');
SELECT function_returns('pgapp', 'openapi', ARRAY['name'], 'jsonb');
SELECT volatility_is('pgapp', 'openapi', ARRAY['name'], 'stable',
    'openapi() is STABLE: PostgREST serves it on GET');
SELECT has_table('pgapp', 'changeset_def', 'definitions live in pgapp.changeset_def');

-- administration is for pgapp_admin; using changesets is for everyone
SELECT ok(NOT has_function_privilege('public', 'pgapp.define_changeset(text,regclass,text[],jsonb)', 'EXECUTE'),
    'PUBLIC cannot define changesets');
SELECT ok(NOT has_function_privilege('public', 'pgapp.validate_table(regclass,text)', 'EXECUTE'),
    'PUBLIC cannot attach validation triggers');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.define_changeset(text,regclass,text[],jsonb)', 'EXECUTE'),
    'pgapp_admin can define changesets');
SELECT ok(has_function_privilege('public', 'pgapp.changeset(text,jsonb,jsonb)', 'EXECUTE')
      AND has_function_privilege('public', 'pgapp.insert(pgapp.changeset)', 'EXECUTE'),
    'PUBLIC can build and insert changesets');
SELECT ok(NOT has_table_privilege('public', 'pgapp.changeset_def', 'INSERT'),
    'PUBLIC cannot write definitions');

-- SQLSTATE and message pairs
CREATE TABLE tap_task (id int PRIMARY KEY, title text, n int);
SELECT throws_ok($$SELECT pgapp.cast('tap_task', NULL, '{}', ARRAY['nope'])$$,
    '42703', 'column "nope" of relation "tap_task" does not exist');
SELECT throws_ok($$SELECT pgapp.cast('tap_task', NULL, '[]', ARRAY['title'])$$,
    '22023', 'params must be a JSON object');
SELECT throws_ok($$SELECT pgapp.define_changeset('t', 'tap_task', ARRAY['title'], '[{"lenght": "title"}]')$$,
    '22023', 'rule 1 names no known validator');
SELECT throws_ok($$SELECT pgapp.define_changeset('t', 'tap_task', ARRAY['title'], '[{"length": "title", "max": 3, "minimum": 1}]')$$,
    '22023', 'unknown option "minimum" in rule 1 (length)');
SELECT throws_ok($$SELECT pgapp.define_changeset('t', 'tap_task', ARRAY['title'], '[{"format": "title", "pattern": "a{2,1}"}]')$$,
    '2201B', NULL, 'a regex that does not compile is 2201B');
SELECT throws_ok($$SELECT pgapp.define_changeset('t', 'tap_task', ARRAY['title'], '[{"length": "n", "min": 1}]')$$,
    '42804', 'length rule applies to text and array columns, but "n" is of type integer');
SELECT throws_ok($$SELECT pgapp.changeset('missing', '{}')$$,
    '42704', 'changeset "missing" does not exist');
SELECT throws_ok($$SELECT pgapp.insert(NULL)$$, '22004', 'changeset must not be null');

-- one reader checks every changeset value: shape 22023, limits 54000
SELECT throws_ok($$SELECT pgapp.is_valid(pgapp.cast('tap_task', NULL, '{}', ARRAY['title']) || '{"sql": 1}')$$,
    '22023', 'changeset has an unknown key "sql"');
SELECT throws_ok($$SELECT pgapp.insert(jsonb_set(pgapp.cast('tap_task', NULL, '{}', ARRAY['title']), '{changes}', '{"n": 1}'))$$,
    '22023', 'changeset changes "n", which it does not permit');
SELECT throws_ok($$SELECT pgapp.errors(jsonb_set(pgapp.cast('tap_task', NULL, '{}', ARRAY['title']), '{errors}', '{"title": "x"}'))$$,
    '22023', 'errors of "title" must be a non-empty JSON array of strings, not a string');
SELECT throws_ok($$SELECT pgapp.is_valid(jsonb_set(pgapp.cast('tap_task', NULL, '{}', ARRAY['title']), '{errors}',
                     (SELECT jsonb_object_agg('f' || i, '["x"]'::jsonb) FROM generate_series(1, 1001) AS i)))$$,
    '54000', 'changeset has more than 1000 errors');
SELECT ok(NOT pgapp.is_valid(jsonb_set(pgapp.add_error(pgapp.cast('tap_task', NULL, '{}', ARRAY['title']), 'title', 'x'),
                                       '{valid}', 'true')),
    '"valid": true next to errors is not valid');
SELECT volatility_is('pgapp', 'is_valid', ARRAY['pgapp.changeset'], 'stable',
    'is_valid() reads the catalog to check the value: STABLE');
SELECT is(current_setting('pgapp.changeset_max_items'), '1000', 'pgapp.changeset_max_items defaults to 1000');
-- Ecto parity: graphemes by default, validate_format raises on a non-string
SELECT is(pgapp.errors(pgapp.validate_length(pgapp.cast('tap_task', NULL, '{"title": "e\u0301"}', ARRAY['title']),
                                             'title', max => 1)),
    '{}'::jsonb, '"e\u0301" is one grapheme');
SELECT throws_ok($$SELECT pgapp.validate_format(jsonb_set(pgapp.cast('tap_task', NULL, '{}', ARRAY['title']),
                                                          '{changes}', '{"title": null}'), 'n', '^1$')$$,
    '22023', 'format rule applies to string values, but "n" is of type integer');

-- the error model: a trigger always raises PT422
SELECT lives_ok($$SELECT pgapp.define_changeset('tap_task', 'tap_task', ARRAY['title'], '[{"required": ["title"]}]')$$,
    'a valid definition is accepted');
SELECT lives_ok($$SELECT pgapp.validate_table('tap_task', 'tap_task')$$, 'the trigger attaches');
SET LOCAL pgapp.error_mode = 'return';
SELECT throws_ok($$INSERT INTO tap_task VALUES (1, ' ')$$,
    'PT422', 'validation failed: title can''t be blank', 'triggers raise even in return mode');
SELECT is(pgapp.insert(pgapp.changeset('tap_task', '{"title": ""}')),
    '{"errors": {"title": ["can''t be blank"]}}'::jsonb, 'pgapp.insert returns the errors in return mode');

-- integers are read without the type's input function: the same values
-- must fit, and the same must not, as int2in / int4in / int8in say
CREATE TEMP TABLE tap_ints (id int PRIMARY KEY, a int2, b int4, c int8);
CREATE FUNCTION pg_temp.pg_accepts(s text, t regtype) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT %L::%s', s, t);
    RETURN true;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;
CREATE TEMP TABLE tap_int_inputs AS
SELECT s FROM unnest(ARRAY['0', '-0', '+5', ' 7 ', '8  ', '1_000', '0x10', '1e3', '5.0', '-', '+', '--1', '+-1', '- 1', '1 2',
    '00012', '32767', '32768', '-32768', '-32769', '2147483647', '2147483648', '-2147483648', '-2147483649',
    '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
    '99999999999999999999999', '１', 'abc', '12a']) AS s;
SELECT is((SELECT count(*)::int FROM tap_int_inputs i, (VALUES ('a', 'int2'::regtype), ('b', 'int4'), ('c', 'int8')) AS c (col, t)
            WHERE (pgapp.errors(pgapp.cast('tap_ints', NULL, jsonb_build_object(c.col, i.s), ARRAY[c.col])) = '{}')
                  IS DISTINCT FROM pg_temp.pg_accepts(i.s, c.t)), 0,
    'integer strings fit an int2, int4 or int8 column exactly when PostgreSQL accepts them');
SELECT is((SELECT count(*)::int FROM tap_int_inputs i, (VALUES ('a', 'int2'::regtype), ('b', 'int4'), ('c', 'int8')) AS c (col, t)
            WHERE CASE WHEN pg_temp.pg_accepts(i.s, c.t)
                       THEN pgapp.cast('tap_ints', NULL, jsonb_build_object(c.col, i.s), ARRAY[c.col]) -> 'changes' -> c.col
                            IS DISTINCT FROM to_jsonb(i.s::int8)
                       ELSE false END), 0,
    'and give the value PostgreSQL gives');
SELECT is((SELECT count(*)::int FROM (VALUES ('1000'), ('1e3'), ('5.0'), ('-32768'), ('32768'), ('1e19'), ('-9223372036854775808')) AS n (v),
                (VALUES ('a', 'int2'::regtype), ('b', 'int4'), ('c', 'int8')) AS c (col, t)
            WHERE (pgapp.errors(pgapp.cast('tap_ints', NULL, jsonb_build_object(c.col, n.v::jsonb), ARRAY[c.col])) = '{}')
                  IS DISTINCT FROM pg_temp.pg_accepts(n.v::numeric::text, c.t)), 0,
    'JSON numbers fit an integer column exactly when their numeric text does');

-- pgapp.insert gives plain scalar columns their values as typed parameters
-- and the rest through jsonb_populate_record: the rows are the same
CREATE DOMAIN pg_temp.tap_nn_text AS text NOT NULL;
CREATE TYPE tap_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TEMP TABLE tap_kinds (
    id serial PRIMARY KEY, v varchar(5), p numeric(5,2), b boolean, t timestamptz, m tap_mood,
    tags text[], doc jsonb, f float8, i8 int8);
CREATE TEMP TABLE tap_dom (id serial PRIMARY KEY, d pg_temp.tap_nn_text DEFAULT 'x', t timestamptz, tags text[]);
SELECT is(pgapp.insert(pgapp.cast('tap_kinds', NULL,
        '{"v": "abc", "p": 1.234, "b": true, "t": "2026-01-02 03:04:05+00", "m": "ok", "f": 1.5, "i8": "42"}',
        ARRAY['v', 'p', 'b', 't', 'm', 'f', 'i8'])) - 'id',
    '{"v": "abc", "p": 1.23, "b": true, "t": "2026-01-02T03:04:05+00:00", "m": "ok", "tags": null, "doc": null, "f": 1.5, "i8": 42}',
    'typed parameters: varchar, numeric with a typmod, boolean, timestamptz, enum, float, bigint');
SELECT is(pgapp.insert(pgapp.cast('tap_kinds', NULL, '{"tags": ["a", "b"], "doc": {"k": [1]}, "b": "0"}',
        ARRAY['tags', 'doc', 'b'])) - 'id' - 't',
    '{"v": null, "p": null, "b": false, "m": null, "tags": ["a", "b"], "doc": {"k": [1]}, "f": null, "i8": null}',
    'arrays and jsonb go through jsonb_populate_record');
SELECT throws_ok($$SELECT pgapp.insert(jsonb_set(pgapp.cast('tap_dom', NULL, '{"d": "y"}', ARRAY['d']), '{changes,d}', 'null'))$$,
    '23502', NULL, 'a null for a NOT NULL domain column is refused, as jsonb_populate_record refuses it');

SELECT is(pgapp.cast('tap_dom', NULL, '{"t": "2026-01-02 03:04:05+00", "tags": ["a"]}', ARRAY['t', 'tags']) -> 'changes',
    '{"t": "2026-01-02T03:04:05+00:00", "tags": ["a"]}',
    'a NOT NULL domain column does not make the other columns'' values invalid');
SELECT is(pgapp.cast('tap_dom', NULL, '{"t": "soon", "tags": 5, "d": "y"}', ARRAY['t', 'tags', 'd']) -> 'errors',
    '{"t": ["is invalid"], "tags": ["is invalid"]}', 'values that do not fit are still invalid');

SELECT is((SELECT pgapp.update(pgapp.cast('tap_kinds', to_jsonb(k), '{"v": "new", "p": 2.5, "b": false}', ARRAY['v', 'p', 'b'])) - 't'
             FROM tap_kinds AS k WHERE v = 'abc'),
    (SELECT (to_jsonb(k) || '{"v": "new", "p": 2.50, "b": false}') - 't' FROM tap_kinds AS k WHERE v = 'abc'),
    'pgapp.update sets plain scalar columns through typed parameters');
SELECT is((SELECT pgapp.update(pgapp.cast('tap_kinds', to_jsonb(k), '{"tags": ["x"], "v": "arr"}', ARRAY['tags', 'v'])) -> 'tags'
             FROM tap_kinds AS k WHERE v = 'new'),
    '["x"]', 'and an array column through jsonb_populate_record');
CREATE DOMAIN pg_temp.tap_code AS text CHECK (VALUE <> '');
CREATE TEMP TABLE tap_coded (code pg_temp.tap_code PRIMARY KEY, n int);
INSERT INTO tap_coded VALUES ('a', 1);
SELECT is((SELECT pgapp.update(pgapp.cast('tap_coded', to_jsonb(c), '{"n": 2}', ARRAY['n'])) FROM tap_coded AS c),
    '{"code": "a", "n": 2}', 'a primary key of a domain type finds its row');

SELECT * FROM finish();
ROLLBACK;

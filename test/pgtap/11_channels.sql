-- test/pgtap/11_channels.sql
-- Channels of pgapp-gateway: the contract of define_channel, drop_channel
-- and pgapp.channels, and who may do what.  The gateway itself is tested by
-- the gateway suite (test/gateway/).
BEGIN;
SELECT plan(16);

SELECT function_returns('pgapp', 'define_channel', ARRAY['text', 'regprocedure', 'regprocedure', 'boolean'], 'void');
SELECT function_returns('pgapp', 'drop_channel', ARRAY['text'], 'boolean');
SELECT is_definer('pgapp', 'define_channel', ARRAY['text', 'regprocedure', 'regprocedure', 'boolean'],
    'define_channel writes pgapp.channel for pgapp_admin, who may not write it directly');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'pgapp.define_channel(text,regprocedure,regprocedure,boolean)'::regprocedure),
    ARRAY['search_path=pg_catalog, pg_temp'], 'its search_path is pinned');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'pgapp.define_channel(text,regprocedure,regprocedure,boolean)'::regprocedure),
    ARRAY['pattern', 'join', 'handle_in', 'presence'], 'the argument names of the contract (join => ..., handle_in => ...)');

-- who may call what
SELECT ok(NOT has_function_privilege('public', 'pgapp.define_channel(text,regprocedure,regprocedure,boolean)', 'EXECUTE'),
    'PUBLIC cannot define channels');
SELECT ok(NOT has_function_privilege('public', 'pgapp.drop_channel(text)', 'EXECUTE'), 'PUBLIC cannot drop channels');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.define_channel(text,regprocedure,regprocedure,boolean)', 'EXECUTE'),
    'pgapp_admin defines channels');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.drop_channel(text)', 'EXECUTE'), 'pgapp_admin drops channels');
SELECT ok(has_table_privilege('public', 'pgapp.channels', 'SELECT'), 'everyone may read pgapp.channels');
SELECT ok(NOT has_table_privilege('public', 'pgapp.channel', 'SELECT')
          AND NOT has_table_privilege('pgapp_admin', 'pgapp.channel', 'INSERT')
          AND NOT has_table_privilege('pgapp_admin', 'pgapp.channel', 'UPDATE')
          AND NOT has_table_privilege('pgapp_admin', 'pgapp.channel', 'DELETE'),
    'no one but the owner touches pgapp.channel');

-- behaviour
CREATE FUNCTION pg_temp.j(topic text, params jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": {}}'::jsonb $$;
CREATE FUNCTION pg_temp.h(topic text, event text, payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
SELECT lives_ok($$ SELECT pgapp.define_channel('tap:*', 'pg_temp.j(text, jsonb)'::regprocedure,
                                               'pg_temp.h(text, text, jsonb)'::regprocedure, true) $$,
    'a channel with join, handle_in and presence');
SELECT results_eq($$ SELECT pattern, join_function::oid, handle_in_function::oid, presence FROM pgapp.channels WHERE pattern = 'tap:*' $$,
    $$ VALUES ('tap:*', 'pg_temp.j(text, jsonb)'::regprocedure::oid, 'pg_temp.h(text, text, jsonb)'::regprocedure::oid, true) $$,
    'pgapp.channels lists it');
SELECT throws_ok($$ SELECT pgapp.define_channel('tap:*:x', 'pg_temp.j(text, jsonb)'::regprocedure) $$,
    '22023', NULL, 'a * inside a pattern is refused');
SELECT throws_ok($$ SELECT pgapp.define_channel('tap', 'pg_temp.h(text, text, jsonb)'::regprocedure) $$,
    '22023', NULL, 'a join function of the wrong signature is refused');
SELECT is(pgapp.drop_channel('tap:*'), true, 'drop_channel drops it');

SELECT * FROM finish();
ROLLBACK;

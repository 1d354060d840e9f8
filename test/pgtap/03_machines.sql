-- test/pgtap/03_machines.sql
-- Status machines: signatures, privileges and the SQLSTATE + message of
-- each kind of bad input.
BEGIN;
SELECT plan(9);

SELECT function_returns('pgapp', 'allowed_transitions', ARRAY['text', 'text'], 'text[]');
SELECT function_returns('pgapp', 'transition_allowed', ARRAY['text', 'text', 'text'], 'boolean');
SELECT has_table('pgapp', 'machine', 'machines live in pgapp.machine');
SELECT has_table('pgapp', 'transition_log', 'the transition log is pgapp.transition_log');

-- administration is for pgapp_admin; the log is written by the trigger only
SELECT ok(NOT has_function_privilege('public', 'pgapp.define_machine(text,jsonb,text[])', 'EXECUTE'),
    'PUBLIC cannot define machines');
SELECT ok(NOT has_function_privilege('public', 'pgapp.enforce_transitions(regclass,name,text,boolean)', 'EXECUTE'),
    'PUBLIC cannot attach transition triggers');
SELECT ok(NOT has_table_privilege('public', 'pgapp.machine', 'INSERT')
      AND NOT has_table_privilege('public', 'pgapp.transition_log', 'INSERT'),
    'PUBLIC cannot write machines or forge log entries');

-- SQLSTATE and message pairs
SELECT throws_ok($$SELECT pgapp.define_machine('m', '{"a": ["b"]}')$$,
    '22023', 'machine "m" has a transition from "a" to unknown state "b"');
SELECT throws_ok($$SELECT pgapp.transition_allowed('missing', 'a', 'b')$$,
    '42704', 'machine "missing" does not exist');

SELECT * FROM finish();
ROLLBACK;

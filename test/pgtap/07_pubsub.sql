-- test/pgtap/07_pubsub.sql
-- PubSub: signatures, privileges, SQLSTATEs.
BEGIN;
SELECT plan(42);

SELECT function_returns('pgapp', 'broadcast', ARRAY['text', 'text', 'jsonb', 'text'], 'void');
SELECT function_returns('pgapp', 'channel', ARRAY['text'], 'text');
SELECT function_returns('pgapp', 'subscribe', ARRAY['text'], 'text');
SELECT function_returns('pgapp', 'unsubscribe', ARRAY['text'], 'void');
SELECT function_returns('pgapp', 'message', ARRAY['uuid'], 'jsonb');
SELECT function_returns('pgapp', 'broadcast_changes', ARRAY['regclass', 'text', 'boolean', 'text', 'text[]', 'text[]'], 'void');
SELECT function_returns('pgapp', 'stop_broadcast_changes', ARRAY['regclass'], 'boolean');
SELECT has_view('pgapp', 'pubsub_outbox', 'view pgapp.pubsub_outbox exists');
SELECT columns_are('pgapp', 'pubsub_outbox', ARRAY['pending', 'oldest_pending', 'worker_pid', 'worker_state',
    'delivered', 'batches', 'last_delivery']);
SELECT ok(has_function_privilege('public', 'pgapp.broadcast(text,text,jsonb,text)', 'EXECUTE')
      AND has_function_privilege('public', 'pgapp.subscribe(text)', 'EXECUTE')
      AND has_function_privilege('public', 'pgapp.message(uuid)', 'EXECUTE'),
    'everyone may broadcast, subscribe and fetch a stored message');
SELECT ok(NOT has_table_privilege('public', 'pgapp.outbox', 'SELECT')
      AND NOT has_table_privilege('public', 'pgapp.message', 'SELECT')
      AND NOT has_table_privilege('public', 'pgapp.pubsub_outbox', 'SELECT'),
    'the outbox and the stored messages are not readable by everyone');
SELECT is((SELECT relpersistence FROM pg_class WHERE oid = 'pgapp.message'::regclass), 'u',
    'stored messages are unlogged');
SELECT is((SELECT relpersistence FROM pg_class WHERE oid = 'pgapp.outbox'::regclass), 'p',
    'the outbox is logged (a restart loses no message)');
SELECT is(pgapp.channel('a:b'), 'a:b', 'a short topic is its own channel');
SELECT is(pgapp.channel(repeat('z', 64)), 'pgapp:' || md5(repeat('z', 64)), 'a long topic: pgapp: || md5');
SELECT throws_ok($$SELECT pgapp.broadcast('', 'e', '{}')$$, '22023', 'topic must not be empty');
SELECT throws_ok($$SELECT pgapp.broadcast('t', 'e', '[]')$$, '22023', 'payload must be a JSON object');
SELECT throws_ok($$SELECT pgapp.message('00000000-0000-7000-8000-000000000000')$$, '42704', NULL,
    'an unknown message id is 42704');
SELECT throws_ok($$SELECT pgapp.broadcast('t', 'e', '{}', mode => 'x')$$, '22023', 'unknown broadcast mode "x"');
SELECT throws_ok($$SELECT pgapp._broadcast_changes()$$, '39P01', NULL, 'the trigger function refuses a direct call');
SELECT function_returns('pgapp', 'presence_track', ARRAY['text', 'text', 'jsonb', 'interval', 'uuid'], 'uuid');
SELECT function_returns('pgapp', 'presence_untrack', ARRAY['text', 'text', 'uuid'], 'integer');
SELECT function_returns('pgapp', 'presence_list', ARRAY['text'], 'jsonb');
SELECT function_returns('pgapp', 'typing', ARRAY['text', 'text'], 'void');
SELECT function_returns('pgapp', 'typing_list', ARRAY['text'], 'text[]');
SELECT ok((SELECT bool_and(relpersistence = 'u') FROM pg_class WHERE oid IN ('pgapp.presence'::regclass, 'pgapp.typing'::regclass)),
    'presence and typing are unlogged (kept out of the WAL)');
SELECT throws_ok($$SELECT pgapp.presence_track('t', 'k', '{}', ttl => '-1 second')$$, '22023', NULL, 'a negative ttl is 22023');
SELECT ok(NOT has_function_privilege('public', 'pgapp._broadcast_system(text,text,jsonb,text)', 'EXECUTE'),
    'only pgapp''s own code may send on reserved topics and events');
-- broadcast_from (pgapp-gateway): everyone's, with broadcast's checks and a checked setting
SELECT function_returns('pgapp', 'broadcast_from', ARRAY['text', 'text', 'jsonb'], 'void');
SELECT ok(has_function_privilege('public', 'pgapp.broadcast_from(text,text,jsonb)', 'EXECUTE')
      AND NOT has_function_privilege('public', 'pgapp._broadcast_system_from(text,text,jsonb,text)', 'EXECUTE'),
    'everyone may broadcast_from; only pgapp''s own code the reserved events');
SELECT throws_ok($$SELECT pgapp.broadcast_from('t', 'typing', '{}')$$, '42501', 'event "typing" is reserved for pgapp');
SELECT throws_ok($$SELECT set_config('request.gateway.socket', 'x', true), pgapp.broadcast_from('t', 'e', '{}')$$,
    '22023', NULL, 'a request.gateway.socket not of the gateway''s shape is 22023');
SELECT lives_ok($$SELECT set_config('request.gateway.socket', '0123456789abcdef:1', true), pgapp.broadcast_from('t', 'e', '{}')$$,
    'broadcast_from in a gateway request');
SELECT throws_ok($$SELECT pgapp.broadcast('jobs:1', 'progress', '{}')$$, '42501', 'topic "jobs:1" is reserved for pgapp');
SELECT throws_ok($$SELECT pgapp.broadcast('pgapp_jobs:q', 'available', '{}')$$, '42501', NULL, 'pgapp_* topics are reserved');
SELECT throws_ok($$SELECT pgapp.broadcast('pgrst', 'e', '{}')$$, '42501', NULL, 'PostgREST''s channel is reserved');
SELECT throws_ok($$SELECT pgapp.broadcast('t', 'presence_diff', '{}')$$, '42501', 'event "presence_diff" is reserved for pgapp');
SELECT throws_ok($$SELECT pgapp.broadcast('t', 'phx_join', '{}')$$, '42501', NULL, 'phx_* events are reserved');
SELECT throws_ok($$SELECT pgapp.broadcast('t', 'e', jsonb_build_object('b', repeat('x', 2000000)))$$, '54000', NULL,
    'a payload over pgapp.pubsub_max_payload is 54000');
SELECT throws_ok($$SELECT pgapp.presence_track('t', 'k', jsonb_build_object('b', repeat('x', 5000)))$$, '54000', NULL,
    'a meta over pgapp.pubsub_presence_max_meta is 54000');
SELECT throws_ok($$SELECT pgapp.presence_track('t', 'k', '{}', ttl => '1 day')$$, '54000', NULL,
    'a ttl over pgapp.pubsub_presence_max_ttl is 54000');
SELECT is((SELECT context FROM pg_settings WHERE name = 'pgapp.pubsub_max_payload'), 'superuser',
    'only a superuser may change the pubsub limits');

SELECT * FROM finish();
ROLLBACK;

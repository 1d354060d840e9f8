--
-- security/90_channels: the channels of pgapp-gateway.  Only pgapp_admin
-- defines channels, through define_channel (the table itself is written by
-- no one else); everyone may read the list; hostile definitions are refused.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

CREATE SCHEMA sec_chan;
GRANT USAGE ON SCHEMA sec_chan TO PUBLIC;
CREATE FUNCTION sec_chan.join(topic text, params jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', '{}'::jsonb) $$;
CREATE FUNCTION sec_chan.many(topic text, params jsonb) RETURNS SETOF jsonb
LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE PROCEDURE sec_chan.proc(topic text, params jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
SELECT pgapp.define_channel('room:*', 'sec_chan.join(text, jsonb)');

-- A. Only pgapp_admin defines and drops channels (42501 for PUBLIC and
--    PostgREST's anon), and no one writes pgapp.channel directly
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('room:*', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('evil:*', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_channel('room:*') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._channel_check_function('sec_chan.join(text, jsonb)', '{}', 'join') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO pgapp.channel (pattern, join_function) VALUES ('evil:*', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ UPDATE pgapp.channel SET handle_in_function = 'sec_chan.join(text, jsonb)' $$);
SELECT * FROM pg_temp.show($$ DELETE FROM pgapp.channel $$);
SELECT * FROM pg_temp.show($$ UPDATE pgapp.channels SET presence = true $$);
-- the list is readable (the gateway reads it; it holds no secret)
SELECT pattern, join_function FROM pgapp.channels;
SET ROLE anon;
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('evil:*', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_channel('room:*') $$);
RESET ROLE;
SELECT pattern, join_function, handle_in_function, presence FROM pgapp.channels;

-- B. A pgapp_admin member who owns nothing defines channels through the
--    function only, and hostile definitions are refused: a pattern too long
--    or with a '*' inside, the heartbeats' topic, a set-returning function,
--    a procedure, a function of the wrong signature
SET ROLE sec_admin;
SELECT pgapp.define_channel('admin:*', 'sec_chan.join(text, jsonb)');
SELECT * FROM pg_temp.show($$ INSERT INTO pgapp.channel (pattern, join_function) VALUES ('evil:*', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel(repeat('é', 128), 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('a*b', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('phoenix', 'sec_chan.join(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('many', 'sec_chan.many(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('proc', 'sec_chan.proc(text, jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('sig', 'pg_catalog.to_jsonb(anyelement)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_channel('nul', 'sec_chan.join(text, jsonb)', presence => NULL) $$);
SELECT pgapp.drop_channel('admin:*');
RESET ROLE;
SELECT pattern FROM pgapp.channels ORDER BY pattern;

-- C. broadcast_from (everyone but the gateway socket whose request runs):
--    any role may call it, with pgapp.broadcast's checks; the socket it
--    leaves out comes only from request.gateway.socket, whose shape is
--    checked (a forged value is refused, not relayed), and pgapp's internal
--    _broadcast_system_from (typing) is not for PUBLIC
SET ROLE anon;
SELECT count(*) AS anon_may_broadcast_from FROM (SELECT pgapp.broadcast_from('room:1', 'hello', '{}')) AS s;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('room:1', 'phx_close', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('room:1', 'presence_state', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('pgrst', 'reload', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('room:1', 'e', jsonb_build_object('x', repeat('x', 2000000))) $$);
SELECT * FROM pg_temp.show($$ SELECT set_config('request.gateway.socket', repeat('a', 100000), true), pgapp.broadcast_from('room:1', 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT set_config('request.gateway.socket', '0123456789abcdef:1 OR 1=1', true), pgapp.broadcast_from('room:1', 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT set_config('request.gateway.socket', '0123456789abcdef:-1', true), pgapp.broadcast_from('room:1', 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._broadcast_system_from('room:1', 'typing', '{"key": "x"}', 'direct') $$);
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp._broadcast_system_from('jobs:1', 'progress', '{}', 'direct') $$);
RESET ROLE;

SELECT pgapp.drop_channel('room:*');
DROP SCHEMA sec_chan CASCADE;

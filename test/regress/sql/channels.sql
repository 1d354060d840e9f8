--
-- channels: pgapp.define_channel and pgapp.drop_channel, the channels of
-- pgapp-gateway (docs/gateway.md); the gateway itself is tested by the
-- gateway suite (test/gateway/).
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/listener_helpers.sql
\set ECHO all

CREATE SCHEMA chan;
CREATE FUNCTION chan.join(topic text, params jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', params) $$;
CREATE FUNCTION chan.handle_in(topic text, event text, payload jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', payload) $$;
CREATE FUNCTION chan."odd ""name"""(topic text, params jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT NULL::jsonb $$;

-- running gateways LISTEN on pgapp_channels and reload when told
SELECT dblink_exec('listener', 'LISTEN pgapp_channels');

-- define: a prefix pattern, with join and handle_in; the issue's named notation works
SELECT pgapp.define_channel('room:*', join => 'chan.join(text, jsonb)',
                            handle_in => 'chan.handle_in(text, text, jsonb)');
SELECT pgapp.define_channel('lobby', 'chan."odd ""name"""(text, jsonb)', presence => true);
SELECT pg_temp.wait_for('define_channel', 2);
SELECT * FROM pg_temp.received();
SELECT pattern, join_function, handle_in_function, presence, created_at = updated_at AS unchanged
  FROM pgapp.channels ORDER BY pattern;

-- define again: the definition is replaced
SELECT pgapp.define_channel('room:*', 'chan.join(text, jsonb)');
SELECT pattern, join_function, handle_in_function, presence, updated_at >= created_at AS updated
  FROM pgapp.channels WHERE pattern = 'room:*';

-- what the gateway reads (gateway/db.c): quoted, schema-qualified names
SELECT c.pattern, format('%I.%I', jn.nspname, jp.proname) AS join_call,
       CASE WHEN hp.oid IS NOT NULL THEN format('%I.%I', hn.nspname, hp.proname) END AS handle_in_call
  FROM pgapp.channels AS c
  JOIN pg_proc AS jp ON jp.oid = c.join_function
  JOIN pg_namespace AS jn ON jn.oid = jp.pronamespace
  LEFT JOIN pg_proc AS hp ON hp.oid = c.handle_in_function
  LEFT JOIN pg_namespace AS hn ON hn.oid = hp.pronamespace
 ORDER BY c.pattern;

-- patterns: 1 to 255 bytes, at most one '*', at the end; 'phoenix' is the heartbeats' topic
SELECT pg_temp.show($$SELECT pgapp.define_channel('', 'chan.join(text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel(repeat('x', 256), 'chan.join(text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel('room:*:x', 'chan.join(text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel('room:**', 'chan.join(text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel('phoenix', 'chan.join(text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel(NULL, 'chan.join(text, jsonb)')$$);
SELECT pgapp.define_channel('*', 'chan.join(text, jsonb)');   -- every topic: allowed

-- functions: join(text, jsonb) and handle_in(text, text, jsonb), each returning one jsonb
SELECT pg_temp.show($$SELECT pgapp.define_channel('x', 'chan.handle_in(text, text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel('x', 'chan.join(text, jsonb)', 'chan.join(text, jsonb)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel('x', 'pg_catalog.to_jsonb(anyelement)')$$);
SELECT pg_temp.show($$SELECT pgapp.define_channel('x', 'chan.nothing(text, jsonb)')$$);

-- drop: true once, then false
SELECT pgapp.drop_channel('*') AS dropped, pgapp.drop_channel('*') AS again;
SELECT pg_temp.wait_for('drop_channel');
SELECT message FROM pg_temp.received() WHERE message ->> 'event' = 'drop_channel';
SELECT pattern FROM pgapp.channels ORDER BY pattern;

-- the definitions are the extension's configuration: pg_dump keeps them
SELECT extcondition IS NOT NULL AS dumped
  FROM pg_extension WHERE extname = 'pgapp' AND 'pgapp.channel'::regclass = ANY (extconfig);

SELECT pgapp.drop_channel('room:*'), pgapp.drop_channel('lobby');
DROP SCHEMA chan CASCADE;

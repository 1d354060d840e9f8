--
-- security/95_chat_page: attacks on the chat page's channel chat_user:<sub>
-- (examples/chat.sql, "The chat page"), which app_user reaches through
-- pgapp-gateway: joining another user's topic, listing another room's
-- members, downloading another room's files, names of strangers, the demo's
-- token maker, hostile payloads, the download rate.  After 94_chat, in the
-- database it leaves (rooms general: ada, grace; den: mallory; ada's
-- attachment 1 stored); loaded here if it is not.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
SELECT to_regnamespace('chat') IS NULL AS need_chat \gset
\if :need_chat
SET client_min_messages = warning;
\i examples/chat.sql
RESET client_min_messages;
INSERT INTO chat.room (id, name, created_by) VALUES ('general', 'General', 'ada'), ('den', 'Den', 'mallory');
INSERT INTO chat.member VALUES ('general', 'ada', 'owner'), ('general', 'grace', 'member'), ('den', 'mallory', 'owner');
INSERT INTO chat.profile VALUES ('ada', 'Ada'), ('grace', 'Grace');
INSERT INTO chat.attachment (room_id, uploader_id, name, content_type, size, data)
    VALUES ('general', 'ada', 'plan.txt', 'text/plain', 6, 'secret');
SELECT chat.store_upload('{"attachment_id": 1}', NULL) IS NOT NULL AS stored;
\endif
CREATE FUNCTION pg_temp.claims(sub text) RETURNS text LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims',
                      CASE WHEN sub IS NULL THEN '' ELSE jsonb_build_object('role', 'app_user', 'sub', sub)::text END,
                      false)
$$;
\set ECHO all

SELECT id, room_id, state, url FROM chat.attachment WHERE id = 1;

-- A. anon and a role with PUBLIC's rights reach none of it: 42501
SELECT pg_temp.claims(NULL) IS NOT NULL AS no_claims;
SET ROLE anon;
SELECT * FROM pg_temp.show($$ SELECT chat.user_join('chat_user:ada', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.user_handle_in('chat_user:ada', 'rooms', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.room_members('general') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.download('{"id": 1}') $$);
RESET ROLE;
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT chat.my_rooms() $$);
SELECT * FROM pg_temp.show($$ SELECT chat.display_name('ada') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.demo_token('sec_attacker', 'x', 'general') $$);
RESET ROLE;

-- B. app_user without a sub is nobody
SET ROLE app_user;
SELECT chat.user_join('chat_user:', '{}') AS join, chat.user_handle_in('chat_user:', 'rooms', '{}') AS push;
RESET ROLE;

-- C. mallory cannot join or push on ada's topic, whatever she makes of it
SELECT pg_temp.claims('mallory') IS NOT NULL AS as_mallory;
SET ROLE app_user;
SELECT t AS topic, chat.user_join(t, '{}') AS join
  FROM unnest(ARRAY['chat_user:ada', 'chat_user:ADA', 'chat_user:ada ', 'chat_user:%', 'chat_user:_da',
                    'chat_user:mallory:ada', 'room:general']) AS t;
SELECT chat.user_handle_in('chat_user:ada', e, '{"room": "general", "id": 1}') AS push
  FROM unnest(ARRAY['rooms', 'members', 'download']) AS e;
-- on her own topic: her rooms only; not the members or files of ada's room
SELECT chat.user_join('chat_user:mallory', '{}') -> 'ok' -> 'rooms' AS her_rooms;
SELECT chat.user_handle_in('chat_user:mallory', 'members', '{"room": "general"}') AS members,
       chat.user_handle_in('chat_user:mallory', 'download', '{"id": 1}') AS download;
-- the helpers the page's functions use are not hers to call
SELECT * FROM pg_temp.show($$ SELECT chat.display_name('ada') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.demo_token('mallory', 'Ada', 'general') $$);
-- what room_members answers a non-member: nothing
SELECT chat.room_members('general') AS general, chat.room_members(NULL) AS null_room;
-- hostile payloads: ids that are not ids, huge events, payloads that are not objects
SELECT p AS payload, chat.user_handle_in('chat_user:mallory', 'download', p::jsonb) AS reply
  FROM unnest(ARRAY['{"id": "1"}', '{"id": 1.5}', '{"id": -1}', '{"id": 1e30}', '{"id": null}', '{}',
                    '{"id": [1]}', '{"id": 99999999999999999999}']) AS p;
SELECT chat.user_handle_in('chat_user:mallory', 'members', p::jsonb) AS reply
  FROM unnest(ARRAY['{"room": ["general"]}', '{"room": {"id": "general"}}', '[1]', 'null']) AS p;
SELECT chat.user_handle_in('chat_user:mallory', repeat('e', 1000000), '{}') -> 'error' ->> 'reason' AS huge_event,
       chat.user_handle_in('chat_user:mallory', 'members', jsonb_build_object('room', repeat('r', 1000000))) AS huge_room;
RESET ROLE;

-- D. grace, a member of general: the members with their names, the file,
--    and at most 60 downloads a minute
SELECT pg_temp.claims('grace') IS NOT NULL AS as_grace;
SET ROLE app_user;
SELECT chat.user_join('chat_user:grace', '{}') #- '{ok,limits}' AS join;
SELECT chat.user_handle_in('chat_user:grace', 'members', '{"room": "general"}') AS members;
SELECT chat.user_handle_in('chat_user:grace', 'members', '{"room": "den"}') AS not_hers;
SELECT r -> 'ok' ->> 'name' AS name, r -> 'ok' ->> 'url' AS url,
       convert_from(decode(r -> 'ok' ->> 'data', 'base64'), 'UTF8') AS data
  FROM chat.user_handle_in('chat_user:grace', 'download', '{"id": 1}') AS r;
SELECT count(*) FILTER (WHERE r ? 'ok') AS ok, count(*) FILTER (WHERE r -> 'error' ->> 'reason' = 'rate_limited') AS limited
  FROM (SELECT chat.user_handle_in('chat_user:grace', 'download', '{"id": 1}') AS r FROM generate_series(2, 61)) AS d;
RESET ROLE;

-- E. the rooms_changed broadcast never stops a membership change: ids too
--    long for a topic are added and removed without it
INSERT INTO chat.member (room_id, user_id) VALUES ('general', repeat('u', 255));
DELETE FROM chat.member WHERE user_id = repeat('u', 255);
SELECT count(*) AS long_ids_left FROM chat.member WHERE octet_length(user_id) > 200;
SELECT pg_temp.claims(NULL) IS NOT NULL AS reset_claims;

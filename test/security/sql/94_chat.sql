--
-- security/94_chat: attacks on the chat recipe (examples/chat.sql), whose
-- functions PostgREST's anon may reach and app_user calls through
-- PostgREST and pgapp-gateway.  Requests are replayed as they run there:
-- the token's role (app_user, or anon without a token) and its claims in
-- request.jwt.claims.  The victims are ada (owner of room "general") and
-- grace (a member); mallory is a registered user who belongs to no room of
-- theirs.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
SET client_min_messages = warning;
\i examples/chat.sql
RESET client_min_messages;
-- the claims of a request by sub (none: NULL), as the gateway and PostgREST set them
CREATE FUNCTION pg_temp.claims(sub text) RETURNS text LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims',
                      CASE WHEN sub IS NULL THEN '' ELSE jsonb_build_object('role', 'app_user', 'sub', sub)::text END,
                      false)
$$;
\set ECHO all

-- The victims' room, a message and an attachment, pending (the uploads
-- queue is paused, so that it stays pending)
INSERT INTO chat.room (id, name, created_by) VALUES ('general', 'General', 'ada');
INSERT INTO chat.member VALUES ('general', 'ada', 'owner'), ('general', 'grace', 'member');
INSERT INTO chat.profile VALUES ('ada', 'Ada'), ('grace', 'Grace');
SELECT pgapp.pause_queue('uploads');
SELECT pg_temp.claims('ada') IS NOT NULL AS as_ada;
SET ROLE app_user;
SELECT chat.handle_in('room:general', 'new_msg', '{"body": "the launch code is 1234"}') -> 'ok' ->> 'id' AS message;
SELECT chat.handle_in('room:general', 'attach', '{"name": "plan.txt", "content_type": "text/plain", "data": "c2VjcmV0"}')
       -> 'ok' -> 'attachment' ->> 'id' AS attachment;
RESET ROLE;
SELECT id, room_id, state FROM chat.attachment;

-- A. anon (a request without a token) and a role with PUBLIC's rights
--    reach nothing of the recipe: 42501 for every function and table
SELECT pg_temp.claims(NULL) IS NOT NULL AS no_claims;
SET ROLE anon;
SELECT * FROM pg_temp.show($$ SELECT chat.join('room:general', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.handle_in('room:general', 'new_msg', '{"body": "hi"}') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.history('general') $$);
SELECT * FROM pg_temp.show($$ SELECT chat.store_upload('{"attachment_id": 2}', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT api.room_messages('general') $$);
SELECT * FROM pg_temp.show($$ SELECT api.create_room('anon-room', 'Anon') $$);
SELECT * FROM pg_temp.show($$ SELECT api.add_member('general', 'anon') $$);
SELECT * FROM pg_temp.show($$ SELECT api.attachment(1) $$);
SELECT * FROM pg_temp.show($$ SELECT count(*) FROM chat.message $$);
RESET ROLE;
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT chat.join('room:general', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT api.set_chat_name('x') $$);
SELECT * FROM pg_temp.show($$ SELECT count(*) FROM chat.blob $$);
RESET ROLE;

-- B. app_user without a sub in its claims is nobody: refused, not an error
SET ROLE app_user;
SELECT chat.join('room:general', '{}') AS join, chat.handle_in('room:general', 'new_msg', '{"body": "x"}') AS push;
SELECT * FROM pg_temp.show($$ SELECT api.create_room('nobody', 'Nobody') $$);
SELECT count(*) AS visible FROM chat.message;
RESET ROLE;

-- C. mallory, a user of another room, calls the functions directly (as if
--    schema chat were exposed) and queries the tables: she sees nothing of
--    room general and writes nothing there
SELECT pg_temp.claims('mallory') IS NOT NULL AS as_mallory;
SET ROLE app_user;
SELECT chat.join(t, '{}') AS join FROM unnest(ARRAY['room:general', 'room:GENERAL', 'room:general ', 'room:%', 'room:_eneral']) AS t;
SELECT chat.handle_in('room:general', e, '{"body": "hi", "name": "a.txt", "content_type": "text/plain", "data": "aGk="}') AS push
  FROM unnest(ARRAY['new_msg', 'typing', 'attach']) AS e;
SELECT chat.history('general') AS history, api.room_messages('general') AS page;
SELECT (SELECT count(*) FROM chat.room) AS rooms, (SELECT count(*) FROM chat.member) AS members,
       (SELECT count(*) FROM chat.message) AS messages, (SELECT count(*) FROM chat.attachment) AS attachments,
       (SELECT count(*) FROM chat.blob) AS blobs, (SELECT count(*) FROM chat.profile) AS profiles;
-- writes into room general, as herself or as ada
SELECT * FROM pg_temp.show($$ INSERT INTO chat.message (room_id, author_id, author_name, body) VALUES ('general', 'mallory', '', 'hi') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.message (room_id, author_id, author_name, body) VALUES ('general', 'ada', '', 'hi') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.member (room_id, user_id) VALUES ('general', 'mallory') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.member (room_id, user_id, role) VALUES ('general', 'mallory', 'owner') $$);
SELECT * FROM pg_temp.show($$ UPDATE chat.room SET created_by = 'mallory' $$);
SELECT * FROM pg_temp.show($$ UPDATE chat.message SET body = 'defaced' $$);
SELECT * FROM pg_temp.show($$ DELETE FROM chat.message $$);
SELECT * FROM pg_temp.show($$ UPDATE chat.settings SET messages_per_second = 1000 $$);
-- through the API (errors raised, as outside PostgREST): adding herself,
-- removing the owner, reading the attachment
SELECT * FROM pg_temp.show($$ SELECT api.add_member('general', 'mallory') $$);
SELECT * FROM pg_temp.show($$ SELECT api.remove_member('general', 'ada') $$);
SELECT * FROM pg_temp.show($$ SELECT api.attachment(1) $$);
SELECT * FROM pg_temp.show($$ DELETE FROM chat.member WHERE room_id = 'general' $$);
-- someone else's name
SELECT * FROM pg_temp.show($$ UPDATE chat.profile SET name = 'Mallory' WHERE user_id = 'ada' $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.profile (user_id, name) VALUES ('grace', 'Grace (real)') $$);
-- taking the victims' room id, or making a room as someone else
SELECT * FROM pg_temp.show($$ SELECT api.create_room('general', 'Mine') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.room (id, name, created_by) VALUES ('framed', 'Framed', 'ada') $$);
RESET ROLE;

-- D. in a room of her own, mallory cannot borrow the victims' attachment,
--    forge an author or a stored attachment with a URL of her choosing
SET ROLE app_user;
SELECT api.create_room('den', 'Den') ->> 'id' AS room;
SELECT * FROM pg_temp.show($$ INSERT INTO chat.message (room_id, author_id, author_name, attachment_id) VALUES ('den', 'mallory', '', 1) $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.message (room_id, author_id, author_name, body) VALUES ('den', 'ada', 'Ada', 'I quit') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.attachment (room_id, uploader_id, name, content_type, size, state, url)
                               VALUES ('den', 'mallory', 'a.pdf', 'application/pdf', 1, 'stored', 'https://evil.example/a.pdf') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.attachment (room_id, uploader_id, name, content_type, size, data)
                               VALUES ('den', 'mallory', 'a.bin', 'application/octet-stream', 1, '\x00000000') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO chat.attachment (room_id, uploader_id, name, content_type, size, data)
                               VALUES ('den', 'mallory', 'a.bin', 'application/octet-stream', 300000, decode(repeat('00', 300000), 'hex')) $$);
-- the author's name is the server's, whatever she writes
INSERT INTO chat.message (room_id, author_id, author_name, body) VALUES ('den', 'mallory', 'Ada', 'hello');
SELECT author_id, author_name, body FROM chat.message;
RESET ROLE;

-- E. the job's function called directly on the victims' pending upload
--    finishes it as the job would, and tells nothing about it
SET ROLE app_user;
SELECT chat.store_upload('{"attachment_id": 1}', NULL) AS direct_call;
SELECT chat.store_upload('{"attachment_id": 1}', NULL) AS again, chat.store_upload('{"attachment_id": 2}', NULL) AS no_such;
SELECT count(*) AS blobs_she_sees FROM chat.blob;
SELECT * FROM pg_temp.show($$ SELECT chat.store_upload('{"attachment_id": "2; DROP TABLE chat.blob"}', NULL) $$);
RESET ROLE;
SELECT id, state, url FROM chat.attachment ORDER BY id;

-- F. huge and hostile payloads are refused by their size before any work on them
SET ROLE app_user;
SELECT api.add_member('den', 'mallory') IS NOT NULL AS ok;
SELECT chat.handle_in('room:den', 'new_msg', jsonb_build_object('body', repeat('x', 8000000))) AS huge_body;
-- 3,000 characters of 7 bytes (a letter and three combining marks): over the byte limit
SELECT chat.handle_in('room:den', 'new_msg', jsonb_build_object('body', repeat(e'a\u0301\u0301\u0301', 3000))) AS combining_marks;
SELECT chat.handle_in('room:den', 'attach', jsonb_build_object('name', 'x', 'content_type', 'a/b', 'data', repeat('QUFB', 2000000))) AS huge_data;
SELECT chat.handle_in('room:den', 'attach', jsonb_build_object('name', repeat('n', 1000000), 'content_type', repeat('t', 1000000), 'data', 'aGk=')) AS huge_fields;
SELECT chat.handle_in('room:den', repeat('e', 1000000), '{}') -> 'error' ->> 'reason' AS huge_event;
SELECT chat.handle_in('room:den', 'new_msg', '[1, 2, 3]') AS array_payload, chat.handle_in('room:den', 'new_msg', 'null') AS null_payload;
RESET ROLE;

-- G. grace, a member, cannot make herself an owner or remove the owner
SELECT pg_temp.claims('grace') IS NOT NULL AS as_grace;
SET ROLE app_user;
SELECT * FROM pg_temp.show($$ INSERT INTO chat.member (room_id, user_id, role) VALUES ('general', 'grace', 'owner') $$);
SELECT * FROM pg_temp.show($$ UPDATE chat.member SET role = 'owner' WHERE user_id = 'grace' $$);
SELECT * FROM pg_temp.show($$ SELECT api.remove_member('general', 'ada') $$);
SELECT count(*) AS den_visible FROM chat.message WHERE room_id = 'den';
RESET ROLE;
SELECT room_id, user_id, role FROM chat.member ORDER BY room_id, user_id;
SELECT user_id, name FROM chat.profile ORDER BY user_id;
SELECT pg_temp.claims(NULL) IS NOT NULL AS reset_claims;
SELECT pgapp.resume_queue('uploads');

--
-- example_chat: examples/chat.sql without the gateway.  The channel's
-- functions are called as pgapp-gateway calls them (one transaction, the
-- token's role, request.jwt.claims), the api functions as PostgREST does
-- (also request.method, so that errors come back as bodies with a status).
-- A second connection LISTENs to the room, as the gateway would.  The
-- uploads job is run by pgapp's workers; waiting for it is a bounded poll.
-- The attacks on the recipe are in test/security/sql/94_chat.sql.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- (quiet: CREATE SCHEMA IF NOT EXISTS api says that it exists)
SET client_min_messages = warning;
\i examples/chat.sql
RESET client_min_messages;
\i test/helpers/listener_helpers.sql
-- a request as the user sub: the gateway's (method NULL) or PostgREST's
CREATE FUNCTION pg_temp.req(sub text, method text DEFAULT NULL) RETURNS boolean LANGUAGE sql AS $$
    SELECT set_config('role', 'app_user', true) IS NOT NULL
       AND set_config('request.jwt.claims',
                      CASE WHEN sub IS NULL THEN '{"role": "app_user"}'
                           ELSE jsonb_build_object('role', 'app_user', 'sub', sub)::text END, true) IS NOT NULL
       AND set_config('request.method', coalesce(method, ''), true) IS NOT NULL
$$;
-- a message without its time (which varies)
CREATE FUNCTION pg_temp.untimed(reply jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE WHEN reply ? 'ok' AND reply -> 'ok' ? 'inserted_at'
                THEN jsonb_set(reply, '{ok}', (reply -> 'ok') - 'inserted_at') ELSE reply END
$$;
-- wait until the job is finished (at most 10 s)
CREATE FUNCTION pg_temp.wait_job(jid bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT state INTO st FROM pgapp.job WHERE id = jid;
        IF st IN ('completed', 'discarded', 'cancelled', 'retryable') THEN RETURN st; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % still % after 10 s', jid, st;
END $$;
\set ECHO all

SELECT pg_temp.listen('room:general');

-- Rooms through PostgREST: ada creates one (201, and she owns it), bad and
-- taken ids are 422 with field errors; she adds grace; grace, a mere
-- member, may not add anyone (403).
BEGIN;
SELECT pg_temp.req('ada', 'POST');
SELECT r - 'inserted_at' AS room, current_setting('response.status') AS status
  FROM api.create_room(id => 'general', name => 'General') AS r;
SELECT api.create_room(id => 'Not An Id!', name => ''), current_setting('response.status') AS status;
SELECT api.create_room(id => 'general', name => 'Again'), current_setting('response.status') AS status;
SELECT api.add_member(room => 'general', user_id => 'grace');
SELECT api.set_chat_name(name => '  Ada  '), current_setting('response.status') AS status;
SELECT api.set_chat_name(name => 'Ada L.'), current_setting('response.status') AS status;
SELECT api.set_chat_name(name => repeat('x', 65)), current_setting('response.status') AS status;
COMMIT;
BEGIN;
SELECT pg_temp.req('grace', 'POST');
SELECT api.set_chat_name(name => 'Grace') ->> 'name' AS name;
SELECT api.add_member(room => 'general', user_id => 'mallory'), current_setting('response.status') AS status;
COMMIT;
SELECT room_id, user_id, role FROM chat.member ORDER BY room_id, user_id;

-- Joining room:general: members get the room, themselves, the history
-- (empty) and who types; others are refused alike whether the room exists
-- or not; a token without sub is not a user.
BEGIN;
SELECT pg_temp.req('grace');
SELECT chat.join('room:general', '{}');
COMMIT;
BEGIN;
SELECT pg_temp.req('mallory');
SELECT chat.join('room:general', '{}') AS other_room, chat.join('room:nowhere', '{}') AS no_room,
       chat.join('lobby', '{}') AS not_a_room_topic;
SELECT pg_temp.req(NULL);
SELECT chat.join('room:general', '{}') AS no_sub;
ROLLBACK;

-- new_msg: stored (trimmed by the changeset), answered with the message,
-- and broadcast (outside the gateway broadcast_from is a broadcast) with
-- the author's name; a bad body gets the field's errors, nothing stored.
BEGIN;
SELECT pg_temp.req('grace');
SELECT pg_temp.untimed(chat.handle_in('room:general', 'new_msg', '{"body": "  Hello, Ada!  "}'));
SELECT chat.handle_in('room:general', 'new_msg', '{"body": "   "}') AS blank,
       chat.handle_in('room:general', 'new_msg', '{}') AS missing,
       chat.handle_in('room:general', 'new_msg', '{"body": ["a"]}') AS not_text;
SELECT chat.handle_in('room:general', 'new_msg', jsonb_build_object('body', repeat('é', 5001))) AS too_long,
       chat.handle_in('room:general', 'new_msg', jsonb_build_object('body', repeat('x', 3000000))) AS far_too_long;
-- 5,000 characters (of 2 bytes each, 3 code points for the last: one grapheme) pass
SELECT char_length(chat.handle_in('room:general', 'new_msg',
           jsonb_build_object('body', repeat('é', 4999) || e'e\u0301\u0301')) -> 'ok' ->> 'body') AS code_points;
SELECT chat.handle_in('room:general', 'shout', '{}') AS unknown_event,
       chat.handle_in('room:general', 'new_msg', '"not an object"') AS not_an_object;
COMMIT;
SELECT id, room_id, author_id, author_name, left(body, 20) AS body, attachment_id FROM chat.message ORDER BY id;
SELECT pg_temp.wait_for('new_msg', 2);
SELECT channel, message FROM pg_temp.received('{inserted_at,body}');

-- At most 10 messages per second per user: the 11th within the second is
-- refused with the reason and when to retry; it is not stored.
INSERT INTO chat.member (room_id, user_id) VALUES ('general', 'flooder');
BEGIN;
SELECT pg_temp.req('flooder');
SELECT i, chat.handle_in('room:general', 'new_msg', jsonb_build_object('body', 'flood ' || i)) -> 'error' AS error
  FROM generate_series(1, 11) AS i;
COMMIT;
SELECT count(*) AS stored FROM chat.message WHERE author_id = 'flooder';
SELECT pg_temp.wait_for('new_msg', 10);
SELECT count(*) AS broadcast FROM pg_temp.received();

-- typing: pgapp.typing under the user's id (the gateway does not echo it
-- to the typist; typing_stopped follows 3 s after the last push)
BEGIN;
SELECT pg_temp.req('ada');
SELECT chat.handle_in('room:general', 'typing', '{}') AS typing;
SELECT pgapp.typing_list('room:general') AS typing_now;
COMMIT;
SELECT pg_temp.wait_for('typing');
SELECT channel, message FROM pg_temp.received();

-- Attachments: checked, kept pending, posted, and stored by a job on the
-- uploads queue, which broadcasts "attachment" with the URL.
BEGIN;
SELECT pg_temp.req('ada');
SELECT pg_temp.untimed(chat.handle_in('room:general', 'attach', jsonb_build_object(
           'name', 'résumé 2024.txt', 'content_type', 'Text/Plain',
           'data', encode(convert_to('Curriculum vitae', 'UTF8'), 'base64'), 'body', ' my CV ')));
COMMIT;
SELECT id AS upload_job FROM pgapp.job WHERE queue = 'uploads' \gset
SELECT queue, worker, args, max_attempts FROM pgapp.job WHERE id = :upload_job;
SELECT pg_temp.wait_job(:upload_job) AS job;
SELECT state, result FROM pgapp.job WHERE id = :upload_job;
SELECT key, attachment_id, room_id, content_type, convert_from(data, 'UTF8') AS data FROM chat.blob;
SELECT id, state, url, data IS NULL AS emptied, size FROM chat.attachment;
SELECT pg_temp.wait_for('attachment');
SELECT channel, message FROM pg_temp.received('{inserted_at}');
-- the stored file through PostgREST: its room's members only (404 for others)
BEGIN;
SELECT pg_temp.req('grace', 'GET');
SELECT convert_from(api.attachment(1), 'UTF8') AS grace_gets;
SELECT pg_temp.req('mallory', 'GET');
SELECT api.attachment(1) IS NULL AS mallory_gets_nothing, current_setting('response.status') AS status;
ROLLBACK;
-- the job again (a retry, or a direct call) stores nothing twice
SELECT chat.store_upload('{"attachment_id": 1}', NULL) AS again;

-- Refused attachments, every field's error at once; nothing kept, no job.
-- The data is strict base64 (RFC 4648: padded, no line breaks or spaces).
-- (More pushes than the message rate allows in a second: a higher rate
-- for them, which is another bucket of the limiter.)
UPDATE chat.settings SET messages_per_second = 100;
BEGIN;
SELECT pg_temp.req('ada');
SELECT chat.handle_in('room:general', 'attach', jsonb_build_object('name', 'big.bin', 'content_type', 'application/octet-stream',
           'data', encode(convert_to(repeat('x', 262145), 'UTF8'), 'base64'))) AS over_256_kb;
SELECT chat.handle_in('room:general', 'attach', jsonb_build_object('name', 'big.bin', 'content_type', 'application/octet-stream',
           'data', repeat('A', 10000000))) AS far_over;
SELECT to_jsonb(d) AS data, chat.handle_in('room:general', 'attach',
                      jsonb_build_object('name', 'a.txt', 'content_type', 'text/plain', 'data', d)) -> 'error' AS error
  FROM unnest(ARRAY['aGVsbG8', 'aGVs bG8=', e'aGVs\nbG8=', 'aGVsbG8*', '====', 'aGVsbG8===', '']) AS d;
SELECT chat.handle_in('room:general', 'attach', '{"name": "../../etc/passwd", "content_type": "text", "data": 12}') AS bad_fields,
       chat.handle_in('room:general', 'attach', '{"name": "..", "content_type": "text/plain", "data": "aGk=",
                                                  "body": ["a caption"]}') AS dot_dot;
SELECT chat.handle_in('room:general', 'attach', jsonb_build_object('name', repeat('n', 256), 'content_type', 'text/plain',
           'data', 'aGk=', 'body', repeat('c', 5001))) AS long_name_and_caption;
COMMIT;
UPDATE chat.settings SET messages_per_second = DEFAULT;
SELECT (SELECT count(*) FROM chat.attachment) AS attachments, (SELECT count(*) FROM pgapp.job WHERE queue = 'uploads') AS jobs;
-- exactly 256 kB is accepted; past a user's quota is not
UPDATE chat.settings SET max_user_upload_bytes = 262144 + 16;
BEGIN;
SELECT pg_temp.req('ada');
SELECT chat.handle_in('room:general', 'attach', jsonb_build_object('name', 'exactly.bin', 'content_type', 'application/octet-stream',
           'data', translate(encode(convert_to(repeat('x', 262144), 'UTF8'), 'base64'), e'\n', ''))) -> 'ok' -> 'attachment' AS at_the_cap;
SELECT chat.handle_in('room:general', 'attach', '{"name": "one.txt", "content_type": "text/plain", "data": "aGk="}') AS over_quota;
COMMIT;
UPDATE chat.settings SET max_user_upload_bytes = DEFAULT;

-- History: the last 50 messages, oldest first; older pages through PostgREST.
INSERT INTO chat.message (room_id, author_id, author_name, body)
SELECT 'general', 'ada', '', 'message ' || i FROM generate_series(1, 60) AS i;
BEGIN;
SELECT pg_temp.req('grace');
SELECT jsonb_array_length(j -> 'ok' -> 'messages') AS messages,
       j -> 'ok' -> 'messages' -> 0 ->> 'body' AS first, j -> 'ok' -> 'messages' -> 49 ->> 'body' AS last,
       j -> 'ok' -> 'messages' -> 49 -> 'author' AS author
  FROM chat.join('room:general', '{}') AS j;
SELECT pg_temp.req('grace', 'GET');
SELECT jsonb_array_length(p) AS messages, p -> 0 ->> 'body' AS first, p -> -1 ->> 'body' AS last
  FROM api.room_messages(room => 'general', before => (SELECT min(id) FROM chat.message WHERE body = 'message 11')) AS p;
ROLLBACK;

-- Leaving: grace leaves (she may remove herself, not others); then she
-- can no longer join, post or read.
BEGIN;
SELECT pg_temp.req('grace', 'POST');
SELECT api.remove_member(room => 'general', user_id => 'ada'), current_setting('response.status') AS status;
SELECT api.remove_member(room => 'general', user_id => 'grace');
SELECT pg_temp.req('grace');
SELECT chat.join('room:general', '{}') AS join, chat.handle_in('room:general', 'new_msg', '{"body": "still here?"}') AS push,
       chat.history('general') AS history, (SELECT count(*) FROM chat.message) AS visible;
ROLLBACK;

SELECT dblink_disconnect('listener');

--
-- pubsub: broadcast on LISTEN/NOTIFY, received by a second connection
-- (dblink) that LISTENs (test/helpers/listener_helpers.sql).
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/listener_helpers.sql
\set ECHO all

-- topics and channels: up to 63 bytes the topic is the channel, else 'pgapp:' || md5(topic)
SELECT pgapp.channel('orders:new') AS short_topic;
SELECT pgapp.channel(repeat('t', 64)) = 'pgapp:' || md5(repeat('t', 64)) AS long_topic_hashed;
SELECT pg_temp.listen('orders:new') AS channel, pg_temp.listen(repeat('t', 64)) = pgapp.channel(repeat('t', 64)) AS long_ok;

-- delivered at commit as {"topic", "event", "payload", "id", "at"}
SELECT pgapp.broadcast('orders:new', 'created', '{"order_id": 7}');
SELECT pg_temp.wait_for('created');
SELECT * FROM pg_temp.received();
-- a rolled-back transaction, or a rolled-back subtransaction, sends nothing
BEGIN;
SELECT pgapp.broadcast('orders:new', 'never', '{}');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT pgapp.broadcast('orders:new', 'never either', '{}');
ROLLBACK TO SAVEPOINT s;
SELECT pgapp.broadcast('orders:new', 'kept', '{}');
COMMIT;
SELECT pgapp.broadcast('orders:new', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received();
-- a topic too long for a channel name travels on its hashed channel
SELECT pgapp.broadcast(repeat('t', 64), 'long topic', '{}');
SELECT pg_temp.wait_for('long topic');
SELECT channel = pgapp.channel(repeat('t', 64)) AS on_hashed_channel, message ->> 'topic' = repeat('t', 64) AS full_topic
  FROM pg_temp.received();
-- the id is a time-ordered UUID (version 7)
SELECT pgapp.broadcast('orders:new', 'with id', '{}');
SELECT pg_temp.wait_for('with id');
SELECT (message ->> 'id')::uuid IS NOT NULL AS is_uuid, substr(message ->> 'id', 15, 1) AS version,
       (message ->> 'at')::timestamptz BETWEEN now() - interval '1 minute' AND clock_timestamp() AS recent
  FROM got;
DELETE FROM got;

-- a payload too large for NOTIFY (8000 bytes) is stored; the notification carries a reference
SELECT pgapp.broadcast('orders:new', 'big', jsonb_build_object('blob', repeat('x', 10000)));
SELECT pg_temp.wait_for('big');
SELECT message - 'id' - 'at' - 'size' AS reference, (message ->> 'size')::int > 10000 AS size_of_the_whole FROM got;
SELECT m - 'id' - 'at' - 'payload' AS stored, length(m -> 'payload' ->> 'blob') AS blob_length,
       m ->> 'id' = (SELECT message ->> 'id' FROM got) AS same_id
  FROM pgapp.message((SELECT (message ->> 'id')::uuid FROM got)) AS m;
DELETE FROM got;
-- and cannot be sent from a read-only transaction, which cannot store it
BEGIN READ ONLY;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('orders:new', 'big', jsonb_build_object('blob', repeat('x', 10000))) $$);
-- small messages are fine there (NOTIFY needs no write)
SELECT pgapp.broadcast('orders:new', 'from a read-only transaction', '{}');
COMMIT;
SELECT pg_temp.wait_for('from a read-only transaction');
SELECT * FROM pg_temp.received();

-- outbox mode: recorded before commit, sent by the database's "pgapp pubsub" worker
SELECT pgapp.broadcast('orders:new', 'via outbox 1', '{"n": 1}', mode => 'outbox');
BEGIN;
SELECT pgapp.broadcast('orders:new', 'via outbox 2', '{"n": 2}', mode => 'outbox');
SELECT pgapp.broadcast('orders:new', 'via outbox 3', '{"n": 3}', mode => 'outbox');
SELECT count(*) AS written_before_commit FROM pgapp.outbox WHERE event IN ('via outbox 2', 'via outbox 3');
COMMIT;
SELECT pg_temp.wait_for('via outbox 3');
SELECT * FROM pg_temp.received();
-- the worker counts a batch after its commit, which the listener may see first
SELECT pg_temp.wait_until($$ SELECT delivered >= 3 FROM pgapp.pubsub_outbox $$);
SELECT pending, worker_state, delivered >= 3 AS delivered, last_delivery IS NOT NULL AS has_delivered
  FROM pgapp.pubsub_outbox;
SELECT count(*) AS worker_processes FROM pg_stat_activity WHERE backend_type = 'pgapp pubsub';
-- nothing from a rolled-back transaction or subtransaction either
BEGIN;
SELECT pgapp.broadcast('orders:new', 'outbox never', '{}', mode => 'outbox');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT pgapp.broadcast('orders:new', 'outbox never either', '{}', mode => 'outbox');
ROLLBACK TO SAVEPOINT s;
SAVEPOINT t;
SELECT pgapp.broadcast('orders:new', 'outbox kept', '{}', mode => 'outbox');
RELEASE SAVEPOINT t;
COMMIT;
SELECT pgapp.broadcast('orders:new', 'outbox marker', '{}', mode => 'outbox');
SELECT pg_temp.wait_for('outbox marker');
SELECT * FROM pg_temp.received();
-- a message of a released savepoint survives a later sibling savepoint that
-- rolls back (it is handed to the parent, core/xact_defer); the sibling's
-- message does not; the same with PL/pgSQL blocks that catch an error
BEGIN;
SAVEPOINT a;
SELECT pgapp.broadcast('orders:new', 'released, then a sibling rolled back', '{}', mode => 'outbox');
RELEASE SAVEPOINT a;
SAVEPOINT b;
SELECT pgapp.broadcast('orders:new', 'in the rolled-back sibling', '{}', mode => 'outbox');
ROLLBACK TO SAVEPOINT b;
DO $$
BEGIN
    BEGIN
        PERFORM pgapp.broadcast('orders:new', 'block that ended well', '{}', mode => 'outbox');
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
    BEGIN
        PERFORM pgapp.broadcast('orders:new', 'block that failed', '{}', mode => 'outbox');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
END
$$;
COMMIT;
SELECT pgapp.broadcast('orders:new', 'sibling marker', '{}', mode => 'outbox');
SELECT pg_temp.wait_for('sibling marker');
SELECT * FROM pg_temp.received();
-- outbox order is commit order: a transaction that broadcasts first but commits last comes last
SELECT dblink_connect('writer', format('host=%s port=%s dbname=%s',
    split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
    current_database())) AS connected;
SELECT dblink_exec('writer', 'BEGIN');
SELECT * FROM dblink('writer', $$SELECT pgapp.broadcast('orders:new', 'made first, committed second', '{}', mode => 'outbox')::text$$) AS t(x text);
SELECT pgapp.broadcast('orders:new', 'made second, committed first', '{}', mode => 'outbox');
SELECT dblink_exec('writer', 'COMMIT');
SELECT pg_temp.wait_for('made first, committed second');
SELECT * FROM pg_temp.received();
SELECT dblink_disconnect('writer');
-- auto mode: the outbox when the transaction writes, NOTIFY directly when it does not
CREATE TABLE pubsub_notes (id int PRIMARY KEY, body text);
SELECT pg_temp.wait_until($$ SELECT pending = 0 AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pgapp pubsub' AND state = 'active') FROM pgapp.pubsub_outbox $$);
SELECT delivered AS delivered_before FROM pgapp.pubsub_outbox \gset
BEGIN;
INSERT INTO pubsub_notes VALUES (1, 'x');
SELECT pgapp.broadcast('orders:new', 'auto in a writer', '{}');
COMMIT;
SELECT pg_temp.wait_for('auto in a writer');
SELECT pgapp.broadcast('orders:new', 'auto in a reader', '{}');
SELECT pg_temp.wait_for('auto in a reader');
SELECT * FROM pg_temp.received();
SELECT pg_temp.wait_until($$ SELECT pending = 0 AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pgapp pubsub' AND state = 'active') FROM pgapp.pubsub_outbox $$);
SELECT delivered - :delivered_before AS sent_by_the_worker FROM pgapp.pubsub_outbox;

-- row changes: broadcast_changes attaches a trigger (outbox mode by default)
SELECT pgapp.broadcast_changes('pubsub_notes', 'notes:%{id}');
SELECT pg_temp.listen('notes:2');
INSERT INTO pubsub_notes VALUES (2, 'first');
UPDATE pubsub_notes SET body = 'second' WHERE id = 2;
DELETE FROM pubsub_notes WHERE id = 2;
SELECT pg_temp.wait_for('deleted');
SELECT * FROM pg_temp.received();
-- changes_only: the key and what changed; an update that changes nothing says nothing
ALTER TABLE pubsub_notes ADD COLUMN tag text;
SELECT pgapp.broadcast_changes('pubsub_notes', 'notes:%{id}', changes_only => true, mode => 'direct');
INSERT INTO pubsub_notes VALUES (2, 'one', 'a');
UPDATE pubsub_notes SET body = 'two' WHERE id = 2;
UPDATE pubsub_notes SET body = 'two' WHERE id = 2;
UPDATE pubsub_notes SET tag = 'b', body = 'three' WHERE id = 2;
SELECT pgapp.broadcast('notes:2', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received();
SELECT tgname, replace(encode(tgargs, 'escape'), '\000', ' | ') AS tgargs FROM pg_trigger WHERE tgrelid = 'pubsub_notes'::regclass;
-- only some events, and only some columns in the payload (tag stays private)
SELECT pgapp.broadcast_changes('pubsub_notes', 'notes:%{id}', mode => 'direct', events => ARRAY['insert', 'delete'],
                               columns => ARRAY['id', 'body']);
SELECT pg_get_triggerdef(oid) ~ 'AFTER INSERT OR DELETE' AS insert_and_delete_only FROM pg_trigger WHERE tgrelid = 'pubsub_notes'::regclass;
SELECT pg_temp.listen('notes:3');
INSERT INTO pubsub_notes VALUES (3, 'visible', 'private');
UPDATE pubsub_notes SET body = 'unheard update' WHERE id = 3;
DELETE FROM pubsub_notes WHERE id = 3;
SELECT pgapp.broadcast('notes:3', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received();
SELECT pgapp.stop_broadcast_changes('pubsub_notes') AS stopped, pgapp.stop_broadcast_changes('pubsub_notes') AS again;
UPDATE pubsub_notes SET body = 'unheard' WHERE id = 2;
SELECT pgapp.broadcast('notes:2', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received();

-- presence: metas per key, announced as one coalesced presence_diff per topic
SELECT pg_temp.listen('room:1');
-- (in one transaction, so that one round of the worker announces them together)
BEGIN;
SELECT pgapp.presence_track('room:1', 'alice', '{"device": "phone"}') AS alice_phone \gset
SELECT pgapp.presence_track('room:1', 'alice', '{"device": "laptop"}') AS alice_laptop \gset
SELECT pgapp.presence_track('room:1', 'bob', '{"device": "web"}', ttl => '4 seconds') AS bob \gset
-- presence_list is the state as the last round announced it: nobody yet
SELECT pgapp.presence_list('room:1') AS before_the_round;
COMMIT;
SELECT pg_temp.wait_for('presence_diff');
SELECT key, jsonb_array_length(value -> 'metas') AS metas,
       (SELECT array_agg(m ->> 'device' ORDER BY m ->> 'device') FROM jsonb_array_elements(value -> 'metas') AS m) AS devices
  FROM jsonb_each(pgapp.presence_list('room:1')) ORDER BY key;
SELECT channel, message -> 'payload' -> 'leaves' AS leaves,
       (SELECT jsonb_object_agg(k, (SELECT jsonb_agg(m - 'phx_ref' ORDER BY m ->> 'device') FROM jsonb_array_elements(v -> 'metas') AS m))
          FROM jsonb_each(message -> 'payload' -> 'joins') AS j(k, v)) AS joins
  FROM pg_temp.received();
-- every meta carries its ref as phx_ref, as Phoenix's do
SELECT count(*) AS refs_match FROM jsonb_array_elements(pgapp.presence_list('room:1') -> 'alice' -> 'metas') AS m
 WHERE (m ->> 'phx_ref')::uuid IN (:'alice_phone', :'alice_laptop');
-- bob's ttl lapses (no untrack): the worker makes him leave
SELECT pg_temp.wait_for('presence_diff');
SELECT message -> 'payload' -> 'joins' AS joins, jsonb_object_keys(message -> 'payload' -> 'leaves') AS left
  FROM pg_temp.received();
-- renewing changes nothing visible; changing a meta is a leave of the old and a join of the new
SELECT pgapp.presence_track('room:1', 'alice', '{"device": "laptop"}', ref => :'alice_laptop') = :'alice_laptop' AS renewed;
SELECT pgapp.presence_track('room:1', 'alice', '{"device": "phone", "status": "away"}', ref => :'alice_phone') = :'alice_phone' AS changed;
SELECT pg_temp.wait_for('presence_diff');
-- (as Phoenix does, the new version has a new phx_ref and names the old one in phx_ref_prev)
SELECT (SELECT jsonb_agg(m - 'phx_ref' - 'phx_ref_prev') FROM jsonb_array_elements(message -> 'payload' -> 'joins' -> 'alice' -> 'metas') AS m) AS joined,
       (SELECT jsonb_agg(m - 'phx_ref') FROM jsonb_array_elements(message -> 'payload' -> 'leaves' -> 'alice' -> 'metas') AS m) AS left,
       message -> 'payload' -> 'joins' -> 'alice' -> 'metas' -> 0 ->> 'phx_ref' = :'alice_phone' || '.1' AS new_ref,
       message -> 'payload' -> 'joins' -> 'alice' -> 'metas' -> 0 ->> 'phx_ref_prev' = :'alice_phone' AS names_the_old,
       message -> 'payload' -> 'leaves' -> 'alice' -> 'metas' -> 0 ->> 'phx_ref' = :'alice_phone' AS old_ref_leaves
  FROM pg_temp.received();
SELECT count(*) AS listed_with_the_new_ref FROM jsonb_array_elements(pgapp.presence_list('room:1') -> 'alice' -> 'metas') AS m
 WHERE m ->> 'phx_ref' = :'alice_phone' || '.1';
-- a meta changed and changed back within one round is not announced (the round is run
-- here by hand, in the same transaction; the worker's round waits for it)
BEGIN;
SELECT pgapp.presence_track('room:1', 'alice', '{"device": "laptop", "status": "busy"}', ref => :'alice_laptop') IS NOT NULL AS changed;
SELECT pgapp.presence_track('room:1', 'alice', '{"device": "laptop"}', ref => :'alice_laptop') IS NOT NULL AS changed_back;
SELECT pgapp._presence_flush() AS topics_announced;
COMMIT;
-- a meta that comes and goes within one round is never announced
BEGIN;
SELECT pgapp.presence_track('room:1', 'carol', '{}') IS NOT NULL AS carol_came;
SELECT pgapp.presence_untrack('room:1', 'carol') AS carol_left;
SELECT pgapp.presence_untrack('room:1', 'alice', :'alice_laptop') AS one_meta_left;
COMMIT;
SELECT pg_temp.wait_for('presence_diff');
SELECT message -> 'payload' -> 'joins' AS joins,
       (SELECT jsonb_agg(m - 'phx_ref') FROM jsonb_array_elements(message -> 'payload' -> 'leaves' -> 'alice' -> 'metas') AS m) AS alice_left
  FROM pg_temp.received();
SELECT pgapp.presence_untrack('room:1', 'alice') AS rest_left, pgapp.presence_untrack('room:1', 'nobody') AS nothing;
SELECT pg_temp.wait_for('presence_diff');
SELECT jsonb_object_keys(message -> 'payload' -> 'leaves') AS left FROM pg_temp.received();
SELECT pgapp.presence_list('room:1') AS empty_room;

-- typing: typing at once, typing_stopped 3 s after the last call
SELECT pgapp.typing('room:1', 'dave');
SELECT pgapp.typing('room:1', 'dave');
SELECT pgapp.typing_list('room:1') AS typing_now;
SELECT pg_temp.wait_for('typing_stopped');
SELECT channel, message FROM pg_temp.received();
-- typing in a pgapp-gateway request: its "typing" names the socket that types
-- (the gateway does not send it back there); typing_stopped goes to everyone
BEGIN;
SELECT set_config('request.gateway.socket', '0123456789abcdef:7', true) IS NOT NULL AS in_a_request;
SELECT pgapp.typing('room:1', 'erin');
COMMIT;
SELECT pg_temp.wait_for('typing_stopped');
SELECT channel, message FROM pg_temp.received();

-- unsubscribe: nothing more on that topic
SELECT * FROM dblink('listener', $$SELECT pgapp.unsubscribe('notes:2')::text$$) AS t(x text);
SELECT pgapp.broadcast('notes:2', 'unheard', '{}');
SELECT pgapp.broadcast('orders:new', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received();

-- reserved topics and events: pgapp.broadcast refuses them (42501); pgapp's
-- own code sends them with pgapp._broadcast_system, which listeners receive
SELECT pg_temp.listen('jobs:77') AS channel;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('jobs:77', 'progress', '{"percent": 50}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:1', 'typing', '{"key": "x"}') $$);
SELECT pgapp._broadcast_system('jobs:77', 'progress', '{"id": 77, "percent": 50}', 'direct');
SELECT pg_temp.wait_for('progress');
SELECT channel, message FROM pg_temp.received();
SELECT * FROM dblink('listener', $$SELECT pgapp.unsubscribe('jobs:77')::text$$) AS t(x text);

-- limits (54000): payload, meta, ttl, metas per key
SET pgapp.pubsub_max_payload = '2kB';
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', jsonb_build_object('b', repeat('x', 3000))) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', jsonb_build_object('b', repeat('x', 3000)), mode => 'outbox') $$);
RESET pgapp.pubsub_max_payload;
SET pgapp.pubsub_presence_max_meta = 100;
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:1', 'k', jsonb_build_object('b', repeat('x', 100))) $$);
RESET pgapp.pubsub_presence_max_meta;
SET pgapp.pubsub_presence_max_ttl = '1min';
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:1', 'k', '{}', ttl => '61 seconds') $$);
RESET pgapp.pubsub_presence_max_ttl;
SET pgapp.pubsub_presence_max_metas = 2;
SELECT count(pgapp.presence_track('room:9', 'k', '{}')) AS two_metas FROM generate_series(1, 2);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:9', 'k', '{}') $$);
RESET pgapp.pubsub_presence_max_metas;
DELETE FROM pgapp.presence WHERE topic = 'room:9';

-- broadcast_from: outside a pgapp-gateway request it is broadcast (no sender);
-- inside one (request.gateway.socket set, as the gateway does) the envelope
-- names the socket the gateway must leave out, in direct and outbox mode and
-- in a stored message's reference alike
SELECT pg_temp.wait_until($$ SELECT pending = 0 AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pgapp pubsub' AND state = 'active') FROM pgapp.pubsub_outbox $$);
SELECT delivered AS delivered_before FROM pgapp.pubsub_outbox \gset
SELECT pgapp.broadcast_from('orders:new', 'from nowhere', '{"n": 1}');
BEGIN;
SELECT set_config('request.gateway.socket', '0123456789abcdef:42', true) IS NOT NULL AS in_a_request;
SELECT pgapp.broadcast_from('orders:new', 'from socket 42', '{"n": 2}');
COMMIT;
BEGIN;
SELECT set_config('request.gateway.socket', '0123456789abcdef:43', true) IS NOT NULL AS in_a_request;
CREATE TEMP TABLE pubsub_write (x int);
INSERT INTO pubsub_write VALUES (1);   -- a writing transaction: auto mode takes the outbox
SELECT pgapp.broadcast_from('orders:new', 'from socket 43 via the outbox', '{"n": 3}');
COMMIT;
SELECT pg_temp.wait_for('from socket 43 via the outbox');
SELECT * FROM pg_temp.received();
SELECT pg_temp.wait_until($$ SELECT pending = 0 AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pgapp pubsub' AND state = 'active') FROM pgapp.pubsub_outbox $$);
SELECT delivered - :delivered_before AS sent_by_the_worker FROM pgapp.pubsub_outbox;
BEGIN;
SELECT set_config('request.gateway.socket', '0123456789abcdef:44', true) IS NOT NULL AS in_a_request;
SELECT pgapp.broadcast_from('orders:new', 'big from 44', jsonb_build_object('blob', repeat('x', 10000)));
COMMIT;
SELECT pg_temp.wait_for('big from 44');
SELECT message - 'id' - 'at' - 'size' AS reference FROM got;
DELETE FROM got;
-- the setting only ever has the gateway's shape; anything else is refused
BEGIN;
SELECT set_config('request.gateway.socket', 'someone else', true) IS NOT NULL AS forged;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('orders:new', 'e', '{}') $$);
ROLLBACK;
BEGIN;
SELECT set_config('request.gateway.socket', '0123456789ABCDEF:1', true) IS NOT NULL AS forged;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('orders:new', 'e', '{}') $$);
ROLLBACK;
BEGIN;
SELECT set_config('request.gateway.socket', '0123456789abcdef:' || repeat('9', 21), true) IS NOT NULL AS forged;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('orders:new', 'e', '{}') $$);
ROLLBACK;
-- and broadcast's checks: reserved events and topics, sizes, objects
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('orders:new', 'presence_diff', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('jobs:1', 'progress', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('orders:new', 'e', '[1]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('', 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_from('t', NULL, '{}') $$);
-- NULL payload: {}
SELECT pgapp.broadcast_from('orders:new', 'null payload', NULL);
SELECT pg_temp.wait_for('null payload');
SELECT * FROM pg_temp.received();

-- bad input
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('', 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast(repeat('t', 256), 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast(NULL, 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('pgapp:' || md5(repeat('t', 64)), 'e', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', '', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', repeat('e', 64), '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', '[1, 2]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', '"text"') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', '{}', mode => 'carrier pigeon') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.subscribe('') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.message('00000000-0000-7000-8000-000000000000') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.message(NULL) $$);
BEGIN READ ONLY;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', '{}', mode => 'outbox') $$);
ROLLBACK;
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:1', 'k', '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:1', 'k', '{}', ttl => '-5 seconds') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:1', '', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track(repeat('r', 256), 'k', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('pgapp:' || md5('x'), 'k', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_list(NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.typing('room:1', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.typing_list(NULL) $$);
SELECT count(*) AS nothing_tracked FROM pgapp.presence;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', 'notes:%{nope}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', '') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', 'n', events => ARRAY['truncate']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', 'n', events => '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', 'n', columns => ARRAY['id', 'secret']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', 'n', mode => 'fast') $$);
CREATE VIEW pubsub_notes_view AS SELECT * FROM pubsub_notes;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes_view', 'n') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._broadcast_changes() $$);
SELECT count(*) AS no_trigger_left FROM pg_trigger WHERE tgrelid = 'pubsub_notes'::regclass;

-- privileges: everyone may broadcast, subscribe and read messages; outbox and
-- row-change triggers are for pgapp_admin (and the table's owner)
CREATE ROLE ps_user;
GRANT ALL ON pubsub_notes TO ps_user;
SET ROLE ps_user;
SELECT count(*) AS can_broadcast FROM (SELECT pgapp.broadcast('orders:new', 'from a plain role', '{}')) AS s;
SELECT pgapp.presence_track('room:2', 'ps_user', '{}') IS NOT NULL AS can_track;
RESET ROLE;
SELECT pgapp._presence_flush() >= 0 AS round_run;
SET ROLE ps_user;
SELECT pgapp.presence_list('room:2') ? 'ps_user' AS can_list;
SELECT * FROM pg_temp.show($$ SELECT * FROM pgapp.presence $$);
SELECT * FROM pg_temp.show($$ SELECT * FROM pgapp.outbox $$);
SELECT * FROM pg_temp.show($$ SELECT * FROM pgapp.message $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast_changes('pubsub_notes', 'n') $$);
RESET ROLE;
DROP VIEW pubsub_notes_view;
DROP TABLE pubsub_notes;
DROP ROLE ps_user;
SELECT dblink_disconnect('listener');

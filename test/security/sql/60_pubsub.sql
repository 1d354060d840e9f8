--
-- security/60_pubsub: attacks on PubSub and presence, replayed as
-- sec_attacker (only PUBLIC's rights) against sec_victim's presence and the
-- topics and events pgapp itself sends on.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SET pgapp.pubsub_fixed_envelope = on;

-- the victim is present on room:sec as 'victim', and types there
SET ROLE sec_victim;
SELECT pgapp.presence_track('room:sec', 'victim', '{"device": "phone"}', ttl => '1 minute') AS victim_ref \gset
SELECT pgapp.typing('room:sec', 'victim');
RESET ROLE;

-- A. Presence belongs to the role that tracked it (42501): the attacker can
--    neither untrack it, renew it, change its meta, track as the same key,
--    nor type as that key
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_untrack('room:sec', 'victim') $$);
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.presence_untrack('room:sec', 'victim', %L) $$, :'victim_ref'));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.presence_track('room:sec', 'victim', '{"device": "phone"}', ttl => '1 minute', ref => %L) $$, :'victim_ref'));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.presence_track('room:sec', 'victim', '{"device": "evil"}', ref => %L) $$, :'victim_ref'));
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:sec', 'victim', '{"device": "evil"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.typing('room:sec', 'victim') $$);
RESET ROLE;
-- the victim's presence is intact: one meta, its own, not renewed for a day
SELECT key, meta, role::regrole AS role, expires_at < now() + interval '2 minutes' AS short_ttl
  FROM pgapp.presence WHERE topic = 'room:sec';
SELECT key, role::regrole AS role FROM pgapp.typing WHERE topic = 'room:sec';

-- B. Reserved topics and events are pgapp's own (42501): jobs progress, job
--    queue wake-ups, PostgREST's channel, forged presence and typing events
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('jobs:1', 'progress', '{"id": 1, "percent": 100}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('pgapp_jobs:default', 'available', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('pgrst', 'reload', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:sec', 'presence_diff', '{"joins": {}, "leaves": {"victim": {"metas": []}}}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:sec', 'presence_state', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:sec', 'typing', '{"key": "victim"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:sec', 'typing_stopped', '{"key": "victim"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:sec', 'phx_reply', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:sec', 'presence_diff', '{}', mode => 'outbox') $$);
-- presence and typing on a reserved topic would make pgapp's worker send there
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('jobs:1', 'k', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.typing('pgapp_jobs:default', 'k') $$);
-- a row's value cannot steer a row-change trigger onto a reserved topic
RESET ROLE;
CREATE TABLE public.sec_rooms (id integer PRIMARY KEY, topic text NOT NULL);
SELECT pgapp.broadcast_changes('public.sec_rooms', '%{topic}');
GRANT INSERT ON public.sec_rooms TO sec_attacker;
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ INSERT INTO public.sec_rooms VALUES (1, 'jobs:1') $$);
SELECT * FROM pg_temp.show($$ INSERT INTO public.sec_rooms VALUES (2, 'room:ok') $$);
RESET ROLE;
DROP TABLE public.sec_rooms;
SET ROLE sec_attacker;
-- the internal path is not the attacker's
SELECT * FROM pg_temp.show($$ SELECT pgapp._broadcast_system('jobs:1', 'progress', '{}', 'direct') $$);
-- listening to a reserved topic stays allowed (clients follow job progress)
SELECT pgapp.subscribe('jobs:1') AS channel;
SELECT pgapp.unsubscribe('jobs:1');
RESET ROLE;

-- C. Sizes and lifetimes are capped (54000): a 32 MB broadcast (stored for
--    an hour), in direct and outbox mode, a 5 MB meta, a day-long ttl
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:x', 'big', jsonb_build_object('blob', repeat('x', 32 * 1024 * 1024))) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('room:x', 'big', jsonb_build_object('blob', repeat('x', 2 * 1024 * 1024)), mode => 'outbox') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:x', 'attacker', jsonb_build_object('blob', repeat('x', 5 * 1024 * 1024))) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:x', 'attacker', '{}', ttl => '1 day') $$);
-- the attacker cannot raise the limits or the retention for itself
SELECT * FROM pg_temp.show($$ SET pgapp.pubsub_max_payload = '1GB' $$);
SELECT * FROM pg_temp.show($$ SET pgapp.pubsub_presence_max_meta = '1GB' $$);
SELECT * FROM pg_temp.show($$ SET pgapp.pubsub_presence_max_ttl = '1d' $$);
SELECT * FROM pg_temp.show($$ SET pgapp.pubsub_retention = '7d' $$);
-- one key holds a bounded number of metas
SELECT count(pgapp.presence_track('room:x', 'many', '{}')) AS metas FROM generate_series(1, 64);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:x', 'many', '{}') $$);
RESET ROLE;
SELECT count(*) AS stored_messages FROM pgapp.message;

-- D. Errors do not echo large input: at most a 64-character prefix
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', to_jsonb(repeat('y', 140000))) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', 'e', '{}', mode => repeat('m', 140000)) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('t', repeat('e', 140000), '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:x', repeat('k', 140000), '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.presence_track('room:x', 'k', '{}', ttl => '-1 second') $$);
RESET ROLE;

-- E. Legitimate use still works: the attacker's own presence and topics
SET ROLE sec_attacker;
SELECT pgapp.presence_track('room:sec', 'attacker', '{"device": "web"}') AS attacker_ref \gset
SELECT pgapp.presence_track('room:sec', 'attacker', '{"device": "web", "status": "away"}', ref => :'attacker_ref') = :'attacker_ref' AS renewed_own;
SELECT pgapp.typing('room:sec', 'attacker');
SELECT pgapp.broadcast('room:sec', 'message', '{"text": "hello"}');
SELECT pgapp.broadcast('room:sec', 'big', jsonb_build_object('blob', repeat('x', 10000)));
SELECT pgapp.presence_untrack('room:sec', 'attacker') AS own_untracked;
RESET ROLE;
-- the victim renews and untracks its own presence
SET ROLE sec_victim;
SELECT pgapp.presence_track('room:sec', 'victim', '{"device": "phone"}', ref => :'victim_ref') = :'victim_ref' AS renewed;
SELECT pgapp.presence_untrack('room:sec', 'victim', :'victim_ref') AS untracked;
SELECT pgapp.presence_track('room:sec', 'victim', '{}') IS NOT NULL AS tracked_again;
SELECT pgapp.presence_track('room:free', 'victim', '{}') IS NOT NULL AS tracked_elsewhere;
RESET ROLE;
-- pgapp_admin may untrack anyone's presence (moderation)
SET ROLE sec_admin;
SELECT pgapp.presence_untrack('room:sec', 'victim') AS admin_untracked;
RESET ROLE;
-- once the victim has left, another role may take the key
SET ROLE sec_victim;
SELECT pgapp.presence_untrack('room:free', 'victim') AS left_room_free;
RESET ROLE;
SET ROLE sec_attacker;
SELECT pgapp.presence_track('room:free', 'victim', '{}') IS NOT NULL AS free_key_taken;
RESET ROLE;
SELECT key, role::regrole AS role FROM pgapp.presence WHERE topic = 'room:free' AND left_at IS NULL;
DELETE FROM pgapp.presence;
DELETE FROM pgapp.typing;

-- test/gateway/setup.sql: the database of the gateway suite (scripts/test gateway).
--
-- Roles as a PostgREST deployment has them: gw_authenticator logs in (the
-- gateway's connection) and may become gw_user, the role of the tokens;
-- gw_other is a role the authenticator may NOT become.  A room channel
-- whose join lets members in (the "gw_member" table, under row-level
-- security), refuses others with {"error": ...}, and whose handle_in
-- replies, broadcasts and fails on request.
CREATE EXTENSION IF NOT EXISTS pgapp;

CREATE ROLE gw_authenticator LOGIN NOINHERIT;
CREATE ROLE gw_user NOLOGIN;
CREATE ROLE gw_other NOLOGIN;
GRANT gw_user TO gw_authenticator;
-- another authenticator, whose sessions allow tokens no clock skew (the
-- token expiry test's gateway logs in as it)
CREATE ROLE gw_strict LOGIN NOINHERIT;
GRANT gw_user TO gw_strict;
ALTER ROLE gw_strict SET pgapp.auth_jwt_leeway = 0;

CREATE SCHEMA gw;
GRANT USAGE ON SCHEMA gw TO gw_user;

CREATE TABLE gw.member (room text NOT NULL, sub text NOT NULL, PRIMARY KEY (room, sub));
ALTER TABLE gw.member ENABLE ROW LEVEL SECURITY;
-- a token's user sees only their own memberships
CREATE POLICY own ON gw.member FOR SELECT TO gw_user
    USING (sub = current_setting('request.jwt.claims', true)::jsonb ->> 'sub');
GRANT SELECT ON gw.member TO gw_user;
INSERT INTO gw.member VALUES ('room:lobby', 'alice'), ('room:lobby', 'bob'), ('room:secret', 'alice');

CREATE TABLE gw.message (id bigserial PRIMARY KEY, room text NOT NULL, sub text NOT NULL, body text NOT NULL);
GRANT SELECT, INSERT ON gw.message TO gw_user;
GRANT USAGE ON SEQUENCE gw.message_id_seq TO gw_user;

-- join: members only; the reply says who joined as which role, and echoes the params
CREATE FUNCTION gw.room_join(topic text, params jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF params ? 'crash' THEN
        RAISE EXCEPTION 'join crashed on purpose';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM gw.member AS m WHERE m.room = topic) THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'not a member'));
    END IF;
    RETURN jsonb_build_object('ok', jsonb_build_object(
        'topic', topic, 'role', current_user,
        'sub', current_setting('request.jwt.claims', true)::jsonb ->> 'sub',
        'params', params));
END $$;

-- handle_in: "new_msg" stores and broadcasts; "echo" replies; "fail" errors;
-- "refuse" replies error; "silent" replies nothing (NULL); "shout_from",
-- "new_msg_from" and "big_from" broadcast_from (direct, outbox, stored);
-- "type" calls pgapp.typing; "limited" calls pgapp.rate_limit
CREATE FUNCTION gw.room_handle_in(topic text, event text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    sub text := current_setting('request.jwt.claims', true)::jsonb ->> 'sub';
    msg_id bigint;
BEGIN
    CASE event
    WHEN 'new_msg' THEN
        INSERT INTO gw.message (room, sub, body) VALUES (topic, sub, payload ->> 'body') RETURNING id INTO msg_id;
        PERFORM pgapp.broadcast(topic, 'new_msg', jsonb_build_object('id', msg_id, 'from', sub, 'body', payload ->> 'body'));
        RETURN jsonb_build_object('ok', jsonb_build_object('id', msg_id));
    WHEN 'shout_from' THEN
        -- no write: broadcast_from NOTIFYs in this transaction (direct)
        PERFORM pgapp.broadcast_from(topic, 'shout', payload);
        RETURN jsonb_build_object('ok', '{}'::jsonb);
    WHEN 'new_msg_from' THEN
        -- a write: broadcast_from goes through the outbox (auto mode)
        INSERT INTO gw.message (room, sub, body) VALUES (topic, sub, payload ->> 'body') RETURNING id INTO msg_id;
        PERFORM pgapp.broadcast_from(topic, 'new_msg', jsonb_build_object('id', msg_id, 'from', sub, 'body', payload ->> 'body'));
        RETURN jsonb_build_object('ok', jsonb_build_object('id', msg_id));
    WHEN 'big_from' THEN
        -- too large for NOTIFY: stored, sent by reference
        PERFORM pgapp.broadcast_from(topic, 'big', jsonb_build_object('pad', repeat('b', 10000)));
        RETURN jsonb_build_object('ok', '{}'::jsonb);
    WHEN 'limited' THEN
        -- the function's own limit: once per hour per user and key (PT429 after)
        PERFORM pgapp.rate_limit('gw-test:' || sub || ':' || coalesce(payload ->> 'key', ''), 1, 3600);
        RETURN jsonb_build_object('ok', '{}'::jsonb);
    WHEN 'type' THEN
        PERFORM pgapp.typing(topic, sub);
        RETURN jsonb_build_object('ok', '{}'::jsonb);
    WHEN 'echo' THEN
        RETURN jsonb_build_object('ok', jsonb_build_object('event', event, 'payload', payload, 'role', current_user));
    WHEN 'refuse' THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'refused'));
    WHEN 'fail' THEN
        RAISE EXCEPTION 'handle_in failed on purpose';
    ELSE
        RETURN NULL;
    END CASE;
END $$;

-- a public topic: everyone may join, no handle_in
CREATE FUNCTION gw.public_join(topic text, params jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', '{}'::jsonb) $$;

-- a presence channel: everyone may join; the meta is the params' "meta", else
-- {"device": params' device or "web"}; "refuse" in the params refuses
CREATE FUNCTION gw.pres_join(topic text, params jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT CASE WHEN params ? 'refuse'
                THEN jsonb_build_object('error', jsonb_build_object('reason', 'refused'))
                ELSE jsonb_build_object('ok', jsonb_build_object('topic', topic),
                                        'presence', coalesce(params -> 'meta', jsonb_build_object(
                                            'device', coalesce(params ->> 'device', 'web')))) END
$$;

GRANT EXECUTE ON FUNCTION gw.room_join(text, jsonb), gw.room_handle_in(text, text, jsonb),
    gw.public_join(text, jsonb), gw.pres_join(text, jsonb) TO gw_user;

SELECT pgapp.define_channel('room:*', 'gw.room_join(text, jsonb)', 'gw.room_handle_in(text, text, jsonb)');
SELECT pgapp.define_channel('news', 'gw.public_join(text, jsonb)');
SELECT pgapp.define_channel('pres:*', 'gw.pres_join(text, jsonb)', 'gw.room_handle_in(text, text, jsonb)',
                            presence => true);

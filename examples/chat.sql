-- examples/chat.sql: a chat over Phoenix Channels, served from PostgreSQL by
-- pgapp-gateway and built only on pgapp's public contract (docs/chat.md).
--
-- Rooms, memberships and messages in schema "chat".  Browsers use the
-- official phoenix client against pgapp-gateway:
--
--   socket = new Socket("/socket", {params: {token}})   the token of pgapp.login
--   channel = socket.channel("room:lobby")
--   channel.join()               members only: {room, user, messages (the last 50), typing};
--                                presence tracked by the gateway (key: the user's id, meta {name})
--   channel.push("new_msg", {body})                 -> ok: the message; others get "new_msg"
--   channel.push("typing", {})                      -> others get "typing", then "typing_stopped"
--   channel.push("attach", {name, content_type, data: base64, body?})
--                                                   -> ok: the message; everyone gets
--                                                      "attachment" once it is stored
--
-- and PostgREST for the rest (schema "api", app_user only):
--
--   POST /rpc/create_room    {"id": "lobby", "name": "Lobby"}     the caller becomes its owner
--   POST /rpc/add_member     {"room": "lobby", "user_id": "..."}  owners only
--   POST /rpc/remove_member  {"room": "lobby", "user_id": "..."}  owners, or oneself (leaving)
--   POST /rpc/set_chat_name  {"name": "Ada"}                      the name shown with one's messages
--   GET  /rpc/room_messages?room=lobby&before=120                 older history, 50 at a time
--   GET  /rpc/attachment?id=7  (Accept: application/octet-stream) a stored attachment's bytes
--
-- Who is who: the token's "sub" (pgapp.login puts the user's id there) read
-- with pgapp.token_claims(), as the gateway and PostgREST set it.  Every
-- function runs as the token's role (app_user), and row-level security
-- decides what it sees: a room, its members, messages and attachments are
-- visible to the room's members only, and a message can only be written by
-- a member, as itself.  So a non-member calling these functions (or
-- querying the tables) directly gets nothing and writes nothing.  "anon"
-- has no access to schema chat at all.
--
-- Messages: validated by the changeset chat_message (a body of 1 to 5,000
-- characters and at most 20,000 bytes; the field-keyed errors of
-- pgapp.insert's 422 body), at most 10 per second per user (pgapp's rate
-- limiter, sliding window), broadcast with pgapp.broadcast_from (everyone
-- but the sending socket, which gets the message in its reply) with the
-- author's name and the time.  Typing: pgapp.typing (the gateway does not
-- echo it to the sender; typing_stopped follows 3 s after the last push).
--
-- Attachments: "attach" checks the file (a name, a content type, strict
-- base64 of at most chat.settings.max_attachment_bytes, 256 kB), keeps it
-- in chat.attachment as pending, posts a message that references it, and
-- enqueues a job on the "uploads" queue; the job (chat.store_upload, run by
-- pgapp's workers) moves the bytes into chat.blob, which stands in for an
-- object store such as S3, and broadcasts "attachment" with the URL
-- /uploads/<id>/<name> (served by GET /rpc/attachment?id=<id>).
--
-- Load into a database that has CREATE EXTENSION pgapp (scripts/run does,
-- in one transaction).  The gateway's login role must be granted app_user
-- (docs/gateway.md, "The database role").

CREATE SCHEMA chat;
CREATE SCHEMA IF NOT EXISTS api;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        CREATE ROLE app_user NOLOGIN;
    END IF;
END
$$;

---------------------------------------------------------------------------
-- Tables
---------------------------------------------------------------------------

-- The limits, one row (pgapp_admin changes them).
CREATE TABLE chat.settings (
    id                      boolean PRIMARY KEY DEFAULT true CHECK (id),
    messages_per_second     integer NOT NULL DEFAULT 10 CHECK (messages_per_second BETWEEN 1 AND 1000),
    max_attachment_bytes    integer NOT NULL DEFAULT 262144 CHECK (max_attachment_bytes BETWEEN 1 AND 16777216),
    uploads_per_minute      integer NOT NULL DEFAULT 30 CHECK (uploads_per_minute BETWEEN 1 AND 10000),
    max_user_upload_bytes   bigint NOT NULL DEFAULT 10485760 CHECK (max_user_upload_bytes >= 0)
);
INSERT INTO chat.settings DEFAULT VALUES;

CREATE TABLE chat.room (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_by  text,
    inserted_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat.member (
    room_id     text NOT NULL REFERENCES chat.room ON DELETE CASCADE,
    user_id     text NOT NULL CHECK (octet_length(user_id) BETWEEN 1 AND 255),
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX member_user ON chat.member (user_id);

-- The name shown with a user's messages (set by the user: api.set_chat_name).
CREATE TABLE chat.profile (
    user_id     text PRIMARY KEY CHECK (octet_length(user_id) BETWEEN 1 AND 255),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64)
);

-- A file pushed with "attach": pending (its bytes in data) until the
-- uploads job has moved it into chat.blob (stored: url set, data NULL).
CREATE TABLE chat.attachment (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id      text NOT NULL REFERENCES chat.room ON DELETE CASCADE,
    uploader_id  text NOT NULL,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    content_type text NOT NULL CHECK (octet_length(content_type) BETWEEN 3 AND 127),
    size         integer NOT NULL CHECK (size BETWEEN 1 AND 16777216),
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'stored')),
    data         bytea,
    url          text,
    inserted_at  timestamptz NOT NULL DEFAULT now(),
    stored_at    timestamptz,
    CHECK (CASE state WHEN 'pending' THEN octet_length(data) = size AND url IS NULL
                      ELSE data IS NULL AND url IS NOT NULL END)
);
CREATE INDEX attachment_room ON chat.attachment (room_id);
CREATE INDEX attachment_uploader ON chat.attachment (uploader_id);

CREATE TABLE chat.message (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id       text NOT NULL REFERENCES chat.room ON DELETE CASCADE,
    author_id     text NOT NULL,
    author_name   text NOT NULL,
    body          text CHECK (octet_length(body) <= 20000),
    attachment_id bigint REFERENCES chat.attachment ON DELETE CASCADE,
    inserted_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (body IS NOT NULL OR attachment_id IS NOT NULL)
);
CREATE INDEX message_room ON chat.message (room_id, id);
CREATE INDEX message_attachment ON chat.message (attachment_id) WHERE attachment_id IS NOT NULL;

-- The object store stand-in: what S3 would hold, under the URL's key.
CREATE TABLE chat.blob (
    key           text PRIMARY KEY,
    attachment_id bigint NOT NULL UNIQUE REFERENCES chat.attachment ON DELETE CASCADE,
    room_id       text NOT NULL REFERENCES chat.room ON DELETE CASCADE,
    content_type  text NOT NULL,
    data          bytea NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blob_room ON chat.blob (room_id);

---------------------------------------------------------------------------
-- Who is asking
---------------------------------------------------------------------------

-- The caller: the token's sub (NULL without a token).
CREATE FUNCTION chat.current_user_id() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT NULLIF(pgapp.token_claims() ->> 'sub', '') $$;

-- The room of a topic: 'room:lobby' -> 'lobby' (NULL for other topics).
CREATE FUNCTION chat.topic_room(topic text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN topic LIKE 'room:%' THEN substr(topic, 6) END $$;

-- Membership tests for the policies.  SECURITY DEFINER so that a policy
-- on chat.member can read chat.member (no recursion); they answer only for
-- the caller.
CREATE FUNCTION chat.is_member(room text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM chat.member AS m
                    WHERE m.room_id = room AND m.user_id = chat.current_user_id())
$$;

CREATE FUNCTION chat.is_owner(room text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM chat.member AS m
                    WHERE m.room_id = room AND m.user_id = chat.current_user_id() AND m.role = 'owner')
$$;

-- The caller created the room (its first owner row).
CREATE FUNCTION chat.created_room(room text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM chat.room AS r
                    WHERE r.id = room AND r.created_by = chat.current_user_id())
$$;

-- The attachment is the caller's, pending, in that room: what a message may reference.
CREATE FUNCTION chat.own_attachment(attachment bigint, room text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM chat.attachment AS a
                    WHERE a.id = attachment AND a.room_id = room
                      AND a.uploader_id = chat.current_user_id() AND a.state = 'pending')
$$;

-- Bytes the caller has attached, in every room (left ones included).
CREATE FUNCTION chat.uploaded_bytes() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(a.size), 0)::bigint FROM chat.attachment AS a
     WHERE a.uploader_id = chat.current_user_id()
$$;

---------------------------------------------------------------------------
-- Row-level security: members only
---------------------------------------------------------------------------

ALTER TABLE chat.room ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.member ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.profile ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.attachment ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.message ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.blob ENABLE ROW LEVEL SECURITY;

CREATE POLICY room_read ON chat.room FOR SELECT TO app_user
    USING (chat.is_member(id) OR created_by = chat.current_user_id());
CREATE POLICY room_create ON chat.room FOR INSERT TO app_user
    WITH CHECK (created_by = chat.current_user_id());

CREATE POLICY member_read ON chat.member FOR SELECT TO app_user
    USING (chat.is_member(room_id));
-- owners add members; a room's creator adds itself as its first owner
CREATE POLICY member_add ON chat.member FOR INSERT TO app_user
    WITH CHECK (chat.is_owner(room_id)
                OR (user_id = chat.current_user_id() AND role = 'owner' AND chat.created_room(room_id)));
-- owners remove anyone; anyone leaves
CREATE POLICY member_remove ON chat.member FOR DELETE TO app_user
    USING (chat.is_owner(room_id) OR user_id = chat.current_user_id());

CREATE POLICY profile_own ON chat.profile FOR ALL TO app_user
    USING (user_id = chat.current_user_id())
    WITH CHECK (user_id = chat.current_user_id());

CREATE POLICY attachment_read ON chat.attachment FOR SELECT TO app_user
    USING (chat.is_member(room_id));
CREATE POLICY attachment_add ON chat.attachment FOR INSERT TO app_user
    WITH CHECK (uploader_id = chat.current_user_id() AND chat.is_member(room_id)
                AND state = 'pending' AND url IS NULL
                AND size <= (SELECT s.max_attachment_bytes FROM chat.settings AS s));

CREATE POLICY message_read ON chat.message FOR SELECT TO app_user
    USING (chat.is_member(room_id));
CREATE POLICY message_post ON chat.message FOR INSERT TO app_user
    WITH CHECK (author_id = chat.current_user_id() AND chat.is_member(room_id)
                AND (attachment_id IS NULL OR chat.own_attachment(attachment_id, room_id)));

CREATE POLICY blob_read ON chat.blob FOR SELECT TO app_user
    USING (chat.is_member(room_id));

-- A message carries its author's name as it was when it was written, from
-- chat.profile (else the token's "name" claim, else the start of the id);
-- whatever the writer put there is replaced.
CREATE FUNCTION chat.message_author() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.author_name := coalesce(
        (SELECT p.name FROM chat.profile AS p WHERE p.user_id = NEW.author_id),
        CASE WHEN NEW.author_id = chat.current_user_id()
             THEN NULLIF(left(pgapp.token_claims() ->> 'name', 64), '') END,
        'user ' || left(NEW.author_id, 8));
    RETURN NEW;
END
$$;
CREATE TRIGGER message_author BEFORE INSERT ON chat.message
    FOR EACH ROW EXECUTE FUNCTION chat.message_author();

---------------------------------------------------------------------------
-- Changesets
---------------------------------------------------------------------------

-- A message's body: the client sends only the body; the room and the
-- author are filled in by chat.handle_in.
SELECT pgapp.define_changeset('chat_message', 'chat.message',
    ARRAY['room_id', 'author_id', 'body'],
    '[{"required": ["body"]},
      {"length": "body", "max": 5000},
      {"length": "body", "max": 20000, "count": "bytes"}]');

SELECT pgapp.define_changeset('chat_room', 'chat.room',
    ARRAY['id', 'name', 'created_by'],
    '[{"required": ["id", "name"]},
      {"format": "id", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$", "message": "should be 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"},
      {"length": "name", "max": 100},
      {"unique_constraint": "id", "name": "room_pkey"}]');

SELECT pgapp.define_changeset('chat_profile', 'chat.profile',
    ARRAY['user_id', 'name'],
    '[{"required": ["name"]},
      {"length": "name", "max": 64}]');

---------------------------------------------------------------------------
-- JSON shapes
---------------------------------------------------------------------------

-- /uploads/<id>/<name>, the name percent-encoded (RFC 3986 unreserved characters kept).
CREATE FUNCTION chat.attachment_url(id bigint, name text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '/uploads/' || id || '/' || coalesce(string_agg(
               CASE WHEN b BETWEEN 48 AND 57 OR b BETWEEN 65 AND 90 OR b BETWEEN 97 AND 122
                         OR b IN (45, 46, 95, 126)
                    THEN chr(b) ELSE '%' || upper(lpad(to_hex(b), 2, '0')) END, '' ORDER BY i), '')
      FROM (SELECT i, get_byte(convert_to(name, 'UTF8'), i) AS b
              FROM generate_series(0, octet_length(convert_to(name, 'UTF8')) - 1) AS i) AS bytes
$$;

CREATE FUNCTION chat.attachment_json(a chat.attachment) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('id', a.id, 'name', a.name, 'content_type', a.content_type,
                              'size', a.size, 'state', a.state, 'url', a.url)
$$;

-- A message as clients get it: {id, body, author: {id, name}, inserted_at, attachment}.
CREATE FUNCTION chat.message_json(m chat.message) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', m.id, 'body', m.body,
        'author', jsonb_build_object('id', m.author_id, 'name', m.author_name),
        'inserted_at', m.inserted_at,
        'attachment', (SELECT chat.attachment_json(a) FROM chat.attachment AS a WHERE a.id = m.attachment_id))
$$;

-- The last n messages of a room the caller can see, oldest first.
CREATE FUNCTION chat.history(room text, n integer DEFAULT 50, before bigint DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(chat.message_json(m) ORDER BY m.id), '[]')
      FROM (SELECT * FROM chat.message AS msg
             WHERE msg.room_id = room AND (before IS NULL OR msg.id < before)
             ORDER BY msg.id DESC
             LIMIT least(greatest(n, 0), 200)) AS m
$$;

CREATE FUNCTION chat.error(reason text, extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_build_object('error', jsonb_build_object('reason', reason) || extra) $$;

---------------------------------------------------------------------------
-- The channel: join and handle_in (called by pgapp-gateway as the token's role)
---------------------------------------------------------------------------

-- phx_join of room:<id>: members only; the room, the caller, the last 50
-- messages (oldest first) and who is typing.  A room that does not exist
-- and one the caller is not a member of are refused alike.  "presence" is
-- the meta the gateway tracks the socket with ({"name"}; the key is the sub).
CREATE FUNCTION chat.join(topic text, params jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    r chat.room;
    user_name text;
BEGIN
    IF me IS NULL THEN
        RETURN chat.error('unauthorized');
    END IF;
    SELECT * INTO r FROM chat.room AS x WHERE x.id = chat.topic_room(topic);
    IF NOT FOUND OR NOT chat.is_member(r.id) THEN
        RETURN chat.error('not a member');
    END IF;
    user_name := (SELECT p.name FROM chat.profile AS p WHERE p.user_id = me);
    RETURN jsonb_build_object(
        'ok', jsonb_build_object(
            'room', jsonb_build_object('id', r.id, 'name', r.name),
            'user', jsonb_build_object('id', me, 'name', user_name),
            'messages', chat.history(r.id, 50),
            'typing', to_jsonb(pgapp.typing_list(topic))),
        -- the meta the gateway tracks this socket's presence with (key: the sub)
        'presence', jsonb_build_object('name', coalesce(user_name, 'user ' || left(me, 8))));
END
$$;

-- A push counts against the caller's message rate (sliding window of one
-- second): NULL, or the error reply of a push over it.  The caller's own
-- rate only: it takes no user id, so no one can spend another's.
CREATE FUNCTION chat.over_rate() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    per_second integer := (SELECT s.messages_per_second FROM chat.settings AS s);
    d pgapp.rate_decision;
BEGIN
    d := pgapp.check_rate('chat:messages:' || chat.current_user_id(), per_second, 1, 'sliding');
    IF d.allowed THEN
        RETURN NULL;
    END IF;
    RETURN chat.error('rate_limited', jsonb_build_object(
        'message', format('at most %s messages per second', per_second),
        'retry_after', greatest(d.retry_after, 1)));
END
$$;

-- "new_msg" {body}: validated, stored, broadcast to the others (the
-- sender gets the same message in its reply).
CREATE FUNCTION chat.post_message(topic text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    room text := chat.topic_room(topic);
    body jsonb := payload -> 'body';
    cs pgapp.changeset;
    msg jsonb;
    limited jsonb;
BEGIN
    IF me IS NULL OR room IS NULL OR NOT chat.is_member(room) THEN
        RETURN chat.error('not a member');
    END IF;
    limited := chat.over_rate();
    IF limited IS NOT NULL THEN
        RETURN limited;
    END IF;
    -- a body over the byte limit is refused at once, before its characters are counted
    IF jsonb_typeof(body) = 'string' AND octet_length(body #>> '{}') > 20000 THEN
        RETURN jsonb_build_object('error', jsonb_build_object('errors',
                   jsonb_build_object('body', jsonb_build_array('should be at most 20000 byte(s)'))));
    END IF;
    cs := pgapp.changeset('chat_message', jsonb_build_object('room_id', room, 'author_id', me, 'body', body));
    IF NOT pgapp.is_valid(cs) THEN
        RETURN jsonb_build_object('error', jsonb_build_object('errors', pgapp.errors(cs)));
    END IF;
    SELECT chat.message_json(m) INTO msg
      FROM jsonb_populate_record(NULL::chat.message, pgapp.insert(cs)) AS m;
    PERFORM pgapp.broadcast_from(topic, 'new_msg', msg);
    RETURN jsonb_build_object('ok', msg);
END
$$;

-- "attach" {name, content_type, data (base64), body (optional caption)}:
-- checked, kept pending, posted as a message, and stored by a job on the
-- uploads queue, which then broadcasts "attachment".
CREATE FUNCTION chat.attach(topic text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    room text := chat.topic_room(topic);
    s chat.settings;
    data text;
    bytes bytea;
    cs pgapp.changeset;
    caption pgapp.changeset;
    e text;
    att chat.attachment;
    msg jsonb;
    limited jsonb;
    d pgapp.rate_decision;
BEGIN
    IF me IS NULL OR room IS NULL OR NOT chat.is_member(room) THEN
        RETURN chat.error('not a member');
    END IF;
    limited := chat.over_rate();
    IF limited IS NOT NULL THEN
        RETURN limited;
    END IF;
    SELECT * INTO s FROM chat.settings;
    d := pgapp.check_rate('chat:uploads:' || me, s.uploads_per_minute, 60, 'sliding');
    IF NOT d.allowed THEN
        RETURN chat.error('rate_limited', jsonb_build_object(
            'message', format('at most %s attachments per minute', s.uploads_per_minute),
            'retry_after', greatest(d.retry_after, 1)));
    END IF;

    cs := pgapp.cast('chat.attachment', NULL,
                     jsonb_build_object('name', payload -> 'name', 'content_type', payload -> 'content_type'),
                     ARRAY['name', 'content_type']);
    cs := pgapp.validate_required(cs, ARRAY['name', 'content_type']);
    cs := pgapp.validate_length(cs, 'name', max => 255);
    cs := pgapp.validate_format(cs, 'name', '^[^/\\[:cntrl:]]+$', message => 'has invalid format');
    cs := pgapp.validate_exclusion(cs, 'name', '[".", ".."]');
    cs := pgapp.validate_format(cs, 'content_type',
              '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}$');
    -- the data: strict base64 (RFC 4648 with padding, no white space), not
    -- decoded when its length alone says it is too large
    IF jsonb_typeof(payload -> 'data') IS DISTINCT FROM 'string' OR payload ->> 'data' = '' THEN
        cs := pgapp.add_error(cs, 'data', 'can''t be blank');
    ELSE
        data := payload ->> 'data';
        IF octet_length(data) > 4 * ((s.max_attachment_bytes + 2) / 3) + 4 THEN
            cs := pgapp.add_error(cs, 'data', 'should be at most %{count} byte(s)',
                                  jsonb_build_object('count', s.max_attachment_bytes));
        ELSIF octet_length(data) % 4 <> 0 OR data !~ '^[A-Za-z0-9+/]*={0,2}$' THEN
            cs := pgapp.add_error(cs, 'data', 'is not valid base64');
        ELSE
            bytes := decode(data, 'base64');
            IF octet_length(bytes) > s.max_attachment_bytes THEN
                cs := pgapp.add_error(cs, 'data', 'should be at most %{count} byte(s)',
                                      jsonb_build_object('count', s.max_attachment_bytes));
            ELSIF octet_length(bytes) = 0 THEN
                cs := pgapp.add_error(cs, 'data', 'can''t be blank');
            ELSIF chat.uploaded_bytes() + octet_length(bytes) > s.max_user_upload_bytes THEN
                cs := pgapp.add_error(cs, 'data', 'exceeds your upload quota of %{count} byte(s)',
                                      jsonb_build_object('count', s.max_user_upload_bytes));
            END IF;
        END IF;
    END IF;
    -- an optional caption, checked as a message body
    IF jsonb_typeof(payload -> 'body') IS DISTINCT FROM 'null' AND payload ? 'body' THEN
        IF jsonb_typeof(payload -> 'body') = 'string' AND octet_length(payload ->> 'body') > 20000 THEN
            cs := pgapp.add_error(cs, 'body', 'should be at most 20000 byte(s)');
        ELSE
            caption := pgapp.changeset('chat_message', jsonb_build_object('body', payload -> 'body'));
            FOR e IN SELECT jsonb_array_elements_text(pgapp.errors(caption) -> 'body') LOOP
                IF e <> 'can''t be blank' THEN         -- an empty caption is no caption
                    cs := pgapp.add_error(cs, 'body', e);
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF NOT pgapp.is_valid(cs) THEN
        RETURN jsonb_build_object('error', jsonb_build_object('errors', pgapp.errors(cs)));
    END IF;

    INSERT INTO chat.attachment (room_id, uploader_id, name, content_type, size, data)
    VALUES (room, me, cs -> 'changes' ->> 'name', lower(cs -> 'changes' ->> 'content_type'),
            octet_length(bytes), bytes)
    RETURNING * INTO att;
    INSERT INTO chat.message (room_id, author_id, author_name, body, attachment_id)
    VALUES (room, me, '', caption -> 'changes' ->> 'body', att.id)
    RETURNING chat.message_json(message) INTO msg;
    PERFORM pgapp.enqueue('uploads', 'chat.store_upload(jsonb, pgapp.job_info)'::regprocedure,
                          jsonb_build_object('attachment_id', att.id),
                          max_attempts => 5, unique_by => ARRAY['attachment_id']);
    PERFORM pgapp.broadcast_from(topic, 'new_msg', msg);
    RETURN jsonb_build_object('ok', msg);
END
$$;

-- Every push of a joined socket.
CREATE FUNCTION chat.handle_in(topic text, event text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    room text := chat.topic_room(topic);
BEGIN
    IF me IS NULL OR room IS NULL OR NOT chat.is_member(room) THEN
        RETURN chat.error('not a member');
    END IF;
    IF jsonb_typeof(payload) IS DISTINCT FROM 'object' THEN
        payload := '{}';
    END IF;
    CASE event
    WHEN 'new_msg' THEN
        RETURN chat.post_message(topic, payload);
    WHEN 'typing' THEN
        PERFORM pgapp.typing(topic, me);
        RETURN jsonb_build_object('ok', '{}'::jsonb);
    WHEN 'attach' THEN
        RETURN chat.attach(topic, payload);
    ELSE
        RETURN chat.error('unknown event', jsonb_build_object('event', left(event, 64)));
    END CASE;
END
$$;

SELECT pgapp.define_channel('room:*', 'chat.join(text, jsonb)', 'chat.handle_in(text, text, jsonb)',
                            presence => true);

---------------------------------------------------------------------------
-- Uploads: the job that stores an attachment
---------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pgapp.queue WHERE name = 'uploads') THEN
        PERFORM pgapp.create_queue('uploads', 2);
    END IF;
END
$$;

-- Runs as the user who attached the file (the job's enqueuer), and as its
-- owner inside (SECURITY DEFINER): a job has no token, so row-level
-- security could not tell whose the attachment is.  It only finishes what
-- a member's "attach" started, so calling it directly does no more than
-- the job would; it answers whether it stored something, nothing else.
CREATE FUNCTION chat.store_upload(args jsonb, job pgapp.job_info) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att chat.attachment;
    link text;
    message_id bigint;
BEGIN
    SELECT * INTO att FROM chat.attachment AS a
     WHERE a.id = (args ->> 'attachment_id')::bigint AND a.state = 'pending'
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN '{"stored": false}';
    END IF;
    link := chat.attachment_url(att.id, att.name);
    -- the object store's PUT, keyed by the URL's path
    INSERT INTO chat.blob (key, attachment_id, room_id, content_type, data)
    VALUES (substr(link, 2), att.id, att.room_id, att.content_type, att.data);
    UPDATE chat.attachment AS a
       SET state = 'stored', url = link, data = NULL, stored_at = clock_timestamp()
     WHERE a.id = att.id;
    SELECT m.id INTO message_id FROM chat.message AS m WHERE m.attachment_id = att.id;
    PERFORM pgapp.broadcast('room:' || att.room_id, 'attachment', jsonb_build_object(
        'id', att.id, 'message_id', message_id, 'url', link, 'name', att.name,
        'content_type', att.content_type, 'size', att.size));
    RETURN '{"stored": true}';
END
$$;

---------------------------------------------------------------------------
-- The API for PostgREST
---------------------------------------------------------------------------

CREATE FUNCTION api.create_room(id text, name text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    created jsonb;
BEGIN
    IF me IS NULL THEN
        RETURN pgapp.report_error(401, '{"errors": {"detail": "Unauthorized"}}',
                                  message => 'a token with a sub is required');
    END IF;
    created := pgapp.insert(pgapp.changeset('chat_room',
                   jsonb_build_object('id', id, 'name', name, 'created_by', me)));
    IF created ? 'errors' THEN
        RETURN created;                     -- 422, in a PostgREST request
    END IF;
    INSERT INTO chat.member (room_id, user_id, role) VALUES (created ->> 'id', me, 'owner');
    RETURN created;
END
$$;

COMMENT ON FUNCTION api.create_room IS
'Create a chat room
The caller becomes its owner and first member.
@changeset chat_room';

CREATE FUNCTION api.add_member(room text, user_id text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT chat.is_owner(room) THEN
        RETURN pgapp.report_error(403, '{"errors": {"detail": "Forbidden"}}',
                                  message => 'only the room''s owners add members');
    END IF;
    IF user_id IS NULL OR octet_length(user_id) NOT BETWEEN 1 AND 255 THEN
        RETURN pgapp.report_error(422, '{"errors": {"user_id": ["is invalid"]}}',
                                  message => 'validation failed: user_id is invalid', column_name => 'user_id');
    END IF;
    INSERT INTO chat.member AS m (room_id, user_id) VALUES (room, add_member.user_id)
    ON CONFLICT ON CONSTRAINT member_pkey DO NOTHING;
    RETURN jsonb_build_object('room', room, 'user_id', user_id);
END
$$;

COMMENT ON FUNCTION api.add_member IS
'Add a member to a chat room (its owners only)';

CREATE FUNCTION api.remove_member(room text, user_id text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM chat.member AS m WHERE m.room_id = room AND m.user_id = remove_member.user_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN pgapp.report_error(404, '{"errors": {"detail": "Not Found"}}',
                                  message => 'no such member that the caller may remove');
    END IF;
    RETURN jsonb_build_object('room', room, 'user_id', user_id);
END
$$;

COMMENT ON FUNCTION api.remove_member IS
'Remove a member from a chat room (its owners), or leave it (oneself)';

CREATE FUNCTION api.set_chat_name(name text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    cs pgapp.changeset;
    current jsonb;
BEGIN
    IF me IS NULL THEN
        RETURN pgapp.report_error(401, '{"errors": {"detail": "Unauthorized"}}',
                                  message => 'a token with a sub is required');
    END IF;
    SELECT to_jsonb(p) INTO current FROM chat.profile AS p WHERE p.user_id = me FOR UPDATE;
    IF current IS NULL THEN
        RETURN pgapp.insert(pgapp.changeset('chat_profile', jsonb_build_object('user_id', me, 'name', name)));
    END IF;
    cs := pgapp.changeset('chat_profile', jsonb_build_object('name', name), current);
    RETURN pgapp.update(cs);
END
$$;

COMMENT ON FUNCTION api.set_chat_name IS
'Set the name shown with your chat messages (1 to 64 characters)
@changeset chat_profile';

CREATE FUNCTION api.room_messages(room text, before bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT chat.history(room, 50, before) $$;

COMMENT ON FUNCTION api.room_messages IS
'The 50 messages of a room before a message id (the last 50 without it), oldest first; members only';

CREATE FUNCTION api.attachment(id bigint)
RETURNS bytea
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found bytea;
BEGIN
    SELECT b.data INTO found FROM chat.blob AS b WHERE b.attachment_id = attachment.id;
    IF found IS NULL THEN
        PERFORM pgapp.report_error(404, '{"errors": {"detail": "Not Found"}}',
                                   message => format('attachment %s is not stored or not yours to see', id));
    END IF;
    RETURN found;
END
$$;

COMMENT ON FUNCTION api.attachment IS
'The bytes of a stored attachment (members of its room only); /uploads/<id>/<name> is served from it';

---------------------------------------------------------------------------
-- Privileges: app_user, through row-level security; anon nothing
---------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA chat FROM PUBLIC;
REVOKE ALL ON FUNCTION api.create_room, api.add_member, api.remove_member, api.set_chat_name,
    api.room_messages, api.attachment FROM PUBLIC;
GRANT USAGE ON SCHEMA chat TO app_user;
GRANT USAGE ON SCHEMA api TO app_user;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA chat TO app_user;
REVOKE EXECUTE ON FUNCTION chat.message_author() FROM app_user;
GRANT EXECUTE ON FUNCTION api.create_room, api.add_member, api.remove_member, api.set_chat_name,
    api.room_messages, api.attachment TO app_user;
GRANT SELECT ON chat.settings TO app_user;
GRANT SELECT, INSERT ON chat.room, chat.attachment, chat.message TO app_user;
GRANT SELECT, INSERT, DELETE ON chat.member TO app_user;
GRANT SELECT, INSERT, UPDATE ON chat.profile TO app_user;
GRANT SELECT ON chat.blob TO app_user;

---------------------------------------------------------------------------
-- Seed: an empty lobby (add members with api.add_member as its owner, or as an admin)
---------------------------------------------------------------------------

INSERT INTO chat.room (id, name) VALUES ('lobby', 'Lobby');

---------------------------------------------------------------------------
-- The chat page (examples/web/chat.html): each user's own channel
---------------------------------------------------------------------------
-- (This section serves the web page; the recipe above does not depend on it.)
--
-- The page needs what room:* does not give: the rooms the user is in (and
-- word when that changes), the names of a room's members (for the online
-- list and the typing line: presence and typing carry user ids), the
-- limits to show, and an attachment's bytes (a page served by pgapp-gateway
-- alone has nothing serving /uploads/...).  One topic per user,
-- chat_user:<sub>, which only that user may join:
--
--   channel = socket.channel(`chat_user:${sub}`)
--   channel.join()                   -> {user: {id, name}, rooms: [{id, name, role}], limits}
--   channel.push("rooms", {})        -> {rooms}
--   channel.push("members", {room})  -> {members: [{id, name, role}]}   (a member of room only)
--   channel.push("download", {id})   -> {id, name, content_type, size, data (base64)}
--                                       (a stored attachment of one's rooms; 60 a minute)
--   event "rooms_changed" {room, change: "added" | "removed"}

-- A user's name as messages show it (chat.message_author's rule): the
-- profile's, else the token's "name" claim (for the caller), else the start
-- of the id.  Not for app_user (it would tell anyone's name): called by
-- chat.room_members.
CREATE FUNCTION chat.display_name(user_id text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (SELECT p.name FROM chat.profile AS p WHERE p.user_id = display_name.user_id),
        CASE WHEN display_name.user_id = chat.current_user_id()
             THEN NULLIF(left(pgapp.token_claims() ->> 'name', 64), '') END,
        'user ' || left(display_name.user_id, 8))
$$;

-- The caller's rooms, by name (row-level security: its memberships only).
CREATE FUNCTION chat.my_rooms() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.id, 'name', r.name, 'role', m.role)
                              ORDER BY r.name, r.id), '[]')
      FROM chat.member AS m JOIN chat.room AS r ON r.id = m.room_id
     WHERE m.user_id = chat.current_user_id()
$$;

-- The members of a room with their names, for a member of it (else NULL).
-- SECURITY DEFINER for the names (chat.profile shows each user only its
-- own); the membership check is the caller's.
CREATE FUNCTION chat.room_members(room text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN chat.is_member(room) THEN
           (SELECT coalesce(jsonb_agg(jsonb_build_object('id', m.user_id, 'name', chat.display_name(m.user_id),
                                                         'role', m.role) ORDER BY m.user_id), '[]')
              FROM chat.member AS m WHERE m.room_id = room_members.room) END
$$;

-- phx_join of chat_user:<sub>: the token's own topic only.
CREATE FUNCTION chat.user_join(topic text, params jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    s chat.settings;
BEGIN
    IF me IS NULL THEN
        RETURN chat.error('unauthorized');
    END IF;
    IF topic IS DISTINCT FROM 'chat_user:' || me THEN
        RETURN chat.error('not your channel');
    END IF;
    SELECT * INTO s FROM chat.settings;
    RETURN jsonb_build_object('ok', jsonb_build_object(
        'user', jsonb_build_object('id', me, 'name', coalesce(
                    (SELECT p.name FROM chat.profile AS p WHERE p.user_id = me),
                    NULLIF(left(pgapp.token_claims() ->> 'name', 64), ''), 'user ' || left(me, 8))),
        'rooms', chat.my_rooms(),
        'limits', jsonb_build_object('max_body_chars', 5000, 'history', 50,
                                     'messages_per_second', s.messages_per_second,
                                     'max_attachment_bytes', s.max_attachment_bytes,
                                     'uploads_per_minute', s.uploads_per_minute)));
END
$$;

-- A stored attachment of one of the caller's rooms, its bytes in base64
-- (row-level security on chat.blob: members of its room only).
CREATE FUNCTION chat.download(payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    d pgapp.rate_decision;
    found jsonb;
BEGIN
    IF jsonb_typeof(payload -> 'id') IS DISTINCT FROM 'number' OR (payload ->> 'id') !~ '^[0-9]{1,18}$' THEN
        RETURN jsonb_build_object('error', jsonb_build_object('errors',
                   jsonb_build_object('id', jsonb_build_array('is invalid'))));
    END IF;
    d := pgapp.check_rate('chat:downloads:' || me, 60, 60, 'sliding');
    IF NOT d.allowed THEN
        RETURN chat.error('rate_limited', jsonb_build_object(
            'message', 'at most 60 downloads per minute', 'retry_after', greatest(d.retry_after, 1)));
    END IF;
    SELECT jsonb_build_object('id', a.id, 'name', a.name, 'content_type', b.content_type, 'size', a.size,
                              'url', a.url, 'data', translate(encode(b.data, 'base64'), E'\n', ''))
      INTO found
      FROM chat.blob AS b JOIN chat.attachment AS a ON a.id = b.attachment_id
     WHERE b.attachment_id = (payload ->> 'id')::bigint;
    IF found IS NULL THEN
        RETURN chat.error('not found');
    END IF;
    RETURN jsonb_build_object('ok', found);
END
$$;

-- Every push on chat_user:<sub>.
CREATE FUNCTION chat.user_handle_in(topic text, event text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := chat.current_user_id();
    members jsonb;
BEGIN
    IF me IS NULL OR topic IS DISTINCT FROM 'chat_user:' || me THEN
        RETURN chat.error('not your channel');
    END IF;
    IF jsonb_typeof(payload) IS DISTINCT FROM 'object' THEN
        payload := '{}';
    END IF;
    CASE event
    WHEN 'rooms' THEN
        RETURN jsonb_build_object('ok', jsonb_build_object('rooms', chat.my_rooms()));
    WHEN 'members' THEN
        IF jsonb_typeof(payload -> 'room') = 'string' THEN
            members := chat.room_members(payload ->> 'room');
        END IF;
        IF members IS NULL THEN
            RETURN chat.error('not a member');
        END IF;
        RETURN jsonb_build_object('ok', jsonb_build_object('room', payload ->> 'room', 'members', members));
    WHEN 'download' THEN
        RETURN chat.download(payload);
    ELSE
        RETURN chat.error('unknown event', jsonb_build_object('event', left(event, 64)));
    END CASE;
END
$$;

-- (in a DO block: loading the file prints nothing more than the recipe's part does)
DO $$
BEGIN
    PERFORM pgapp.define_channel('chat_user:*', 'chat.user_join(text, jsonb)',
                                 'chat.user_handle_in(text, text, jsonb)');
END
$$;

-- A user added to or removed from a room hears it on chat_user:<id> (ids
-- too long for a topic go without).
CREATE FUNCTION chat.member_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m chat.member := CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    IF octet_length(m.user_id) <= 245 THEN
        PERFORM pgapp.broadcast('chat_user:' || m.user_id, 'rooms_changed', jsonb_build_object(
            'room', m.room_id, 'change', CASE TG_OP WHEN 'DELETE' THEN 'removed' ELSE 'added' END));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER member_changed AFTER INSERT OR DELETE ON chat.member
    FOR EACH ROW EXECUTE FUNCTION chat.member_changed();

-- For the demo (scripts/run prints the page's address with one): make
-- sub a member of room with name, and return a token for it (8 hours).
-- Superusers (and pgapp_admin members who own the tables) only.
CREATE FUNCTION chat.demo_token(sub text, name text, room text DEFAULT 'lobby') RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO chat.member AS m (room_id, user_id) VALUES (room, sub)
    ON CONFLICT ON CONSTRAINT member_pkey DO NOTHING;
    INSERT INTO chat.profile AS p (user_id, name) VALUES (sub, name)
    ON CONFLICT (user_id) DO UPDATE SET name = excluded.name;
    RETURN pgapp.encode_token(sub, jsonb_build_object('role', 'app_user', 'name', name), '8 hours');
END
$$;

REVOKE ALL ON FUNCTION chat.display_name(text), chat.my_rooms(), chat.room_members(text),
    chat.user_join(text, jsonb), chat.download(jsonb), chat.user_handle_in(text, text, jsonb),
    chat.member_changed(), chat.demo_token(text, text, text) FROM PUBLIC, app_user;
GRANT EXECUTE ON FUNCTION chat.my_rooms(), chat.room_members(text),
    chat.user_join(text, jsonb), chat.download(jsonb), chat.user_handle_in(text, text, jsonb) TO app_user;

-- sql/parts/71_presence.sql: PubSub presence and typing indicators (docs/pubsub.md)

-- Presence (Phoenix.Presence) and typing indicators: unlogged, so that their
-- frequent writes stay out of the WAL; the database's pgapp pubsub worker
-- announces joins and leaves as one presence_diff per topic every 1.5 s and
-- stops typing indicators whose 3 s have passed.  Each row records the role
-- that made it: a key belongs to that role while it is live (42501 for
-- others); presence_track, presence_untrack and typing are C entry points
-- that pass the caller's role to the internal functions below.
CREATE UNLOGGED TABLE pgapp.presence (
    topic       text NOT NULL,
    key         text NOT NULL,
    ref         uuid NOT NULL,
    meta        jsonb NOT NULL,
    role        oid NOT NULL,       -- the role that tracked it: its key is that role's
    seq         integer NOT NULL DEFAULT 0,     -- version of meta: phx_ref is ref, or ref.seq
    prev_meta   jsonb,              -- announced meta replaced by meta, to announce as a leave
    prev_seq    integer,            -- and its version
    announced   boolean NOT NULL DEFAULT false,
    left_at     timestamptz,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (topic, key, ref)
);

CREATE INDEX presence_pending_idx ON pgapp.presence (topic) WHERE NOT announced OR left_at IS NOT NULL OR prev_meta IS NOT NULL;
CREATE INDEX presence_expires_idx ON pgapp.presence (expires_at) WHERE left_at IS NULL;

COMMENT ON TABLE pgapp.presence IS
'Who is present on a topic: one row per tracked meta (pgapp.presence_track); unlogged';

CREATE UNLOGGED TABLE pgapp.typing (
    topic       text NOT NULL,
    key         text NOT NULL,
    role        oid NOT NULL,       -- the role that types as key
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (topic, key)
);

COMMENT ON TABLE pgapp.typing IS
'Typing indicators in progress (pgapp.typing); unlogged';

-- The phx_ref of a meta's version: its ref, then ref.1, ref.2 ... as it
-- changes (Phoenix gives a changed meta a new ref, with phx_ref_prev).
CREATE FUNCTION pgapp._phx_ref(ref uuid, seq integer)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN seq = 0 THEN ref::text ELSE ref::text || '.' || seq END $$;

CREATE FUNCTION pgapp._pubsub_start_worker()
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_pubsub_start_worker'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp._pubsub_start_worker() IS
'Make sure this database''s pgapp pubsub worker runs (it announces presence and stops typing)';

CREATE FUNCTION pgapp._presence_check(topic text, key text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL OR key IS NULL THEN
        RAISE EXCEPTION 'topic and key must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the same rules as pgapp.broadcast's topics (a round broadcasts on it)
    PERFORM pgapp._pubsub_check_topic(topic);
    IF key = '' OR octet_length(key) > 255 THEN
        RAISE EXCEPTION 'key must have 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

/*
 * A key of a topic belongs to the role that tracks it (or types as it)
 * until its last meta has left: another role may not track, renew or type
 * as it (42501).  A key the caller holds already needs no lock (a claimer
 * sees its committed rows).  Claims of a free key are serialised by a
 * transaction-level advisory lock; as any role can take advisory locks, a
 * claim waits for it at most about 100 ms, then goes on without it (two
 * roles could then share a key claimed at the same instant): a role that
 * holds the lock can delay the first claim of a key, never block it.
 */
CREATE FUNCTION pgapp._presence_claim(topic text, key text, caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    holder oid;
BEGIN
    FOR pass IN 1..2 LOOP
        -- a live meta or typing indicator of the key: another role's first
        SELECT h.role INTO holder
          FROM (SELECT p.role FROM pgapp.presence AS p
                 WHERE p.topic = _presence_claim.topic AND p.key = _presence_claim.key
                   AND p.left_at IS NULL AND p.expires_at > clock_timestamp()
                UNION ALL
                SELECT t.role FROM pgapp.typing AS t
                 WHERE t.topic = _presence_claim.topic AND t.key = _presence_claim.key
                   AND t.expires_at > clock_timestamp()) AS h
         ORDER BY h.role = caller
         LIMIT 1;
        IF holder <> caller THEN
            RAISE EXCEPTION 'key "%" on topic "%" belongs to another role',
                            pgapp._pubsub_echo(key), pgapp._pubsub_echo(topic)
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'A key belongs to the role that tracks it (or types as it) until its last meta has left.',
                      HINT = 'Track and type under a key of your own.';
        END IF;
        EXIT WHEN holder = caller OR pass = 2;
        -- a free key: take the claim lock (at most ~100 ms of waiting), then check again
        FOR attempt IN 1..20 LOOP
            EXIT WHEN pg_try_advisory_xact_lock(hashtext(topic), hashtext(key));
            PERFORM pg_sleep(0.005);
        END LOOP;
    END LOOP;
END
$$;

/*
 * Track key on topic with meta for ttl; returns the meta's ref.  Call it
 * again with that ref before ttl passes to stay (and to change the meta);
 * without a ref each call adds a meta (one per connection or device).
 * pgapp.presence_track (C) calls it as pgapp's owner with the caller's role.
 */
CREATE FUNCTION pgapp._presence_track(topic text, key text, meta jsonb, ttl interval, ref uuid, caller oid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r uuid := coalesce(ref, gen_random_uuid());
    kept uuid;
    size integer;
    -- shown with a unit ('4kB', '100B', '10min'); pg_size_bytes knows no 'B'
    max_meta bigint := pg_size_bytes(regexp_replace(current_setting('pgapp.pubsub_presence_max_meta'), '^(\d+)B$', '\1'));
    max_ttl interval := current_setting('pgapp.pubsub_presence_max_ttl')::interval;
    metas integer;
BEGIN
    PERFORM pgapp._presence_check(topic, key);
    IF meta IS NULL OR jsonb_typeof(meta) <> 'object' THEN
        RAISE EXCEPTION 'meta must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    size := octet_length(meta::text);
    IF size > max_meta THEN
        RAISE EXCEPTION 'presence meta is too large (% bytes)', size
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('pgapp.pubsub_presence_max_meta allows at most %s bytes.',
                                  max_meta),
                  HINT = 'Keep metas small (a device, a status); keep the rest in a table.';
    END IF;
    IF ttl IS NULL OR ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, not %',
                        coalesce(trim_scale(extract(epoch FROM ttl))::text || ' seconds', 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ttl > max_ttl THEN
        RAISE EXCEPTION 'ttl of % seconds is longer than pgapp.pubsub_presence_max_ttl (%)',
                        trim_scale(extract(epoch FROM ttl)), current_setting('pgapp.pubsub_presence_max_ttl')
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = 'pgapp.pubsub_presence_max_ttl caps how long a presence stays without being renewed.',
                  HINT = 'Renew the presence (presence_track with its ref) at about half its ttl.';
    END IF;
    PERFORM pgapp._presence_claim(topic, key, caller);
    IF NOT EXISTS (SELECT 1 FROM pgapp.presence AS p
                    WHERE p.topic = _presence_track.topic AND p.key = _presence_track.key AND p.ref = r) THEN
        SELECT count(*) INTO metas FROM pgapp.presence AS p
         WHERE p.topic = _presence_track.topic AND p.key = _presence_track.key
           AND p.left_at IS NULL AND p.expires_at > clock_timestamp();
        IF metas >= current_setting('pgapp.pubsub_presence_max_metas')::integer THEN
            RAISE EXCEPTION 'key "%" already has % metas on topic "%"',
                            pgapp._pubsub_echo(key), metas, pgapp._pubsub_echo(topic)
                USING ERRCODE = 'program_limit_exceeded',
                      DETAIL = format('pgapp.pubsub_presence_max_metas allows at most %s at once.',
                                      current_setting('pgapp.pubsub_presence_max_metas')),
                      HINT = 'Renew a meta with its ref instead of tracking a new one, and untrack those no longer used.';
        END IF;
    END IF;
    INSERT INTO pgapp.presence AS p (topic, key, ref, role, meta, expires_at)
    VALUES (topic, key, r, caller, meta, clock_timestamp() + ttl)
    ON CONFLICT ON CONSTRAINT presence_pkey DO UPDATE
       SET expires_at = excluded.expires_at,
           meta = excluded.meta,
           -- a changed meta is announced as a leave of the old version and a
           -- join of the new one, which gets the next phx_ref
           prev_meta = CASE WHEN p.announced AND p.meta IS DISTINCT FROM excluded.meta
                            THEN p.meta ELSE p.prev_meta END,
           prev_seq = CASE WHEN p.announced AND p.meta IS DISTINCT FROM excluded.meta
                           THEN p.seq ELSE p.prev_seq END,
           seq = CASE WHEN p.announced AND p.meta IS DISTINCT FROM excluded.meta
                      THEN p.seq + 1 ELSE p.seq END,
           announced = p.announced AND p.meta IS NOT DISTINCT FROM excluded.meta,
           left_at = NULL
     WHERE p.role = excluded.role
    RETURNING p.ref INTO kept;
    IF kept IS NULL THEN
        -- a meta of another role's that has expired or left, not yet announced
        RAISE EXCEPTION 'presence % on topic "%" belongs to another role', r, pgapp._pubsub_echo(topic)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the role that tracked a presence may renew or change it.';
    END IF;
    PERFORM pgapp._pubsub_start_worker();
    RETURN r;
END
$$;

CREATE FUNCTION pgapp.presence_track(topic text, key text, meta jsonb DEFAULT '{}',
    ttl interval DEFAULT '30s', ref uuid DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'pgapp_presence_track'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.presence_track(text, text, jsonb, interval, uuid) IS
'Track a presence on a topic for ttl; returns the ref to renew or untrack it (joins are broadcast as presence_diff); the key is the caller role''s until it leaves';

CREATE FUNCTION pgapp._presence_untrack(topic text, key text, ref uuid, caller oid)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM pgapp._presence_check(topic, key);
    IF NOT pg_has_role(caller, 'pgapp_admin', 'USAGE')
       AND EXISTS (SELECT 1 FROM pgapp.presence AS p
                    WHERE p.topic = _presence_untrack.topic AND p.key = _presence_untrack.key
                      AND (_presence_untrack.ref IS NULL OR p.ref = _presence_untrack.ref)
                      AND p.left_at IS NULL AND p.role <> caller) THEN
        RAISE EXCEPTION 'presence of key "%" on topic "%" belongs to another role',
                        pgapp._pubsub_echo(key), pgapp._pubsub_echo(topic)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the role that tracked a presence, or a member of pgapp_admin, may untrack it.';
    END IF;
    UPDATE pgapp.presence AS p SET left_at = clock_timestamp()
     WHERE p.topic = _presence_untrack.topic AND p.key = _presence_untrack.key
       AND (_presence_untrack.ref IS NULL OR p.ref = _presence_untrack.ref)
       AND p.left_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pgapp._pubsub_start_worker();
    RETURN n;
END
$$;

CREATE FUNCTION pgapp.presence_untrack(topic text, key text, ref uuid DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'pgapp_presence_untrack'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.presence_untrack(text, text, uuid) IS
'Stop tracking a key on a topic (one meta by ref, or all of them); returns how many metas left; the tracking role''s own, or anyone''s for pgapp_admin';

CREATE FUNCTION pgapp.presence_list(topic text)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL THEN
        RAISE EXCEPTION 'topic must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the state as the last round announced it: the diffs that follow apply to it
    RETURN (
        SELECT coalesce(jsonb_object_agg(s.key, jsonb_build_object('metas', s.metas)), '{}')
          FROM (SELECT p.key,
                       jsonb_agg(coalesce(p.prev_meta, p.meta)
                                 || jsonb_build_object('phx_ref', pgapp._phx_ref(p.ref, v.seq))
                                 || CASE WHEN v.seq > 0
                                         THEN jsonb_build_object('phx_ref_prev', pgapp._phx_ref(p.ref, v.seq - 1))
                                         ELSE '{}' END
                                 ORDER BY p.joined_at, p.ref) AS metas
                  FROM pgapp.presence AS p,
                       LATERAL (SELECT CASE WHEN p.prev_meta IS NOT NULL THEN p.prev_seq ELSE p.seq END AS seq) AS v
                 WHERE p.topic = presence_list.topic AND (p.announced OR p.prev_meta IS NOT NULL)
                 GROUP BY p.key) AS s);
END
$$;

COMMENT ON FUNCTION pgapp.presence_list(text) IS
'Who is present on a topic as the last presence_diff left it, as Phoenix''s presence_state: {"key": {"metas": [{..., "phx_ref": ref}]}}';

/*
 * The pubsub worker's presence round: expired metas leave; then, per topic,
 * one presence_diff with what joined and what left since the last round.
 * A meta that joined and left within one round is never announced, nor one
 * changed and changed back.  The table is locked for the round (tracking
 * waits a few milliseconds), so that every statement of the round sees the
 * same rows: a change committed in between would otherwise be deleted or
 * marked announced without having been announced.
 */
CREATE FUNCTION pgapp._presence_flush()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
    n integer := 0;
BEGIN
    LOCK TABLE pgapp.presence IN EXCLUSIVE MODE;
    UPDATE pgapp.presence SET left_at = expires_at
     WHERE left_at IS NULL AND expires_at <= clock_timestamp();
    UPDATE pgapp.presence SET seq = prev_seq, prev_meta = NULL, prev_seq = NULL, announced = true
     WHERE left_at IS NULL AND prev_meta IS NOT NULL AND prev_meta = meta;
    DELETE FROM pgapp.presence WHERE left_at IS NOT NULL AND NOT announced AND prev_meta IS NULL;
    FOR d IN
        WITH changes AS (
            SELECT p.topic, p.key, 'leave' AS kind,
                   coalesce(p.prev_meta, p.meta)
                   || jsonb_build_object('phx_ref', pgapp._phx_ref(p.ref, coalesce(p.prev_seq, p.seq))) AS meta
              FROM pgapp.presence AS p
             WHERE (p.left_at IS NOT NULL AND (p.announced OR p.prev_meta IS NOT NULL))
                OR (p.left_at IS NULL AND p.prev_meta IS NOT NULL)
            UNION ALL
            SELECT p.topic, p.key, 'join',
                   p.meta || jsonb_build_object('phx_ref', pgapp._phx_ref(p.ref, p.seq))
                   || CASE WHEN p.prev_meta IS NOT NULL
                           THEN jsonb_build_object('phx_ref_prev', pgapp._phx_ref(p.ref, p.prev_seq))
                           ELSE '{}' END
              FROM pgapp.presence AS p
             WHERE NOT p.announced AND p.left_at IS NULL),
        per_key AS (
            SELECT topic, kind, key, jsonb_build_object('metas', jsonb_agg(meta ORDER BY meta ->> 'phx_ref')) AS entry
              FROM changes GROUP BY topic, kind, key)
        SELECT topic,
               coalesce(jsonb_object_agg(key, entry) FILTER (WHERE kind = 'join'), '{}') AS joins,
               coalesce(jsonb_object_agg(key, entry) FILTER (WHERE kind = 'leave'), '{}') AS leaves
          FROM per_key GROUP BY topic ORDER BY topic
    LOOP
        PERFORM pgapp._broadcast_system(d.topic, 'presence_diff',
                                        jsonb_build_object('joins', d.joins, 'leaves', d.leaves), 'direct');
        n := n + 1;
    END LOOP;
    DELETE FROM pgapp.presence WHERE left_at IS NOT NULL;
    UPDATE pgapp.presence SET announced = true, prev_meta = NULL, prev_seq = NULL
     WHERE NOT announced OR prev_meta IS NOT NULL;
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp._presence_flush() IS
'Announce presence joins and leaves as one presence_diff per topic (the pubsub worker runs it every 1.5 s)';

CREATE FUNCTION pgapp._typing(topic text, key text, caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started boolean;
BEGIN
    PERFORM pgapp._presence_check(topic, key);
    PERFORM pgapp._presence_claim(topic, key, caller);
    INSERT INTO pgapp.typing AS t (topic, key, role, expires_at)
    VALUES (topic, key, caller, clock_timestamp() + interval '3 seconds')
    ON CONFLICT ON CONSTRAINT typing_pkey DO UPDATE SET expires_at = excluded.expires_at, role = excluded.role
    RETURNING (xmax = 0) INTO started;
    IF started THEN
        -- not to the pgapp-gateway socket that types (when called in its request)
        PERFORM pgapp._broadcast_system_from(topic, 'typing', jsonb_build_object('key', key), 'direct');
    END IF;
    PERFORM pgapp._pubsub_start_worker();
END
$$;

CREATE FUNCTION pgapp.typing(topic text, key text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_typing'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.typing(text, text) IS
'Say that key is typing on topic: broadcasts typing, then typing_stopped 3 s after the last call';

CREATE FUNCTION pgapp.typing_list(topic text)
RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL THEN
        RAISE EXCEPTION 'topic must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN (SELECT coalesce(array_agg(t.key ORDER BY t.key), '{}') FROM pgapp.typing AS t
             WHERE t.topic = typing_list.topic AND t.expires_at > clock_timestamp());
END
$$;

COMMENT ON FUNCTION pgapp.typing_list(text) IS
'Who is typing on a topic now (for a client that joins while someone types)';

CREATE FUNCTION pgapp._typing_flush()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    n integer := 0;
BEGIN
    FOR t IN DELETE FROM pgapp.typing WHERE expires_at <= clock_timestamp() RETURNING topic, key LOOP
        PERFORM pgapp._broadcast_system(t.topic, 'typing_stopped', jsonb_build_object('key', t.key), 'direct');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp._typing_flush() IS
'Broadcast typing_stopped for typing indicators whose 3 s have passed (the pubsub worker runs it every 250 ms)';

REVOKE ALL ON pgapp.presence, pgapp.typing FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._pubsub_start_worker(), pgapp._presence_check(text, text), pgapp._phx_ref(uuid, integer),
    pgapp._presence_flush(), pgapp._typing_flush(), pgapp._presence_claim(text, text, oid),
    pgapp._presence_track(text, text, jsonb, interval, uuid, oid), pgapp._presence_untrack(text, text, uuid, oid),
    pgapp._typing(text, text, oid) FROM PUBLIC;
GRANT SELECT ON pgapp.presence, pgapp.typing TO pgapp_admin;


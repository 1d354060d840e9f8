-- sql/parts/70_pubsub.sql: PubSub on LISTEN/NOTIFY (docs/pubsub.md)

-- Messages too large for NOTIFY (8000 bytes), read with pgapp.message(id).
-- Unlogged: they live for pgapp.pubsub_retention, not across a crash.
CREATE UNLOGGED TABLE pgapp.message (
    id      uuid PRIMARY KEY,
    topic   text NOT NULL,
    event   text NOT NULL,
    payload jsonb NOT NULL,
    at      timestamptz NOT NULL
);

CREATE INDEX message_at_idx ON pgapp.message (at);

COMMENT ON TABLE pgapp.message IS
'Broadcast messages too large for NOTIFY, kept for pgapp.pubsub_retention; read them with pgapp.message(id)';

-- Outbox mode: messages written just before their transaction commits and
-- sent by the database's "pgapp pubsub" worker, which deletes them as it
-- NOTIFYs them.  Logged, so that a restart loses none.
CREATE TABLE pgapp.outbox (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id      uuid NOT NULL,
    topic   text NOT NULL,
    event   text NOT NULL,
    payload jsonb NOT NULL,
    at      timestamptz NOT NULL,
    sender  text                    -- pgapp.broadcast_from: the gateway socket left out
);

COMMENT ON TABLE pgapp.outbox IS
'Broadcasts waiting for the pgapp pubsub worker (outbox mode), in commit order';

CREATE FUNCTION pgapp.broadcast(topic text, event text, payload jsonb DEFAULT '{}',
    mode text DEFAULT 'auto')
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.broadcast(text, text, jsonb, text) IS
'Send {"topic","event","payload","id","at"} to the topic''s listeners at commit (auto, direct or outbox mode); pgapp''s own topics and events are refused';

-- pgapp.broadcast for pgapp-gateway's Phoenix broadcast_from: inside a
-- gateway request (a channel's join or handle_in, which run with
-- request.gateway.socket set) every socket joined to the topic gets the
-- message but the one whose request runs; elsewhere it is pgapp.broadcast.
CREATE FUNCTION pgapp.broadcast_from(topic text, event text, payload jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast_from'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.broadcast_from(text, text, jsonb) IS
'pgapp.broadcast that the pgapp-gateway socket whose request runs (join, handle_in) does not receive; elsewhere the same as pgapp.broadcast';

-- How pgapp's own code sends on the topics and events reserved to it (job
-- progress on jobs:<id>, presence_diff, typing ...): not executable by
-- PUBLIC; pgapp's SECURITY DEFINER functions (its owner) and background
-- workers (superuser) call it.
CREATE FUNCTION pgapp._broadcast_system(topic text, event text, payload jsonb, mode text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast_system'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp._broadcast_system(text, text, jsonb, text) IS
'pgapp.broadcast for pgapp''s own code: may send on reserved topics and events, with no size limit (not for PUBLIC)';

-- pgapp._broadcast_system that the pgapp-gateway socket whose request runs
-- does not receive (pgapp.typing's "typing"): not for PUBLIC either.
CREATE FUNCTION pgapp._broadcast_system_from(topic text, event text, payload jsonb, mode text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast_system_from'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp._broadcast_system_from(text, text, jsonb, text) IS
'pgapp._broadcast_system that the pgapp-gateway socket whose request runs does not receive (not for PUBLIC)';

-- A topic presence and typing may use: valid (22023) and not pgapp's (42501).
CREATE FUNCTION pgapp._pubsub_check_topic(topic text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_pubsub_check_user_topic'
LANGUAGE C STABLE;

-- At most 64 characters of a value an error message quotes.
CREATE FUNCTION pgapp._pubsub_echo(value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN length(value) > 64 THEN left(value, 64) || '...' ELSE value END $$;

CREATE FUNCTION pgapp.channel(topic text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_channel'
LANGUAGE C IMMUTABLE;

COMMENT ON FUNCTION pgapp.channel(text) IS
'The NOTIFY channel of a topic: the topic itself up to 63 bytes, else ''pgapp:'' || md5(topic)';

CREATE FUNCTION pgapp.subscribe(topic text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_subscribe'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.subscribe(text) IS
'LISTEN to a topic (from the commit on); returns its channel';

CREATE FUNCTION pgapp.unsubscribe(topic text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_unsubscribe'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.unsubscribe(text) IS
'UNLISTEN a topic (NULL: every topic)';

CREATE FUNCTION pgapp.message(id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    msg jsonb;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'message id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT jsonb_build_object('topic', m.topic, 'event', m.event, 'payload', m.payload,
                              'id', m.id, 'at', m.at)
      INTO msg
      FROM pgapp.message AS m
     WHERE m.id = message.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', id
            USING ERRCODE = 'undefined_object',
                  HINT = format('Stored messages are kept for pgapp.pubsub_retention (%s).',
                                coalesce(current_setting('pgapp.pubsub_retention', true), '1h'));
    END IF;
    RETURN msg;
END
$$;

COMMENT ON FUNCTION pgapp.message(uuid) IS
'A broadcast message too large for NOTIFY, by the id its notification carries';

CREATE FUNCTION pgapp._pubsub_prune()
RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM pgapp.message
         WHERE at < now() - coalesce(current_setting('pgapp.pubsub_retention', true), '1h')::interval
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

COMMENT ON FUNCTION pgapp._pubsub_prune() IS
'Remove stored messages older than pgapp.pubsub_retention (the pubsub worker calls it every minute)';

CREATE FUNCTION pgapp._broadcast_changes()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_broadcast_changes_trigger'
LANGUAGE C;

CREATE FUNCTION pgapp.broadcast_changes(tbl regclass, topic_template text,
    changes_only boolean DEFAULT false, mode text DEFAULT 'outbox',
    events text[] DEFAULT ARRAY['insert', 'update', 'delete'], columns text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col text;
    ev text;
BEGIN
    IF tbl IS NULL OR topic_template IS NULL OR changes_only IS NULL OR mode IS NULL OR events IS NULL THEN
        RAISE EXCEPTION 'arguments of pgapp.broadcast_changes must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF topic_template = '' OR octet_length(topic_template) > 255 THEN
        RAISE EXCEPTION 'topic template must have 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mode NOT IN ('auto', 'direct', 'outbox') THEN
        RAISE EXCEPTION 'unknown broadcast mode "%"', pgapp._pubsub_echo(mode)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use auto, direct or outbox.';
    END IF;
    IF cardinality(events) = 0 THEN
        RAISE EXCEPTION 'events must name at least one of insert, update and delete'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH ev IN ARRAY events LOOP
        IF ev IS NULL OR lower(ev) NOT IN ('insert', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown event "%"', pgapp._pubsub_echo(ev)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Use insert, update or delete.';
        END IF;
    END LOOP;
    FOR col IN SELECT (regexp_matches(topic_template, '%\{([^}]*)\}', 'g'))[1]
               UNION ALL SELECT unnest(columns) LOOP
        IF col IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute AS a
                        WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" does not exist in %', pgapp._pubsub_echo(col), tbl
                USING ERRCODE = 'undefined_column',
                      HINT = 'The topic template''s %{column} and the columns listed must be columns of the table.';
        END IF;
    END LOOP;
    EXECUTE format('CREATE OR REPLACE TRIGGER pgapp_broadcast_changes'
                   ' AFTER %s ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION pgapp._broadcast_changes(%s)',
                   (SELECT string_agg(DISTINCT upper(e), ' OR ') FROM unnest(events) AS e),
                   tbl,
                   (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                      FROM unnest(ARRAY[topic_template, changes_only::text, mode] || coalesce(columns, '{}'))
                           WITH ORDINALITY AS t(a, n)));
END
$$;

COMMENT ON FUNCTION pgapp.broadcast_changes(regclass, text, boolean, text, text[], text[]) IS
'Broadcast a table''s inserted, updated and deleted rows (or the events named, with the columns named) to a topic such as ''orders:%{id}''';

CREATE FUNCTION pgapp.stop_broadcast_changes(tbl regclass)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger AS t
                    WHERE t.tgrelid = tbl AND t.tgname = 'pgapp_broadcast_changes') THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TRIGGER pgapp_broadcast_changes ON %s', tbl);
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.stop_broadcast_changes(regclass) IS
'Stop broadcasting a table''s row changes';

CREATE FUNCTION pgapp._pubsub_workers(
    OUT datid oid, OUT pid integer, OUT state text, OUT delivered bigint, OUT batches bigint,
    OUT last_delivery timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgapp_pubsub_workers'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.pubsub_outbox AS
SELECT (SELECT count(*) FROM pgapp.outbox) AS pending,
       (SELECT min(o.at) FROM pgapp.outbox AS o) AS oldest_pending,
       w.pid AS worker_pid, w.state AS worker_state, w.delivered, w.batches, w.last_delivery
  FROM (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) AS db
  LEFT JOIN pgapp._pubsub_workers() AS w ON w.datid = db.oid;

COMMENT ON VIEW pgapp.pubsub_outbox IS
'The outbox of this database: messages waiting, and its delivery worker (counters since the worker started)';

REVOKE ALL ON pgapp.message, pgapp.outbox FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._pubsub_prune(), pgapp._broadcast_changes(), pgapp._pubsub_workers(),
    pgapp._broadcast_system(text, text, jsonb, text), pgapp._broadcast_system_from(text, text, jsonb, text),
    pgapp._pubsub_check_topic(text), pgapp._pubsub_echo(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._pubsub_echo(text) TO pgapp_admin;   -- broadcast_changes' errors
GRANT EXECUTE ON FUNCTION pgapp._pubsub_prune(), pgapp._broadcast_changes(), pgapp._pubsub_workers()
    TO pgapp_admin;
REVOKE ALL ON pgapp.pubsub_outbox FROM PUBLIC;
GRANT SELECT ON pgapp.pubsub_outbox, pgapp.outbox, pgapp.message TO pgapp_admin;


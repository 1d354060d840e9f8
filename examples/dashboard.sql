-- examples/dashboard.sql: the data side of a live dashboard (the LiveView
-- recipe "live dashboard"): a page that loads a snapshot, then refreshes when
-- one of three topics fires.
--
--   GET /rpc/dashboard_snapshot    {"active_users", "recent_orders", "health"}
--
--   orders:new      created   {"id", "customer", "total", "created_at"}  (each new order)
--   users:activity  seen      {"id", "name", "last_seen_at"}             (a customer's last_seen_at moves)
--   system:health   updated   the "health" part of the snapshot         (pg_cron, every 10 s)
--
-- A client subscribes with pgapp.subscribe(topic) (or LISTEN) and receives
-- {"topic", "event", "payload", "id", "at"}.  The feed never holds more than
-- 20 orders (the recipe's temporary_assigns): the snapshot sends the 20 most
-- recent, and each orders:new payload has the same shape as one of them, so
-- the page prepends it and drops the 21st.
--
-- Through pgapp-gateway (docs/gateway.md, docs/web.md) a browser joins the
-- three topics themselves (channels defined at the end of this file); each
-- join reply is that topic's part of the snapshot, and pushes on a joined
-- topic ask again ("refresh") or search the orders ("search"):
--
--   join orders:new       {"orders": [the 20 most recent], "today": {"orders", "revenue"}}
--   join users:activity   {"active_users", "window_seconds", "users": [the 100 most recently seen]}
--   join system:health    {"health"}
--   push "refresh" {}            -> the topic's join reply again
--   push "search" {"q": text}    -> {"q", "orders"} (orders:new: the 20 most recent whose
--                                   customer contains q, or whose id is q)
--   (pushes: 20 per 10 seconds per token subject, then {"error": {"reason": "too many requests"}})
--
-- examples/web/dashboard.html is the page.
--
-- Roles: "anon" and "app_user" may call the snapshot and read what it reads
-- (customers without their email), never write the tables.  Load into a
-- database that has CREATE EXTENSION pgapp (and pg_cron, to schedule the
-- health broadcast).

CREATE SCHEMA dashboard;
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE dashboard.customer (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL UNIQUE,
    last_seen_at  timestamptz                 -- NULL: never seen
);
-- "who was seen in the last 5 minutes" reads the newest end of this index
CREATE INDEX customer_last_seen ON dashboard.customer (last_seen_at);

CREATE TABLE dashboard."order" (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES dashboard.customer,
    total        numeric(10,2) NOT NULL CHECK (total >= 0),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- the feed: newest first, id breaking ties between orders of one transaction
CREATE INDEX order_feed ON dashboard."order" (created_at DESC, id DESC);
CREATE INDEX order_customer ON dashboard."order" (customer_id);

-- One order as the feed shows it; the snapshot and orders:new both use it.
CREATE FUNCTION dashboard.feed_entry(o dashboard."order")
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('id', o.id, 'customer', c.name, 'total', o.total,
                              'created_at', o.created_at)
      FROM dashboard.customer AS c
     WHERE c.id = o.customer_id
$$;

-- The health panel: pgapp's status and version, and this database's counters.
CREATE FUNCTION dashboard.health()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
               'status', h ->> 'status',
               'version', h ->> 'version',
               'numbackends', d.numbackends,
               'xact_commit', d.xact_commit,
               'xact_rollback', d.xact_rollback,
               -- share of block reads served from shared buffers; NULL before any read
               'blks_hit_ratio', round(d.blks_hit::numeric / nullif(d.blks_hit + d.blks_read, 0), 4))
      FROM pgapp.health() AS h,
           pg_stat_database AS d
     WHERE d.datname = current_database()
$$;

-- Customers seen in the last 5 minutes: the "active users" of the snapshot.
CREATE FUNCTION dashboard.active_users()
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FROM dashboard.customer AS c
     WHERE c.last_seen_at > now() - interval '5 minutes'
$$;

-- The 20 most recent orders as feed entries, newest first; with q, only
-- those whose customer's name contains q (case-insensitively, q taken
-- literally: % and _ match themselves) or whose id is q ("17" or "#17").
-- It walks the feed index newest first and stops at the 20th match; a large
-- table searched for a rare name would want a trigram index on the name.
CREATE FUNCTION dashboard.recent_orders(q text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pattern text;
    wanted_id bigint;
BEGIN
    IF length(q) > 100 THEN
        RAISE EXCEPTION 'search text is longer than 100 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    q := nullif(btrim(q), '');
    IF q IS NULL THEN
        RETURN (SELECT coalesce(jsonb_agg(dashboard.feed_entry(r.o)
                                          ORDER BY (r.o).created_at DESC, (r.o).id DESC), '[]')
                  FROM (SELECT o FROM dashboard."order" AS o
                         ORDER BY o.created_at DESC, o.id DESC
                         LIMIT 20) AS r);
    END IF;
    pattern := '%' || replace(replace(replace(q, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    IF q ~ '^#?[0-9]{1,18}$' THEN
        wanted_id := ltrim(q, '#')::bigint;
    END IF;
    RETURN (SELECT coalesce(jsonb_agg(dashboard.feed_entry(r.o)
                                      ORDER BY (r.o).created_at DESC, (r.o).id DESC), '[]')
              FROM (SELECT o FROM dashboard."order" AS o
                     WHERE o.id = wanted_id
                        OR EXISTS (SELECT 1 FROM dashboard.customer AS c
                                    WHERE c.id = o.customer_id AND c.name ILIKE pattern)
                     ORDER BY o.created_at DESC, o.id DESC
                     LIMIT 20) AS r);
END
$$;

---------------------------------------------------------------------------
-- Seed (before the triggers: old rows are not news)
---------------------------------------------------------------------------

INSERT INTO dashboard.customer (name, email, last_seen_at) VALUES
    ('Ada', 'ada@example.com', now() - interval '1 minute'),
    ('Grace', 'grace@example.com', now() - interval '2 minutes'),
    ('Edsger', 'edsger@example.com', now() - interval '1 hour'),
    ('Barbara', 'barbara@example.com', NULL);
INSERT INTO dashboard."order" (customer_id, total, status, created_at) VALUES
    (1, 42.00, 'shipped', now() - interval '2 hours'),
    (2, 17.50, 'paid', now() - interval '1 hour'),
    (3, 99.90, 'pending', now() - interval '10 minutes');

---------------------------------------------------------------------------
-- What the page listens to
---------------------------------------------------------------------------

-- orders:new gets inserts only, shaped as feed entries; pgapp.broadcast_changes
-- would send updates and deletes too, with the raw row.  In a writing
-- transaction 'auto' mode goes through the outbox, so NOTIFY's commit lock
-- stays out of the order's transaction.
CREATE FUNCTION dashboard.announce_order() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp.broadcast('orders:new', 'created', dashboard.feed_entry(NEW));
    RETURN NULL;
END
$$;
CREATE TRIGGER announce_order AFTER INSERT ON dashboard."order"
    FOR EACH ROW EXECUTE FUNCTION dashboard.announce_order();

-- users:activity: a customer was seen.  Only last_seen_at moving counts, and
-- the email stays out of the payload (any session may subscribe).
CREATE FUNCTION dashboard.announce_activity() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp.broadcast('users:activity', 'seen',
        jsonb_build_object('id', NEW.id, 'name', NEW.name, 'last_seen_at', NEW.last_seen_at));
    RETURN NULL;
END
$$;
CREATE TRIGGER announce_activity AFTER UPDATE OF last_seen_at ON dashboard.customer
    FOR EACH ROW WHEN (NEW.last_seen_at IS DISTINCT FROM OLD.last_seen_at)
    EXECUTE FUNCTION dashboard.announce_activity();

-- system:health: the health panel, pushed by pg_cron (below).
CREATE FUNCTION dashboard.publish_health()
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgapp.broadcast('system:health', 'updated', dashboard.health())
$$;

COMMENT ON FUNCTION dashboard.publish_health() IS
'Broadcast the dashboard''s health panel on system:health (pg_cron job dashboard-health)';

---------------------------------------------------------------------------
-- The API
---------------------------------------------------------------------------

CREATE FUNCTION api.dashboard_snapshot()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'active_users', dashboard.active_users(),
        'recent_orders', dashboard.recent_orders(),
        'health', dashboard.health())
$$;

COMMENT ON FUNCTION api.dashboard_snapshot() IS
'Dashboard snapshot
Customers seen in the last 5 minutes, the 20 most recent orders (newest first) and the health panel;
orders:new, users:activity and system:health say when to refresh it.';

---------------------------------------------------------------------------
-- Roles: anon and app_user read the dashboard, nobody writes through them
---------------------------------------------------------------------------

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

-- feed_entry, health, active_users and recent_orders stay callable by
-- everyone: they read with the caller's rights, and the order trigger calls
-- feed_entry as whoever inserts.
REVOKE ALL ON FUNCTION api.dashboard_snapshot(), dashboard.publish_health() FROM PUBLIC;
GRANT USAGE ON SCHEMA api, dashboard TO anon, app_user;
GRANT EXECUTE ON FUNCTION api.dashboard_snapshot() TO anon, app_user;
-- the snapshot runs with the caller's rights too: reading, without emails
GRANT SELECT ON dashboard."order" TO anon, app_user;
GRANT SELECT (id, name, last_seen_at) ON dashboard.customer TO anon, app_user;

---------------------------------------------------------------------------
-- Channels (pgapp-gateway): a browser joins the three topics themselves
---------------------------------------------------------------------------

-- What a topic's join reply carries: its part of the snapshot (the header
-- of this file); NULL for any other topic.
CREATE FUNCTION dashboard.topic_state(topic text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE topic
        WHEN 'orders:new' THEN jsonb_build_object(
            'orders', dashboard.recent_orders(),
            'today', (SELECT jsonb_build_object('orders', count(*), 'revenue', coalesce(sum(o.total), 0))
                        FROM dashboard."order" AS o
                       WHERE o.created_at >= date_trunc('day', now())))
        WHEN 'users:activity' THEN jsonb_build_object(
            'active_users', dashboard.active_users(),
            'window_seconds', 300,
            'users', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'name', c.name,
                                                                   'last_seen_at', c.last_seen_at)
                                                ORDER BY c.last_seen_at DESC, c.id DESC), '[]')
                        FROM (SELECT c.id, c.name, c.last_seen_at FROM dashboard.customer AS c
                               WHERE c.last_seen_at > now() - interval '5 minutes'
                               ORDER BY c.last_seen_at DESC, c.id DESC
                               LIMIT 100) AS c))
        WHEN 'system:health' THEN jsonb_build_object('health', dashboard.health())
    END
$$;

-- The join function of the three channels (pgapp-gateway runs it as the
-- token's role): {"ok": the topic's state}.
CREATE FUNCTION dashboard."join"(topic text, params jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN s IS NULL
                THEN jsonb_build_object('error', jsonb_build_object('reason', 'not a dashboard topic'))
                ELSE jsonb_build_object('ok', s) END
      FROM dashboard.topic_state(topic) AS s
$$;

-- A joined page's pushes: "refresh" (the join reply again) on any of the
-- topics, "search" {"q": text} on orders:new.  Bad input gets an error
-- reply, which the page shows, rather than an SQL error.  Both read the
-- tables, so a token's subject gets 20 of them per 10 seconds
-- (pgapp.check_rate: shared memory, so it works in read-only transactions).
CREATE FUNCTION dashboard.handle_in(topic text, event text, payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q text;
    rate pgapp.rate_decision;
BEGIN
    IF event IS DISTINCT FROM 'refresh' AND (event IS DISTINCT FROM 'search' OR topic IS DISTINCT FROM 'orders:new') THEN
        RETURN jsonb_build_object('error', jsonb_build_object('reason', 'unknown event', 'event', left(event, 64)));
    END IF;
    IF event = 'search' THEN
        IF jsonb_typeof(payload -> 'q') IS DISTINCT FROM 'string' THEN
            RETURN jsonb_build_object('error', jsonb_build_object('reason', 'q must be a string'));
        END IF;
        q := btrim(payload ->> 'q');
        IF length(q) > 100 THEN
            RETURN jsonb_build_object('error', jsonb_build_object(
                'reason', 'search text is longer than 100 characters', 'max_length', 100));
        END IF;
    END IF;
    rate := pgapp.check_rate('dashboard:' || coalesce(pgapp.token_claims() ->> 'sub', ''), 20, 10);
    IF NOT rate.allowed THEN
        RETURN jsonb_build_object('error', jsonb_build_object(
            'reason', 'too many requests', 'retry_after', rate.retry_after));
    END IF;
    IF event = 'refresh' THEN
        RETURN dashboard."join"(topic, '{}');
    END IF;
    RETURN jsonb_build_object('ok', jsonb_build_object('q', q, 'orders', dashboard.recent_orders(q)));
END
$$;

REVOKE ALL ON FUNCTION dashboard.topic_state(text), dashboard."join"(text, jsonb),
    dashboard.handle_in(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dashboard.topic_state(text), dashboard."join"(text, jsonb),
    dashboard.handle_in(text, text, jsonb) TO anon, app_user;

-- Exact topics, not a pattern: orders:new, users:activity and system:health
-- are what the triggers and pg_cron already broadcast on, so the page needs
-- no topic of its own and every other subscriber sees the same messages.
-- Defining channels takes pgapp_admin (scripts/run loads this as postgres).
DO $$
BEGIN
    PERFORM pgapp.define_channel(t, 'dashboard.join(text, jsonb)', 'dashboard.handle_in(text, text, jsonb)')
       FROM unnest(ARRAY['orders:new', 'users:activity', 'system:health']) AS t;
END
$$;

---------------------------------------------------------------------------
-- Schedule: system:health every 10 seconds, when pg_cron is installed
---------------------------------------------------------------------------

-- cron.schedule with a job name replaces that job, so loading this again
-- keeps one job.  pg_cron before 1.5 has no seconds ("invalid schedule",
-- 22023): the job then runs every minute, cron's finest step.
DO $$
BEGIN
    IF to_regnamespace('cron') IS NULL THEN
        RAISE NOTICE 'pg_cron is not installed: system:health is not scheduled';
        RETURN;
    END IF;
    BEGIN
        PERFORM cron.schedule('dashboard-health', '10 seconds', 'SELECT dashboard.publish_health()');
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE NOTICE 'this pg_cron cannot schedule seconds: system:health is published every minute';
        PERFORM cron.schedule('dashboard-health', '* * * * *', 'SELECT dashboard.publish_health()');
    END;
END
$$;

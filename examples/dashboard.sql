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
        'active_users', (SELECT count(*) FROM dashboard.customer AS c
                          WHERE c.last_seen_at > now() - interval '5 minutes'),
        'recent_orders', (SELECT coalesce(jsonb_agg(dashboard.feed_entry(r.o)
                                                    ORDER BY (r.o).created_at DESC, (r.o).id DESC), '[]')
                            FROM (SELECT o FROM dashboard."order" AS o
                                   ORDER BY o.created_at DESC, o.id DESC
                                   LIMIT 20) AS r),
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

-- feed_entry and health stay callable by everyone: they read with the
-- caller's rights, and the order trigger calls feed_entry as whoever inserts.
REVOKE ALL ON FUNCTION api.dashboard_snapshot(), dashboard.publish_health() FROM PUBLIC;
GRANT USAGE ON SCHEMA api, dashboard TO anon, app_user;
GRANT EXECUTE ON FUNCTION api.dashboard_snapshot() TO anon, app_user;
-- the snapshot runs with the caller's rights too: reading, without emails
GRANT SELECT ON dashboard."order" TO anon, app_user;
GRANT SELECT (id, name, last_seen_at) ON dashboard.customer TO anon, app_user;

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

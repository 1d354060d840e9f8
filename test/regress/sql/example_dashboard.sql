--
-- example_dashboard: examples/dashboard.sql, the data side of a live
-- dashboard.  The three topics the page refreshes on are received by a
-- second connection (dblink) that LISTENs, waiting with a bounded poll as
-- test/regress/sql/pubsub.sql does; the snapshot is called the way PostgREST calls it.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- (quiet: a NOTICE says when this pg_cron cannot schedule seconds)
SET client_min_messages = warning;
\i examples/dashboard.sql
RESET client_min_messages;
\i test/helpers/listener_helpers.sql
\set ECHO all

-- the pg_cron job that publishes system:health (every 10 s; every minute
-- before pg_cron 1.5, which has no seconds)
SELECT jobname, schedule IN ('10 seconds', '* * * * *') AS schedule_ok, command, active
  FROM cron.job WHERE jobname = 'dashboard-health';
-- unscheduled here, so that no timed broadcast lands among this test's
SELECT cron.unschedule('dashboard-health') AS unscheduled;

-- the seed: 2 of 4 customers seen in the last 5 minutes, 3 orders newest first
SELECT s -> 'active_users' AS active_users,
       jsonb_path_query_array(s -> 'recent_orders', '$[*].customer') AS customers,
       jsonb_path_query_array(s -> 'recent_orders', '$[*].total') AS totals
  FROM api.dashboard_snapshot() AS s;

SELECT pg_temp.listen('orders:new') AS channel, pg_temp.listen('users:activity') AS channel;

-- a new order: orders:new "created" with the feed entry, at commit
INSERT INTO dashboard."order" (customer_id, total) VALUES (2, 12.34);
SELECT pg_temp.wait_for('created');
-- the payload is the snapshot's newest entry, id and created_at included
SELECT (g.message -> 'payload') = (api.dashboard_snapshot() -> 'recent_orders' -> 0) AS same_as_snapshot,
       (g.message -> 'payload' ->> 'id')::bigint = o.id AS same_id,
       (g.message -> 'payload' ->> 'created_at')::timestamptz = o.created_at AS same_created_at
  FROM got AS g, dashboard."order" AS o
 WHERE o.id = (SELECT max(id) FROM dashboard."order");
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at', 'last_seen_at']);
-- only inserts: an update or a delete says nothing on orders:new
UPDATE dashboard."order" SET status = 'paid' WHERE total = 12.34;
DELETE FROM dashboard."order" WHERE total = 12.34;
SELECT pgapp.broadcast('orders:new', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at', 'last_seen_at']);

-- a customer seen: users:activity "seen", without the email
UPDATE dashboard.customer SET last_seen_at = now() WHERE name = 'Edsger';
SELECT pg_temp.wait_for('seen');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at', 'last_seen_at']);
SELECT api.dashboard_snapshot() -> 'active_users' AS active_users;
-- other changes to a customer, or last_seen_at set to what it was, say nothing
UPDATE dashboard.customer SET name = 'Ada L.' WHERE name = 'Ada';
UPDATE dashboard.customer SET last_seen_at = last_seen_at WHERE name = 'Grace';
SELECT pgapp.broadcast('users:activity', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at', 'last_seen_at']);
-- 5 minutes is the edge of "active"
UPDATE dashboard.customer SET last_seen_at = now() - interval '6 minutes' WHERE name = 'Grace';
SELECT pg_temp.wait_for('seen');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at', 'last_seen_at']);
SELECT api.dashboard_snapshot() -> 'active_users' AS active_users,
       (SELECT count(*) FROM dashboard.customer WHERE last_seen_at > now() - interval '5 minutes') AS counted;

-- 30 new orders: 30 broadcasts, but the snapshot keeps the 20 most recent, newest first
INSERT INTO dashboard."order" (customer_id, total, created_at)
SELECT 1 + g % 4, g, clock_timestamp() FROM generate_series(1, 30) AS g;
SELECT pg_temp.wait_for('created', 30);
SELECT count(*) AS created_messages,
       count(DISTINCT message -> 'payload' ->> 'id') AS distinct_orders
  FROM got WHERE message ->> 'event' = 'created';
DELETE FROM got;
SELECT jsonb_array_length(s -> 'recent_orders') AS recent_orders,
       jsonb_path_query_array(s -> 'recent_orders', '$[*].total') AS totals
  FROM api.dashboard_snapshot() AS s;
SELECT bool_and(((e.entry ->> 'created_at')::timestamptz, (e.entry ->> 'id')::bigint)
                < ((p.entry ->> 'created_at')::timestamptz, (p.entry ->> 'id')::bigint)) AS newest_first,
       count(*) + 1 AS checked
  FROM jsonb_array_elements(api.dashboard_snapshot() -> 'recent_orders') WITH ORDINALITY AS e(entry, i)
  JOIN jsonb_array_elements(api.dashboard_snapshot() -> 'recent_orders') WITH ORDINALITY AS p(entry, i)
    ON p.i = e.i - 1;
SELECT jsonb_object_keys(api.dashboard_snapshot() -> 'recent_orders' -> 0) AS entry_key ORDER BY 1;

-- the health panel: pgapp's status and version, this database's counters
SELECT jsonb_object_keys(api.dashboard_snapshot()) AS key ORDER BY 1;
SELECT key, jsonb_typeof(value) AS type FROM jsonb_each(api.dashboard_snapshot() -> 'health') ORDER BY key;
SELECT h ->> 'status' AS status, h ->> 'version' = pgapp.version() AS version_ok,
       (h ->> 'numbackends')::int >= 1 AS backends_ok,
       (h ->> 'blks_hit_ratio')::numeric BETWEEN 0 AND 1 AS ratio_ok
  FROM dashboard.health() AS h;

-- system:health carries the health panel
SELECT pg_temp.listen('system:health') AS channel;
SELECT dashboard.publish_health();
SELECT pg_temp.wait_for('updated');
SELECT DISTINCT channel, message ->> 'event' AS event, message -> 'payload' ->> 'status' AS status,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(message -> 'payload') AS k) AS payload_keys
  FROM got;
DELETE FROM got;

-- GET /rpc/dashboard_snapshot as anon: READ ONLY transaction, STABLE function
BEGIN READ ONLY;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set,
       set_config('request.path', '/rpc/dashboard_snapshot', true) IS NOT NULL AS path_set;
SELECT s -> 'active_users' AS active_users, jsonb_array_length(s -> 'recent_orders') AS recent_orders,
       (s -> 'recent_orders' -> 0) - 'id' - 'created_at' AS newest, s -> 'health' ->> 'status' AS health,
       current_setting('response.status', true) AS status
  FROM api.dashboard_snapshot() AS s;
COMMIT;
-- the same as app_user
BEGIN READ ONLY;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set;
SELECT jsonb_array_length(api.dashboard_snapshot() -> 'recent_orders') AS recent_orders;
COMMIT;

-- anon and app_user read through the snapshot only: no writes, no emails, no publishing
BEGIN;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set;
SELECT * FROM pg_temp.show($$ INSERT INTO dashboard."order" (customer_id, total) VALUES (1, 1) $$);
SELECT * FROM pg_temp.show($$ UPDATE dashboard.customer SET last_seen_at = now() $$);
SELECT * FROM pg_temp.show($$ SELECT email FROM dashboard.customer $$);
SELECT * FROM pg_temp.show($$ SELECT dashboard.publish_health() $$);
COMMIT;
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set;
SELECT * FROM pg_temp.show($$ INSERT INTO dashboard."order" (customer_id, total) VALUES (1, 1) $$);
SELECT * FROM pg_temp.show($$ DELETE FROM dashboard."order" $$);
COMMIT;
SELECT count(*) AS orders FROM dashboard."order";

-- the channels of pgapp-gateway: the three topics, one join and one handle_in function
SELECT pattern, join_function, handle_in_function, presence FROM pgapp.channels
 WHERE join_function = 'dashboard.join(text, jsonb)'::regprocedure ORDER BY pattern;

-- a join as the gateway runs it: the token's role and claims, then the function
BEGIN READ ONLY;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims', '{"sub": "alice", "role": "app_user"}', true) IS NOT NULL AS claims_set;
-- orders:new: the 20 most recent orders (as the snapshot has them) and today's counts
SELECT j -> 'ok' -> 'orders' = api.dashboard_snapshot() -> 'recent_orders' AS same_orders,
       jsonb_array_length(j -> 'ok' -> 'orders') AS orders,
       (j -> 'ok' -> 'today' ->> 'orders')::bigint
           = (SELECT count(*) FROM dashboard."order" WHERE created_at >= date_trunc('day', now())) AS today_orders_ok,
       (j -> 'ok' -> 'today' ->> 'revenue')::numeric
           = (SELECT sum(total) FROM dashboard."order" WHERE created_at >= date_trunc('day', now())) AS today_revenue_ok
  FROM dashboard.join('orders:new', '{}') AS j;
-- users:activity: the count and who, most recently seen first, without emails
SELECT j -> 'ok' -> 'active_users' AS active_users, j -> 'ok' -> 'window_seconds' AS window_seconds,
       jsonb_path_query_array(j -> 'ok' -> 'users', '$[*].name') AS users,
       (SELECT array_agg(DISTINCT k ORDER BY k) FROM jsonb_array_elements(j -> 'ok' -> 'users') AS u,
                                                  jsonb_object_keys(u) AS k) AS user_keys
  FROM dashboard.join('users:activity', '{}') AS j;
-- system:health: the health panel
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(j -> 'ok') AS k) AS keys,
       j -> 'ok' -> 'health' ->> 'status' AS status
  FROM dashboard.join('system:health', '{}') AS j;
-- any other topic is refused (only these three patterns lead here)
SELECT dashboard.join('orders:old', '{}');
COMMIT;

-- pushes, as anon: search the orders, refresh a topic; bad input gets an
-- error reply, never an SQL error (which the gateway would answer "handle_in crashed")
INSERT INTO dashboard.customer (name, email) VALUES ('Percent 100%', 'pct@example.com'), ('Under_score', 'us@example.com');
INSERT INTO dashboard."order" (customer_id, total)
SELECT id, 1 FROM dashboard.customer WHERE name IN ('Percent 100%', 'Under_score');
-- the reply of a search for q, in short
CREATE FUNCTION pg_temp.search(q jsonb) RETURNS TABLE (reply text, q text, customers jsonb, n int)
LANGUAGE sql AS $$
    SELECT CASE WHEN r ? 'ok' THEN 'ok' ELSE r::text END, r -> 'ok' ->> 'q',
           (SELECT jsonb_agg(DISTINCT e -> 'customer') FROM jsonb_array_elements(r -> 'ok' -> 'orders') AS e),
           jsonb_array_length(r -> 'ok' -> 'orders')
      FROM dashboard.handle_in('orders:new', 'search', jsonb_build_object('q', q)) AS r
$$;
BEGIN READ ONLY;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set;
-- case-insensitive, trimmed, at most 20, newest first
SELECT * FROM pg_temp.search('"  gRaCe "');
SELECT * FROM pg_temp.search('"a"');
SELECT (r -> 'ok' -> 'orders') = (SELECT jsonb_agg(e ORDER BY (e ->> 'created_at')::timestamptz DESC, (e ->> 'id')::bigint DESC)
                                    FROM jsonb_array_elements(r -> 'ok' -> 'orders') AS e) AS newest_first
  FROM dashboard.handle_in('orders:new', 'search', '{"q": "a"}') AS r;
-- % _ and \ are taken literally
SELECT * FROM pg_temp.search('"%"');
SELECT * FROM pg_temp.search('"100%"');
SELECT * FROM pg_temp.search('"_"');
SELECT * FROM pg_temp.search('"\\"');
-- an order number, with or without #
SELECT (SELECT max(id) FROM dashboard."order") AS last_id \gset
SELECT r -> 'ok' -> 'orders' -> 0 ->> 'id' = :'last_id' AS found, jsonb_array_length(r -> 'ok' -> 'orders') AS n
  FROM dashboard.handle_in('orders:new', 'search', jsonb_build_object('q', '#' || :'last_id')) AS r;
SELECT jsonb_array_length(dashboard.handle_in('orders:new', 'search', jsonb_build_object('q', :'last_id')) -> 'ok' -> 'orders') AS n;
-- empty: the most recent, as the join has them
SELECT dashboard.handle_in('orders:new', 'search', '{"q": ""}') -> 'ok' -> 'orders'
       = dashboard.join('orders:new', '{}') -> 'ok' -> 'orders' AS same_as_join;
-- 100 characters are fine, 101 are not; q must be a string
SELECT * FROM pg_temp.search(to_jsonb(repeat('é', 100)));
SELECT * FROM pg_temp.search(to_jsonb(repeat('é', 101)));
SELECT * FROM pg_temp.search('17');
SELECT * FROM pg_temp.search('null');
SELECT dashboard.handle_in('orders:new', 'search', '[1, 2]');
SELECT dashboard.handle_in('orders:new', 'search', 'null');
-- search is for orders:new only; unknown events are named (at most 64 characters)
SELECT dashboard.handle_in('users:activity', 'search', '{"q": "x"}');
SELECT dashboard.handle_in('orders:new', repeat('e', 100), '{}');
-- refresh: the join reply again
SELECT dashboard.handle_in('users:activity', 'refresh', '{}') = dashboard.join('users:activity', '{}') AS refresh_is_join;
SELECT dashboard.handle_in('nowhere', 'refresh', '{}');
-- pushes are limited per token subject: 20 per 10 s (45 in a row straddle
-- at most two windows, so at most 40 pass)
SELECT set_config('request.jwt.claims', '{"sub": "regress-searcher", "role": "anon"}', true) IS NOT NULL AS claims_set;
SELECT count(*) FILTER (WHERE r ? 'ok') BETWEEN 20 AND 40 AS some_allowed,
       count(*) FILTER (WHERE r -> 'error' ->> 'reason' = 'too many requests') >= 5 AS some_refused,
       bool_and(NOT r ? 'error' OR jsonb_typeof(r -> 'error' -> 'retry_after') = 'number') AS retry_after_given
  FROM generate_series(1, 45) AS g,
       dashboard.handle_in('orders:new', 'search', jsonb_build_object('q', 'ada', 'n', g)) AS r;
-- refreshes count too
SELECT set_config('request.jwt.claims', '{"sub": "regress-refresher", "role": "anon"}', true) IS NOT NULL AS claims_set;
SELECT count(*) FILTER (WHERE r -> 'error' ->> 'reason' = 'too many requests') >= 5 AS some_refused
  FROM generate_series(1, 45) AS g,
       dashboard.handle_in('system:health', 'refresh', jsonb_build_object('n', g)) AS r;
-- bad input does not: after 45 of them, a search passes
SELECT set_config('request.jwt.claims', '{"sub": "regress-clumsy", "role": "anon"}', true) IS NOT NULL AS claims_set;
SELECT count(*) FILTER (WHERE r -> 'error' ->> 'reason' IN ('q must be a string', 'unknown event')) AS refused_as_bad
  FROM generate_series(1, 45) AS g,
       dashboard.handle_in('orders:new', CASE WHEN g % 2 = 0 THEN 'search' ELSE 'nothing' END,
                           jsonb_build_object('q', g)) AS r;
SELECT dashboard.handle_in('orders:new', 'search', '{"q": "ada"}') ? 'ok' AS allowed;
-- another subject has its own 20
SELECT set_config('request.jwt.claims', '{"sub": "regress-other", "role": "anon"}', true) IS NOT NULL AS claims_set;
SELECT dashboard.handle_in('orders:new', 'search', '{"q": "ada"}') ? 'ok' AS allowed;
-- recent_orders itself refuses a long search text
SELECT * FROM pg_temp.show($$ SELECT dashboard.recent_orders(repeat('x', 101)) $$);
COMMIT;

-- only anon and app_user may join or push: another role, even one that may
-- use the schema, may not
CREATE ROLE regress_dashboard_other NOLOGIN;
GRANT USAGE ON SCHEMA dashboard TO regress_dashboard_other;
BEGIN;
SET LOCAL ROLE regress_dashboard_other;
SELECT * FROM pg_temp.show($$ SELECT dashboard.join('orders:new', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT dashboard.handle_in('orders:new', 'refresh', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT dashboard.topic_state('orders:new') $$);
COMMIT;
REVOKE USAGE ON SCHEMA dashboard FROM regress_dashboard_other;
DROP ROLE regress_dashboard_other;

SELECT dblink_disconnect('listener');

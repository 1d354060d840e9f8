--
-- ratelimit: the shared-memory limiter.  Time is moved with the test-only
-- setting pgapp.ratelimit_clock_offset, never by sleeping.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

-- the algorithms at their boundaries, on a private bucket (times in seconds)
-- fixed: 3 per 10 s windows aligned on multiples of 10
SELECT r ->> 'at' AS at, r -> 'allowed' AS allowed, r -> 'remaining' AS remaining,
       r -> 'retry_after' AS retry_after, r -> 'reset_after' AS reset_after
  FROM jsonb_array_elements(pgapp._rate_simulate('fixed', 3, 10, 0,
         ARRAY[0, 1, 2, 3, 9.999, 10, 10, 10, 10, 25])) AS r;
-- sliding: the previous window counts by how much it still overlaps
SELECT r ->> 'at' AS at, r -> 'allowed' AS allowed, r -> 'remaining' AS remaining,
       r -> 'retry_after' AS retry_after
  FROM jsonb_array_elements(pgapp._rate_simulate('sliding', 4, 10, 0,
         ARRAY[9, 9, 9, 9, 10, 12.5, 15, 15, 17.5, 40])) AS r;
-- gcra: one every 2.5 s (4 per 10 s) with a burst of 2 more
SELECT r ->> 'at' AS at, r -> 'allowed' AS allowed, r -> 'remaining' AS remaining,
       r -> 'retry_after' AS retry_after, r -> 'reset_after' AS reset_after
  FROM jsonb_array_elements(pgapp._rate_simulate('gcra', 4, 10, 2,
         ARRAY[0, 0, 0, 0, 2.4, 2.5, 2.5, 5, 12.5])) AS r;

-- the shared table: allowance, denial, reset of the window by the clock
SELECT pgapp.rate_reset('user:1') AS existed;
SELECT allowed, "limit", remaining, retry_after > 0 AS must_wait, reset_after BETWEEN 1 AND 3600 AS resets_within_window
  FROM pgapp.check_rate('user:1', 3, 3600);
SELECT allowed, remaining FROM pgapp.check_rate('user:1', 3, 3600);
SELECT allowed, remaining FROM pgapp.check_rate('user:1', 3, 3600);
SELECT allowed, remaining, retry_after BETWEEN 1 AND 3600 AS retry_within_window, retry_after = reset_after AS retry_at_reset
  FROM pgapp.check_rate('user:1', 3, 3600);
SET pgapp.ratelimit_clock_offset = 3600;
SELECT (pgapp.check_rate('user:1', 3, 3600)).allowed AS next_window;
RESET pgapp.ratelimit_clock_offset;
-- another key has its own bucket
SELECT (pgapp.check_rate('user:2', 3, 3600)).remaining AS other_key;
-- reset forgets a key
SELECT pgapp.rate_reset('user:1') AS existed, (pgapp.check_rate('user:1', 3, 3600)).remaining AS fresh;
-- the same key with other limits is another counter; reset forgets them all
SELECT (pgapp.check_rate('user:9', 1, 3600)).allowed AS first, (pgapp.check_rate('user:9', 1, 3600)).allowed AS second,
       (pgapp.check_rate('user:9', 2, 3600)).allowed AS other_limits,
       (pgapp.check_rate('user:9', 1, 3600, 'sliding')).allowed AS other_algorithm;
SELECT count(*) AS buckets_of_key FROM pgapp.rate_buckets WHERE key = 'user:9';
SELECT pgapp.rate_reset('user:9') AS existed, pgapp.rate_reset('user:9') AS again;
SELECT count(*) AS buckets_of_key FROM pgapp.rate_buckets WHERE key = 'user:9';

-- rate_limit raises PT429 with the body PostgREST shows
SELECT pgapp.rate_limit('user:3', 1, 3600);
SELECT regexp_replace(s, '"retry_after": [0-9]+|[0-9]+ seconds?', 'N', 'g') AS error
  FROM pg_temp.show($$ SELECT pgapp.rate_limit('user:3', 1, 3600) $$) AS s;
-- in return mode too: a limit is never a body to return
BEGIN;
SELECT set_config('request.method', 'GET', true) IS NOT NULL AS in_request;
SELECT regexp_replace(s, '"retry_after": [0-9]+|[0-9]+ seconds?', 'N', 'g') AS error
  FROM pg_temp.show($$ SELECT pgapp.rate_limit('user:3', 1, 3600) $$) AS s;
COMMIT;

-- no table and no WAL: works in a READ ONLY transaction (every PostgREST GET)
BEGIN READ ONLY;
SELECT (pgapp.check_rate('reader', 2, 60)).allowed AS read_only_ok;
COMMIT;
-- every role may check; resetting and listing keys is for pgapp_admin
CREATE ROLE rl_user;
SET ROLE rl_user;
SELECT (pgapp.check_rate('rl_user', 2, 60)).allowed AS user_can_check;
SELECT checks > 0 AS user_reads_stats FROM pgapp.rate_stats;
SELECT * FROM pg_temp.show($$ SELECT pgapp.rate_reset('user:1') $$);
SELECT * FROM pg_temp.show($$ SELECT * FROM pgapp.rate_buckets $$);
RESET ROLE;
DROP ROLE rl_user;

-- pgapp.rate_limit_request(): PostgREST's db-pre-request hook, called as
-- PostgREST calls it (role, request.jwt.claims, request.headers)
INSERT INTO pgapp.rate_plan (name, max_requests, window_seconds, algorithm) VALUES ('tiny', 2, 10, 'gcra');
CREATE ROLE rl_anon;
BEGIN;
SELECT set_config('role', 'rl_anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'GET', true) IS NOT NULL AS method_set,
       set_config('request.jwt.claims', '{"role": "rl_anon", "sub": "alice", "plan": "tiny"}', true) IS NOT NULL AS claims_set,
       set_config('response.headers', '[{"Cache-Control": "no-store"}]', true) IS NOT NULL AS earlier_header;
SELECT pgapp.rate_limit_request();
SELECT jsonb_pretty(current_setting('response.headers')::jsonb) AS response_headers;
COMMIT;
-- the next request of the same user within 5 s: 429 with Retry-After
BEGIN;
SELECT set_config('role', 'rl_anon', true) IS NOT NULL AS role_set,
       set_config('request.jwt.claims', '{"role": "rl_anon", "sub": "alice", "plan": "tiny"}', true) IS NOT NULL AS claims_set;
SELECT * FROM pg_temp.show($$ SELECT pgapp.rate_limit_request() $$);
ROLLBACK;
-- anonymous requests are counted per client address from the trusted header:
-- the last address of the list, the one the proxy appended
SET pgapp.ratelimit_client_header = 'X-Forwarded-For';
BEGIN;
SELECT set_config('request.headers', '{"x-forwarded-for": "203.0.113.7, 10.0.0.1"}', true) IS NOT NULL AS headers_set,
       set_config('request.jwt.claims', '{"role": "rl_anon"}', true) IS NOT NULL AS claims_set;
SELECT pgapp.rate_limit_request();
COMMIT;
SELECT key FROM pgapp.rate_buckets WHERE key LIKE 'ip:%' OR key LIKE 'sub:%' ORDER BY key;
RESET pgapp.ratelimit_client_header;
-- an unknown plan falls back to "default"
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "bob", "plan": "platinum"}', true) IS NOT NULL AS claims_set;
SELECT pgapp.rate_limit_request();
SELECT current_setting('response.headers')::jsonb -> 0 AS policy;
COMMIT;
DROP ROLE rl_anon;
DELETE FROM pgapp.rate_plan WHERE name = 'tiny';

-- long keys are hashed; the view shows a cut copy
SELECT (pgapp.check_rate(repeat('k', 5000), 1, 60)).allowed AS long_key;
SELECT length(key) AS shown_length, algorithm, max_requests, count
  FROM pgapp.rate_buckets WHERE key LIKE 'kkk%';

-- a full table (test/pgapp.conf: 64 keys) keeps counting: each new key evicts
-- the bucket that holds least (expired ones first), none goes uncounted
SELECT swept + evictions AS removed_before FROM pgapp.rate_stats \gset
SELECT count(*) FILTER (WHERE d.allowed AND d.remaining = 4) AS counted
  FROM generate_series(1, 200) AS g, pgapp.check_rate('fill:' || g, 5, 60) AS d;
SELECT full_events AS full_events, swept + evictions - :removed_before >= 136 AS evicted,
       buckets = max_keys AS table_full
  FROM pgapp.rate_stats;
-- the bucket that has counted most is still there and still denies
SELECT count(*) FILTER (WHERE (pgapp.check_rate('fill:busy', 5, 60)).allowed) AS busy_allowed
  FROM generate_series(1, 6);
SELECT count(*) FILTER (WHERE d.allowed) AS new_keys
  FROM generate_series(201, 300) AS g, pgapp.check_rate('fill:' || g, 5, 60) AS d;
SELECT (pgapp.check_rate('fill:busy', 5, 60)).allowed AS busy_still_denied;
-- two minutes later every 60 s bucket has expired: the next new key takes
-- the place of an expired one (counted as swept, not as an eviction)
SET pgapp.ratelimit_clock_offset = 120;
SELECT evictions AS evictions_before, swept AS swept_before FROM pgapp.rate_stats \gset
SELECT (pgapp.check_rate('one more', 5, 60)).allowed AS after_expiry;
SELECT evictions - :evictions_before AS evicted, swept - :swept_before AS swept FROM pgapp.rate_stats;
RESET pgapp.ratelimit_clock_offset;

-- bad input
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 0, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, 'gcra', -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, 'leaky') $$);
-- windows are capped by pgapp.ratelimit_max_window (1 day), a superuser setting
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 86401) $$);
SET pgapp.ratelimit_max_window = '2d';
SELECT (pgapp.check_rate('two days', 10, 172800)).allowed AS raised_cap;
RESET pgapp.ratelimit_max_window;
-- a GCRA burst must fit an integer limit (burst + 1) and drain within the cap
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, 'gcra', 2147483647) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, 'gcra', 14400) $$);
SELECT allowed, "limit", remaining FROM pgapp.check_rate('gcra edge', 10, 60, 'gcra', 14399);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('', 10, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate(NULL, 10, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', NULL, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, limiter => 'api') $$);
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_on_full = 'maybe' $$);
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_max_keys = 10 $$);

-- pgapp.rate_sweep() removes what has expired by the (moved) clock
SET pgapp.ratelimit_clock_offset = 172800;
SELECT pgapp.rate_sweep() > 0 AS swept;
SELECT buckets AS left_over FROM pgapp.rate_stats;
-- pgapp.ratelimit_on_full decides only when nothing can be evicted: here a
-- named limiter reserves the whole table, and "default" has no bucket to give
SELECT pgapp.create_limiter('everything', 64);
SELECT name, max_keys FROM pgapp.rate_limiters WHERE name IN ('default', 'everything') ORDER BY name;
SELECT full_events AS full_before FROM pgapp.rate_stats \gset
SELECT allowed, remaining, retry_after AS retry_after_window FROM pgapp.check_rate('one more', 5, 60);
SET pgapp.ratelimit_on_full = 'allow';
SELECT allowed, remaining FROM pgapp.check_rate('one more', 5, 60);
SET pgapp.ratelimit_on_full = 'error';
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('one more', 5, 60) $$);
RESET pgapp.ratelimit_on_full;
SELECT full_events - :full_before AS full_events FROM pgapp.rate_stats;
SELECT pgapp.drop_limiter('everything');
SELECT name, max_keys FROM pgapp.rate_limiters WHERE name IN ('default', 'everything') ORDER BY name;

-- named limiters: a reserved quota of buckets of their own.  The table holds
-- 64 keys here: 10 for "search" and 4 for "login" leave 50 to "default".
SELECT pgapp.create_limiter('search', 10);
SELECT pgapp.create_limiter('login', 4, 3, 60, 'sliding');
SELECT name, max_keys, max_requests, window_seconds, algorithm, burst, buckets, in_use
  FROM pgapp.rate_limiters ORDER BY name;
-- a limiter is usable once its creation commits (its quota is reserved then)
BEGIN;
SELECT pgapp.create_limiter('later', 1, 1, 60);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 'later') $$);
ROLLBACK;
SELECT count(*) AS not_registered FROM pgapp.rate_limiters WHERE name = 'later';
-- the same key in two limiters is two buckets
SELECT (pgapp.check_rate('alice', 1, 60)).allowed AS in_default,
       (pgapp.check_rate('alice', 1, 60, limiter => 'search')).allowed AS in_search;
SELECT (pgapp.check_rate('alice', 1, 60)).allowed AS in_default,
       (pgapp.check_rate('alice', 1, 60, limiter => 'search')).allowed AS in_search;
SELECT limiter, key, count FROM pgapp.rate_buckets ORDER BY limiter, key;
-- flooding "default" with new keys evicts only "default"'s own buckets, never
-- the places reserved for "search"
SET pgapp.ratelimit_on_full = 'deny';
SELECT count(*) FILTER (WHERE (pgapp.check_rate('flood:' || g, 5, 60)).allowed) AS default_allowed
  FROM generate_series(1, 100) AS g;
SELECT count(*) FILTER (WHERE (pgapp.check_rate('q:' || g, 5, 60, limiter => 'search')).allowed) AS search_allowed
  FROM generate_series(1, 12) AS g;
SELECT name, max_keys, buckets,
       CASE WHEN name <> 'default' THEN checks END AS checks,
       CASE WHEN name <> 'default' THEN denials END AS denials,
       CASE WHEN name <> 'default' THEN full_events END AS full_events,
       CASE WHEN name <> 'default' THEN evictions END AS evictions
  FROM pgapp.rate_limiters ORDER BY name;
RESET pgapp.ratelimit_on_full;
-- a limiter's own limits: check_rate(key, limiter), rate_limit(key, limiter)
SELECT allowed, "limit", remaining FROM pgapp.check_rate('bob', 'login');
SELECT allowed, "limit", remaining FROM pgapp.check_rate('bob', 'login');
SELECT allowed, "limit", remaining FROM pgapp.check_rate('bob', 'login');
SELECT allowed, "limit", remaining, retry_after > 0 AS must_wait FROM pgapp.check_rate('bob', 'login');
SELECT regexp_replace(s, '"retry_after": [0-9]+|[0-9]+ seconds?', 'N', 'g') AS error
  FROM pg_temp.show($$ SELECT pgapp.rate_limit('bob', 'login') $$) AS s;
SELECT pgapp.rate_reset('bob', 'login') AS existed, pgapp.rate_reset('bob', 'login') AS again;
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('bob', 'search') $$);
-- changing the row (even by hand) reaches the limiter at commit
UPDATE pgapp.rate_limiter SET max_requests = 1, algorithm = 'fixed' WHERE name = 'login';
SELECT allowed, "limit", remaining FROM pgapp.check_rate('carol', 'login');
-- a PostgREST plan may count in a named limiter
INSERT INTO pgapp.rate_plan (name, max_requests, window_seconds, limiter) VALUES ('partner', 5, 60, 'login');
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "dave", "plan": "partner"}', true) IS NOT NULL AS claims_set;
SELECT pgapp.rate_limit_request();
COMMIT;
SELECT limiter, key FROM pgapp.rate_buckets WHERE key = 'sub:dave';
DELETE FROM pgapp.rate_plan WHERE name = 'partner';
-- drop_limiter takes effect at commit: its buckets leave, its quota returns to "default"
BEGIN;
SELECT pgapp.drop_limiter('search');
SELECT buckets AS still_there FROM pgapp.rate_limiters WHERE name = 'search';
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT pgapp.drop_limiter('search');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT name, buckets FROM pgapp.rate_limiters WHERE name = 'search';
-- a change made in a released savepoint survives a later sibling savepoint
-- that rolls back (it is handed to the parent, core/xact_defer); a change
-- made in the rolled-back savepoint never reaches shared memory
BEGIN;
SAVEPOINT a;
SELECT pgapp.create_limiter('sibling', 2);
RELEASE SAVEPOINT a;
SAVEPOINT b;
SELECT pgapp.create_limiter('rolledback', 2);
ROLLBACK TO SAVEPOINT b;
COMMIT;
SELECT name, max_keys, in_use FROM pgapp.rate_limiters WHERE name IN ('sibling', 'rolledback') ORDER BY name;
BEGIN;
SAVEPOINT a;
SELECT pgapp.drop_limiter('sibling');
RELEASE SAVEPOINT a;
SAVEPOINT b;
SELECT pgapp.create_limiter('rolledback', 2);
ROLLBACK TO SAVEPOINT b;
COMMIT;
SELECT count(*) AS left_in_use FROM pgapp.rate_limiters WHERE name IN ('sibling', 'rolledback');
-- a transaction that changed a limiter cannot be prepared (refused before
-- the server looks at max_prepared_transactions)
BEGIN;
SELECT pgapp.create_limiter('prepared', 1);
PREPARE TRANSACTION 'rl_prepared';
SELECT count(*) AS prepared_limiters FROM pgapp.rate_limiters WHERE name = 'prepared';
SELECT pgapp.drop_limiter('search');
SELECT name, max_keys, buckets, in_use FROM pgapp.rate_limiters ORDER BY name;
SELECT count(*) AS search_buckets FROM pgapp.rate_buckets WHERE limiter = 'search';
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('q:1', 5, 60, limiter => 'search') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.rate_reset('q:1', 'search') $$);
-- bad input
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('', 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter(repeat('n', 64), 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('default', 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('login', 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 0) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 1, 5) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 1, 5, 0) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 1, 5, 86401) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 1, 5, 60, 'leaky') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 1, 5, 60, 'gcra', -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('huge', 61) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_limiter('nope') $$);
SELECT pgapp.drop_limiter('nope', if_exists => true) AS dropped;
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_limiter('default') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', NULL::text) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', repeat('n', 100)) $$);
SELECT * FROM pg_temp.show($$ INSERT INTO pgapp.rate_limiter (name, max_keys) VALUES ('y', -1) $$) AS s
 WHERE s NOT LIKE 'detail:%';
SELECT count(*) AS nothing_written FROM pgapp.rate_limiter WHERE name IN ('x', 'huge', 'y');
-- only pgapp_admin manages limiters
CREATE ROLE rl_user2;
SET ROLE rl_user2;
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('mine', 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_limiter('login') $$);
SELECT (pgapp.check_rate('erin', 'login')).allowed AS user_can_check;
RESET ROLE;
DROP ROLE rl_user2;
SELECT pgapp.drop_limiter('login');
RESET pgapp.ratelimit_clock_offset;

-- the pgapp housekeeper sweeps what has expired by the real clock
-- (pgapp.ratelimit_sweep_interval = 1 in test/pgapp.conf); wait for it, at most 10 s
SET pgapp.ratelimit_clock_offset = -7200;
SELECT (pgapp.check_rate('sweep me', 1, 60)).allowed AS made_expired_bucket;
RESET pgapp.ratelimit_clock_offset;
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pgapp.rate_buckets WHERE key = 'sweep me');
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT count(*) AS swept_by_housekeeper FROM pgapp.rate_buckets WHERE key = 'sweep me';
SELECT count(*) AS housekeepers FROM pg_stat_activity WHERE backend_type = 'pgapp housekeeper';

--
-- ratelimit: the shared-memory limiter.  Time is moved with the test-only
-- setting pgapp.ratelimit_clock_offset, never by sleeping.
--
\set ECHO none
\i test/regress_helpers.sql
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

-- rate_limit raises PT429 with the body PostgREST shows
SELECT pgapp.rate_limit('user:3', 1, 3600);
SELECT regexp_replace(s, '"retry_after": [0-9]+|[0-9]+ second', 'N', 'g') AS error
  FROM pg_temp.show($$ SELECT pgapp.rate_limit('user:3', 1, 3600) $$) AS s;
-- in return mode too: a limit is never a body to return
BEGIN;
SELECT set_config('request.method', 'GET', true) IS NOT NULL AS in_request;
SELECT regexp_replace(s, '"retry_after": [0-9]+|[0-9]+ second', 'N', 'g') AS error
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
-- anonymous requests are counted per client address from the trusted header
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

-- a full table (test/pgapp.conf: 64 keys): expired buckets are reclaimed first,
-- then pgapp.ratelimit_on_full decides
SELECT count(*) FILTER (WHERE (pgapp.check_rate('fill:' || g, 5, 60)).allowed) AS filled
  FROM generate_series(1, 200) AS g;
SELECT full_events > 0 AS was_full, buckets <= max_keys AS bounded FROM pgapp.rate_stats;
SET pgapp.ratelimit_on_full = 'deny';
SELECT (pgapp.check_rate('one more', 5, 60)).allowed AS denied_when_full;
SET pgapp.ratelimit_on_full = 'error';
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('one more', 5, 60) $$);
-- two minutes later every 60 s bucket has expired and is reclaimed
SET pgapp.ratelimit_clock_offset = 120;
SELECT (pgapp.check_rate('one more', 5, 60)).allowed AS after_expiry;
SELECT evictions > 0 AS evicted FROM pgapp.rate_stats;
RESET pgapp.ratelimit_clock_offset;
RESET pgapp.ratelimit_on_full;

-- bad input
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 0, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, 'gcra', -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, 'leaky') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('', 10, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate(NULL, 10, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', NULL, 60) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 10, 60, limiter => 'api') $$);
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_on_full = 'maybe' $$);
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_max_keys = 10 $$);

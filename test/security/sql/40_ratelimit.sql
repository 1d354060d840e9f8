--
-- security/40_ratelimit: attacks on the shared-memory rate limiter, replayed
-- as sec_attacker (only PUBLIC's rights) and as PostgREST's anon role.  The
-- test instance holds 64 keys (test/pgapp.conf), so one statement fills it.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

-- A. Filling the table must not stop counting (it used to allow every new
--    key uncounted, in every database).  The victim has used 3 of 5 ...
SET ROLE sec_victim;
SELECT allowed, remaining FROM pgapp.check_rate('victim', 5, 86400);
SELECT allowed, remaining FROM pgapp.check_rate('victim', 5, 86400);
SELECT allowed, remaining FROM pgapp.check_rate('victim', 5, 86400);
RESET ROLE;
SELECT evictions AS evictions_before, full_events AS full_before FROM pgapp.rate_stats \gset
-- ... then one statement floods the table with 1,000 fresh keys: each is
-- counted (the cheapest bucket makes room), none is let through uncounted
SET ROLE sec_attacker;
SELECT count(*) FILTER (WHERE d.allowed) AS allowed, count(*) FILTER (WHERE d.remaining = 9) AS counted
  FROM generate_series(1, 1000) AS g, pgapp.check_rate('flood:' || g, 10, 86400) AS d;
-- a flooded key still counts: its 11th request in the window is denied
SELECT count(*) FILTER (WHERE (pgapp.check_rate('flood:again', 10, 86400)).allowed) AS allowed_of_11
  FROM generate_series(1, 11);
SELECT evictions - :evictions_before >= 900 AS evictions_reported, full_events - :full_before AS new_full_events,
       buckets <= max_keys AS bounded
  FROM pgapp.rate_stats;
RESET ROLE;
-- the victim's bucket survived: fresh keys evict each other (the bucket with
-- the fewest requests counted goes first), so its 4th and 5th are allowed
-- and its 6th is denied
SET ROLE sec_victim;
SELECT allowed, remaining FROM pgapp.check_rate('victim', 5, 86400);
SELECT allowed, remaining FROM pgapp.check_rate('victim', 5, 86400);
SELECT allowed, remaining, retry_after > 0 AS must_wait FROM pgapp.check_rate('victim', 5, 86400);
RESET ROLE;

-- B. Windows are capped (pgapp.ratelimit_max_window, 1 day by default): a
--    bucket can no longer be kept for 41 years
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('forever', 1, 2147483647) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('forever', 1, 86401, 'sliding') $$);
SELECT allowed FROM pgapp.check_rate('one day', 1, 86400);
-- nor through a GCRA burst that takes longer than the cap to drain
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('forever', 1, 86400, 'gcra', 1) $$);
-- and only a superuser may raise the cap
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_max_window = 2147483647 $$);
RESET ROLE;

-- C. GCRA edges: burst 2147483647 used to report limit -2147483648 and deny
--    the first request; 2147483647 per second divided by zero
SET ROLE sec_attacker;
SELECT allowed, "limit", remaining FROM pgapp.check_rate('gcra:b0', 10, 60, 'gcra', 0);
SELECT allowed, "limit", remaining FROM pgapp.check_rate('gcra:b1', 10, 60, 'gcra', 1);
SELECT allowed, "limit", remaining FROM pgapp.check_rate('gcra:max', 2147483647, 1, 'gcra', 2147483646);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('gcra:over', 2147483647, 1, 'gcra', 2147483647) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('gcra:neg', 10, 60, 'gcra', -1) $$);
SELECT allowed, "limit", remaining FROM pgapp.check_rate('gcra:fast', 2147483647, 1, 'gcra');
SELECT allowed, "limit", remaining FROM pgapp.check_rate('fixed:max', 2147483647, 86400);
RESET ROLE;
SELECT r -> 'allowed' AS allowed, r -> 'remaining' AS remaining
  FROM jsonb_array_elements(pgapp._rate_simulate('gcra', 2147483647, 1, 2147483646, ARRAY[0, 0])) AS r;

-- D. The same key with other limits is another counter: a caller cannot
--    reset (or share) a bucket by checking it with other limits or another
--    algorithm.  (The victim's bucket counts 2 requests, so that eviction,
--    which takes the cheapest of a random sample, always prefers one of the
--    flood's 1-request buckets to it.)
SET ROLE sec_victim;
SELECT allowed FROM pgapp.check_rate('login:carol', 2, 86400);
SELECT allowed FROM pgapp.check_rate('login:carol', 2, 86400);
SELECT allowed FROM pgapp.check_rate('login:carol', 2, 86400);
RESET ROLE;
SET ROLE sec_attacker;
SELECT allowed, remaining FROM pgapp.check_rate('login:carol', 1000, 86400);
SELECT allowed, remaining FROM pgapp.check_rate('login:carol', 2, 86400, 'gcra');
SELECT allowed, remaining FROM pgapp.check_rate('login:carol', 2, 86399);
RESET ROLE;
SET ROLE sec_victim;
SELECT allowed AS still_denied FROM pgapp.check_rate('login:carol', 2, 86400);
RESET ROLE;

-- E. PostgREST requests, replayed as PostgREST runs them: one transaction,
--    SET LOCAL ROLE, request.* settings, the db-pre-request hook, the main
--    query, then response.status and response.headers
--    (test/security/postgrest_request.sql).  Anonymous callers may make two
--    requests a minute here (GCRA, so that Retry-After does not depend on
--    the clock).
UPDATE pgapp.rate_plan SET max_requests = 2, window_seconds = 60, algorithm = 'gcra', burst = 1
 WHERE name = 'default';
-- (first the superuser empties the table, so that the keys listed below are
-- all there: two days on, every bucket above has expired)
SET pgapp.ratelimit_clock_offset = 172800;
SELECT pgapp.rate_sweep() > 0 AS swept;
RESET pgapp.ratelimit_clock_offset;
-- without a trusted header (the default) a spoofed X-Forwarded-For changes
-- nothing: every anonymous request counts against the connection's address
SHOW pgapp.ratelimit_client_header;
\set headers '{"x-forwarded-for": "198.51.100.1"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "198.51.100.2"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "198.51.100.3"}'
\i test/security/postgrest_request.sql
SELECT key FROM pgapp.rate_buckets WHERE key LIKE 'ip:%' ORDER BY key;
-- with the header trusted (behind a proxy that appends the client's address),
-- clients are counted apart by the rightmost address: what a client writes
-- on the left is ignored
SET pgapp.ratelimit_client_header = 'X-Forwarded-For';
\set headers '{"x-forwarded-for": "192.0.2.10"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "10.9.9.9, 192.0.2.10"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "10.7.7.7,192.0.2.10"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "192.0.2.10, 192.0.2.11"}'
\i test/security/postgrest_request.sql
-- IPv6 clients are counted per /64 (one client holds a whole /64)
\set headers '{"x-forwarded-for": "2001:db8:1:2::1"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "2001:db8:1:2:ffff::9"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "2001:db8:1:2:aaaa::7"}'
\i test/security/postgrest_request.sql
-- malformed values never crash and never mean "no limit": they share one key
\set headers '{"x-forwarded-for": "not an address"}'
\i test/security/postgrest_request.sql
SELECT jsonb_build_object('x-forwarded-for', repeat('9', 140000))::text AS headers \gset
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "999.1.1.1"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": ["192.0.2.99"]}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": "192.0.2.99/0"}'
\i test/security/postgrest_request.sql
\set headers '{"x-forwarded-for": ""}'
\i test/security/postgrest_request.sql
\set headers '{}'
\i test/security/postgrest_request.sql
SELECT key FROM pgapp.rate_buckets WHERE key LIKE 'ip:%' ORDER BY key;
RESET pgapp.ratelimit_client_header;
-- an ordinary role cannot choose which header is trusted
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_client_header = 'x-client' $$);
RESET ROLE;
UPDATE pgapp.rate_plan SET max_requests = 100, window_seconds = 60, algorithm = 'fixed', burst = 0
 WHERE name = 'default';

-- F. Error messages do not echo kilobytes of input: 64 characters and "..."
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 1, 60, repeat('x', 140000)) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 1, 60, limiter => repeat('é', 140000)) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', repeat('n', 140000)) $$);
RESET ROLE;
SET ROLE sec_admin;
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter(repeat('n', 140000), 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('x', 1, 1, 60, repeat('a', 140000)) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_limiter(repeat('n', 140000)) $$);
RESET ROLE;

-- G. What an ordinary role may not do
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.rate_reset('victim') $$);
SELECT * FROM pg_temp.show($$ SELECT * FROM pgapp.rate_buckets $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.rate_sweep() $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.create_limiter('mine', 60) $$);
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_on_full = 'allow' $$);
SELECT * FROM pg_temp.show($$ SET pgapp.ratelimit_clock_offset = 1e6 $$);
RESET ROLE;

-- H. Keys belong to their database: a role of another database counting the
--    same key cannot lock this database's user out
CREATE DATABASE sec_rl_other;
\c sec_rl_other
CREATE EXTENSION pgapp;
CREATE ROLE sec_rl_other_role NOLOGIN;
SET ROLE sec_rl_other_role;
SELECT count(*) FILTER (WHERE (pgapp.check_rate('sub:alice', 100, 86400)).allowed) AS other_db_allowed
  FROM generate_series(1, 150);
RESET ROLE;
\c contrib_regression
SET ROLE anon;
SELECT allowed, remaining FROM pgapp.check_rate('sub:alice', 100, 86400);
RESET ROLE;
-- nor see them: rate_buckets lists this database's keys only, and resetting
-- ours leaves theirs
SELECT count(*) AS our_buckets FROM pgapp.rate_buckets WHERE key = 'sub:alice';
SELECT pgapp.rate_reset('sub:alice') AS ours_reset;
\c sec_rl_other
SELECT key, count FROM pgapp.rate_buckets WHERE key = 'sub:alice';
\c contrib_regression
DROP DATABASE sec_rl_other WITH (FORCE);
DROP ROLE sec_rl_other_role;

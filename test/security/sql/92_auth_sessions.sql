--
-- security/92_auth_sessions: attacks on passwords and sessions
-- (pgapp.register, pgapp.login, pgapp.refresh), as anon and sec_attacker.
--
--   A. SQL injection through the email and the profile, and a profile that
--      tries to set the columns it is stored beside (id, role, the hash);
--   B. huge passwords and profiles: refused before any hashing, so they
--      cost no Argon2id work and no storage;
--   C. reading the hashes or the refresh tokens, calling the internal
--      functions, changing the costs or the default role;
--   D. a login storm: no more hashes at once than pgapp.auth_hash_concurrency
--      (the counters of pgapp.auth_hash_stats; the concurrent storm itself is
--      test/concurrency/login.sh);
--   E. refresh token reuse, a rotated token, another user's or a forged
--      token; ending another user's sessions;
--   F. telling known emails from unknown ones by the time login takes: the
--      medians of 20 logins each differ by less than 10% (up to 3 rounds on
--      a busy machine);
--   G. guessing passwords: the account and the client are limited, 429
--      even for the right password once limited;
--   H. a role for tokens a user must not have.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'sessions-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
CREATE ROLE authenticated NOLOGIN;
GRANT EXECUTE ON FUNCTION pg_temp.show(text) TO anon, sec_attacker;
-- generous limits until G
SET pgapp.auth_login_max_attempts = 1000;
SET pgapp.auth_login_client_max_attempts = 10000;

-- A. Injection: the values are data, never SQL; a profile is only a profile.
SET ROLE anon;
SELECT pg_temp.show($$SELECT pgapp.register('x''); DROP TABLE pgapp.auth_user; --@example.com', 'long enough password')$$);
SELECT u ->> 'email' AS email, u ->> 'role' AS role, u -> 'profile' AS profile, u ? 'password_hash' AS shows_hash
  FROM pgapp.register('victim@example.com', 'victim password 1',
                      '{"id": "00000000-0000-0000-0000-000000000000", "role": "pgapp_admin",
                        "password_hash": "$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA", "email": "admin@example.com"}') AS u;
SELECT pg_temp.show($$SELECT pgapp.login('victim@example.com'' OR ''1''=''1', 'x'' OR ''1''=''1')$$);
SELECT pg_temp.show($$SELECT pgapp.login('%', 'victim password 1')$$);
RESET ROLE;
SELECT email, role, id <> '00000000-0000-0000-0000-000000000000' AS own_id,
       password_hash LIKE '$argon2id$v=19$m=65536,t=2,p=1$%' AS real_hash
  FROM pgapp.auth_user ORDER BY email;
SELECT count(*) AS tables_left FROM pg_tables WHERE schemaname = 'pgapp' AND tablename = 'auth_user';

-- B. Huge inputs: refused before hashing, nothing stored.  Only the
--    unknown 10 MB email costs one hash, as every unknown email does.
CREATE TEMP TABLE hashes_before AS SELECT hashes FROM pgapp.auth_hash_stats;
SET ROLE anon;
SELECT pg_temp.show($$SELECT pgapp.register('big@example.com', repeat('p', 10000000))$$);
SELECT pg_temp.show($$SELECT pgapp.register('big@example.com', 'long enough password',
                                            jsonb_build_object('x', repeat('p', 10000000)))$$);
SELECT pg_temp.show($$SELECT pgapp.register(repeat('e', 10000000) || '@example.com', 'long enough password')$$);
-- 254 characters but 400 bytes: the table's check refused it with the raw
-- 23514, whose DETAIL showed the new row, hash included
SELECT pg_temp.show($$SELECT pgapp.register(repeat('é', 200) || '@example.com', 'long enough password')$$);
SELECT pg_temp.show($$SELECT pgapp.login('victim@example.com', repeat('p', 10000000))$$);
SELECT pg_temp.show($$SELECT pgapp.login(repeat('e', 10000000), 'victim password 1')$$);
SELECT pg_temp.show($$SELECT pgapp.refresh(repeat('r', 10000000))$$);
RESET ROLE;
SELECT s.hashes - b.hashes AS hashes_run FROM pgapp.auth_hash_stats AS s, hashes_before AS b;
SELECT count(*) AS users FROM pgapp.auth_user;

-- C. The tables, the internal functions and the settings are out of reach.
SET ROLE sec_attacker;
SELECT pg_temp.show($$SELECT password_hash FROM pgapp.auth_user$$);
SELECT pg_temp.show($$SELECT token_hash FROM pgapp.auth_refresh_token$$);
SELECT pg_temp.show($$UPDATE pgapp.auth_user SET role = 'sec_attacker'$$);
SELECT pg_temp.show($$SELECT pgapp._password_verify(NULL, 'x')$$);
SELECT pg_temp.show($$SELECT pgapp._auth_session(gen_random_uuid(), 'sec_attacker', NULL, NULL)$$);
SELECT pg_temp.show($$SELECT pgapp._auth_reused(gen_random_uuid())$$);
SELECT pg_temp.show($$SET pgapp.auth_password_opslimit = 1$$);
SELECT pg_temp.show($$SET pgapp.auth_default_role = 'sec_attacker'$$);
SELECT pg_temp.show($$SET pgapp.auth_hash_concurrency = 1000$$);
RESET ROLE;
SET ROLE sec_admin;
SELECT pg_temp.show($$SELECT password_hash FROM pgapp.auth_user$$);
SELECT pg_temp.show($$SELECT pgapp._password_hash('x')$$);
RESET ROLE;

-- D. Every hash so far ran under the cap (the storm: test/concurrency/login.sh).
SELECT in_use, peak <= concurrency AS under_cap FROM pgapp.auth_hash_stats;

-- E. Sessions: a rotated token is reuse and ends the session; another
--    user's, an access token or a stored hash is no refresh token.
SET ROLE anon;
SELECT pgapp.login('victim@example.com', 'victim password 1') AS v1 \gset
SELECT pgapp.refresh(:'v1'::jsonb ->> 'refresh_token') AS v2 \gset
-- the thief replays the old token: refused, and the victim's new token dies with it
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'v1'::jsonb ->> 'refresh_token'));
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'v2'::jsonb ->> 'refresh_token'));
-- the access token, or the token with a character changed
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'v2'::jsonb ->> 'access_token'));
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', overlay(:'v2'::jsonb ->> 'refresh_token' PLACING 'A' FROM 1 FOR 1)));
RESET ROLE;
SELECT pgapp.register('other@example.com', 'other password 1') IS NOT NULL AS other_registered;
SELECT pgapp.login('other@example.com', 'other password 1') AS o1 \gset
-- what the table stores is not a token
SELECT encode(token_hash, 'hex') AS stored FROM pgapp.auth_refresh_token
 WHERE token_hash = sha256(convert_to(:'o1'::jsonb ->> 'refresh_token', 'UTF8')) \gset
SET ROLE anon;
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'stored'));
-- another user's token gives that user's session, never the caller's: the
-- token is all there is, so it is a bearer secret
SELECT (pgapp.decode_token(pgapp.refresh(:'o1'::jsonb ->> 'refresh_token') ->> 'access_token') ->> 'sub')
     = (pgapp.decode_token(:'o1'::jsonb ->> 'access_token') ->> 'sub') AS same_user;
RESET ROLE;

-- logout needs a valid token; logout_everywhere is for the user or pgapp_admin
SELECT id::text AS victim_id FROM pgapp.auth_user WHERE email = 'victim@example.com' \gset
SET ROLE sec_attacker;
SELECT replace(m, :'victim_id', '<victim>') AS m
  FROM pg_temp.show(format('SELECT pgapp.logout_everywhere(%L)', :'victim_id')) AS m;
SELECT pg_temp.show($$SELECT pgapp.logout('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl')$$);
-- (logout is STRICT: a NULL token revokes nothing)
SELECT pg_temp.show($$SELECT pgapp.logout(NULL)$$);
RESET ROLE;

-- F. Timing: an unknown email costs what a wrong password does (a dummy
--    hash with the same costs).  20 of each, interleaved; their medians
--    within 10%.  The machine the suite runs on may be busy with other
--    work, so a round that misses is measured again, up to 3 rounds: a real
--    difference (an unknown email that skips the hash answers in well under
--    1 ms, against about 100 ms) fails every round.
CREATE TEMP TABLE login_times (kind text, ms double precision);
CREATE FUNCTION pg_temp.login_timing_round() RETURNS TABLE (u double precision, w double precision)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    kind text;
BEGIN
    TRUNCATE login_times;
    FOR i IN 1 .. 21 LOOP
        FOREACH kind IN ARRAY ARRAY['unknown', 'wrong'] LOOP
            t0 := clock_timestamp();
            BEGIN
                PERFORM pgapp.login(CASE kind WHEN 'unknown' THEN 'nobody' || i || '@example.com'
                                              ELSE 'victim@example.com' END, 'not the password');
            EXCEPTION WHEN SQLSTATE 'PT401' THEN
                NULL;
            END;
            IF i > 1 THEN  -- the first of each warms up
                INSERT INTO login_times VALUES (kind, extract(epoch FROM clock_timestamp() - t0) * 1000);
            END IF;
        END LOOP;
    END LOOP;
    RETURN QUERY
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l.ms) FILTER (WHERE l.kind = 'unknown'),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY l.ms) FILTER (WHERE l.kind = 'wrong')
          FROM login_times AS l;
END $$;
CREATE TEMP TABLE timing_rounds (round int, u double precision, w double precision);
DO $$
BEGIN
    FOR r IN 1 .. 3 LOOP
        INSERT INTO timing_rounds SELECT r, t.u, t.w FROM pg_temp.login_timing_round() AS t;
        EXIT WHEN (SELECT abs(t.u - t.w) / greatest(t.u, t.w) < 0.10 FROM timing_rounds AS t WHERE t.round = r);
    END LOOP;
END $$;
SELECT (SELECT count(*) FROM login_times) AS logins_per_round,
       bool_or(abs(u - w) / greatest(u, w) < 0.10) AS within_10_percent,
       bool_and(least(u, w) > 5) AS both_hashed
  FROM timing_rounds;

-- G. Guessing: 5 attempts per account per 5 minutes (the defaults), then
--    429 even with the right password; the client is limited across accounts.
RESET pgapp.auth_login_max_attempts;
SELECT pgapp.rate_reset('auth:login:account:' || encode(sha256(convert_to('victim@example.com', 'UTF8')), 'hex'));
SET ROLE anon;
SELECT i, m FROM generate_series(1, 6) AS i,
       pg_temp.show(format('SELECT pgapp.login(%L, %L)', 'victim@example.com', 'guess ' || i)) AS m
 WHERE m LIKE 'sqlstate%';
SELECT regexp_replace(m, '[0-9]+', 'N') AS m
  FROM pg_temp.show($$SELECT pgapp.login('victim@example.com', 'victim password 1')$$) AS m
 WHERE m LIKE 'sqlstate%' OR m LIKE 'message%';
RESET ROLE;
-- through PostgREST (/rpc/login, the client by its address): 429 and Retry-After
SET ROLE anon;
BEGIN;
SELECT set_config('request.method', 'POST', true) AS method,
       set_config('request.path', '/rpc/login', true) AS path \gset
SELECT m LIKE '%"status": 429%' AND m LIKE '%Retry-After%' AS status_429_retry_after
  FROM pg_temp.show($$SELECT pgapp.login('victim@example.com', 'victim password 1')$$) AS m
 WHERE m LIKE 'detail%';
ROLLBACK;
RESET ROLE;
RESET pgapp.auth_login_client_max_attempts;
SELECT pgapp.rate_reset('auth:login:' || pgapp.request_client_key());
SET ROLE anon;
SELECT count(*) FILTER (WHERE m = 'sqlstate: PT401') AS refused, count(*) FILTER (WHERE m = 'sqlstate: PT429') AS limited
  FROM generate_series(1, 55) AS i,
       pg_temp.show(format('SELECT pgapp.login(%L, %L)', 'nobody' || i || '@example.com', 'guess')) AS m;
RESET ROLE;
SELECT pgapp.rate_reset('auth:login:' || pgapp.request_client_key());

-- H. A role a token must not carry: login signs no token for it.
UPDATE pgapp.auth_user SET role = 'pgapp_admin' WHERE email = 'other@example.com';
SET pgapp.auth_login_max_attempts = 1000;
SET ROLE anon;
SELECT pg_temp.show($$SELECT pgapp.login('other@example.com', 'other password 1')$$);
RESET ROLE;

DELETE FROM pgapp.auth_user;
DROP ROLE authenticated;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

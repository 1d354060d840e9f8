--
-- security/93_auth_review2: a second attacker's review of passwords and
-- sessions (pgapp.register, login, refresh, logout).
--
--   A. an attacker holding a refresh token refreshes more than 100 times
--      (each refresh is cheap: no hash) and keeps the first access tokens.
--      A family keeps only its newest 100 refresh tokens, and ending it
--      (logout, or reuse of a copied token) revokes the access tokens its
--      rows name: a row must not be dropped while its access token lives,
--      so the 100th refresh within an access token's lifetime gets 429
--      (revoking on the drop would let refreshes flood the revocation
--      cache).
--
-- (The race of a refresh with a concurrent logout is
-- test/isolation/specs/auth_logout_race.spec.)
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'review2-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
CREATE ROLE authenticated NOLOGIN;
GRANT EXECUTE ON FUNCTION pg_temp.show(text) TO anon;
SET pgapp.auth_login_max_attempts = 1000;
SET pgapp.auth_login_client_max_attempts = 10000;
-- cheap hashes: this file is about sessions
SET pgapp.auth_password_opslimit = 1;
SET pgapp.auth_password_memlimit = 8192;
-- the small test cache overflows here: checks then read the tables
SET client_min_messages = error;

-- A. 99 refreshes, the 100th refused, then logout; then reuse of a used token.
SET ROLE anon;
SELECT pgapp.register('review2@example.com', 'review2 password') ->> 'email' AS registered;
SELECT pgapp.login('review2@example.com', 'review2 password') AS s0 \gset
RESET ROLE;
CREATE TEMP TABLE review2_tokens (n integer, refresh text, access text);
GRANT ALL ON review2_tokens TO anon;
INSERT INTO review2_tokens VALUES (0, :'s0'::jsonb ->> 'refresh_token', :'s0'::jsonb ->> 'access_token');
CREATE FUNCTION pg_temp.review2_refresh(n integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    s jsonb;
    last integer := (SELECT max(t.n) FROM review2_tokens AS t);
BEGIN
    FOR i IN last + 1 .. last + n LOOP
        s := pgapp.refresh((SELECT t.refresh FROM review2_tokens AS t WHERE t.n = i - 1));
        INSERT INTO review2_tokens VALUES (i, s ->> 'refresh_token', s ->> 'access_token');
    END LOOP;
    RETURN last + n;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.review2_refresh(integer) TO anon;
SET ROLE anon;
SELECT pg_temp.review2_refresh(99) AS refreshed;
-- the 100th would drop the first token, whose access token lives: 429,
-- with the seconds until it expires, and nothing is written
SELECT regexp_replace(m, '(retry_after": |after )[0-9]+', '\1N', 'g') AS m
  FROM pg_temp.show($$SELECT pg_temp.review2_refresh(1)$$) AS m;
-- through PostgREST: 429 and Retry-After
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT m LIKE '%"status": 429%' AND m LIKE '%Retry-After%' AS status_429_retry_after
  FROM pg_temp.show($$SELECT pg_temp.review2_refresh(1)$$) AS m
 WHERE m LIKE 'detail%';
ROLLBACK;
RESET ROLE;
-- the table keeps the newest 100 of the family, all of them
SELECT count(*) AS family_rows, count(*) FILTER (WHERE t.used_at IS NULL) AS unused
  FROM pgapp.auth_refresh_token AS t
  JOIN pgapp.auth_user AS u ON u.id = t.user_id WHERE u.email = 'review2@example.com';
SELECT access AS a_last FROM review2_tokens WHERE n = 99 \gset
-- the session ends: logout with its newest access token
SET ROLE anon;
SELECT pgapp.logout(:'a_last');
-- every access token of the session is refused, the oldest included
SELECT count(*) FILTER (WHERE m = 'sqlstate: PJ005') AS revoked, count(*) AS tokens
  FROM review2_tokens AS t, pg_temp.show(format('SELECT pgapp.decode_token(%L)', t.access)) AS m
 WHERE m LIKE 'sqlstate:%' OR m = 'no error';
RESET ROLE;

-- the same through reuse: a new session, 99 refreshes, the 100th refused,
-- then a used refresh token (a copy of the first) is presented again
TRUNCATE review2_tokens;
SET ROLE anon;
SELECT pgapp.login('review2@example.com', 'review2 password') AS s1 \gset
RESET ROLE;
INSERT INTO review2_tokens VALUES (0, :'s1'::jsonb ->> 'refresh_token', :'s1'::jsonb ->> 'access_token');
SET ROLE anon;
SELECT pg_temp.review2_refresh(99) AS refreshed;
SELECT m FROM pg_temp.show($$SELECT pg_temp.review2_refresh(1)$$) AS m WHERE m LIKE 'sqlstate%';
-- inside a request, so that the revocation commits
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.refresh(t.refresh) AS body, current_setting('response.status', true) AS status
  FROM review2_tokens AS t WHERE t.n = 0;
COMMIT;
SELECT count(*) FILTER (WHERE m = 'sqlstate: PJ005') AS revoked, count(*) AS tokens
  FROM review2_tokens AS t, pg_temp.show(format('SELECT pgapp.decode_token(%L)', t.access)) AS m
 WHERE m LIKE 'sqlstate:%' OR m = 'no error';
RESET ROLE;

RESET client_min_messages;
DROP TABLE review2_tokens;
DELETE FROM pgapp.auth_user;
DROP ROLE authenticated;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

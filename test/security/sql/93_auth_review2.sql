--
-- security/93_auth_review2: a second attacker's review of passwords and
-- sessions (pgapp.register, login, refresh, logout).
--
--   A. an attacker holding a refresh token refreshes more than 100 times
--      (each refresh is cheap: no hash) and keeps the first access tokens;
--      refresh keeps only the newest 100 refresh tokens of a family, so
--      when the session is ended (logout, or reuse of a copied token) the
--      access tokens of the dropped rows must already be revoked.
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

-- A. 101 refreshes, then logout; then reuse of a copied token.
SET ROLE anon;
SELECT pgapp.register('review2@example.com', 'review2 password') ->> 'email' AS registered;
SELECT pgapp.login('review2@example.com', 'review2 password') AS s0 \gset
RESET ROLE;
CREATE TEMP TABLE review2_tokens (n integer, refresh text, access text);
GRANT ALL ON review2_tokens TO anon;
INSERT INTO review2_tokens VALUES (0, :'s0'::jsonb ->> 'refresh_token', :'s0'::jsonb ->> 'access_token');
SET ROLE anon;
DO $$
DECLARE
    s jsonb;
BEGIN
    FOR i IN 1..101 LOOP
        s := pgapp.refresh((SELECT t.refresh FROM review2_tokens AS t WHERE t.n = i - 1));
        INSERT INTO review2_tokens VALUES (i, s ->> 'refresh_token', s ->> 'access_token');
    END LOOP;
END
$$;
RESET ROLE;
-- the table keeps the newest 100 of the family
SELECT count(*) AS family_rows FROM pgapp.auth_refresh_token AS t
  JOIN pgapp.auth_user AS u ON u.id = t.user_id WHERE u.email = 'review2@example.com';
SELECT access AS a_last FROM review2_tokens WHERE n = 101 \gset
-- the session ends: logout with its newest access token
SET ROLE anon;
SELECT pgapp.logout(:'a_last');
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'a_last'));
-- every access token of the session is refused, the oldest included
SELECT count(*) FILTER (WHERE m = 'sqlstate: PJ005') AS revoked, count(*) AS tokens
  FROM review2_tokens AS t, pg_temp.show(format('SELECT pgapp.decode_token(%L)', t.access)) AS m
 WHERE m LIKE 'sqlstate:%' OR m = 'no error';
RESET ROLE;

-- the same through reuse: a new session, 101 refreshes, then a used
-- refresh token (a copy of the 50th) is presented again
TRUNCATE review2_tokens;
SET ROLE anon;
SELECT pgapp.login('review2@example.com', 'review2 password') AS s1 \gset
RESET ROLE;
INSERT INTO review2_tokens VALUES (0, :'s1'::jsonb ->> 'refresh_token', :'s1'::jsonb ->> 'access_token');
SET ROLE anon;
DO $$
DECLARE
    s jsonb;
BEGIN
    FOR i IN 1..101 LOOP
        s := pgapp.refresh((SELECT t.refresh FROM review2_tokens AS t WHERE t.n = i - 1));
        INSERT INTO review2_tokens VALUES (i, s ->> 'refresh_token', s ->> 'access_token');
    END LOOP;
END
$$;
-- the token of the 50th refresh, replayed (inside a request, so that the
-- revocation commits)
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.refresh(t.refresh) AS body, current_setting('response.status', true) AS status
  FROM review2_tokens AS t WHERE t.n = 50;
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

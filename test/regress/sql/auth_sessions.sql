--
-- auth_sessions: passwords (pgapp.register, Argon2id, rehash on login) and
-- sessions (pgapp.login, pgapp.refresh: rotation, reuse, the session cap,
-- the sweep), the login limits, and the error model inside a PostgREST
-- request.  Tokens and ids differ from run to run, so the output shows what
-- they mean, never their text.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'regress-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
CREATE ROLE authenticated NOLOGIN;
-- cheap hashes for the test (the costs are in every hash, so login upgrades them below)
SET pgapp.auth_password_memlimit = '8MB';
SET pgapp.auth_password_opslimit = 1;
SET pgapp.auth_login_max_attempts = 100;
SET pgapp.auth_login_client_max_attempts = 1000;

-- The settings and their defaults.
SELECT name, boot_val, unit, context FROM pg_settings
 WHERE name ~ '^pgapp\.auth_(password|hash|default|access|refresh|max|login)' ORDER BY name;

-- register: the new user, never its hash; the role from pgapp.auth_default_role.
SELECT u - 'id' - 'inserted_at' - 'updated_at' AS user,
       u ->> 'id' ~ '^[0-9a-f-]{36}$' AS has_id
  FROM pgapp.register('Alice@Example.com', 'correct horse battery', '{"name": "Alice"}') AS u;
SELECT email, role, password_hash ~ '^\$argon2id\$v=19\$m=8192,t=1,p=1\$' AS argon2id_8mb
  FROM pgapp.auth_user;
-- register without a profile; an empty default role gives no role
SET pgapp.auth_default_role = '';
SELECT pgapp.register('bob@example.com', 'bob password 1') ->> 'role' AS bob_role;
RESET pgapp.auth_default_role;

-- Every field's errors at once, through the changeset (PT422, like pgapp.insert).
SELECT pg_temp.show($$SELECT pgapp.register('not an email', 'short', '[1, 2]')$$);
SELECT pg_temp.show($$SELECT pgapp.register(NULL, NULL, NULL)$$);
SELECT pg_temp.show($$SELECT pgapp.register(repeat('a', 250) || '@example.com', repeat('x', 1025))$$);
SELECT pg_temp.show($$SELECT pgapp.register('carol@example.com', 'long enough', jsonb_build_object('bio', repeat('x', 9000)))$$);
-- the email is unique whatever its case: a field error, not 23505
SELECT pg_temp.show($$SELECT pgapp.register('ALICE@example.com', 'another password')$$);
-- inside a PostgREST request: 422 and the body, nothing written
BEGIN;
SELECT set_config('request.method', 'POST', true);
SELECT pgapp.register('alice@EXAMPLE.com', 'another password');
SELECT current_setting('response.status', true) AS status;
SELECT pgapp.register('dave@example.com', 'dave password') ? 'password_hash' AS shows_hash,
       current_setting('response.status', true) AS status;
ROLLBACK;
SELECT count(*) AS users FROM pgapp.auth_user;

-- login: the tokens; the access token names the user, its role and its session.
SELECT pgapp.login('  ALICE@example.com ', 'correct horse battery') AS s \gset
SELECT jsonb_object_keys(:'s'::jsonb) AS key ORDER BY 1;
SELECT :'s'::jsonb -> 'token_type' AS token_type, :'s'::jsonb -> 'expires_in' AS expires_in,
       length(:'s'::jsonb ->> 'refresh_token') AS refresh_length;
SELECT c ->> 'sub' = (SELECT id::text FROM pgapp.auth_user WHERE email = 'Alice@Example.com') AS sub_is_user,
       c ->> 'role' AS role, c ->> 'typ' AS typ,
       (c ->> 'exp')::bigint - (c ->> 'iat')::bigint AS lifetime,
       c ->> 'sid' = (SELECT family_id::text FROM pgapp.auth_refresh_token) AS sid_is_family
  FROM pgapp.decode_token(:'s'::jsonb ->> 'access_token') AS c;
-- the table holds a hash of the refresh token, never the token
SELECT token_hash = sha256(convert_to(:'s'::jsonb ->> 'refresh_token', 'UTF8')) AS hashed,
       access_jti = (pgapp.decode_token(:'s'::jsonb ->> 'access_token') ->> 'jti') AS jti_recorded,
       expires_at - issued_at AS lifetime, used_at, revoked_at
  FROM pgapp.auth_refresh_token;

-- A wrong password and an unknown email: the same error.
SELECT pg_temp.show($$SELECT pgapp.login('alice@example.com', 'wrong horse battery')$$);
SELECT pg_temp.show($$SELECT pgapp.login('nobody@example.com', 'wrong horse battery')$$);
SELECT pg_temp.show($$SELECT pgapp.login('alice@example.com', NULL)$$);
SELECT pg_temp.show($$SELECT pgapp.login(NULL, 'correct horse battery')$$);
SELECT pg_temp.show($$SELECT pgapp.login('alice@example.com', repeat('x', 100000))$$);

-- Rehash: the hash was made with 8 MB and 1 pass; with other costs, the
-- next successful login stores a new hash (and a failed one does not).
SET pgapp.auth_password_memlimit = '16MB';
SET pgapp.auth_password_opslimit = 2;
SELECT pg_temp.show($$SELECT pgapp.login('alice@example.com', 'wrong horse battery')$$);
SELECT substring(password_hash FROM '\$m=[0-9]+,t=[0-9]+') AS costs FROM pgapp.auth_user WHERE email = 'Alice@Example.com';
SELECT pgapp.login('alice@example.com', 'correct horse battery') ? 'access_token' AS logged_in;
SELECT substring(password_hash FROM '\$m=[0-9]+,t=[0-9]+') AS costs FROM pgapp.auth_user WHERE email = 'Alice@Example.com';
SELECT pgapp.login('alice@example.com', 'correct horse battery') ? 'access_token' AS still_logs_in;
SET pgapp.auth_password_memlimit = '8MB';
SET pgapp.auth_password_opslimit = 1;
-- the costs are bounded
SELECT pg_temp.show($$SET pgapp.auth_password_opslimit = 0$$);
SELECT pg_temp.show($$SET pgapp.auth_password_memlimit = '4kB'$$);
SELECT pg_temp.show($$SET pgapp.auth_password_memlimit = '2GB'$$);

-- refresh: rotation.  The token presented is used; the next one is in the same family.
DELETE FROM pgapp.auth_refresh_token;
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS s1 \gset
SELECT pgapp.refresh(:'s1'::jsonb ->> 'refresh_token') AS s2 \gset
SELECT jsonb_object_keys(:'s2'::jsonb) AS key ORDER BY 1;
SELECT (:'s1'::jsonb ->> 'refresh_token') <> (:'s2'::jsonb ->> 'refresh_token') AS new_refresh,
       (pgapp.decode_token(:'s1'::jsonb ->> 'access_token') ->> 'sid')
     = (pgapp.decode_token(:'s2'::jsonb ->> 'access_token') ->> 'sid') AS same_session;
SELECT id, parent_id, used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked,
       count(*) OVER (PARTITION BY family_id) AS in_family
  FROM pgapp.auth_refresh_token ORDER BY id;
SELECT pgapp.refresh(:'s2'::jsonb ->> 'refresh_token') AS s3 \gset

-- Reuse of a rotated token: it fails as an invalid one, and the session
-- ends: the newest token fails too.
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'s1'::jsonb ->> 'refresh_token'));
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'s3'::jsonb ->> 'refresh_token'));
-- the failure rolled the revocation back, but the reuse was remembered in
-- shared memory; the next login writes it down
SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked_before FROM pgapp.auth_refresh_token;
SELECT (pgapp.decode_token(:'s1'::jsonb ->> 'access_token') ->> 'sid')::uuid = ANY (pgapp._auth_reused_families()) AS remembered;
SELECT pgapp.login('bob@example.com', 'bob password 1') ? 'refresh_token' AS bob_logged_in;
SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked_after,
       count(*) FILTER (WHERE revoked_at IS NULL) AS live
  FROM pgapp.auth_refresh_token;

-- Inside a PostgREST request the failure is a 401 body, and the revocation commits.
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS r1 \gset
SELECT pgapp.refresh(:'r1'::jsonb ->> 'refresh_token') AS r2 \gset
SELECT pgapp.decode_token(:'r1'::jsonb ->> 'access_token') ->> 'sid' AS r1_sid \gset
BEGIN;
SELECT set_config('request.method', 'POST', true);
SELECT pgapp.refresh(:'r1'::jsonb ->> 'refresh_token') AS body,
       current_setting('response.status', true) AS status;
COMMIT;
SELECT count(*) AS live_in_session FROM pgapp.auth_refresh_token
 WHERE family_id = :'r1_sid'::uuid AND revoked_at IS NULL;

-- Tokens that never were: the same failure.
SELECT pg_temp.show($$SELECT pgapp.refresh('not-a-token')$$);
SELECT pg_temp.show($$SELECT pgapp.refresh(NULL)$$);
SELECT pg_temp.show($$SELECT pgapp.refresh(repeat('x', 1000000))$$);
-- an expired one
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS e1 \gset
UPDATE pgapp.auth_refresh_token SET expires_at = now() - interval '1 second'
 WHERE token_hash = sha256(convert_to(:'e1'::jsonb ->> 'refresh_token', 'UTF8'));
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'e1'::jsonb ->> 'refresh_token'));

-- The sweep removes expired tokens and those revoked over a day ago.
UPDATE pgapp.auth_refresh_token SET revoked_at = now() - interval '2 days' WHERE revoked_at IS NOT NULL;
SELECT pgapp.auth_sweep() AS swept;
SELECT count(*) FILTER (WHERE expires_at <= now() OR revoked_at IS NOT NULL) AS stale FROM pgapp.auth_refresh_token;

-- At most pgapp.auth_max_sessions live sessions per user: the oldest end.
DELETE FROM pgapp.auth_refresh_token;
SET pgapp.auth_max_sessions = 2;
SELECT pgapp.login('bob@example.com', 'bob password 1') AS b1 \gset
SELECT pgapp.login('bob@example.com', 'bob password 1') AS b2 \gset
SELECT pgapp.login('bob@example.com', 'bob password 1') AS b3 \gset
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'b1'::jsonb ->> 'refresh_token'));
SELECT pgapp.refresh(:'b2'::jsonb ->> 'refresh_token') ? 'access_token' AS b2_alive,
       pgapp.refresh(:'b3'::jsonb ->> 'refresh_token') ? 'access_token' AS b3_alive;
RESET pgapp.auth_max_sessions;
-- a family keeps its newest 100 tokens; a token's row is dropped only
-- once its access token has expired (ending the family revokes the access
-- tokens its rows name), so the 100th refresh within an access token's
-- lifetime is refused with 429
DELETE FROM pgapp.auth_refresh_token;
SELECT pgapp.login('bob@example.com', 'bob password 1') AS f \gset
SELECT set_config('regress.f', :'f', false) IS NOT NULL AS set;
CREATE FUNCTION pg_temp.refresh_times(n integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s jsonb := current_setting('regress.f')::jsonb;
BEGIN
    FOR i IN 1 .. n LOOP
        s := pgapp.refresh(s ->> 'refresh_token');
        PERFORM set_config('regress.f', s::text, false);
    END LOOP;
END $$;
SELECT pg_temp.refresh_times(99);
SELECT count(*) AS kept FROM pgapp.auth_refresh_token;
SELECT regexp_replace(m, '(retry_after": |after )[0-9]+', '\1N', 'g') AS m
  FROM pg_temp.show($$SELECT pg_temp.refresh_times(1)$$) AS m;
-- once the first access tokens have expired (here: by hand), the family
-- goes on and stays at 100 tokens
UPDATE pgapp.auth_refresh_token SET access_expires_at = now() - interval '1 second';
SELECT pg_temp.refresh_times(21);
SELECT count(*) AS kept FROM pgapp.auth_refresh_token;

-- logout: the access token proves who calls; it is revoked, and its
-- session ends (refresh tokens and the access tokens issued in it); the
-- user's other sessions live on.
DELETE FROM pgapp.auth_refresh_token;
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS l1 \gset
SELECT pgapp.refresh(:'l1'::jsonb ->> 'refresh_token') AS l2 \gset
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS other \gset
CREATE ROLE regress_sessions_anon NOLOGIN;
GRANT EXECUTE ON FUNCTION pg_temp.show(text) TO regress_sessions_anon;
SET ROLE regress_sessions_anon;
SELECT pgapp.logout(:'l2'::jsonb ->> 'access_token');
RESET ROLE;
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'l2'::jsonb ->> 'access_token'));
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'l1'::jsonb ->> 'access_token'));
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'l2'::jsonb ->> 'refresh_token'));
SELECT pgapp.decode_token(:'other'::jsonb ->> 'access_token') ->> 'typ' AS other_session_token,
       pgapp.refresh(:'other'::jsonb ->> 'refresh_token') ? 'access_token' AS other_session_refreshes;
-- a token that is not valid proves nothing
SELECT pg_temp.show($$SELECT pgapp.logout('not.a.token')$$);
SELECT pg_temp.show(format('SELECT pgapp.logout(%L)', :'l2'::jsonb ->> 'access_token'));

-- Reuse inside a request also revokes the access tokens of the session.
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS u1 \gset
SELECT pgapp.refresh(:'u1'::jsonb ->> 'refresh_token') AS u2 \gset
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.refresh(:'u1'::jsonb ->> 'refresh_token') AS body;
COMMIT;
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'u2'::jsonb ->> 'access_token'));

-- logout_everywhere: the user themself (the request's claims name the
-- sub) or pgapp_admin; every session ends, every token issued so far is
-- revoked.
SELECT id::text AS alice FROM pgapp.auth_user WHERE email = 'Alice@Example.com' \gset
SELECT id::text AS bob FROM pgapp.auth_user WHERE email = 'bob@example.com' \gset
SELECT pgapp.login('alice@example.com', 'correct horse battery') AS a1 \gset
SELECT pgapp.login('bob@example.com', 'bob password 1') AS b1 \gset
SET ROLE regress_sessions_anon;
SELECT replace(m, :'alice', '<alice>') AS m FROM pg_temp.show(format('SELECT pgapp.logout_everywhere(%L)', :'alice')) AS m;
BEGIN;
SELECT set_config('request.jwt.claims', jsonb_build_object('sub', :'bob', 'role', 'authenticated')::text, true) IS NOT NULL AS claims;
SELECT replace(m, :'alice', '<alice>') AS m FROM pg_temp.show(format('SELECT pgapp.logout_everywhere(%L)', :'alice')) AS m;
SELECT pgapp.logout_everywhere(:'bob');
COMMIT;
RESET ROLE;
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'b1'::jsonb ->> 'access_token'));
SELECT pg_temp.show(format('SELECT pgapp.refresh(%L)', :'b1'::jsonb ->> 'refresh_token'));
SELECT pgapp.decode_token(:'a1'::jsonb ->> 'access_token') ->> 'typ' AS alice_untouched;
CREATE ROLE regress_sessions_admin NOLOGIN IN ROLE pgapp_admin;
SET ROLE regress_sessions_admin;
SELECT pgapp.logout_everywhere(:'alice');
RESET ROLE;
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'a1'::jsonb ->> 'access_token'));
SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS live_sessions FROM pgapp.auth_refresh_token;
-- a login after it works again (its tokens are newer than the cutoff, in
-- the next second)
SELECT pg_sleep(1.1) IS NOT NULL AS next_second;
SELECT pgapp.decode_token(pgapp.login('alice@example.com', 'correct horse battery') ->> 'access_token') ->> 'typ' AS new_login;
REVOKE EXECUTE ON FUNCTION pg_temp.show(text) FROM regress_sessions_anon;
DROP ROLE regress_sessions_anon, regress_sessions_admin;

-- Login attempts are limited per account and per client: counted before
-- any hashing, 429 past the limit; a successful login clears the account's
-- count.
SET pgapp.auth_login_max_attempts = 3;
SELECT pgapp.rate_reset('auth:login:account:' || encode(sha256(convert_to('bob@example.com', 'UTF8')), 'hex'));
SELECT pg_temp.show($$SELECT pgapp.login('bob@example.com', 'wrong password')$$);
SELECT pg_temp.show($$SELECT pgapp.login('bob@example.com', 'wrong password')$$);
SELECT pgapp.login('bob@example.com', 'bob password 1') ? 'access_token' AS cleared;
SELECT pg_temp.show($$SELECT pgapp.login('bob@example.com', 'wrong password')$$);
SELECT pg_temp.show($$SELECT pgapp.login('bob@example.com', 'wrong password')$$);
SELECT pg_temp.show($$SELECT pgapp.login('bob@example.com', 'wrong password')$$);
SELECT regexp_replace(m, '(after |"retry_after": )[0-9]+', '\1N', 'g') AS limited
  FROM pg_temp.show($$SELECT pgapp.login('bob@example.com', 'bob password 1')$$) AS m;
-- an unknown account is limited the same way
SELECT count(*) FILTER (WHERE m = 'sqlstate: PT429') AS limited
  FROM generate_series(1, 4) AS i,
       pg_temp.show(format('SELECT pgapp.login(%L, %L) -- %s', 'ghost@example.com', 'whatever', i)) AS m;
-- inside a PostgREST request: PGRST with status 429 and Retry-After
BEGIN;
SELECT set_config('request.method', 'POST', true);
SELECT regexp_replace(m, '(after |"Retry-After": ")[0-9]+', '\1N', 'g') AS limited
  FROM pg_temp.show($$SELECT pgapp.login('bob@example.com', 'bob password 1')$$) AS m;
ROLLBACK;
-- per client: the client's attempts, whatever the account
RESET pgapp.auth_login_max_attempts;
SET pgapp.auth_login_client_max_attempts = 2;
SELECT pgapp.rate_reset('auth:login:' || pgapp.request_client_key());
SELECT count(*) FILTER (WHERE m = 'sqlstate: PT429') AS limited
  FROM generate_series(1, 3) AS i, pg_temp.show(format('SELECT pgapp.login(%L, %L)', 'x' || i || '@example.com', 'whatever')) AS m;
RESET pgapp.auth_login_client_max_attempts;

-- The hashes so far ran one at a time, under the cap.
SELECT in_use, peak BETWEEN 1 AND concurrency AS under_cap, concurrency, hashes > 20 AS counted
  FROM pgapp.auth_hash_stats;

DROP ROLE authenticated;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

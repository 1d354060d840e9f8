--
-- auth_revoke: revoking tokens by jti and by subject (pgapp.revoke_token,
-- pgapp.revoke_subject), the cache in shared memory and its tables.
-- Tokens differ from run to run (iat, jti): the output shows what they mean.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'regress-revoke-secret-0123456789abcdef';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

CREATE TABLE tok AS
SELECT name, pgapp.encode_token(sub, '{}', '1 hour') AS token
  FROM (VALUES ('alice1', 'alice'), ('alice2', 'alice'), ('bob1', 'bob'), ('carol1', 'carol'))
       AS v(name, sub);
ALTER TABLE tok ADD COLUMN claims jsonb;
UPDATE tok SET claims = pgapp.decode_token(token);
CREATE FUNCTION pg_temp.claim(n text, c text) RETURNS text LANGUAGE sql AS $$
    SELECT claims ->> c FROM tok WHERE name = n
$$;
CREATE FUNCTION pg_temp.check_all() RETURNS TABLE (name text, result text) LANGUAGE sql AS $$
    SELECT name, pg_temp.token_error(token) FROM tok ORDER BY name
$$;

-- Nothing revoked: every token is valid, and the first check loaded the cache.
SELECT * FROM pg_temp.check_all();
SELECT s->>'cache' AS cache, s->'overflow_until' AS overflow_until, (s->>'capacity')::int AS capacity
  FROM pgapp.auth_revocation_status() AS s;

-- A revocation rolled back revokes nothing (neither in the tables nor in the cache).
BEGIN;
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '1 hour');
ROLLBACK;
SELECT * FROM pg_temp.check_all();
SELECT count(*) AS rows FROM pgapp.auth_revoked_token;

-- Nor one in a subtransaction that rolls back.
BEGIN;
SAVEPOINT s;
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '1 hour');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM pg_temp.check_all();

-- A revocation cannot be prepared (COMMIT PREPARED runs no commit actions,
-- so the cache would miss it); the transaction rolls back.
BEGIN;
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '1 hour');
PREPARE TRANSACTION 'revoke';
SELECT * FROM pg_temp.check_all();

-- Committed, the token fails with PJ005; the others are untouched.
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'),
                          to_timestamp((pg_temp.claim('alice1', 'exp'))::bigint));
SELECT * FROM pg_temp.check_all();
SELECT pg_temp.show($$SELECT pgapp.decode_token(token) FROM tok WHERE name = 'alice1'$$);
SELECT jti = pg_temp.claim('alice2', 'jti') AS other_jti, length(jti_sha256) AS digest_bytes,
       jti_sha256 = sha256(convert_to(jti, 'UTF8')) AS digest_is_sha256,
       expires_at > now() AS live
  FROM pgapp.auth_revoked_token;

-- Revoking again keeps the later expiry.
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '2 hours');
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '10 minutes');
SELECT count(*) AS rows, bool_and(expires_at > now() + interval '90 minutes') AS later_kept
  FROM pgapp.auth_revoked_token;

-- The check read no table: the cache answered (a transaction's own counters).
-- (pg_stat_xact_user_tables also counts what earlier transactions have not
-- flushed yet: compare before and after.)
CREATE FUNCTION pg_temp.scans() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::bigint FROM pg_stat_xact_user_tables
     WHERE relname IN ('auth_revoked_token', 'auth_subject_cutoff')
$$;
BEGIN;
SELECT pg_temp.scans() AS scans_before \gset
SELECT count(*) FILTER (WHERE r = 'ok') AS ok, count(*) FILTER (WHERE r LIKE 'PJ005%') AS revoked
  FROM (SELECT pg_temp.token_error(token) AS r FROM tok, generate_series(1, 10)) AS s;
SELECT pg_temp.scans() - :scans_before AS table_scans;
COMMIT;

-- Revoking an expired token records nothing (expiry already refuses it).
SELECT pgapp.revoke_token('already-expired', now() - interval '1 hour');
SELECT count(*) AS rows FROM pgapp.auth_revoked_token WHERE jti = 'already-expired';

-- Logged out everywhere: bob's tokens issued before the cutoff are revoked,
-- including those of the cutoff's own second (iat has whole seconds).
SELECT pgapp.revoke_subject('bob');
SELECT * FROM pg_temp.check_all();
SELECT pg_temp.token_error(pgapp.encode_token('bob', '{}', '1 hour')) AS same_second;
-- A cutoff in the past leaves tokens issued after it valid, and revokes older ones.
SELECT pgapp.revoke_subject('carol', now() - interval '1 minute');
SELECT * FROM pg_temp.check_all();
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"carol","iat":%s,"exp":%s}', pg_temp.now_s() - 120, pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS carol_older;
-- A token without iat cannot prove it is newer than its subject's cutoff.
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"carol","exp":%s}', pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS carol_no_iat;
-- Without a cutoff, the same tokens are fine.
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"dave","exp":%s}', pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS dave_no_iat;
-- A later cutoff wins over an earlier one; an earlier one does not move it back.
SELECT pgapp.revoke_subject('carol', now() - interval '1 day');
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"carol","iat":%s,"exp":%s}', pg_temp.now_s() - 120, pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS carol_older_still_revoked;
SELECT sub, not_before > now() - interval '2 minutes' AS later_kept,
       expires_at - not_before AS kept_for
  FROM pgapp.auth_subject_cutoff ORDER BY sub;

-- A cutoff older than the longest token lifetime has nothing left to revoke.
SELECT pgapp.revoke_subject('erin', now() - interval '31 days');
SELECT count(*) AS rows FROM pgapp.auth_subject_cutoff WHERE sub = 'erin';

-- Tokens live at most pgapp.auth_token_max_ttl (the cutoffs are kept that long).
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '31 days')$$);
SET pgapp.auth_token_max_ttl = '1h';
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '61 minutes')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '1 hour')$$);
RESET pgapp.auth_token_max_ttl;

-- Arguments: NULL is NULL (STRICT), empty and over-long values, infinite times.
SELECT pgapp.revoke_token(NULL, now()) IS NULL AS strict;
SELECT pg_temp.show($$SELECT pgapp.revoke_token('', now() + interval '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject(repeat('x', 8193))$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_token('x', 'infinity')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('x', '-infinity')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('x', now() + interval '31 days')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('x', '294276-12-31 00:00:00+00')$$);

-- Expired rows are deleted by the cleanup (and a few by every revocation).
SET pgapp.auth_jwt_leeway = 0;
INSERT INTO pgapp.auth_revoked_token (jti_sha256, jti, expires_at)
SELECT sha256(convert_to('old' || i, 'UTF8')), 'old' || i, now() - interval '1 minute'
  FROM generate_series(1, 250) AS i;
SELECT pgapp.auth_revocation_cleanup() AS deleted;
SELECT count(*) AS rows FROM pgapp.auth_revoked_token;
RESET pgapp.auth_jwt_leeway;

-- Another session sees the same revocations (shared memory).
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all
SELECT name, pg_temp.token_error(token) FROM tok ORDER BY name;
CREATE FUNCTION pg_temp.claim(n text, c text) RETURNS text LANGUAGE sql AS $$
    SELECT claims ->> c FROM tok WHERE name = n
$$;

-- authenticate_request, as PostgREST's db-pre-request runs it: the bearer
-- token of request.headers, verified with revocation, an access token only.
CREATE FUNCTION pg_temp.request(token text, claims text DEFAULT NULL, method text DEFAULT 'GET')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text;
BEGIN
    PERFORM set_config('request.method', coalesce(method, ''), true),
            set_config('request.headers',
                       CASE WHEN token IS NULL THEN '{}'
                            ELSE jsonb_build_object('authorization', 'Bearer ' || token)::text END, true),
            set_config('request.jwt.claims', coalesce(claims, ''), true);
    PERFORM pgapp.authenticate_request();
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' ' || nullif(det, ''), '');
END $$;
SELECT name, pg_temp.request(token) FROM tok ORDER BY name;
-- outside a request (no request.method) the PJ codes themselves
SELECT name, pg_temp.request(token, NULL, NULL) FROM tok ORDER BY name;
-- a refresh token is refused (PJ007); the scheme's case and blanks do not matter
SELECT pg_temp.request(pgapp.encode_token('alice', '{"typ": "refresh"}', '1 hour'), NULL, NULL) AS refresh;
SELECT pg_temp.request(pgapp.encode_token('alice', '{"typ": "refresh"}', '1 hour')) AS refresh_in_request;
SELECT pg_temp.request(pgapp.encode_token('alice', '{"typ": "access"}', '1 hour')) AS access;
SELECT set_config('request.headers', jsonb_build_object('authorization', 'bEaReR   ' || token || '  ')::text, false),
       (SELECT pg_temp.token_error(token)) AS direct
  FROM tok WHERE name = 'alice1' \gset
SELECT pg_temp.show('SELECT pgapp.authenticate_request()');
SELECT set_config('request.headers', jsonb_build_object('authorization', 'Basic YWxpY2U6cHc=')::text, false) IS NOT NULL AS basic_set;
SELECT pg_temp.show('SELECT pgapp.authenticate_request()') AS basic_is_anonymous;
SELECT set_config('request.headers', 'not json', false) IS NOT NULL AS garbage_set;
SELECT pg_temp.show('SELECT pgapp.authenticate_request()');
RESET request.headers;
-- request.headers is read by a scanner of its own: escaped keys are keys,
-- other values of any shape are skipped, and anything ambiguous is refused
CREATE FUNCTION pg_temp.headers(h text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
    PERFORM set_config('request.headers', h, true), set_config('request.method', '', true),
            set_config('request.jwt.claims', '', true);
    PERFORM pgapp.authenticate_request();
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END $$;
SELECT token AS revoked_token FROM tok WHERE name = 'alice1' \gset
SELECT label, pg_temp.headers(h) AS result
  FROM (VALUES
    ('plain', format('{"authorization": "Bearer %s"}', :'revoked_token')),
    ('escaped key', format('{"\u0061uthorization": "Bearer %s"}', :'revoked_token')),
    ('escaped value', format('{"authorization": "\u0042earer %s"}', :'revoked_token')),
    ('after nested values', format('{"x": {"a": [1, {"b": "}"}], "c": null}, "y": [true, false, -1.5e3], "authorization": "Bearer %s"}', :'revoked_token')),
    ('key of another case', format('{"Authorization": "Bearer %s"}', :'revoked_token')),
    ('twice', format('{"authorization": "Bearer %s", "authorization": "Bearer x"}', :'revoked_token')),
    ('not a string', '{"authorization": ["Bearer x"]}'),
    ('trailing garbage', '{"accept": "*/*"} x'),
    ('unterminated', '{"accept": "*/*"'),
    ('bad escape', '{"accept": "\q"}'),
    ('lone surrogate', '{"accept": "\ud800"}'),
    ('nul', '{"accept": "\u0000"}'),
    ('an array', '[]'),
    ('empty object', '{}'),
    ('no token after Bearer', '{"authorization": "Bearer   "}'),
    ('Bearer without a blank', format('{"authorization": "Bearer%s"}', :'revoked_token'))) AS v(label, h);
-- a token verified once is not re-verified while keys and settings stay:
-- a setting that changes makes it checked again in full
SELECT token AS good_token FROM tok WHERE name = 'alice2' \gset
SELECT pg_temp.token_error(:'good_token') AS first, pg_temp.token_error(:'good_token') AS again;
SET pgapp.auth_jwt_audience = 'elsewhere';
SELECT pg_temp.token_error(:'good_token') AS other_audience;
RESET pgapp.auth_jwt_audience;
SET pgapp.auth_jwt_leeway = 0;
SELECT pg_temp.token_error(:'good_token') AS no_leeway;
RESET pgapp.auth_jwt_leeway;
-- a bad token in the header (PostgREST would have refused it first)
SELECT pg_temp.request('a.b.c', NULL, NULL) AS malformed;
-- no header: request.jwt.claims is checked (typ, revocation); none: anonymous
SELECT pg_temp.request(NULL, format('{"sub": "bob", "iat": %s}', pg_temp.now_s() - 5), NULL) AS bob_claims;
SELECT pg_temp.request(NULL, format('{"sub": "alice", "jti": %s}', to_jsonb(pg_temp.claim('alice1', 'jti'))), NULL)
       AS revoked_jti_claims;
SELECT pg_temp.request(NULL, '{"sub": "alice", "typ": "refresh"}', NULL) AS refresh_claims;
SELECT pg_temp.request(NULL, '{"sub": "alice"}', NULL) AS alice_claims;
SELECT pg_temp.request(NULL, '{"role": "anon"}', NULL) AS anon_claims;
SELECT pg_temp.request(NULL, NULL, NULL) AS anonymous;

-- require_role: the token's role claim must be listed (42501, which
-- PostgREST answers with 401 when anonymous and 403 otherwise)
BEGIN;
SELECT set_config('request.jwt.claims', '{"role": "editor", "sub": "alice"}', true) IS NOT NULL AS claims_set;
SELECT pg_temp.show($$SELECT pgapp.require_role(ARRAY['editor', 'admin'])$$);
SELECT pg_temp.show($$SELECT pgapp.require_role(ARRAY['admin'])$$);
SELECT pg_temp.show($$SELECT pgapp.require_role(ARRAY[]::text[])$$);
SELECT pg_temp.show($$SELECT pgapp.require_role(NULL)$$);
SELECT pg_temp.show($$SELECT pgapp.require_role(ARRAY['admin', NULL])$$) AS null_in_list;
SELECT set_config('request.jwt.claims', '', true) IS NOT NULL AS claims_cleared;
SELECT pg_temp.show($$SELECT pgapp.require_role(ARRAY['editor'])$$);
ROLLBACK;

-- permissions: sets per resource, a "pem" claim of bit masks
SELECT pgapp.define_permissions('users', ARRAY['read', 'write', 'delete']);
SELECT pgapp.define_permissions('posts', ARRAY['read', 'publish']);
SELECT pgapp.define_permissions('users', ARRAY['read', 'write', 'delete', 'invite']);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('users', ARRAY['write', 'read'])$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('users', ARRAY['read'])$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('Users', ARRAY['read'])$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('x', ARRAY['a', 'a'])$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('x', ARRAY['a', NULL])$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('x', ARRAY[]::text[])$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('x', (SELECT array_agg('p' || i) FROM generate_series(1, 64) AS i))$$);
SELECT * FROM pgapp.permission_set ORDER BY resource;
SELECT pgapp.encode_permissions('{"users": ["read", "delete"], "posts": []}');
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('{"users": ["fly"]}')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('{"cars": ["read"]}')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('{"users": "read"}')$$);
-- a token with them, through PostgREST's claims
BEGIN;
SELECT set_config('request.jwt.claims',
                  pgapp.decode_token(pgapp.encode_token('alice',
                      jsonb_build_object('pem', pgapp.encode_permissions('{"users": ["read", "delete"]}')),
                      '1 hour'))::text, true) IS NOT NULL AS claims_set;
SELECT p, pgapp.has_permission('users', p) FROM unnest(ARRAY['read', 'write', 'delete', 'invite']) AS p;
SELECT pgapp.has_permission('posts', 'read') AS posts_read;
SELECT pg_temp.show($$SELECT pgapp.require_permission('users', 'delete')$$);
SELECT pg_temp.show($$SELECT pgapp.require_permission('users', 'write')$$);
SELECT pg_temp.show($$SELECT pgapp.has_permission('users', 'fly')$$);
SELECT pg_temp.show($$SELECT pgapp.has_permission('cars', 'read')$$);
SELECT pg_temp.show($$SELECT pgapp.has_permission(NULL, 'read')$$);
-- odd pem values grant nothing
SELECT c, pgapp.has_permission('users', 'read')
  FROM unnest(ARRAY['{"pem": {"users": 1}}', '{"pem": {"users": -1}}', '{"pem": {"users": 1.5}}', '{"pem": {"users": 1e30}}',
                    '{"pem": {"users": "1"}}', '{"pem": {"users": ["read"]}}', '{"pem": 1}', '{}']) AS c,
       LATERAL (SELECT set_config('request.jwt.claims', c, true)) AS s;
ROLLBACK;
DELETE FROM pgapp.permission_set;

-- The key file is looked at (stat) at most once per
-- pgapp.auth_key_file_recheck (test/pgapp.conf sets 0: at every use).
COPY (SELECT '{"current": "a", "keys": {"a": "revoke-file-key-a-0123456789abcdef-0123"}}')
  TO PROGRAM 'cat > regress_revoke_keys';
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'regress_revoke_keys';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/token_helpers.sql
\set ECHO all
SELECT pgapp.encode_token('alice', '{}', '1 hour') AS file_token \gset
SET pgapp.auth_key_file_recheck = '60s';
SELECT pg_temp.token_error(:'file_token') AS key_a;
COPY (SELECT '{"current": "b", "keys": {"b": "revoke-file-key-b-0123456789abcdef-0123"}}')
  TO PROGRAM 'cat > regress_revoke_keys.new && mv regress_revoke_keys.new regress_revoke_keys';
SELECT pg_temp.token_error(:'file_token') AS within_the_recheck_time;
RESET pgapp.auth_key_file_recheck;
SELECT pg_temp.token_error(:'file_token') AS once_rechecked;
ALTER SYSTEM RESET pgapp.auth_jwt_secret_file;
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f regress_revoke_keys';

DROP TABLE tok;
DELETE FROM pgapp.auth_revoked_token;
DELETE FROM pgapp.auth_subject_cutoff;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

--
-- auth: HS256 tokens (pgapp.encode_token, decode_token, token_claims), the
-- secret settings and the key file, rotation, and how failures reach
-- PostgREST.  Tokens differ from run to run (iat, jti), so the output shows
-- what they mean, never their text.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

-- No secret configured: both functions refuse, naming the settings.
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '15 minutes')$$);
SELECT pg_temp.show($$SELECT pgapp.decode_token('a.b.c')$$);

-- A short inline secret (the setting is read from the configuration files
-- only; a new connection sees what the postmaster reloaded).
ALTER SYSTEM SET pgapp.auth_jwt_secret = 'only-31-bytes-long-0123456789ab';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '15 minutes')$$);

-- No role can read the secret back: SHOW and pg_settings say only whether it is set.
ALTER SYSTEM SET pgapp.auth_jwt_secret = 'regress-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all
SHOW pgapp.auth_jwt_secret;
SELECT name, setting, reset_val, boot_val, context FROM pg_settings
 WHERE name LIKE 'pgapp.auth%' ORDER BY name;

-- A round trip: pgapp's claims, then the caller's.
CREATE ROLE regress_auth_user NOLOGIN;
SELECT pgapp.encode_token('alice', '{"role": "regress_auth_user", "plan": "pro", "n": 1.000000000000000000001}',
                          '15 minutes') AS token \gset
SELECT pg_temp.segment(:'token', 1) AS header;
SELECT key, CASE WHEN key IN ('iat', 'nbf', 'exp', 'jti') THEN jsonb_typeof(value) ELSE value::text END AS value
  FROM jsonb_each(pgapp.decode_token(:'token')) ORDER BY key;
SELECT (c->>'exp')::bigint - (c->>'iat')::bigint AS lifetime, c->>'iat' = c->>'nbf' AS nbf_is_iat,
       length(c->>'jti') AS jti_length, abs((c->>'iat')::bigint - pg_temp.now_s()) <= 5 AS iat_is_now
  FROM pgapp.decode_token(:'token') AS c;
-- the payload is compact JSON, as other JWT libraries write it
SELECT pg_temp.segment(:'token', 2) !~ '[:,] ' AS compact;
-- the same signature as an independent HMAC-SHA256 of the same text
SELECT split_part(:'token', '.', 3) = pg_temp.b64url(pg_temp.hmac(
           convert_to('regress-secret-0123456789abcdef-0123456789', 'UTF8'),
           convert_to(split_part(:'token', '.', 1) || '.' || split_part(:'token', '.', 2), 'UTF8'),
           'sha256')) AS independent_signature;
-- two tokens never share a jti
SELECT count(DISTINCT pgapp.decode_token(pgapp.encode_token('alice', '{}', '1 minute'))->>'jti') AS distinct_jti
  FROM generate_series(1, 100);
-- a refresh token, and a lifetime in days and hours
SELECT c->>'typ' AS typ, ((c->>'exp')::bigint - (c->>'iat')::bigint) / 3600 AS hours
  FROM pgapp.decode_token(pgapp.encode_token('alice', '{"typ": "refresh"}', '1 day 12 hours')) AS c;

-- What encode_token refuses: claims it sets, a bad typ or role, a bad ttl, no object.
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"exp": 99999999999}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"sub": "bob"}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"jti": "x"}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"typ": "admin"}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"role": "postgres"}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"role": "pg_read_all_data"}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"role": "no_such_role"}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"role": 7}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '[]', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('', '{}', '1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '-1 minute')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '0.5 seconds')$$);
SELECT pg_temp.show(format('SELECT pgapp.encode_token(%L, %L, %L)', 'alice',
                           jsonb_build_object('big', repeat('x', 8000)), '1 minute'));
SELECT pgapp.encode_token(NULL, '{}', '1 minute') IS NULL AS strict;

-- A pgapp_admin member may sign only for roles it is a member of.
CREATE ROLE regress_auth_admin NOLOGIN IN ROLE pgapp_admin;
CREATE ROLE regress_auth_other NOLOGIN;
GRANT regress_auth_user TO regress_auth_admin;
SET ROLE regress_auth_admin;
SELECT pgapp.decode_token(pgapp.encode_token('alice', '{"role": "regress_auth_user"}', '1 minute'))->>'role' AS role;
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"role": "regress_auth_other"}', '1 minute')$$);
RESET ROLE;
-- and a role without pgapp_admin may not sign at all, but may decode
SET ROLE regress_auth_other;
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '1 minute')$$);
SELECT pgapp.decode_token(:'token')->>'sub' AS sub;
RESET ROLE;

-- Time: exp, nbf and iat with pgapp.auth_jwt_leeway (30 s by default).
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s}', pg_temp.now_s() - 10), 'regress-secret-0123456789abcdef-0123456789')) AS expired_within_leeway;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s}', pg_temp.now_s() - 60), 'regress-secret-0123456789abcdef-0123456789')) AS expired;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s,"nbf":%s}', pg_temp.now_s() + 600, pg_temp.now_s() + 10),
           'regress-secret-0123456789abcdef-0123456789')) AS nbf_within_leeway;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s,"nbf":%s}', pg_temp.now_s() + 600, pg_temp.now_s() + 120),
           'regress-secret-0123456789abcdef-0123456789')) AS not_yet_valid;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s,"iat":%s}', pg_temp.now_s() + 600, pg_temp.now_s() + 120),
           'regress-secret-0123456789abcdef-0123456789')) AS issued_in_the_future;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', '{"sub":"a"}',
           'regress-secret-0123456789abcdef-0123456789')) AS no_exp;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', '{"sub":"a","exp":"tomorrow"}',
           'regress-secret-0123456789abcdef-0123456789')) AS exp_not_a_number;
SET pgapp.auth_jwt_leeway = 0;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s}', pg_temp.now_s() - 10), 'regress-secret-0123456789abcdef-0123456789')) AS expired_without_leeway;
RESET pgapp.auth_jwt_leeway;
-- the leeway is the superuser's to set: a SECURITY DEFINER function that
-- decodes runs with its caller's settings
SET ROLE regress_auth_other;
SET pgapp.auth_jwt_leeway = 3600;
RESET ROLE;

-- Issuer and audience, when configured, are set and required.
SET pgapp.auth_jwt_issuer = 'https://auth.example.com';
SET pgapp.auth_jwt_audience = 'api';
SELECT c->>'iss' AS iss, c->>'aud' AS aud FROM pgapp.decode_token(pgapp.encode_token('alice', '{}', '1 minute')) AS c;
SELECT pg_temp.token_error(:'token') AS no_iss;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s,"iss":"https://auth.example.com","aud":["web","api"]}', pg_temp.now_s() + 60),
           'regress-secret-0123456789abcdef-0123456789')) AS aud_in_array;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s,"iss":"https://auth.example.com","aud":"web"}', pg_temp.now_s() + 60),
           'regress-secret-0123456789abcdef-0123456789')) AS other_aud;
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{"aud": "web"}', '1 minute')$$);
RESET pgapp.auth_jwt_issuer;
RESET pgapp.auth_jwt_audience;

-- Inside a PostgREST request (pgapp.error_mode auto with request.method
-- set) a failure is SQLSTATE PGRST: PostgREST answers 401 with
-- WWW-Authenticate and the PJ code in the body.  Each failure's code:
BEGIN;
SELECT set_config('request.method', 'POST', true);
SELECT pg_temp.show($$SELECT pgapp.decode_token('x.y.z')$$);
SELECT pg_temp.show(format('SELECT pgapp.decode_token(%L)', pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
           format('{"sub":"a","exp":%s}', pg_temp.now_s() - 60), 'regress-secret-0123456789abcdef-0123456789')));
ROLLBACK;
SELECT code, pg_temp.token_error(token) AS error FROM (VALUES
    ('malformed', 'x.y.z'),
    ('tampered signature', overlay(:'token' PLACING CASE WHEN substr(split_part(:'token', '.', 3), 5, 1) = 'A' THEN 'B' ELSE 'A' END
                                   FROM length(:'token') - 38 FOR 1)),
    ('tampered payload', overlay(:'token' PLACING CASE WHEN substr(:'token', 50, 1) = 'A' THEN 'B' ELSE 'A' END FROM 50 FOR 1)),
    ('wrong key', pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', '{"sub":"a"}', 'another-secret-0123456789abcdef-0123456789')),
    ('expired', pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', format('{"exp":%s}', pg_temp.now_s() - 60),
                            'regress-secret-0123456789abcdef-0123456789')),
    ('not yet valid', pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', format('{"exp":%s,"nbf":%s}', pg_temp.now_s() + 600, pg_temp.now_s() + 300),
                                  'regress-secret-0123456789abcdef-0123456789'))
) AS t(code, token);

-- token_claims(): the claims PostgREST verified for the request, NULL outside one.
SELECT pgapp.token_claims() IS NULL AS outside_a_request;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "alice", "role": "regress_auth_user"}', true);
SELECT pgapp.token_claims();
ROLLBACK;
-- PostgREST leaves '' behind after a request; an anonymous request has no sub
SELECT set_config('request.jwt.claims', '', false);
SELECT pgapp.token_claims() IS NULL AS after_a_request;
SELECT set_config('request.jwt.claims', '"not an object"', false);
SELECT pgapp.token_claims() IS NULL AS not_an_object;
RESET request.jwt.claims;

-- The key file: one secret, or a key set whose current key signs and whose
-- every key verifies the tokens that name it (kid).  COPY writes it into
-- the data directory as the server's user, mode 0600.
COPY (SELECT 'file-secret-0123456789abcdef-0123456789') TO PROGRAM 'cat > regress_jwt_keys';
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'regress_jwt_keys';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all
SHOW pgapp.auth_jwt_secret_file;
-- both sources set: refused until one is removed
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '1 minute')$$);
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all
SELECT pgapp.encode_token('alice', '{}', '1 hour') AS unnamed \gset
SELECT pgapp.decode_token(:'unnamed')->>'sub' AS sub;
-- the file's final line break is not part of the secret
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', format('{"exp":%s}', pg_temp.now_s() + 60),
           'file-secret-0123456789abcdef-0123456789')) AS same_secret;

-- Rotation: k1 joins (tokens without kid keep the unnamed key "")...
COPY (SELECT '{"current": "k1", "keys": {"": "file-secret-0123456789abcdef-0123456789", "k1": "first-key-0123456789abcdef-0123456789"}}')
  TO PROGRAM 'cat > regress_jwt_keys.new && mv regress_jwt_keys.new regress_jwt_keys';
SELECT pgapp.encode_token('alice', '{}', '1 hour') AS k1 \gset
SELECT pg_temp.segment(:'k1', 1) AS header;
SELECT pgapp.decode_token(:'unnamed')->>'sub' AS unnamed_still_verifies;
-- ... k2 becomes current, k1 still verifies ...
COPY (SELECT '{"current": "k2", "keys": {"k1": "first-key-0123456789abcdef-0123456789", "k2": "second-key-0123456789abcdef-0123456789"}}')
  TO PROGRAM 'cat > regress_jwt_keys.new && mv regress_jwt_keys.new regress_jwt_keys';
SELECT pgapp.decode_token(pgapp.encode_token('alice', '{}', '1 hour'))->>'sub' AS k2_signs;
SELECT pgapp.decode_token(:'k1')->>'sub' AS k1_verifies;
SELECT pg_temp.token_error(:'unnamed') AS unnamed_removed;
-- ... and once k1 is removed, its tokens fail.
COPY (SELECT '{"current": "k2", "keys": {"k2": "second-key-0123456789abcdef-0123456789"}}')
  TO PROGRAM 'cat > regress_jwt_keys.new && mv regress_jwt_keys.new regress_jwt_keys';
SELECT pg_temp.token_error(:'k1') AS k1_removed;

-- Files pgapp refuses: open to others, too short, not a key set.
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; chmod 640 regress_jwt_keys';
SELECT pg_temp.show($$SELECT pgapp.decode_token('a.b.c')$$);
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; chmod 600 regress_jwt_keys';
SELECT pgapp.decode_token(pgapp.encode_token('alice', '{}', '1 minute'))->>'sub' AS readable_again;
CREATE FUNCTION pg_temp.key_file_error(content text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY (SELECT %L) TO PROGRAM %L', content,
                   'cat > regress_jwt_keys.new && mv regress_jwt_keys.new regress_jwt_keys');
    RETURN QUERY SELECT pg_temp.show($q$SELECT pgapp.encode_token('alice', '{}', '1 minute')$q$);
END $$;
SELECT pg_temp.key_file_error('short');
SELECT pg_temp.key_file_error('');
SELECT pg_temp.key_file_error('{"current": "k1", "keys": {"k1": "short"}}');
SELECT pg_temp.key_file_error('{"current": "k9", "keys": {"k1": "first-key-0123456789abcdef-0123456789"}}');
SELECT pg_temp.key_file_error('{"current": "k1", "keys": {"k 1": "first-key-0123456789abcdef-0123456789"}}');
SELECT pg_temp.key_file_error('{"current": "k1", "keys": {"k1": "first-key-0123456789abcdef-0123456789"}, "more": 1}');
SELECT pg_temp.key_file_error('{"current": "k1", "current": "k1", "keys": {}}');
SELECT pg_temp.key_file_error('{"current": "k1", "keys": ');
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'no_such_file';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '1 minute')$$);

ALTER SYSTEM RESET pgapp.auth_jwt_secret_file;
SELECT pg_reload_conf();
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f regress_jwt_keys';
DROP ROLE regress_auth_user, regress_auth_admin, regress_auth_other;

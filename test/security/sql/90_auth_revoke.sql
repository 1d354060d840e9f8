--
-- security/90_auth_revoke: attacks on revocation and on the request check of
-- issue 19.  A revoked jti and a subject logged out everywhere must stay
-- refused, a refresh token must not pass for an access token in PostgREST's
-- pre-request, only pgapp_admin may revoke, a flood of revocations must
-- keep memory and storage bounded without dropping any, and hostile jti and
-- sub strings must neither break nor confuse the check.  test/pgapp.conf
-- sizes the cache at 64 entries.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

ALTER SYSTEM RESET pgapp.auth_jwt_secret_file;
ALTER SYSTEM SET pgapp.auth_jwt_secret = 'sec-revoke-secret-0123456789abcdef';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

-- One PostgREST request with a bearer token and pgapp.pre_request() as its
-- db-pre-request (PostgREST verified the signature and times before; it
-- knows nothing of revocation): what PostgREST would answer.
CREATE FUNCTION pg_temp.request(token text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text;
BEGIN
    PERFORM set_config('role', 'anon', true),
            set_config('request.method', 'GET', true),
            set_config('request.headers', jsonb_build_object('authorization', 'Bearer ' || token)::text, true);
    PERFORM pgapp.pre_request();
    RETURN '200';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    IF st = 'PGRST' THEN
        RETURN (det::jsonb ->> 'status') || ' ' || (msg::jsonb ->> 'code') || ' ' || (msg::jsonb ->> 'message');
    END IF;
    RETURN st || ': ' || msg;
END $$;

SET ROLE sec_admin;
CREATE TEMP TABLE t AS
SELECT name, token, pgapp.decode_token(token) AS claims
  FROM (SELECT name, pgapp.encode_token(sub, claims::jsonb, '1 hour') AS token
          FROM (VALUES ('victim_a', 'victim', '{}'), ('victim_b', 'victim', '{}'),
                       ('other', 'other', '{}'), ('refresh', 'other', '{"typ": "refresh"}'))
               AS v(name, sub, claims)) AS s;
GRANT SELECT ON t TO PUBLIC;
RESET ROLE;
SELECT name, pg_temp.request(token) AS response FROM t ORDER BY name;

-- A. Only pgapp_admin revokes: an ordinary role, anon and pgapp_worker are refused,
--    and nobody but the owner touches the tables.
SET ROLE sec_attacker;
SELECT pg_temp.show($$SELECT pgapp.revoke_token('x', now() + interval '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('victim')$$);
SELECT pg_temp.show($$SELECT pgapp.auth_revocation_cleanup()$$);
SELECT pg_temp.show($$SELECT pgapp.auth_revocation_status()$$);
SELECT pg_temp.show($$SELECT * FROM pgapp.auth_revoked_token$$);
SELECT pg_temp.show($$INSERT INTO pgapp.auth_subject_cutoff VALUES (sha256('x'), 'x', now(), now())$$);
SELECT pg_temp.show($$DELETE FROM pgapp.auth_revoked_token$$);
SELECT pg_temp.show($$SELECT pgapp.define_permissions('users', ARRAY['read'])$$);
SELECT pg_temp.show($$INSERT INTO pgapp.permission_set VALUES ('users', ARRAY['read'])$$);
RESET ROLE;
SET ROLE anon;
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('victim')$$);
RESET ROLE;
SET ROLE pgapp_worker;
SELECT pg_temp.show($$SELECT pgapp.revoke_token('x', now() + interval '1 hour')$$);
RESET ROLE;

-- B. A revoked jti: refused by decode_token (PJ005) and by pre_request (401).
SET ROLE sec_admin;
SELECT pgapp.revoke_token(claims ->> 'jti', to_timestamp((claims ->> 'exp')::bigint)) FROM t WHERE name = 'victim_a';
RESET ROLE;
SET ROLE sec_attacker;
SELECT name, pg_temp.token_error(token) AS decode FROM t ORDER BY name;
SELECT name, pg_temp.request(token) AS response FROM t ORDER BY name;
RESET ROLE;

-- C. Logged out everywhere: every token of the subject, even one issued in
--    the cutoff's second, is refused; the other subject's are not.
SET ROLE sec_admin;
SELECT pgapp.revoke_subject('victim');
SELECT pg_temp.request(pgapp.encode_token('victim', '{}', '1 hour')) AS same_second;
RESET ROLE;
SET ROLE sec_attacker;
SELECT name, pg_temp.request(token) AS response FROM t ORDER BY name;
-- no way around the cutoff: an iat that is not a number is malformed, no iat is revoked
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"victim","iat":"%s","exp":%s}', pg_temp.now_s() + 5, pg_temp.now_s() + 600),
         'sec-revoke-secret-0123456789abcdef')) AS iat_string;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"victim","exp":%s}', pg_temp.now_s() + 600),
         'sec-revoke-secret-0123456789abcdef')) AS no_iat;
RESET ROLE;

-- D. A refresh token used as an access token: PostgREST accepts its
--    signature, the pre-request refuses it (401, PJ007).
SELECT pg_temp.request(token) AS response FROM t WHERE name = 'refresh';

-- E. Hostile jti and sub strings: the longest allowed, and odd Unicode
--    (no NUL: text cannot hold one).  Each revoked string revokes exactly
--    itself; a look-alike (another normalization, a case change) does not.
SET ROLE sec_admin;
SELECT pgapp.revoke_subject(repeat('é', 2500));
SELECT pgapp.revoke_subject(repeat('é', 4096));
SELECT pg_temp.show($$SELECT pgapp.revoke_subject(repeat('é', 4097))$$);
SELECT pgapp.revoke_token(s, now() + interval '1 hour')
  FROM unnest(ARRAY[E'caf\u00e9', E'\u202eevil\u202c', E'\U0001F600\U0001F600', E'a\u0301',
                    'x''); DROP TABLE pgapp.auth_revoked_token; --', E'\\"}{', repeat('j', 5500), repeat('j', 8192)]) AS s;
RESET ROLE;
CREATE FUNCTION pg_temp.forged(sub text, jti text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
             json_build_object('sub', sub, 'jti', jti, 'iat', pg_temp.now_s(), 'exp', pg_temp.now_s() + 600)::text,
             'sec-revoke-secret-0123456789abcdef'))
$$;
SET ROLE sec_attacker;
SELECT label, pg_temp.forged('someone', jti) AS result
  FROM (VALUES ('nfc cafe', E'caf\u00e9'), ('nfd cafe', E'cafe\u0301'), ('rtl override', E'\u202eevil\u202c'),
               ('emoji', E'\U0001F600\U0001F600'), ('one emoji', E'\U0001F600'), ('combining', E'a\u0301'),
               ('precomposed', E'\u00e1'), ('sql', 'x''); DROP TABLE pgapp.auth_revoked_token; --'),
               ('json breakers', E'\\"}{'), ('5500 bytes', repeat('j', 5500)), ('5499 bytes', repeat('j', 5499)))
       AS v(label, jti);
SELECT pg_temp.forged(repeat('é', 2500), 'fresh') AS long_sub, pg_temp.forged(repeat('é', 2499), 'fresh') AS shorter_sub;
RESET ROLE;
SELECT count(*) AS tables_intact FROM pgapp.auth_revoked_token;

-- F. A flood from whoever may revoke: 300 revocations into a cache of 64.
--    None is dropped (every token stays refused), shared memory stays at its
--    capacity, one WARNING says the cache is full, and the checks of this
--    database read the tables until the overflowed entries expire.
SET ROLE sec_admin;
SELECT (s ->> 'capacity')::int AS capacity, (s ->> 'entries')::int <= 64 AS within FROM pgapp.auth_revocation_status() AS s;
SELECT count(*) AS revoked FROM (SELECT pgapp.revoke_token('flood-' || i, now() + interval '1 hour')
                                   FROM generate_series(1, 300) AS i) AS s;
SELECT (s ->> 'entries')::int AS entries, s ->> 'overflow_until' IS NOT NULL AS overflowed
  FROM pgapp.auth_revocation_status() AS s;
RESET ROLE;
SET ROLE sec_attacker;
SELECT count(*) FILTER (WHERE r LIKE 'PJ005%') AS still_refused, count(*) AS checked
  FROM (SELECT pg_temp.forged('someone', 'flood-' || i) AS r FROM generate_series(1, 300) AS i) AS s;
SELECT name, pg_temp.token_error(token) FROM t ORDER BY name;
RESET ROLE;
-- the checks now read the tables (correct, slower)
CREATE FUNCTION pg_temp.scans() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::bigint FROM pg_stat_xact_user_tables
     WHERE relname IN ('auth_revoked_token', 'auth_subject_cutoff')
$$;
BEGIN;
SELECT pg_temp.scans() AS scans_before \gset
SELECT pg_temp.token_error(token) FROM t WHERE name = 'other';
SELECT pg_temp.scans() - :scans_before > 0 AS read_the_tables;
COMMIT;
-- storage: a revocation of a token that has already expired stores nothing
SET ROLE sec_admin;
SELECT count(*) FROM (SELECT pgapp.revoke_token('gone-' || i, now() - interval '1 minute')
                        FROM generate_series(1, 1000) AS i) AS s;
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('gone', now() - interval '31 days')$$);
RESET ROLE;
SELECT count(*) AS gone_rows FROM pgapp.auth_revoked_token WHERE jti LIKE 'gone-%';
SELECT count(*) AS gone_cutoffs FROM pgapp.auth_subject_cutoff WHERE sub = 'gone';

-- G. Permissions cannot be granted by a caller: the pem claim comes from a
--    signed token; a forged request.jwt.claims outside PostgREST is the
--    documented limit of require_role and has_permission (docs/auth.md), and
--    authenticate_request never accepts more than the token says.
SET ROLE sec_admin;
SELECT pgapp.define_permissions('reports', ARRAY['read', 'export']);
RESET ROLE;
SET ROLE sec_attacker;
SELECT pg_temp.show($$SELECT pgapp.require_permission('reports', 'export')$$);
SELECT pg_temp.show($$SELECT pgapp.require_role(ARRAY['sec_web'])$$);
RESET ROLE;
-- 8. encode_permissions is PUBLIC's: whatever shape anon passes, a 22023
--    naming the problem (never a mask for an undefined permission, never a
--    crash), and a resource or permission name is echoed at most 100 chars.
SET ROLE anon;
SELECT pgapp.encode_permissions('{"reports": ["export", "read"]}') AS mask;
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('[1, 2]')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('{"reports": "read"}')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('{"reports": ["read", null]}')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_permissions('{"reports": [{"read": true}]}')$$);
SELECT pg_temp.show(format('SELECT pgapp.encode_permissions(%L)', jsonb_build_object(repeat('r', 100000), '[]'::jsonb)));
SELECT pg_temp.show(format('SELECT pgapp.encode_permissions(%L)', jsonb_build_object('reports', jsonb_build_array(repeat('x', 100000)))));
SELECT pgapp.encode_permissions('{}') AS empty;
RESET ROLE;

DROP TABLE t;
DELETE FROM pgapp.permission_set;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

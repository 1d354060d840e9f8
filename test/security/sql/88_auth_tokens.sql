--
-- security/88_auth_tokens: the token attacks of issue 19, replayed against
-- pgapp.decode_token as sec_attacker (decode_token is PUBLIC's), and the
-- ways to read the secret or mint a token without the right.  The signer of
-- test/helpers/token_helpers.sql (SQL's own sha256/sha512) forges tokens
-- pgapp would never make; each attack shows its SQLSTATE and detail.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

-- A. An empty or short secret: nothing is signed or verified.
ALTER SYSTEM SET pgapp.auth_jwt_secret = '';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '1 minute')$$);
SELECT pg_temp.token_error('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') AS empty_secret;
COPY (SELECT 'x') TO PROGRAM 'cat > sec_jwt_keys';
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'sec_jwt_keys';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all
SELECT pg_temp.show($$SELECT pgapp.decode_token('a.b.c')$$);

-- The real key set: k2 signs, k1 still verifies.
COPY (SELECT '{"current": "k2", "keys": {"k1": "old-key-0123456789abcdef-0123456789", "k2": "sec-key-0123456789abcdef-0123456789"}}')
  TO PROGRAM 'cat > sec_jwt_keys.new && mv sec_jwt_keys.new sec_jwt_keys';
CREATE ROLE sec_web NOLOGIN;
GRANT sec_web TO sec_admin;
SET ROLE sec_admin;
SELECT pgapp.encode_token('victim', '{"role": "sec_web"}', '1 hour') AS good \gset
RESET ROLE;
SELECT pg_temp.token_error(:'good') AS good;
\set k2 'sec-key-0123456789abcdef-0123456789'
SELECT format('{"sub":"victim","role":"sec_web","exp":%s}', pg_temp.now_s() + 3600) AS payload \gset

-- B. Algorithms: none, HS512 with a real HMAC-SHA512, RS256 with an HMAC of
--    the text (a verifier that takes the key as an HMAC secret accepts it),
--    lower-case names, a missing alg or typ.
SET ROLE sec_attacker;
SELECT attack, pg_temp.token_error(token) AS result FROM (VALUES
    ('alg none, no signature', pg_temp.b64url('{"alg":"none","typ":"JWT"}') || '.' || pg_temp.b64url(convert_to(:'payload', 'UTF8')) || '.'),
    ('alg none, a signature', pg_temp.jwt('{"alg":"none","typ":"JWT","kid":"k2"}', :'payload', :'k2')),
    ('alg HS512, HMAC-SHA512 with the key', pg_temp.jwt('{"alg":"HS512","typ":"JWT","kid":"k2"}', :'payload', :'k2', 'sha512')),
    ('alg RS256, HMAC-SHA256 with the key', pg_temp.jwt('{"alg":"RS256","typ":"JWT","kid":"k2"}', :'payload', :'k2')),
    ('alg RS256, HMAC with a public key', pg_temp.jwt('{"alg":"RS256","typ":"JWT"}', :'payload', '-----BEGIN PUBLIC KEY-----MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA')),
    ('alg hs256', pg_temp.jwt('{"alg":"hs256","typ":"JWT","kid":"k2"}', :'payload', :'k2')),
    ('no alg', pg_temp.jwt('{"typ":"JWT","kid":"k2"}', :'payload', :'k2')),
    ('no typ', pg_temp.jwt('{"alg":"HS256","kid":"k2"}', :'payload', :'k2')),
    ('typ JWE', pg_temp.jwt('{"alg":"HS256","typ":"JWE","kid":"k2"}', :'payload', :'k2'))
) AS t(attack, token);

-- C. Header members that make other verifiers fetch keys or skip checks,
--    duplicate keys, odd kids, a header that is not an object.
SELECT attack, pg_temp.token_error(token) AS result FROM (VALUES
    ('crit', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2","crit":["exp"]}', :'payload', :'k2')),
    ('jku', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2","jku":"https://evil.example/keys"}', :'payload', :'k2')),
    ('x5u', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2","x5u":"https://evil.example/cert"}', :'payload', :'k2')),
    ('jwk', pg_temp.jwt('{"alg":"HS256","typ":"JWT","jwk":{"kty":"oct","k":"QUFBQQ"}}', :'payload', 'AAAA')),
    ('x5c', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2","x5c":["MIIB"]}', :'payload', :'k2')),
    ('duplicate alg', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2","alg":"none"}', :'payload', :'k2')),
    ('duplicate kid', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k9","kid":"k2"}', :'payload', :'k2')),
    ('kid path', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"../../../etc/passwd"}', :'payload', '')),
    ('kid SQL', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2''; DROP TABLE x; --"}', :'payload', :'k2')),
    ('kid empty', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":""}', :'payload', :'k2')),
    ('kid number', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":2}', :'payload', :'k2')),
    ('kid unknown', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k3"}', :'payload', :'k2')),
    ('header array', pg_temp.jwt('["HS256","JWT"]', :'payload', :'k2')),
    ('header with NUL', pg_temp.jwt('{"alg":"HS256\u0000","typ":"JWT","kid":"k2"}', :'payload', :'k2')),
    ('header trailing data', pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2"}{}', :'payload', :'k2'))
) AS t(attack, token);

-- D. Altered tokens: payload, signature, truncation, extra segments, other
--    alphabets, padding, whitespace, a non-canonical last character, size.
SELECT attack, pg_temp.token_error(token) AS result FROM (VALUES
    ('payload role changed',
     split_part(:'good', '.', 1) || '.' || pg_temp.b64url(convert_to(replace(pg_temp.segment(:'good', 2), '"sec_web"', '"postgres"'), 'UTF8'))
     || '.' || split_part(:'good', '.', 3)),
    ('payload exp extended',
     split_part(:'good', '.', 1) || '.' || pg_temp.b64url(convert_to(regexp_replace(pg_temp.segment(:'good', 2), '"exp":\d+', '"exp":99999999999'), 'UTF8'))
     || '.' || split_part(:'good', '.', 3)),
    ('signature bit flipped', overlay(:'good' PLACING CASE substr(:'good', length(:'good') - 10, 1) WHEN 'A' THEN 'B' ELSE 'A' END
                                      FROM length(:'good') - 10 FOR 1)),
    ('signature of another token', split_part(:'good', '.', 1) || '.' || split_part(:'good', '.', 2) || '.'
                                   || split_part(pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2"}', '{}', :'k2'), '.', 3)),
    ('signature removed', split_part(:'good', '.', 1) || '.' || split_part(:'good', '.', 2) || '.'),
    ('last character dropped', left(:'good', -1)),
    ('two segments', split_part(:'good', '.', 1) || '.' || split_part(:'good', '.', 2)),
    ('one segment', split_part(:'good', '.', 1)),
    ('empty', ''),
    ('dots only', '..'),
    ('four segments', :'good' || '.' || split_part(:'good', '.', 3)),
    ('five segments (JWE)', :'good' || '.e30.e30'),
    ('trailing dot', :'good' || '.'),
    ('leading dot', '.' || :'good'),
    ('padding', :'good' || '='),
    ('padded header', split_part(:'good', '.', 1) || '==.' || split_part(:'good', '.', 2) || '.' || split_part(:'good', '.', 3)),
    ('a + in the signature', overlay(:'good' PLACING '+' FROM length(:'good') - 5 FOR 1)),
    ('a / in the payload', overlay(:'good' PLACING '/' FROM length(split_part(:'good', '.', 1)) + 5 FOR 1)),
    ('space inside', overlay(:'good' PLACING ' ' FROM 10 FOR 0)),
    ('newline at the end', :'good' || E'\n'),
    ('bearer prefix', 'Bearer ' || :'good'),
    ('non-canonical last character', left(:'good', -1) || CASE right(:'good', 1) WHEN 'A' THEN 'B' ELSE chr(ascii(right(:'good', 1)) # 1) END),
    ('8193 bytes', :'good' || repeat('A', 8193 - length(:'good'))),
    ('1 MB', repeat('A', 1048576))
) AS t(attack, token);

-- E. Payloads signed with the right key that pgapp still refuses.
SELECT attack, pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2"}', payload, :'k2')) AS result FROM (VALUES
    ('expired', format('{"sub":"victim","exp":%s}', pg_temp.now_s() - 3600)),
    ('not yet valid', format('{"sub":"victim","exp":%s,"nbf":%s}', pg_temp.now_s() + 7200, pg_temp.now_s() + 3600)),
    ('issued in the future', format('{"sub":"victim","exp":%s,"iat":%s}', pg_temp.now_s() + 7200, pg_temp.now_s() + 3600)),
    ('no exp', '{"sub":"victim","role":"sec_web"}'),
    ('exp a string', format('{"sub":"victim","exp":"%s"}', pg_temp.now_s() + 3600)),
    ('exp null', '{"sub":"victim","exp":null}'),
    ('duplicate role', format('{"sub":"victim","role":"sec_web","role":"postgres","exp":%s}', pg_temp.now_s() + 3600)),
    ('payload array', '[{"sub":"victim"}]'),
    ('payload string', '"victim"'),
    ('payload not JSON', '{sub: victim}'),
    ('huge exponent', '{"sub":"victim","exp":1e400}')
) AS t(attack, payload);

-- F. The wrong key, and a key rotated out.
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k2"}', :'payload', 'guessed-key-0123456789abcdef-0123456789')) AS wrong_key;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k1"}', :'payload', 'old-key-0123456789abcdef-0123456789')) AS k1_before_removal;
RESET ROLE;
COPY (SELECT '{"current": "k2", "keys": {"k2": "sec-key-0123456789abcdef-0123456789"}}')
  TO PROGRAM 'cat > sec_jwt_keys.new && mv sec_jwt_keys.new sec_jwt_keys';
SET ROLE sec_attacker;
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT","kid":"k1"}', :'payload', 'old-key-0123456789abcdef-0123456789')) AS k1_rotated_out;
SELECT pg_temp.token_error(:'good') AS k2_still_verifies;

-- G. Minting without the right, or beyond it.
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{}', '1 hour')$$);
SET ROLE anon;
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{}', '1 hour')$$);
SET ROLE sec_admin;
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "postgres"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "pgapp_admin"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "sec_victim"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "pg_write_server_files"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"exp": 99999999999}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"nbf": 0, "iat": 0}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"typ": "root"}', '1 hour')$$);
RESET ROLE;

-- H. Reading the secret: the setting, the views, the files, a wider leeway.
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = '';
ALTER SYSTEM SET pgapp.auth_jwt_secret = 'inline-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
CREATE ROLE sec_monitor NOLOGIN IN ROLE pg_monitor;
SET ROLE sec_attacker;
SELECT pg_temp.show($$SHOW pgapp.auth_jwt_secret$$);
SELECT pg_temp.show($$SELECT current_setting('pgapp.auth_jwt_secret', true)$$);
SELECT pg_temp.show($$SELECT current_setting('pgapp.auth_jwt_secret_file')$$);
SELECT count(*) AS visible_in_pg_settings FROM pg_settings WHERE name LIKE 'pgapp.auth_jwt_secret%';
SELECT pg_temp.show($$SELECT count(*) FROM pg_file_settings$$);
SELECT pg_temp.show($$SELECT pg_read_file('postgresql.auto.conf')$$);
SELECT pg_temp.show($$SELECT pg_read_file('sec_jwt_keys')$$);
SELECT pg_temp.show($$SET pgapp.auth_jwt_leeway = '1d'$$);
SELECT pg_temp.show($$SET pgapp.auth_jwt_secret = 'attacker-secret-0123456789abcdef-0123456789'$$);
SELECT pg_temp.show($$ALTER ROLE sec_attacker SET pgapp.auth_jwt_audience = ''$$);
-- pg_monitor (pg_read_all_settings) sees every superuser-only setting, but
-- this one holds no secret to see
SET ROLE sec_monitor;
SHOW pgapp.auth_jwt_secret;
SELECT name, setting, reset_val, boot_val FROM pg_settings WHERE name = 'pgapp.auth_jwt_secret';
SELECT pg_temp.show($$SELECT count(*) FROM pg_file_settings$$);
RESET ROLE;
-- and no settings view holds it, whoever reads
SELECT count(*) AS secret_in_settings_views FROM pg_settings
 WHERE setting LIKE '%secret-0123456789%' OR reset_val LIKE '%secret-0123456789%' OR boot_val LIKE '%secret-0123456789%';

-- I. 100,000 random mutations of valid tokens (a character replaced,
--    deleted or inserted, the token cut, two characters swapped, segments
--    moved): none is accepted, every one fails as malformed or badly signed.
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'sec_jwt_keys';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
CREATE FUNCTION pg_temp.fuzz(tokens text[], n int)
RETURNS TABLE (mutations int, accepted int, malformed int, bad_signature int, other text)
LANGUAGE plpgsql AS $$
DECLARE
    alphabet constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
    t text;
    m text;
    c text;
    pos int;
    len int;
    st text;
BEGIN
    mutations := 0; accepted := 0; malformed := 0; bad_signature := 0; other := '';
    PERFORM setseed(0.19);
    WHILE mutations < n LOOP
        t := tokens[1 + mutations % cardinality(tokens)];
        len := length(t);
        pos := 1 + floor(random() * len)::int;
        c := substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1);
        CASE floor(random() * 6)::int
            WHEN 0 THEN m := overlay(t PLACING c FROM pos FOR 1);
            WHEN 1 THEN m := overlay(t PLACING '' FROM pos FOR 1);
            WHEN 2 THEN m := overlay(t PLACING c FROM pos FOR 0);
            WHEN 3 THEN m := left(t, pos - 1);
            WHEN 4 THEN m := overlay(t PLACING substr(t, pos + 1, 1) || substr(t, pos, 1) FROM pos FOR 2);
            ELSE m := split_part(t, '.', 1 + floor(random() * 3)::int) || '.' || split_part(t, '.', 1 + floor(random() * 3)::int)
                      || '.' || split_part(t, '.', 1 + floor(random() * 3)::int);
        END CASE;
        CONTINUE WHEN m = t;
        mutations := mutations + 1;
        BEGIN
            PERFORM pgapp.decode_token(m);
            accepted := accepted + 1;
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
            IF st = 'PJ001' THEN malformed := malformed + 1;
            ELSIF st = 'PJ002' THEN bad_signature := bad_signature + 1;
            ELSIF position(st IN other) = 0 THEN other := other || st || ' ';
            END IF;
        END;
    END LOOP;
    RETURN NEXT;
END $$;
SET ROLE sec_admin;
SELECT array[pgapp.encode_token('victim', '{"role": "sec_web"}', '1 hour'),
             pgapp.encode_token('v', '{}', '1 hour'),
             pgapp.encode_token('victim', jsonb_build_object('role', 'sec_web', 'scope', repeat('read write ', 50)), '1 hour')]::text AS seeds \gset
SET ROLE sec_attacker;
SELECT mutations, accepted, malformed + bad_signature AS refused, other = '' AS nothing_else,
       malformed > 10000 AND bad_signature > 10000 AS both_kinds
  FROM pg_temp.fuzz(:'seeds'::text[], 100000);
RESET ROLE;

ALTER SYSTEM RESET pgapp.auth_jwt_secret_file;
SELECT pg_reload_conf();
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f sec_jwt_keys';
DROP ROLE sec_monitor;
REVOKE sec_web FROM sec_admin;
DROP ROLE sec_web;

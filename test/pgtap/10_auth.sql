-- test/pgtap/10_auth.sql
-- Tokens: signatures, who may sign and verify, and that no role but the
-- server can read the secret, whichever view or function it tries.  The
-- pgtap instance has no secret configured (its behaviour with one is in
-- test/regress/sql/auth.sql and test/security/sql/88_auth_tokens.sql).
BEGIN;
SELECT plan(32);

SELECT function_returns('pgapp', 'encode_token', ARRAY['text', 'jsonb', 'interval'], 'text');
SELECT function_returns('pgapp', 'decode_token', ARRAY['text'], 'jsonb');
SELECT function_returns('pgapp', 'token_claims', ARRAY[]::text[], 'jsonb');
SELECT volatility_is('pgapp', 'encode_token', ARRAY['text', 'jsonb', 'interval'], 'volatile');
SELECT volatility_is('pgapp', 'decode_token', ARRAY['text'], 'stable');
SELECT is_strict('pgapp', 'decode_token', ARRAY['text'], 'decode_token(NULL) is NULL');
SELECT isnt_definer('pgapp', 'encode_token', ARRAY['text', 'jsonb', 'interval'],
    'encode_token runs with its caller''s rights (the role claim is checked against the caller)');

-- who may call what
SELECT ok(NOT has_function_privilege('public', 'pgapp.encode_token(text,jsonb,interval)', 'EXECUTE'),
    'PUBLIC cannot sign tokens');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.encode_token(text,jsonb,interval)', 'EXECUTE'),
    'pgapp_admin can sign tokens');
SELECT ok(NOT has_function_privilege('pgapp_worker', 'pgapp.encode_token(text,jsonb,interval)', 'EXECUTE'),
    'pgapp_worker cannot sign tokens');
SELECT ok(has_function_privilege('public', 'pgapp.decode_token(text)', 'EXECUTE'),
    'everyone may verify a token');
SELECT ok(has_function_privilege('public', 'pgapp.token_claims()', 'EXECUTE'),
    'everyone may read the request''s claims');

CREATE ROLE tap_anon NOLOGIN;
CREATE ROLE tap_monitor NOLOGIN IN ROLE pg_monitor;
SET LOCAL ROLE tap_anon;
SELECT throws_ok($$SELECT pgapp.encode_token('alice', '{}', '1 minute')$$, '42501',
    'permission denied for function encode_token', 'anon cannot sign');
SELECT throws_ok($$SHOW pgapp.auth_jwt_secret$$, '42501', NULL, 'anon cannot SHOW the secret');
SELECT throws_ok($$SELECT current_setting('pgapp.auth_jwt_secret')$$, '42501', NULL,
    'anon cannot read the secret with current_setting()');
SELECT throws_ok($$SELECT current_setting('pgapp.auth_jwt_secret_file')$$, '42501', NULL,
    'anon cannot read where the key file is');
SELECT is_empty($$SELECT 1 FROM pg_settings WHERE name LIKE 'pgapp.auth\_jwt\_secret%'$$,
    'anon does not see the secret settings in pg_settings');
SELECT throws_ok($$SELECT * FROM pg_file_settings$$, '42501', NULL, 'anon cannot read pg_file_settings');
SELECT throws_ok($$SELECT * FROM pg_show_all_file_settings()$$, '42501', NULL,
    'anon cannot call pg_show_all_file_settings()');
SELECT throws_ok($$SELECT pg_read_file('postgresql.auto.conf')$$, '42501', NULL,
    'anon cannot read postgresql.auto.conf');
SELECT throws_ok($$SET pgapp.auth_jwt_leeway = 86400$$, '42501', NULL, 'anon cannot widen the leeway');
SELECT throws_ok($$SET pgapp.auth_jwt_audience = ''$$, '42501', NULL, 'anon cannot change the audience');
SELECT throws_ok($$SET pgapp.auth_jwt_secret = 'anon-secret-0123456789abcdef-0123456789'$$, '55P02', NULL,
    'nobody sets the secret in a session');
RESET ROLE;
-- pg_read_all_settings (in pg_monitor) reads superuser-only settings; this
-- one shows only whether a secret is set, and its reset and boot values are empty
SET LOCAL ROLE tap_monitor;
SELECT is((SELECT setting || '|' || reset_val || '|' || boot_val FROM pg_settings WHERE name = 'pgapp.auth_jwt_secret'),
    '||', 'pg_monitor sees no secret in pg_settings');
RESET ROLE;

-- settings: where they may be set
SELECT is((SELECT context FROM pg_settings WHERE name = 'pgapp.auth_jwt_secret'), 'sighup',
    'the secret is read from the configuration files only');
SELECT is((SELECT context FROM pg_settings WHERE name = 'pgapp.auth_jwt_secret_file'), 'sighup',
    'so is the key file''s name');
SELECT is((SELECT context || ' ' || setting || unit FROM pg_settings WHERE name = 'pgapp.auth_jwt_leeway'), 'superuser 30s',
    'a leeway of 30 s, as PostgREST, changed by superusers only');
SELECT is((SELECT string_agg(context, ' ' ORDER BY name) FROM pg_settings
            WHERE name IN ('pgapp.auth_jwt_issuer', 'pgapp.auth_jwt_audience')), 'superuser superuser',
    'issuer and audience are changed by superusers only');

-- nothing configured: both refuse with a hint naming the settings
SELECT throws_ok($$SELECT pgapp.encode_token('alice', '{}', '1 minute')$$, '55000',
    'no token secret is configured', 'no secret: encode_token refuses');
SELECT throws_ok($$SELECT pgapp.decode_token('a.b.c')$$, '55000',
    'no token secret is configured', 'no secret: decode_token refuses');
SELECT ok(pgapp.token_claims() IS NULL, 'no request: no claims');
SELECT is((SELECT pgapp.token_claims() FROM (SELECT set_config('request.jwt.claims', '{"role": "anon"}', true)) AS s),
    '{"role": "anon"}'::jsonb, 'in a request: the claims PostgREST set');

SELECT * FROM finish();
ROLLBACK;

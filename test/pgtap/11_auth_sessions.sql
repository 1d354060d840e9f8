-- test/pgtap/11_auth_sessions.sql
-- Passwords and sessions: signatures, who may call what, and that no role
-- but the extension's owner reads the accounts (their hashes) or the
-- refresh tokens, through the tables or the internal functions.
BEGIN;
SELECT plan(41);

SELECT function_returns('pgapp', 'register', ARRAY['text', 'text', 'jsonb'], 'jsonb');
SELECT function_returns('pgapp', 'login', ARRAY['text', 'text'], 'jsonb');
SELECT function_returns('pgapp', 'refresh', ARRAY['text'], 'jsonb');
SELECT function_returns('pgapp', 'auth_sweep', ARRAY['integer'], 'bigint');
SELECT is_definer('pgapp', 'register', ARRAY['text', 'text', 'jsonb'], 'register runs as the owner');
SELECT is_definer('pgapp', 'login', ARRAY['text', 'text'], 'login runs as the owner');
SELECT is_definer('pgapp', 'refresh', ARRAY['text'], 'refresh runs as the owner');
SELECT is(
    (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'pgapp' AND p.prosecdef
        AND p.proname IN ('register', 'login', 'refresh', 'logout', 'logout_everywhere', 'auth_sweep')
        AND p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp']),
    6, 'the SECURITY DEFINER functions pin search_path');
SELECT has_table('pgapp', 'auth_user', 'the accounts table');
SELECT has_table('pgapp', 'auth_refresh_token', 'the refresh tokens table');
SELECT has_index('pgapp', 'auth_user', 'auth_user_email_index', 'the email is unique case-insensitively');
SELECT ok((SELECT indisunique FROM pg_index WHERE indexrelid = 'pgapp.auth_user_email_index'::regclass),
    'auth_user_email_index is unique');

-- the tables: nobody but the owner
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_user', 'SELECT'), 'PUBLIC cannot read accounts');
SELECT ok(NOT has_table_privilege('pgapp_admin', 'pgapp.auth_user', 'SELECT'), 'pgapp_admin cannot read accounts');
SELECT ok(NOT has_column_privilege('pgapp_admin', 'pgapp.auth_user', 'password_hash', 'SELECT'),
    'pgapp_admin cannot read the hashes');
SELECT ok(NOT has_table_privilege('pgapp_worker', 'pgapp.auth_user', 'SELECT'), 'pgapp_worker cannot read accounts');
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_refresh_token', 'SELECT'), 'PUBLIC cannot read refresh tokens');
SELECT ok(NOT has_table_privilege('pgapp_admin', 'pgapp.auth_refresh_token', 'SELECT'),
    'pgapp_admin cannot read refresh tokens');
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_user', 'INSERT,UPDATE,DELETE'), 'PUBLIC cannot write accounts');

-- the functions: anon may register, log in and refresh, nothing inside
CREATE ROLE tap_sessions_anon NOLOGIN;
SELECT ok(has_function_privilege('tap_sessions_anon', 'pgapp.register(text,text,jsonb)', 'EXECUTE'), 'anon may register');
SELECT ok(has_function_privilege('tap_sessions_anon', 'pgapp.login(text,text)', 'EXECUTE'), 'anon may log in');
SELECT ok(has_function_privilege('tap_sessions_anon', 'pgapp.refresh(text)', 'EXECUTE'), 'anon may refresh');
SELECT ok(has_function_privilege('tap_sessions_anon', 'pgapp.logout(text)', 'EXECUTE'), 'anon may log out (the token proves it)');
SELECT ok(has_function_privilege('tap_sessions_anon', 'pgapp.logout_everywhere(text)', 'EXECUTE'),
    'anon may call logout_everywhere (it checks the caller itself)');
SELECT is_definer('pgapp', 'logout_everywhere', ARRAY['text'], 'logout_everywhere runs as the owner');
SELECT ok(NOT has_function_privilege('tap_sessions_anon', 'pgapp.auth_sweep(integer)', 'EXECUTE'), 'anon cannot sweep');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.auth_sweep(integer)', 'EXECUTE'), 'pgapp_admin may sweep');
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'pgapp' AND (p.proname LIKE '\_auth\_%' OR p.proname LIKE '\_password\_%')
        AND has_function_privilege('tap_sessions_anon', p.oid, 'EXECUTE')),
    NULL, 'anon can call none of the internal auth functions');
SET LOCAL ROLE tap_sessions_anon;
SELECT throws_ok($$SELECT * FROM pgapp.auth_user$$, '42501', 'permission denied for table auth_user',
    'anon cannot read accounts');
SELECT throws_ok($$SELECT * FROM pgapp.auth_refresh_token$$, '42501', 'permission denied for table auth_refresh_token',
    'anon cannot read refresh tokens');
SELECT throws_ok($$SELECT pgapp._password_hash('x')$$, '42501', 'permission denied for function _password_hash',
    'anon cannot hash');
SELECT throws_ok($$SELECT pgapp._password_verify(NULL, 'x')$$, '42501', 'permission denied for function _password_verify',
    'anon cannot verify');
SELECT throws_ok($$SELECT pgapp._auth_session(gen_random_uuid(), NULL, NULL, NULL)$$, '42501',
    'permission denied for function _auth_session', 'anon cannot mint sessions');
SELECT throws_ok($$SELECT pgapp._auth_reused(gen_random_uuid())$$, '42501',
    'permission denied for function _auth_reused', 'anon cannot end sessions');
SELECT throws_ok($$SELECT pgapp.auth_sweep()$$, '42501', 'permission denied for function auth_sweep',
    'anon cannot sweep');
SELECT throws_ok($$SET pgapp.auth_password_memlimit = '8kB'$$, '42501', NULL, 'anon cannot weaken the hashes');
SELECT throws_ok($$SET pgapp.auth_default_role = 'pgapp_admin'$$, '42501', NULL, 'anon cannot choose the role of new users');
SELECT throws_ok($$SET pgapp.auth_login_max_attempts = 1000000$$, '42501', NULL, 'anon cannot lift the login limit');
-- no secret configured here: login gets as far as the tokens and stops
SELECT throws_ok($$SELECT pgapp.login('nobody@example.com', 'whatever')$$, 'PT401', 'invalid email or password',
    'anon may call login');
SELECT ok((SELECT concurrency FROM pgapp.auth_hash_stats) >= 1, 'anon may read the hashing counters');
SELECT throws_ok($$SELECT pgapp.logout_everywhere('00000000-0000-0000-0000-000000000000')$$, '42501',
    'permission denied to end the sessions of "00000000-0000-0000-0000-000000000000"',
    'anon cannot end another user''s sessions');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

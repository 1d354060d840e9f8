-- test/pgtap/11_auth_revoke.sql
-- Revocation, request checks and permissions: signatures, and who may read,
-- write or call what (anon, a role with PUBLIC's rights only, pgapp_admin).
BEGIN;
SELECT plan(56);

SELECT function_returns('pgapp', 'revoke_token', ARRAY['text', 'timestamp with time zone'], 'void');
SELECT function_returns('pgapp', 'revoke_subject', ARRAY['text', 'timestamp with time zone'], 'void');
SELECT function_returns('pgapp', 'auth_revocation_cleanup', ARRAY[]::text[], 'integer');
SELECT function_returns('pgapp', 'auth_revocation_status', ARRAY[]::text[], 'jsonb');
SELECT function_returns('pgapp', 'authenticate_request', ARRAY[]::text[], 'void');
SELECT function_returns('pgapp', 'pre_request', ARRAY[]::text[], 'void');
SELECT function_returns('pgapp', 'require_role', ARRAY['text[]'], 'void');
SELECT function_returns('pgapp', 'define_permissions', ARRAY['text', 'text[]'], 'void');
SELECT function_returns('pgapp', 'encode_permissions', ARRAY['jsonb'], 'jsonb');
SELECT function_returns('pgapp', 'has_permission', ARRAY['text', 'text'], 'boolean');
SELECT function_returns('pgapp', 'require_permission', ARRAY['text', 'text'], 'void');
SELECT is((SELECT pg_get_function_arguments('pgapp.revoke_subject(text,timestamptz)'::regprocedure)),
    'sub text, not_before timestamp with time zone DEFAULT now()', 'revoke_subject''s not_before defaults to now()');
SELECT is_strict('pgapp', 'revoke_token', ARRAY['text', 'timestamp with time zone'], 'revoke_token is STRICT');
SELECT isnt_strict('pgapp', 'require_role', ARRAY['text[]'], 'require_role(NULL) raises rather than passing');
SELECT isnt_strict('pgapp', 'require_permission', ARRAY['text', 'text'], 'so does require_permission');
SELECT isnt_definer('pgapp', 'revoke_token', ARRAY['text', 'timestamp with time zone'],
    'revoke_token is not SECURITY DEFINER (EXECUTE is the permission; it writes as the owner)');
SELECT isnt_definer('pgapp', 'authenticate_request', ARRAY[]::text[], 'authenticate_request runs as the request''s role');
SELECT is_definer('pgapp', 'define_permissions', ARRAY['text', 'text[]'], 'define_permissions writes as the owner');

-- every SECURITY DEFINER function of this area pins its search_path
SELECT is_empty($$SELECT p.proname FROM pg_proc p
                   WHERE p.pronamespace = 'pgapp'::regnamespace AND p.prosecdef
                     AND p.proname IN ('define_permissions')
                     AND NOT 'search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}'))$$,
    'SECURITY DEFINER functions set search_path = pg_catalog, pg_temp');

-- tables: nobody but the owner writes; pgapp_admin reads the revocations
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_revoked_token', 'SELECT'), 'PUBLIC cannot read revoked tokens');
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_subject_cutoff', 'SELECT'), 'PUBLIC cannot read subject cutoffs');
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_revoked_token', 'INSERT,UPDATE,DELETE,TRUNCATE'),
    'PUBLIC cannot write revoked tokens');
SELECT ok(NOT has_table_privilege('public', 'pgapp.auth_subject_cutoff', 'INSERT,UPDATE,DELETE,TRUNCATE'),
    'PUBLIC cannot write subject cutoffs');
SELECT ok(has_table_privilege('pgapp_admin', 'pgapp.auth_revoked_token', 'SELECT'), 'pgapp_admin reads revoked tokens');
SELECT ok(has_table_privilege('pgapp_admin', 'pgapp.auth_subject_cutoff', 'SELECT'), 'pgapp_admin reads subject cutoffs');
SELECT ok(NOT has_table_privilege('pgapp_admin', 'pgapp.auth_revoked_token', 'INSERT,UPDATE,DELETE,TRUNCATE'),
    'pgapp_admin cannot write revoked tokens but through revoke_token');
SELECT ok(NOT has_table_privilege('pgapp_admin', 'pgapp.auth_subject_cutoff', 'INSERT,UPDATE,DELETE,TRUNCATE'),
    'pgapp_admin cannot write subject cutoffs but through revoke_subject');
SELECT ok(has_table_privilege('public', 'pgapp.permission_set', 'SELECT'), 'permission sets are readable (they are no secret)');
SELECT ok(NOT has_table_privilege('public', 'pgapp.permission_set', 'INSERT,UPDATE,DELETE,TRUNCATE'),
    'PUBLIC cannot write permission sets');
SELECT ok(NOT has_table_privilege('pgapp_admin', 'pgapp.permission_set', 'INSERT,UPDATE,DELETE,TRUNCATE'),
    'pgapp_admin writes permission sets through define_permissions only');

-- functions: who may call
SELECT ok(NOT has_function_privilege('public', 'pgapp.revoke_token(text,timestamptz)', 'EXECUTE'), 'PUBLIC cannot revoke tokens');
SELECT ok(NOT has_function_privilege('public', 'pgapp.revoke_subject(text,timestamptz)', 'EXECUTE'), 'PUBLIC cannot revoke subjects');
SELECT ok(NOT has_function_privilege('public', 'pgapp.auth_revocation_cleanup()', 'EXECUTE'), 'PUBLIC cannot run the cleanup');
SELECT ok(NOT has_function_privilege('public', 'pgapp.auth_revocation_status()', 'EXECUTE'), 'PUBLIC cannot see the cache');
SELECT ok(NOT has_function_privilege('public', 'pgapp.define_permissions(text,text[])', 'EXECUTE'), 'PUBLIC cannot define permissions');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.revoke_token(text,timestamptz)', 'EXECUTE'), 'pgapp_admin revokes tokens');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.revoke_subject(text,timestamptz)', 'EXECUTE'), 'pgapp_admin revokes subjects');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.auth_revocation_cleanup()', 'EXECUTE'), 'pgapp_admin runs the cleanup');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.auth_revocation_status()', 'EXECUTE'), 'pgapp_admin sees the cache');
SELECT ok(has_function_privilege('pgapp_admin', 'pgapp.define_permissions(text,text[])', 'EXECUTE'), 'pgapp_admin defines permissions');
SELECT ok(NOT has_function_privilege('pgapp_worker', 'pgapp.revoke_token(text,timestamptz)', 'EXECUTE'), 'pgapp_worker cannot revoke');
SELECT ok(has_function_privilege('public', 'pgapp.authenticate_request()', 'EXECUTE'), 'everyone (anon) runs authenticate_request');
SELECT ok(has_function_privilege('public', 'pgapp.pre_request()', 'EXECUTE'), 'everyone (anon) runs pre_request');
SELECT ok(has_function_privilege('public', 'pgapp.require_role(text[])', 'EXECUTE'), 'everyone runs require_role');
SELECT ok(has_function_privilege('public', 'pgapp.has_permission(text,text)', 'EXECUTE'), 'everyone runs has_permission');
SELECT ok(has_function_privilege('public', 'pgapp.require_permission(text,text)', 'EXECUTE'), 'everyone runs require_permission');
SELECT ok(has_function_privilege('public', 'pgapp.encode_permissions(jsonb)', 'EXECUTE'), 'everyone runs encode_permissions');

-- as anon: refused with 42501, tables unreadable
CREATE ROLE tap_revoke_anon NOLOGIN;
SET LOCAL ROLE tap_revoke_anon;
SELECT throws_ok($$SELECT pgapp.revoke_token('x', now() + interval '1 hour')$$, '42501',
    'permission denied for function revoke_token', 'anon cannot revoke a token');
SELECT throws_ok($$SELECT pgapp.revoke_subject('alice')$$, '42501',
    'permission denied for function revoke_subject', 'anon cannot log a subject out everywhere');
SELECT throws_ok($$SELECT * FROM pgapp.auth_revoked_token$$, '42501', NULL, 'anon cannot read revoked tokens');
SELECT throws_ok($$DELETE FROM pgapp.auth_subject_cutoff$$, '42501', NULL, 'anon cannot delete cutoffs');
SELECT throws_ok($$SELECT pgapp.define_permissions('users', ARRAY['read'])$$, '42501', NULL, 'anon cannot define permissions');
SELECT lives_ok($$SELECT pgapp.authenticate_request()$$, 'anon without a token passes authenticate_request');
RESET ROLE;

-- settings
SELECT is((SELECT context FROM pg_settings WHERE name = 'pgapp.auth_revocation_capacity'), 'postmaster',
    'the cache''s capacity is set at server start');
SELECT is((SELECT context || ' ' || setting || unit FROM pg_settings WHERE name = 'pgapp.auth_token_max_ttl'),
    'superuser 2592000s', 'tokens live at most 30 days, changed by superusers only');
SELECT is((SELECT pgapp.auth_revocation_status() ->> 'cache'), 'no slot',
    'no check has run in this database: it has no cache slot yet');

SELECT * FROM finish();
ROLLBACK;

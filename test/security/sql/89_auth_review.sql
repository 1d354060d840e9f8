--
-- security/89_auth_review: attacks on the token functions found in review,
-- after 88_auth_tokens.  Each one worked (or hung a backend) before the fix
-- it names.
--
--   A. a token for a role that inherits the privileges encode_token refuses
--      by name (pgapp_admin, pg_write_all_data, a superuser): the check read
--      the role's name and attributes only;
--   B. a parallel worker verifying with the inline secret: workers receive
--      the setting's value, which is always '', so decode_token failed there
--      (the functions are PARALLEL RESTRICTED now);
--   C. a signed exp, nbf or iat no double can hold (1e-400): 22003 from the
--      conversion instead of a token failure (a 500 through PostgREST, not
--      401);
--   D. a FIFO as the key file: opening it waited in the kernel for a writer,
--      out of reach of a cancel or pg_terminate_backend (it is opened without
--      blocking now, and refused as not a regular file).
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'review-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

-- A. Roles sec_admin belongs to that carry privileges a token must not:
--    through pgapp_admin, pg_write_all_data, or a superuser role they are
--    granted (a member with INHERIT has the privileges of the roles it is a
--    member of, and a superuser's privileges include owning its tables,
--    which row-level security does not restrict).
CREATE ROLE sec_rev_super NOLOGIN SUPERUSER;
CREATE ROLE sec_rev_owner NOLOGIN IN ROLE pgapp_admin;
CREATE ROLE sec_rev_writer NOLOGIN IN ROLE pg_write_all_data;
CREATE ROLE sec_rev_deep NOLOGIN IN ROLE sec_rev_writer;
CREATE ROLE sec_rev_super_member NOLOGIN IN ROLE sec_rev_super;
CREATE ROLE sec_rev_noinherit NOLOGIN NOINHERIT IN ROLE pgapp_admin;
CREATE ROLE sec_rev_web NOLOGIN;
GRANT sec_rev_owner, sec_rev_writer, sec_rev_deep, sec_rev_super_member, sec_rev_noinherit, sec_rev_web
   TO sec_admin;
SET ROLE sec_admin;
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "sec_rev_owner"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "sec_rev_writer"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "sec_rev_deep"}', '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('victim', '{"role": "sec_rev_super_member"}', '1 hour')$$);
-- a NOINHERIT member has none of pgapp_admin's privileges, and an ordinary
-- role is fine
SELECT pgapp.decode_token(pgapp.encode_token('victim', '{"role": "sec_rev_noinherit"}', '1 hour')) ->> 'role' AS noinherit;
SELECT pgapp.decode_token(pgapp.encode_token('victim', '{"role": "sec_rev_web"}', '1 hour')) ->> 'role' AS web;
RESET ROLE;
REVOKE sec_rev_owner, sec_rev_writer, sec_rev_deep, sec_rev_super_member, sec_rev_noinherit, sec_rev_web
  FROM sec_admin;
DROP ROLE sec_rev_super_member, sec_rev_deep, sec_rev_writer, sec_rev_owner, sec_rev_noinherit, sec_rev_web,
          sec_rev_super;

-- B. The inline secret inside a parallel query: the worker has '' for
--    pgapp.auth_jwt_secret.  Both functions now stay in the leader.
SELECT proname, proparallel FROM pg_proc
 WHERE pronamespace = 'pgapp'::regnamespace AND proname IN ('encode_token', 'decode_token')
 ORDER BY proname;
SET ROLE sec_admin;
SELECT pgapp.encode_token('victim', '{}', '1 hour') AS token \gset
RESET ROLE;
SET force_parallel_mode = on;
SET ROLE sec_admin;
SELECT pgapp.decode_token(pgapp.encode_token('victim', '{}', '1 hour')) ->> 'sub' AS parallel_encode;
SET ROLE sec_attacker;
SELECT pgapp.decode_token(:'token') ->> 'sub' AS parallel_decode;
RESET ROLE;
RESET force_parallel_mode;

-- C. Numbers a double cannot hold, in a payload signed with the key (another
--    signer that shares the key could write them), judged as times: 1e-400
--    is 0 (an exp long past, an nbf or iat long before now), and a number
--    past a double's range is malformed.
\set k 'review-secret-0123456789abcdef-0123456789'
SET ROLE sec_attacker;
SELECT attack, pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}', payload, :'k')) AS result FROM (VALUES
    ('exp underflows', '{"sub":"victim","exp":1e-400}'),
    ('nbf underflows', format('{"sub":"victim","exp":%s,"nbf":1e-400}', pg_temp.now_s() + 3600)),
    ('iat underflows', format('{"sub":"victim","exp":%s,"iat":-1e-400}', pg_temp.now_s() + 3600)),
    ('exp with 400 digits', '{"sub":"victim","exp":1' || repeat('0', 400) || '}')
) AS t(attack, payload);
RESET ROLE;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

-- D. A FIFO where the key file should be, with a writer that opens it 3 s
--    later (the writer gives up after 10 s more): decode_token must refuse
--    at once instead of waiting for it.  A directory and a device are
--    refused too.
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f sec_fifo_key; mkfifo -m 600 sec_fifo_key; (sleep 3; timeout 10 dd if=/dev/null of=sec_fifo_key conv=nocreat status=none) </dev/null >/dev/null 2>&1 &';
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'sec_fifo_key';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SET ROLE sec_attacker;
SELECT clock_timestamp() AS started \gset
SELECT pg_temp.show($$SELECT pgapp.decode_token('a.b.c')$$);
SELECT clock_timestamp() - :'started'::timestamptz < interval '2 seconds' AS refused_at_once;
RESET ROLE;
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; mkdir -m 700 sec_dir_key';
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'sec_dir_key';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT pg_temp.show($$SELECT pgapp.decode_token('a.b.c')$$);
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = '/dev/zero';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT pg_temp.show($$SELECT pgapp.decode_token('a.b.c')$$);

ALTER SYSTEM RESET pgapp.auth_jwt_secret_file;
SELECT pg_reload_conf();
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f sec_fifo_key; rmdir sec_dir_key';

--
-- init: create the extension, check version, health and configuration.
--
CREATE EXTENSION pgapp;

-- the loaded library and the installed scripts agree
SELECT pgapp.version();
SELECT pgapp.version() = extversion AS versions_match
  FROM pg_extension WHERE extname = 'pgapp';

-- the extension owns its schema settings
SELECT nspname FROM pg_namespace WHERE nspname = 'pgapp';
SELECT extrelocatable, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pgapp';

-- health: shape and the facts that are deterministic on the test instance
SELECT jsonb_object_keys(pgapp.health()) AS key ORDER BY 1;
SELECT h->>'status' AS status,
       h->>'version' AS version,
       h->>'library_version' AS library_version,
       h->'preloaded' AS preloaded,
       h->'shared_memory' AS shared_memory,
       h->'modules' AS modules
  FROM pgapp.health() AS h;
SELECT jsonb_typeof(h->'background_workers'->'running') AS running,
       jsonb_typeof(h->'background_workers'->'types') AS types,
       h->'libraries'->'libsodium_ready' AS libsodium_ready,
       jsonb_typeof(h->'libraries'->'jansson') AS jansson
  FROM pgapp.health() AS h;

-- pg_cron: preloaded by test/pgapp.conf; installed only once created here
SELECT h->'pg_cron'->'preloaded' AS preloaded,
       h->'pg_cron'->'installed' AS installed,
       h->'pg_cron'->>'database_name' AS database_name,
       jsonb_typeof(h->'pg_cron'->'launcher_running') AS launcher_running
  FROM pgapp.health() AS h;
CREATE EXTENSION pg_cron;
SELECT pgapp.health()->'pg_cron'->'installed' AS installed;

-- an installed version other than the library's is reported as degraded
UPDATE pg_extension SET extversion = '0.0.9' WHERE extname = 'pgapp';
SELECT h->>'status' AS status, h->>'version' AS version
  FROM pgapp.health() AS h;
UPDATE pg_extension SET extversion = '0.3.0' WHERE extname = 'pgapp';
SELECT pgapp.health()->>'status' AS status;

-- GUCs: the prefix is reserved, error_mode takes only its three values
SHOW pgapp.error_mode;
SET pgapp.error_mode = 'raise';
SHOW pgapp.error_mode;
RESET pgapp.error_mode;
SET pgapp.error_mode = 'loud';
SET pgapp.no_such_setting = 'on';

-- the schema is usable by everyone, the functions by PUBLIC unless admin-only
CREATE ROLE pgapp_test_user;
SET ROLE pgapp_test_user;
SELECT pgapp.version() IS NOT NULL AS can_call;
SELECT pgapp.health()->>'status' AS status;
-- outside pgapp_admin, health() tells the status and the version only
SELECT jsonb_object_keys(pgapp.health()) AS key ORDER BY 1;
RESET ROLE;
GRANT pgapp_admin TO pgapp_test_user;
SET ROLE pgapp_test_user;
SELECT count(*) AS admin_keys FROM jsonb_object_keys(pgapp.health());
RESET ROLE;
DROP ROLE pgapp_test_user;

-- the roles pgapp made: no attribute, no membership of another role
SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
       EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) AS member_of_any
  FROM pg_roles r WHERE rolname IN ('pgapp_admin', 'pgapp_worker') ORDER BY 1;

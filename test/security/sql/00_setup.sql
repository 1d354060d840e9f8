--
-- security/00_setup: the cast of the security suite.  Every later file of
-- test/security/sql replays attacks as one of these roles, never as the
-- superuser that psql connects as.
--
--   sec_attacker   a role with only PUBLIC's defaults (USAGE on schema pgapp,
--                  EXECUTE on what PUBLIC may call, TEMP on the database)
--   sec_victim     another ordinary role: the attacks target its data
--   anon           PostgREST's anonymous role, granted as a typical setup does
--   sec_admin      a member of pgapp_admin who owns none of the tables
--
-- boot_marker remembers the housekeeper's pid: a backend crash restarts every
-- background worker, so 99_no_restart can tell that no attack crashed the server.
--
CREATE EXTENSION pgapp;
CREATE EXTENSION pg_cron;

CREATE ROLE sec_attacker NOLOGIN;
CREATE ROLE sec_victim NOLOGIN;
CREATE ROLE anon NOLOGIN;
CREATE ROLE sec_admin NOLOGIN IN ROLE pgapp_admin;
GRANT CREATE ON SCHEMA public TO sec_attacker, sec_victim;

CREATE TABLE public.boot_marker AS
SELECT pid, backend_start FROM pg_stat_activity WHERE backend_type = 'pgapp housekeeper';
SELECT count(*) AS housekeepers FROM public.boot_marker;

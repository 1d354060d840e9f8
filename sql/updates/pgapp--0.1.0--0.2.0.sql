-- sql/updates/pgapp--0.1.0--0.2.0.sql: from 0.1.0 to 0.2.0 (written by hand)
--
-- 0.2.0 builds its install script from sql/parts/ and changes no object:
-- an updated 0.1.0 and a fresh 0.2.0 have the same objects (the upgrade
-- suite of scripts/test compares them).

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgapp UPDATE TO '0.2.0'" to load this file. \quit

-- Tell a running PostgREST to reload its schema cache (delivered at commit),
-- as the install script does at its end.
NOTIFY pgrst, 'reload schema';

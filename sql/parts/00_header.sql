-- sql/parts/00_header.sql: the roles pgapp_admin and pgapp_worker join, the schema (docs/install.md)

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pgapp" to load this file. \quit

/*
 * Roles.  pgapp_admin may run the administrative functions (definitions on
 * the tables its members own, queues, limiters, statistics); pgapp_worker
 * (created with the jobs below) is what external job workers log in as
 * members of.  Roles are cluster-wide, so each is created only when missing
 * and survives DROP EXTENSION, like pgsodium's roles; a database that
 * installs pgapp later adopts them.  Adopting is safe only for a role that
 * carries nothing but what pgapp grants it, so a role of that name that can
 * log in, has any attribute beyond NOLOGIN, or is a member of another role
 * (whose rights every pgapp admin or worker would inherit) is refused.  Its
 * members stay: they are the admins and workers granted it before.
 */
DO $$
DECLARE
    r record;
    attrs text;
BEGIN
    FOR r IN SELECT a.rolname, a.rolsuper, a.rolcanlogin, a.rolcreaterole, a.rolcreatedb,
                    a.rolreplication, a.rolbypassrls,
                    ARRAY(SELECT m.roleid::pg_catalog.regrole::pg_catalog.text
                            FROM pg_catalog.pg_auth_members AS m
                           WHERE m.member OPERATOR(pg_catalog.=) a.oid ORDER BY 1) AS member_of
               FROM pg_catalog.pg_roles AS a
              WHERE a.rolname OPERATOR(pg_catalog.=) ANY (ARRAY['pgapp_admin', 'pgapp_worker'])
              ORDER BY a.rolname
    LOOP
        attrs := pg_catalog.concat_ws(', ',
            CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolcanlogin THEN 'LOGIN' END,
            CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
            CASE WHEN r.rolreplication THEN 'REPLICATION' END, CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END);
        IF attrs OPERATOR(pg_catalog.<>) '' THEN
            RAISE EXCEPTION 'role "%" already exists with %', r.rolname, attrs
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pgapp creates this role NOLOGIN with no other attribute and would adopt the existing one.',
                      HINT = pg_catalog.format('Remove the attributes (ALTER ROLE %I NOSUPERUSER NOLOGIN NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS) or drop the role, then create the extension.', r.rolname);
        END IF;
        IF pg_catalog.cardinality(r.member_of) OPERATOR(pg_catalog.>) 0 THEN
            RAISE EXCEPTION 'role "%" already exists as a member of %', r.rolname,
                            pg_catalog.array_to_string(r.member_of, ', ')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pgapp would adopt the existing role, and its members would have these roles'' rights too.',
                      HINT = pg_catalog.format('Revoke those roles from %I (REVOKE ... FROM %I) or drop it, then create the extension.', r.rolname, r.rolname);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'pgapp_admin') THEN
        CREATE ROLE pgapp_admin NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA pgapp TO PUBLIC;


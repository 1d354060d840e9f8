-- test/upgrade/objects.sql: the objects of the installed pgapp, one sorted
-- row per compared aspect: aspect|object|fingerprint.
--
-- The upgrade suite of scripts/test runs it in a database where the oldest
-- released version was installed and then updated (ALTER EXTENSION pgapp
-- UPDATE), and in one with a fresh CREATE EXTENSION pgapp, and fails on any
-- difference: an upgrade script must leave exactly what the install script
-- of the new version makes.  Objects are named by pg_identify_object, never
-- by OID; long definitions are shown as an md5.
--
-- Run with psql -X -At -F'|' -v ON_ERROR_STOP=1.

SET search_path = pg_catalog, pg_temp;

CREATE TEMP VIEW member AS
SELECT d.classid, d.objid, d.objsubid,
       o.type AS kind, o.type || ' ' || o.identity AS ident
  FROM pg_depend AS d
  JOIN pg_extension AS e ON e.oid = d.refobjid
 CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) AS o
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'pgapp';

-- the relations whose parts (columns, indexes, constraints, triggers,
-- policies) are compared: members, and composite types' relations
CREATE TEMP VIEW member_rel AS
SELECT c.oid, m.ident
  FROM member AS m JOIN pg_class AS c ON c.oid = m.objid
 WHERE m.classid = 'pg_class'::regclass
UNION ALL
SELECT t.typrelid, m.ident
  FROM member AS m JOIN pg_type AS t ON t.oid = m.objid
 WHERE m.classid = 'pg_type'::regclass AND t.typrelid <> 0;

-- 1. membership: every object the extension owns
SELECT 'member' AS aspect, ident AS object, '' AS fingerprint FROM member

-- 2. functions and procedures: the whole definition, privileges, settings
UNION ALL
SELECT 'function', m.ident,
       concat_ws(' ', 'def:' || md5(CASE WHEN p.prokind IN ('f', 'p', 'w')
                                         THEN pg_get_functiondef(p.oid) ELSE p.prosrc END),
                 'acl:' || coalesce(p.proacl::text, '-'),
                 'config:' || coalesce(p.proconfig::text, '-'),
                 'owner:' || p.proowner::regrole::text)
  FROM member AS m JOIN pg_proc AS p ON p.oid = m.objid
 WHERE m.classid = 'pg_proc'::regclass

-- 3. relations: kind, persistence, options, privileges, row security
UNION ALL
SELECT 'relation', m.ident,
       concat_ws(' ', 'kind:' || c.relkind::text, 'persistence:' || c.relpersistence::text,
                 'options:' || coalesce(c.reloptions::text, '-'),
                 'acl:' || coalesce(c.relacl::text, '-'),
                 'rls:' || c.relrowsecurity || '/' || c.relforcerowsecurity,
                 'owner:' || c.relowner::regrole::text)
  FROM member AS m JOIN pg_class AS c ON c.oid = m.objid
 WHERE m.classid = 'pg_class'::regclass

-- 4. columns (of tables, views and composite types)
UNION ALL
SELECT 'column', r.ident || '.' || quote_ident(a.attname),
       concat_ws(' ', '#' || a.attnum, format_type(a.atttypid, a.atttypmod),
                 CASE WHEN a.attnotnull THEN 'not null' END,
                 'default:' || pg_get_expr(ad.adbin, ad.adrelid),
                 nullif('identity:' || a.attidentity::text, 'identity:'),
                 nullif('generated:' || a.attgenerated::text, 'generated:'),
                 CASE WHEN a.attcollation <> 0 THEN 'collate:' || a.attcollation::regcollation::text END,
                 'acl:' || a.attacl::text,
                 -- (a pg_attver=<n> option some builds add differs per install)
                 'options:' || (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attoptions) AS o
                                 WHERE o NOT LIKE 'pg\_attver=%'))
  FROM member_rel AS r
  JOIN pg_attribute AS a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum

-- 5. indexes
UNION ALL
SELECT 'index', r.ident, pg_get_indexdef(i.indexrelid)
  FROM member_rel AS r JOIN pg_index AS i ON i.indrelid = r.oid

-- 6. constraints of tables and of domains
UNION ALL
SELECT 'constraint', r.ident || ' ' || quote_ident(co.conname),
       concat_ws(' ', pg_get_constraintdef(co.oid),
                 CASE WHEN co.condeferrable THEN 'deferrable' END, CASE WHEN NOT co.convalidated THEN 'not valid' END)
  FROM member_rel AS r JOIN pg_constraint AS co ON co.conrelid = r.oid
UNION ALL
SELECT 'constraint', m.ident || ' ' || quote_ident(co.conname), pg_get_constraintdef(co.oid)
  FROM member AS m JOIN pg_constraint AS co ON co.contypid = m.objid
 WHERE m.classid = 'pg_type'::regclass

-- 7. views and materialized views
UNION ALL
SELECT 'view', m.ident, md5(pg_get_viewdef(c.oid))
  FROM member AS m JOIN pg_class AS c ON c.oid = m.objid
 WHERE m.classid = 'pg_class'::regclass AND c.relkind IN ('v', 'm')

-- 8. types: enum labels in order, domains' base, default and null-ness, privileges
UNION ALL
SELECT 'type', m.ident,
       concat_ws(' ', 'type:' || t.typtype::text,
                 'labels:' || (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
                                 FROM pg_enum AS e WHERE e.enumtypid = t.oid),
                 CASE WHEN t.typtype = 'd' THEN 'base:' || format_type(t.typbasetype, t.typtypmod) END,
                 CASE WHEN t.typnotnull THEN 'not null' END,
                 'default:' || t.typdefault,
                 'acl:' || coalesce(t.typacl::text, '-'))
  FROM member AS m JOIN pg_type AS t ON t.oid = m.objid
 WHERE m.classid = 'pg_type'::regclass

-- 9. triggers (user triggers; the internal ones of foreign keys are constraints)
UNION ALL
SELECT 'trigger', r.ident || ' ' || quote_ident(tg.tgname),
       pg_get_triggerdef(tg.oid) || ' enabled:' || tg.tgenabled::text
  FROM member_rel AS r JOIN pg_trigger AS tg ON tg.tgrelid = r.oid
 WHERE NOT tg.tgisinternal

-- 10. event triggers
UNION ALL
SELECT 'event trigger', m.ident,
       concat_ws(' ', ev.evtevent, ev.evtfoid::regproc::text, ev.evtenabled::text, ev.evttags::text)
  FROM member AS m JOIN pg_event_trigger AS ev ON ev.oid = m.objid
 WHERE m.classid = 'pg_event_trigger'::regclass

-- 11. row-level security policies
UNION ALL
SELECT 'policy', r.ident || ' ' || quote_ident(po.polname),
       concat_ws(' ', 'cmd:' || po.polcmd::text, 'permissive:' || po.polpermissive,
                 'roles:' || (SELECT string_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END, ',' ORDER BY 1)
                                FROM unnest(po.polroles) AS x),
                 'using:' || pg_get_expr(po.polqual, po.polrelid),
                 'check:' || pg_get_expr(po.polwithcheck, po.polrelid))
  FROM member_rel AS r JOIN pg_policy AS po ON po.polrelid = r.oid

-- 12. sequences (members, and those owned by members' columns)
UNION ALL
SELECT 'sequence', pg_identify_object('pg_class'::regclass, s.seqrelid, 0)::text,
       concat_ws(' ', format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
                 s.seqcache, s.seqcycle,
                 'acl:' || coalesce((SELECT c.relacl::text FROM pg_class AS c WHERE c.oid = s.seqrelid), '-'))
  FROM pg_sequence AS s
 WHERE s.seqrelid IN (SELECT m.objid FROM member AS m WHERE m.classid = 'pg_class'::regclass
                      UNION ALL
                      SELECT d.objid FROM pg_depend AS d JOIN member_rel AS r ON d.refobjid = r.oid
                       WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                         AND d.deptype IN ('a', 'i'))

-- 13. the extension itself: version, schema and its privileges, and the
-- tables pg_dump dumps (extconfig, with their conditions)
UNION ALL
SELECT 'extension', e.extname,
       concat_ws(' ', 'version:' || e.extversion, 'schema:' || n.nspname, 'relocatable:' || e.extrelocatable,
                 'schema acl:' || coalesce(n.nspacl::text, '-'), 'schema owner:' || n.nspowner::regrole::text)
  FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
 WHERE e.extname = 'pgapp'
UNION ALL
SELECT 'extension config', cfg.tbl::regclass::text, coalesce(cfg.cond, '-')
  FROM pg_extension AS e
 CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) AS cfg (tbl, cond)
 WHERE e.extname = 'pgapp'

-- 14. the rows the scripts put into those tables (e.g. rate_plan 'default')
UNION ALL
SELECT 'extension config rows', cfg.tbl::regclass::text,
       md5(query_to_xml(format('SELECT t::text AS r FROM %s AS t ORDER BY 1', cfg.tbl::regclass),
                        false, false, '')::text)
  FROM pg_extension AS e
 CROSS JOIN LATERAL unnest(e.extconfig) AS cfg (tbl)
 WHERE e.extname = 'pgapp'

-- 15. comments: on members and on their columns
UNION ALL
SELECT 'comment', pg_identify_object(ds.classoid, ds.objoid, ds.objsubid)::text,
       replace(replace(ds.description, E'\\', E'\\\\'), E'\n', E'\\n')
  FROM pg_description AS ds
 WHERE (ds.classoid, ds.objoid) IN (SELECT m.classid, m.objid FROM member AS m)
ORDER BY 1, 2, 3;

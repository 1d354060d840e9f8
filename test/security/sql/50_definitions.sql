--
-- security/50_definitions: definitions (changesets, machines, scopes and
-- stats, sort whitelists) change only through their functions, which check
-- that the caller owns the table they describe (or, for a machine, the
-- machine), and go with their table when it is dropped; stored scopes run
-- with the querying role's rights; the transition log shows a
-- row's history only to those who may read the row; health() shows its
-- configuration only to pgapp_admin; CREATE EXTENSION refuses to adopt a
-- role named pgapp_admin or pgapp_worker that could do more than pgapp
-- grants it; and a catalog check that no pgapp table is writable by PUBLIC
-- and that every SECURITY DEFINER function pins search_path.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
\set VERBOSITY terse

-- The victim's table, with definitions its owner (here the superuser on
-- the owner's behalf) made; and a table sec_admin owns.
CREATE TABLE public.def_victim (
    id     int PRIMARY KEY,
    title  text NOT NULL,
    status text NOT NULL DEFAULT 'todo'
);
ALTER TABLE public.def_victim OWNER TO sec_victim;
INSERT INTO public.def_victim VALUES (1, 'one', 'todo');
GRANT SELECT ON public.def_victim TO PUBLIC;
SELECT pgapp.define_machine('def_victim_status', '{"todo": ["done"], "done": []}');
SELECT pgapp.define_changeset('def_victim_cs', 'public.def_victim', ARRAY['title'],
                              '[{"required": ["title"]}]');
SELECT pgapp.define_scope('public.def_victim', 'open', $$t.status = 'todo'$$);
SELECT pgapp.define_stat('public.def_victim', 'title_length', 'length(t.title)');
SELECT pgapp.allow_sort('public.def_victim', ARRAY['id']);

CREATE TABLE public.def_admin_own (
    id     int PRIMARY KEY,
    title  text NOT NULL,
    status text NOT NULL DEFAULT 'todo'
);
ALTER TABLE public.def_admin_own OWNER TO sec_admin;

---------------------------------------------------------------------------
-- 1. Written around their functions: a pgapp_admin member who owns nothing
--    writes the definition tables directly.  Each is 42501.
---------------------------------------------------------------------------
SET ROLE sec_admin;
SELECT * FROM pg_temp.show($$
    INSERT INTO pgapp.query_expression (source, kind, name, expression)
    VALUES ('public.def_victim', 'scope', 'evil', 'pg_catalog.pg_sleep(0) IS NOT NULL') $$);
SELECT * FROM pg_temp.show($$
    UPDATE pgapp.query_expression SET expression = 'true' WHERE name = 'open' $$);
SELECT * FROM pg_temp.show($$ DELETE FROM pgapp.query_expression $$);
SELECT * FROM pg_temp.show($$
    INSERT INTO pgapp.changeset_def (name, source, permitted, rules)
    VALUES ('evil', 'public.def_victim', ARRAY['status'], '[]') $$);
SELECT * FROM pg_temp.show($$
    UPDATE pgapp.changeset_def SET rules = '[]', permitted = ARRAY['status'] WHERE name = 'def_victim_cs' $$);
SELECT * FROM pg_temp.show($$ DELETE FROM pgapp.changeset_def $$);
SELECT * FROM pg_temp.show($$
    INSERT INTO pgapp.machine (name, transitions) VALUES ('evil', '{"a": []}') $$);
SELECT * FROM pg_temp.show($$
    UPDATE pgapp.machine SET transitions = '{"todo": ["todo", "done"], "done": ["todo"]}' $$);
SELECT * FROM pg_temp.show($$ DELETE FROM pgapp.machine $$);
SELECT * FROM pg_temp.show($$
    INSERT INTO pgapp.sort_allowed (source, fields) VALUES ('public.def_admin_own', ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ UPDATE pgapp.sort_allowed SET fields = ARRAY['title', 'status'] $$);
SELECT * FROM pg_temp.show($$ DELETE FROM pgapp.sort_allowed $$);
SELECT * FROM pg_temp.show($$ TRUNCATE pgapp.machine $$);
SELECT * FROM pg_temp.show($$ TRUNCATE pgapp.transition_log $$);
RESET ROLE;

-- nobody but the owner of the tables may write a definition table directly
SELECT r.rolname, c.relname,
       has_table_privilege(r.oid, c.oid, 'INSERT') AS ins,
       has_table_privilege(r.oid, c.oid, 'UPDATE') AS upd,
       has_table_privilege(r.oid, c.oid, 'DELETE') AS del,
       has_table_privilege(r.oid, c.oid, 'TRUNCATE') AS trunc
  FROM pg_roles r,
       pg_class c
 WHERE r.rolname IN ('pgapp_admin', 'sec_admin', 'sec_attacker', 'anon')
   AND c.relnamespace = 'pgapp'::regnamespace
   AND c.relname IN ('changeset_def', 'machine', 'query_expression', 'sort_allowed', 'transition_log')
 ORDER BY 1, 2;

---------------------------------------------------------------------------
-- 2. Through the functions, on a table sec_admin does not own: 42501, and
--    the victim's definitions are unchanged.
---------------------------------------------------------------------------
SET ROLE sec_admin;
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_scope('public.def_victim', 'evil', 'pg_catalog.pg_sleep(0) IS NOT NULL') $$);
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_scope('public.def_victim', 'open', 'true') $$);
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_stat('public.def_victim', 'title_length', '0') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_scope('public.def_victim', 'open') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_stat('public.def_victim', 'title_length') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.allow_sort('public.def_victim', ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_changeset('def_victim_evil', 'public.def_victim', ARRAY['status'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_table('public.def_victim', 'def_victim_cs') $$);
SELECT * FROM pg_temp.show($$
    SELECT pgapp.enforce_transitions('public.def_victim', 'status', 'def_victim_status') $$);
-- taking over the victim's changeset name with a table of one's own
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_changeset('def_victim_cs', 'public.def_admin_own', ARRAY['title', 'status'], '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_changeset('def_victim_cs') $$);
-- a machine belongs to the role that defined it
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_machine('def_victim_status', '{"todo": ["done"], "done": ["todo"]}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_machine('def_victim_status') $$);
RESET ROLE;

SELECT source, kind, name, expression FROM pgapp.query_expression
 WHERE source = 'public.def_victim'::regclass ORDER BY kind, name;
SELECT source, fields FROM pgapp.sort_allowed WHERE source = 'public.def_victim'::regclass;
SELECT name, source, permitted FROM pgapp.changeset_def ORDER BY name;
SELECT name, transitions, owner FROM pgapp.machine ORDER BY name;

---------------------------------------------------------------------------
-- 3. As the owner, through the functions, it works; input is still
--    validated (a statement smuggled into a scope is refused).
---------------------------------------------------------------------------
SET ROLE sec_admin;
SELECT pgapp.define_scope('public.def_admin_own', 'open', $$t.status = 'todo'$$);
SELECT pgapp.define_stat('public.def_admin_own', 'title_length', 'length(t.title)');
SELECT pgapp.allow_sort('public.def_admin_own', ARRAY['id', 'title']);
SELECT pgapp.define_changeset('def_admin_cs', 'public.def_admin_own', ARRAY['title'],
                              '[{"required": ["title"]}]');
SELECT pgapp.validate_table('public.def_admin_own', 'def_admin_cs');
SELECT pgapp.define_machine('def_admin_status', '{"todo": ["done"], "done": []}');
SELECT pgapp.define_machine('def_admin_status', '{"todo": ["done"], "done": ["todo"]}');
SELECT pgapp.enforce_transitions('public.def_admin_own', 'status', 'def_admin_status', log => true);
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_scope('public.def_admin_own', 'smuggled', 'true); DELETE FROM public.def_admin_own; --') $$);
SELECT * FROM pg_temp.show($$
    SELECT pgapp.define_scope('public.def_admin_own', 'sub', '(SELECT true FROM public.def_victim LIMIT 1)') $$);
SELECT pgapp.drop_scope('public.def_admin_own', 'sub');
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_scope('public.def_admin_own', 'sub') $$);
INSERT INTO public.def_admin_own VALUES (1, 'mine', 'todo');
SELECT pgapp.all(pgapp.scope(pgapp.from('public.def_admin_own'), 'open')) AS open_rows;
RESET ROLE;
SELECT source::text, kind, name FROM pgapp.query_expression
 WHERE source = 'public.def_admin_own'::regclass ORDER BY kind, name;
SELECT name, owner FROM pgapp.machine ORDER BY name;

-- definitions go with their table: a later table reusing its OID inherits none
CREATE TABLE public.def_short_lived (id int PRIMARY KEY, flag boolean);
ALTER TABLE public.def_short_lived OWNER TO sec_admin;
SET ROLE sec_admin;
SELECT pgapp.define_scope('public.def_short_lived', 'flagged', 't.flag');
SELECT pgapp.allow_sort('public.def_short_lived', ARRAY['id']);
SELECT pgapp.define_changeset('def_short_lived', 'public.def_short_lived', ARRAY['flag']);
SELECT 'public.def_short_lived'::regclass::oid AS short_lived \gset
DROP TABLE public.def_short_lived;
RESET ROLE;
SELECT (SELECT count(*) FROM pgapp.query_expression WHERE source::oid = :short_lived) AS scopes,
       (SELECT count(*) FROM pgapp.sort_allowed WHERE source::oid = :short_lived) AS sorts,
       (SELECT count(*) FROM pgapp.changeset_def WHERE source::oid = :short_lived) AS changesets;
-- the event trigger's function is not for calling
SELECT * FROM pg_temp.show($$ SELECT pgapp._definitions_dropped() $$);

-- the superuser may change anyone's definitions, as with ALTER TABLE
SELECT pgapp.define_machine('def_admin_status', '{"todo": ["done"], "done": ["todo"]}');

---------------------------------------------------------------------------
-- 4. A stored expression runs with the rights of the role that queries, not
--    those of its definer or of the extension: the scope below is true for
--    the rows of whoever runs the query.
---------------------------------------------------------------------------
CREATE TABLE public.def_notes (
    id    int PRIMARY KEY,
    owner name NOT NULL,
    body  text
);
INSERT INTO public.def_notes VALUES (1, 'sec_attacker', 'a'), (2, 'anon', 'b'), (3, 'sec_victim', 'c');
GRANT SELECT ON public.def_notes TO sec_attacker, anon;
SELECT pgapp.define_scope('public.def_notes', 'mine', 't.owner = current_user');
SET ROLE sec_attacker;
SELECT pgapp.all(pgapp.scope(pgapp.from('public.def_notes'), 'mine')) AS attacker_sees;
RESET ROLE;
SET ROLE anon;
SELECT pgapp.all(pgapp.scope(pgapp.from('public.def_notes'), 'mine')) AS anon_sees;
RESET ROLE;

---------------------------------------------------------------------------
-- 5. The transition log: anon sees the history of the rows it may read
--    (RLS included), nothing of tables it may not read, and cannot write it.
---------------------------------------------------------------------------
CREATE TABLE public.def_ticket (
    id     int PRIMARY KEY,
    owner  name NOT NULL,
    status text NOT NULL DEFAULT 'open'
);
ALTER TABLE public.def_ticket ENABLE ROW LEVEL SECURITY;
CREATE POLICY def_ticket_own ON public.def_ticket USING (owner = current_user);
GRANT SELECT ON public.def_ticket TO anon, sec_attacker;
CREATE TABLE public.def_secret (
    id     int PRIMARY KEY,
    status text NOT NULL DEFAULT 'open'
);
SELECT pgapp.define_machine('def_ticket', '{"open": ["closed"], "closed": ["open"]}');
SELECT pgapp.enforce_transitions('public.def_ticket', 'status', 'def_ticket', log => true);
SELECT pgapp.enforce_transitions('public.def_secret', 'status', 'def_ticket', log => true);
INSERT INTO public.def_ticket VALUES (1, 'anon', 'open'), (2, 'sec_victim', 'open'), (3, 'anon', 'open');
UPDATE public.def_ticket SET status = 'closed';
INSERT INTO public.def_secret VALUES (10, 'open');
UPDATE public.def_secret SET status = 'closed';

-- the superuser sees every entry
SELECT tbl, row_key, from_state, to_state FROM pgapp.transition_log
 WHERE tbl IN ('public.def_ticket'::regclass, 'public.def_secret'::regclass) ORDER BY id;

SET ROLE anon;
SELECT tbl, row_key, from_state, to_state FROM pgapp.transition_log ORDER BY id;
-- a leaky function in WHERE sees no row anon may not read
CREATE FUNCTION pg_temp.def_leak(k jsonb) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
$$ BEGIN RAISE NOTICE 'leaked %', k; RETURN true; END $$;
SELECT count(*) FROM pgapp.transition_log WHERE pg_temp.def_leak(row_key);
SELECT * FROM pg_temp.show($$
    INSERT INTO pgapp.transition_log (tbl, row_key, col, machine, to_state)
    VALUES ('public.def_ticket', '{"id": 2}', 'status', 'def_ticket', 'open') $$);
SELECT * FROM pg_temp.show($$ UPDATE pgapp.transition_log SET to_state = 'open' $$);
SELECT * FROM pg_temp.show($$ DELETE FROM pgapp.transition_log $$);
RESET ROLE;

SET ROLE sec_attacker;
SELECT count(*) AS attacker_entries FROM pgapp.transition_log;
RESET ROLE;

-- the owner of an RLS table (not forced) sees all of its rows' history
SET ROLE sec_admin;
UPDATE public.def_admin_own SET status = 'done';
SELECT tbl, row_key, from_state, to_state, changed_by FROM pgapp.transition_log ORDER BY id;
RESET ROLE;

---------------------------------------------------------------------------
-- 6. health(): status and version for everyone, the configuration only for
--    pgapp_admin and superusers.
---------------------------------------------------------------------------
SET ROLE anon;
SELECT jsonb_object_keys(pgapp.health()) AS anon_keys ORDER BY 1;
RESET ROLE;
SET ROLE sec_attacker;
SELECT jsonb_object_keys(pgapp.health()) AS attacker_keys ORDER BY 1;
RESET ROLE;
SET ROLE sec_admin;
SELECT jsonb_object_keys(pgapp.health()) AS admin_keys ORDER BY 1;
RESET ROLE;

---------------------------------------------------------------------------
-- 7. Errors echo at most 64 characters of what the caller sent.
---------------------------------------------------------------------------
SET ROLE sec_admin;
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_machine(%L, '{"a": []}') $$, repeat('x', 140000)));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_machine('m', %L) $$,
    jsonb_build_object('a', jsonb_build_array(repeat('y', 140000)))));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_machine('m', %L) $$,
    jsonb_build_object('a', jsonb_build_array(jsonb_build_object('k', repeat('z', 140000))))));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_machine('m', '{"a": []}', ARRAY[%L]) $$, repeat('w', 140000)));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.transition_allowed('def_admin_status', %L, 'done') $$, repeat('v', 140000)));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_changeset(%L, 'public.def_admin_own', ARRAY['title']) $$, repeat('u', 140000)));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_changeset('def_long', 'public.def_admin_own', ARRAY['title'], %L) $$,
    jsonb_build_array(jsonb_build_object('required', jsonb_build_array(repeat('r', 140000))))));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_changeset('def_long', 'public.def_admin_own', ARRAY['title'], %L) $$,
    jsonb_build_array(jsonb_build_object('required', jsonb_build_array('title'), repeat('o', 140000), 1))));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_changeset('def_long', 'public.def_admin_own', ARRAY['title'], %L) $$,
    jsonb_build_array(jsonb_build_object(repeat('q', 140000), 'title'))));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.allow_sort('public.def_admin_own', ARRAY[%L]) $$, repeat('p', 140000)));
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.define_scope('public.def_admin_own', 's', %L) $$,
    'true, ' || repeat('1 + ', 35000) || '1'));
RESET ROLE;

---------------------------------------------------------------------------
-- 8. CREATE EXTENSION does not adopt a role named pgapp_admin or
--    pgapp_worker that can do more than pgapp gives it (checked in a
--    database of its own: the roles are the cluster's).
---------------------------------------------------------------------------
\set orig_db :DBNAME
CREATE DATABASE def_roles;
\c def_roles
\set VERBOSITY terse
ALTER ROLE pgapp_admin LOGIN;
CREATE EXTENSION pgapp;
ALTER ROLE pgapp_admin NOLOGIN BYPASSRLS;
CREATE EXTENSION pgapp;
ALTER ROLE pgapp_admin NOBYPASSRLS;
ALTER ROLE pgapp_worker SUPERUSER CREATEROLE;
CREATE EXTENSION pgapp;
ALTER ROLE pgapp_worker NOSUPERUSER NOCREATEROLE;
GRANT pg_read_all_data TO pgapp_worker;
CREATE EXTENSION pgapp;
REVOKE pg_read_all_data FROM pgapp_worker;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'pgapp';
-- as pgapp made them (members such as sec_admin stay): adopted
CREATE EXTENSION pgapp;
SELECT extname FROM pg_extension WHERE extname = 'pgapp';
-- and dropped again (its event trigger goes with it)
DROP EXTENSION pgapp;
SELECT count(*) AS event_triggers FROM pg_event_trigger;
\c :orig_db
\set VERBOSITY terse
DROP DATABASE def_roles;

---------------------------------------------------------------------------
-- 9. The catalog: no pgapp table or view grants a write to PUBLIC; the
--    tables pgapp_admin may write are operational settings (queues, rate
--    plans, limiters), never definitions; every SECURITY DEFINER function
--    pins search_path.
---------------------------------------------------------------------------
SELECT c.oid::regclass AS relation, a.privilege_type
  FROM pg_class c, aclexplode(c.relacl) AS a
 WHERE c.relnamespace = 'pgapp'::regnamespace
   AND a.grantee = 0
   AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
 ORDER BY 1, 2;
SELECT c.oid::regclass AS relation, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS admin_writes
  FROM pg_class c, aclexplode(c.relacl) AS a
 WHERE c.relnamespace = 'pgapp'::regnamespace
   AND a.grantee = 'pgapp_admin'::regrole
   AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
 GROUP BY 1 ORDER BY 1;
SELECT p.oid::regprocedure AS security_definer, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'pgapp'::regnamespace AND p.prosecdef
 ORDER BY p.oid::regprocedure::text;
-- the assertion, which must stay empty: a SECURITY DEFINER function whose
-- search_path is not pinned to trusted schemas with pg_temp last
SELECT p.oid::regprocedure AS definer_without_pinned_search_path, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'pgapp'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c
                    WHERE c LIKE 'search\_path=%pg\_temp'
                      AND c NOT LIKE '%public%' AND c NOT LIKE '%$user%');

---------------------------------------------------------------------------
-- clean up
---------------------------------------------------------------------------
DELETE FROM pgapp.query_expression
 WHERE source IN ('public.def_victim'::regclass, 'public.def_admin_own'::regclass, 'public.def_notes'::regclass);
DELETE FROM pgapp.sort_allowed WHERE source IN ('public.def_victim'::regclass, 'public.def_admin_own'::regclass);
DROP TABLE public.def_victim, public.def_admin_own, public.def_notes, public.def_ticket, public.def_secret;
DELETE FROM pgapp.changeset_def WHERE name LIKE 'def\_%';
DELETE FROM pgapp.machine WHERE name LIKE 'def\_%';
DELETE FROM pgapp.transition_log;

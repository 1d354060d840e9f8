--
-- security/85_multi: a multi runs as its caller.  Every write of a step
-- needs the caller's own privileges (a step that lacks one fails 403, or
-- raises PT403, and nothing is written); multi_run needs EXECUTE on fn when
-- the step is added and again when it runs, so a SECURITY DEFINER function
-- cannot be reached through a multi; the steps of a SECURITY DEFINER merge
-- function still run as the caller; a hand-written multi is checked as
-- strictly as a built one (22023, never a crash); huge $ref paths and deep
-- JSON are errors, not crashes; pgapp's own SQL is not hijacked by the
-- caller's search_path.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- outcome(query): the result, or the SQLSTATE and message; the statement's writes are undone
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text; st text; msg text;
BEGIN
    EXECUTE q INTO r;
    RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    IF st = 'ZZ000' THEN
        RETURN left(msg, 200);
    END IF;
    RETURN st || ': ' || left(msg, 120);
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.outcome(text) TO PUBLIC;
\set ECHO all

-- sec_victim's vault, which nobody else may touch
CREATE TABLE public.sec_mu_vault (id int PRIMARY KEY, secret text NOT NULL);
ALTER TABLE public.sec_mu_vault OWNER TO sec_victim;
INSERT INTO public.sec_mu_vault VALUES (1, 'the crown jewels');
-- a function of sec_victim that nobody else may run, and a SECURITY DEFINER one
CREATE FUNCTION public.sec_mu_private(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', current_user) $$;
CREATE FUNCTION public.sec_mu_definer(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM public.sec_mu_vault;
    RETURN jsonb_build_object('ok', current_user);
END $$;
ALTER FUNCTION public.sec_mu_private(jsonb, jsonb) OWNER TO sec_victim;
ALTER FUNCTION public.sec_mu_definer(jsonb, jsonb) OWNER TO sec_victim;
REVOKE EXECUTE ON FUNCTION public.sec_mu_private(jsonb, jsonb), public.sec_mu_definer(jsonb, jsonb) FROM PUBLIC;
-- a SECURITY DEFINER merge function the attacker may call: the steps it
-- returns must still run with the attacker's rights
CREATE FUNCTION public.sec_mu_merge(changes jsonb) RETURNS pgapp.multi
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgapp.multi_delete(pgapp.multi(), 'wipe', 'public.sec_mu_vault', '1')
$$;
ALTER FUNCTION public.sec_mu_merge(jsonb) OWNER TO sec_victim;
REVOKE EXECUTE ON FUNCTION public.sec_mu_merge(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sec_mu_merge(jsonb) TO sec_attacker;

-- A. steps that write where the caller may not: 403, nothing written
SET ROLE sec_attacker;
CREATE FUNCTION public.sec_mu_whoami(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', current_user) $$;
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'who', 'public.sec_mu_whoami(jsonb,jsonb)'), 'return') AS runs_as_caller;
SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'steal',
    pgapp.cast('public.sec_mu_vault', NULL, '{"id": 2, "secret": "mine now"}', ARRAY['id', 'secret'])), 'return') AS insert;
SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'steal', 'public.sec_mu_vault',
    '[{"id": 2, "secret": "mine now"}]'), 'return') AS insert_all;
SELECT pgapp.transact(pgapp.multi_update(pgapp.multi(), 'deface',
    pgapp.cast('public.sec_mu_vault', '{"id": 1, "secret": "?"}', '{"secret": "defaced"}', ARRAY['secret'])), 'return') AS update;
SELECT pg_temp.outcome($$ SELECT pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'deface',
    pgapp.from('public.sec_mu_vault'), '{"secret": "defaced"}'), 'return')::text $$) AS update_all;
SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'wipe', 'public.sec_mu_vault', '1'), 'return') AS delete;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'wipe', 'public.sec_mu_vault', '1'), 'raise') $$);
-- a SECURITY DEFINER merge function of the victim: its steps run as the attacker
SELECT pg_temp.outcome($$ SELECT pgapp.transact(pgapp.multi_merge(pgapp.multi(), 'public.sec_mu_merge(jsonb)'), 'return')::text $$) AS merged_wipe;
RESET ROLE;
SELECT * FROM public.sec_mu_vault;

-- B. functions the caller may not EXECUTE: refused when added ...
SET ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_run(pgapp.multi(), 'peek', 'public.sec_mu_private(jsonb,jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_run(pgapp.multi(), 'wipe', 'public.sec_mu_definer(jsonb,jsonb)') $$);
-- ... and when a hand-written multi names them (the step built for a function
-- of the attacker's own, then pointed at the victim's)
CREATE FUNCTION pg_temp.forge(m jsonb, from_fn regprocedure, to_fn regprocedure) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT replace(replace(replace(m::text, from_fn::text, to_fn::text),
                           from_fn::oid::text, to_fn::oid::text),
                   'sec_mu_whoami', 'sec_mu_definer')::jsonb
$$;
SELECT pg_temp.forge(pgapp.multi_run(pgapp.multi(), 'wipe', 'public.sec_mu_whoami(jsonb,jsonb)'),
                     'public.sec_mu_whoami(jsonb,jsonb)', 'public.sec_mu_definer(jsonb,jsonb)') AS forged \gset
SELECT :'forged'::jsonb::text LIKE '%sec_mu_whoami%' AS still_names_own_fn;
SELECT pg_temp.outcome(format($$ SELECT pgapp.transact(%L::pgapp.multi, 'return')::text $$, :'forged')) AS forged_definer;
SELECT pg_temp.outcome(format($$ SELECT pgapp.transact(%L::pgapp.multi, 'return')::text $$,
    replace(:'forged', 'sec_mu_definer', 'sec_mu_private'))) AS forged_private;
-- the same through merge: a merge function naming the definer is not run
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_merge(pgapp.multi(), 'public.sec_mu_definer(jsonb,jsonb)') $$);
RESET ROLE;
SELECT * FROM public.sec_mu_vault;

-- C. hand-written multis: every bad shape is 22023 (or a domain error), never a crash
SET ROLE sec_attacker;
SELECT pgapp.multi_put(pgapp.multi(), 'a', '1') AS one_put_step \gset
SELECT v AS crafted, pg_temp.outcome(format($$ SELECT pgapp.transact(%L::pgapp.multi, 'return')::text $$, v)) AS outcome
  FROM (VALUES
    ('{"steps": [{"name": "a", "op": "sql", "value": "DROP TABLE public.sec_mu_vault"}]}'),
    ('{"steps": [{"name": "a", "op": "run", "function": "pg_catalog.pg_terminate_backend", "args": {}}]}'),
    ('{"steps": [{"name": "a", "op": "run", "function": 1, "args": {}}]}'),
    ('{"steps": [{"name": "a", "op": "delete", "table": "no_such_table", "id": 1}]}'),
    ('{"steps": [{"name": "a", "op": "delete", "table": "pg_catalog.pg_authid", "id": 10}]}'),
    ('{"steps": [{"name": "a", "op": "insert_all", "table": 0, "rows": []}]}'),
    ('{"steps": [{"name": "a", "op": "merge", "function": "pg_catalog.pg_reload_conf()"}]}'),
    ('{"steps": [{"op": "put", "value": 1}]}'),
    ('{"steps": [{"name": "a.b", "op": "put", "value": 1}]}'),
    ('{"steps": [{"name": "a", "op": "put", "value": 1}, {"name": "a", "op": "put", "value": 2}]}'),
    ('{"steps": [{"name": "a", "op": "put", "value": {"$ref": "b"}}, {"name": "b", "op": "put", "value": 1}]}'),
    ('{"steps": [1, "two", null, []]}'),
    ('{"steps": [{}]}'),
    ('{"steps": [], "extra": true}')
  ) AS t(v);
-- a forged name of a function that does not exist: 22023, not an internal error
SELECT left(pg_temp.outcome($$ SELECT pgapp.transact('{"steps": [{"name": "a", "op": "run",
    "function": "no_such_function(jsonb,jsonb)", "args": {}}]}'::pgapp.multi, 'return')::text $$), 5) AS forged_unknown_function;
SELECT left(pg_temp.outcome($$ SELECT pgapp.transact('{"steps": [{"op": "merge",
    "function": "no_such_function(jsonb)"}]}'::pgapp.multi, 'return')::text $$), 5) AS forged_unknown_merge_function;
-- the real shape of a step, with one key changed at a time
SELECT k AS changed_key, pg_temp.outcome(format($$ SELECT pgapp.transact(%L::pgapp.multi, 'return')::text $$,
           jsonb_set(:'one_put_step'::jsonb, ARRAY['steps', '0', k], '{"nested": [[[[1]]]]}'))) AS outcome
  FROM jsonb_object_keys(:'one_put_step'::jsonb -> 'steps' -> 0) AS k
 WHERE k <> 'value' ORDER BY k;
SELECT pg_temp.outcome($$ SELECT ('{"steps": "none"}')::pgapp.multi::text $$) AS not_an_array;
RESET ROLE;
SELECT * FROM public.sec_mu_vault;

-- D. huge $ref paths, deep nesting, many steps: errors, not crashes
SET ROLE sec_attacker;
CREATE TEMP TABLE sec_mu_step AS SELECT :'one_put_step'::jsonb -> 'steps' -> 0 AS step;
SELECT pg_temp.outcome(format($$ SELECT cardinality(pgapp.multi_names(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'),
    'b', %L)))::text $$, jsonb_build_object('$ref', 'a' || repeat('.x', 500000)))) AS huge_ref_path_at_add;
SELECT pg_temp.outcome($$ SELECT pgapp.transact(jsonb_build_object('steps', jsonb_build_array(step,
    jsonb_set(step, '{name}', '"b"') || jsonb_build_object('value', jsonb_build_object('$ref', 'a' || repeat('.0', 500000)))))::pgapp.multi,
    'return')::text FROM sec_mu_step $$) AS huge_ref_path_at_run;
SELECT pg_temp.outcome($$ SELECT cardinality(pgapp.multi_names(pgapp.multi_put(pgapp.multi(), repeat('n', 1000000), '1')))::text $$) AS huge_name;
SELECT pg_temp.outcome($$ SELECT length(pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b',
    (repeat('[', 5000) || '{"$ref": "a"}' || repeat(']', 5000))::jsonb), 'return')::text)::text $$) AS deep_arrays;
SELECT pg_temp.outcome($$ SELECT length(pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b',
    (repeat('{"k": ', 5000) || '{"$ref": "a"}' || repeat('}', 5000))::jsonb), 'return')::text)::text $$) AS deep_objects;
SELECT pg_temp.outcome($$ SELECT length(pgapp.transact(pgapp.multi_put(pgapp.multi(), 'a',
    (repeat('[', 100000) || repeat(']', 100000))::jsonb), 'return')::text)::text $$) AS deeper_than_the_stack;
SELECT pg_temp.outcome($$ SELECT length(pgapp.transact(jsonb_build_object('steps', jsonb_build_array(step,
    jsonb_set(step, '{name}', '"b"') || jsonb_build_object('value', (repeat('[', 5000) || '{"$ref": "a"}' || repeat(']', 5000))::jsonb)))::pgapp.multi,
    'return')::text)::text FROM sec_mu_step $$) AS deep_ref_in_a_crafted_multi;
CREATE TEMP TABLE sec_mu_many AS
SELECT n, jsonb_build_object('steps', jsonb_agg(jsonb_set(step, '{name}', to_jsonb('s' || i)) ORDER BY i)) AS m
  FROM sec_mu_step, (VALUES (1000), (1001)) AS c(n), generate_series(1, n) AS i GROUP BY n;
SELECT n, pg_temp.outcome($$ SELECT cardinality(pgapp.multi_names(m::pgapp.multi))::text FROM sec_mu_many WHERE n = $$ || n) AS names,
       pg_temp.outcome($$ SELECT (pgapp.transact(m::pgapp.multi, 'return') ->> 'ok') FROM sec_mu_many WHERE n = $$ || n) AS ok
  FROM sec_mu_many ORDER BY n;
-- merge functions that never stop adding steps, named or not
CREATE FUNCTION public.sec_mu_forever(changes jsonb) RETURNS pgapp.multi
LANGUAGE sql AS $$ SELECT pgapp.multi_merge(pgapp.multi(), 'public.sec_mu_forever(jsonb)') $$;
CREATE FUNCTION public.sec_mu_growing(changes jsonb) RETURNS pgapp.multi
LANGUAGE sql AS $$
    SELECT pgapp.multi_merge(pgapp.multi_put(pgapp.multi(), 'g' || (SELECT count(*) FROM jsonb_object_keys(changes)), '1'),
                             'public.sec_mu_growing(jsonb)')
$$;
SET statement_timeout = '60s';
SELECT pg_temp.outcome($$ SELECT pgapp.transact(pgapp.multi_merge(pgapp.multi(), 'public.sec_mu_forever(jsonb)'), 'return')::text $$) AS endless_merge;
SELECT pg_temp.outcome($$ SELECT pgapp.transact(pgapp.multi_merge(pgapp.multi(), 'public.sec_mu_growing(jsonb)'), 'return')::text $$) AS growing_merge;
RESET statement_timeout;
DROP FUNCTION public.sec_mu_forever(jsonb), public.sec_mu_growing(jsonb);
RESET ROLE;

-- E. PostgREST's anon, in a request: the failure is a 403 body, nothing written
BEGIN;
SET LOCAL ROLE anon;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'wipe', 'public.sec_mu_vault', '1')) AS body,
       current_setting('response.status') AS status;
COMMIT;
SELECT * FROM public.sec_mu_vault;

-- F. a superuser whose search_path starts with public runs pgapp's own SQL
--    untouched by the attacker's operator (70_review's trick)
CREATE TABLE public.sec_mu_tag (code varchar PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO public.sec_mu_tag VALUES ('a', 0), ('b', 0);
SET ROLE sec_attacker;
CREATE FUNCTION public.sec_mu_hijack_eq(varchar, varchar) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'hijacked = ran as %', current_user;
    RETURN true;
END $$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.sec_mu_hijack_eq);
RESET ROLE;
SET search_path = public, pg_catalog;
SELECT pgapp.transact(
    pgapp.multi_delete(
      pgapp.multi_update(pgapp.multi(), 'u', pgapp.cast('public.sec_mu_tag', '{"code": "a", "n": 0}', '{"n": 1}', ARRAY['n'])),
      'd', 'public.sec_mu_tag', '"b"'),
    'return') AS result;
RESET search_path;
SELECT * FROM public.sec_mu_tag ORDER BY code;
DROP OPERATOR public.= (varchar, varchar);
DROP FUNCTION public.sec_mu_hijack_eq(varchar, varchar), public.sec_mu_whoami(jsonb, jsonb);
DROP TABLE public.sec_mu_tag, public.sec_mu_vault;
DROP FUNCTION public.sec_mu_private(jsonb, jsonb), public.sec_mu_definer(jsonb, jsonb), public.sec_mu_merge(jsonb);

--
-- security/87_multi_review_bugs: attacks on Multi that the review of issue
-- 18 found to succeed, fixed in the same issue; the expected output is the
-- behaviour since the fix (a crash would also fail 99_no_restart).
--
--   A. update_all finds its rows with "(r.pk) IN (SELECT k.pk ...)": IN
--      looks "=" up by the search_path, so an operator the attacker puts in
--      public (= on varchar: an exact match, preferred to pg_catalog's
--      text = text even with pg_catalog first) runs as whoever runs the
--      multi, here the superuser with the default search_path, and, as it
--      answers true, the step updates every row of the table
--   B. "$ref" objects were honoured in a changeset's params, which are the
--      request's input: a client put {"$ref": "step.path"} in a field and
--      got an earlier step's value written there, past every validator of
--      the changeset (inclusion, number, format, required).  Params are no
--      longer searched: write steps take references in their own refs.
--   C. a table dropped by an earlier step: delete and update_all raise
--      XX000 "could not open relation with OID"; insert_all dereferences
--      the NULL name and crashes the server.  TEMP is enough: any role can.
--   D. (queries, found through update_all) pgapp.all keeps its plans by SQL
--      text only, not by parameter types: a table dropped and created again
--      with its key numeric -> bigint gives the same text, and the kept plan
--      (numeric $1) reads the bigint Datum as a numeric pointer: a crash
--      (bigint -> numeric: no crash but no rows, and update_all updates
--      nothing).  Not reached while C crashes first.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- sqlstate_of(query): the SQLSTATE the statement raised, or that its failure body names
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb; st text;
BEGIN
    EXECUTE q INTO r;
    RETURN coalesce(r -> 'error' ->> 'sqlstate', 'no error: ' || left(r::text, 100));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.sqlstate_of(text) TO PUBLIC;
\set ECHO all

-- A. the superuser runs an update_all on a table with a varchar key
CREATE TABLE public.sec_rb_tag (code varchar PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO public.sec_rb_tag VALUES ('a', 0), ('b', 0), ('c', 0);
CREATE TABLE public.sec_rb_pair (k1 varchar, k2 varchar, n int NOT NULL DEFAULT 0, PRIMARY KEY (k1, k2));
INSERT INTO public.sec_rb_pair VALUES ('a', 'x', 0), ('b', 'y', 0);
SET ROLE sec_attacker;
CREATE FUNCTION public.sec_rb_eq(varchar, varchar) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'hijacked = ran as %', current_user;
    RETURN true;
END $$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.sec_rb_eq);
RESET ROLE;
SHOW search_path;
SELECT pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'u',
    pgapp.filter_by(pgapp.from('public.sec_rb_tag'), 'code', 'a'::text), '{"n": 1}'), 'return') AS one_row_updated;
SELECT pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'u',
    pgapp.filter_by(pgapp.from('public.sec_rb_pair'), 'k1', 'a'::text), '{"n": 1}'), 'return') AS composite_key;
SELECT * FROM public.sec_rb_tag ORDER BY code;
SELECT * FROM public.sec_rb_pair ORDER BY k1;
DROP OPERATOR public.= (varchar, varchar);
DROP FUNCTION public.sec_rb_eq(varchar, varchar);
DROP TABLE public.sec_rb_tag, public.sec_rb_pair;

-- B. the victim's sign-up: a changeset with validators, one step after an
--    audit step that records the request's note
CREATE TABLE public.sec_rb_account (
    id int PRIMARY KEY, email text, role text NOT NULL DEFAULT 'user', credit int NOT NULL DEFAULT 0);
ALTER TABLE public.sec_rb_account OWNER TO sec_victim;
CREATE FUNCTION public.sec_rb_signup(params jsonb) RETURNS jsonb
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgapp.transact(
      pgapp.multi_insert(
        pgapp.multi_put(pgapp.multi(), 'audit', jsonb_build_object('note', params -> 'note', 'bonus', -50)),
        'account',
        pgapp.validate_required(
          pgapp.validate_inclusion(
            pgapp.validate_number(
              pgapp.validate_format(
                pgapp.cast('public.sec_rb_account', NULL, params, ARRAY['id', 'email', 'role', 'credit']),
                'email', '^[^@]+@[^@]+$'),
              'credit', greater_than_or_equal_to => 0, less_than_or_equal_to => 10),
            'role', '["user"]'),
          ARRAY['id', 'email'])),
      'return')
$$;
ALTER FUNCTION public.sec_rb_signup(jsonb) OWNER TO sec_victim;
REVOKE EXECUTE ON FUNCTION public.sec_rb_signup(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sec_rb_signup(jsonb) TO sec_attacker;
SET ROLE sec_attacker;
-- the validators refuse the plain values ...
SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, r -> 'error' AS error
  FROM public.sec_rb_signup('{"id": 1, "email": "a@example.com", "role": "admin", "credit": 5}') AS r;
SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, r -> 'error' AS error
  FROM public.sec_rb_signup('{"id": 2, "email": "a@example.com", "credit": -50}') AS r;
-- ... and must refuse them when the client writes them as references
SELECT v AS params, r ->> 'ok' AS ok, r ->> 'status' AS status, r ->> 'failed_step' AS failed_step,
       ARRAY(SELECT jsonb_object_keys(CASE jsonb_typeof(r -> 'error') WHEN 'object' THEN r -> 'error' ELSE '{}' END) ORDER BY 1) AS error_fields
  FROM (VALUES
    ('{"id": 3, "email": "a@example.com", "role": {"$ref": "audit.note"}, "note": "admin"}'::jsonb),
    ('{"id": 4, "email": "a@example.com", "credit": {"$ref": "audit.bonus"}}'),
    ('{"id": 5, "email": {"$ref": "audit.note"}, "note": "not an email"}'),
    ('{"id": 6, "email": {"$ref": "audit.note"}}')
  ) AS t(v), public.sec_rb_signup(v) AS r;
RESET ROLE;
SELECT * FROM public.sec_rb_account ORDER BY id;
DROP FUNCTION public.sec_rb_signup(jsonb);
DROP TABLE public.sec_rb_account;

-- C. a step drops the table a later step writes: an error with a SQLSTATE
--    of its own (42P01, the table does not exist), never XX000 or a crash
SET ROLE sec_attacker;
CREATE FUNCTION pg_temp.sec_rb_drop(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TABLE %s', args ->> 'table');
    RETURN '{"ok": true}';
END $$;
CREATE TEMP TABLE sec_rb_gone (id int PRIMARY KEY, v text);
SELECT pg_temp.sqlstate_of($$ SELECT pgapp.transact(pgapp.multi_delete(
    pgapp.multi_run(pgapp.multi(), 'drop', 'pg_temp.sec_rb_drop(jsonb,jsonb)', '{"table": "sec_rb_gone"}'),
    'd', 'sec_rb_gone', '1'), 'return') $$) AS delete;
SELECT pg_temp.sqlstate_of($$ SELECT pgapp.transact(pgapp.multi_update_all(
    pgapp.multi_run(pgapp.multi(), 'drop', 'pg_temp.sec_rb_drop(jsonb,jsonb)', '{"table": "sec_rb_gone"}'),
    'u', pgapp.from('sec_rb_gone'), '{"v": "x"}'), 'return') $$) AS update_all;
SELECT pg_temp.sqlstate_of($$ SELECT pgapp.transact(pgapp.multi_insert_all(
    pgapp.multi_run(pgapp.multi(), 'drop', 'pg_temp.sec_rb_drop(jsonb,jsonb)', '{"table": "sec_rb_gone"}'),
    'i', 'sec_rb_gone', '[{"id": 1, "v": "x"}]'), 'return') $$) AS insert_all;
SELECT count(*) AS still_there FROM sec_rb_gone;
RESET ROLE;

-- D. the kept plan of pgapp.all after the key's type changed under the same text
SET ROLE sec_attacker;
CREATE TEMP TABLE sec_rb_typed (id numeric PRIMARY KEY);
INSERT INTO sec_rb_typed VALUES (70);
SELECT pgapp.all(pgapp.filter_by(pgapp.from('sec_rb_typed'), 'id', 70)) AS numeric_key;
DROP TABLE sec_rb_typed;
CREATE TEMP TABLE sec_rb_typed (id bigint PRIMARY KEY);
INSERT INTO sec_rb_typed VALUES (70);
SELECT pgapp.all(pgapp.filter_by(pgapp.from('sec_rb_typed'), 'id', 70)) AS bigint_key;
SELECT pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'u', pgapp.filter_by(pgapp.from('sec_rb_typed'), 'id', 70),
    '{"id": 71}'), 'return') -> 'changes' -> 'u' ->> 'count' AS updated;
RESET ROLE;

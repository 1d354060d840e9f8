--
-- security/30_changesets: crafted pgapp.changeset values.
--
-- A changeset is jsonb that anyone can write by hand.  Every function that
-- takes one reads it through one checking reader first (changeset_read.c):
-- a bad shape is 22023, a crafted value cannot change what its permitted
-- list (or its named definition) does not permit, "valid" is recomputed from
-- the errors, and messages echo at most 64 characters of the value.
--
-- Roles: sec_attacker calls the functions directly and through a SECURITY
-- DEFINER function of sec_victim that trusts a named changeset; anon replays
-- a PostgREST request (return mode).
--
\set VERBOSITY default

-- sec_victim's table, a named changeset that permits only email, and an RPC
-- that inserts a changeset of that name (trusting the definition's list)
CREATE TABLE public.sec_cs_account (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email     text NOT NULL,
    status    text NOT NULL DEFAULT 'new',
    balance   numeric NOT NULL DEFAULT 0,
    is_admin  boolean NOT NULL DEFAULT false,
    born      date,
    CONSTRAINT sec_cs_account_email_key UNIQUE (email)
);
ALTER TABLE public.sec_cs_account OWNER TO sec_victim;
SELECT pgapp.define_machine('sec_cs_status', '{"new": ["active"], "active": []}');
SELECT pgapp.define_changeset('sec_cs_signup', 'public.sec_cs_account', ARRAY['email'],
                              '[{"required": ["email"]}, {"format": "email", "pattern": "@"}]');
SELECT pgapp.define_changeset('sec_cs_other', 'public.boot_marker', ARRAY['pid'], '[]');

CREATE FUNCTION public.sec_cs_submit(cs pgapp.changeset) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF cs ->> 'name' IS DISTINCT FROM 'sec_cs_signup' THEN
        RAISE EXCEPTION 'only sign-up changesets' USING ERRCODE = '42501';
    END IF;
    RETURN pgapp.insert(cs);
END
$$;
ALTER FUNCTION public.sec_cs_submit(pgapp.changeset) OWNER TO sec_victim;
GRANT EXECUTE ON FUNCTION public.sec_cs_submit(pgapp.changeset) TO sec_attacker;

CREATE FUNCTION public.sec_cs_book(cs pgapp.changeset) RETURNS jsonb
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgapp.insert(pgapp.validate_future(cs, 'born'))
$$;
ALTER FUNCTION public.sec_cs_book(pgapp.changeset) OWNER TO sec_victim;
GRANT EXECUTE ON FUNCTION public.sec_cs_book(pgapp.changeset) TO anon;

-- outcome(statement, cs): 'ok' or the SQLSTATE; the statement's writes are undone
CREATE FUNCTION pg_temp.outcome(q text, cs jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    EXECUTE q USING cs;
    RAISE EXCEPTION 'undo' USING ERRCODE = 'ZZ000';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN CASE WHEN st = 'ZZ000' THEN 'ok' ELSE st END;
END
$$;
-- message_of(statement, cs): the message of the error it raises
CREATE FUNCTION pg_temp.message_of(q text, cs jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
BEGIN
    EXECUTE q USING cs;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RETURN msg;
END
$$;

-- detail_of(statement, cs): the detail of the error it raises
CREATE FUNCTION pg_temp.detail_of(q text, cs jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    det text;
BEGIN
    EXECUTE q USING cs;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    RETURN det;
END
$$;

-- every function that takes a pgapp.changeset
CREATE TEMP TABLE entry (name text, kind text, q text);
INSERT INTO entry VALUES
  ('validate_required',      'validator', 'SELECT pgapp.validate_required($1::pgapp.changeset, ARRAY[''email''])'),
  ('validate_length',        'validator', 'SELECT pgapp.validate_length($1::pgapp.changeset, ''email'', max => 5)'),
  ('validate_number',        'validator', 'SELECT pgapp.validate_number($1::pgapp.changeset, ''balance'', less_than => 10)'),
  ('validate_inclusion',     'validator', 'SELECT pgapp.validate_inclusion($1::pgapp.changeset, ''email'', ''["a"]'')'),
  ('validate_exclusion',     'validator', 'SELECT pgapp.validate_exclusion($1::pgapp.changeset, ''email'', ''["a"]'')'),
  ('validate_format',        'validator', 'SELECT pgapp.validate_format($1::pgapp.changeset, ''email'', ''@'')'),
  ('validate_future',        'validator', 'SELECT pgapp.validate_future($1::pgapp.changeset, ''born'')'),
  ('validate_transition',    'validator', 'SELECT pgapp.validate_transition($1::pgapp.changeset, ''status'', ''sec_cs_status'')'),
  ('validate_confirmation',  'validator', 'SELECT pgapp.validate_confirmation($1::pgapp.changeset, ''email'')'),
  ('validate_acceptance',    'validator', 'SELECT pgapp.validate_acceptance($1::pgapp.changeset, ''terms'')'),
  ('add_error',              'validator', 'SELECT pgapp.add_error($1::pgapp.changeset, ''email'', ''is taken'')'),
  ('unique_constraint',      'validator', 'SELECT pgapp.unique_constraint($1::pgapp.changeset, ''email'')'),
  ('foreign_key_constraint', 'validator', 'SELECT pgapp.foreign_key_constraint($1::pgapp.changeset, ''email'')'),
  ('check_constraint',       'validator', 'SELECT pgapp.check_constraint($1::pgapp.changeset, ''balance'', ''x'')'),
  ('exclusion_constraint',   'validator', 'SELECT pgapp.exclusion_constraint($1::pgapp.changeset, ''email'')'),
  ('is_valid',               'is_valid',  'SELECT pgapp.is_valid($1::pgapp.changeset)'),
  ('errors',                 'errors',    'SELECT pgapp.errors($1::pgapp.changeset)'),
  ('insert',                 'insert',    'SELECT pgapp.insert($1::pgapp.changeset)'),
  ('update',                 'update',    'SELECT pgapp.update($1::pgapp.changeset)');

-- the malformed values: each a change to a well-formed changeset
CREATE TEMP TABLE fuzz (n serial, label text, cs jsonb);
CREATE TEMP TABLE base AS
  SELECT pgapp.cast('public.sec_cs_account', '{"id": 1, "email": "old@example.com", "status": "new"}',
                    '{"email": "new@example.com"}', ARRAY['email'])::jsonb AS cs;
INSERT INTO fuzz (label, cs)
SELECT label, v FROM base, LATERAL (VALUES
  ('well-formed',                      cs),
  ('not an object',                    '[1, 2]'::jsonb),
  ('a string',                         '"changeset"'),
  ('no source',                        cs - 'source'),
  ('source a number',                  jsonb_set(cs, '{source}', '42')),
  ('source empty',                     jsonb_set(cs, '{source}', '""')),
  ('source four names',                jsonb_set(cs, '{source}', '"a.b.c.d"')),
  ('source with SQL',                  jsonb_set(cs, '{source}', '"sec_cs_account; DROP TABLE sec_cs_account"')),
  ('source unknown table',             jsonb_set(cs, '{source}', '"no_such_table"')),
  ('source an index',                  jsonb_set(cs, '{source}', '"pg_class_oid_index"')),
  ('source 100 kB',                    jsonb_set(cs, '{source}', to_jsonb(repeat('s', 100000)))),
  ('unknown key',                      cs || '{"sql": "DROP TABLE x"}'),
  ('action delete',                    jsonb_set(cs, '{action}', '"delete"')),
  ('no permitted',                     cs - 'permitted'),
  ('permitted an object',              jsonb_set(cs, '{permitted}', '{"email": true}')),
  ('permitted holds a number',         jsonb_set(cs, '{permitted}', '[1]')),
  ('permitted not a column',           jsonb_set(cs, '{permitted}', '["email", "nope"]')),
  ('permitted a system column',        jsonb_set(cs, '{permitted}', '["ctid"]')),
  ('permitted 2000 entries',           jsonb_set(cs, '{permitted}', (SELECT jsonb_agg('email'::text) FROM generate_series(1, 2000)))),
  ('changes an array',                 jsonb_set(cs, '{changes}', '[]')),
  ('changes not a column',             jsonb_set(cs, '{changes}', '{"nope": 1}')),
  ('changes not permitted',            jsonb_set(cs, '{changes}', '{"email": "a@b", "is_admin": true}')),
  ('changes a system column',          jsonb_set(cs, '{changes}', '{"xmin": 1}')),
  ('changes text as number',           jsonb_set(cs, '{changes}', '{"email": 5}')),
  ('changes a date that is none',      jsonb_set(jsonb_set(cs, '{permitted}', '["email", "born"]'), '{changes,born}', '"2031-02-30"')),
  ('changes key 100 kB',               jsonb_set(cs, '{changes}', jsonb_build_object(repeat('k', 100000), 1))),
  ('data a string',                    jsonb_set(cs, '{data}', '"row"')),
  ('params an array',                  jsonb_set(cs, '{params}', '[]')),
  ('errors an array',                  jsonb_set(cs, '{errors}', '[]')),
  ('errors of a field a string',       jsonb_set(cs, '{errors}', '{"email": "taken"}')),
  ('errors of a field empty',          jsonb_set(cs, '{errors}', '{"email": []}')),
  ('errors of a field a number',       jsonb_set(cs, '{errors}', '{"email": [1]}')),
  ('errors 2000 messages',             jsonb_set(cs, '{errors}', (SELECT jsonb_object_agg('f' || i, '["x"]'::jsonb) FROM generate_series(1, 2000) AS i))),
  ('valid a string',                   jsonb_set(cs, '{valid}', '"yes"')),
  ('valid true with errors',           jsonb_set(jsonb_set(cs, '{errors}', '{"email": ["is taken"]}'), '{valid}', 'true')),
  ('required an object',               jsonb_set(cs, '{required}', '{}')),
  ('required holds null',              jsonb_set(cs, '{required}', '[null]')),
  ('constraints an object',            jsonb_set(cs, '{constraints}', '{}')),
  ('constraint a string',              jsonb_set(cs, '{constraints}', '["unique"]')),
  ('constraint of unknown type',       jsonb_set(cs, '{constraints}', '[{"type": "raw", "field": "email"}]')),
  ('constraint on no column',          jsonb_set(cs, '{constraints}', '[{"type": "unique", "field": "nope"}]')),
  ('constraint with extra key',        jsonb_set(cs, '{constraints}', '[{"type": "unique", "field": "email", "sql": "x"}]')),
  ('check constraint without name',    jsonb_set(cs, '{constraints}', '[{"type": "check", "field": "email", "name": null}]')),
  ('name unknown',                     jsonb_set(cs, '{name}', '"no_such_changeset"')),
  ('name 1000 characters',             jsonb_set(cs, '{name}', to_jsonb(repeat('n', 1000)))),
  ('name of another table',            jsonb_set(cs, '{name}', '"sec_cs_other"')),
  ('name with a wider permitted list', jsonb_set(jsonb_set(jsonb_set(cs, '{name}', '"sec_cs_signup"'),
                                                 '{permitted}', '["email", "is_admin"]'), '{changes,is_admin}', 'true')),
  ('deeply nested data',               jsonb_set(cs, '{data}', (repeat('{"a":', 5000) || '1' || repeat('}', 5000))::jsonb))
) AS f(label, v);
SELECT count(*) AS malformed_values FROM fuzz WHERE label <> 'well-formed';

-- every value through every entry point, as an attacker: no crash, a clear SQLSTATE
GRANT SELECT ON fuzz, entry TO sec_attacker;
SET ROLE sec_attacker;
SELECT f.label,
       string_agg(DISTINCT pg_temp.outcome(e.q, f.cs), ',') FILTER (WHERE e.kind = 'validator') AS validators,
       max(pg_temp.outcome(e.q, f.cs)) FILTER (WHERE e.kind = 'is_valid') AS is_valid,
       max(pg_temp.outcome(e.q, f.cs)) FILTER (WHERE e.kind = 'errors') AS errors,
       max(pg_temp.outcome(e.q, f.cs)) FILTER (WHERE e.kind = 'insert') AS insert,
       max(pg_temp.outcome(e.q, f.cs)) FILTER (WHERE e.kind = 'update') AS update
  FROM fuzz f CROSS JOIN entry e
 GROUP BY f.n, f.label ORDER BY f.n;

-- the messages say what is wrong, and echo at most 64 characters of the value
SELECT f.label, pg_temp.message_of('SELECT pgapp.is_valid($1::pgapp.changeset)', f.cs) AS message
  FROM fuzz f WHERE f.label <> 'well-formed' AND f.label NOT LIKE '%100 kB%' ORDER BY f.n;
SELECT f.label, length(pg_temp.message_of('SELECT pgapp.is_valid($1::pgapp.changeset)', f.cs)) AS message_length
  FROM fuzz f WHERE f.label LIKE '%100 kB%' ORDER BY f.n;

-- "valid": true next to errors is not valid
SELECT pgapp.is_valid(cs) AS valid FROM fuzz WHERE label = 'valid true with errors';
-- the limit is the superuser's to raise
SET pgapp.changeset_max_items = 1000000;
SHOW pgapp.changeset_max_items;
RESET ROLE;

-- through sec_victim's RPC: a crafted sign-up changeset cannot make an admin
SET ROLE sec_attacker;
SET pgapp.error_mode = 'raise';
SELECT pg_temp.message_of('SELECT public.sec_cs_submit($1::pgapp.changeset)',
         jsonb_set(jsonb_set(pgapp.changeset('sec_cs_signup', '{"email": "eve@example.com"}')::jsonb,
                             '{permitted}', '["email", "is_admin"]'), '{changes,is_admin}', 'true')) AS widened_list;
SELECT pg_temp.message_of('SELECT public.sec_cs_submit($1::pgapp.changeset)',
         jsonb_set(pgapp.changeset('sec_cs_signup', '{"email": "eve@example.com"}')::jsonb,
                   '{changes,is_admin}', 'true')) AS extra_change;
-- a changeset marked valid despite its errors is reported, not written
SELECT pg_temp.message_of('SELECT public.sec_cs_submit($1::pgapp.changeset)',
         jsonb_set(pgapp.changeset('sec_cs_signup', '{"email": "no at sign"}')::jsonb, '{valid}', 'true')) AS forced_valid;
-- huge error keys are cut in the message (the body keeps them)
SELECT length(pg_temp.message_of('SELECT public.sec_cs_submit($1::pgapp.changeset)',
         jsonb_set(pgapp.changeset('sec_cs_signup', '{"email": "eve@example.com"}')::jsonb, '{errors}',
                   jsonb_build_object(repeat('e', 100000), jsonb_build_array(repeat('m', 100000)))))) AS message_length;
-- the honest path still works
SELECT public.sec_cs_submit(pgapp.changeset('sec_cs_signup', '{"email": "eve@example.com"}')) ->> 'email' AS signed_up;
RESET pgapp.error_mode;
RESET ROLE;
SELECT email, is_admin FROM public.sec_cs_account ORDER BY id;

-- pgapp.insert checks every change against its column before writing: a value
-- the column cannot take is 22023 (with a short echo), not the executor's error
GRANT SELECT, INSERT ON public.sec_cs_account TO sec_attacker;
SET ROLE sec_attacker;
SELECT pg_temp.outcome('SELECT pgapp.insert($1::pgapp.changeset)', cs) AS sqlstate,
       pg_temp.message_of('SELECT pgapp.insert($1::pgapp.changeset)', cs) AS message
  FROM (SELECT pgapp.cast('public.sec_cs_account', NULL, '{}', ARRAY['email', 'born'])::jsonb
               || jsonb_build_object('changes', jsonb_build_object('email', 'x@example.com', 'born', repeat('9', 100000)))
               AS cs) AS t;
-- PostgreSQL's own errors that quote a value (a unique violation's Key (...)=(...)) are cut
SELECT pgapp.insert(pgapp.cast('public.sec_cs_account', NULL, jsonb_build_object('email', repeat('y', 2000)),
                               ARRAY['email'])) ->> 'is_admin' AS inserted;
SELECT pg_temp.outcome('SELECT pgapp.insert($1::pgapp.changeset)', cs) AS sqlstate,
       length(pg_temp.detail_of('SELECT pgapp.insert($1::pgapp.changeset)', cs)) AS detail_length
  FROM (SELECT pgapp.cast('public.sec_cs_account', NULL, jsonb_build_object('email', repeat('y', 2000)),
                          ARRAY['email'])::jsonb AS cs) AS t;
RESET ROLE;
REVOKE SELECT, INSERT ON public.sec_cs_account FROM sec_attacker;

-- anon through PostgREST: an unparsable date is a 422 body, not a 400
SET ROLE anon;
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT public.sec_cs_book(pgapp.cast('public.sec_cs_account', NULL, '{}', ARRAY['born'])::jsonb
                          || '{"changes": {"born": "2031-02-30"}}') AS body,
       current_setting('response.status') AS status;
COMMIT;
RESET ROLE;

DROP FUNCTION public.sec_cs_submit(pgapp.changeset), public.sec_cs_book(pgapp.changeset);
SELECT pgapp.drop_changeset('sec_cs_signup'), pgapp.drop_changeset('sec_cs_other');
SELECT pgapp.drop_machine('sec_cs_status');
DROP TABLE public.sec_cs_account;

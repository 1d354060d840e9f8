--
-- security/86_multi_review: attacks on Multi that the review of issue 18
-- tried and that fail (87_multi_review_bugs holds the ones that succeed).
--
--   A. row level security and the plans pgapp keeps per backend
--      (core/spi_cache.c): the owner (who bypasses the policy), another
--      role and the superuser take turns in one session, through
--      pgapp.insert/update and every write step of a multi; each sees and
--      writes only what its own plain SQL would
--   B. DDL between calls with the same statement texts kept: a column
--      added, its type changed, dropped, renamed; the table renamed, dropped
--      and created again with other types; a trigger added; DDL by a step
--      between two steps of one multi.  The right rows every time, and no
--      error that the same plain SQL would not give
--   C. the multis that pgapp_jsonb_object_of_array assembles byte by byte
--      (0..70 steps of every kind, numerics of many sizes, long strings,
--      nested arrays) are the jsonb PostgreSQL itself builds from their text
--   D. a cancel (statement_timeout) inside a step, in a run function or in a
--      trigger under a changeset write, ends the statement: it is not a
--      step's failure, and nothing is written
--   E. a serialization failure under REPEATABLE READ (a real one: another
--      session commits an update first, through dblink) propagates as 40001
--      from every write step, never becomes a step's failure
--   F. function signatures: a multi keeps its function by qualified name,
--      whatever the search_path at transact time; a privilege revoked after
--      the signature was looked up (and kept by the backend) is checked again
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
        RETURN left(msg, 300);
    END IF;
    RETURN st || ': ' || left(msg, 120);
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.outcome(text) TO PUBLIC;
\set ECHO all

-- A. row level security: notes of sec_victim (the owner) and sec_attacker
CREATE TABLE public.sec_rv_note (id int PRIMARY KEY, owner text NOT NULL DEFAULT current_user, body text);
ALTER TABLE public.sec_rv_note OWNER TO sec_victim;
ALTER TABLE public.sec_rv_note ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON public.sec_rv_note USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT ALL ON public.sec_rv_note TO sec_attacker;
INSERT INTO public.sec_rv_note VALUES (1, 'sec_victim', 'v1'), (2, 'sec_attacker', 'a2'), (3, 'sec_victim', 'v3'), (4, 'sec_attacker', 'a4');
CREATE FUNCTION pg_temp.rv_round(who text, n int) RETURNS TABLE (what text, result text)
LANGUAGE plpgsql AS $$
BEGIN
    what := 'update 1'; result := pg_temp.outcome(format($q$ SELECT pgapp.transact(pgapp.multi_update(pgapp.multi(), 'u',
        pgapp.cast('public.sec_rv_note', '{"id": 1, "owner": "sec_victim", "body": "v1"}', %L, ARRAY['body'])), 'return')::text $q$,
        jsonb_build_object('body', who || ' ' || n))); RETURN NEXT;
    what := 'update 2'; result := pg_temp.outcome(format($q$ SELECT pgapp.update(
        pgapp.cast('public.sec_rv_note', '{"id": 2, "owner": "sec_attacker", "body": "a2"}', %L, ARRAY['body']))::text $q$,
        jsonb_build_object('body', who || ' ' || n))); RETURN NEXT;
    what := 'update_all'; result := pg_temp.outcome(format($q$ SELECT coalesce('count ' || (r -> 'changes' -> 'u' ->> 'count'),
        (r ->> 'status') || ' ' || (r -> 'error' ->> 'sqlstate')) FROM pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'u',
        pgapp.from('public.sec_rv_note'), %L), 'return') AS r $q$,
        jsonb_build_object('body', who || ' all ' || n))); RETURN NEXT;
    what := 'delete 3'; result := pg_temp.outcome($q$ SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'd',
        'public.sec_rv_note', '3'), 'return')::text $q$); RETURN NEXT;
    what := 'insert as victim'; result := pg_temp.outcome(format($q$ SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'i',
        'public.sec_rv_note', %L), 'return')::text $q$,
        jsonb_build_array(jsonb_build_object('id', 100 + n, 'owner', 'sec_victim', 'body', who)))); RETURN NEXT;
    what := 'insert as attacker'; result := pg_temp.outcome(format($q$ SELECT pgapp.insert(pgapp.cast('public.sec_rv_note', NULL,
        %L, ARRAY['id', 'owner', 'body']))::text $q$,
        jsonb_build_object('id', 200 + n, 'owner', 'sec_attacker', 'body', who))); RETURN NEXT;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.rv_round(text, int) TO PUBLIC;
-- the owner plans first (no policy applies to it), then the others reuse the texts
SET ROLE sec_victim;
SELECT * FROM pg_temp.rv_round('victim', 1);
SET ROLE sec_attacker;
SELECT * FROM pg_temp.rv_round('attacker', 2);
SET ROLE sec_victim;
SELECT * FROM pg_temp.rv_round('victim', 3);
RESET ROLE;
SELECT * FROM pg_temp.rv_round('superuser', 4);
SET ROLE sec_attacker;
SELECT * FROM pg_temp.rv_round('attacker', 5);
-- row_security = off: the attacker's kept plans must not skip the policy
SET row_security = off;
SELECT * FROM pg_temp.rv_round('attacker', 6);
RESET row_security;
RESET ROLE;
SELECT * FROM public.sec_rv_note ORDER BY id;
-- FORCE ROW LEVEL SECURITY after the owner's plans were kept: now the owner is filtered too
ALTER TABLE public.sec_rv_note FORCE ROW LEVEL SECURITY;
SET ROLE sec_victim;
SELECT ARRAY(SELECT r ->> 'id' FROM jsonb_array_elements(pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'u',
    pgapp.from('public.sec_rv_note'), '{"body": "forced"}'), 'return') -> 'changes' -> 'u' -> 'rows') AS r ORDER BY 1) AS forced_owner_rows;
RESET ROLE;
SELECT * FROM public.sec_rv_note ORDER BY id;
DROP TABLE public.sec_rv_note;

-- B. DDL between calls: the same statement texts, kept, after every change
SET ROLE sec_attacker;
CREATE TABLE public.sec_rv_ddl (id int PRIMARY KEY, a text);
CREATE FUNCTION pg_temp.rv_ddl_round(n int) RETURNS TABLE (what text, result text)
LANGUAGE plpgsql AS $$
BEGIN
    what := 'insert'; result := pg_temp.outcome(format($q$ SELECT pgapp.insert(pgapp.cast('public.sec_rv_ddl', NULL,
        %L, ARRAY['id', 'a']))::text $q$, jsonb_build_object('id', n, 'a', 'x' || n))); RETURN NEXT;
    what := 'multi'; result := pg_temp.outcome(format($q$ SELECT pgapp.transact(
        pgapp.multi_update_all(
          pgapp.multi_delete(
            pgapp.multi_update(
              pgapp.multi_insert_all(pgapp.multi(), 'ins', 'public.sec_rv_ddl', %L),
              'upd', pgapp.cast('public.sec_rv_ddl', %L, '{"a": "upd"}', ARRAY['a'])),
            'del', 'public.sec_rv_ddl', %L),
          'all', pgapp.filter_by(pgapp.from('public.sec_rv_ddl'), 'id', %s), '{"a": "all"}'),
        'return')::text $q$,
        jsonb_build_array(jsonb_build_object('id', 10 * n, 'a', 'y'), jsonb_build_object('id', 10 * n + 1, 'a', 'z')),
        jsonb_build_object('id', 10 * n, 'a', 'y'), to_jsonb(10 * n + 1), 10 * n)); RETURN NEXT;
END $$;
SELECT * FROM pg_temp.rv_ddl_round(1);
SELECT * FROM pg_temp.rv_ddl_round(1);
ALTER TABLE public.sec_rv_ddl ADD COLUMN b int NOT NULL DEFAULT 7;
SELECT * FROM pg_temp.rv_ddl_round(2);
-- a is an integer now: 'x3' no longer fits (422, as pgapp.cast says), an integer does
ALTER TABLE public.sec_rv_ddl ALTER COLUMN a TYPE int USING length(a);
SELECT * FROM pg_temp.rv_ddl_round(3);
SELECT pgapp.insert(pgapp.cast('public.sec_rv_ddl', NULL, '{"id": 3, "a": 33}', ARRAY['id', 'a'])) AS int_a;
ALTER TABLE public.sec_rv_ddl ALTER COLUMN a TYPE text;
ALTER TABLE public.sec_rv_ddl DROP COLUMN b;
SELECT * FROM pg_temp.rv_ddl_round(4);
-- a changeset and a multi made before a change, run after it: plain SQL's error, no stale plan
SELECT pgapp.cast('public.sec_rv_ddl', NULL, '{"id": 5, "a": "old"}', ARRAY['id', 'a']) AS cs_before \gset
SELECT pgapp.multi_delete(pgapp.multi(), 'd', 'public.sec_rv_ddl', '4') AS m_before \gset
ALTER TABLE public.sec_rv_ddl RENAME COLUMN a TO c;
SELECT pg_temp.outcome(format($q$ SELECT pgapp.insert(%L::pgapp.changeset)::text $q$, :'cs_before')) AS renamed_column;
SELECT pg_temp.outcome(format($q$ SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'i', %L::pgapp.changeset), 'return')::text $q$,
    :'cs_before')) AS renamed_column_in_multi;
ALTER TABLE public.sec_rv_ddl RENAME COLUMN c TO a;
ALTER TABLE public.sec_rv_ddl RENAME TO sec_rv_ddl2;
SELECT pg_temp.outcome(format($q$ SELECT pgapp.transact(%L::pgapp.multi, 'return')::text $q$, :'m_before')) AS renamed_table;
SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'd', 'public.sec_rv_ddl2', '4'), 'return') AS by_new_name;
-- a new table under the old name, with other types: the same texts write into it
CREATE TABLE public.sec_rv_ddl (id bigint PRIMARY KEY, a varchar(3) NOT NULL DEFAULT 'def', extra jsonb);
SELECT * FROM pg_temp.rv_ddl_round(5);
SELECT * FROM pg_temp.rv_ddl_round(6);
DROP TABLE public.sec_rv_ddl;
-- (the key stays an integer type: a key that turns numeric is 87_multi_review_bugs D)
CREATE TABLE public.sec_rv_ddl (a text, id bigint PRIMARY KEY);
SELECT * FROM pg_temp.rv_ddl_round(7);
-- a trigger added after the texts were kept runs
CREATE FUNCTION public.sec_rv_upper() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.a := upper(NEW.a); RETURN NEW; END $$;
CREATE TRIGGER upper_a BEFORE INSERT OR UPDATE ON public.sec_rv_ddl FOR EACH ROW EXECUTE FUNCTION public.sec_rv_upper();
SELECT * FROM pg_temp.rv_ddl_round(8);
DROP TRIGGER upper_a ON public.sec_rv_ddl;
-- DDL by a step, between two steps of one multi that use the same text
CREATE FUNCTION public.sec_rv_alter(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE args ->> 'ddl';
    RETURN '{"ok": true}';
END $$;
SELECT pgapp.transact(
    pgapp.multi_insert_all(
      pgapp.multi_run(
        pgapp.multi_insert_all(pgapp.multi(), 'before', 'public.sec_rv_ddl', '[{"id": 90, "a": "b"}]'),
        'alter', 'public.sec_rv_alter(jsonb,jsonb)',
        '{"ddl": "ALTER TABLE public.sec_rv_ddl ADD COLUMN z int NOT NULL DEFAULT 1, ALTER COLUMN id TYPE int"}'),
      'after', 'public.sec_rv_ddl', '[{"id": 91, "a": "c"}]'),
    'return') AS ddl_between_steps;
-- the same, rolled back by a later failing step: the table is as before
SELECT pgapp.transact(
    pgapp.multi_delete(
      pgapp.multi_insert_all(
        pgapp.multi_run(pgapp.multi(), 'alter', 'public.sec_rv_alter(jsonb,jsonb)',
          '{"ddl": "ALTER TABLE public.sec_rv_ddl DROP COLUMN z, ADD COLUMN y text DEFAULT ''y''"}'),
        'ins', 'public.sec_rv_ddl', '[{"id": 92, "a": "d"}]'),
      'missing', 'public.sec_rv_ddl', '12345'),
    'return') - 'changes_so_far' AS ddl_rolled_back;
SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'again', 'public.sec_rv_ddl', '[{"id": 93, "a": "e"}]'), 'return') AS after_rollback;
SELECT * FROM public.sec_rv_ddl ORDER BY id;
SELECT * FROM public.sec_rv_ddl2 ORDER BY id;
DROP TABLE public.sec_rv_ddl, public.sec_rv_ddl2;
DROP FUNCTION public.sec_rv_upper(), public.sec_rv_alter(jsonb, jsonb);
RESET ROLE;

-- C. the bytes of an assembled multi are PostgreSQL's own
SET ROLE sec_attacker;
CREATE TABLE public.sec_rv_jt (id int PRIMARY KEY, n numeric, s text, a jsonb);
CREATE FUNCTION public.sec_rv_echo(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', args) $$;
CREATE FUNCTION public.sec_rv_none(changes jsonb) RETURNS pgapp.multi LANGUAGE sql AS $$ SELECT pgapp.multi() $$;
CREATE FUNCTION pg_temp.rv_value(i int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE i % 9
      WHEN 0 THEN to_jsonb(i::numeric / 7)
      WHEN 1 THEN to_jsonb(repeat('x', i * 37))
      WHEN 2 THEN jsonb_build_array(1.5, 10::numeric ^ (i % 40), jsonb_build_array(jsonb_build_array(i, -i::numeric / 3)), 'a')
      WHEN 3 THEN jsonb_build_object('n', (2::numeric ^ 100) * i, 's', repeat('é', i), 'z', null, 't', true)
      WHEN 4 THEN to_jsonb(1e-30::numeric * i)
      WHEN 5 THEN 'null'::jsonb
      WHEN 6 THEN to_jsonb(123456789012345678901234567890.123456789::numeric + i)
      WHEN 7 THEN to_jsonb(repeat('y', i % 5))
      ELSE jsonb_build_object('deep', jsonb_build_array(jsonb_build_object('x', i::numeric / 11)))
    END
$$;
CREATE FUNCTION pg_temp.rv_build(k int, prefix text) RETURNS pgapp.multi LANGUAGE plpgsql AS $$
DECLARE
    m pgapp.multi := pgapp.multi();
    v jsonb;
BEGIN
    FOR i IN 1..k LOOP
        v := pg_temp.rv_value(i);
        CASE i % 7
          WHEN 0 THEN m := pgapp.multi_put(m, prefix || i, v);
          WHEN 1 THEN m := pgapp.multi_run(m, prefix || i, 'public.sec_rv_echo(jsonb,jsonb)', jsonb_build_object('v', v));
          WHEN 2 THEN m := pgapp.multi_insert(m, prefix || i, pgapp.cast('public.sec_rv_jt', NULL,
                              jsonb_build_object('id', i, 'n', i::numeric / 3, 's', repeat('q', i), 'a', v), ARRAY['id', 'n', 's', 'a']));
          WHEN 3 THEN m := pgapp.multi_delete(m, prefix || i, 'public.sec_rv_jt', to_jsonb(i - 1));
          WHEN 4 THEN m := pgapp.multi_insert_all(m, prefix || i, 'public.sec_rv_jt',
                              jsonb_build_array(jsonb_build_object('id', 1000 + i, 'n', i::numeric ^ 3 / 7, 'a', v)));
          WHEN 5 THEN m := pgapp.multi_update_all(m, prefix || i, pgapp.filter_by(pgapp.from('public.sec_rv_jt'), 'id', 1000 + i - 1),
                              jsonb_build_object('n', -i::numeric / 13, 'a', v));
          ELSE m := pgapp.multi_merge(m, 'public.sec_rv_none(jsonb)');
        END CASE;
    END LOOP;
    RETURN m;
END $$;
CREATE TEMP TABLE rv_ms AS SELECT k, pg_temp.rv_build(k, 's')::jsonb AS m, pg_column_size(pg_temp.rv_build(k, 's')) AS built_size
  FROM generate_series(0, 70) AS k;
-- every one equal to the jsonb its text gives, element by element, under every operator
SELECT count(*) AS multis,
       count(*) FILTER (WHERE m = m::text::jsonb AND m::text = m::text::jsonb::text) AS equal,
       count(*) FILTER (WHERE k = 0 OR built_size = pg_column_size(m::text::jsonb)) AS same_size,
       count(*) FILTER (WHERE m @> m::text::jsonb AND m::text::jsonb @> m AND m <@ m::text::jsonb) AS containment,
       count(*) FILTER (WHERE jsonb_array_length(m -> 'steps') = k) AS length,
       count(*) FILTER (WHERE (SELECT bool_and(m -> 'steps' -> i = m::text::jsonb -> 'steps' -> i
                                               AND m -> 'steps' -> i ->> 'op' IS NOT NULL)
                                 FROM generate_series(0, k - 1) AS i) IS NOT FALSE) AS elements,
       count(*) FILTER (WHERE m #> '{steps,-1}' IS NOT DISTINCT FROM m::text::jsonb #> '{steps,-1}') AS last_element,
       count(*) FILTER (WHERE ARRAY(SELECT jsonb_path_query(m, 'strict $.**')::text) =
                              ARRAY(SELECT jsonb_path_query(m::text::jsonb, 'strict $.**')::text)) AS path_query,
       count(*) FILTER (WHERE jsonb_pretty(m) = jsonb_pretty(m::text::jsonb)) AS pretty,
       count(*) FILTER (WHERE jsonb_hash_extended(m, 7) = jsonb_hash_extended(m::text::jsonb, 7)) AS hash,
       count(*) FILTER (WHERE m - 'steps' = '{}' AND m ? 'steps' AND m || '{"x": 1}' = m::text::jsonb || '{"x": 1}') AS operators,
       count(*) FILTER (WHERE cardinality(pgapp.multi_names(m::pgapp.multi)) = k - (k + 1) / 7) AS names
  FROM rv_ms;
-- appended: every pair (k, 70 - k), the second renamed
CREATE TEMP TABLE rv_app AS
SELECT a.k, pgapp.multi_append(a.m::pgapp.multi, pg_temp.rv_build(70 - a.k, 't'))::jsonb AS m,
       a.m::text AS first, pg_temp.rv_build(70 - a.k, 't')::text AS second
  FROM rv_ms AS a;
SELECT count(*) AS appended,
       count(*) FILTER (WHERE m = m::text::jsonb AND m @> m::text::jsonb AND jsonb_pretty(m) = jsonb_pretty(m::text::jsonb)) AS equal,
       count(*) FILTER (WHERE m -> 'steps' = (first::jsonb -> 'steps') || (second::jsonb -> 'steps')) AS concatenation
  FROM rv_app;
-- stored and read back (TOAST, compressed), and run: the same answers as the text's jsonb
CREATE TEMP TABLE rv_store (k int, m pgapp.multi);
INSERT INTO rv_store SELECT k, m FROM rv_app;
SELECT count(*) FILTER (WHERE s.m::jsonb = a.m) AS stored_equal FROM rv_store AS s JOIN rv_app AS a USING (k);
-- (each run undone by outcome: every one starts from the same empty table)
SELECT k, pg_temp.outcome(format($q$ SELECT md5(pgapp.transact(pg_temp.rv_build(%s, 's'), 'return')::text) $q$, k)) =
          pg_temp.outcome(format($q$ SELECT md5(pgapp.transact(pg_temp.rv_build(%s, 's')::text::jsonb, 'return')::text) $q$, k)) AS same_answer,
       pg_temp.outcome(format($q$ SELECT pgapp.transact(pg_temp.rv_build(%s, 's'), 'return') ->> 'ok' $q$, k)) AS ok,
       pg_temp.outcome(format($q$ SELECT pgapp.transact(m, 'return') ->> 'ok' FROM rv_store WHERE k = %s $q$, k)) AS appended_ok
  FROM generate_series(0, 70, 7) AS k ORDER BY k;
DROP TABLE public.sec_rv_jt;
DROP FUNCTION public.sec_rv_echo(jsonb, jsonb), public.sec_rv_none(jsonb);
RESET ROLE;

-- D. a cancel inside a step ends the statement; nothing written, no failure body
SET ROLE sec_attacker;
CREATE TABLE public.sec_rv_slow (id int PRIMARY KEY, v text);
CREATE FUNCTION public.sec_rv_sleep(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(30);
    RETURN '{"ok": true}';
END $$;
CREATE FUNCTION public.sec_rv_sleep_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.v = 'slow' THEN PERFORM pg_sleep(30); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow BEFORE INSERT ON public.sec_rv_slow FOR EACH ROW EXECUTE FUNCTION public.sec_rv_sleep_trigger();
SET statement_timeout = '200ms';
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi_insert_all(pgapp.multi(), 'first', 'public.sec_rv_slow', '[{"id": 1, "v": "fast"}]'),
    'sleep', 'public.sec_rv_sleep(jsonb,jsonb)'), 'return') AS run_cancelled;
SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi_insert_all(pgapp.multi(), 'first', 'public.sec_rv_slow', '[{"id": 2, "v": "fast"}]'),
    'slow', pgapp.cast('public.sec_rv_slow', NULL, '{"id": 3, "v": "slow"}', ARRAY['id', 'v'])), 'return') AS changeset_cancelled;
SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'slow', 'public.sec_rv_slow', '[{"id": 4, "v": "slow"}]'), 'return') AS insert_all_cancelled;
-- inside a transaction: the cancel aborts it, the multi's savepoint does not swallow it
BEGIN;
INSERT INTO public.sec_rv_slow VALUES (5, 'outer');
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'sleep', 'public.sec_rv_sleep(jsonb,jsonb)'), 'return') AS in_transaction;
SELECT 'still running' AS must_not_run;
ROLLBACK;
RESET statement_timeout;
SELECT count(*) AS rows_written FROM public.sec_rv_slow;
DROP TABLE public.sec_rv_slow;
DROP FUNCTION public.sec_rv_sleep(jsonb, jsonb), public.sec_rv_sleep_trigger();
RESET ROLE;

-- E. a real serialization failure propagates (40001), from every write step
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TABLE public.sec_rv_rr (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO public.sec_rv_rr SELECT g, 0 FROM generate_series(1, 8) AS g;
GRANT ALL ON public.sec_rv_rr TO sec_attacker;
SELECT format('host=%s port=%s dbname=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database()) AS other_session \gset
-- each: this transaction's snapshot is taken, another session updates the row
-- and commits, then the attacker's multi writes the row
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS snapshot FROM public.sec_rv_rr;
SELECT dblink_exec(:'other_session', 'UPDATE public.sec_rv_rr SET n = n + 1 WHERE id = 1') AS other_update;
SET LOCAL ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_update(pgapp.multi(), 'u',
    pgapp.cast('public.sec_rv_rr', '{"id": 1, "n": 0}', '{"n": 10}', ARRAY['n'])), 'return') $$) AS update_step;
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS snapshot FROM public.sec_rv_rr;
SELECT dblink_exec(:'other_session', 'UPDATE public.sec_rv_rr SET n = n + 1 WHERE id = 2') AS other_update;
SET LOCAL ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'd', 'public.sec_rv_rr', '2'), 'return') $$) AS delete_step;
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS snapshot FROM public.sec_rv_rr;
SELECT dblink_exec(:'other_session', 'UPDATE public.sec_rv_rr SET n = n + 1 WHERE id = 3') AS other_update;
SET LOCAL ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'u',
    pgapp.filter_by(pgapp.from('public.sec_rv_rr'), 'id', 3), '{"n": 10}'), 'return') $$) AS update_all_step;
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS snapshot FROM public.sec_rv_rr;
SELECT dblink_exec(:'other_session', 'UPDATE public.sec_rv_rr SET n = n + 1 WHERE id = 4') AS other_update;
SET LOCAL ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_update(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'u',
    pgapp.cast('public.sec_rv_rr', '{"id": 4, "n": 0}', '{"n": 10}', ARRAY['n'])), 'b', '2'), 'raise') $$) AS raise_mode;
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT count(*) AS snapshot FROM public.sec_rv_rr;
SELECT dblink_exec(:'other_session', 'UPDATE public.sec_rv_rr SET n = n + 1 WHERE id = 5') AS other_update;
SET LOCAL ROLE sec_attacker;
SELECT * FROM pg_temp.show($$ SELECT pgapp.update(pgapp.cast('public.sec_rv_rr', '{"id": 5, "n": 0}', '{"n": 10}', ARRAY['n'])) $$) AS plain_update;
ROLLBACK;
SELECT id, n FROM public.sec_rv_rr ORDER BY id;
DROP TABLE public.sec_rv_rr;

-- F. functions: kept by qualified name; privileges checked at every transact
CREATE SCHEMA sec_rv_app;
GRANT USAGE ON SCHEMA sec_rv_app TO PUBLIC;
CREATE FUNCTION sec_rv_app.step(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": "the app''s step"}'::jsonb $$;
SET ROLE sec_attacker;
CREATE FUNCTION public.step(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": "the attacker''s step"}'::jsonb $$;
SET search_path = sec_rv_app, pg_catalog;
SELECT pgapp.multi_run(pgapp.multi(), 's', 'step(jsonb,jsonb)') AS app_multi \gset
SELECT :'app_multi'::jsonb -> 'steps' -> 0 ->> 'function' AS stored_signature;
SET search_path = public, pg_catalog;
SELECT pgapp.transact(:'app_multi', 'return') AS other_search_path;
RESET search_path;
RESET ROLE;
-- looked up (and kept) while allowed, then revoked: 42501 at the next transact
REVOKE EXECUTE ON FUNCTION sec_rv_app.step(jsonb, jsonb) FROM PUBLIC;
SET ROLE sec_attacker;
SELECT pg_temp.outcome(format($q$ SELECT pgapp.transact(%L, 'return')::text $q$, :'app_multi')) AS revoked;
RESET ROLE;
-- dropped and created again (a new OID, the same signature): the new one runs
DROP FUNCTION sec_rv_app.step(jsonb, jsonb);
CREATE FUNCTION sec_rv_app.step(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": "the new step"}'::jsonb $$;
SET ROLE sec_attacker;
SELECT pgapp.transact(:'app_multi', 'return') AS recreated;
DROP FUNCTION public.step(jsonb, jsonb);
RESET ROLE;
DROP SCHEMA sec_rv_app CASCADE;

--
-- security/20_queries: hand-made pgapp.query values, as a role with only
-- PUBLIC's rights.  Every value goes through one reader (src/queries/query_value.c,
-- query_read) before anything runs: a bad key, type or operator is 22023,
-- never a crash, never "no filter", never an unlisted sort.  The table
-- below replays each malformed value through every function that takes a
-- pgapp.query and prints the SQLSTATE each one raised.
--
CREATE SCHEMA sec_q;
GRANT USAGE ON SCHEMA sec_q TO PUBLIC;
CREATE TABLE sec_q.maker (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE sec_q.item (
    id       int PRIMARY KEY,
    title    text NOT NULL,
    n        int,
    price    numeric,
    flag     boolean,
    secret   text,
    pt       point,
    maker_id int REFERENCES sec_q.maker
);
INSERT INTO sec_q.maker VALUES (1, 'Acme');
INSERT INTO sec_q.item VALUES (1, 'one', 0, 5, true, 's1', '(0,0)', 1), (2, 'two', 5, 20, false, 's2', NULL, 1),
                              (3, 'three', 7, 8, NULL, 's3', NULL, NULL);
GRANT SELECT ON sec_q.item, sec_q.maker TO PUBLIC;
SELECT pgapp.allow_sort('sec_q.item', ARRAY['title', 'id']);
SELECT pgapp.define_scope('sec_q.item', 'cheap', 'price < 10');
SELECT pgapp.define_stat('sec_q.item', 'twice', 't.n * 2');

-- what the attacker runs: the SQLSTATE of a statement, or "ok"
CREATE FUNCTION public.sec_q_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
CREATE FUNCTION public.sec_q_message(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; det text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || msg || CASE WHEN det <> '' THEN ' / ' || det ELSE '' END;
END
$$;

-- every function that takes a pgapp.query; %s is the value
CREATE TABLE public.sec_q_entry (id int PRIMARY KEY, stmt text NOT NULL);
INSERT INTO public.sec_q_entry VALUES
    (1, 'SELECT pgapp.all(%s)'),
    (2, 'SELECT pgapp.one(%s)'),
    (3, 'SELECT pgapp.count(%s)'),
    (4, 'SELECT pgapp.paginate(%s, 1, 10)'),
    (5, 'SELECT pgapp.paginate_after(%s, NULL, 10)'),
    (6, 'SELECT pgapp.to_sql(%s)'),
    (7, 'SELECT pgapp.filter_by(%s, ''id'', 1)'),
    (8, 'SELECT pgapp.filter_range(%s, ''n'', 1, 2)'),
    (9, 'SELECT pgapp.search(%s, ''x'', ARRAY[''title''])'),
    (10, 'SELECT pgapp.sort_by(%s, ''id'')'),
    (11, 'SELECT pgapp.scope(%s, ''cheap'')'),
    (12, 'SELECT pgapp.with_stats(%s, ARRAY[''twice''])'),
    (13, 'SELECT pgapp.preload(%s, ARRAY[''maker''])'),
    (14, 'SELECT pgapp.apply_params(%s, ''{"id": 1}'', ''{"id": "eq"}'')'),
    (15, 'SELECT pgapp.check_query(%s)');

-- the values: each is cast to pgapp.query by the statement that uses it
CREATE TABLE public.sec_q_case (id serial PRIMARY KEY, label text NOT NULL, q text NOT NULL);
INSERT INTO public.sec_q_case (label, q) VALUES
    ('well formed', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "title", "value": "one"}], "order": []}'),
    ('well formed, every key', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "title", "value": "one"},
        {"op": "in", "field": "n", "values": ["0", 5]}, {"op": "null", "field": "secret"},
        {"op": "range", "field": "price", "from": "1", "to": null}, {"op": "search", "term": "o", "fields": ["title"]}],
        "order": [{"field": "title", "dir": "desc", "nulls": "first"}], "scopes": ["cheap"], "stats": ["twice"], "preload": ["maker"]}'),
    ('eq without value (issue 15)', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "title"}], "order": []}'),
    ('eq value null', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "title", "value": null}], "order": []}'),
    ('eq value object', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "title", "value": {"a": 1}}], "order": []}'),
    ('eq value array', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": [5]}], "order": []}'),
    ('eq value boolean on int', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": true}], "order": []}'),
    ('eq value 5 on int: typed', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": 5}], "order": []}'),
    ('eq value 5.5 on int', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": 5.5}], "order": []}'),
    ('eq value boolean on bool', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "flag", "value": true}], "order": []}'),
    ('eq on a system column', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "ctid", "value": "(0,1)"}], "order": []}'),
    ('eq on a type without btree', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "pt", "value": "(0,0)"}], "order": []}'),
    ('in without values', '{"source": "sec_q.item", "where": [{"op": "in", "field": "title"}], "order": []}'),
    ('in values a string', '{"source": "sec_q.item", "where": [{"op": "in", "field": "title", "values": "one"}], "order": []}'),
    ('in values with an object', '{"source": "sec_q.item", "where": [{"op": "in", "field": "title", "values": ["one", {"x": 1}]}], "order": []}'),
    ('in values with a null', '{"source": "sec_q.item", "where": [{"op": "in", "field": "title", "values": ["one", null]}], "order": []}'),
    ('null without field', '{"source": "sec_q.item", "where": [{"op": "null"}], "order": []}'),
    ('field a number', '{"source": "sec_q.item", "where": [{"op": "null", "field": 1}], "order": []}'),
    ('field unknown', '{"source": "sec_q.item", "where": [{"op": "null", "field": "nope"}], "order": []}'),
    ('op unknown', '{"source": "sec_q.item", "where": [{"op": "raw", "field": "id", "sql": "true"}], "order": []}'),
    ('op missing', '{"source": "sec_q.item", "where": [{"field": "id", "value": "1"}], "order": []}'),
    ('op a number', '{"source": "sec_q.item", "where": [{"op": 1, "field": "id", "value": "1"}], "order": []}'),
    ('condition a string', '{"source": "sec_q.item", "where": ["id = 1"], "order": []}'),
    ('condition with an extra key', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "id", "value": "1", "or": "true"}], "order": []}'),
    ('where an object', '{"source": "sec_q.item", "where": {"op": "eq", "field": "id", "value": "1"}, "order": []}'),
    ('where a string', '{"source": "sec_q.item", "where": "id = 1", "order": []}'),
    ('where null', '{"source": "sec_q.item", "where": null, "order": []}'),
    ('order an object', '{"source": "sec_q.item", "where": [], "order": {"field": "id"}}'),
    ('order without dir', '{"source": "sec_q.item", "where": [], "order": [{"field": "id", "nulls": "last"}]}'),
    ('order not whitelisted', '{"source": "sec_q.item", "where": [], "order": [{"field": "secret", "dir": "asc", "nulls": "last"}]}'),
    ('order dir injected', '{"source": "sec_q.item", "where": [], "order": [{"field": "id", "dir": "asc, secret", "nulls": "last"}]}'),
    ('order with an extra key', '{"source": "sec_q.item", "where": [], "order": [{"field": "id", "dir": "asc", "nulls": "last", "using": "<"}]}'),
    ('range without bounds', '{"source": "sec_q.item", "where": [{"op": "range", "field": "n"}], "order": []}'),
    ('range both bounds null', '{"source": "sec_q.item", "where": [{"op": "range", "field": "n", "from": null, "to": null}], "order": []}'),
    ('range bound an object', '{"source": "sec_q.item", "where": [{"op": "range", "field": "n", "from": {"a": 1}}], "order": []}'),
    ('range on a text column', '{"source": "sec_q.item", "where": [{"op": "range", "field": "title", "from": "a"}], "order": []}'),
    ('search without fields', '{"source": "sec_q.item", "where": [{"op": "search", "term": "x"}], "order": []}'),
    ('search fields empty', '{"source": "sec_q.item", "where": [{"op": "search", "term": "x", "fields": []}], "order": []}'),
    ('search term a number', '{"source": "sec_q.item", "where": [{"op": "search", "term": 1, "fields": ["title"]}], "order": []}'),
    ('search field not a string', '{"source": "sec_q.item", "where": [{"op": "search", "term": "x", "fields": [["title"]]}], "order": []}'),
    ('search a non-text column', '{"source": "sec_q.item", "where": [{"op": "search", "term": "x", "fields": ["n"]}], "order": []}'),
    ('source a number', '{"source": 1, "where": [], "order": []}'),
    ('source missing', '{"where": [], "order": []}'),
    ('source unknown', '{"source": "sec_q.nope", "where": [], "order": []}'),
    ('source too many dots', '{"source": "a.b.c.d.e.f", "where": [], "order": []}'),
    ('source an index', '{"source": "sec_q.item_pkey", "where": [], "order": []}'),
    ('unknown top-level key', '{"source": "sec_q.item", "where": [], "order": [], "limit": 1}'),
    ('not an object', '["source", "where", "order"]'),
    ('scopes a string', '{"source": "sec_q.item", "where": [], "order": [], "scopes": "cheap"}'),
    ('scope unknown', '{"source": "sec_q.item", "where": [], "order": [], "scopes": ["cheap) OR (true"]}'),
    ('stats with an object', '{"source": "sec_q.item", "where": [], "order": [], "stats": [{"sql": "1"}]}'),
    ('preload unknown', '{"source": "sec_q.item", "where": [], "order": [], "preload": ["secret"]}'),
    ('preload a number', '{"source": "sec_q.item", "where": [], "order": [], "preload": [1]}'),
    ('deeply nested value', '{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": '
        || repeat('[', 5000) || repeat(']', 5000) || '}], "order": []}');
-- huge arrays: 20000 values with one bad at the end; 2000 conditions, one bad at the end
INSERT INTO public.sec_q_case (label, q)
SELECT 'in with 20000 values, the last an array',
       jsonb_build_object('source', 'sec_q.item', 'order', '[]'::jsonb, 'where', jsonb_build_array(
           jsonb_build_object('op', 'in', 'field', 'n', 'values',
               (SELECT jsonb_agg(g::text) FROM generate_series(1, 19999) AS g) || '[[1]]'::jsonb)))::text;
INSERT INTO public.sec_q_case (label, q)
SELECT '2000 conditions, the last without value',
       jsonb_build_object('source', 'sec_q.item', 'order', '[]'::jsonb, 'where',
           (SELECT jsonb_agg(jsonb_build_object('op', 'eq', 'field', 'id', 'value', g::text)) FROM generate_series(1, 1999) AS g)
           || '[{"op": "eq", "field": "title"}]'::jsonb)::text;

GRANT SELECT ON public.sec_q_case, public.sec_q_entry TO sec_attacker;

SET ROLE sec_attacker;
WITH r AS (
    SELECT c.id, c.label, c.q, e.id AS entry,
           public.sec_q_try(format(e.stmt, quote_literal(c.q) || '::pgapp.query')) AS st
      FROM public.sec_q_case c CROSS JOIN public.sec_q_entry e)
SELECT id, label,
       CASE WHEN count(DISTINCT st) = 1 THEN min(st) || ' from all ' || count(*)
            ELSE string_agg(entry || ':' || st, ' ' ORDER BY entry) END AS sqlstates,
       left(public.sec_q_message(format('SELECT pgapp.count(%s::pgapp.query)', quote_literal(min(q)))), 160) AS count_says
  FROM r
 GROUP BY id, label ORDER BY id;

-- item 11: a JSON number compares as the column's type; a crafted value is never "compare with 0"
SELECT pgapp.all('{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": 5}], "order": []}') -> 0 ->> 'id' AS n_is_5;
SELECT pgapp.count('{"source": "sec_q.item", "where": [{"op": "in", "field": "n", "values": [0, "7"]}], "order": []}') AS n_in_0_7;
SELECT pgapp.count('{"source": "sec_q.item", "where": [{"op": "range", "field": "price", "from": 5, "to": 8.5}], "order": []}') AS price_5_to_8_5;
-- the sort whitelist holds for a hand-made value, through every executor
SELECT public.sec_q_message($$SELECT pgapp.paginate_after('{"source": "sec_q.item", "where": [], "order": [{"field": "secret", "dir": "asc", "nulls": "last"}]}', NULL, 5)$$);
-- a where that is not an array is an error, never "no filter"
SELECT public.sec_q_message($$SELECT pgapp.all('{"source": "sec_q.item", "where": {"op": "eq", "field": "id", "value": "1"}, "order": []}')$$);

-- messages never echo more than 64 characters of what the caller sent
SELECT length(m) < 300 AS short, m FROM (VALUES
    (public.sec_q_message(format('SELECT pgapp.count(%L::pgapp.query)', jsonb_build_object('source', 'sec_q.item', 'where',
        jsonb_build_array(jsonb_build_object('op', 'eq', 'field', repeat('f', 100000), 'value', '1')), 'order', '[]'::jsonb)))),
    (public.sec_q_message(format('SELECT pgapp.count(%L::pgapp.query)', jsonb_build_object('source', 'sec_q.item', 'where',
        jsonb_build_array(jsonb_build_object('op', repeat('o', 100000), 'field', 'id')), 'order', '[]'::jsonb)))),
    (public.sec_q_message(format('SELECT pgapp.count(%L::pgapp.query)', jsonb_build_object('source', 'sec_q.item', 'where',
        jsonb_build_array(jsonb_build_object('op', 'eq', 'field', 'n', 'value', repeat('9x', 50000))), 'order', '[]'::jsonb)))),
    (public.sec_q_message(format('SELECT pgapp.count(%L::pgapp.query)', jsonb_build_object('source', 'sec_q.item', 'where',
        '[]'::jsonb, 'order', '[]'::jsonb, repeat('k', 100000), 1)))),
    (public.sec_q_message(format('SELECT pgapp.count(%L::pgapp.query)', jsonb_build_object('source', 'sec_q.item', 'where',
        '[]'::jsonb, 'order', '[]'::jsonb, 'scopes', jsonb_build_array(repeat('s', 100000)))))),
    (public.sec_q_message(format('SELECT pgapp.filter_by(pgapp.from(%L), %L, 1)', 'sec_q.item', repeat('f', 100000)))),
    (public.sec_q_message(format('SELECT pgapp.filter_by(pgapp.from(%L), %L, %L::text)', 'sec_q.item', 'n', repeat('9x', 50000)))),
    (public.sec_q_message(format('SELECT pgapp.sort_by(pgapp.from(%L), %L)', 'sec_q.item', repeat('f', 100000)))),
    (public.sec_q_message(format('SELECT pgapp.sort_by(pgapp.from(%L), %L, %L)', 'sec_q.item', 'id', repeat('d', 100000)))),
    (public.sec_q_message(format('SELECT pgapp.scope(pgapp.from(%L), %L)', 'sec_q.item', repeat('s', 100000)))),
    (public.sec_q_message(format('SELECT pgapp.preload(pgapp.from(%L), ARRAY[%L])', 'sec_q.item', repeat('p', 100000)))),
    (public.sec_q_message(format('SELECT pgapp.paginate_after(pgapp.from(%L), %L, 5)', 'sec_q.item', repeat('c', 100000))))
) AS t(m);
RESET ROLE;

-- PostgREST's anonymous role gets the same answers
SET ROLE anon;
SELECT public.sec_q_message($$SELECT pgapp.count('{"source": "sec_q.item", "where": [{"op": "eq", "field": "title"}], "order": []}'::pgapp.query)$$) AS issue_15_value;
SELECT public.sec_q_message($$SELECT pgapp.to_sql('{"source": "sec_q.item", "where": [{"op": "in", "field": "title", "values": [1, [2]]}], "order": []}'::pgapp.query)$$) AS non_string_in;
SELECT public.sec_q_message($$SELECT pgapp.paginate('{"source": "sec_q.item", "where": [{"op": "eq", "field": "n", "value": {"x": 1}}], "order": []}'::pgapp.query, 1, 5)$$) AS object_on_int;
RESET ROLE;

-- the plan cache is capped by memory (pgapp.query_cache_memory, kB): 200
-- distinct large statements (21 to 220 conditions, some 400kB of plan each)
-- fill a 64MB cap, and never keep more than 512kB under a 512kB cap, the
-- least recently used dropped first
CREATE FUNCTION public.sec_q_many() RETURNS bigint LANGUAGE sql AS $$
    SELECT sum(pgapp.count(jsonb_build_object('source', 'sec_q.item', 'order', '[]'::jsonb, 'where',
               (SELECT jsonb_agg(jsonb_build_object('op', 'range', 'field', 'n', 'from', '0', 'to', '9'))
                  FROM generate_series(1, 20 + i)))::pgapp.query))
      FROM generate_series(1, 200) AS i
$$;
SET pgapp.query_cache_memory = '64MB';
SET ROLE sec_attacker;
SELECT public.sec_q_many() AS rows_counted;
SELECT entries > 50 AS many_kept, bytes > 512 * 1024 AS over_512kb, bytes <= max_bytes AS under_cap
  FROM pgapp.query_cache_stats();
RESET ROLE;
SET pgapp.query_cache_memory = '512kB';
SET ROLE sec_attacker;
-- lowering the cap drops plans at once
SELECT entries < 200 AS fewer, bytes <= max_bytes AS under_cap, max_bytes FROM pgapp.query_cache_stats();
SELECT public.sec_q_many() AS rows_counted;
SELECT entries > 0 AS some_kept, entries <= max_entries AS entries_capped, bytes <= max_bytes AS bytes_capped,
       max_bytes AS cap
  FROM pgapp.query_cache_stats();
-- a plan used again is not planned again (the count stays), a new one is added
SELECT pgapp.count('{"source": "sec_q.item", "where": [], "order": []}') AS all_rows;
CREATE TEMP TABLE sec_q_before AS SELECT entries FROM pgapp.query_cache_stats();
SELECT pgapp.count('{"source": "sec_q.item", "where": [], "order": []}') AS all_rows;
SELECT s.entries = b.entries AS same_entries FROM pgapp.query_cache_stats() AS s, sec_q_before AS b;
-- a user cannot raise the cap for himself
SELECT public.sec_q_message('SET pgapp.query_cache_memory = ''1GB''');
RESET ROLE;

-- a stat that runs a query itself: the running plan is never evicted under it
SELECT pgapp.define_stat('sec_q.item', 'makers',
    'pgapp.count(pgapp.filter_by(pgapp.from(''sec_q.maker''), ''id'', t.maker_id))');
SET pgapp.query_cache_memory = '16kB';
SET ROLE sec_attacker;
SELECT string_agg((r ->> 'id') || ':' || (r ->> 'makers'), ' ') AS makers_per_item
  FROM jsonb_array_elements(pgapp.all(pgapp.sort_by(pgapp.with_stats(pgapp.from('sec_q.item'), ARRAY['makers']), 'id'))) AS r;
SELECT bytes <= max_bytes AS bytes_capped FROM pgapp.query_cache_stats();
RESET ROLE;
-- 0 keeps no plan at all
SET pgapp.query_cache_memory = 0;
SET ROLE sec_attacker;
SELECT pgapp.count(pgapp.from('sec_q.item')) AS uncached_count;
SELECT entries, bytes FROM pgapp.query_cache_stats();
RESET ROLE;
RESET pgapp.query_cache_memory;

DROP FUNCTION public.sec_q_many();
DROP FUNCTION public.sec_q_try(text), public.sec_q_message(text);
DROP TABLE public.sec_q_case, public.sec_q_entry;
DELETE FROM pgapp.sort_allowed WHERE source = 'sec_q.item'::regclass;
DELETE FROM pgapp.query_expression WHERE source = 'sec_q.item'::regclass;
DROP SCHEMA sec_q CASCADE;

--
-- queries: pgapp.query builders and executors (filters, search, sort,
-- paginate, to_sql) and the injection attempts they must refuse.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

CREATE TYPE q_status AS ENUM ('draft', 'active', 'archived');
CREATE TABLE q_product (
    id         int PRIMARY KEY,
    name       text NOT NULL,
    sku        text,
    status     q_status NOT NULL,
    price      numeric(8,2) NOT NULL,
    released   date,
    created_at timestamptz NOT NULL
);
CREATE INDEX q_product_status ON q_product (status);
INSERT INTO q_product VALUES
    (1, 'Widget', 'W-1', 'active', 9.99, '2024-01-10', '2024-01-01 10:00+00'),
    (2, 'Gadget', 'G-1', 'active', 19.50, '2024-03-01', '2024-02-01 10:00+00'),
    (3, '50%_off coupon', 'C-50', 'active', 0.00, NULL, '2024-03-01 10:00+00'),
    (4, '50 percent off', 'C-51', 'draft', 0.00, NULL, '2024-04-01 10:00+00'),
    (5, 'Back\slash tool', 'B-1', 'archived', 5.00, '2023-12-24', '2024-05-01 10:00+00'),
    (6, 'widget deluxe', NULL, 'active', 99.00, '2024-06-01', '2024-06-01 10:00+00');
SELECT pgapp.allow_sort('q_product', ARRAY['name', 'price', 'released', 'id']);

-- the value and its shape
SELECT pgapp.from('q_product');

-- filter_by: equality, arrays as IN, NULL as IS NULL; values in the column's type
SELECT pgapp.count(pgapp.filter_by(pgapp.from('q_product'), 'status', 'active'::text)) AS active;
SELECT pgapp.count(pgapp.filter_by(pgapp.from('q_product'), 'id', ARRAY[1, 2, 99])) AS in_list;
SELECT pgapp.count(pgapp.filter_by(pgapp.from('q_product'), 'released', NULL::date)) AS no_release;
SELECT pgapp.count(pgapp.filter_by(pgapp.from('q_product'), 'price', '19.5'::text)) AS by_text_price;
SELECT pgapp.filter_by(pgapp.from('q_product'), 'status', ARRAY['active', 'draft']) -> 'where' AS stored;

-- filter_range: inclusive, open ends, dates, timestamps and numbers
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_product'), 'price', 5, 19.5)) AS five_to_19_50;
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_product'), 'released', '2024-01-01'::date, NULL::date)) AS since_2024;
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_product'), 'released', NULL::date, '2024-01-10'::date)) AS until_jan_10;
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_product'), 'created_at',
                   '2024-02-01 10:00+00'::timestamptz, '2024-04-01 10:00+00'::timestamptz)) AS feb_to_apr;
SELECT pgapp.filter_range(q, 'price', NULL::numeric, NULL::numeric) = q AS both_open_is_no_filter
  FROM pgapp.from('q_product') AS q;

-- search: ILIKE over several fields, the term taken literally
SELECT pgapp.escape_like('50%_off \ path');
SELECT id, name FROM jsonb_to_recordset(pgapp.all(pgapp.sort_by(
    pgapp.search(pgapp.from('q_product'), 'widget', ARRAY['name', 'sku']), 'id'))) AS r(id int, name text);
SELECT id, name FROM jsonb_to_recordset(pgapp.all(
    pgapp.search(pgapp.from('q_product'), '50%_off', ARRAY['name']))) AS r(id int, name text);
SELECT id, name FROM jsonb_to_recordset(pgapp.all(
    pgapp.search(pgapp.from('q_product'), 'k\s', ARRAY['name']))) AS r(id int, name text);
SELECT pgapp.count(pgapp.search(pgapp.from('q_product'), '_', ARRAY['name'])) AS underscore_is_literal;
SELECT pgapp.search(q, '   ', ARRAY['name']) = q AND pgapp.search(q, NULL, ARRAY['name']) = q AS blank_term_is_no_filter
  FROM pgapp.from('q_product') AS q;

-- sort_by: whitelisted fields, directions and nulls placement
SELECT string_agg(r.name, ', ') AS by_price_desc FROM jsonb_to_recordset(pgapp.all(
    pgapp.sort_by(pgapp.sort_by(pgapp.from('q_product'), 'price', 'DESC'), 'id'))) AS r(name text);
SELECT string_agg(r.id::text, ', ') AS released_nulls_first FROM jsonb_to_recordset(pgapp.all(
    pgapp.sort_by(pgapp.sort_by(pgapp.from('q_product'), 'released', 'asc nulls first'), 'id'))) AS r(id int);
SELECT string_agg(r.id::text, ', ') AS released_desc_nulls_last FROM jsonb_to_recordset(pgapp.all(
    pgapp.sort_by(pgapp.sort_by(pgapp.from('q_product'), 'released', 'desc  NULLS  last'), 'id'))) AS r(id int);

-- composed in different orders, the same rows
SELECT pgapp.all(pgapp.sort_by(pgapp.search(pgapp.filter_range(pgapp.filter_by(pgapp.from('q_product'),
           'status', 'active'::text), 'price', 1, NULL::numeric), 'widget', ARRAY['name']), 'price'))
     = pgapp.all(pgapp.filter_by(pgapp.search(pgapp.sort_by(pgapp.filter_range(pgapp.from('q_product'),
           'price', 1, NULL::numeric), 'price'), 'widget', ARRAY['name']), 'status', 'active'::text))
       AS same_rows;

-- one, count, paginate (one scan for entries and total; past the end still counts)
SELECT pgapp.one(pgapp.filter_by(pgapp.from('q_product'), 'id', 2)) ->> 'name' AS one;
SELECT pgapp.one(pgapp.filter_by(pgapp.from('q_product'), 'id', 42)) IS NULL AS none_found;
SELECT p - 'entries' AS meta, jsonb_path_query_array(p -> 'entries', '$[*].id') AS ids
  FROM pgapp.paginate(pgapp.sort_by(pgapp.from('q_product'), 'id'), 2, 4) AS p;
SELECT pgapp.paginate(pgapp.sort_by(pgapp.from('q_product'), 'id'), 9, 4) AS past_the_end;
SELECT pgapp.paginate(pgapp.filter_by(pgapp.from('q_product'), 'id', 42), 1, 10) AS empty;
SET pgapp.query_max_page_size = 2;
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate(pgapp.from('q_product'), 1, 3) $$);
RESET pgapp.query_max_page_size;

-- to_sql: identifiers quoted, values as parameters
SELECT pgapp.to_sql(pgapp.sort_by(pgapp.search(pgapp.filter_range(pgapp.filter_by(
           pgapp.from('q_product'), 'status', ARRAY['active', 'draft']), 'released', '2024-01-01'::date, NULL::date),
           '50%', ARRAY['name', 'sku']), 'price', 'desc'));

-- views work as sources too
CREATE VIEW q_active AS SELECT * FROM q_product WHERE status = 'active';
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_active'), 'price', 10, NULL::numeric)) AS active_from_10;

---------------------------------------------------------------------------
-- scopes and stats: owner-defined SQL, checked when defined
---------------------------------------------------------------------------
CREATE TABLE q_review (
    id         int PRIMARY KEY,
    product_id int NOT NULL REFERENCES q_product,
    rating     int NOT NULL,
    body       text
);
CREATE TABLE q_maker (id int PRIMARY KEY, name text NOT NULL);
ALTER TABLE q_product ADD COLUMN maker_id int REFERENCES q_maker;
INSERT INTO q_maker VALUES (1, 'Acme'), (2, 'Globex');
UPDATE q_product SET maker_id = CASE WHEN id % 2 = 0 THEN 2 ELSE 1 END WHERE id < 6;
INSERT INTO q_review VALUES (1, 1, 5, 'great'), (2, 1, 3, 'ok'), (3, 2, 4, NULL), (4, 6, 1, 'meh');

SELECT pgapp.define_scope('q_product', 'active', 'status = ''active''');
SELECT pgapp.define_scope('q_product', 'released', 'released IS NOT NULL AND released <= ''2024-06-30''');
SELECT pgapp.define_stat('q_product', 'review_count', '(SELECT count(*) FROM q_review r WHERE r.product_id = t.id)');
SELECT pgapp.define_stat('q_product', 'avg_rating', '(SELECT round(avg(r.rating), 2) FROM q_review r WHERE r.product_id = t.id)');
SELECT kind, name, expression FROM pgapp.query_expression ORDER BY kind, name;

SELECT r.id, r.name FROM jsonb_to_recordset(pgapp.all(pgapp.sort_by(
    pgapp.scope(pgapp.scope(pgapp.from('q_product'), 'active'), 'released'), 'id'))) AS r(id int, name text);
SELECT r.id, r.review_count, r.avg_rating FROM jsonb_to_recordset(pgapp.all(pgapp.sort_by(
    pgapp.with_stats(pgapp.filter_by(pgapp.from('q_product'), 'status', 'active'::text), ARRAY['review_count', 'avg_rating']),
    'id'))) AS r(id int, review_count int, avg_rating numeric);
-- scopes combine with filters and count like them
SELECT pgapp.count(pgapp.search(pgapp.scope(pgapp.from('q_product'), 'active'), 'widget', ARRAY['name'])) AS active_widgets;

---------------------------------------------------------------------------
-- preloads: related rows through foreign keys, nested, in one statement
---------------------------------------------------------------------------
SELECT r.id, r.maker ->> 'name' AS maker, jsonb_path_query_array(r.q_review, '$[*].rating') AS ratings
  FROM jsonb_to_recordset(pgapp.all(pgapp.sort_by(
         pgapp.preload(pgapp.from('q_product'), ARRAY['maker', 'q_review']), 'id')))
       AS r(id int, maker jsonb, q_review jsonb);
-- and from the other side: a maker with its products
SELECT m.name, jsonb_array_length(m.q_product) AS products
  FROM jsonb_to_recordset(pgapp.all(pgapp.preload(pgapp.from('q_maker'), ARRAY['q_product'])))
       AS m(name text, q_product jsonb)
 ORDER BY m.name;
SELECT pgapp.to_sql(pgapp.preload(pgapp.with_stats(pgapp.scope(pgapp.filter_by(pgapp.from('q_product'),
         'id', 1), 'active'), ARRAY['review_count']), ARRAY['maker', 'q_review']));

-- never N+1: 50 parents with their reviews are one statement
INSERT INTO q_product (id, name, status, price, created_at)
     SELECT g, 'Bulk ' || g, 'active', g, '2024-07-01' FROM generate_series(100, 149) AS g;
INSERT INTO q_review SELECT 100 + g, 100 + g % 50, 1 + g % 5, NULL FROM generate_series(0, 149) AS g;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SELECT jsonb_array_length(rows) AS parents,
       (SELECT sum(jsonb_array_length(p -> 'q_review')) FROM jsonb_array_elements(rows) AS p) AS reviews
  FROM pgapp.all(pgapp.preload(pgapp.filter_range(pgapp.from('q_product'), 'id', 100, 149), ARRAY['q_review'])) AS rows;
SELECT count(*) AS statements_reading_reviews, sum(calls) AS calls
  FROM pg_stat_statements
 WHERE query LIKE '%q_review%' AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%jsonb_array_length%';

-- filters use an index where there is one
CREATE INDEX q_product_price ON q_product (price);
ANALYZE q_product;
SET enable_seqscan = off;
DO $$
DECLARE
    sql text := split_part(pgapp.to_sql(pgapp.filter_range(pgapp.from('q_product'), 'price', 5, 10)), E'\n', 1);
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || sql USING 5::numeric, 10::numeric LOOP
        RAISE NOTICE '%', line;
    END LOOP;
END
$$;
RESET enable_seqscan;

---------------------------------------------------------------------------
-- apply_params: many filters from request params, as a spec says
---------------------------------------------------------------------------
SELECT pgapp.to_sql(pgapp.apply_params(pgapp.from('q_product'),
    '{"status": "active", "ids": [1, 2, 6], "price_from": "1", "q": "WIDGET", "live": true, "ignored": 1}',
    '{"status": "eq", "ids": {"in": "id"}, "price": "range", "q": {"search": ["name", "sku"]}, "live": {"scope": "released"}}'));
SELECT pgapp.count(pgapp.apply_params(pgapp.from('q_product'),
    '{"status": "active", "ids": [1, 2, 6], "price_from": "1", "q": "WIDGET", "live": true}',
    '{"status": "eq", "ids": {"in": "id"}, "price": "range", "q": {"search": ["name", "sku"]}, "live": {"scope": "released"}}')) AS matching;
-- absent, null and false params add nothing; a custom range names its params
SELECT pgapp.apply_params(q, '{"status": null, "live": false}', '{"status": "eq", "live": {"scope": "active"}}') = q AS nothing_added
  FROM pgapp.from('q_product') AS q;
SELECT pgapp.count(pgapp.apply_params(pgapp.from('q_product'), '{"since": "2024-03-01"}',
    '{"rel": {"range": "released", "from": "since", "to": "until"}}')) AS released_since_march;
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"status": "x"}', '{"status": "like"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"status": "x"}', '{"status": {"filter": 1}}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"status": "gone"}', '{"status": "eq"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"nope": 1}', '{"nope": "eq"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"ids": 1}', '{"ids": {"in": "id"}}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"live": "maybe"}', '{"live": {"scope": "released"}}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{"q": "x"}', '{"q": {"search": "name"}}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '[]', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.apply_params(pgapp.from('q_product'), '{}', '[]') $$);

---------------------------------------------------------------------------
-- keyset pagination: no OFFSET, every row exactly once across pages
---------------------------------------------------------------------------
CREATE TABLE q_event (id int PRIMARY KEY, kind text NOT NULL, score int NOT NULL, note text);
INSERT INTO q_event SELECT g, 'k' || (g % 7), g % 3, NULL FROM generate_series(1, 20) AS g;
SELECT pgapp.allow_sort('q_event', ARRAY['kind', 'score', 'note']);
WITH RECURSIVE pages(n, cursor, ids) AS (
    SELECT 1, p ->> 'after', jsonb_path_query_array(p -> 'entries', '$[*].id')
      FROM pgapp.paginate_after(pgapp.sort_by(pgapp.from('q_event'), 'score'), NULL, 7) AS p
    UNION ALL
    SELECT n + 1, p ->> 'after', jsonb_path_query_array(p -> 'entries', '$[*].id')
      FROM pages, pgapp.paginate_after(pgapp.sort_by(pgapp.from('q_event'), 'score'), pages.cursor, 7) AS p
     WHERE pages.cursor IS NOT NULL)
SELECT n, ids, cursor IS NULL AS last_page FROM pages;
-- descending, with a filter; the primary key breaks ties
WITH RECURSIVE pages(n, cursor, ids) AS (
    SELECT 1, p ->> 'after', jsonb_path_query_array(p -> 'entries', '$[*].id')
      FROM pgapp.paginate_after(pgapp.sort_by(pgapp.filter_by(pgapp.from('q_event'), 'score', 2), 'kind', 'desc'), NULL, 4) AS p
    UNION ALL
    SELECT n + 1, p ->> 'after', jsonb_path_query_array(p -> 'entries', '$[*].id')
      FROM pages, pgapp.paginate_after(pgapp.sort_by(pgapp.filter_by(pgapp.from('q_event'), 'score', 2), 'kind', 'desc'),
                                       pages.cursor, 4) AS p
     WHERE pages.cursor IS NOT NULL)
SELECT n, ids, cursor IS NULL AS last_page FROM pages;
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate_after(pgapp.sort_by(pgapp.from('q_event'), 'note'), NULL, 5) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate_after(pgapp.sort_by(pgapp.sort_by(pgapp.from('q_event'), 'score'), 'kind', 'desc'), NULL, 5) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate_after(pgapp.from('q_event'), 'not a cursor', 5) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate_after(pgapp.from('q_event'), encode('["1", "2"]', 'base64'), 5) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate_after(pgapp.from('q_event'), NULL, 0) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate_after(pgapp.from('q_active'), NULL, 5) $$);
DELETE FROM pgapp.sort_allowed WHERE source = 'q_event'::regclass;
DROP TABLE q_event;

---------------------------------------------------------------------------
-- bad input and injection attempts: a clear error or a literal match
---------------------------------------------------------------------------
SELECT * FROM pg_temp.show($$ SELECT pgapp.from('no_such_table') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.from('q_product_status') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(pgapp.from('q_product'), 'name; drop table q_product', 'x'::text) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(pgapp.from('q_product'), '"name"', 'x'::text) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(pgapp.from('q_product'), 'status', 'gone'::text) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(pgapp.from('q_product'), 'id', ARRAY[1, NULL]) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(pgapp.from('q_product'), NULL, 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(NULL, 'id', 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_range(pgapp.from('q_product'), 'name', 'a'::text, 'b'::text) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_range(pgapp.from('q_product'), 'price', 'cheap'::text, NULL::text) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.search(pgapp.from('q_product'), 'x', ARRAY['price']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.search(pgapp.from('q_product'), 'x', ARRAY[]::text[]) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.search(pgapp.from('q_product'), 'x', ARRAY['name) OR true --']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.sort_by(pgapp.from('q_product'), 'status') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.sort_by(pgapp.from('q_product'), 'name', 'asc, (select 1)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.sort_by(pgapp.from('q_product'), 'name', 'desc nulls') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.sort_by(pgapp.from('q_product'), 'name', 'sideways') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.sort_by(pgapp.from('q_active'), 'name') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.allow_sort('q_product', ARRAY['nope']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate(pgapp.from('q_product'), 0, 10) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate(pgapp.from('q_product'), 1, 0) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate(pgapp.from('q_product'), NULL, 10) $$);
-- a hand-made query value is checked again when it runs
SELECT * FROM pg_temp.show($$ SELECT pgapp.all('{"source": "q_product", "where": [{"op": "eq", "field": "id; drop table q_product", "value": "1"}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.all('{"source": "q_product", "where": [{"op": "raw", "field": "id", "sql": "true"}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.all('{"source": "q_product", "where": [], "order": [{"field": "id", "dir": "asc; drop table q_product", "nulls": "last"}]}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.all('{"source": "q_product; drop table q_product", "where": [], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.all('{"where": [], "order": []}') $$);
-- values in a hand-made value: a JSON string or number in the column's type
-- (5 on an integer column is 5); a boolean only on a boolean column; null,
-- objects and arrays are 22023, never a comparison with a made-up value
SELECT pgapp.count('{"source": "q_product", "where": [{"op": "eq", "field": "id", "value": 2}], "order": []}') AS number_on_int;
SELECT pgapp.count('{"source": "q_product", "where": [{"op": "range", "field": "price", "from": 5, "to": 19.5}], "order": []}') AS number_range;
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [{"op": "eq", "field": "id", "value": 2.5}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [{"op": "eq", "field": "id", "value": true}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [{"op": "eq", "field": "name", "value": null}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [{"op": "in", "field": "id", "values": [1, {"a": 1}]}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [{"op": "range", "field": "price"}], "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": "true", "order": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [], "order": [], "limit": 1}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.count('{"source": "q_product", "where": [], "order": [{"field": "sku", "dir": "asc", "nulls": "last"}]}') $$);
-- builders read the value they are given the same way
SELECT * FROM pg_temp.show($$ SELECT pgapp.sort_by('{"source": "q_product", "where": [{"op": "eq", "field": "name"}], "order": []}', 'id') $$);
-- check_query: the value itself when it is well formed
SELECT pgapp.check_query(pgapp.sort_by(pgapp.filter_by(pgapp.from('q_product'), 'id', 1), 'name')) -> 'order' AS checked;
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_query('{"source": "q_product", "where": [{"op": "eq", "field": "id", "value": [1]}], "order": []}') $$);
-- the kept plans of this backend, capped by pgapp.query_cache_memory
SELECT entries > 0 AS has_plans, bytes > 0 AS has_bytes, bytes <= max_bytes AS under_cap, max_entries, max_bytes
  FROM pgapp.query_cache_stats();
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_scope('q_product', 'evil', 'true); DROP TABLE q_product; --') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_scope('q_product', 'evil', 'true FROM pg_authid') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_scope('q_product', 'evil', 'nope = 1') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_scope('q_product', 'evil', 'price') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_stat('q_product', 'evil', '1; SELECT 2') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_stat('q_product', '', '1') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.scope(pgapp.from('q_product'), 'archived') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.with_stats(pgapp.from('q_product'), ARRAY['review_count', 'sales']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.preload(pgapp.from('q_product'), ARRAY['owner']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.preload(pgapp.from('q_active'), ARRAY['maker']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.all('{"source": "q_product", "where": [], "order": [], "scopes": ["active) OR (true"]}') $$);
SELECT count(*) AS products_still_there FROM q_product;

-- whitelists and scopes are read again after any change, even within one statement
DO $$
DECLARE q pgapp.query := pgapp.scope(pgapp.from('q_product'), 'active');
BEGIN
    RAISE NOTICE 'active: %', pgapp.count(pgapp.sort_by(q, 'price'));
    PERFORM pgapp.allow_sort('q_product', ARRAY['name']);
    PERFORM pgapp.define_scope('q_product', 'active', 'status = ''draft''');
    BEGIN
        PERFORM pgapp.count(q);
        PERFORM pgapp.sort_by(q, 'price');
        RAISE NOTICE 'price still sortable';
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE NOTICE 'price no longer sortable: %', SQLERRM;
    END;
    RAISE NOTICE 'active is now draft: %', pgapp.count(q);
    PERFORM pgapp.allow_sort('q_product', ARRAY['name', 'price', 'released', 'id']);
    PERFORM pgapp.define_scope('q_product', 'active', 'status = ''active''');
    RAISE NOTICE 'active again, sortable by price again: %', pgapp.count(pgapp.sort_by(q, 'price'));
END
$$;

-- privileges: sort whitelists are for pgapp_admin and the table owner
CREATE ROLE q_reader;
GRANT SELECT ON q_product TO q_reader;
SET ROLE q_reader;
SELECT * FROM pg_temp.show($$ SELECT pgapp.allow_sort('q_product', ARRAY['sku']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_scope('q_product', 'mine', 'true') $$);
SELECT pgapp.count(pgapp.sort_by(pgapp.from('q_product'), 'name')) AS reader_can_query;
RESET ROLE;

-- the relations cache follows foreign keys added and dropped in this
-- session (its relcache callback comes through the module registry)
CREATE TABLE q_tag (id int PRIMARY KEY, product_id int NOT NULL);
INSERT INTO q_tag VALUES (1, 1), (2, 1), (3, 2);
SELECT * FROM pg_temp.show($$ SELECT pgapp.preload(pgapp.from('q_product'), ARRAY['q_tag']) $$);
ALTER TABLE q_tag ADD CONSTRAINT q_tag_product FOREIGN KEY (product_id) REFERENCES q_product;
SELECT jsonb_array_length(r->'q_tag') AS tags
  FROM jsonb_array_elements(pgapp.all(pgapp.sort_by(pgapp.filter_by(
         pgapp.preload(pgapp.from('q_product'), ARRAY['q_tag']), 'id', ARRAY[1, 2]), 'id'))) AS r;
ALTER TABLE q_tag DROP CONSTRAINT q_tag_product;
SELECT * FROM pg_temp.show($$ SELECT pgapp.preload(pgapp.from('q_product'), ARRAY['q_tag']) $$);
DROP TABLE q_tag;

-- columns of a domain type: filters compare in the domain, ranges and
-- search go by its base type, and a value must pass the domain's check
CREATE DOMAIN q_money AS numeric(8,2) CHECK (VALUE >= 0);
CREATE DOMAIN q_label AS text;
CREATE TABLE q_priced (id int PRIMARY KEY, amount q_money NOT NULL, label q_label);
INSERT INTO q_priced VALUES (1, 5, 'five'), (2, 10, 'ten'), (3, 20, 'twenty');
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_priced'), 'amount', 6, 20)) AS in_range,
       pgapp.count(pgapp.filter_by(pgapp.from('q_priced'), 'amount', 10)) AS equal,
       pgapp.count(pgapp.search(pgapp.from('q_priced'), 'T', ARRAY['label'])) AS found;
SELECT * FROM pg_temp.show($$ SELECT pgapp.filter_by(pgapp.from('q_priced'), 'amount', -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.search(pgapp.from('q_priced'), 'x', ARRAY['amount']) $$);
DROP TABLE q_priced;
DROP DOMAIN q_money;
DROP DOMAIN q_label;

DROP VIEW q_active;
DELETE FROM pgapp.sort_allowed WHERE source = 'q_product'::regclass;
DELETE FROM pgapp.query_expression WHERE source = 'q_product'::regclass;
DROP TABLE q_review, q_product, q_maker;
DROP EXTENSION pg_stat_statements;
DROP TYPE q_status;
DROP ROLE q_reader;

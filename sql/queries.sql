--
-- queries: pgapp.query builders and executors (filters, search, sort,
-- paginate, to_sql) and the injection attempts they must refuse.
--
\set ECHO none
\i test/regress_helpers.sql
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
SET pgapp.max_page_size = 2;
SELECT * FROM pg_temp.show($$ SELECT pgapp.paginate(pgapp.from('q_product'), 1, 3) $$);
RESET pgapp.max_page_size;

-- to_sql: identifiers quoted, values as parameters
SELECT pgapp.to_sql(pgapp.sort_by(pgapp.search(pgapp.filter_range(pgapp.filter_by(
           pgapp.from('q_product'), 'status', ARRAY['active', 'draft']), 'released', '2024-01-01'::date, NULL::date),
           '50%', ARRAY['name', 'sku']), 'price', 'desc'));

-- views work as sources too
CREATE VIEW q_active AS SELECT * FROM q_product WHERE status = 'active';
SELECT pgapp.count(pgapp.filter_range(pgapp.from('q_active'), 'price', 10, NULL::numeric)) AS active_from_10;

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
SELECT count(*) AS products_still_there FROM q_product;

-- privileges: sort whitelists are for pgapp_admin and the table owner
CREATE ROLE q_reader;
GRANT SELECT ON q_product TO q_reader;
SET ROLE q_reader;
SELECT * FROM pg_temp.show($$ SELECT pgapp.allow_sort('q_product', ARRAY['sku']) $$);
SELECT pgapp.count(pgapp.sort_by(pgapp.from('q_product'), 'name')) AS reader_can_query;
RESET ROLE;

DROP VIEW q_active;
DELETE FROM pgapp.sort_allowed WHERE source = 'q_product'::regclass;
DROP TABLE q_product;
DROP TYPE q_status;
DROP ROLE q_reader;

-- bench/multi/check.sql: the two create_order functions do the same thing.
-- Prints one "name|t" line per check; run.sh measures nothing if any is "f".
\set items '''[{"product_id": 700, "quantity": 2}, {"product_id": 5, "quantity": 1}, {"product_id": 400, "quantity": 3}]'''
\set card '''{"card": "4242424242424242"}'''

-- The same order through each, rolled back: the same items, prices, total,
-- payment, and the same stock left.
BEGIN;
SELECT jsonb_build_object(
         'items', (SELECT jsonb_agg(i - 'id' - 'order_id') FROM jsonb_array_elements(r -> 'changes' -> 'create_items' -> 'rows') AS i),
         'count', r -> 'changes' -> 'create_items' -> 'count',
         'total', r -> 'changes' -> 'calculate_total' -> 'total',
         'paid', (r -> 'changes' -> 'process_payment') - 'id' - 'order_id',
         'steps', (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(r -> 'changes') AS k)) AS m
  FROM bench.create_order(1, :items, :card) AS r \gset
SELECT jsonb_object_agg(id, stock) AS m_stock, (SELECT total FROM bench.orders) AS m_total FROM bench.product WHERE id IN (5, 400, 700) \gset
ROLLBACK;
BEGIN;
SELECT jsonb_build_object(
         'items', (SELECT jsonb_agg(i - 'id' - 'order_id') FROM jsonb_array_elements(r -> 'changes' -> 'create_items' -> 'rows') AS i),
         'count', r -> 'changes' -> 'create_items' -> 'count',
         'total', r -> 'changes' -> 'calculate_total' -> 'total',
         'paid', (r -> 'changes' -> 'process_payment') - 'id' - 'order_id',
         'steps', (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(r -> 'changes') AS k)) AS h
  FROM bench.create_order_hand(1, :items, :card) AS r \gset
SELECT jsonb_object_agg(id, stock) AS h_stock, (SELECT total FROM bench.orders) AS h_total FROM bench.product WHERE id IN (5, 400, 700) \gset
ROLLBACK;
\pset format unaligned
\pset tuples_only on
SELECT 'same order', :'m'::jsonb = :'h'::jsonb AND :'m'::jsonb -> 'total' IS NOT NULL;
SELECT 'same stock and total left', :'m_stock'::jsonb = :'h_stock'::jsonb AND :'m_total'::numeric = :'h_total'::numeric
       AND (:'m_stock'::jsonb ->> '700')::bigint = 1000000000 - 2;

-- A declined card and an unknown product fail the same way (SQLSTATE) and
-- leave nothing behind.
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
SELECT 'declined card: PT402 both',
       pg_temp.outcome(format('SELECT bench.create_order(1, %L, %L)', :items, '{"card": "4000000000000002"}')) = 'PT402'
   AND pg_temp.outcome(format('SELECT bench.create_order_hand(1, %L, %L)', :items, '{"card": "4000000000000002"}')) = 'PT402';
SELECT 'unknown product: PT409 both',
       pg_temp.outcome(format('SELECT bench.create_order(1, %L, %L)', '[{"product_id": 5000, "quantity": 1}]', :card)) = 'PT409'
   AND pg_temp.outcome(format('SELECT bench.create_order_hand(1, %L, %L)', '[{"product_id": 5000, "quantity": 1}]', :card)) = 'PT409';
SELECT 'nothing left behind', (SELECT count(*) FROM bench.orders) + (SELECT count(*) FROM bench.order_item)
       + (SELECT count(*) FROM bench.payment) = 0
   AND (SELECT sum(stock) FROM bench.product) = 999::bigint * 1000000000;

-- The ten inserts: the same ten rows either way.
BEGIN;
SELECT (SELECT jsonb_agg(v - 'id' ORDER BY k) FROM jsonb_each(bench.ten_multi(7) -> 'changes') AS e (k, v)) AS tm \gset
SELECT (SELECT jsonb_agg(v - 'id' ORDER BY k) FROM jsonb_each(bench.ten_plpgsql(7) -> 'changes') AS e (k, v)) AS tp \gset
SELECT (SELECT jsonb_agg(v - 'id' ORDER BY k) FROM jsonb_each(bench.ten_changesets(7) -> 'changes') AS e (k, v)) AS tc \gset
SELECT (SELECT jsonb_agg((v -> 'rows' -> 0) - 'id' ORDER BY k) FROM jsonb_each(bench.ten_multi_rows(7) -> 'changes') AS e (k, v)) AS tr \gset
SELECT 'ten inserts: same rows', :'tm'::jsonb = :'tp'::jsonb AND :'tm'::jsonb = :'tc'::jsonb AND :'tm'::jsonb = :'tr'::jsonb
       AND jsonb_array_length(:'tm'::jsonb) = 10 AND (SELECT count(*) FROM bench.t) = 40;
ROLLBACK;

\set c random(1, 10000)
WITH o AS (INSERT INTO bench_order (customer_id, total) VALUES (:c, 19.99) RETURNING id, customer_id, total)
SELECT pg_logical_emit_message(true, 'pgapp', jsonb_build_object('id', o.id, 'customer_id', o.customer_id, 'total', o.total, 'note', 'a payload of about two hundred bytes, like a small order summary')::text) FROM o;

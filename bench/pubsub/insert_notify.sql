\set c random(1, 10000)
WITH o AS (INSERT INTO bench_order (customer_id, total) VALUES (:c, 19.99) RETURNING id, customer_id, total)
SELECT pg_notify('bench_orders', json_build_object('topic', 'bench_orders', 'event', 'created', 'payload', json_build_object('id', o.id, 'customer_id', o.customer_id, 'total', o.total, 'note', 'a payload of about two hundred bytes, like a small order summary'), 'id', '00000000-0000-7000-8000-000000000000')::text) FROM o;

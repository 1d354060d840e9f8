\set c random(1, 10000)
BEGIN;
INSERT INTO bench_order (customer_id, total) VALUES (:c, 19.99);
SELECT pgapp.broadcast('bench_orders', 'created', jsonb_build_object('customer_id', :c::int, 'total', 19.99, 'note', 'a payload of about two hundred bytes, like a small order summary'), 'outbox');
COMMIT;

\set c random(1, 10000)
BEGIN;
INSERT INTO bench_order (customer_id, total) VALUES (:c, 19.99);
SELECT pg_notify('bench_orders', '{"topic": "bench_orders", "event": "created", "payload": {"customer_id": ' || :c::int || ', "total": 19.99, "note": "a payload of about two hundred bytes, like a small order summary"}, "id": "00000000-0000-7000-8000-000000000000"}');
COMMIT;

\set c random(1, 10000)
INSERT INTO bench_order (customer_id, total) VALUES (:c, 19.99);

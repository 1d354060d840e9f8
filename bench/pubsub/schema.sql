-- bench/pubsub/schema.sql: the table every writer variant inserts into.
CREATE EXTENSION IF NOT EXISTS pgapp;
CREATE TABLE bench_order (
    id          bigserial PRIMARY KEY,
    customer_id int NOT NULL,
    total       numeric(10, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- the same table with its changes broadcast by pgapp.broadcast_changes (outbox mode)
CREATE TABLE bench_order_live (LIKE bench_order INCLUDING ALL);
SELECT pgapp.broadcast_changes('bench_order_live', 'bench_orders');
-- the floor of the outbox's write cost: the same INSERT plus a second row in
-- a plain table of the outbox's shape, in one transaction, nothing delivered
CREATE TABLE bench_second_row (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id uuid, topic text,
                               event text, payload jsonb, at timestamptz);

--
-- example_shop: examples/shop.sql, orders made by one pgapp.multi.  A failed
-- order must leave nothing behind: the stock, orders, items, payments and
-- confirmation jobs are compared before and after (pg_temp.state), and the
-- absence of an orders:new message is shown by a marker broadcast after it
-- (notifications arrive in commit order).  The confirmation job is run by
-- the "emails" queue's workers (example_jobs made the queue); waiting is a
-- bounded poll.  No order id is printed: ids depend on the failures before.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
-- (quiet: schema "api" exists already)
SET client_min_messages = warning;
\i examples/shop.sql
RESET client_min_messages;
\i test/helpers/listener_helpers.sql
-- what a failed order must not change
CREATE FUNCTION pg_temp.state() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'stock', (SELECT jsonb_object_agg(name, stock) FROM shop.products),
        'orders', (SELECT count(*) FROM shop.orders),
        'items', (SELECT count(*) FROM shop.order_items),
        'payments', (SELECT count(*) FROM shop.payments),
        'jobs', (SELECT count(*) FROM pgapp.job WHERE worker = 'shop.confirmation_worker'::regproc))
$$;
-- an answer without what varies (the order's id and time, the payment's reference)
CREATE FUNCTION pg_temp.shown(r jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT r #- '{order,id}' #- '{order,created_at}' #- '{order,payment,reference}'
$$;
-- wait until the job is finished (at most 10 s)
CREATE FUNCTION pg_temp.wait_job(jid bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    FOR i IN 1..1000 LOOP
        SELECT state INTO st FROM pgapp.job WHERE id = jid;
        IF st IN ('completed', 'discarded', 'cancelled', 'retryable') THEN RETURN st; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'job % still % after 10 s', jid, st;
END $$;
\set ECHO all

SELECT id, name, price, stock FROM shop.products ORDER BY id;
SELECT key, value FROM shop.settings;
SELECT pg_temp.listen('orders:new') AS channel;

---------------------------------------------------------------------------
-- An order: 201-shaped answer, every table written, announced, confirmed
---------------------------------------------------------------------------

-- the same product twice is one item; items come back in product-id order
SELECT pg_temp.shown(r) AS answer,
       r -> 'order' -> 'payment' ->> 'reference' ~ '^test_[0-9a-f]{16}$' AS reference_ok
  FROM shop.create_order(7, '[{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": 2},
                              {"product_id": 1, "quantity": 1}]', '{"card": "4242424242424242"}') AS r;
SELECT o.id AS order_id FROM shop.orders AS o ORDER BY o.id DESC LIMIT 1 \gset
SELECT name, stock FROM shop.products ORDER BY id;
SELECT user_id, status, total FROM shop.orders WHERE id = :order_id;
SELECT p.name, i.quantity, i.unit_price FROM shop.order_items AS i JOIN shop.products AS p ON p.id = i.product_id
 WHERE i.order_id = :order_id ORDER BY p.id;
SELECT amount, card_last4, status FROM shop.payments WHERE order_id = :order_id;
-- orders:new "created", at commit
SELECT pg_temp.wait_for('created');
SELECT (message -> 'payload' ->> 'id')::bigint = :order_id AS same_order FROM got;
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at']);
-- the confirmation job, run by the emails queue: one email for the order
SELECT id AS job_id FROM pgapp.job WHERE worker = 'shop.confirmation_worker'::regproc
   AND (args ->> 'order_id')::bigint = :order_id \gset
SELECT queue, args ->> 'order_id' = :'order_id' AS for_order, max_attempts, discard_after, pg_temp.wait_job(:job_id) AS state
  FROM pgapp.job WHERE id = :job_id;
SELECT job_id = :job_id AS by_job, user_id, subject = format('Your order #%s', :order_id) AS subject_ok, body
  FROM shop.order_email WHERE order_id = :order_id;
-- a price change later does not change what was ordered
UPDATE shop.products SET price = 14.00 WHERE name = 'Coffee mug';
SELECT i.unit_price FROM shop.order_items AS i JOIN shop.products AS p ON p.id = i.product_id
 WHERE i.order_id = :order_id AND p.name = 'Coffee mug';

---------------------------------------------------------------------------
-- Failures: the answer says why, and nothing is left behind
---------------------------------------------------------------------------

SELECT pg_temp.state() AS before \gset
-- out of stock: one print left, two wanted
SELECT shop.create_order(7, '[{"product_id": 4, "quantity": 2}]', '{"card": "4242424242424242"}');
-- with another product that is in stock: that one's stock is not taken either
SELECT shop.create_order(7, '[{"product_id": 1, "quantity": 1}, {"product_id": 4, "quantity": 2}]',
                         '{"card": "4242424242424242"}');
SELECT pg_temp.state() = :'before' AS unchanged;
-- a declined card: the stock taken and the order written are undone
SELECT shop.create_order(7, '[{"product_id": 1, "quantity": 1}]', '{"card": "4000000000000002"}');
SELECT pg_temp.state() = :'before' AS unchanged;
-- a gateway that raises: payment_failed, the gateway's error in the server log only
SELECT shop.create_order(7, '[{"product_id": 1, "quantity": 1}]', '{"card": "4000000000000119"}');
SELECT pg_temp.state() = :'before' AS unchanged;
-- an unknown product
SELECT shop.create_order(7, '[{"product_id": 1, "quantity": 1}, {"product_id": 999, "quantity": 1}]',
                         '{"card": "4242424242424242"}');
SELECT pg_temp.state() = :'before' AS unchanged;
-- none of them announced an order: the marker is the first message
SELECT pgapp.broadcast('orders:new', 'marker', '{}');
SELECT pg_temp.wait_for('marker');
SELECT * FROM pg_temp.received();

-- invalid input: every field's errors at once, before anything is locked
SELECT shop.create_order(NULL, '[{"product_id": "1", "quantity": 0}, 5, {"product_id": 1, "quantity": 1.5}]',
                         '{"card": "4242"}');
SELECT shop.create_order(0, NULL, NULL);
SELECT shop.create_order(7, '[]', '{"card": 4242424242424242}');
SELECT shop.create_order(7, '{"product_id": 1, "quantity": 1}', '{"card": "4242424242424242"}');
SELECT shop.create_order(7, (SELECT jsonb_agg(jsonb_build_object('product_id', 1, 'quantity', 1))
                               FROM generate_series(1, 101)), '{"card": "4242424242424242"}');
SELECT shop.create_order(7, '[{"product_id": 1, "quantity": 1001}]', '{"card": "4242424242424242"}');
SELECT pg_temp.state() = :'before' AS unchanged;

-- update_stock checks its own decrement (validate_stock's locks make this
-- unreachable from create_order): two prints wanted, one left
SELECT shop.update_stock('{}', '{"items": [{"product_id": 4, "name": "Signed print", "quantity": 2}]}');

-- the last print: sold once, then out of stock
SELECT r #>> '{order,status}' AS status, r #> '{order,items}' AS items
  FROM shop.create_order(8, '[{"product_id": 4, "quantity": 1}]', '{"card": "5555555555554444"}') AS r;
SELECT shop.create_order(9, '[{"product_id": 4, "quantity": 1}]', '{"card": "4242424242424242"}');
SELECT stock FROM shop.products WHERE id = 4;
SELECT pg_temp.wait_for('created');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at']);

---------------------------------------------------------------------------
-- The gateway is the function shop.settings names
---------------------------------------------------------------------------

SELECT pg_temp.state() AS before \gset
CREATE FUNCTION public.broke_gateway(amount numeric, payment jsonb) RETURNS jsonb
LANGUAGE sql RETURN jsonb_build_object('status', 'declined', 'reason', format('insufficient_funds for %s', amount));
UPDATE shop.settings SET value = 'public.broke_gateway' WHERE key = 'payment_gateway';
SELECT shop.create_order(7, '[{"product_id": 3, "quantity": 2}]', '{"card": "4242424242424242"}');
-- a gateway that does not exist is a bug, not a payment failure: raised
-- (PT500, the failure in DETAIL; terse: the DETAIL has ids)
UPDATE shop.settings SET value = 'public.no_such_gateway' WHERE key = 'payment_gateway';
\set VERBOSITY terse
SELECT shop.create_order(7, '[{"product_id": 3, "quantity": 2}]', '{"card": "4242424242424242"}');
\set VERBOSITY default
UPDATE shop.settings SET value = 'shop.test_gateway' WHERE key = 'payment_gateway';
DROP FUNCTION public.broke_gateway(numeric, jsonb);
SELECT pg_temp.state() = :'before' AS unchanged;

---------------------------------------------------------------------------
-- Inside an outer transaction: a failed order undoes only itself
---------------------------------------------------------------------------

BEGIN;
SELECT r #>> '{order,status}' AS status FROM shop.create_order(10, '[{"product_id": 3, "quantity": 5}]',
                                                                '{"card": "4242424242424242"}') AS r;
SELECT shop.create_order(10, '[{"product_id": 3, "quantity": 5}]', '{"card": "4000000000000002"}');
COMMIT;
SELECT o.status, o.total, i.quantity FROM shop.orders AS o JOIN shop.order_items AS i ON i.order_id = o.id
 WHERE o.user_id = 10;
SELECT stock FROM shop.products WHERE id = 3;
SELECT pg_temp.wait_for('created');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at']);

---------------------------------------------------------------------------
-- PostgREST: POST /rpc/create_order as app_user
---------------------------------------------------------------------------

-- 201 and the order
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set,
       set_config('request.path', '/rpc/create_order', true) IS NOT NULL AS path_set,
       set_config('request.headers', '{"content-type": "application/json"}', true) IS NOT NULL AS headers_set,
       set_config('request.jwt.claims', '{"role": "app_user", "sub": "42"}', true) IS NOT NULL AS claims_set;
SELECT pg_temp.shown(r) AS body, current_setting('response.status', true) AS status
  FROM api.create_order(user_id => 42, items => '[{"product_id": 3, "quantity": 1}]',
                        payment => '{"card": "4242424242424242"}') AS r;
COMMIT;
-- 409 out of stock
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.create_order(user_id => 42, items => '[{"product_id": 4, "quantity": 1}]',
                        payment => '{"card": "4242424242424242"}') AS body,
       current_setting('response.status', true) AS status;
COMMIT;
-- 402 declined
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.create_order(user_id => 42, items => '[{"product_id": 3, "quantity": 1}]',
                        payment => '{"card": "4000000000000002"}') AS body,
       current_setting('response.status', true) AS status;
COMMIT;
-- 502 the gateway failed
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.create_order(user_id => 42, items => '[{"product_id": 3, "quantity": 1}]',
                        payment => '{"card": "4000000000000119"}') AS body,
       current_setting('response.status', true) AS status;
COMMIT;
-- 422 invalid input, and an unknown product
BEGIN;
SELECT set_config('role', 'app_user', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT api.create_order(user_id => 42, items => '[{"product_id": 3}]', payment => '{}') AS body,
       current_setting('response.status', true) AS status;
SELECT api.create_order(user_id => 42, items => '[{"product_id": 999, "quantity": 1}]',
                        payment => '{"card": "4242424242424242"}') AS body,
       current_setting('response.status', true) AS status;
COMMIT;
-- one order written (user 42's first), one announced
SELECT count(*) AS orders_of_42 FROM shop.orders WHERE user_id = 42;
SELECT pg_temp.wait_for('created');
SELECT * FROM pg_temp.received(ARRAY['id', 'created_at']);

-- app_user reads the products but writes only through create_order; anon may not order
BEGIN;
SET LOCAL ROLE app_user;
SELECT count(*) AS products FROM shop.products;
SELECT * FROM pg_temp.show($$INSERT INTO shop.orders (user_id) VALUES (42)$$);
SELECT * FROM pg_temp.show($$UPDATE shop.products SET stock = 1000$$);
SELECT * FROM pg_temp.show($$SELECT shop.validate_stock('{}', '{"items": []}')$$);
ROLLBACK;
BEGIN;
SET LOCAL ROLE anon;
SELECT count(*) AS products FROM shop.products;
SELECT * FROM pg_temp.show($$SELECT api.create_order(42, '[{"product_id": 3, "quantity": 1}]', '{"card": "4242424242424242"}')$$);
ROLLBACK;

-- stock never went below zero, and every paid order has its payment and email job
SELECT name, stock FROM shop.products ORDER BY id;
SELECT count(*) AS paid_orders,
       count(*) FILTER (WHERE EXISTS (SELECT FROM shop.payments AS p WHERE p.order_id = o.id AND p.amount = o.total)) AS with_payment,
       count(*) FILTER (WHERE EXISTS (SELECT FROM pgapp.job AS j WHERE j.worker = 'shop.confirmation_worker'::regproc
                                                                    AND (j.args ->> 'order_id')::bigint = o.id)) AS with_job
  FROM shop.orders AS o WHERE o.status = 'paid';
SELECT count(*) AS orders_not_paid FROM shop.orders WHERE status <> 'paid';

SELECT dblink_disconnect('listener');

-- examples/shop.sql: orders that never oversell, built on pgapp.multi (the
-- recipe "Multi-style order creation"): one call checks and locks the
-- stock, writes the order and its items, takes the stock, charges the card
-- and, in the same transaction, announces the order and enqueues its
-- confirmation email.
--
--   POST /rpc/create_order  {"user_id": 7, "items": [{"product_id": 1, "quantity": 2}],
--                            "payment": {"card": "4242424242424242"}}
--
--   201  {"ok": true, "order": {"id", "user_id", "status": "paid", "total", "created_at",
--                               "items": [{"product_id", "name", "quantity", "unit_price"}],
--                               "payment": {"amount", "card_last4", "reference"}}}
--   409  {"error": "out_of_stock", "product": "Coffee mug"}
--   402  {"error": "payment_failed", "reason": "card_declined"}
--   502  {"error": "payment_failed", "reason": "gateway_error"}    (the gateway raised)
--   422  {"errors": {"items": ["product 99 does not exist"]}}     (and other invalid input)
--
-- shop.create_order(user_id, items, payment) is the same call from SQL (it
-- returns those bodies and sets response.status only inside a PostgREST
-- request).  The steps, run by pgapp.transact in one subtransaction: a
-- failing step undoes every earlier one, the broadcast and the job included,
-- and the body says why (Phoenix's `with` chain over Ecto.Multi's result):
--
--   validate_stock   lock the products FOR UPDATE in id order, check stock, read prices
--   create_order     insert the order (a changeset: user_id required), status pending
--   create_items     insert the items, unit_price as validate_stock read it ($ref)
--   update_stock     stock = stock - quantity where stock >= quantity, row count checked
--   calculate_total  the order's total from its items
--   process_payment  charge the total through the gateway, record the payment
--   confirm_order    mark the order paid, broadcast orders:new, enqueue the email job
--
-- Never oversold: the products are locked before their stock is read, and
-- always in product-id order, so two orders with the same products in
-- different orders queue behind each other instead of deadlocking (40P01).
-- In READ COMMITTED the second of two orders for the last unit waits for the
-- first, then reads the stock the first left: out_of_stock, never a
-- serialization failure and never negative stock.
--
-- The gateway is pluggable: shop.settings' "payment_gateway" names a
-- function (amount numeric, payment jsonb) -> jsonb answering {"status":
-- "approved", "reference"} or {"status": "declined", "reason"}.  The test
-- double shop.test_gateway declines card 4000000000000002 and raises for
-- 4000000000000119 (a gateway that fails); every other card is approved.
--
-- The confirmation email: a job on the queue "emails" (created here when
-- examples/jobs.sql has not: concurrency 5, as there) run by
-- shop.confirmation_worker, which renders it into shop.order_email for a
-- mail relay.  orders:new is also the topic of examples/dashboard.sql's feed:
-- the shop's "created" payload is {"id", "user_id", "total", "items",
-- "created_at"} (user_id where the dashboard's has "customer").
--
-- Roles: "app_user" may order (shop.create_order is SECURITY DEFINER: the
-- steps write as the role that loaded this file, which owns the tables);
-- "anon" and "app_user" may read the products.  Load into a database that
-- has CREATE EXTENSION pgapp (scripts/run does, in one transaction).

CREATE SCHEMA shop;
CREATE SCHEMA IF NOT EXISTS api;

---------------------------------------------------------------------------
-- Tables
---------------------------------------------------------------------------

CREATE TABLE shop.products (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name   text NOT NULL UNIQUE,
    price  numeric(12,2) NOT NULL CHECK (price >= 0),
    stock  integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE shop.orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL,
    -- pending only inside create_order's transaction: a failed order leaves no row
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'cancelled')),
    total       numeric(12,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON shop.orders (user_id, created_at);

-- unit_price: the product's price when the order was made
CREATE TABLE shop.order_items (
    order_id    bigint NOT NULL REFERENCES shop.orders ON DELETE CASCADE,
    product_id  bigint NOT NULL REFERENCES shop.products,
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(12,2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product ON shop.order_items (product_id);

CREATE TABLE shop.payments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES shop.orders ON DELETE CASCADE,
    amount      numeric(12,2) NOT NULL CHECK (amount >= 0),
    card_last4  text NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    status      text NOT NULL CHECK (status IN ('approved', 'refunded')),
    reference   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order ON shop.payments (order_id);

-- payment_gateway: the function that charges a card
CREATE TABLE shop.settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

-- What the mail relay sends (and marks sent_at): one row per order.
CREATE TABLE shop.order_email (
    order_id    bigint PRIMARY KEY REFERENCES shop.orders ON DELETE CASCADE,
    job_id      bigint NOT NULL,
    user_id     bigint NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

---------------------------------------------------------------------------
-- The payment gateway
---------------------------------------------------------------------------

-- The test double: a declined card, a card whose charge fails, and approval.
CREATE FUNCTION shop.test_gateway(amount numeric, payment jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CASE payment ->> 'card'
    WHEN '4000000000000002' THEN
        RETURN jsonb_build_object('status', 'declined', 'reason', 'card_declined');
    WHEN '4000000000000119' THEN
        RAISE EXCEPTION 'the payment gateway could not process the charge (simulated processing error)';
    ELSE
        RETURN jsonb_build_object('status', 'approved',
                                  'reference', 'test_' || left(replace(gen_random_uuid()::text, '-', ''), 16));
    END CASE;
END
$$;

COMMENT ON FUNCTION shop.test_gateway(numeric, jsonb) IS
'Payment gateway test double: declines card 4000000000000002, raises for 4000000000000119, approves the rest';

INSERT INTO shop.settings (key, value) VALUES ('payment_gateway', 'shop.test_gateway');

---------------------------------------------------------------------------
-- The steps: fn(changes jsonb, args jsonb) -> {"ok": v} | {"error": v[, "status": n]}
---------------------------------------------------------------------------

-- args.items: [{"product_id", "quantity"}] in product-id order, one entry
-- per product.  Locks those products (in id order), then answers the items
-- with their names and current prices, or the first product short of stock.
CREATE FUNCTION shop.validate_stock(changes jsonb, args jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted jsonb := args -> 'items';
    locked jsonb := '{}';
    p record;
    missing text[];
    result jsonb := '[]';
    it record;
BEGIN
    -- the lock order is the ORDER BY: rows are locked as the sort returns them
    FOR p IN SELECT pr.id, pr.name, pr.price, pr.stock
               FROM shop.products AS pr
              WHERE pr.id IN (SELECT (e ->> 'product_id')::bigint FROM jsonb_array_elements(wanted) AS e)
              ORDER BY pr.id
                FOR UPDATE
    LOOP
        locked := locked || jsonb_build_object(p.id::text, to_jsonb(p));
    END LOOP;
    SELECT array_agg(format('product %s does not exist', e ->> 'product_id') ORDER BY (e ->> 'product_id')::bigint)
      INTO missing
      FROM jsonb_array_elements(wanted) AS e
     WHERE NOT locked ? (e ->> 'product_id');
    IF missing IS NOT NULL THEN
        RETURN jsonb_build_object('error', jsonb_build_object('items', to_jsonb(missing)), 'status', 422);
    END IF;
    FOR it IN SELECT (e ->> 'product_id')::bigint AS product_id, (e ->> 'quantity')::integer AS quantity
                FROM jsonb_array_elements(wanted) AS e
               ORDER BY 1
    LOOP
        IF (locked -> it.product_id::text ->> 'stock')::integer < it.quantity THEN
            RETURN jsonb_build_object('error', jsonb_build_object('error', 'out_of_stock',
                                                                  'product', locked -> it.product_id::text ->> 'name'),
                                      'status', 409);
        END IF;
        result := result || jsonb_build_array(jsonb_build_object(
            'product_id', it.product_id,
            'name', locked -> it.product_id::text -> 'name',
            'quantity', it.quantity,
            'unit_price', locked -> it.product_id::text -> 'price'));
    END LOOP;
    RETURN jsonb_build_object('ok', jsonb_build_object('items', result));
END
$$;

-- args.items: validate_stock's items.  Takes the stock; a product that no
-- longer has enough is out_of_stock (cannot happen while validate_stock's
-- locks are held, but the decrement is checked where it is made).
CREATE FUNCTION shop.update_stock(changes jsonb, args jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    it record;
    left_now integer;
    stocks jsonb := '[]';
BEGIN
    FOR it IN SELECT * FROM jsonb_to_recordset(args -> 'items') AS x(product_id bigint, name text, quantity integer)
               ORDER BY product_id
    LOOP
        UPDATE shop.products AS pr SET stock = pr.stock - it.quantity
         WHERE pr.id = it.product_id AND pr.stock >= it.quantity
        RETURNING pr.stock INTO left_now;
        IF NOT FOUND THEN
            RETURN jsonb_build_object('error', jsonb_build_object('error', 'out_of_stock', 'product', it.name),
                                      'status', 409);
        END IF;
        stocks := stocks || jsonb_build_array(jsonb_build_object('product_id', it.product_id, 'stock', left_now));
    END LOOP;
    RETURN jsonb_build_object('ok', jsonb_build_object('products', stocks));
END
$$;

-- args.order_id: sets the order's total from its items.
CREATE FUNCTION shop.calculate_total(changes jsonb, args jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE shop.orders AS o
       SET total = (SELECT coalesce(sum(i.quantity * i.unit_price), 0)
                      FROM shop.order_items AS i WHERE i.order_id = o.id)
     WHERE o.id = (args ->> 'order_id')::bigint
    RETURNING jsonb_build_object('ok', jsonb_build_object('total', o.total))
$$;

-- args: order_id, amount, payment.  Charges through the configured gateway
-- and records the approved payment; a declined card is payment_failed (402),
-- and so is a gateway that raises (502, its error written to the server log
-- only).  Errors that are not the gateway's to answer (a deadlock, a
-- cancel, a shutdown) go on up.
CREATE FUNCTION shop.process_payment(changes jsonb, args jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gateway_name text;
    gateway regprocedure;
    call text;
    charge numeric := (args ->> 'amount')::numeric;
    answer jsonb;
    code text;
    msg text;
    paid jsonb;
BEGIN
    SELECT s.value INTO gateway_name FROM shop.settings AS s WHERE s.key = 'payment_gateway';
    gateway := to_regprocedure(gateway_name || '(numeric, jsonb)');
    IF gateway IS NULL THEN
        RAISE EXCEPTION 'payment gateway % does not exist', coalesce(quote_literal(gateway_name), 'NULL')
            USING ERRCODE = 'undefined_function',
                  HINT = 'Set shop.settings'' payment_gateway to a function (amount numeric, payment jsonb) returning jsonb.';
    END IF;
    SELECT format('SELECT %I.%I($1, $2)', n.nspname, p.proname) INTO call
      FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
     WHERE p.oid = gateway;
    BEGIN
        EXECUTE call INTO answer USING charge, args -> 'payment';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF left(code, 2) IN ('40', '53', '57', '58', 'XX') THEN
            RAISE;
        END IF;
        RAISE LOG 'payment gateway % failed for order %: % (SQLSTATE %)', gateway_name, args ->> 'order_id', msg, code;
        RETURN '{"error": {"error": "payment_failed", "reason": "gateway_error"}, "status": 502}';
    END;
    CASE answer ->> 'status'
    WHEN 'approved' THEN
        INSERT INTO shop.payments AS p (order_id, amount, card_last4, status, reference)
        VALUES ((args ->> 'order_id')::bigint, charge, right(args -> 'payment' ->> 'card', 4), 'approved',
                answer ->> 'reference')
        RETURNING jsonb_build_object('amount', p.amount, 'card_last4', p.card_last4, 'reference', p.reference)
             INTO paid;
        RETURN jsonb_build_object('ok', paid);
    WHEN 'declined' THEN
        RETURN jsonb_build_object('error', jsonb_build_object('error', 'payment_failed',
                                                              'reason', coalesce(answer ->> 'reason', 'declined')),
                                  'status', 402);
    ELSE
        RAISE EXCEPTION 'payment gateway % answered %', gateway_name, coalesce(answer::text, 'NULL')
            USING ERRCODE = 'external_routine_exception';
    END CASE;
END
$$;

-- args.order_id: the order is paid; announce it and enqueue its email.
-- Both happen at commit, and not at all if the transaction rolls back.
CREATE FUNCTION shop.confirm_order(changes jsonb, args jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o shop.orders;
    job_id bigint;
BEGIN
    UPDATE shop.orders AS x SET status = 'paid' WHERE x.id = (args ->> 'order_id')::bigint RETURNING * INTO o;
    PERFORM pgapp.broadcast('orders:new', 'created', jsonb_build_object(
        'id', o.id, 'user_id', o.user_id, 'total', o.total,
        'items', (SELECT count(*) FROM shop.order_items AS i WHERE i.order_id = o.id),
        'created_at', o.created_at));
    job_id := pgapp.enqueue('emails', 'shop.confirmation_worker', jsonb_build_object('order_id', o.id),
                            max_attempts => 5, discard_after => interval '24 hours');
    RETURN jsonb_build_object('ok', jsonb_build_object('order', to_jsonb(o), 'job_id', job_id));
END
$$;

---------------------------------------------------------------------------
-- The confirmation email (a job)
---------------------------------------------------------------------------

CREATE FUNCTION shop.confirmation_worker(args jsonb, job pgapp.job_info)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o shop.orders;
    lines text;
BEGIN
    SELECT * INTO o FROM shop.orders AS x WHERE x.id = (args ->> 'order_id')::bigint;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % does not exist', args ->> 'order_id' USING ERRCODE = 'undefined_object';
    END IF;
    SELECT string_agg(format('%s x %s at %s', i.quantity, p.name, i.unit_price), E'\n' ORDER BY p.name)
      INTO lines
      FROM shop.order_items AS i JOIN shop.products AS p ON p.id = i.product_id
     WHERE i.order_id = o.id;
    -- run again (pgapp.retry_job), it writes nothing new
    INSERT INTO shop.order_email (order_id, job_id, user_id, subject, body)
    VALUES (o.id, job.id, o.user_id, format('Your order #%s', o.id),
            format(E'Thank you for your order.\n\n%s\n\nTotal: %s', lines, o.total))
    ON CONFLICT (order_id) DO NOTHING;
    RETURN jsonb_build_object('order_id', o.id);
END
$$;

COMMENT ON FUNCTION shop.confirmation_worker(jsonb, pgapp.job_info) IS
'Job: render an order''s confirmation email into shop.order_email (args: order_id)';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pgapp.queue WHERE name = 'emails') THEN
        PERFORM pgapp.create_queue('emails', 5);
    END IF;
END
$$;

---------------------------------------------------------------------------
-- The API
---------------------------------------------------------------------------

-- What is wrong with the items and the payment, before anything is locked:
-- field-keyed messages for the create_order changeset.
CREATE FUNCTION shop.input_errors(items jsonb, payment jsonb)
RETURNS TABLE (field text, message text)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'items', 'can''t be blank'
     WHERE items IS NULL OR items = 'null' OR items = '[]'
    UNION ALL
    SELECT 'items', 'must be an array of at most 100 items'
     WHERE items IS NOT NULL AND items <> 'null'
       AND (jsonb_typeof(items) <> 'array' OR jsonb_array_length(items) > 100)
    UNION ALL
    SELECT 'items', m
      FROM (SELECT e, i
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(items) = 'array' AND jsonb_array_length(items) <= 100
                                             THEN items ELSE '[]' END) WITH ORDINALITY AS a(e, i)) AS x,
           LATERAL (SELECT format('item %s: product_id must be a positive integer', x.i)
                     WHERE jsonb_typeof(x.e -> 'product_id') IS DISTINCT FROM 'number'
                        OR x.e ->> 'product_id' !~ '^[1-9][0-9]{0,17}$'
                    UNION ALL
                    SELECT format('item %s: quantity must be an integer from 1 to 1000', x.i)
                     WHERE jsonb_typeof(x.e -> 'quantity') IS DISTINCT FROM 'number'
                        OR x.e ->> 'quantity' !~ '^[1-9][0-9]{0,3}$'
                        OR (x.e ->> 'quantity')::integer > 1000) AS v(m)
    UNION ALL
    SELECT 'payment', 'card must be a string of 12 to 19 digits'
     WHERE jsonb_typeof(payment -> 'card') IS DISTINCT FROM 'string'
        OR payment ->> 'card' !~ '^[0-9]{12,19}$'
$$;

/*
 * Create an order: the multi of the steps above, run by pgapp.transact in
 * return mode, its failure answered as the recipe's `with` chain does.
 */
CREATE FUNCTION shop.create_order(user_id bigint, items jsonb, payment jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    in_request boolean := nullif(current_setting('request.method', true), '') IS NOT NULL;
    cs pgapp.changeset;
    err record;
    wanted jsonb;
    item_rows jsonb;
    m pgapp.multi;
    r jsonb;
    answer jsonb;
    status integer;
BEGIN
    -- the order's changeset carries the input's errors too, so that they are
    -- answered together, before anything is locked or written
    cs := pgapp.validate_number(
            pgapp.validate_required(
              pgapp.cast('shop.orders', NULL,
                         jsonb_build_object('user_id', user_id, 'status', 'pending'),
                         ARRAY['user_id', 'status']),
              ARRAY['user_id']),
            'user_id', greater_than => 0);
    -- (add_error puts each message first, as Ecto does: added last to first)
    FOR err IN SELECT * FROM shop.input_errors(items, payment) WITH ORDINALITY AS e ORDER BY e.ordinality DESC LOOP
        cs := pgapp.add_error(cs, err.field, err.message);
    END LOOP;
    IF NOT pgapp.is_valid(cs) THEN
        IF in_request THEN
            PERFORM set_config('response.status', '422', true);
        END IF;
        RETURN jsonb_build_object('errors', pgapp.errors(cs));
    END IF;

    -- one entry per product, in product-id order (the order the rows are locked in)
    SELECT jsonb_agg(jsonb_build_object('product_id', pid, 'quantity', q) ORDER BY pid)
      INTO wanted
      FROM (SELECT (e ->> 'product_id')::bigint AS pid, sum((e ->> 'quantity')::integer) AS q
              FROM jsonb_array_elements(items) AS e GROUP BY 1) AS g;
    -- item i's unit price is what validate_stock read for its i-th item
    SELECT jsonb_agg(jsonb_build_object(
               'order_id', jsonb_build_object('$ref', 'create_order.id'),
               'product_id', w -> 'product_id',
               'quantity', w -> 'quantity',
               'unit_price', jsonb_build_object('$ref', format('validate_stock.items.%s.unit_price', i - 1)))
             ORDER BY i)
      INTO item_rows
      FROM jsonb_array_elements(wanted) WITH ORDINALITY AS a(w, i);

    m := pgapp.multi();
    m := pgapp.multi_run(m, 'validate_stock', 'shop.validate_stock(jsonb, jsonb)',
                         jsonb_build_object('items', wanted));
    m := pgapp.multi_insert(m, 'create_order', cs);
    m := pgapp.multi_insert_all(m, 'create_items', 'shop.order_items', item_rows);
    m := pgapp.multi_run(m, 'update_stock', 'shop.update_stock(jsonb, jsonb)',
                         '{"items": {"$ref": "validate_stock.items"}}');
    m := pgapp.multi_run(m, 'calculate_total', 'shop.calculate_total(jsonb, jsonb)',
                         '{"order_id": {"$ref": "create_order.id"}}');
    m := pgapp.multi_run(m, 'process_payment', 'shop.process_payment(jsonb, jsonb)',
                         jsonb_build_object('order_id', jsonb_build_object('$ref', 'create_order.id'),
                                            'amount', jsonb_build_object('$ref', 'calculate_total.total'),
                                            -- the client's JSON, as it is: a "$ref" in it stays data
                                            'payment', jsonb_build_object('$literal', payment)));
    m := pgapp.multi_run(m, 'confirm_order', 'shop.confirm_order(jsonb, jsonb)',
                         '{"order_id": {"$ref": "create_order.id"}}');

    r := pgapp.transact(m, error_mode => 'return');

    IF (r ->> 'ok')::boolean THEN
        status := 201;
        answer := jsonb_build_object('ok', true, 'order',
            (r -> 'changes' -> 'confirm_order' -> 'order')
            || jsonb_build_object('items', r -> 'changes' -> 'validate_stock' -> 'items',
                                  'payment', r -> 'changes' -> 'process_payment'));
    ELSIF jsonb_typeof(r -> 'error') = 'object' AND r -> 'error' ? 'error' THEN
        -- out_of_stock (409), payment_failed (402, 502): the step's own answer
        status := (r ->> 'status')::integer;
        answer := r -> 'error';
    ELSIF (r ->> 'status')::integer = 422 THEN
        status := 422;
        answer := jsonb_build_object('errors', r -> 'error');
    ELSE
        -- a step failed in a way the recipe has no answer for: a bug, raised
        -- (without changes_so_far, which a PostgREST client would see)
        RAISE EXCEPTION 'order not created: step "%" failed', r ->> 'failed_step'
            USING ERRCODE = 'PT' || coalesce(r ->> 'status', '500'),
                  DETAIL = (r - 'changes_so_far')::text;
    END IF;
    IF in_request THEN
        PERFORM set_config('response.status', status::text, true);
    END IF;
    RETURN answer;
END
$$;

COMMENT ON FUNCTION shop.create_order(bigint, jsonb, jsonb) IS
'Create an order: lock and check the stock, write the order and its items, take the stock, charge the card, announce the order and enqueue its confirmation, all or nothing';

CREATE FUNCTION api.create_order(user_id bigint, items jsonb, payment jsonb)
RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT shop.create_order(user_id, items, payment)
$$;

COMMENT ON FUNCTION api.create_order(bigint, jsonb, jsonb) IS
'Create an order
Items [{"product_id", "quantity"}] and a payment {"card"}: 201 and the paid order, 409 out_of_stock,
402 or 502 payment_failed, 422 invalid input.';

---------------------------------------------------------------------------
-- Roles: app_user orders, anon and app_user read the products
---------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        CREATE ROLE app_user NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION shop.test_gateway(numeric, jsonb), shop.validate_stock(jsonb, jsonb),
    shop.update_stock(jsonb, jsonb), shop.calculate_total(jsonb, jsonb), shop.process_payment(jsonb, jsonb),
    shop.confirm_order(jsonb, jsonb), shop.confirmation_worker(jsonb, pgapp.job_info),
    shop.input_errors(jsonb, jsonb), shop.create_order(bigint, jsonb, jsonb),
    api.create_order(bigint, jsonb, jsonb)
    FROM PUBLIC;
GRANT USAGE ON SCHEMA api, shop TO anon, app_user;
GRANT EXECUTE ON FUNCTION shop.create_order(bigint, jsonb, jsonb), api.create_order(bigint, jsonb, jsonb) TO app_user;
GRANT SELECT ON shop.products TO anon, app_user;

---------------------------------------------------------------------------
-- Seed
---------------------------------------------------------------------------

INSERT INTO shop.products (name, price, stock) VALUES
    ('Coffee mug', 12.50, 100),
    ('Teapot', 35.00, 20),
    ('Espresso cup', 8.00, 50),
    ('Signed print', 120.00, 1);

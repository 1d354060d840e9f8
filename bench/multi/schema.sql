-- bench/multi/schema.sql: what bench/multi/run.sh measures, both ways.
--
-- (a) transact's overhead: ten single-row inserts into bench.t
--       ten_multi(n)      a multi of ten multi_insert steps (changesets built
--                         by pgapp.cast), built and run by pgapp.transact
--       ten_plpgsql(n)    the same ten INSERTs in PL/pgSQL, returning the ten
--                         rows as JSON as transact does
--       ten_plpgsql_void  the ten INSERTs alone: the floor
--       ten_changesets(n) the same ten changesets written one by one with
--                         pgapp.insert in PL/pgSQL
--       ten_multi_rows(n) a multi of ten multi_insert_all steps of one row
--                         each, no changesets: transact's own cost on plain
--                         inserts
-- (b) an order of three products, the shop recipe's create_order:
--       create_order(user_id, items, payment)       built on pgapp.multi:
--         validate_stock  run: lock the products (FOR UPDATE, in id order),
--                         check stock, capture the unit prices
--         create_order    insert (a changeset)
--         create_items    insert_all, order_id and unit_price as $refs
--         update_stock    run: decrement where stock >= quantity, row count checked
--         calculate_total run: sum the items, write the order's total
--         process_payment run: a test gateway (declines 4000000000000002),
--                         then the payment row
--       create_order_hand(user_id, items, payment)  the same order written by
--         hand in one PL/pgSQL function with SELECT ... FOR UPDATE, as a careful
--         developer would: same statements, same checks, same result, raising
--         (so the whole transaction is undone) where the multi's step fails.
-- Products are found by their primary key (id = ANY (ids)): plans that scan
-- the table would make both sides slower and hide the multi's own cost.
CREATE EXTENSION IF NOT EXISTS pgapp;
CREATE SCHEMA bench;

-- (a)
CREATE TABLE bench.t (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    n     integer NOT NULL,
    label text NOT NULL
);

CREATE FUNCTION bench.ten_multi(n integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m pgapp.multi := pgapp.multi();
BEGIN
    FOR k IN 1 .. 10 LOOP
        m := pgapp.multi_insert(m, 'row' || k,
                 pgapp.cast('bench.t', NULL, jsonb_build_object('n', n, 'label', 'row ' || k),
                            ARRAY['n', 'label']));
    END LOOP;
    RETURN pgapp.transact(m);
END
$$;

CREATE FUNCTION bench.ten_plpgsql(n integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    changes jsonb := '{}';
    r jsonb;
BEGIN
    FOR k IN 1 .. 10 LOOP
        INSERT INTO bench.t (n, label) VALUES (ten_plpgsql.n, 'row ' || k) RETURNING to_jsonb(t) INTO r;
        changes := changes || jsonb_build_object('row' || k, r);
    END LOOP;
    RETURN jsonb_build_object('ok', true, 'changes', changes);
END
$$;

-- The same ten changesets written one by one with pgapp.insert, their rows
-- collected as transact collects them: what the multi adds to the same
-- inserts is transact's own cost (building, checking, the subtransaction).
CREATE FUNCTION bench.ten_changesets(n integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    changes jsonb := '{}';
BEGIN
    FOR k IN 1 .. 10 LOOP
        changes := changes || jsonb_build_object('row' || k,
            pgapp.insert(pgapp.cast('bench.t', NULL, jsonb_build_object('n', n, 'label', 'row ' || k),
                                    ARRAY['n', 'label'])));
    END LOOP;
    RETURN jsonb_build_object('ok', true, 'changes', changes);
END
$$;

-- Ten insert_all steps of one row each: the multi of plain inserts, the
-- same rows as ten_plpgsql writes, no changeset built or checked.
CREATE FUNCTION bench.ten_multi_rows(n integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m pgapp.multi := pgapp.multi();
BEGIN
    FOR k IN 1 .. 10 LOOP
        m := pgapp.multi_insert_all(m, 'row' || k, 'bench.t',
                 jsonb_build_array(jsonb_build_object('n', n, 'label', 'row ' || k)));
    END LOOP;
    RETURN pgapp.transact(m);
END
$$;

CREATE FUNCTION bench.ten_plpgsql_void(n integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR k IN 1 .. 10 LOOP
        INSERT INTO bench.t (n, label) VALUES (ten_plpgsql_void.n, 'row ' || k);
    END LOOP;
END
$$;

-- (b)
CREATE TABLE bench.product (
    id    bigint PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10,2) NOT NULL,
    stock integer NOT NULL CHECK (stock >= 0)
);
CREATE TABLE bench.orders (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL,
    status     text NOT NULL DEFAULT 'pending',
    total      numeric(12,2),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench.order_item (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES bench.orders,
    product_id bigint NOT NULL REFERENCES bench.product,
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10,2) NOT NULL
);
CREATE INDEX ON bench.order_item (order_id);
CREATE TABLE bench.payment (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES bench.orders,
    amount   numeric(12,2) NOT NULL,
    card     text NOT NULL,
    status   text NOT NULL
);
-- 999 products in three bands of 333 (an order takes one of each), stock
-- that no run uses up
INSERT INTO bench.product
SELECT i, 'product ' || i, 1 + (i % 50) + 0.99, 1000000000 FROM generate_series(1, 999) AS i;
-- statistics now, as a live shop has them (without them the planner scans
-- the 999 rows for id = ANY (ids) until autovacuum analyzes the table)
ANALYZE bench.product;

-- Lock the order's products in id order (so that two orders with the same
-- products in another order never deadlock), check stock, and return the
-- items in the order given, each with its unit price now.
CREATE FUNCTION bench.validate_stock(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY(SELECT (e ->> 'product_id')::bigint FROM jsonb_array_elements(args -> 'items') AS e);
    items jsonb;
    short text;
BEGIN
    PERFORM 1 FROM bench.product WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    SELECT jsonb_agg(jsonb_build_object('product_id', (e ->> 'product_id')::bigint,
                                        'quantity', (e ->> 'quantity')::integer,
                                        'unit_price', p.price) ORDER BY o),
           min(coalesce(p.name, e ->> 'product_id')) FILTER (WHERE p.id IS NULL OR p.stock < (e ->> 'quantity')::integer)
      INTO items, short
      FROM jsonb_array_elements(args -> 'items') WITH ORDINALITY AS x (e, o)
      LEFT JOIN (SELECT * FROM bench.product WHERE id = ANY (ids)) AS p ON p.id = (e ->> 'product_id')::bigint;
    IF short IS NOT NULL THEN
        RETURN jsonb_build_object('error', jsonb_build_object('error', 'out_of_stock', 'product', short),
                                  'status', 409);
    END IF;
    RETURN jsonb_build_object('ok', jsonb_build_object('items', items));
END
$$;

-- Take the stock where there is enough (validate_stock holds the locks); a
-- short product fails the step.
CREATE FUNCTION bench.update_stock(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY(SELECT (e ->> 'product_id')::bigint FROM jsonb_array_elements(args -> 'items') AS e);
    n integer;
BEGIN
    UPDATE bench.product AS p SET stock = p.stock - x.q
      FROM (SELECT (e ->> 'product_id')::bigint AS id, (e ->> 'quantity')::integer AS q
              FROM jsonb_array_elements(args -> 'items') AS e) AS x
     WHERE p.id = ANY (ids) AND p.id = x.id AND p.stock >= x.q;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> jsonb_array_length(args -> 'items') THEN
        RETURN '{"error": {"error": "out_of_stock"}, "status": 409}';
    END IF;
    RETURN jsonb_build_object('ok', jsonb_build_object('updated', n));
END
$$;

CREATE FUNCTION bench.calculate_total(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    order_total numeric;
BEGIN
    SELECT sum((i ->> 'quantity')::integer * (i ->> 'unit_price')::numeric) INTO order_total
      FROM jsonb_array_elements(changes -> 'create_items' -> 'rows') AS i;
    UPDATE bench.orders SET total = order_total WHERE id = (changes -> 'create_order' ->> 'id')::bigint;
    RETURN jsonb_build_object('ok', jsonb_build_object('total', order_total));
END
$$;

CREATE FUNCTION bench.process_payment(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    paid jsonb;
BEGIN
    IF args ->> 'card' = '4000000000000002' THEN
        RETURN '{"error": {"error": "payment_failed", "reason": "card_declined"}, "status": 402}';
    END IF;
    INSERT INTO bench.payment (order_id, amount, card, status)
    VALUES ((args ->> 'order_id')::bigint, (args ->> 'amount')::numeric, right(args ->> 'card', 4), 'paid')
    RETURNING to_jsonb(payment) INTO paid;
    RETURN jsonb_build_object('ok', paid);
END
$$;

CREATE FUNCTION bench.create_order(user_id bigint, items jsonb, payment jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m pgapp.multi := pgapp.multi();
    item_rows jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_object('order_id', '{"$ref": "create_order.id"}'::jsonb,
                                        'product_id', e -> 'product_id',
                                        'quantity', e -> 'quantity',
                                        'unit_price', jsonb_build_object('$ref', format('validate_stock.items.%s.unit_price', o - 1)))
                     ORDER BY o)
      INTO item_rows
      FROM jsonb_array_elements(items) WITH ORDINALITY AS x (e, o);
    m := pgapp.multi_run(m, 'validate_stock', 'bench.validate_stock(jsonb, jsonb)', jsonb_build_object('items', items));
    m := pgapp.multi_insert(m, 'create_order',
             pgapp.cast('bench.orders', NULL, jsonb_build_object('user_id', user_id, 'status', 'pending'),
                        ARRAY['user_id', 'status']));
    m := pgapp.multi_insert_all(m, 'create_items', 'bench.order_item', item_rows);
    m := pgapp.multi_run(m, 'update_stock', 'bench.update_stock(jsonb, jsonb)', jsonb_build_object('items', items));
    m := pgapp.multi_run(m, 'calculate_total', 'bench.calculate_total(jsonb, jsonb)');
    m := pgapp.multi_run(m, 'process_payment', 'bench.process_payment(jsonb, jsonb)',
             jsonb_build_object('order_id', '{"$ref": "create_order.id"}'::jsonb,
                                'amount', '{"$ref": "calculate_total.total"}'::jsonb,
                                'card', payment -> 'card'));
    RETURN pgapp.transact(m);
END
$$;

-- The same order by hand: the same statements in one function, raising
-- PT409 / PT402 with the same bodies where the multi's steps fail.
CREATE FUNCTION bench.create_order_hand(user_id bigint, items jsonb, payment jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[] := ARRAY(SELECT (e ->> 'product_id')::bigint FROM jsonb_array_elements(items) AS e);
    priced jsonb;
    short text;
    ord jsonb;
    created jsonb;
    n integer;
    order_total numeric;
    paid jsonb;
BEGIN
    PERFORM 1 FROM bench.product WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    SELECT jsonb_agg(jsonb_build_object('product_id', (e ->> 'product_id')::bigint,
                                        'quantity', (e ->> 'quantity')::integer,
                                        'unit_price', p.price) ORDER BY o),
           min(coalesce(p.name, e ->> 'product_id')) FILTER (WHERE p.id IS NULL OR p.stock < (e ->> 'quantity')::integer)
      INTO priced, short
      FROM jsonb_array_elements(items) WITH ORDINALITY AS x (e, o)
      LEFT JOIN (SELECT * FROM bench.product WHERE id = ANY (ids)) AS p ON p.id = (e ->> 'product_id')::bigint;
    IF short IS NOT NULL THEN
        RAISE SQLSTATE 'PT409' USING MESSAGE = 'out of stock',
            DETAIL = jsonb_build_object('error', 'out_of_stock', 'product', short)::text;
    END IF;

    INSERT INTO bench.orders (user_id, status) VALUES (create_order_hand.user_id, 'pending')
    RETURNING to_jsonb(orders) INTO ord;

    WITH ins AS (
        INSERT INTO bench.order_item (order_id, product_id, quantity, unit_price)
        SELECT (ord ->> 'id')::bigint, (i ->> 'product_id')::bigint, (i ->> 'quantity')::integer,
               (i ->> 'unit_price')::numeric
          FROM jsonb_array_elements(priced) AS i
        RETURNING to_jsonb(order_item) AS r)
    SELECT jsonb_build_object('count', count(*), 'rows', jsonb_agg(r)) INTO created FROM ins;

    UPDATE bench.product AS p SET stock = p.stock - x.q
      FROM (SELECT (e ->> 'product_id')::bigint AS id, (e ->> 'quantity')::integer AS q
              FROM jsonb_array_elements(items) AS e) AS x
     WHERE p.id = ANY (ids) AND p.id = x.id AND p.stock >= x.q;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> jsonb_array_length(items) THEN
        RAISE SQLSTATE 'PT409' USING MESSAGE = 'out of stock', DETAIL = '{"error": "out_of_stock"}';
    END IF;

    SELECT sum((i ->> 'quantity')::integer * (i ->> 'unit_price')::numeric) INTO order_total
      FROM jsonb_array_elements(created -> 'rows') AS i;
    UPDATE bench.orders SET total = order_total WHERE id = (ord ->> 'id')::bigint;

    IF payment ->> 'card' = '4000000000000002' THEN
        RAISE SQLSTATE 'PT402' USING MESSAGE = 'payment failed',
            DETAIL = '{"error": "payment_failed", "reason": "card_declined"}';
    END IF;
    INSERT INTO bench.payment AS pay (order_id, amount, card, status)
    VALUES ((ord ->> 'id')::bigint, order_total, right(payment ->> 'card', 4), 'paid')
    RETURNING to_jsonb(pay) INTO paid;

    RETURN jsonb_build_object('ok', true, 'changes', jsonb_build_object(
        'validate_stock', jsonb_build_object('items', priced),
        'create_order', ord,
        'create_items', created,
        'update_stock', jsonb_build_object('updated', n),
        'calculate_total', jsonb_build_object('total', order_total),
        'process_payment', paid));
END
$$;

-- examples/catalog.sql: a product catalog listed the way the recipe composes it,
--   Product |> filter_by(:status) |> search(...) |> sort_by(...) |> paginate(...)
-- with scopes (active, published), stats (order_count, avg_rating) and
-- preloads (category, variants), served to PostgREST as
--
--   POST /rpc/list_products  {"status": "published", "q": "wid", "sort_by": "name", "page": 2}
--
-- Load into a database that has CREATE EXTENSION pgapp.

CREATE SCHEMA catalog;
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE catalog.category (
    id    int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL UNIQUE
);

CREATE TABLE catalog.product (
    id           int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    sku          text NOT NULL UNIQUE,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'retired')),
    is_active    boolean NOT NULL DEFAULT true,
    price        numeric(10,2) NOT NULL CHECK (price >= 0),
    category_id  int REFERENCES catalog.category,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX product_status_name ON catalog.product (status, name);
CREATE INDEX product_category ON catalog.product (category_id);

CREATE TABLE catalog.variant (
    id          int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  int NOT NULL REFERENCES catalog.product ON DELETE CASCADE,
    label       text NOT NULL,
    stock       int NOT NULL DEFAULT 0 CHECK (stock >= 0)
);
CREATE INDEX variant_product ON catalog.variant (product_id);

CREATE TABLE catalog.orders (
    id          int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    placed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog.order_item (
    id          int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    int NOT NULL REFERENCES catalog.orders ON DELETE CASCADE,
    product_id  int NOT NULL REFERENCES catalog.product,
    quantity    int NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10,2) NOT NULL
);
CREATE INDEX order_item_product ON catalog.order_item (product_id);

CREATE TABLE catalog.review (
    id          int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  int NOT NULL REFERENCES catalog.product ON DELETE CASCADE,
    rating      int NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body        text
);
CREATE INDEX review_product ON catalog.review (product_id);

-- What clients may name: scopes, stats, sortable fields.
SELECT pgapp.define_scope('catalog.product', 'active', 'is_active');
SELECT pgapp.define_scope('catalog.product', 'published', 'status = ''published''');
SELECT pgapp.define_stat('catalog.product', 'order_count',
    '(SELECT count(DISTINCT oi.order_id) FROM catalog.order_item oi WHERE oi.product_id = t.id)');
SELECT pgapp.define_stat('catalog.product', 'avg_rating',
    '(SELECT round(avg(r.rating), 2) FROM catalog.review r WHERE r.product_id = t.id)');
SELECT pgapp.allow_sort('catalog.product', ARRAY['name', 'price', 'created_at', 'id']);

/*
 * api.list_products(params): the recipe's pipe.  params (the JSON body):
 * status, category_id, price_from, price_to, q, active, sort_by, sort_dir,
 * page, page_size; unknown keys are ignored.
 */
CREATE FUNCTION api.list_products(params jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgapp.paginate(
             pgapp.sort_by(
               pgapp.sort_by(
                 pgapp.preload(
                   pgapp.with_stats(
                     pgapp.apply_params(pgapp.from('catalog.product'), params,
                       '{"status": "eq", "category_id": "eq", "price": "range",
                         "q": {"search": ["name", "sku"]}, "active": {"scope": "active"}}'),
                     ARRAY['order_count', 'avg_rating']),
                   ARRAY['category', 'variant']),
                 coalesce(params ->> 'sort_by', 'name'), coalesce(params ->> 'sort_dir', 'asc')),
               'id'),
             coalesce((params ->> 'page')::int, 1),
             coalesce((params ->> 'page_size')::int, 20))
$$;

COMMENT ON FUNCTION api.list_products(jsonb) IS
'List products
Filters by status, category, price range and activity; searches name and SKU; includes the
category, variants, order count and average rating of each product.';

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
REVOKE ALL ON FUNCTION api.list_products(jsonb) FROM PUBLIC;
GRANT USAGE ON SCHEMA api, catalog TO anon, app_user;
GRANT EXECUTE ON FUNCTION api.list_products(jsonb) TO anon, app_user;
GRANT SELECT ON ALL TABLES IN SCHEMA catalog TO anon, app_user;

-- Seed
INSERT INTO catalog.category (name) VALUES ('Tools'), ('Toys');
INSERT INTO catalog.product (name, sku, status, is_active, price, category_id) VALUES
    ('Widget', 'WID-1', 'published', true, 9.99, 1),
    ('Widget Pro', 'WID-2', 'published', true, 24.50, 1),
    ('Gadget', 'GAD-1', 'published', false, 15.00, 1),
    ('Wooden duck', 'TOY-1', 'draft', true, 7.25, 2),
    ('Kite', 'TOY-2', 'published', true, 19.00, 2);
INSERT INTO catalog.variant (product_id, label, stock) VALUES
    (1, 'small', 10), (1, 'large', 3), (2, 'standard', 0), (5, 'red', 4);
INSERT INTO catalog.orders DEFAULT VALUES;
INSERT INTO catalog.orders DEFAULT VALUES;
INSERT INTO catalog.order_item (order_id, product_id, quantity, unit_price) VALUES
    (1, 1, 2, 9.99), (1, 5, 1, 19.00), (2, 1, 1, 9.99);
INSERT INTO catalog.review (product_id, rating, body) VALUES
    (1, 5, 'Does the job'), (1, 4, NULL), (2, 3, 'Pricey'), (5, 5, 'Flies well');

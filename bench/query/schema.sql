-- bench/query/schema.sql: 1M products in 20 categories, 2 variants each.
CREATE EXTENSION IF NOT EXISTS pgapp;
CREATE TABLE category (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE product (
    id          int PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL,
    price       numeric(10,2) NOT NULL,
    category_id int NOT NULL REFERENCES category
);
CREATE TABLE variant (
    id          int PRIMARY KEY,
    product_id  int NOT NULL REFERENCES product,
    label       text NOT NULL
);
INSERT INTO category SELECT g, 'Category ' || g FROM generate_series(1, 20) AS g;
INSERT INTO product
SELECT g, 'Product ' || md5(g::text), (ARRAY['draft', 'published', 'published', 'retired'])[1 + g % 4],
       (g % 10000) / 100.0, 1 + g % 20
  FROM generate_series(1, 1000000) AS g;
INSERT INTO variant SELECT g, 1 + (g - 1) / 2, CASE WHEN g % 2 = 0 THEN 'large' ELSE 'small' END
  FROM generate_series(1, 2000000) AS g;
CREATE INDEX product_category_status_name ON product (category_id, status, name, id);
CREATE INDEX variant_product ON variant (product_id);
VACUUM ANALYZE category, product, variant;
SELECT pgapp.allow_sort('product', ARRAY['name', 'price', 'id']);

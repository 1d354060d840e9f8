--
-- example_catalog: examples/catalog.sql, the recipe's composed listing,
-- called the way PostgREST calls it.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i examples/catalog.sql
\set ECHO all

-- POST /rpc/list_products {"status": "published", "q": "wid", "sort_by": "price", "sort_dir": "desc"}
BEGIN READ ONLY;
SELECT set_config('role', 'anon', true) IS NOT NULL AS role_set,
       set_config('request.method', 'POST', true) IS NOT NULL AS method_set;
SELECT jsonb_pretty(api.list_products('{"status": "published", "q": "wid", "sort_by": "price", "sort_dir": "desc"}')
                    #- '{entries,0,created_at}' #- '{entries,1,created_at}');
COMMIT;

-- more of the same pipe: scopes from params, price range, pages
SELECT r -> 'total' AS total, jsonb_path_query_array(r -> 'entries', '$[*].name') AS names
  FROM api.list_products('{"active": true, "price_from": "8", "price_to": "20"}') AS r;
SELECT r - 'entries' AS meta, jsonb_path_query_array(r -> 'entries', '$[*].name') AS names
  FROM api.list_products('{"page": 2, "page_size": 2}') AS r;
SELECT jsonb_path_query_array(r -> 'entries', '$[*].category.name') AS categories
  FROM api.list_products('{"category_id": 2}') AS r;
-- unknown params are ignored; a bad one is a clear error
SELECT r -> 'total' AS total FROM api.list_products('{"color": "blue"}') AS r;
SELECT * FROM pg_temp.show($$ SELECT api.list_products('{"sort_by": "sku"}') $$);
-- an injection attempt in a value is a literal match: nothing found, nothing run
SELECT r -> 'total' AS total FROM api.list_products('{"status": "published; drop table catalog.product"}') AS r;
SELECT * FROM pg_temp.show($$ SELECT api.list_products('{"price_from": "cheap"}') $$);
SELECT count(*) AS products FROM catalog.product;

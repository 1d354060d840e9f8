-- one order of three products, one from each band of 333, listed out of id
-- order (so the lock order matters), 1..3 of each
\set p random(1, 333)
\set q1 random(1, 3)
\set q2 random(1, 3)
\set q3 random(1, 3)
\set u random(1, 10000)
SELECT bench.create_order(:u::bigint, jsonb_build_array(
    jsonb_build_object('product_id', :p::int + 666, 'quantity', :q1::int),
    jsonb_build_object('product_id', :p::int, 'quantity', :q2::int),
    jsonb_build_object('product_id', :p::int + 333, 'quantity', :q3::int)), '{"card": "4242424242424242"}');

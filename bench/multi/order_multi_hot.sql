-- the hot workload: every order has one of three hot products (ids 1..3,
-- stock that no run uses up) and two from the other bands, listed out of
-- id order: at 8 and 16 clients most orders queue for a product row lock
\set p random(4, 333)
\set h random(1, 3)
\set q1 random(1, 3)
\set q2 random(1, 3)
\set q3 random(1, 3)
\set u random(1, 10000)
SELECT bench.create_order(:u::bigint, jsonb_build_array(
    jsonb_build_object('product_id', :p::int + 666, 'quantity', :q1::int),
    jsonb_build_object('product_id', :h::int, 'quantity', :q2::int),
    jsonb_build_object('product_id', :p::int + 333, 'quantity', :q3::int)), '{"card": "4242424242424242"}');

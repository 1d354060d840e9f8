\set n random(1, 1000000)
SELECT bench.ten_multi_rows(:n::int);

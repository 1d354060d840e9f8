\set k random(1, 10000)
SELECT plpgsql_check_rate('user:' || :k, 1000000, 60);

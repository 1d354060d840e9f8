\set k random(1, 10000)
SELECT pgapp.check_rate('user:' || :k, 'bench');

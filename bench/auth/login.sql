\set n random(1, 32)
SELECT pgapp.login('bench' || :n || '@example.com', 'bench password 1');

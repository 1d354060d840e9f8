-- bench/changeset/insert_c.sql: pgbench, one valid task per transaction into task_c.
-- pgbench -M prepared binds variables as parameters, so each table has its own script.
\set g random(1, 10000000)
\set p random(0, 3)
\set d random(1, 60)
\set a random(1, 100)
INSERT INTO task_c (title, description, priority, due_date, assignee_id)
VALUES ('Task ' || :g || ': ' || substr(md5(:g::text), 1, 1 + :g % 32),
        CASE WHEN :g % 3 = 0 THEN 'Details for task ' || :g END,
        (ARRAY['low', 'medium', 'high', 'urgent']::task_priority[])[1 + :p],
        current_date + :d::int, :a);

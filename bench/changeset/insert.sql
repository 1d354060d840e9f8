-- pgbench: one valid row per transaction into :tbl (run.sh writes the table name in)
\set g random(1, 1000000)
INSERT INTO :tbl (title, priority, due_date, assignee_id)
VALUES ('Task number ' || :g, (ARRAY['low', 'medium', 'high', 'urgent'])[1 + :g % 4]::task_priority,
        current_date + 1 + :g % 30, 1 + :g % 100);

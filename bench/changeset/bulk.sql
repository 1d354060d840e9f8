-- bench/changeset/bulk.sql: the main measurement.  One INSERT ... SELECT of
-- :rows valid tasks into :tbl, timed by psql (\timing: client round trip
-- and commit included).  :fk false leaves assignee_id NULL, which skips the
-- foreign-key lookup.  run.sh: psql -v tbl=task_c -v rows=100000 -v fk=true -f bulk.sql
\timing on
INSERT INTO :"tbl" (title, description, priority, due_date, assignee_id)
SELECT 'Task ' || g || ': ' || substr(md5(g::text), 1, 1 + g % 32),
       CASE WHEN g % 3 = 0 THEN 'Details for task ' || g END,
       (ARRAY['low', 'medium', 'high', 'urgent']::task_priority[])[1 + g % 4],
       current_date + 1 + g % 60,
       CASE WHEN :fk THEN 1 + g % 100 END
  FROM generate_series(1, :rows) AS g;

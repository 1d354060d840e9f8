--
-- machines: status machines, the transition trigger and its log.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

CREATE TYPE sm_status AS ENUM ('todo', 'in_progress', 'done', 'cancelled');
CREATE TABLE sm_task (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title  text NOT NULL,
    status sm_status NOT NULL DEFAULT 'todo'
);
CREATE TABLE sm_order (
    id     int PRIMARY KEY,
    state  text
);

SELECT pgapp.define_machine('sm_status',
    '{"todo": ["in_progress", "done", "cancelled"],
      "in_progress": ["todo", "done", "cancelled"],
      "done": [],
      "cancelled": ["todo"]}',
    initial => ARRAY['todo']);
SELECT name, initial, owner::text = current_user AS mine FROM pgapp.machine;

SELECT pgapp.transition_allowed('sm_status', 'todo', 'done') AS todo_done,
       pgapp.transition_allowed('sm_status', 'done', 'todo') AS done_todo,
       pgapp.transition_allowed('sm_status', 'done', 'done') AS same_state,
       pgapp.transition_allowed('sm_status', NULL, 'todo') AS start_todo,
       pgapp.transition_allowed('sm_status', NULL, 'done') AS start_done;
SELECT pgapp.allowed_transitions('sm_status', 'todo') AS from_todo,
       pgapp.allowed_transitions('sm_status', 'done') AS from_done,
       pgapp.allowed_transitions('sm_status', NULL) AS initial;

---------------------------------------------------------------------------
-- enforce_transitions on an enum column, with the log
---------------------------------------------------------------------------
SELECT pgapp.enforce_transitions('sm_task', 'status', 'sm_status', log => true);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'sm_task'::regclass AND NOT tgisinternal ORDER BY 1;

INSERT INTO sm_task (title) VALUES ('first'), ('second');
SELECT * FROM pg_temp.show($$ INSERT INTO sm_task (title, status) VALUES ('born done', 'done') $$);
UPDATE sm_task SET status = 'in_progress' WHERE title = 'first';
UPDATE sm_task SET status = 'done' WHERE title = 'first';
SELECT * FROM pg_temp.show($$ UPDATE sm_task SET status = 'todo' WHERE title = 'first' $$);
SELECT * FROM pg_temp.show($$ UPDATE sm_task SET status = 'in_progress' WHERE title = 'first' $$);
-- no-op and unrelated updates pass and are not logged
UPDATE sm_task SET status = 'done' WHERE title = 'first';
UPDATE sm_task SET title = 'first!' WHERE title = 'first';
UPDATE sm_task SET status = 'cancelled' WHERE title = 'second';
UPDATE sm_task SET status = 'todo' WHERE title = 'second';
-- a statement touching several rows fails whole when one move is illegal
SELECT * FROM pg_temp.show($$ UPDATE sm_task SET status = 'todo' $$);
SELECT title, status FROM sm_task ORDER BY id;
SELECT tbl, row_key, col, machine, from_state, to_state, changed_by = current_user AS by_me
  FROM pgapp.transition_log ORDER BY id;
-- who may read an entry: pgapp.row_visible, the log's policy
SELECT pgapp.row_visible('sm_task', '{"id": 1}') AS whole_key,
       pgapp.row_visible('sm_task', '{"id": 1}', ARRAY['status']::name[]) AS with_column,
       pgapp.row_visible('sm_task', '{"id": 1}', ARRAY['nope']::name[]) AS unknown_column,
       pgapp.row_visible('sm_task', '{"id": 1, "x": 2}') AS not_the_key,
       pgapp.row_visible('sm_task', '{"title": 1}') AS other_column,
       pgapp.row_visible('sm_task', '[1]') AS not_an_object;
CREATE ROLE sm_reader;
GRANT SELECT (id, title) ON sm_task TO sm_reader;
SET ROLE sm_reader;
SELECT count(*) AS without_status_column FROM pgapp.transition_log;
RESET ROLE;
GRANT SELECT (status) ON sm_task TO sm_reader;
ALTER TABLE sm_task ENABLE ROW LEVEL SECURITY;
CREATE POLICY sm_first ON sm_task USING (title LIKE 'first%');
SET ROLE sm_reader;
SELECT row_key, from_state, to_state FROM pgapp.transition_log ORDER BY id;
RESET ROLE;
ALTER TABLE sm_task DISABLE ROW LEVEL SECURITY;
SET ROLE sm_reader;
SELECT count(*) AS without_rls FROM pgapp.transition_log;
RESET ROLE;
DROP POLICY sm_first ON sm_task;
-- a partitioned table: entries name the partition, readers of the parent see them
CREATE TABLE sm_part (id int, region text, state text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE sm_part_eu PARTITION OF sm_part FOR VALUES IN ('eu');
SELECT pgapp.enforce_transitions('sm_part', 'state', 'sm_status', log => true);
INSERT INTO sm_part VALUES (1, 'eu', 'todo');
UPDATE sm_part SET state = 'in_progress';
GRANT SELECT ON sm_part TO sm_reader;
ALTER TABLE sm_part ENABLE ROW LEVEL SECURITY;
CREATE POLICY sm_part_none ON sm_part USING (id > 1);
SET ROLE sm_reader;
SELECT count(*) AS hidden_by_parent_policy FROM pgapp.transition_log WHERE tbl = 'sm_part_eu'::regclass;
RESET ROLE;
DROP POLICY sm_part_none ON sm_part;
CREATE POLICY sm_part_all ON sm_part USING (true);
SET ROLE sm_reader;
SELECT tbl, row_key, from_state, to_state FROM pgapp.transition_log WHERE tbl = 'sm_part_eu'::regclass ORDER BY id;
RESET ROLE;
DELETE FROM pgapp.transition_log WHERE tbl = 'sm_part_eu'::regclass;
DROP TABLE sm_part;
REVOKE ALL ON sm_task FROM sm_reader;
DROP ROLE sm_reader;
-- a rolled-back change leaves no log entry
BEGIN;
UPDATE sm_task SET status = 'in_progress' WHERE title = 'second';
ROLLBACK;
SELECT count(*) AS log_entries FROM pgapp.transition_log;

-- raise-mode output as psql shows it
UPDATE sm_task SET status = 'todo' WHERE title = 'first!';

---------------------------------------------------------------------------
-- text columns; any initial state when none are declared
---------------------------------------------------------------------------
SELECT pgapp.define_machine('sm_order', '{"cart": ["paid"], "paid": ["shipped", "refunded"], "shipped": [], "refunded": []}');
SELECT pgapp.enforce_transitions('sm_order', 'state', 'sm_order');
INSERT INTO sm_order VALUES (1, 'cart'), (2, 'paid'), (3, NULL);
UPDATE sm_order SET state = 'paid' WHERE id = 1;
SELECT * FROM pg_temp.show($$ UPDATE sm_order SET state = 'cart' WHERE id = 2 $$);
SELECT * FROM pg_temp.show($$ UPDATE sm_order SET state = 'lost' WHERE id = 2 $$);
UPDATE sm_order SET state = 'cart' WHERE id = 3;
SELECT id, state FROM sm_order ORDER BY id;
-- without log => true there is no log trigger, and attaching again drops an old one
SELECT pgapp.enforce_transitions('sm_task', 'status', 'sm_status');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'sm_task'::regclass AND NOT tgisinternal ORDER BY 1;

-- a state echoed in an error is cut at 64 characters
ALTER TABLE sm_order DISABLE TRIGGER USER;
UPDATE sm_order SET state = repeat('x', 100000) WHERE id = 3;
ALTER TABLE sm_order ENABLE TRIGGER USER;
SELECT * FROM pg_temp.show($$ UPDATE sm_order SET state = 'shipped' WHERE id = 3 $$);
SELECT * FROM pg_temp.show(format($$ SELECT pgapp.allowed_transitions('sm_order', %L) $$, repeat('y', 100000)));
ALTER TABLE sm_order DISABLE TRIGGER USER;
UPDATE sm_order SET state = 'cart' WHERE id = 3;
ALTER TABLE sm_order ENABLE TRIGGER USER;

-- redefining a machine takes effect at once
SELECT pgapp.define_machine('sm_order', '{"cart": ["paid"], "paid": ["shipped", "refunded", "cart"], "shipped": [], "refunded": []}');
UPDATE sm_order SET state = 'cart' WHERE id = 2;

---------------------------------------------------------------------------
-- the enum must be covered: every label a state, every state a label
---------------------------------------------------------------------------
SELECT pgapp.define_machine('sm_partial', '{"todo": ["done"], "done": []}');
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions('sm_task', 'status', 'sm_partial') $$);
SELECT pgapp.define_machine('sm_extra',
    '{"todo": ["done"], "in_progress": [], "done": [], "cancelled": [], "archived": []}');
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions('sm_task', 'status', 'sm_extra') $$);

---------------------------------------------------------------------------
-- bad input
---------------------------------------------------------------------------
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '{"todo": ["doen"], "done": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '{"todo": "done", "done": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '{"todo": [1], "done": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '{}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '["todo"]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '{"todo": []}', ARRAY['doing']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', '{"todo": []}', ARRAY[]::text[]) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine(NULL, '{"todo": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('', '{"todo": []}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.define_machine('m', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transition_allowed('nope', 'a', 'b') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transition_allowed('sm_status', 'todo', 'lost') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.allowed_transitions('sm_status', 'lost') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions('sm_task', 'nope', 'sm_status') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions('sm_task', 'id', 'sm_status') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions('sm_task', 'status', 'nope') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions(NULL, 'status', 'sm_status') $$);
CREATE TABLE sm_nopk (state text);
SELECT * FROM pg_temp.show($$ SELECT pgapp.enforce_transitions('sm_nopk', 'state', 'sm_order', log => true) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_machine('sm_status') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.drop_machine('nope') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._transition_trigger() $$);
-- failures defined nothing
SELECT name FROM pgapp.machine ORDER BY name;

DROP TABLE sm_task, sm_order, sm_nopk;
SELECT pgapp.drop_machine('sm_status');
SELECT pgapp.drop_machine('sm_order');
SELECT pgapp.drop_machine('sm_partial');
SELECT pgapp.drop_machine('sm_extra');
DELETE FROM pgapp.transition_log;
DROP TYPE sm_status;

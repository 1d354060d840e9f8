-- test/pgtap/09_multi.sql
-- Multi (docs/multi.md): signatures, the result of every step kind, every
-- failure path with its status and body, add-time checks (22023, 22004),
-- $ref resolution, rollback of a failed multi's writes, jobs and stored
-- broadcasts (outbox broadcasts: test/regress/sql/multi.sql), savepoint
-- semantics and the error modes.
BEGIN;
SELECT plan(148);

---------------------------------------------------------------------------
-- Signatures and privileges
---------------------------------------------------------------------------
SELECT has_domain('pgapp', 'multi', 'pgapp.multi is a domain over jsonb');
SELECT is(pgapp.multi()::jsonb, '{"steps": []}'::jsonb, 'pgapp.multi() is an empty multi');
SELECT function_returns('pgapp', 'transact', ARRAY['pgapp.multi', 'text'], 'jsonb');
SELECT function_returns('pgapp', 'multi_names', ARRAY['pgapp.multi'], 'text[]');
SELECT volatility_is('pgapp', 'transact', ARRAY['pgapp.multi', 'text'], 'volatile');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc AS p
       WHERE p.pronamespace = 'pgapp'::regnamespace
         AND (p.proname LIKE 'multi%' OR p.proname = 'transact')
         AND (p.prosecdef OR p.provolatile = 'v' AND p.proname <> 'transact'
              OR NOT has_function_privilege('public', p.oid, 'EXECUTE'))$$,
    'every multi function runs as the caller, may be called by PUBLIC, and only transact writes');

---------------------------------------------------------------------------
-- Fixtures
---------------------------------------------------------------------------
CREATE TABLE tm_author (id int PRIMARY KEY, name text NOT NULL CONSTRAINT tm_author_name_key UNIQUE);
CREATE TABLE tm_post (
    id        int PRIMARY KEY,
    author_id int CONSTRAINT tm_post_author_fkey REFERENCES tm_author,
    title     text NOT NULL,
    n         int NOT NULL DEFAULT 0
);
-- fn(changes, args) for multi_run
CREATE FUNCTION tm_echo(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', jsonb_build_object('changes', changes, 'args', args)) $$;
CREATE FUNCTION tm_decline(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"error": {"reason": "declined"}}'::jsonb $$;
CREATE FUNCTION tm_pay(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"error": {"reason": "card_declined"}, "status": 402}'::jsonb $$;
-- returns args.value as it is (for the malformed results)
CREATE FUNCTION tm_return(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args -> 'value' $$;
-- raises args.code with message "boom", and args.detail as DETAIL when given
CREATE FUNCTION tm_raise(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF args ? 'detail' THEN
        RAISE EXCEPTION USING ERRCODE = args ->> 'code', MESSAGE = 'boom', DETAIL = args ->> 'detail';
    END IF;
    RAISE EXCEPTION USING ERRCODE = args ->> 'code', MESSAGE = 'boom';
END
$$;
-- a broadcast large enough to be stored in pgapp.message at once, and a job
CREATE FUNCTION tm_worker(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tm_side_effects(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgapp.broadcast('tm:big', args ->> 'tag', jsonb_build_object('blob', repeat('x', 9000)), mode => 'direct');
    PERFORM pgapp.enqueue('tm_q', 'tm_worker', jsonb_build_object('tag', args ->> 'tag'));
    RETURN '{"ok": "sent"}';
END
$$;
-- wrong shapes for multi_run / multi_merge
CREATE FUNCTION tm_one_arg(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE FUNCTION tm_text(changes jsonb, args jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
-- merge functions: steps decided from the changes so far
CREATE FUNCTION tm_merge(changes jsonb) RETURNS pgapp.multi
LANGUAGE sql AS $$
    SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'm1', changes -> 'a' -> 'k'), 'm2', '{"$ref": "m1"}')
$$;
CREATE FUNCTION tm_merge_clash(changes jsonb) RETURNS pgapp.multi
LANGUAGE sql AS $$ SELECT pgapp.multi_put(pgapp.multi(), 'a', '1') $$;
-- the error a statement raises: {"sqlstate", "message", "detail"} (detail as JSON)
CREATE FUNCTION tm_caught(query text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
    EXECUTE query;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN jsonb_build_object('sqlstate', st, 'message', msg, 'detail', det::jsonb);
END
$$;
DO $$ BEGIN PERFORM pgapp.create_queue('tm_q', 0); END $$;

---------------------------------------------------------------------------
-- Every step kind, succeeding
---------------------------------------------------------------------------
SELECT is(pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'author',
              pgapp.cast('tm_author', NULL, '{"id": 1, "name": "Ada"}', ARRAY['id', 'name'])), 'return'),
    '{"ok": true, "changes": {"author": {"id": 1, "name": "Ada"}}}',
    'insert: the inserted row under the step''s name');
SELECT is((SELECT name FROM tm_author WHERE id = 1), 'Ada', 'insert: the row is written');
SELECT is(pgapp.transact(pgapp.multi_update(pgapp.multi(), 'renamed',
              pgapp.cast('tm_author', '{"id": 1, "name": "Ada"}', '{"name": "Ada L."}', ARRAY['name'])), 'return'),
    '{"ok": true, "changes": {"renamed": {"id": 1, "name": "Ada L."}}}',
    'update: the updated row, found by the primary key of the changeset''s data');
INSERT INTO tm_author VALUES (2, 'Bob');
SELECT is(pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'gone', 'tm_author', '2'), 'return'),
    '{"ok": true, "changes": {"gone": {"id": 2, "name": "Bob"}}}',
    'delete: the deleted row');
SELECT is((SELECT count(*)::int FROM tm_author WHERE id = 2), 0, 'delete: the row is gone');
SELECT is(pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'posts', 'tm_post',
              '[{"id": 10, "author_id": 1, "title": "a"}, {"id": 11, "author_id": 1, "title": "b"}]'), 'return'),
    '{"ok": true, "changes": {"posts": {"count": 2, "rows": [{"id": 10, "author_id": 1, "title": "a", "n": 0},
                                                             {"id": 11, "author_id": 1, "title": "b", "n": 0}]}}}',
    'insert_all: {"count", "rows"} with the rows in the given order');
SELECT is(
    (SELECT jsonb_build_object('count', r -> 'changes' -> 'bumped' -> 'count',
                               'rows', (SELECT jsonb_agg(e ORDER BY (e ->> 'id')::int)
                                          FROM jsonb_array_elements(r -> 'changes' -> 'bumped' -> 'rows') AS e))
       FROM pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'bumped',
                pgapp.filter_by(pgapp.from('tm_post'), 'author_id', 1), '{"n": 5}'), 'return') AS r),
    '{"count": 2, "rows": [{"id": 10, "author_id": 1, "title": "a", "n": 5},
                           {"id": 11, "author_id": 1, "title": "b", "n": 5}]}',
    'update_all: {"count", "rows"} of the rows the query selects');
SELECT is(pgapp.transact(pgapp.multi_update_all(pgapp.multi(), 'none',
              pgapp.filter_by(pgapp.from('tm_post'), 'author_id', 99), '{"n": 1}'), 'return'),
    '{"ok": true, "changes": {"none": {"count": 0, "rows": []}}}',
    'update_all of no row: count 0, not a failure');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi_put(pgapp.multi(), 'p', '7'), 'echo',
              'tm_echo(jsonb,jsonb)', '{"x": 1}'), 'return'),
    '{"ok": true, "changes": {"p": 7, "echo": {"changes": {"p": 7}, "args": {"x": 1}}}}',
    'run: fn gets the changes so far and its args; its "ok" value is the result');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'echo', 'tm_echo(jsonb,jsonb)'), 'return'),
    '{"ok": true, "changes": {"echo": {"changes": {}, "args": {}}}}',
    'run: args default to {}');
SELECT is(pgapp.transact(pgapp.multi_put(pgapp.multi(), 'p', '{"a": [1, null, "x"]}'), 'return'),
    '{"ok": true, "changes": {"p": {"a": [1, null, "x"]}}}', 'put: the value');
SELECT is(pgapp.transact(pgapp.multi_append(pgapp.multi_put(pgapp.multi(), 'a', '1'),
                                            pgapp.multi_put(pgapp.multi(), 'b', '2')), 'return'),
    '{"ok": true, "changes": {"a": 1, "b": 2}}', 'append: both multis'' steps');
SELECT is(pgapp.multi_names(pgapp.multi_append(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'z', '1'), 'y', '1'),
                                               pgapp.multi_put(pgapp.multi(), 'x', '1'))),
    ARRAY['z', 'y', 'x'], 'multi_names: the step names, m1''s first, in order');
SELECT is(pgapp.multi_names(pgapp.multi()), '{}'::text[], 'multi_names of an empty multi');
SELECT is(pgapp.transact(pgapp.multi(), 'return'), '{"ok": true, "changes": {}}', 'an empty multi succeeds');
SELECT is(pgapp.transact(pgapp.multi_merge(pgapp.multi_put(pgapp.multi(), 'a', '{"k": 3}'), 'tm_merge(jsonb)'), 'return'),
    '{"ok": true, "changes": {"a": {"k": 3}, "m1": 3, "m2": 3}}',
    'merge: fn builds steps from the earlier results; they run next, under their own names');
SELECT is(pgapp.multi_names(pgapp.multi_put(pgapp.multi_merge(pgapp.multi_put(pgapp.multi(), 'a', '{"k": 3}'),
                                                              'tm_merge(jsonb)'), 'after', '1')),
    ARRAY['a', 'after'], 'merge adds no name of its own');

---------------------------------------------------------------------------
-- $ref in every place
---------------------------------------------------------------------------
SELECT is(pgapp.transact(
    pgapp.multi_insert(
        pgapp.multi_insert(pgapp.multi(), 'author', pgapp.cast('tm_author', NULL, '{"id": 3, "name": "Cy"}', ARRAY['id', 'name'])),
        'post', pgapp.cast('tm_post', NULL, '{"id": 30, "title": "t"}', ARRAY['id', 'author_id', 'title']),
        '{"author_id": {"$ref": "author.id"}}'), 'return') -> 'changes' -> 'post',
    '{"id": 30, "author_id": 3, "title": "t", "n": 0}', '$ref in a write step''s refs, cast to the column''s type');
SELECT is(pgapp.transact(
    pgapp.multi_insert_all(pgapp.multi_put(pgapp.multi(), 'who', '{"ids": [1, 3]}'), 'posts', 'tm_post',
        '[{"id": 31, "author_id": {"$ref": "who.ids.0"}, "title": "x"},
          {"id": 32, "author_id": {"$ref": "who.ids.1"}, "title": "y"}]'), 'return') -> 'changes' -> 'posts',
    '{"count": 2, "rows": [{"id": 31, "author_id": 1, "title": "x", "n": 0}, {"id": 32, "author_id": 3, "title": "y", "n": 0}]}',
    '$ref in insert_all rows, with array indexes');
SELECT is(pgapp.transact(
    pgapp.multi_update_all(pgapp.multi_put(pgapp.multi(), 'p', '{"t": "renamed", "n": 9}'), 'u',
        pgapp.filter_by(pgapp.from('tm_post'), 'id', 30), '{"title": {"$ref": "p.t"}, "n": {"$ref": "p.n"}}'), 'return')
        -> 'changes' -> 'u',
    '{"count": 1, "rows": [{"id": 30, "author_id": 3, "title": "renamed", "n": 9}]}', '$ref in update_all set');
SELECT is(pgapp.transact(
    pgapp.multi_run(pgapp.multi_put(pgapp.multi(), 'p', '{"a": {"b": [10, {"c": "deep"}]}}'), 'echo', 'tm_echo(jsonb,jsonb)',
        '{"whole": {"$ref": "p"}, "nested": {"list": [{"$ref": "p.a.b.1.c"}, {"$ref": "p.a.b.0"}]}}'), 'return')
        -> 'changes' -> 'echo' -> 'args',
    '{"whole": {"a": {"b": [10, {"c": "deep"}]}}, "nested": {"list": ["deep", 10]}}',
    '$ref in run args: whole results, nested paths, array indexes, refs nested in arrays and objects');
SELECT is(pgapp.transact(
    pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'p', '{"a": [{"b": true}]}'), 'q', '[{"$ref": "p.a.0.b"}, {"k": {"$ref": "p.a"}}]'),
    'return') -> 'changes' -> 'q',
    '[true, {"k": [{"b": true}]}]', '$ref in a put value');
SELECT is(pgapp.transact(
    pgapp.multi_put(pgapp.multi(), 'p', '{"$ref": "x", "other": 1}'), 'return') -> 'changes' -> 'p',
    '{"$ref": "x", "other": 1}', 'an object with more keys than $ref is data, not a reference');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi(), 'p', '{"$ref": 5}')$$,
    '22023', 'multi step "p" has a malformed reference', 'a lone $ref whose value is not a string is a malformed reference');
SELECT is(pgapp.transact(
    pgapp.multi_delete(pgapp.multi_put(pgapp.multi(), 'target', '{"id": 32}'), 'gone', 'tm_post', '{"$ref": "target.id"}'),
    'return') -> 'changes' -> 'gone',
    '{"id": 32, "author_id": 3, "title": "y", "n": 0}', '$ref as the id of a delete');
SELECT is(pgapp.transact(
    pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'p', '"abc"'), 'post',
        pgapp.cast('tm_post', NULL, '{"id": 33, "title": "t"}', ARRAY['id', 'author_id', 'title']),
        '{"author_id": {"$ref": "p"}}'),
    'return') - 'changes_so_far',
    '{"ok": false, "failed_step": "post", "error": {"author_id": ["is invalid"]}, "status": 422}',
    'a $ref value that does not fit the column is invalid (422)');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '{"x": 1}'), 'b', '{"$ref": "a.y"}'), 'return')$$,
    '22023', NULL, 'a $ref path that finds nothing raises 22023, even in return mode');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '{"x": [1]}'), 'b', '{"$ref": "a.x.5"}'), 'return')$$,
    '22023', NULL, 'an array index past the end raises 22023');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '{"x": 1}'), 'b', '{"$ref": "a.x.y"}'), 'return')$$,
    '22023', NULL, 'a path into a scalar raises 22023');

---------------------------------------------------------------------------
-- Failures: the body, the status, changes_so_far
---------------------------------------------------------------------------
SELECT is(pgapp.transact(
    pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'first', '"x"'), 'bad',
        pgapp.validate_required(pgapp.cast('tm_author', NULL, '{"id": 4}', ARRAY['id', 'name']), ARRAY['name'])), 'return'),
    '{"ok": false, "failed_step": "bad", "error": {"name": ["can''t be blank"]}, "status": 422, "changes_so_far": {"first": "x"}}',
    'an invalid changeset: its field errors, 422, the earlier results');
SELECT is((SELECT count(*)::int FROM tm_author WHERE id = 4), 0, 'an invalid changeset leaves the table untouched');
SELECT is(pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'dup',
        pgapp.unique_constraint(pgapp.cast('tm_author', NULL, '{"id": 4, "name": "Ada L."}', ARRAY['id', 'name']), 'name')), 'return'),
    '{"ok": false, "failed_step": "dup", "error": {"name": ["has already been taken"]}, "status": 422, "changes_so_far": {}}',
    'a unique violation mapped by pgapp.unique_constraint: a field error, 422');
SELECT is(pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'dup',
        pgapp.cast('tm_author', NULL, '{"id": 4, "name": "Ada L."}', ARRAY['id', 'name'])), 'return'),
    '{"ok": false, "failed_step": "dup", "status": 409, "changes_so_far": {},
      "error": {"message": "duplicate key value violates unique constraint \"tm_author_name_key\"",
                "detail": "Key (name)=(Ada L.) already exists.", "sqlstate": "23505", "constraint": "tm_author_name_key"}}',
    'an unmapped unique violation: 409 with message, detail, sqlstate and constraint');
SELECT is(pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'orphans', 'tm_post',
        '[{"id": 40, "author_id": 999, "title": "x"}]'), 'return') #> '{error,constraint}',
    '"tm_post_author_fkey"', 'an unmapped foreign key violation names its constraint');
SELECT is(pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'orphans', 'tm_post',
        '[{"id": 40, "author_id": 999, "title": "x"}]'), 'return') -> 'status',
    '409', 'an unmapped foreign key violation is 409');
SELECT is(pgapp.transact(pgapp.multi_update(pgapp.multi(), 'ghost',
        pgapp.cast('tm_author', '{"id": 999, "name": "x"}', '{"name": "y"}', ARRAY['name'])), 'return'),
    '{"ok": false, "failed_step": "ghost", "error": {"detail": "Not Found"}, "status": 404, "changes_so_far": {}}',
    'update of a missing row: 404 Not Found');
SELECT is(pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'ghost', 'tm_author', '999'), 'return'),
    '{"ok": false, "failed_step": "ghost", "error": {"detail": "Not Found"}, "status": 404, "changes_so_far": {}}',
    'delete of a missing row: 404 Not Found');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'pay', 'tm_decline(jsonb,jsonb)'), 'return'),
    '{"ok": false, "failed_step": "pay", "error": {"reason": "declined"}, "status": 422, "changes_so_far": {"a": 1}}',
    'fn returning {"error": v}: v, 422');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'), 'return'),
    '{"ok": false, "failed_step": "pay", "error": {"reason": "card_declined"}, "status": 402, "changes_so_far": {}}',
    'fn returning {"error": v, "status": 402}: that status');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "P0001"}'), 'return'),
    '{"ok": false, "failed_step": "r", "error": {"message": "boom", "sqlstate": "P0001"}, "status": 500, "changes_so_far": {}}',
    'fn raising P0001: 500 with the message and sqlstate');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)',
        '{"code": "PT418", "detail": "{\"errors\": {\"kettle\": [\"is a teapot\"]}}"}'), 'return'),
    '{"ok": false, "failed_step": "r", "error": {"kettle": ["is a teapot"]}, "status": 418, "changes_so_far": {}}',
    'fn raising PT418 with {"errors": ...} in DETAIL: 418, error the DETAIL''s errors');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)',
        '{"code": "PT409", "detail": "{\"conflict\": \"taken\"}"}'), 'return'),
    '{"ok": false, "failed_step": "r", "error": {"conflict": "taken"}, "status": 409, "changes_so_far": {}}',
    'fn raising PT409 with other JSON in DETAIL: error the DETAIL');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "PT451"}'), 'return'),
    '{"ok": false, "failed_step": "r", "error": {"message": "boom", "sqlstate": "PT451"}, "status": 451, "changes_so_far": {}}',
    'fn raising PT451 without DETAIL: 451, message and sqlstate');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "42501"}'), 'return') -> 'status',
    '403', 'fn raising 42501: 403');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "22012"}'), 'return'),
    '{"ok": false, "failed_step": "r", "error": {"message": "boom", "sqlstate": "22012"}, "status": 400, "changes_so_far": {}}',
    'fn raising a data exception (class 22): 400');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "40001"}'), 'return')$$,
    '40001', 'boom', 'a serialization failure is not caught: it propagates');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "40P01"}'), 'return')$$,
    '40P01', 'boom', 'a deadlock is not caught');
-- a cancel (57014) cannot be caught by PL/pgSQL, so throws_ok cannot see it: test/regress/sql/multi.sql shows it
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "53200"}'), 'return')$$,
    '53200', 'boom', 'out of memory (class 53) is not caught');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "XX000"}'), 'return')$$,
    'XX000', 'boom', 'an internal error (class XX) is not caught');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "58030"}'), 'return')$$,
    '58030', 'boom', 'a system error (class 58) is not caught');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)', '{"value": {"result": 1}}'), 'return')$$,
    '22023', NULL, 'fn returning neither {"ok"} nor {"error"} raises 22023');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)'), 'return')$$,
    '22023', NULL, 'fn returning NULL raises 22023');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)', '{"value": [1]}'), 'return')$$,
    '22023', NULL, 'fn returning an array raises 22023');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)',
                     '{"value": {"error": "x", "status": 200}}'), 'return')$$,
    '22023', NULL, 'fn returning a status outside 400..599 raises 22023');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)',
                     '{"value": {"error": "x", "status": "402"}}'), 'return')$$,
    '22023', NULL, 'fn returning a status that is not a number raises 22023');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)',
                     '{"value": {"ok": 1, "error": 2}}'), 'return')$$,
    '22023', NULL, 'fn returning both "ok" and "error" raises 22023');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'g', 'tm_return(jsonb,jsonb)', '{"value": {"ok": null}}'), 'return'),
    '{"ok": true, "changes": {"g": null}}', 'fn returning {"ok": null}: the result is null');

---------------------------------------------------------------------------
-- A failed multi undoes every earlier step: rows, jobs, stored broadcasts
---------------------------------------------------------------------------
SELECT is(pgapp.transact(
    pgapp.multi_run(
      pgapp.multi_run(
        pgapp.multi_delete(
          pgapp.multi_update_all(
            pgapp.multi_update(
              pgapp.multi_insert_all(
                pgapp.multi_insert(pgapp.multi(), 'author',
                    pgapp.cast('tm_author', NULL, '{"id": 5, "name": "Eve"}', ARRAY['id', 'name'])),
                'posts', 'tm_post', '[{"id": 50, "author_id": {"$ref": "author.id"}, "title": "p"}]'),
              'rename', pgapp.cast('tm_author', '{"id": 1, "name": "Ada L."}', '{"name": "Mallory"}', ARRAY['name'])),
            'bump', pgapp.filter_by(pgapp.from('tm_post'), 'id', 10), '{"n": 100}'),
          'drop', 'tm_post', '11'),
        'side', 'tm_side_effects(jsonb,jsonb)', '{"tag": "tm-undone"}'),
      'pay', 'tm_decline(jsonb,jsonb)'), 'return') - 'changes_so_far',
    '{"ok": false, "failed_step": "pay", "error": {"reason": "declined"}, "status": 422}',
    'a multi of every writing step, then a declined payment');
SELECT results_eq(
    $$SELECT (SELECT count(*)::int FROM tm_author WHERE id = 5), (SELECT count(*)::int FROM tm_post WHERE id = 50),
             (SELECT name FROM tm_author WHERE id = 1), (SELECT n FROM tm_post WHERE id = 10),
             (SELECT count(*)::int FROM tm_post WHERE id = 11)$$,
    $$VALUES (0, 0, 'Ada L.', 5, 1)$$,
    'every earlier step''s write is undone: insert, insert_all, update, update_all, delete');
SELECT is((SELECT count(*)::int FROM pgapp.job WHERE queue = 'tm_q' AND args ->> 'tag' = 'tm-undone'), 0,
    'the job enqueued by an earlier step is gone');
SELECT is((SELECT count(*)::int FROM pgapp.message WHERE topic = 'tm:big' AND event = 'tm-undone'), 0,
    'the stored broadcast of an earlier step is gone');
SELECT is((pgapp.transact(pgapp.multi_run(pgapp.multi(), 'side', 'tm_side_effects(jsonb,jsonb)', '{"tag": "tm-kept"}'), 'return')
           -> 'changes'),
    '{"side": "sent"}', 'the same step in a multi that succeeds');
SELECT results_eq(
    $$SELECT (SELECT count(*)::int FROM pgapp.job WHERE queue = 'tm_q' AND args ->> 'tag' = 'tm-kept'),
             (SELECT count(*)::int FROM pgapp.message WHERE topic = 'tm:big' AND event = 'tm-kept')$$,
    $$VALUES (1, 1)$$, 'a multi that succeeds keeps its job and its broadcast');
SELECT is(pgapp.transact(
    pgapp.multi_run(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '{"x": 1}'), 'b', '[2]'), 'echo', 'tm_echo(jsonb,jsonb)',
                    '{"b0": {"$ref": "b.0"}}'), 'return') -> 'changes' -> 'echo',
    '{"changes": {"a": {"x": 1}, "b": [2]}, "args": {"b0": 2}}', 'fn sees every earlier result by name');
SELECT is(pgapp.transact(
    pgapp.multi_put(pgapp.multi_run(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '2'),
                                    'pay', 'tm_pay(jsonb,jsonb)'), 'never', '3'), 'return') -> 'changes_so_far',
    '{"a": 1, "b": 2}', 'changes_so_far: the steps before the failed one, not those after');

---------------------------------------------------------------------------
-- Savepoint semantics inside an outer transaction, and from PL/pgSQL
---------------------------------------------------------------------------
INSERT INTO tm_author VALUES (60, 'before');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi_insert(pgapp.multi(), 'a',
        pgapp.cast('tm_author', NULL, '{"id": 61, "name": "inside"}', ARRAY['id', 'name'])), 'pay', 'tm_decline(jsonb,jsonb)'),
    'return') ->> 'failed_step', 'pay', 'a failed multi inside an outer transaction returns');
INSERT INTO tm_author VALUES (62, 'after');
SELECT is(ARRAY(SELECT id FROM tm_author WHERE id BETWEEN 60 AND 69 ORDER BY id), ARRAY[60, 62],
    'the outer writes before and after survive; only the multi''s are undone');
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'a',
        pgapp.cast('tm_author', NULL, '{"id": 63, "name": "raised"}', ARRAY['id', 'name'])), 'raise')$$) ->> 'sqlstate',
    NULL, 'a multi that succeeds in raise mode raises nothing');
SELECT is((SELECT count(*)::int FROM tm_author WHERE id = 63), 1, 'and its write is part of the outer transaction');
SELECT lives_ok($do$
    DO $$
    DECLARE r jsonb;
    BEGIN
        r := pgapp.transact(pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'dup',
                 pgapp.cast('tm_author', NULL, '{"id": 64, "name": "before"}', ARRAY['id', 'name'])), 'return');
        IF (r ->> 'ok')::boolean OR r ->> 'failed_step' <> 'dup' OR (r ->> 'status')::int <> 409 THEN
            RAISE EXCEPTION 'unexpected %', r;
        END IF;
        INSERT INTO tm_author VALUES (65, 'plpgsql after');
    END
    $$ $do$, 'PL/pgSQL inspects a returned failure and goes on');
SELECT is(ARRAY(SELECT id FROM tm_author WHERE id IN (64, 65)), ARRAY[65], 'the PL/pgSQL block''s own write stays');

---------------------------------------------------------------------------
-- Error modes
---------------------------------------------------------------------------
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'first', '1'), 'bad',
        pgapp.validate_required(pgapp.cast('tm_author', NULL, '{"id": 70}', ARRAY['id', 'name']), ARRAY['name'])), 'raise')$$),
    '{"sqlstate": "PT422", "message": "multi step \"bad\" failed",
      "detail": {"ok": false, "failed_step": "bad", "error": {"name": ["can''t be blank"]}, "status": 422,
                 "changes_so_far": {"first": 1}}}',
    'raise mode: PT422, message naming the step, the failure body as DETAIL');
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'dup',
        pgapp.cast('tm_author', NULL, '{"id": 70, "name": "before"}', ARRAY['id', 'name'])), 'raise')$$) ->> 'sqlstate',
    'PT409', 'raise mode: PT409 for an unmapped unique violation');
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'), 'raise')$$),
    '{"sqlstate": "PT402", "message": "multi step \"pay\" failed",
      "detail": {"ok": false, "failed_step": "pay", "error": {"reason": "card_declined"}, "status": 402, "changes_so_far": {}}}',
    'raise mode: PT402 for a payment');
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'r', 'tm_raise(jsonb,jsonb)', '{"code": "P0001"}'), 'raise')$$)
          ->> 'sqlstate', 'PT500', 'raise mode: PT500 for a function that raised');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi(), 'sometimes')$$, '22023', NULL, 'an unknown error mode is 22023');
-- NULL follows pgapp.error_mode
SET LOCAL pgapp.error_mode = 'raise';
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'))$$) ->> 'sqlstate',
    'PT402', 'NULL mode with pgapp.error_mode = raise raises');
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'), 'return') ->> 'status', '402',
    '''return'' returns even when pgapp.error_mode = raise');
SET LOCAL pgapp.error_mode = 'return';
DO $$ BEGIN PERFORM set_config('response.status', '', true); END $$;
SELECT is(pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)')) ->> 'failed_step', 'pay',
    'NULL mode with pgapp.error_mode = return returns');
SELECT is(current_setting('response.status'), '402', 'return mode sets response.status to the step''s status');
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'), 'raise')$$) ->> 'sqlstate',
    'PT402', '''raise'' raises even when pgapp.error_mode = return');
SET LOCAL pgapp.error_mode = 'auto';
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'))$$) ->> 'sqlstate',
    'PT402', 'auto mode outside a request raises');
DO $$ BEGIN PERFORM set_config('request.method', 'POST', true), set_config('response.status', '', true); END $$;
SELECT is(pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'bad',
        pgapp.validate_required(pgapp.cast('tm_author', NULL, '{"id": 71}', ARRAY['id', 'name']), ARRAY['name']))) -> 'error',
    '{"name": ["can''t be blank"]}', 'auto mode inside a PostgREST request returns');
SELECT is(current_setting('response.status'), '422', 'and sets response.status 422');
SELECT is(tm_caught($$SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'pay', 'tm_pay(jsonb,jsonb)'), 'raise')$$) ->> 'sqlstate',
    'PT402', '''raise'' raises inside a request too');
DO $$ BEGIN PERFORM set_config('request.method', '', true), set_config('response.status', '', true); END $$;
RESET pgapp.error_mode;

---------------------------------------------------------------------------
-- Add-time checks: 22023 for a bad step, 22004 for NULL arguments
---------------------------------------------------------------------------
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'a', '2')$$,
    '22023', NULL, 'a duplicate step name is 22023');
SELECT throws_ok($$SELECT pgapp.multi_append(pgapp.multi_put(pgapp.multi(), 'a', '1'), pgapp.multi_put(pgapp.multi(), 'a', '2'))$$,
    '22023', NULL, 'append of two multis with a common name is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi(), 'a.b', '1')$$, '22023', NULL, 'a step name with "." is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi(), '', '1')$$, '22023', NULL, 'an empty step name is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi(), 'a', '{"$ref": "nope"}')$$, '22023', NULL,
    'a $ref to an unknown step is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi(), 'a', '{"$ref": "a"}')$$, '22023', NULL,
    'a $ref to the step itself is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '{"$ref": ""}')$$, '22023', NULL,
    'an empty $ref is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '{"$ref": "a..x"}')$$, '22023', NULL,
    'a $ref with an empty path element is 22023');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '{"$ref": "a."}')$$, '22023', NULL,
    'a $ref ending in "." is 22023');
SELECT throws_ok($$SELECT pgapp.multi_run(pgapp.multi(), 'r', 'tm_echo(jsonb,jsonb)', '{"deep": [{"$ref": "later"}]}')$$,
    '22023', NULL, 'a nested $ref to an unknown step is 22023');
SELECT throws_ok($$SELECT pgapp.multi_insert(pgapp.multi(), 'i',
        pgapp.cast('tm_post', NULL, '{"id": 1}', ARRAY['id', 'author_id']), '{"author_id": {"$ref": "who.id"}}')$$,
    '22023', NULL, 'a $ref to an unknown step in a write step''s refs is 22023');
SELECT throws_ok($$SELECT pgapp.multi_delete(pgapp.multi(), 'd', 'tm_post', '{"$ref": "who.id"}')$$,
    '22023', NULL, 'a $ref to an unknown step as a delete''s id is 22023');
-- a $ref to a later step can only be forged: transact checks the order again
SELECT throws_ok($$SELECT pgapp.transact(jsonb_build_object('steps', jsonb_build_array(m -> 'steps' -> 1, m -> 'steps' -> 0))::pgapp.multi, 'return')
                     FROM pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '{"$ref": "a"}') AS m$$,
    '22023', NULL, 'a forged multi whose step refers to a later one is 22023 at transact');
SELECT is((SELECT count(*)::int FROM tm_author WHERE id >= 100), 0, 'checks at add time write nothing');
SELECT throws_ok($$SELECT pgapp.multi_insert_all(pgapp.multi(), 'i', 'tm_post', '{"id": 1}')$$, '22023', NULL,
    'insert_all rows must be a JSON array');
SELECT throws_ok($$SELECT pgapp.multi_insert_all(pgapp.multi(), 'i', 'tm_post', '[{"id": 1, "title": "a"}, {"id": 2}]')$$, '22023', NULL,
    'insert_all rows must all have the same keys');
SELECT throws_ok($$SELECT pgapp.multi_insert_all(pgapp.multi(), 'i', 'tm_post', '[{"id": 1, "nope": "a"}]')$$, '22023', NULL,
    'insert_all keys must be columns');
SELECT throws_ok($$SELECT pgapp.multi_insert_all(pgapp.multi(), 'i', 'tm_post', '[1]')$$, '22023', NULL,
    'insert_all rows must be objects');
SELECT throws_ok($$SELECT pgapp.multi_update_all(pgapp.multi(), 'u', pgapp.from('tm_post'), '{"nope": 1}')$$, '22023', NULL,
    'update_all set keys must be columns');
SELECT throws_ok($$SELECT pgapp.multi_run(pgapp.multi(), 'r', 'tm_one_arg(jsonb)')$$, '22023', NULL,
    'run: fn must take (jsonb, jsonb)');
SELECT throws_ok($$SELECT pgapp.multi_run(pgapp.multi(), 'r', 'tm_text(jsonb,jsonb)')$$, '22023', NULL,
    'run: fn must return jsonb');
SELECT throws_ok($$SELECT pgapp.multi_merge(pgapp.multi(), 'tm_echo(jsonb,jsonb)')$$, '22023', NULL,
    'merge: fn must take (jsonb) and return pgapp.multi');
SELECT throws_ok($$SELECT pgapp.transact(pgapp.multi_merge(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'tm_merge_clash(jsonb)'), 'return')$$,
    '22023', NULL, 'merged steps whose names clash with earlier ones raise 22023 at transact');
-- NULL arguments
SELECT throws_ok($$SELECT pgapp.multi_insert(NULL, 'a', pgapp.cast('tm_author', NULL, '{}', ARRAY['name']))$$, '22004', NULL,
    'multi_insert: NULL m');
SELECT throws_ok($$SELECT pgapp.multi_insert(pgapp.multi(), NULL, pgapp.cast('tm_author', NULL, '{}', ARRAY['name']))$$, '22004', NULL,
    'multi_insert: NULL name');
SELECT throws_ok($$SELECT pgapp.multi_insert(pgapp.multi(), 'a', NULL)$$, '22004', NULL, 'multi_insert: NULL cs');
SELECT throws_ok($$SELECT pgapp.multi_update(NULL, 'a', pgapp.cast('tm_author', '{"id": 1}', '{}', ARRAY['name']))$$, '22004', NULL,
    'multi_update: NULL m');
SELECT throws_ok($$SELECT pgapp.multi_update(pgapp.multi(), 'a', NULL)$$, '22004', NULL, 'multi_update: NULL cs');
SELECT throws_ok($$SELECT pgapp.multi_delete(pgapp.multi(), NULL, 'tm_author', '1')$$, '22004', NULL, 'multi_delete: NULL name');
SELECT throws_ok($$SELECT pgapp.multi_delete(pgapp.multi(), 'a', NULL, '1')$$, '22004', NULL, 'multi_delete: NULL tbl');
SELECT throws_ok($$SELECT pgapp.multi_insert_all(NULL, 'a', 'tm_post', '[]')$$, '22004', NULL, 'multi_insert_all: NULL m');
SELECT throws_ok($$SELECT pgapp.multi_insert_all(pgapp.multi(), 'a', NULL, '[]')$$, '22004', NULL, 'multi_insert_all: NULL tbl');
SELECT throws_ok($$SELECT pgapp.multi_update_all(pgapp.multi(), NULL, pgapp.from('tm_post'), '{"n": 1}')$$, '22004', NULL,
    'multi_update_all: NULL name');
SELECT throws_ok($$SELECT pgapp.multi_run(pgapp.multi(), 'a', NULL)$$, '22004', NULL, 'multi_run: NULL fn');
SELECT throws_ok($$SELECT pgapp.multi_run(NULL, 'a', 'tm_echo(jsonb,jsonb)')$$, '22004', NULL, 'multi_run: NULL m');
SELECT throws_ok($$SELECT pgapp.multi_put(pgapp.multi(), NULL, '1')$$, '22004', NULL, 'multi_put: NULL name');
SELECT throws_ok($$SELECT pgapp.multi_append(NULL, pgapp.multi())$$, '22004', NULL, 'multi_append: NULL m1');
SELECT throws_ok($$SELECT pgapp.multi_append(pgapp.multi(), NULL)$$, '22004', NULL, 'multi_append: NULL m2');
SELECT throws_ok($$SELECT pgapp.multi_merge(pgapp.multi(), NULL)$$, '22004', NULL, 'multi_merge: NULL fn');
SELECT throws_ok($$SELECT pgapp.multi_merge(NULL, 'tm_merge(jsonb)')$$, '22004', NULL, 'multi_merge: NULL m');
SELECT throws_ok($$SELECT pgapp.transact(NULL)$$, '22004', NULL, 'transact: NULL m');
SELECT throws_ok($$SELECT '{"steps": {}}'::pgapp.multi$$, '23514', NULL, 'the domain refuses a value without a steps array');

---------------------------------------------------------------------------
-- Changeset writes run in transact's one subtransaction; their errors are
-- mapped after it is rolled back
---------------------------------------------------------------------------
CREATE TABLE tm_note (id int PRIMARY KEY, body text NOT NULL);
SELECT pgapp.define_changeset('tm_note', 'tm_note', ARRAY['id', 'body'], '[{"required": ["body"]}]');
SELECT pgapp.validate_table('tm_note', 'tm_note');
SELECT is(pgapp.transact(
    pgapp.multi_insert(
        pgapp.multi_insert(pgapp.multi(), 'ok', pgapp.cast('tm_note', NULL, '{"id": 1, "body": "fine"}', ARRAY['id', 'body'])),
        'blank', pgapp.cast('tm_note', NULL, '{"id": 2, "body": " "}', ARRAY['id', 'body'])), 'return'),
    '{"ok": false, "failed_step": "blank", "error": {"body": ["can''t be blank"]}, "status": 422,
      "changes_so_far": {"ok": {"id": 1, "body": "fine"}}}',
    'a validate_table trigger''s field errors are the step''s error (422)');
SELECT is((SELECT count(*)::int FROM tm_note), 0, 'the step before the trigger''s refusal is undone');
SELECT is(pgapp.transact(
    pgapp.multi_update(
        pgapp.multi_insert(pgapp.multi(), 'a5', pgapp.cast('tm_author', NULL, '{"id": 5, "name": "Grace"}', ARRAY['id', 'name'])),
        'rename', pgapp.unique_constraint(pgapp.cast('tm_author', '{"id": 5, "name": "Grace"}', '{"name": "Ada L."}', ARRAY['name']), 'name')),
    'return') - 'changes_so_far',
    '{"ok": false, "failed_step": "rename", "error": {"name": ["has already been taken"]}, "status": 422}',
    'a unique violation of an update step, mapped by its changeset: a field error, 422');
SELECT is((SELECT count(*)::int FROM tm_author WHERE id = 5), 0, 'the insert before the mapped violation is undone');
SELECT is((SELECT pgapp.transact(m) -> 'ok' FROM (
        SELECT pgapp.multi_insert_all(
                   (SELECT m0 FROM (SELECT pgapp.multi() AS m0) x), 'none', 'tm_note', '[]') AS m) y),
    'true', 'an insert_all of no rows succeeds');
DO $$
DECLARE
    m pgapp.multi := pgapp.multi();
BEGIN
    FOR k IN 1 .. 100 LOOP
        m := pgapp.multi_insert(m, 'n' || k, pgapp.cast('tm_note', NULL, jsonb_build_object('id', 100 + k, 'body', 'note ' || k), ARRAY['id', 'body']));
    END LOOP;
    PERFORM pgapp.transact(m, 'raise');
END
$$;
SELECT is((SELECT count(*)::int FROM tm_note WHERE id > 100), 100, 'a multi of 100 changeset inserts writes them all');

---------------------------------------------------------------------------
-- Results are assembled from their jsonb bytes: the result must be the
-- jsonb PostgreSQL itself would build (key order, offsets past 32 members,
-- numerics, nulls, booleans, empty and nested containers)
---------------------------------------------------------------------------
CREATE TEMP TABLE tm_vals AS
SELECT k, repeat(chr(97 + k % 26), 1 + (k * 7) % 13) || k AS name,
       (ARRAY['1', '-2.50', '"s"', 'null', 'true', 'false', '{}', '[]', '{"a": [1, {"b": null}]}', '"é ☃"',
              '12345678901234567890.123', '[[], {}]'])[1 + k % 12]::jsonb AS v
  FROM generate_series(1, 70) AS k;
CREATE TEMP TABLE tm_raw AS
SELECT pgapp.transact(m, 'raise') AS r
  FROM (SELECT (SELECT m FROM (SELECT pgapp.multi() AS m) z) AS m0) x,
       LATERAL (SELECT pgapp.multi_put(x.m0, 'first', '0') AS m) y;
DO $$
DECLARE
    m pgapp.multi := pgapp.multi();
    rec record;
BEGIN
    FOR rec IN SELECT name, v FROM tm_vals ORDER BY k LOOP
        m := pgapp.multi_put(m, rec.name, rec.v);
    END LOOP;
    UPDATE tm_raw SET r = pgapp.transact(m, 'raise');
END
$$;
SELECT is((SELECT r -> 'changes' FROM tm_raw), (SELECT jsonb_object_agg(name, v) FROM tm_vals),
    '70 results of every kind of value: the changes PostgreSQL builds');
SELECT is((SELECT count(*)::int FROM tm_raw, tm_vals WHERE r -> 'changes' -> name = v), 70,
    'every result is found by its name (keys in jsonb''s order, offsets right)');
SELECT is((SELECT (r::text)::jsonb = r AND r::text = ((r::text)::jsonb)::text FROM tm_raw), true,
    'the result reads back as it prints');
SELECT is((SELECT jsonb_pretty(r) IS NOT NULL AND jsonb_typeof(r -> 'ok') = 'boolean' FROM tm_raw), true,
    'the result is a well-formed jsonb');
SELECT is(pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'rows', 'tm_note',
        '[{"id": 900, "body": "a"}, {"id": 901, "body": "b"}]'), 'raise') -> 'changes' -> 'rows',
    '{"count": 2, "rows": [{"id": 900, "body": "a"}, {"id": 901, "body": "b"}]}',
    'insert_all''s count and rows');

-- The backend's cache of run functions (signature -> OID) forgets a function
-- dropped and created again, and a schema renamed, at once.
CREATE SCHEMA tm_fn;
CREATE FUNCTION tm_fn.step(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"ok": 1}'::jsonb $$;
CREATE TEMP TABLE tm_m AS
SELECT pgapp.multi_run(pgapp.multi(), 's', 'tm_fn.step(jsonb, jsonb)', '{}') AS m;
SELECT is(pgapp.transact((SELECT m FROM tm_m)) -> 'changes', '{"s": 1}', 'a run step through the cache');
DROP FUNCTION tm_fn.step(jsonb, jsonb);
CREATE FUNCTION tm_fn.step(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"ok": 2}'::jsonb $$;
SELECT is(pgapp.transact((SELECT m FROM tm_m)) -> 'changes', '{"s": 2}',
    'the same signature dropped and created again: the new function runs');
ALTER SCHEMA tm_fn RENAME TO tm_fn2;
SELECT throws_ok($$ SELECT pgapp.transact((SELECT m FROM tm_m)) $$, '42883',
    'multi run function tm_fn.step(pg_catalog.jsonb,pg_catalog.jsonb) does not exist',
    'its schema renamed: the signature no longer names a function');
CREATE SCHEMA tm_fn;
CREATE FUNCTION tm_fn.step(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"ok": 3}'::jsonb $$;
SELECT is(pgapp.transact((SELECT m FROM tm_m)) -> 'changes', '{"s": 3}',
    'another function under the old name: that one runs');

SELECT * FROM finish();
ROLLBACK;

--
-- multi: named steps run in one subtransaction by pgapp.transact
-- (docs/multi.md).  A small lending library: members, books, loans.  Every
-- step kind, the body of each kind of failure, $ref, what a failure undoes
-- (rows and outbox broadcasts; jobs: test/pgtap/09_multi.sql, since their
-- ids show in jobs.out), savepoints, the error modes and the add-time checks.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/listener_helpers.sql
\set ECHO all

CREATE TABLE mr_member (id int PRIMARY KEY, email text NOT NULL CONSTRAINT mr_member_email_key UNIQUE);
CREATE TABLE mr_book (id int PRIMARY KEY, title text NOT NULL, copies int NOT NULL CONSTRAINT mr_book_copies_check CHECK (copies >= 0));
CREATE TABLE mr_loan (
    id        int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id int NOT NULL REFERENCES mr_member,
    book_id   int NOT NULL REFERENCES mr_book,
    returned  boolean NOT NULL DEFAULT false
);

-- fn(changes, args) -> {"ok": v} | {"error": v} | {"error": v, "status": n}
CREATE FUNCTION mr_take_copy(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE left_over int;
BEGIN
    UPDATE mr_book SET copies = copies - 1 WHERE id = (args ->> 'book')::int AND copies > 0
    RETURNING copies INTO left_over;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('error', jsonb_build_object('error', 'out_of_stock', 'book', args -> 'book'), 'status', 409);
    END IF;
    RETURN jsonb_build_object('ok', jsonb_build_object('copies_left', left_over));
END
$$;
-- a fee gateway: one card declines, one raises, the rest pay
CREATE FUNCTION mr_charge_fee(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF args ->> 'card' = '4000000000000002' THEN
        RETURN '{"error": {"error": "payment_failed", "reason": "card_declined"}, "status": 402}';
    ELSIF args ->> 'card' = '4000000000000119' THEN
        RAISE EXCEPTION 'gateway timed out';
    END IF;
    RETURN jsonb_build_object('ok', jsonb_build_object('charged', args -> 'amount', 'member', args -> 'member'));
END
$$;
-- tells the desk (an outbox broadcast, sent only if the transaction commits)
CREATE FUNCTION mr_tell_desk(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgapp.broadcast('mr:desk', args ->> 'event', jsonb_build_object('loan', args -> 'loan'), mode => 'outbox');
    RETURN '{"ok": "told"}';
END
$$;
-- merge: one "remind_<id>" step per loan of the member, decided at run time
CREATE FUNCTION mr_reminders(changes jsonb) RETURNS pgapp.multi
LANGUAGE plpgsql AS $$
DECLARE
    m pgapp.multi := pgapp.multi();
    l record;
BEGIN
    FOR l IN SELECT id, book_id FROM mr_loan
              WHERE member_id = (changes -> 'member' ->> 'id')::int ORDER BY id LOOP
        m := pgapp.multi_put(m, 'remind_' || l.id, jsonb_build_object('book', l.book_id));
    END LOOP;
    RETURN m;
END
$$;
SELECT pg_temp.listen('mr:desk') AS channel;

---------------------------------------------------------------------------
-- Building: nothing runs until transact
---------------------------------------------------------------------------
SELECT pgapp.multi() AS empty;
SELECT pgapp.multi_names(
         pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'greeting', '"hello"'), 'echo', '{"$ref": "greeting"}')) AS names;
SELECT count(*) AS members_before FROM mr_member;

---------------------------------------------------------------------------
-- Every step kind, succeeding
---------------------------------------------------------------------------
-- insert, insert_all, then insert and run with $refs to their results
SELECT jsonb_pretty(pgapp.transact(
    pgapp.multi_put(
      pgapp.multi_run(
        pgapp.multi_run(
          pgapp.multi_insert(
            pgapp.multi_insert_all(
              pgapp.multi_insert(pgapp.multi(), 'member',
                  pgapp.validate_required(pgapp.cast('mr_member', NULL, '{"id": 1, "email": "ada@example.com"}',
                                                     ARRAY['id', 'email']), ARRAY['email'])),
              'books', 'mr_book',
              '[{"id": 10, "title": "Dune", "copies": 2}, {"id": 11, "title": "Emma", "copies": 1}]'),
            'loan', pgapp.cast('mr_loan', NULL, '{}', ARRAY['member_id', 'book_id']),
            '{"member_id": {"$ref": "member.id"}, "book_id": {"$ref": "books.rows.0.id"}}'),
          'stock', 'mr_take_copy(jsonb,jsonb)', '{"book": {"$ref": "loan.book_id"}}'),
        'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4242424242424242", "amount": 2, "member": {"$ref": "member.email"}}'),
      'receipt', '{"loan": {"$ref": "loan.id"}, "title": {"$ref": "books.rows.0.title"}, "left": {"$ref": "stock.copies_left"}}'),
    'return')) AS result;
SELECT * FROM mr_book ORDER BY id;
SELECT * FROM mr_loan ORDER BY id;

-- update (by the primary key of the changeset's data), update_all, delete
SELECT jsonb_pretty(pgapp.transact(
    pgapp.multi_delete(
      pgapp.multi_update_all(
        pgapp.multi_update(pgapp.multi(), 'email',
            pgapp.cast('mr_member', to_jsonb(m), '{"email": "ada@lovelace.org"}', ARRAY['email'])),
        'returned', pgapp.filter_by(pgapp.from('mr_loan'), 'member_id', 1), '{"returned": true}'),
      'weeded', 'mr_book', '11'),
    'return')) AS result
  FROM mr_member AS m WHERE id = 1;

-- append: two multis built apart, run as one; merge: steps decided from earlier results
SELECT jsonb_pretty(pgapp.transact(
    pgapp.multi_merge(
      pgapp.multi_append(
        pgapp.multi_put(pgapp.multi(), 'member', to_jsonb(m)),
        pgapp.multi_insert(pgapp.multi(), 'second_loan',
            pgapp.cast('mr_loan', NULL, '{"member_id": 1, "book_id": 10}', ARRAY['member_id', 'book_id']))),
      'mr_reminders(jsonb)'),
    'return')) AS result
  FROM mr_member AS m WHERE id = 1;

---------------------------------------------------------------------------
-- Failures: {"ok": false, "failed_step", "error", "status", "changes_so_far"}
---------------------------------------------------------------------------
-- an invalid changeset: its field errors, 422; the table is not touched
SELECT jsonb_pretty(pgapp.transact(
    pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'first', '"x"'), 'member',
        pgapp.validate_required(pgapp.cast('mr_member', NULL, '{"id": 2, "email": " "}', ARRAY['id', 'email']), ARRAY['email'])),
    'return')) AS result;
-- a unique violation the changeset maps: a field error, 422
SELECT jsonb_pretty(pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'member',
    pgapp.unique_constraint(pgapp.cast('mr_member', NULL, '{"id": 2, "email": "ada@lovelace.org"}', ARRAY['id', 'email']), 'email')),
    'return')) AS result;
-- the same violation unmapped: 409, with the constraint
SELECT jsonb_pretty(pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'member',
    pgapp.cast('mr_member', NULL, '{"id": 2, "email": "ada@lovelace.org"}', ARRAY['id', 'email'])),
    'return')) AS result;
-- a check constraint, a NOT NULL column and a foreign key, unmapped
SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'books', 'mr_book', '[{"id": 12, "title": "Odd", "copies": -1}]'),
                      'return') - 'changes_so_far' AS check_violation;
SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'books', 'mr_book', '[{"id": 12, "title": null, "copies": 1}]'),
                      'return') - 'changes_so_far' AS not_null_violation;
SELECT pgapp.transact(pgapp.multi_insert_all(pgapp.multi(), 'loans', 'mr_loan', '[{"member_id": 99, "book_id": 10}]'),
                      'return') - 'changes_so_far' AS foreign_key_violation;
-- a row that is not there: 404
SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'weeded', 'mr_book', '999'), 'return') AS missing_row;
-- fn's {"error": v, "status": n}, fn's {"error": v}, fn raising
SELECT jsonb_pretty(pgapp.transact(
    pgapp.multi_run(pgapp.multi_run(pgapp.multi(), 'stock', 'mr_take_copy(jsonb,jsonb)', '{"book": 10}'),
                    'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4000000000000002", "amount": 2}'),
    'return')) AS result;
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'stock', 'mr_take_copy(jsonb,jsonb)', '{"book": 999}'),
                      'return') AS out_of_stock;
SELECT jsonb_pretty(pgapp.transact(
    pgapp.multi_run(pgapp.multi(), 'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4000000000000119", "amount": 2}'),
    'return')) AS result;
-- the copies taken by the failed multis were given back
SELECT id, copies FROM mr_book ORDER BY id;
-- a $ref value that does not fit the column: "is invalid"
SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi_put(pgapp.multi(), 'who', '"nobody"'), 'loan',
    pgapp.cast('mr_loan', NULL, '{"book_id": 10}', ARRAY['member_id', 'book_id']), '{"member_id": {"$ref": "who"}}'),
    'return') AS result;

---------------------------------------------------------------------------
-- A failed multi undoes every earlier step, and its broadcasts
---------------------------------------------------------------------------
SELECT pgapp.transact(
    pgapp.multi_run(
      pgapp.multi_run(
        pgapp.multi_insert(
          pgapp.multi_insert(pgapp.multi(), 'member',
              pgapp.cast('mr_member', NULL, '{"id": 3, "email": "eve@example.com"}', ARRAY['id', 'email'])),
          'loan', pgapp.cast('mr_loan', NULL, '{"book_id": 10}', ARRAY['member_id', 'book_id']),
          '{"member_id": {"$ref": "member.id"}}'),
        'desk', 'mr_tell_desk(jsonb,jsonb)', '{"event": "never sent", "loan": {"$ref": "loan.id"}}'),
      'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4000000000000002"}'),
    'return') -> 'changes_so_far' -> 'desk' AS desk_was_told;
SELECT (SELECT count(*) FROM mr_member WHERE id = 3) AS members, (SELECT count(*) FROM mr_loan WHERE member_id = 3) AS loans;
-- the same multi that pays: its broadcast is sent at commit (and the one above never is)
SELECT pgapp.transact(
    pgapp.multi_run(
      pgapp.multi_run(
        pgapp.multi_insert(
          pgapp.multi_insert(pgapp.multi(), 'member',
              pgapp.cast('mr_member', NULL, '{"id": 3, "email": "eve@example.com"}', ARRAY['id', 'email'])),
          'loan', pgapp.cast('mr_loan', NULL, '{"book_id": 10}', ARRAY['member_id', 'book_id']),
          '{"member_id": {"$ref": "member.id"}}'),
        'desk', 'mr_tell_desk(jsonb,jsonb)', '{"event": "loan made", "loan": {"$ref": "loan.book_id"}}'),
      'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4242424242424242", "amount": 1}'),
    'return') -> 'ok' AS ok;
SELECT pg_temp.wait_for('loan made');
SELECT * FROM pg_temp.received();

---------------------------------------------------------------------------
-- Inside an outer transaction: a savepoint.  Only the multi's writes go.
---------------------------------------------------------------------------
BEGIN;
INSERT INTO mr_book VALUES (20, 'written before', 1);
SELECT pgapp.transact(
    pgapp.multi_run(pgapp.multi_insert_all(pgapp.multi(), 'books', 'mr_book', '[{"id": 21, "title": "by the multi", "copies": 1}]'),
                    'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4000000000000002"}'),
    'return') ->> 'failed_step' AS failed_step;
INSERT INTO mr_book VALUES (22, 'written after', 1);
COMMIT;
SELECT id, title FROM mr_book WHERE id >= 20 ORDER BY id;
-- PL/pgSQL inspects the result and goes on
DO $$
DECLARE r jsonb;
BEGIN
    r := pgapp.transact(pgapp.multi_run(pgapp.multi(), 'stock', 'mr_take_copy(jsonb,jsonb)', '{"book": 999}'), 'return');
    RAISE NOTICE 'ok: %, failed_step: %, status: %, error: %', r -> 'ok', r ->> 'failed_step', r -> 'status', r -> 'error';
END
$$;

---------------------------------------------------------------------------
-- Error modes
---------------------------------------------------------------------------
-- raise: SQLSTATE PT<status>, the failure body as DETAIL
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'member',
    pgapp.validate_required(pgapp.cast('mr_member', NULL, '{"id": 4}', ARRAY['id', 'email']), ARRAY['email'])), 'raise') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_insert(pgapp.multi(), 'member',
    pgapp.cast('mr_member', NULL, '{"id": 1, "email": "dup@example.com"}', ARRAY['id', 'email'])), 'raise') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'fee', 'mr_charge_fee(jsonb,jsonb)',
    '{"card": "4000000000000002"}'), 'raise') $$);
-- NULL follows pgapp.error_mode: auto raises in psql ...
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'fee', 'mr_charge_fee(jsonb,jsonb)',
    '{"card": "4000000000000002"}')) $$);
-- ... and returns inside a PostgREST request, with the HTTP status set
BEGIN;
SELECT set_config('request.method', 'POST', true) IS NOT NULL AS in_request;
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'fee', 'mr_charge_fee(jsonb,jsonb)', '{"card": "4000000000000002"}')) AS body,
       current_setting('response.status') AS status;
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'stock', 'mr_take_copy(jsonb,jsonb)', '{"book": 999}')) ->> 'failed_step' AS failed_step,
       current_setting('response.status') AS status;
COMMIT;
-- return mode set for the session
SET pgapp.error_mode = 'return';
BEGIN;
SELECT pgapp.transact(pgapp.multi_delete(pgapp.multi(), 'weeded', 'mr_book', '999')) ->> 'status' AS status_in_body,
       current_setting('response.status') AS status;
COMMIT;
RESET pgapp.error_mode;
-- errors that are not a step's failure propagate in every mode
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '{"x": 1}'),
    'b', '{"$ref": "a.y"}'), 'return') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '[1, 2]'),
    'b', '{"$ref": "a.2"}'), 'return') $$);
CREATE FUNCTION mr_sloppy(changes jsonb, args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"done": true}'::jsonb $$;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'sloppy', 'mr_sloppy(jsonb,jsonb)'), 'return') $$);
CREATE FUNCTION mr_clash(changes jsonb) RETURNS pgapp.multi LANGUAGE sql AS $$ SELECT pgapp.multi_put(pgapp.multi(), 'a', '1') $$;
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_merge(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'mr_clash(jsonb)'), 'return') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi(), 'loud') $$);
-- a cancel (57014) cannot be caught in PL/pgSQL: shown by psql itself
CREATE FUNCTION mr_cancelled(changes jsonb, args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = '57014', MESSAGE = 'canceling statement due to user request'; END $$;
\set VERBOSITY sqlstate
SELECT pgapp.transact(pgapp.multi_run(pgapp.multi(), 'c', 'mr_cancelled(jsonb,jsonb)'), 'return');
\set VERBOSITY default

---------------------------------------------------------------------------
-- Add-time checks
---------------------------------------------------------------------------
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'a', '2') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_append(pgapp.multi_put(pgapp.multi(), 'a', '1'), pgapp.multi_put(pgapp.multi(), 'a', '2')) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi(), 'a.b', '1') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi(), '', '1') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi(), 'a', '{"$ref": "later"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '{"$ref": "a..x"}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '1'), 'b', '{"$ref": ""}') $$);
-- "a..x" passes when added (its step, "a", is earlier); it finds nothing when run
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(pgapp.multi_put(pgapp.multi_put(pgapp.multi(), 'a', '{"x": 1}'), 'b', '{"$ref": "a..x"}'), 'return') $$);
-- a lone "$ref" that is not a string is malformed; with more keys it is data
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi(), 'a', '{"$ref": 7}') $$);
SELECT pgapp.transact(pgapp.multi_put(pgapp.multi(), 'a', '[{"$ref": "x", "note": 1}]'), 'return') AS plain_data;
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_insert_all(pgapp.multi(), 'b', 'mr_book', '[{"id": 1, "title": "a", "copies": 1}, {"id": 2}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_insert_all(pgapp.multi(), 'b', 'mr_book', '[{"id": 1, "pages": 100}]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_update_all(pgapp.multi(), 'b', pgapp.from('mr_book'), '{"pages": 100}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_run(pgapp.multi(), 'r', 'mr_reminders(jsonb)') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_merge(pgapp.multi(), 'mr_take_copy(jsonb,jsonb)') $$);
-- NULL arguments
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_insert(NULL, 'a', pgapp.cast('mr_book', NULL, '{}', ARRAY['title'])) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_update(pgapp.multi(), NULL, pgapp.cast('mr_book', NULL, '{}', ARRAY['title'])) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_insert(pgapp.multi(), 'a', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_delete(pgapp.multi(), 'a', NULL, '1') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_run(pgapp.multi(), 'a', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_merge(pgapp.multi(), NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_append(pgapp.multi(), NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.transact(NULL) $$);
-- what the other arguments do with NULL
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_put(pgapp.multi(), 'a', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_delete(pgapp.multi(), 'a', 'mr_book', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_insert_all(pgapp.multi(), 'a', 'mr_book', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_update_all(pgapp.multi(), 'a', NULL, '{"copies": 1}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_update_all(pgapp.multi(), 'a', pgapp.from('mr_book'), NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.multi_run(pgapp.multi(), 'a', 'mr_take_copy(jsonb,jsonb)', NULL) $$);

DROP TABLE mr_loan, mr_book, mr_member;

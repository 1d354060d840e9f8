--
-- changesets: pgapp.cast and every validator with Ecto's messages
-- (the function path: changesets as values).
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

CREATE TYPE cs_priority AS ENUM ('low', 'medium', 'high', 'urgent');
CREATE TABLE cs_item (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text,
    code        varchar(5),
    body        jsonb,
    priority    cs_priority,
    qty         integer,
    price       numeric(8,2),
    ratio       float8,
    active      boolean,
    due_date    date,
    starts_at   timestamptz,
    tags        text[],
    ref         uuid
);

---------------------------------------------------------------------------
-- cast: permitted params cast to column types; failures are "is invalid"
---------------------------------------------------------------------------
SELECT jsonb_pretty(pgapp.cast('cs_item', NULL,
    '{"title": "  Write docs  ", "code": "ab", "body": {"a": [1, 2.50]}, "priority": "high",
      "qty": "7", "price": 12.5, "ratio": "0.25", "active": "true", "due_date": "2031-02-03",
      "starts_at": "2031-02-03T04:05:06Z", "tags": ["x", "y"], "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
      "not_permitted": 1}',
    ARRAY['title', 'code', 'body', 'priority', 'qty', 'price', 'ratio', 'active', 'due_date',
          'starts_at', 'tags', 'ref']));

-- every way a value can fail to cast
SELECT pgapp.errors(pgapp.cast('cs_item', NULL,
    '{"title": 5, "code": "too long", "priority": "someday", "qty": 1.5, "price": "ten",
      "ratio": "NaN", "active": "maybe", "due_date": "2031-02-30", "starts_at": "soon",
      "tags": "x", "ref": "not-a-uuid"}',
    ARRAY['title', 'code', 'priority', 'qty', 'price', 'ratio', 'active', 'due_date',
          'starts_at', 'tags', 'ref'])) AS errors;

-- blank strings (after trimming) are null; null over null is no change
SELECT pgapp.cast('cs_item', NULL, '{"title": "   ", "qty": null, "code": ""}',
                  ARRAY['title', 'qty', 'code']) -> 'changes' AS changes;

-- with data: only values that differ are changes
SELECT pgapp.cast('cs_item', '{"id": 1, "title": "Same", "qty": 3, "price": 1.50}',
                  '{"title": "Same", "qty": 4, "price": "1.5"}',
                  ARRAY['title', 'qty', 'price']) -> 'changes' AS changes;
SELECT pgapp.cast('cs_item', '{"id": 1, "title": "Same"}', '{"title": ""}',
                  ARRAY['title']) -> 'changes' AS clears_title;

-- exact numerics survive
SELECT pgapp.cast('cs_item', NULL, '{"price": "123456.78"}', ARRAY['price']) -> 'changes' AS changes;

---------------------------------------------------------------------------
-- validate_required
---------------------------------------------------------------------------
SELECT pgapp.errors(pgapp.validate_required(
    pgapp.cast('cs_item', NULL, '{"title": "  ", "qty": 1}', ARRAY['title', 'qty', 'code']),
    ARRAY['title', 'qty', 'code'])) AS errors;
-- the value in data counts; a change to blank does not
SELECT pgapp.errors(pgapp.validate_required(
    pgapp.cast('cs_item', '{"id": 1, "title": "Kept", "code": "ab"}', '{"code": ""}',
               ARRAY['title', 'code']),
    ARRAY['title', 'code'])) AS errors;
-- Ecto drops the blank fields from changes (Map.drop(changes, fields_with_errors)):
-- "When nil" of Ecto's test "validate_required/3": changes are empty afterwards
SELECT cs -> 'changes' AS changes, cs -> 'errors' AS errors
  FROM pgapp.validate_required(
         pgapp.cast('cs_item', '{"id": 1, "title": "Kept", "code": "ab"}', '{"title": null, "code": "\n"}',
                    ARRAY['title', 'code']),
         ARRAY['title', 'code'], message => 'is blank') AS cs;
-- a present field stays; pgapp.changeset's rules drop the same way
SELECT cs -> 'changes' AS changes
  FROM pgapp.validate_required(
         pgapp.cast('cs_item', '{"id": 1, "title": "Kept", "qty": 1}', '{"title": "", "qty": 2}',
                    ARRAY['title', 'qty']),
         ARRAY['title', 'qty']) AS cs;
-- a field that failed to cast gets no "can't be blank" on top
SELECT pgapp.errors(pgapp.validate_required(
    pgapp.cast('cs_item', NULL, '{"qty": "many"}', ARRAY['qty']), ARRAY['qty'])) AS errors;
-- custom message; required fields are recorded
SELECT pgapp.validate_required(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']),
                               ARRAY['title'], message => 'is required') -> 'errors' AS errors;
SELECT pgapp.validate_required(pgapp.cast('cs_item', NULL, '{"title": "x"}', ARRAY['title']),
                               ARRAY['title']) -> 'required' AS required;

---------------------------------------------------------------------------
-- validate_length: characters (code points) for text, items for arrays
---------------------------------------------------------------------------
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "ab"}', ARRAY['title']),
                                          'title', min => 3)) AS too_short;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcdef"}', ARRAY['title']),
                                          'title', max => 5)) AS too_long;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcd"}', ARRAY['title']),
                                          'title', "is" => 3)) AS wrong_length;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "a"}', ARRAY['title']),
                                          'title', min => 1)) AS ok_single;
-- multibyte characters count once: 'héllo' is 5 characters (6 bytes)
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "héllo"}', ARRAY['title']),
                                          'title', max => 5)) AS multibyte_ok;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"tags": ["a"]}', ARRAY['tags']),
                                          'tags', min => 2)) AS few_items;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"tags": ["a", "b", "c"]}', ARRAY['tags']),
                                          'tags', max => 2)) AS many_items;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"tags": ["a"]}', ARRAY['tags']),
                                          'tags', "is" => 2)) AS wrong_items;
-- Ecto's test "validate_length/3 with string": graphemes by default
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', min => 3, max => 7)) AS min3_max7;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', min => 5, max => 5)) AS min5_max5;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', "is" => 5)) AS is5;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', min => 6)) AS min6;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', max => 4)) AS max4;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', "is" => 10)) AS is10;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "world"}', ARRAY['title']),
                                          'title', "is" => 10, message => 'yada')) AS is10_yada;
-- "e\u0301" (e + combining acute) is one grapheme, two code points, three bytes
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "e\u0301"}', ARRAY['title']),
                                          'title', max => 1)) AS graphemes;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "e\u0301"}', ARRAY['title']),
                                          'title', max => 1, count => 'codepoints')) AS codepoints;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "e\u0301"}', ARRAY['title']),
                                          'title', max => 3, count => 'bytes')) AS bytes_ok;
-- emoji sequences and CR LF are one grapheme each
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL,
           jsonb_build_object('title', U&'\+01F469\200D\+01F4BB' || E'a\r\nb'), ARRAY['title']),
           'title', "is" => 4)) AS clusters;
-- Ecto's test "validate_length/3 with binary": byte(s) messages
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcd"}', ARRAY['title']),
                                          'title', count => 'bytes', min => 3, max => 7)) AS bytes_min3_max7;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcde"}', ARRAY['title']),
                                          'title', count => 'bytes', "is" => 5)) AS bytes_is5;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcde"}', ARRAY['title']),
                                          'title', count => 'bytes', min => 6)) AS bytes_min6;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcde"}', ARRAY['title']),
                                          'title', count => 'bytes', max => 4)) AS bytes_max4;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcde"}', ARRAY['title']),
                                          'title', count => 'bytes', "is" => 10)) AS bytes_is10;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "abcde"}', ARRAY['title']),
                                          'title', count => 'bytes', "is" => 10, message => 'yada')) AS bytes_yada;
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "héllo"}', ARRAY['title']),
                                          'title', count => 'bytes', max => 5)) AS bytes_multibyte;
-- lists ignore count (as Ecto)
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"tags": ["a"]}', ARRAY['tags']),
                                          'tags', min => 2, count => 'bytes')) AS list_items;
-- custom message with %{count}
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "ab"}', ARRAY['title']),
                                          'title', min => 3, message => 'needs %{count}+ letters')) AS custom;
-- not present, or null: no check
SELECT pgapp.errors(pgapp.validate_length(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']),
                                          'title', min => 3)) AS absent;

---------------------------------------------------------------------------
-- validate_number: the first failing bound, in Ecto's order
---------------------------------------------------------------------------
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"qty": 10}', ARRAY['qty']),
                                          'qty', less_than => 10)) AS lt;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"qty": 0}', ARRAY['qty']),
                                          'qty', greater_than => 0)) AS gt;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"qty": 11}', ARRAY['qty']),
                                          'qty', less_than_or_equal_to => 10)) AS lte;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"price": "0.99"}', ARRAY['price']),
                                          'price', greater_than_or_equal_to => 1.5)) AS gte;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"qty": 4}', ARRAY['qty']),
                                          'qty', equal_to => 5)) AS eq;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"qty": 50}', ARRAY['qty']),
                                          'qty', less_than => 10, greater_than => 100)) AS first_bound;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"ratio": 0.5}', ARRAY['ratio']),
                                          'ratio', greater_than => 0, less_than => 1)) AS ok;
SELECT pgapp.errors(pgapp.validate_number(pgapp.cast('cs_item', NULL, '{"qty": -1}', ARRAY['qty']),
                                          'qty', greater_than => 0, message => 'must be positive, not below %{number}')) AS custom;

---------------------------------------------------------------------------
-- validate_inclusion / validate_exclusion / validate_format
---------------------------------------------------------------------------
SELECT pgapp.errors(pgapp.validate_inclusion(pgapp.cast('cs_item', NULL, '{"title": "maybe"}', ARRAY['title']),
                                             'title', '["yes", "no"]')) AS inclusion;
SELECT pgapp.errors(pgapp.validate_inclusion(pgapp.cast('cs_item', NULL, '{"qty": 2}', ARRAY['qty']),
                                             'qty', '[1, 2, 3]')) AS inclusion_number_ok;
SELECT pgapp.errors(pgapp.validate_inclusion(pgapp.cast('cs_item', NULL, '{"priority": "low"}', ARRAY['priority']),
                                             'priority', '["high", "urgent"]')) AS inclusion_enum;
SELECT pgapp.errors(pgapp.validate_exclusion(pgapp.cast('cs_item', NULL, '{"title": "admin"}', ARRAY['title']),
                                             'title', '["admin", "root"]')) AS exclusion;
SELECT pgapp.errors(pgapp.validate_format(pgapp.cast('cs_item', NULL, '{"title": "no at sign"}', ARRAY['title']),
                                          'title', '^[^@[:space:]]+@[^@[:space:]]+$')) AS format;
SELECT pgapp.errors(pgapp.validate_format(pgapp.cast('cs_item', NULL, '{"title": "a@b.example"}', ARRAY['title']),
                                          'title', '^[^@[:space:]]+@[^@[:space:]]+$')) AS format_ok;
-- embedded options: (?i) makes the match case-insensitive
SELECT pgapp.errors(pgapp.validate_format(pgapp.cast('cs_item', NULL, '{"title": "ABC"}', ARRAY['title']),
                                          'title', '(?i)^abc$')) AS format_ci;

-- Ecto raises for a change that is not a string ("expects changes to be strings")
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_format(pgapp.cast('cs_item', NULL, '{"body": 123}', ARRAY['body']), 'body', '[0-9]+', message => 'yada') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_format(
    jsonb_set(pgapp.cast('cs_item', NULL, '{}', ARRAY['due_date']), '{changes}', '{"due_date": 20310101}'),
    'due_date', '^[0-9-]+$') $$);
-- and a format rule on a column that never holds a string is refused
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_format(pgapp.cast('cs_item', NULL, '{"qty": 123}', ARRAY['qty']), 'qty', '[0-9]+') $$);

---------------------------------------------------------------------------
-- validate_future, validate_confirmation, validate_acceptance
---------------------------------------------------------------------------
SELECT pgapp.errors(pgapp.validate_future(pgapp.cast('cs_item', NULL, '{"due_date": "2001-01-01"}', ARRAY['due_date']),
                                          'due_date')) AS past_date;
SELECT pgapp.errors(pgapp.validate_future(pgapp.cast('cs_item', NULL,
           jsonb_build_object('due_date', current_date), ARRAY['due_date']), 'due_date')) AS today;
SELECT pgapp.errors(pgapp.validate_future(pgapp.cast('cs_item', NULL,
           jsonb_build_object('due_date', current_date + 1), ARRAY['due_date']), 'due_date')) AS tomorrow;
SELECT pgapp.errors(pgapp.validate_future(pgapp.cast('cs_item', NULL,
           jsonb_build_object('starts_at', now() - interval '1 second'), ARRAY['starts_at']), 'starts_at')) AS past_time;
-- a change that is not a date is "is invalid" (as Ecto's cast says), not an exception
SELECT pgapp.errors(pgapp.validate_future(
           jsonb_set(pgapp.cast('cs_item', NULL, '{}', ARRAY['due_date']), '{changes}', '{"due_date": "2031-02-30"}'),
           'due_date')) AS unparsable_date;
SELECT pgapp.errors(pgapp.validate_future(
           jsonb_set(pgapp.cast('cs_item', NULL, '{}', ARRAY['due_date']), '{changes}', '{"due_date": 20310101}'),
           'due_date')) AS number_date;

-- validate_confirmation compares the params as sent (Ecto's test "validate_confirmation/3")
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title", "title_confirmation": "title"}', ARRAY['title']),
    'title')) AS matches;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title"}', ARRAY['title']), 'title')) AS no_confirmation_param;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title"}', ARRAY['title']), 'title', required => false)) AS not_required;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title"}', ARRAY['title']), 'title', required => true)) AS required;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title", "title_confirmation": null}', ARRAY['title']),
    'title')) AS null_confirmation;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title", "title_confirmation": "not title"}', ARRAY['title']),
    'title')) AS mismatch;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title", "title_confirmation": "not title"}', ARRAY['title']),
    'title', message => 'doesn''t match field below')) AS custom_message;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title"}', ARRAY['title']),
    'title', message => 'password doesn''t match')) AS skip_when_no_param;
-- with casting: the params are compared, "1" and "1"
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"qty": "1", "qty_confirmation": "1"}', ARRAY['qty']), 'qty')) AS with_casting;
-- a blank change, a missing change: no match; message applies to them too
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"password": "", "password_confirmation": "password"}', ARRAY['title']),
    'password')) AS blank_change;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"password_confirmation": "password"}', ARRAY['title']),
    'password')) AS missing_change;
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"password_confirmation": "password"}', ARRAY['title']),
    'password', message => 'yada')) AS missing_change_message;
-- params are not trimmed: " title " is not "title" (Ecto compares params as sent)
SELECT pgapp.errors(pgapp.validate_confirmation(
    pgapp.cast('cs_item', NULL, '{"title": "title", "title_confirmation": " title "}', ARRAY['title']),
    'title')) AS untrimmed;

SELECT pgapp.errors(pgapp.validate_acceptance(
    pgapp.cast('cs_item', NULL, '{"terms": false}', ARRAY[]::text[]), 'terms')) AS refused;
SELECT pgapp.errors(pgapp.validate_acceptance(
    pgapp.cast('cs_item', NULL, '{}', ARRAY[]::text[]), 'terms')) AS missing;
SELECT pgapp.errors(pgapp.validate_acceptance(
    pgapp.cast('cs_item', NULL, '{"terms": "true"}', ARRAY[]::text[]), 'terms')) AS accepted;

---------------------------------------------------------------------------
-- errors accumulate; the newest comes first within a field; add_error
---------------------------------------------------------------------------
SELECT pgapp.errors(
    pgapp.validate_format(
        pgapp.validate_length(
            pgapp.validate_required(
                pgapp.cast('cs_item', NULL, '{"title": "<b>", "qty": 0}', ARRAY['title', 'qty', 'code']),
                ARRAY['title', 'code']),
            'title', min => 5),
        'title', '^[a-z ]+$')) AS errors;
SELECT pgapp.errors(pgapp.add_error(
    pgapp.validate_length(pgapp.cast('cs_item', NULL, '{"title": "ab"}', ARRAY['title']), 'title', min => 3),
    'title', 'is already used by %{owner} (%{count} times)', '{"owner": "alice", "count": 2}')) AS custom_first;
SELECT pgapp.is_valid(pgapp.cast('cs_item', NULL, '{"title": "ok"}', ARRAY['title'])) AS valid,
       pgapp.is_valid(pgapp.add_error(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'base', 'nope')) AS invalid;
-- an unchanged changeset passes through untouched
SELECT pgapp.validate_length(cs, 'title', max => 10) = cs AS unchanged
  FROM pgapp.cast('cs_item', NULL, '{"title": "fine"}', ARRAY['title']) AS cs;

-- constraint declarations are recorded for pgapp.insert / pgapp.update
SELECT pgapp.check_constraint(pgapp.foreign_key_constraint(pgapp.unique_constraint(
         pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title'),
         'qty', name => 'cs_item_qty_fkey', message => 'no such thing'),
         'price', 'cs_item_price_check') -> 'constraints' AS constraints;

---------------------------------------------------------------------------
-- bad input
---------------------------------------------------------------------------
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('cs_item', NULL, '{}', ARRAY['titel']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('no_such_table', NULL, '{}', ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('cs_item', NULL, '[1]', ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('cs_item', '"x"', '{}', ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('cs_item', NULL, NULL, ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('cs_item', NULL, '{}', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('cs_item', NULL, '{}', ARRAY[NULL]) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.cast('pg_class_oid_index', NULL, '{}', ARRAY[]::text[]) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_required(NULL, ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_required('{"source": "cs_item"}', ARRAY['title']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_required('{"source": "cs_item", "permitted": [], "changes": {}, "errors": {}, "valid": true}', ARRAY['titel']) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_length(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', max => 1, count => 'letters') $$);
-- "valid" is recomputed from the errors, never trusted
SELECT pgapp.is_valid(jsonb_set(pgapp.add_error(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', 'nope'),
                                '{valid}', 'true')) AS valid_true_with_errors;
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_length(pgapp.cast('cs_item', NULL, '{}', ARRAY['qty']), 'qty', min => 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_length(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_length(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', min => -1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_length(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', min => 5, max => 2) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_number(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', less_than => 1) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_number(pgapp.cast('cs_item', NULL, '{}', ARRAY['qty']), 'qty') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_inclusion(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', '{"a": 1}') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_inclusion(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_format(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', '([a-z]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_future(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_transition(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', 'no_such_machine') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.validate_transition(pgapp.cast('cs_item', NULL, '{}', ARRAY['qty']), 'qty', 'm') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.add_error(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', '') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.add_error(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', 'x', '[]') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_constraint(pgapp.cast('cs_item', NULL, '{}', ARRAY['title']), 'title', NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.is_valid('{"valid": "yes"}') $$);
-- the domain keeps arbitrary JSON out
SELECT * FROM pg_temp.show($$ SELECT '{"title": "x"}'::pgapp.changeset $$);

DROP TABLE cs_item;
DROP TYPE cs_priority;

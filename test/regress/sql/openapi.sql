--
-- openapi: pgapp.json_schema (a changeset's rules as JSON Schema) and
-- pgapp.openapi (an API schema as PostgREST serves it).  The full documents
-- are also validated with an OpenAPI validator by scripts/test (suite openapi).
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

CREATE TYPE oa_priority AS ENUM ('low', 'high');
CREATE TABLE oa_item (
    id       int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title    varchar(80) NOT NULL,
    note     text,
    priority oa_priority NOT NULL DEFAULT 'low',
    state    text,
    qty      integer,
    tags     text[],
    due      date
);
SELECT pgapp.define_machine('oa_state', '{"new": ["old"], "old": []}');
SELECT pgapp.define_changeset('oa_item', 'oa_item',
    ARRAY['title', 'note', 'priority', 'state', 'qty', 'tags', 'due'],
    '[{"required": ["title"]},
      {"length": "title", "min": 2},
      {"length": "tags", "is": 2},
      {"number": "qty", "greater_than": 0, "less_than_or_equal_to": 10},
      {"inclusion": "note", "in": ["a", "b"]},
      {"exclusion": "title", "in": ["admin"]},
      {"format": "title", "pattern": "^[A-Z]"},
      {"future": "due"},
      {"transition": "state", "machine": "oa_state"},
      {"unique_constraint": "title"}]');

SELECT jsonb_pretty(pgapp.json_schema('oa_item'));

SELECT pgapp.json_schema_type('integer'), pgapp.json_schema_type('numeric'),
       pgapp.json_schema_type('timestamptz'), pgapp.json_schema_type('uuid'),
       pgapp.json_schema_type('varchar', 14), pgapp.json_schema_type('int[]'),
       pgapp.json_schema_type('oa_priority');

CREATE SCHEMA oa_api;
CREATE FUNCTION oa_api.add_item(title text, qty integer DEFAULT NULL) RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
    SELECT pgapp.insert(pgapp.changeset('oa_item', jsonb_strip_nulls(jsonb_build_object('title', title, 'qty', qty))))
$$;
COMMENT ON FUNCTION oa_api.add_item IS 'Add an item
Titles start with a capital letter.
@changeset oa_item';
CREATE FUNCTION oa_api.items(min_qty integer DEFAULT 0) RETURNS SETOF oa_item
LANGUAGE sql STABLE AS $$ SELECT * FROM oa_item WHERE coalesce(qty, 0) >= min_qty $$;
CREATE FUNCTION oa_api.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

SELECT d -> 'openapi' AS openapi, d -> 'info' AS info,
       (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(d -> 'paths') AS k) AS paths
  FROM pgapp.openapi('oa_api') AS d;
-- POST only for a VOLATILE function, linked changeset: constrained body and 422
SELECT jsonb_pretty(pgapp.openapi('oa_api') -> 'paths' -> '/rpc/add_item');
-- GET and POST for a STABLE one; SETOF a table is an array of rows
SELECT p -> 'get' -> 'parameters' AS get_parameters,
       p -> 'post' -> 'responses' -> '200' -> 'content' -> 'application/json' -> 'schema' ->> 'type' AS result_type,
       p ? 'get' AS has_get
  FROM (SELECT pgapp.openapi('oa_api') -> 'paths' -> '/rpc/items' AS p) AS s;
SELECT jsonb_pretty(pgapp.openapi('oa_api') -> 'components' -> 'schemas' -> 'ValidationErrors');

-- a role sees only the functions it may execute
CREATE ROLE oa_reader;
GRANT USAGE ON SCHEMA oa_api TO oa_reader;
REVOKE EXECUTE ON FUNCTION oa_api.add_item(text, integer) FROM PUBLIC;
SET ROLE oa_reader;
SELECT jsonb_object_keys(pgapp.openapi('oa_api') -> 'paths') AS visible;
RESET ROLE;

-- bad input
SELECT * FROM pg_temp.show($$ SELECT pgapp.json_schema('missing') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.json_schema(NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.openapi('missing') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.openapi(NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.json_schema_type(999999) $$);
-- a changeset whose table changed since it was defined
ALTER TABLE oa_item RENAME COLUMN note TO remark;
SELECT * FROM pg_temp.show($$ SELECT pgapp.json_schema('oa_item') $$);

\set VERBOSITY terse
DROP SCHEMA oa_api CASCADE;
\set VERBOSITY default
DROP ROLE oa_reader;
SELECT pgapp.drop_changeset('oa_item');
SELECT pgapp.drop_machine('oa_state');
DROP TABLE oa_item;
DROP TYPE oa_priority;

-- test/openapi/fixtures.sql: an API schema with the shapes pgapp.openapi()
-- must describe: a whole-body jsonb argument, set-returning and OUT-parameter
-- functions, overloads, domains, arrays, varchar(n), no comment at all.
CREATE SCHEMA openapi_fixture;
COMMENT ON SCHEMA openapi_fixture IS 'Fixture API for the OpenAPI check';

CREATE DOMAIN openapi_fixture.email AS text CHECK (VALUE ~ '@');
CREATE TABLE openapi_fixture.account (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email   openapi_fixture.email NOT NULL UNIQUE,
    handle  varchar(20) NOT NULL,
    tags    text[],
    score   numeric(5,2)
);
SELECT pgapp.define_changeset('account_create', 'openapi_fixture.account',
    ARRAY['email', 'handle', 'tags', 'score'],
    '[{"required": ["email", "handle"]},
      {"format": "handle", "pattern": "^[a-z0-9_]+$"},
      {"length": "tags", "max": 5},
      {"number": "score", "greater_than_or_equal_to": 0, "less_than": 100},
      {"exclusion": "handle", "in": ["admin", "root"]},
      {"unique_constraint": "email"}]');

CREATE FUNCTION openapi_fixture.create_account(email openapi_fixture.email, handle varchar(20),
                                               tags text[] DEFAULT NULL, score numeric DEFAULT NULL)
RETURNS jsonb LANGUAGE sql VOLATILE
AS $$ SELECT pgapp.insert(pgapp.changeset('account_create', jsonb_strip_nulls(jsonb_build_object(
          'email', email, 'handle', handle, 'tags', tags, 'score', score)))) $$;
COMMENT ON FUNCTION openapi_fixture.create_account IS
'Create an account
The handle is lower case.
@changeset account_create';

CREATE FUNCTION openapi_fixture.import(jsonb) RETURNS integer LANGUAGE sql VOLATILE
AS $$ SELECT jsonb_array_length($1) $$;
COMMENT ON FUNCTION openapi_fixture.import IS 'Import a JSON array (the whole request body)';

CREATE FUNCTION openapi_fixture.accounts(min_score numeric DEFAULT 0)
RETURNS SETOF openapi_fixture.account LANGUAGE sql STABLE
AS $$ SELECT * FROM openapi_fixture.account WHERE coalesce(score, 0) >= min_score $$;

CREATE FUNCTION openapi_fixture.stats(OUT total bigint, OUT average numeric)
LANGUAGE sql STABLE
AS $$ SELECT count(*), avg(score) FROM openapi_fixture.account $$;

CREATE FUNCTION openapi_fixture.echo(message text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT message $$;
CREATE FUNCTION openapi_fixture.echo(message text, times integer) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT repeat(message, times) $$;

CREATE FUNCTION openapi_fixture.audit() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RETURN NEW; END $$;

-- sql/parts/40_changesets.sql: changesets (docs/changesets.md)

/*
 * A changeset: {"source", "action", "name", "permitted", "data", "params",
 * "changes", "errors", "valid", "required", "constraints"}.  Built by
 * pgapp.cast or pgapp.changeset and passed through validators like an Ecto
 * pipe.  Every function that takes one checks all of it first (22023), and
 * recomputes "valid" from "errors".
 */
CREATE DOMAIN pgapp.changeset AS jsonb
    CONSTRAINT changeset_shape CHECK (
        pg_catalog.jsonb_typeof(VALUE) OPERATOR(pg_catalog.=) 'object'
        AND VALUE OPERATOR(pg_catalog.?&) ARRAY['source', 'changes', 'errors', 'valid']);

COMMENT ON DOMAIN pgapp.changeset IS
'An Ecto-style changeset: source, action, name, permitted, data, params, changes, errors, valid, required, constraints';

/*
 * Named changesets: rules compiled and checked by pgapp.define_changeset,
 * read by pgapp.changeset() and the validate_table trigger.
 */
CREATE TABLE pgapp.changeset_def (
    name        text PRIMARY KEY,
    source      regclass NOT NULL,
    permitted   text[] NOT NULL,
    rules       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE pgapp.changeset_def IS
'Named changesets (pgapp.define_changeset): source table, permitted fields, ordered rules';

SELECT pg_catalog.pg_extension_config_dump('pgapp.changeset_def', '');

CREATE FUNCTION pgapp.cast(source regclass, data jsonb, params jsonb, permitted text[])
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_cast'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_required(cs pgapp.changeset, fields text[], message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_required'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_length(cs pgapp.changeset, field text,
    min int DEFAULT NULL, max int DEFAULT NULL, "is" int DEFAULT NULL, message text DEFAULT NULL,
    count text DEFAULT 'graphemes')
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_length'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_number(cs pgapp.changeset, field text,
    less_than numeric DEFAULT NULL, greater_than numeric DEFAULT NULL,
    less_than_or_equal_to numeric DEFAULT NULL, greater_than_or_equal_to numeric DEFAULT NULL,
    equal_to numeric DEFAULT NULL, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_number'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_inclusion(cs pgapp.changeset, field text, allowed jsonb, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_inclusion'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_exclusion(cs pgapp.changeset, field text, reserved jsonb, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_exclusion'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_format(cs pgapp.changeset, field text, pattern text, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_format'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_future(cs pgapp.changeset, field text, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_future'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_transition(cs pgapp.changeset, field text, machine text, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_transition'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_confirmation(cs pgapp.changeset, field text, message text DEFAULT NULL,
    required boolean DEFAULT false)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_confirmation'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.validate_acceptance(cs pgapp.changeset, field text, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_validate_acceptance'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.add_error(cs pgapp.changeset, field text, message text, opts jsonb DEFAULT '{}')
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_add_error'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.unique_constraint(cs pgapp.changeset, field text, name text DEFAULT NULL, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_unique_constraint'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.foreign_key_constraint(cs pgapp.changeset, field text, name text DEFAULT NULL, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_foreign_key_constraint'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.check_constraint(cs pgapp.changeset, field text, name text, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_check_constraint'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.exclusion_constraint(cs pgapp.changeset, field text, name text DEFAULT NULL, message text DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_exclusion_constraint'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.is_valid(cs pgapp.changeset)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_is_valid'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION pgapp.errors(cs pgapp.changeset)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_errors'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION pgapp.insert(cs pgapp.changeset)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_insert'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.update(cs pgapp.changeset)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_update'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.define_changeset(name text, source regclass, permitted text[], rules jsonb DEFAULT '[]')
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_define_changeset'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.drop_changeset(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_drop_changeset'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.changeset(name text, params jsonb, data jsonb DEFAULT NULL)
RETURNS pgapp.changeset
AS 'MODULE_PATHNAME', 'pgapp_changeset'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp._changeset_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_changeset_trigger'
LANGUAGE C;

CREATE FUNCTION pgapp.validate_table(tbl regclass, changeset_name text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_validate_table'
LANGUAGE C VOLATILE;

-- Every backend's cached changesets are dropped when a definition changes
-- (pgapp._definitions_changed, in 10_core).
CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgapp.changeset_def
    FOR EACH STATEMENT EXECUTE FUNCTION pgapp._definitions_changed();

-- Privileges: definitions are read by everyone (rules are not secret) and
-- changed only through define_changeset and drop_changeset, by pgapp_admin
-- members who own the table; the functions check and validate as the
-- caller, then write with the extension owner's rights, and nobody else may
-- write the table.  The trigger runs with the extension owner's rights.
REVOKE ALL ON pgapp.changeset_def FROM PUBLIC;
GRANT SELECT ON pgapp.changeset_def TO PUBLIC;
REVOKE ALL ON FUNCTION pgapp._changeset_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_changeset(text, regclass, text[], jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.drop_changeset(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.validate_table(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._changeset_trigger() TO pgapp_admin;
GRANT EXECUTE ON FUNCTION pgapp.define_changeset(text, regclass, text[], jsonb),
    pgapp.drop_changeset(text), pgapp.validate_table(regclass, text) TO pgapp_admin;


/* sql/pgapp--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pgapp" to load this file. \quit

/*
 * Roles.  pgapp_admin may run the administrative functions (statistics
 * resets now; queue and limiter administration in later modules).  Roles are
 * cluster-wide, so it is created only when missing and survives DROP
 * EXTENSION, like pgsodium's roles.
 */
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'pgapp_admin') THEN
        CREATE ROLE pgapp_admin NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA pgapp TO PUBLIC;

---------------------------------------------------------------------------
-- Core: version and health
---------------------------------------------------------------------------

CREATE FUNCTION pgapp.version()
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_version'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION pgapp.version() IS
'Version of the loaded pgapp library';

CREATE FUNCTION pgapp.health()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_health'
LANGUAGE C STRICT STABLE;

COMMENT ON FUNCTION pgapp.health() IS
'State of pgapp: preloading, shared memory, workers, pg_cron, per-module status';

---------------------------------------------------------------------------
-- Error model (docs/errors.md)
---------------------------------------------------------------------------

CREATE FUNCTION pgapp.report_error(
    status int,
    body jsonb,
    message text DEFAULT NULL,
    hint text DEFAULT NULL,
    column_name text DEFAULT NULL,
    table_name regclass DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_report_error'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.report_error(int, jsonb, text, text, text, regclass) IS
'Raise SQLSTATE PT<status> with body in DETAIL, or set response.status and return body, per pgapp.error_mode';

CREATE FUNCTION pgapp.error_mode()
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_error_mode_effective'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION pgapp.error_mode() IS
'The error mode in effect now, raise or return, with pgapp.error_mode = auto resolved';

CREATE TYPE pgapp.error_stat AS (
    status int,
    sqlstate text,
    raised bigint,
    returned bigint,
    stats_reset timestamptz
);

CREATE FUNCTION pgapp.error_stats()
RETURNS SETOF pgapp.error_stat
AS 'MODULE_PATHNAME', 'pgapp_error_stats'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.error_stats AS
    SELECT * FROM pgapp.error_stats();

COMMENT ON VIEW pgapp.error_stats IS
'Errors reported through the error model since the last reset, per HTTP status';

GRANT SELECT ON pgapp.error_stats TO PUBLIC;

CREATE FUNCTION pgapp.error_stats_reset()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'pgapp_error_stats_reset'
LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION pgapp.error_stats_reset() IS
'Zero the counters of pgapp.error_stats (pgapp_admin)';

REVOKE ALL ON FUNCTION pgapp.error_stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.error_stats_reset() TO pgapp_admin;

---------------------------------------------------------------------------
-- Changesets (docs/changesets.md)
---------------------------------------------------------------------------

/*
 * A changeset: {"source", "data", "params", "changes", "errors", "valid",
 * "required", "constraints"}.  Built by pgapp.cast or pgapp.changeset and
 * passed through validators like an Ecto pipe.
 */
CREATE DOMAIN pgapp.changeset AS jsonb
    CONSTRAINT changeset_shape CHECK (
        pg_catalog.jsonb_typeof(VALUE) OPERATOR(pg_catalog.=) 'object'
        AND VALUE OPERATOR(pg_catalog.?&) ARRAY['source', 'changes', 'errors', 'valid']);

COMMENT ON DOMAIN pgapp.changeset IS
'An Ecto-style changeset: source, data, params, changes, errors, valid, required, constraints';

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
    min int DEFAULT NULL, max int DEFAULT NULL, "is" int DEFAULT NULL, message text DEFAULT NULL)
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

CREATE FUNCTION pgapp.validate_confirmation(cs pgapp.changeset, field text, message text DEFAULT NULL)
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
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION pgapp.errors(cs pgapp.changeset)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_errors'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

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

---------------------------------------------------------------------------
-- Status machines (docs/status-machines.md)
---------------------------------------------------------------------------

CREATE TABLE pgapp.machine (
    name        text PRIMARY KEY,
    transitions jsonb NOT NULL,
    initial     text[],
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE pgapp.machine IS
'Status machines (pgapp.define_machine): allowed transitions per state, initial states';

SELECT pg_catalog.pg_extension_config_dump('pgapp.machine', '');

CREATE TABLE pgapp.transition_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl         regclass NOT NULL,
    row_key     jsonb NOT NULL,
    col         name NOT NULL,
    machine     text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    changed_by  name NOT NULL DEFAULT CURRENT_USER,
    txid        xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
);

CREATE INDEX transition_log_row ON pgapp.transition_log (tbl, row_key);

COMMENT ON TABLE pgapp.transition_log IS
'Status changes of tables attached with pgapp.enforce_transitions(..., log => true)';

SELECT pg_catalog.pg_extension_config_dump('pgapp.transition_log', '');

CREATE FUNCTION pgapp.define_machine(machine text, transitions jsonb, initial text[] DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_define_machine'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.drop_machine(machine text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_drop_machine'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp._transition_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_transition_trigger'
LANGUAGE C;

CREATE FUNCTION pgapp.enforce_transitions(tbl regclass, col name, machine text, log boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_enforce_transitions'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.transition_allowed(machine text, from_state text, to_state text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_transition_allowed'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.allowed_transitions(machine text, from_state text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'pgapp_allowed_transitions'
LANGUAGE C STABLE;

-- Definitions change rarely and are read on every validated write: backends
-- cache them and this trigger tells every backend to drop its cache.
CREATE FUNCTION pgapp._definitions_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_definitions_changed'
LANGUAGE C;

CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgapp.changeset_def
    FOR EACH STATEMENT EXECUTE FUNCTION pgapp._definitions_changed();
CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgapp.machine
    FOR EACH STATEMENT EXECUTE FUNCTION pgapp._definitions_changed();

-- Privileges: definitions are read by everyone (rules are not secret) and
-- changed through the define_* functions by pgapp_admin; the triggers and
-- the transition log run with the extension owner's rights.
GRANT SELECT ON pgapp.changeset_def, pgapp.machine, pgapp.transition_log TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgapp.changeset_def, pgapp.machine TO pgapp_admin;
REVOKE ALL ON FUNCTION pgapp._changeset_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._transition_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._definitions_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_changeset(text, regclass, text[], jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.drop_changeset(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.validate_table(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_machine(text, jsonb, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.drop_machine(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.enforce_transitions(regclass, name, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._changeset_trigger(), pgapp._transition_trigger() TO pgapp_admin;
GRANT EXECUTE ON FUNCTION pgapp.define_changeset(text, regclass, text[], jsonb),
    pgapp.drop_changeset(text), pgapp.validate_table(regclass, text),
    pgapp.define_machine(text, jsonb, text[]), pgapp.drop_machine(text),
    pgapp.enforce_transitions(regclass, name, text, boolean) TO pgapp_admin;

---------------------------------------------------------------------------
-- Tell a running PostgREST to reload its schema cache (delivered at commit).
-- Every upgrade script ends with the same statement.
---------------------------------------------------------------------------
NOTIFY pgrst, 'reload schema';

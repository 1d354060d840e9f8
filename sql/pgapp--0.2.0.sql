-- sql/parts/00_header.sql: the roles pgapp_admin and pgapp_worker join, the schema (docs/install.md)

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pgapp" to load this file. \quit

/*
 * Roles.  pgapp_admin may run the administrative functions (definitions on
 * the tables its members own, queues, limiters, statistics); pgapp_worker
 * (created with the jobs below) is what external job workers log in as
 * members of.  Roles are cluster-wide, so each is created only when missing
 * and survives DROP EXTENSION, like pgsodium's roles; a database that
 * installs pgapp later adopts them.  Adopting is safe only for a role that
 * carries nothing but what pgapp grants it, so a role of that name that can
 * log in, has any attribute beyond NOLOGIN, or is a member of another role
 * (whose rights every pgapp admin or worker would inherit) is refused.  Its
 * members stay: they are the admins and workers granted it before.
 */
DO $$
DECLARE
    r record;
    attrs text;
BEGIN
    FOR r IN SELECT a.rolname, a.rolsuper, a.rolcanlogin, a.rolcreaterole, a.rolcreatedb,
                    a.rolreplication, a.rolbypassrls,
                    ARRAY(SELECT m.roleid::pg_catalog.regrole::pg_catalog.text
                            FROM pg_catalog.pg_auth_members AS m
                           WHERE m.member OPERATOR(pg_catalog.=) a.oid ORDER BY 1) AS member_of
               FROM pg_catalog.pg_roles AS a
              WHERE a.rolname OPERATOR(pg_catalog.=) ANY (ARRAY['pgapp_admin', 'pgapp_worker'])
              ORDER BY a.rolname
    LOOP
        attrs := pg_catalog.concat_ws(', ',
            CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolcanlogin THEN 'LOGIN' END,
            CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
            CASE WHEN r.rolreplication THEN 'REPLICATION' END, CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END);
        IF attrs OPERATOR(pg_catalog.<>) '' THEN
            RAISE EXCEPTION 'role "%" already exists with %', r.rolname, attrs
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pgapp creates this role NOLOGIN with no other attribute and would adopt the existing one.',
                      HINT = pg_catalog.format('Remove the attributes (ALTER ROLE %I NOSUPERUSER NOLOGIN NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS) or drop the role, then create the extension.', r.rolname);
        END IF;
        IF pg_catalog.cardinality(r.member_of) OPERATOR(pg_catalog.>) 0 THEN
            RAISE EXCEPTION 'role "%" already exists as a member of %', r.rolname,
                            pg_catalog.array_to_string(r.member_of, ', ')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'pgapp would adopt the existing role, and its members would have these roles'' rights too.',
                      HINT = pg_catalog.format('Revoke those roles from %I (REVOKE ... FROM %I) or drop it, then create the extension.', r.rolname, r.rolname);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'pgapp_admin') THEN
        CREATE ROLE pgapp_admin NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA pgapp TO PUBLIC;

-- sql/parts/10_core.sql: version, health, the definition cache trigger (docs/core.md)

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

-- Definitions change rarely and are read on every validated write: backends
-- cache them and this trigger tells every backend to drop its cache.
CREATE FUNCTION pgapp._definitions_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_definitions_changed'
LANGUAGE C;
REVOKE ALL ON FUNCTION pgapp._definitions_changed() FROM PUBLIC;

-- sql/parts/20_error.sql: error model (docs/errors.md)

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

-- sql/parts/30_machines.sql: status machines (docs/machines.md)

CREATE TABLE pgapp.machine (
    name        text PRIMARY KEY,
    transitions jsonb NOT NULL,
    initial     text[],
    -- the role that defined it: only it (and its members) may change or drop it
    owner       regrole NOT NULL,
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
'Status changes of tables attached with pgapp.enforce_transitions(..., log => true); each role sees those of the rows it may read';

SELECT pg_catalog.pg_extension_config_dump('pgapp.transition_log', '');

/*
 * May the current user read the row of tbl whose primary key is row_key
 * ({"id": 1}), and the given columns?  The key and the columns must be
 * readable (column or table SELECT privilege), and when row-level security
 * applies to the user, the row must be one its policies show now.  Runs as
 * the caller (never SECURITY DEFINER): the lookup of the row is the
 * caller's own query, with the caller's policies.  NULL or false when the
 * table, a column or the row is gone, or row_key is not the whole key.  The
 * row of a partition is looked for in the partitioned table it belongs to
 * (the log names the partition), with that table's privileges and policies.
 */
CREATE FUNCTION pgapp.row_visible(tbl regclass, row_key jsonb, columns name[] DEFAULT '{}')
RETURNS boolean
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys integer;
    readable boolean;
    cond text;
    visible boolean;
BEGIN
    IF jsonb_typeof(row_key) <> 'object' THEN
        RETURN false;
    END IF;
    -- a partition's rows are read through its root, with the root's rights
    IF (SELECT c.relispartition FROM pg_class AS c WHERE c.oid = tbl) THEN
        tbl := pg_partition_root(tbl);
    END IF;
    -- the named columns must exist and be readable
    IF EXISTS (SELECT 1 FROM unnest(columns) AS c(name)
                LEFT JOIN pg_attribute AS a
                       ON a.attrelid = tbl AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped
               WHERE a.attnum IS NULL OR NOT coalesce(has_column_privilege(tbl, a.attnum, 'SELECT'), false)) THEN
        RETURN false;
    END IF;
    -- row_key must be exactly the primary key, every column of it readable
    SELECT count(*),
           bool_and(coalesce(has_column_privilege(tbl, a.attnum, 'SELECT'), false) AND row_key ? a.attname),
           string_agg(CASE WHEN t.typnamespace = 'pg_catalog'::regnamespace
                           THEN format('t.%I = ($1 ->> %L)::%s', a.attname, a.attname,
                                       format_type(a.atttypid, a.atttypmod))
                           ELSE format('t.%I::text = ($1 ->> %L)', a.attname, a.attname) END,
                      ' AND ')
      INTO keys, readable, cond
      FROM pg_index AS i
      JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      JOIN pg_type AS t ON t.oid = a.atttypid
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF keys = 0 OR NOT readable OR keys <> (SELECT count(*) FROM jsonb_object_keys(row_key)) THEN
        RETURN false;
    END IF;
    IF NOT row_security_active(tbl) THEN
        RETURN true;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s AS t WHERE %s)', tbl, cond) INTO visible USING row_key;
    RETURN visible;
END
$$;

COMMENT ON FUNCTION pgapp.row_visible(regclass, jsonb, name[]) IS
'Whether the caller may read the row of tbl with primary key row_key (and the columns): privileges and row-level security';

-- Each role sees the entries of the rows it may read: SELECT on the key
-- and the status column, and, under row-level security, the row itself as
-- its policies show it now.  The trigger writes as the log's owner (the
-- extension's), whom the policy does not restrict.
ALTER TABLE pgapp.transition_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY transition_log_readable ON pgapp.transition_log FOR SELECT
    USING (pgapp.row_visible(tbl, row_key, ARRAY[col]));

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

-- Every backend's cached machines are dropped when a definition changes
-- (pgapp._definitions_changed, in 10_core).
CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgapp.machine
    FOR EACH STATEMENT EXECUTE FUNCTION pgapp._definitions_changed();

-- Privileges: machines are read by everyone and changed only through
-- define_machine and drop_machine, by pgapp_admin members who own the
-- machine; the functions check as the caller, then write with the extension
-- owner's rights, and nobody else may write these tables.  The trigger and
-- the transition log run with the extension owner's rights; the log shows
-- each role the entries of the rows it may read (policy above).
REVOKE ALL ON pgapp.machine, pgapp.transition_log FROM PUBLIC;
GRANT SELECT ON pgapp.machine, pgapp.transition_log TO PUBLIC;
REVOKE ALL ON FUNCTION pgapp._transition_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_machine(text, jsonb, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.drop_machine(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.enforce_transitions(regclass, name, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._transition_trigger() TO pgapp_admin;
GRANT EXECUTE ON FUNCTION pgapp.define_machine(text, jsonb, text[]), pgapp.drop_machine(text),
    pgapp.enforce_transitions(regclass, name, text, boolean) TO pgapp_admin;

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

-- sql/parts/50_queries.sql: composable queries (docs/queries.md)

/*
 * A query: {"source", "where": [...], "order": [...]} and optionally
 * "scopes", "stats" and "preload" (names), built by pgapp.from
 * and the builders, run by the executors as one prepared statement.
 */
CREATE DOMAIN pgapp.query AS jsonb
    CONSTRAINT query_shape CHECK (
        pg_catalog.jsonb_typeof(VALUE) OPERATOR(pg_catalog.=) 'object'
        AND VALUE OPERATOR(pg_catalog.?&) ARRAY['source', 'where', 'order']);

COMMENT ON DOMAIN pgapp.query IS
'A composable query: source, conditions, ordering (build with pgapp.from and the builders)';

-- The fields each table allows to sort by (pgapp.allow_sort).
CREATE TABLE pgapp.sort_allowed (
    source  regclass PRIMARY KEY,
    fields  text[] NOT NULL
);

COMMENT ON TABLE pgapp.sort_allowed IS
'Sort whitelists: the fields pgapp.sort_by accepts per table (pgapp.allow_sort)';

SELECT pg_catalog.pg_extension_config_dump('pgapp.sort_allowed', '');

CREATE FUNCTION pgapp."from"(source regclass)
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_from'
LANGUAGE C STRICT STABLE;

CREATE FUNCTION pgapp.filter_by(q pgapp.query, field text, value anyelement)
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_filter_by'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.filter_range(q pgapp.query, field text, from_value anycompatible, to_value anycompatible)
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_filter_range'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.escape_like(value text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_escape_like'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION pgapp.search(q pgapp.query, term text, fields text[])
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_search'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.sort_by(q pgapp.query, field text, direction text DEFAULT 'asc')
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_sort_by'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.allow_sort(source regclass, fields text[])
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_allow_sort'
LANGUAGE C VOLATILE;

-- Scopes (named conditions) and stats (named per-row expressions), defined
-- by a table's owner and checked when defined; "t" is the row.
CREATE TABLE pgapp.query_expression (
    source      regclass NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('scope', 'stat')),
    name        text NOT NULL,
    expression  text NOT NULL,
    -- the schemas its names resolve in: the definer's search_path when it
    -- was defined (pg_temp last); every query that uses it runs with it
    search_path text NOT NULL,
    PRIMARY KEY (source, kind, name)
);

COMMENT ON TABLE pgapp.query_expression IS
'Scopes (pgapp.define_scope) and stats (pgapp.define_stat) of query sources';

SELECT pg_catalog.pg_extension_config_dump('pgapp.query_expression', '');

CREATE FUNCTION pgapp.define_scope(source regclass, name text, condition_sql text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_define_scope'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.define_stat(source regclass, name text, expression_sql text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_define_stat'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.drop_scope(source regclass, name text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_drop_scope'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp.drop_stat(source regclass, name text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_drop_stat'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.drop_scope(regclass, text) IS
'Remove a scope of a table (its owner, pgapp_admin)';
COMMENT ON FUNCTION pgapp.drop_stat(regclass, text) IS
'Remove a stat of a table (its owner, pgapp_admin)';

CREATE FUNCTION pgapp.scope(q pgapp.query, name text)
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_scope'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.with_stats(q pgapp.query, stats text[])
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_with_stats'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.preload(q pgapp.query, relations text[])
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_preload'
LANGUAGE C STABLE;

/*
 * Many filters at once from a request's params, as a spec says:
 *   {"status": "eq",                        -- filter_by(status, params.status)
 *    "ids": {"in": "id"},                   -- filter_by(id, params.ids), an array
 *    "price": "range",                      -- filter_range(price, params.price_from, params.price_to)
 *    "due": {"range": "due_date", "from": "due_from", "to": "due_to"},
 *    "q": {"search": ["title", "description"]},
 *    "active": {"scope": "active"}}         -- scope(active) when params.active is true
 * A param that is absent or null adds nothing; params the spec does not
 * name are ignored.  Field names and values are checked by the builders.
 */
CREATE FUNCTION pgapp.apply_params(q pgapp.query, params jsonb, spec jsonb)
RETURNS pgapp.query
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text;
    rule jsonb;
    op text;
    field text;
    value jsonb;
    from_param text;
    to_param text;
BEGIN
    IF q IS NULL THEN
        RAISE EXCEPTION 'query must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    q := pgapp.check_query(q);
    IF spec IS NULL OR jsonb_typeof(spec) <> 'object' THEN
        RAISE EXCEPTION 'spec must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example {"status": "eq", "q": {"search": ["title"]}}.';
    END IF;
    IF params IS NULL OR params = 'null' THEN
        RETURN q;
    END IF;
    IF jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR name, rule IN SELECT key, val FROM jsonb_each(spec) AS s(key, val) ORDER BY key LOOP
        -- "eq" is {"eq": name}; {"range": "col", ...} keeps its options
        IF jsonb_typeof(rule) = 'string' THEN
            op := rule #>> '{}';
            field := name;
        ELSIF jsonb_typeof(rule) = 'object' THEN
            SELECT k INTO op FROM jsonb_object_keys(rule) AS k WHERE k IN ('eq', 'in', 'range', 'search', 'scope');
            IF op IS NULL THEN
                RAISE EXCEPTION 'spec for param "%" names no known operation', name
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use eq, in, range, search or scope.';
            END IF;
            field := CASE WHEN jsonb_typeof(rule -> op) = 'string' THEN rule ->> op ELSE name END;
        ELSE
            RAISE EXCEPTION 'spec for param "%" must be a string or an object', name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        CASE op
            WHEN 'eq', 'in' THEN
                value := params -> name;
                CONTINUE WHEN value IS NULL OR value = 'null';
                IF jsonb_typeof(value) = 'array' THEN
                    q := pgapp.filter_by(q, field, ARRAY(SELECT jsonb_array_elements_text(value)));
                ELSIF op = 'in' THEN
                    RAISE EXCEPTION 'param "%" must be a JSON array', name USING ERRCODE = 'invalid_parameter_value';
                ELSE
                    q := pgapp.filter_by(q, field, value #>> '{}');
                END IF;
            WHEN 'range' THEN
                from_param := coalesce(rule ->> 'from', name || '_from');
                to_param := coalesce(rule ->> 'to', name || '_to');
                q := pgapp.filter_range(q, field, params ->> from_param, params ->> to_param);
            WHEN 'search' THEN
                IF jsonb_typeof(rule -> 'search') <> 'array' THEN
                    RAISE EXCEPTION 'spec for param "%" must list the fields to search', name
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'For example {"q": {"search": ["title"]}}.';
                END IF;
                q := pgapp.search(q, params ->> name, ARRAY(SELECT jsonb_array_elements_text(rule -> 'search')));
            WHEN 'scope' THEN
                value := params -> name;
                CONTINUE WHEN value IS NULL OR value = 'null';
                IF value IN ('true', '"true"', '1', '"1"') THEN
                    q := pgapp.scope(q, field);
                ELSIF value NOT IN ('false', '"false"', '0', '"0"') THEN
                    RAISE EXCEPTION 'param "%" must be true or false', name USING ERRCODE = 'invalid_parameter_value';
                END IF;
            ELSE
                RAISE EXCEPTION 'unknown operation "%" for param "%"', op, name
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use eq, in, range, search or scope.';
        END CASE;
    END LOOP;
    RETURN q;
END
$$;

COMMENT ON FUNCTION pgapp.apply_params(pgapp.query, jsonb, jsonb) IS
'Apply many filters from request params as a spec says (eq, in, range, search, scope)';

CREATE FUNCTION pgapp."all"(q pgapp.query)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_all'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.one(q pgapp.query)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_one'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.count(q pgapp.query)
RETURNS bigint
AS 'MODULE_PATHNAME', 'pgapp_count'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.paginate(q pgapp.query, page integer, page_size integer)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_paginate'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.paginate_after(q pgapp.query, after text, page_size integer)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_paginate_after'
LANGUAGE C STABLE;

COMMENT ON FUNCTION pgapp.paginate_after(pgapp.query, text, integer) IS
'Keyset pagination: the page after a cursor (NULL: the first page) and the next cursor';

CREATE FUNCTION pgapp.to_sql(q pgapp.query)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_to_sql'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.check_query(q pgapp.query)
RETURNS pgapp.query
AS 'MODULE_PATHNAME', 'pgapp_check_query'
LANGUAGE C STABLE;

COMMENT ON FUNCTION pgapp.check_query(pgapp.query) IS
'The query itself when it is well formed (every key, type, operation, field, sort and name checked), else 22023';

-- The kept plans of the calling backend (pgapp.query_cache_memory caps bytes).
CREATE FUNCTION pgapp.query_cache_stats(OUT entries integer, OUT bytes bigint,
                                        OUT max_entries integer, OUT max_bytes bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'pgapp_query_cache_stats'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.query_cache_stats() IS
'The query plans this backend keeps: how many, their bytes, and the caps (pgapp.query_cache_memory)';

/*
 * Definitions go with their table: a dropped table's changesets, scopes,
 * stats and sort whitelist are deleted in the same command, so that a later
 * table that reuses its OID never inherits them.  SECURITY DEFINER to write
 * the definition tables; an event trigger function cannot be called
 * directly.
 */
CREATE FUNCTION pgapp._definitions_dropped()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped oid[];
BEGIN
    SELECT array_agg(d.objid) INTO dropped
      FROM pg_event_trigger_dropped_objects() AS d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0;
    IF dropped IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM pgapp.query_expression WHERE source::oid = ANY (dropped);
    DELETE FROM pgapp.sort_allowed WHERE source::oid = ANY (dropped);
    DELETE FROM pgapp.changeset_def WHERE source::oid = ANY (dropped);
END
$$;

REVOKE ALL ON FUNCTION pgapp._definitions_dropped() FROM PUBLIC;

CREATE EVENT TRIGGER pgapp_definitions_dropped ON sql_drop
    EXECUTE FUNCTION pgapp._definitions_dropped();

-- Written only by allow_sort, define_scope and define_stat (for the table's
-- owner, with the extension owner's rights), read by everyone.
REVOKE ALL ON pgapp.sort_allowed, pgapp.query_expression FROM PUBLIC;
GRANT SELECT ON pgapp.sort_allowed, pgapp.query_expression TO PUBLIC;
REVOKE ALL ON FUNCTION pgapp.allow_sort(regclass, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_scope(regclass, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_stat(regclass, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.drop_scope(regclass, text), pgapp.drop_stat(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.allow_sort(regclass, text[]), pgapp.define_scope(regclass, text, text),
    pgapp.define_stat(regclass, text, text), pgapp.drop_scope(regclass, text),
    pgapp.drop_stat(regclass, text) TO pgapp_admin;

-- sql/parts/60_ratelimit.sql: rate limiting in shared memory (docs/ratelimit.md)

CREATE TYPE pgapp.rate_decision AS (
    allowed     boolean,
    "limit"     integer,
    remaining   integer,
    retry_after integer,
    reset_after integer
);

COMMENT ON TYPE pgapp.rate_decision IS
'The answer of pgapp.check_rate: allowed, limit, remaining, retry_after and reset_after (seconds)';

CREATE FUNCTION pgapp.check_rate(key text, max_requests integer, window_seconds integer,
    algorithm text DEFAULT 'fixed', burst integer DEFAULT 0, limiter text DEFAULT 'default')
RETURNS pgapp.rate_decision
AS 'MODULE_PATHNAME', 'pgapp_check_rate'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.check_rate(text, integer, integer, text, integer, text) IS
'Count a request for key and say whether it is allowed (fixed, sliding or gcra); no table, no WAL';

CREATE FUNCTION pgapp.rate_limit(key text, max_requests integer, window_seconds integer,
    algorithm text DEFAULT 'fixed', burst integer DEFAULT 0, limiter text DEFAULT 'default')
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_rate_limit'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.rate_limit(text, integer, integer, text, integer, text) IS
'pgapp.check_rate that raises PT429 (HTTP 429 through PostgREST) when the request is not allowed';

CREATE FUNCTION pgapp.rate_reset(key text, limiter text DEFAULT 'default')
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_rate_reset'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.rate_reset(text, text) IS
'Forget a key''s buckets in this database (under every set of limits it was checked with); pgapp_admin only';

CREATE FUNCTION pgapp._rate_buckets(
    OUT limiter text, OUT key text, OUT algorithm text, OUT max_requests integer, OUT window_seconds integer,
    OUT count bigint, OUT expires_at timestamptz, OUT expired boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgapp_rate_buckets'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.rate_buckets AS SELECT * FROM pgapp._rate_buckets();

COMMENT ON VIEW pgapp.rate_buckets IS
'The rate limiter''s buckets of this database in shared memory (keys cut to 63 bytes); pgapp_admin only';

CREATE FUNCTION pgapp.rate_stats(
    OUT checks bigint, OUT denials bigint, OUT evictions bigint, OUT full_events bigint,
    OUT buckets bigint, OUT max_keys integer, OUT swept bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'pgapp_rate_stats'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.rate_stats AS SELECT * FROM pgapp.rate_stats();

COMMENT ON VIEW pgapp.rate_stats IS
'Rate limiter counters since the server started: checks, denials, evictions of live buckets to make room, table-full events, expired buckets swept';

CREATE FUNCTION pgapp._rate_simulate(algorithm text, max_requests integer, window_seconds integer,
    burst integer, at double precision[])
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_rate_simulate'
LANGUAGE C IMMUTABLE;

COMMENT ON FUNCTION pgapp._rate_simulate(text, integer, integer, integer, double precision[]) IS
'The rate limiting algorithms on a private bucket, for requests at the given times (seconds)';

CREATE FUNCTION pgapp.rate_sweep()
RETURNS integer
AS 'MODULE_PATHNAME', 'pgapp_rate_sweep_now'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.rate_sweep() IS
'Remove the expired rate limit buckets now (the pgapp housekeeper does it every pgapp.ratelimit_sweep_interval)';

-- Named limiters: a quota of buckets of their own, and optionally their own limits.
CREATE TABLE pgapp.rate_limiter (
    name            text PRIMARY KEY,
    max_keys        integer NOT NULL,
    max_requests    integer,
    window_seconds  integer,
    algorithm       text NOT NULL DEFAULT 'fixed',
    burst           integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rate_limiter_name_check CHECK (name <> '' AND name <> 'default' AND octet_length(name) < 64),
    CONSTRAINT rate_limiter_max_keys_check CHECK (max_keys > 0),
    CONSTRAINT rate_limiter_limits_check CHECK ((max_requests IS NULL) = (window_seconds IS NULL)
                                                AND max_requests > 0 AND window_seconds > 0),
    CONSTRAINT rate_limiter_algorithm_check CHECK (algorithm IN ('fixed', 'sliding', 'gcra')),
    CONSTRAINT rate_limiter_burst_check CHECK (burst >= 0)
);

COMMENT ON TABLE pgapp.rate_limiter IS
'Named rate limiters (pgapp.create_limiter): a reserved quota of buckets and optional default limits';

SELECT pg_catalog.pg_extension_config_dump('pgapp.rate_limiter', '');

CREATE FUNCTION pgapp._rate_limiter_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_rate_limiter_changed'
LANGUAGE C;

-- Every change reaches each backend's cache at commit; a deleted limiter
-- leaves shared memory (with its buckets) at commit.
CREATE TRIGGER rate_limiter_changed
    AFTER INSERT OR UPDATE OR DELETE ON pgapp.rate_limiter
    FOR EACH ROW EXECUTE FUNCTION pgapp._rate_limiter_changed();

CREATE FUNCTION pgapp.create_limiter(name text, max_keys integer,
    max_requests integer DEFAULT NULL, window_seconds integer DEFAULT NULL,
    algorithm text DEFAULT 'fixed', burst integer DEFAULT 0)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    capacity integer := nullif(current_setting('pgapp.ratelimit_max_keys', true), '')::integer;
    max_window integer := coalesce((SELECT s.setting::integer FROM pg_catalog.pg_settings AS s
                                     WHERE s.name = 'pgapp.ratelimit_max_window'), 2147483647);
    reserved bigint;
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'rate limiter name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(name) >= 64 THEN
        RAISE EXCEPTION 'rate limiter name "%" is too long',
                        left(name, 64) || CASE WHEN length(name) > 64 THEN '...' ELSE '' END
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'Names are at most 63 bytes.';
    END IF;
    IF name = 'default' THEN
        RAISE EXCEPTION 'rate limiter "default" already exists' USING ERRCODE = 'duplicate_object',
            DETAIL = 'The "default" limiter is built in; it holds what the named limiters leave.';
    END IF;
    IF max_keys IS NULL OR max_keys <= 0 THEN
        RAISE EXCEPTION 'max_keys must be greater than 0, not %', coalesce(max_keys::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (max_requests IS NULL) <> (window_seconds IS NULL) THEN
        RAISE EXCEPTION 'max_requests and window_seconds must be given together'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give both to set the limiter''s own limits, or neither to pass limits on every check.';
    END IF;
    IF max_requests <= 0 THEN
        RAISE EXCEPTION 'max_requests must be greater than 0, not %', max_requests
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_seconds <= 0 THEN
        RAISE EXCEPTION 'window_seconds must be greater than 0, not %', window_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_seconds > max_window THEN
        RAISE EXCEPTION 'window_seconds must be at most %, not %', max_window, window_seconds
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A bucket lives as long as its window; "pgapp.ratelimit_max_window" caps windows.',
                  HINT = 'A superuser can raise "pgapp.ratelimit_max_window".';
    END IF;
    IF algorithm IS NULL OR algorithm NOT IN ('fixed', 'sliding', 'gcra') THEN
        RAISE EXCEPTION 'unknown rate limiting algorithm "%"',
                        left(algorithm, 64) || CASE WHEN length(algorithm) > 64 THEN '...' ELSE '' END
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use fixed, sliding or gcra.';
    END IF;
    IF burst IS NULL OR burst < 0 THEN
        RAISE EXCEPTION 'burst must not be negative, not %', coalesce(burst::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- one creator at a time, so that two cannot both take the last keys
    LOCK TABLE pgapp.rate_limiter IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM pgapp.rate_limiter AS l WHERE l.name = create_limiter.name) THEN
        RAISE EXCEPTION 'rate limiter "%" already exists', name USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it first with pgapp.drop_limiter() to change it.';
    END IF;
    SELECT coalesce(sum(l.max_keys), 0) INTO reserved FROM pgapp.rate_limiter AS l;
    IF capacity IS NOT NULL AND reserved + max_keys > capacity THEN
        RAISE EXCEPTION 'not enough room for rate limiter "%"', name
            USING ERRCODE = 'configuration_limit_exceeded',
                  DETAIL = format('The named limiters reserve %s of the %s keys of pgapp.ratelimit_max_keys; %s more do not fit.',
                                  reserved, capacity, max_keys),
                  HINT = 'Raise pgapp.ratelimit_max_keys and restart the server, or give the limiter a smaller max_keys.';
    END IF;
    INSERT INTO pgapp.rate_limiter (name, max_keys, max_requests, window_seconds, algorithm, burst)
    VALUES (name, max_keys, max_requests, window_seconds, algorithm, burst);
END
$$;

COMMENT ON FUNCTION pgapp.create_limiter(text, integer, integer, integer, text, integer) IS
'Create a named rate limiter with max_keys buckets reserved for it, and optionally its own limits';

CREATE FUNCTION pgapp.drop_limiter(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name = 'default' THEN
        RAISE EXCEPTION 'rate limiter "default" cannot be dropped' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM pgapp.rate_limiter AS l WHERE l.name = drop_limiter.name;
    IF NOT FOUND THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'rate limiter "%" does not exist',
                        left(name, 64) || CASE WHEN length(name) > 64 THEN '...' ELSE '' END
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.drop_limiter(text, boolean) IS
'Drop a named rate limiter; at commit its buckets leave shared memory and its quota returns to "default"';

CREATE FUNCTION pgapp._rate_limiters(
    OUT name text, OUT max_keys integer, OUT buckets integer, OUT checks bigint,
    OUT denials bigint, OUT full_events bigint, OUT evictions bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgapp_rate_limiters'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.rate_limiters AS
SELECT coalesce(l.name, r.name) AS name,
       coalesce(r.max_keys, l.max_keys) AS max_keys,
       l.max_requests, l.window_seconds, l.algorithm, l.burst,
       coalesce(r.buckets, 0) AS buckets,
       coalesce(r.checks, 0) AS checks,
       coalesce(r.denials, 0) AS denials,
       coalesce(r.evictions, 0) AS evictions,
       coalesce(r.full_events, 0) AS full_events,
       r.name IS NOT NULL AS in_use
  FROM pgapp.rate_limiter AS l
  FULL JOIN pgapp._rate_limiters() AS r ON r.name = l.name;

COMMENT ON VIEW pgapp.rate_limiters IS
'Rate limiters: "default" and the named ones, with their quota, buckets in use and counters on this server';

CREATE FUNCTION pgapp.check_rate(key text, limiter text)
RETURNS pgapp.rate_decision
AS 'MODULE_PATHNAME', 'pgapp_check_rate'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.check_rate(text, text) IS
'pgapp.check_rate with the limits the named limiter was created with';

CREATE FUNCTION pgapp.rate_limit(key text, limiter text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_rate_limit'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.rate_limit(text, text) IS
'pgapp.rate_limit with the limits the named limiter was created with';

-- Plan tiers for pgapp.rate_limit_request: limits per plan named in the JWT.
CREATE TABLE pgapp.rate_plan (
    name            text PRIMARY KEY,
    max_requests    integer NOT NULL CHECK (max_requests > 0),
    window_seconds  integer NOT NULL CHECK (window_seconds > 0),
    algorithm       text NOT NULL DEFAULT 'fixed' CHECK (algorithm IN ('fixed', 'sliding', 'gcra')),
    burst           integer NOT NULL DEFAULT 0 CHECK (burst >= 0),
    limiter         text NOT NULL DEFAULT 'default'
);

COMMENT ON TABLE pgapp.rate_plan IS
'Rate limit plans for pgapp.rate_limit_request (the "default" plan applies when the JWT names none)';

INSERT INTO pgapp.rate_plan (name, max_requests, window_seconds) VALUES ('default', 100, 60);
SELECT pg_catalog.pg_extension_config_dump('pgapp.rate_plan', $$WHERE name <> 'default'$$);

/*
 * PostgREST's db-pre-request hook: one check per request.
 *   key:  "sub:<sub>" from request.jwt.claims; else, when
 *         pgapp.ratelimit_client_header names a header, "ip:<address>" from
 *         the LAST address of that header's list (the one the trusted proxy
 *         appended; what the client wrote before it is ignored), IPv6 per
 *         /64, and "ip:unknown" (one shared bucket) when the header is
 *         missing or malformed; else the connection's client address;
 *   plan: the claim named by pgapp.ratelimit_plan_claim, else "default";
 * adds RateLimit-Policy and RateLimit to response.headers (merged with what
 * is there), and on denial raises SQLSTATE PGRST so that PostgREST answers
 * 429 with Retry-After.  Runs as the request's role.
 */
CREATE FUNCTION pgapp.rate_limit_request()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
    headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
    header_name text := lower(btrim(coalesce(current_setting('pgapp.ratelimit_client_header', true), '')));
    plan_claim text := coalesce(nullif(current_setting('pgapp.ratelimit_plan_claim', true), ''), 'plan');
    key text;
    hop text;
    addr inet;
    plan pgapp.rate_plan;
    d pgapp.rate_decision;
    policy text;
    state text;
    response_headers jsonb;
BEGIN
    key := CASE WHEN claims ->> 'sub' IS NOT NULL THEN 'sub:' || (claims ->> 'sub') END;
    IF key IS NULL AND header_name <> '' THEN
        IF jsonb_typeof(headers -> header_name) = 'string' THEN
            -- the last hop, as the trusted proxy appended it
            hop := btrim(reverse(split_part(reverse(headers ->> header_name), ',', 1)));
        END IF;
        IF length(hop) <= 64 THEN
            -- an address with a port: 192.0.2.1:1234, [2001:db8::1]:1234
            IF hop ~ '^[0-9.]+:[0-9]{1,5}$' THEN
                hop := split_part(hop, ':', 1);
            ELSIF hop ~ '^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$' THEN
                hop := substring(hop FROM '^\[([0-9A-Fa-f:.]+)\]');
            END IF;
            IF hop ~ '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' THEN
                addr := hop::inet;
            ELSIF hop ~ '^[0-9A-Fa-f:.]{2,45}$' AND hop LIKE '%:%' THEN
                BEGIN
                    addr := hop::inet;
                EXCEPTION WHEN invalid_text_representation THEN
                    addr := NULL;
                END;
            END IF;
        END IF;
        key := CASE
            WHEN addr IS NULL THEN 'ip:unknown'
            WHEN family(addr) = 6 AND NOT addr <<= inet '::ffff:0:0/96'
                THEN 'ip:' || network(set_masklen(addr, 64))::text
            ELSE 'ip:' || host(addr)
        END;
    END IF;
    IF key IS NULL THEN
        key := 'ip:' || coalesce(host(inet_client_addr()), 'local');
    END IF;

    SELECT * INTO plan FROM pgapp.rate_plan AS p WHERE p.name = coalesce(claims ->> plan_claim, 'default');
    IF NOT FOUND THEN
        SELECT * INTO plan FROM pgapp.rate_plan AS p WHERE p.name = 'default';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'rate plan "default" does not exist'
                USING ERRCODE = 'undefined_object',
                      HINT = 'INSERT INTO pgapp.rate_plan (name, max_requests, window_seconds) VALUES (''default'', 100, 60).';
        END IF;
    END IF;

    d := pgapp.check_rate(key, plan.max_requests, plan.window_seconds, plan.algorithm, plan.burst,
                          plan.limiter);
    policy := format('%s;w=%s', d."limit", plan.window_seconds);
    state := format('limit=%s, remaining=%s, reset=%s', d."limit", d.remaining, d.reset_after);

    response_headers := coalesce(nullif(current_setting('response.headers', true), '')::jsonb, '[]')
                        || jsonb_build_array(jsonb_build_object('RateLimit-Policy', policy),
                                             jsonb_build_object('RateLimit', state));
    PERFORM set_config('response.headers', response_headers::text, true);

    IF NOT d.allowed THEN
        RAISE SQLSTATE 'PGRST' USING
            MESSAGE = jsonb_build_object(
                'code', 'PT429',
                'message', 'rate limit exceeded',
                'details', format('At most %s requests per %s second(s) for plan "%s".',
                                  plan.max_requests, plan.window_seconds, plan.name),
                'hint', format('Retry after %s second(s).', d.retry_after))::text,
            DETAIL = jsonb_build_object(
                'status', 429,
                'headers', jsonb_build_object('Retry-After', d.retry_after::text,
                                              'RateLimit-Policy', policy,
                                              'RateLimit', state))::text;
    END IF;
END
$$;

COMMENT ON FUNCTION pgapp.rate_limit_request() IS
'PostgREST db-pre-request hook: rate limit per JWT sub (or the last address of the trusted client header) and plan; 429 with Retry-After';

GRANT SELECT ON pgapp.rate_plan TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgapp.rate_plan TO pgapp_admin;

-- Checking is for everyone (PostgREST's anonymous role included); resetting
-- a key and seeing every key are not.
REVOKE ALL ON FUNCTION pgapp.rate_reset(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._rate_buckets() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._rate_simulate(text, integer, integer, integer, double precision[]) FROM PUBLIC;
REVOKE ALL ON pgapp.rate_buckets FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.rate_reset(text, text), pgapp._rate_buckets() TO pgapp_admin;
GRANT SELECT ON pgapp.rate_buckets TO pgapp_admin;
GRANT SELECT ON pgapp.rate_stats TO PUBLIC;
REVOKE ALL ON FUNCTION pgapp.rate_sweep(), pgapp._rate_limiter_changed(),
    pgapp.create_limiter(text, integer, integer, integer, text, integer),
    pgapp.drop_limiter(text, boolean), pgapp._rate_limiters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.rate_sweep(),
    pgapp.create_limiter(text, integer, integer, integer, text, integer),
    pgapp.drop_limiter(text, boolean), pgapp._rate_limiters() TO pgapp_admin;
GRANT SELECT ON pgapp.rate_limiter TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgapp.rate_limiter TO pgapp_admin;
REVOKE ALL ON pgapp.rate_limiters FROM PUBLIC;
GRANT SELECT ON pgapp.rate_limiters TO pgapp_admin;

-- sql/parts/70_pubsub.sql: PubSub on LISTEN/NOTIFY (docs/pubsub.md)

-- Messages too large for NOTIFY (8000 bytes), read with pgapp.message(id).
-- Unlogged: they live for pgapp.pubsub_retention, not across a crash.
CREATE UNLOGGED TABLE pgapp.message (
    id      uuid PRIMARY KEY,
    topic   text NOT NULL,
    event   text NOT NULL,
    payload jsonb NOT NULL,
    at      timestamptz NOT NULL
);

CREATE INDEX message_at_idx ON pgapp.message (at);

COMMENT ON TABLE pgapp.message IS
'Broadcast messages too large for NOTIFY, kept for pgapp.pubsub_retention; read them with pgapp.message(id)';

-- Outbox mode: messages written just before their transaction commits and
-- sent by the database's "pgapp pubsub" worker, which deletes them as it
-- NOTIFYs them.  Logged, so that a restart loses none.
CREATE TABLE pgapp.outbox (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id      uuid NOT NULL,
    topic   text NOT NULL,
    event   text NOT NULL,
    payload jsonb NOT NULL,
    at      timestamptz NOT NULL
);

COMMENT ON TABLE pgapp.outbox IS
'Broadcasts waiting for the pgapp pubsub worker (outbox mode), in commit order';

CREATE FUNCTION pgapp.broadcast(topic text, event text, payload jsonb DEFAULT '{}',
    mode text DEFAULT 'auto')
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.broadcast(text, text, jsonb, text) IS
'Send {"topic","event","payload","id","at"} to the topic''s listeners at commit (auto, direct or outbox mode); pgapp''s own topics and events are refused';

-- How pgapp's own code sends on the topics and events reserved to it (job
-- progress on jobs:<id>, presence_diff, typing ...): not executable by
-- PUBLIC; pgapp's SECURITY DEFINER functions (its owner) and background
-- workers (superuser) call it.
CREATE FUNCTION pgapp._broadcast_system(topic text, event text, payload jsonb, mode text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast_system'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp._broadcast_system(text, text, jsonb, text) IS
'pgapp.broadcast for pgapp''s own code: may send on reserved topics and events, with no size limit (not for PUBLIC)';

-- A topic presence and typing may use: valid (22023) and not pgapp's (42501).
CREATE FUNCTION pgapp._pubsub_check_topic(topic text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_pubsub_check_user_topic'
LANGUAGE C STABLE;

-- At most 64 characters of a value an error message quotes.
CREATE FUNCTION pgapp._pubsub_echo(value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN length(value) > 64 THEN left(value, 64) || '...' ELSE value END $$;

CREATE FUNCTION pgapp.channel(topic text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_channel'
LANGUAGE C IMMUTABLE;

COMMENT ON FUNCTION pgapp.channel(text) IS
'The NOTIFY channel of a topic: the topic itself up to 63 bytes, else ''pgapp:'' || md5(topic)';

CREATE FUNCTION pgapp.subscribe(topic text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_subscribe'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.subscribe(text) IS
'LISTEN to a topic (from the commit on); returns its channel';

CREATE FUNCTION pgapp.unsubscribe(topic text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_unsubscribe'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.unsubscribe(text) IS
'UNLISTEN a topic (NULL: every topic)';

CREATE FUNCTION pgapp.message(id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    msg jsonb;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'message id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT jsonb_build_object('topic', m.topic, 'event', m.event, 'payload', m.payload,
                              'id', m.id, 'at', m.at)
      INTO msg
      FROM pgapp.message AS m
     WHERE m.id = message.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', id
            USING ERRCODE = 'undefined_object',
                  HINT = format('Stored messages are kept for pgapp.pubsub_retention (%s).',
                                coalesce(current_setting('pgapp.pubsub_retention', true), '1h'));
    END IF;
    RETURN msg;
END
$$;

COMMENT ON FUNCTION pgapp.message(uuid) IS
'A broadcast message too large for NOTIFY, by the id its notification carries';

CREATE FUNCTION pgapp._pubsub_prune()
RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM pgapp.message
         WHERE at < now() - coalesce(current_setting('pgapp.pubsub_retention', true), '1h')::interval
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

COMMENT ON FUNCTION pgapp._pubsub_prune() IS
'Remove stored messages older than pgapp.pubsub_retention (the pubsub worker calls it every minute)';

CREATE FUNCTION pgapp._broadcast_changes()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_broadcast_changes_trigger'
LANGUAGE C;

CREATE FUNCTION pgapp.broadcast_changes(tbl regclass, topic_template text,
    changes_only boolean DEFAULT false, mode text DEFAULT 'outbox',
    events text[] DEFAULT ARRAY['insert', 'update', 'delete'], columns text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col text;
    ev text;
BEGIN
    IF tbl IS NULL OR topic_template IS NULL OR changes_only IS NULL OR mode IS NULL OR events IS NULL THEN
        RAISE EXCEPTION 'arguments of pgapp.broadcast_changes must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF topic_template = '' OR octet_length(topic_template) > 255 THEN
        RAISE EXCEPTION 'topic template must have 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mode NOT IN ('auto', 'direct', 'outbox') THEN
        RAISE EXCEPTION 'unknown broadcast mode "%"', pgapp._pubsub_echo(mode)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use auto, direct or outbox.';
    END IF;
    IF cardinality(events) = 0 THEN
        RAISE EXCEPTION 'events must name at least one of insert, update and delete'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH ev IN ARRAY events LOOP
        IF ev IS NULL OR lower(ev) NOT IN ('insert', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown event "%"', pgapp._pubsub_echo(ev)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Use insert, update or delete.';
        END IF;
    END LOOP;
    FOR col IN SELECT (regexp_matches(topic_template, '%\{([^}]*)\}', 'g'))[1]
               UNION ALL SELECT unnest(columns) LOOP
        IF col IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute AS a
                        WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" does not exist in %', pgapp._pubsub_echo(col), tbl
                USING ERRCODE = 'undefined_column',
                      HINT = 'The topic template''s %{column} and the columns listed must be columns of the table.';
        END IF;
    END LOOP;
    EXECUTE format('CREATE OR REPLACE TRIGGER pgapp_broadcast_changes'
                   ' AFTER %s ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION pgapp._broadcast_changes(%s)',
                   (SELECT string_agg(DISTINCT upper(e), ' OR ') FROM unnest(events) AS e),
                   tbl,
                   (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                      FROM unnest(ARRAY[topic_template, changes_only::text, mode] || coalesce(columns, '{}'))
                           WITH ORDINALITY AS t(a, n)));
END
$$;

COMMENT ON FUNCTION pgapp.broadcast_changes(regclass, text, boolean, text, text[], text[]) IS
'Broadcast a table''s inserted, updated and deleted rows (or the events named, with the columns named) to a topic such as ''orders:%{id}''';

CREATE FUNCTION pgapp.stop_broadcast_changes(tbl regclass)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger AS t
                    WHERE t.tgrelid = tbl AND t.tgname = 'pgapp_broadcast_changes') THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TRIGGER pgapp_broadcast_changes ON %s', tbl);
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.stop_broadcast_changes(regclass) IS
'Stop broadcasting a table''s row changes';

CREATE FUNCTION pgapp._pubsub_workers(
    OUT datid oid, OUT pid integer, OUT state text, OUT delivered bigint, OUT batches bigint,
    OUT last_delivery timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgapp_pubsub_workers'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.pubsub_outbox AS
SELECT (SELECT count(*) FROM pgapp.outbox) AS pending,
       (SELECT min(o.at) FROM pgapp.outbox AS o) AS oldest_pending,
       w.pid AS worker_pid, w.state AS worker_state, w.delivered, w.batches, w.last_delivery
  FROM (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) AS db
  LEFT JOIN pgapp._pubsub_workers() AS w ON w.datid = db.oid;

COMMENT ON VIEW pgapp.pubsub_outbox IS
'The outbox of this database: messages waiting, and its delivery worker (counters since the worker started)';

REVOKE ALL ON pgapp.message, pgapp.outbox FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._pubsub_prune(), pgapp._broadcast_changes(), pgapp._pubsub_workers(),
    pgapp._broadcast_system(text, text, jsonb, text), pgapp._pubsub_check_topic(text), pgapp._pubsub_echo(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._pubsub_echo(text) TO pgapp_admin;   -- broadcast_changes' errors
GRANT EXECUTE ON FUNCTION pgapp._pubsub_prune(), pgapp._broadcast_changes(), pgapp._pubsub_workers()
    TO pgapp_admin;
REVOKE ALL ON pgapp.pubsub_outbox FROM PUBLIC;
GRANT SELECT ON pgapp.pubsub_outbox, pgapp.outbox, pgapp.message TO pgapp_admin;

-- sql/parts/71_presence.sql: PubSub presence and typing indicators (docs/pubsub.md)

-- Presence (Phoenix.Presence) and typing indicators: unlogged, so that their
-- frequent writes stay out of the WAL; the database's pgapp pubsub worker
-- announces joins and leaves as one presence_diff per topic every 1.5 s and
-- stops typing indicators whose 3 s have passed.  Each row records the role
-- that made it: a key belongs to that role while it is live (42501 for
-- others); presence_track, presence_untrack and typing are C entry points
-- that pass the caller's role to the internal functions below.
CREATE UNLOGGED TABLE pgapp.presence (
    topic       text NOT NULL,
    key         text NOT NULL,
    ref         uuid NOT NULL,
    meta        jsonb NOT NULL,
    role        oid NOT NULL,       -- the role that tracked it: its key is that role's
    seq         integer NOT NULL DEFAULT 0,     -- version of meta: phx_ref is ref, or ref.seq
    prev_meta   jsonb,              -- announced meta replaced by meta, to announce as a leave
    prev_seq    integer,            -- and its version
    announced   boolean NOT NULL DEFAULT false,
    left_at     timestamptz,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (topic, key, ref)
);

CREATE INDEX presence_pending_idx ON pgapp.presence (topic) WHERE NOT announced OR left_at IS NOT NULL OR prev_meta IS NOT NULL;
CREATE INDEX presence_expires_idx ON pgapp.presence (expires_at) WHERE left_at IS NULL;

COMMENT ON TABLE pgapp.presence IS
'Who is present on a topic: one row per tracked meta (pgapp.presence_track); unlogged';

CREATE UNLOGGED TABLE pgapp.typing (
    topic       text NOT NULL,
    key         text NOT NULL,
    role        oid NOT NULL,       -- the role that types as key
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (topic, key)
);

COMMENT ON TABLE pgapp.typing IS
'Typing indicators in progress (pgapp.typing); unlogged';

-- The phx_ref of a meta's version: its ref, then ref.1, ref.2 ... as it
-- changes (Phoenix gives a changed meta a new ref, with phx_ref_prev).
CREATE FUNCTION pgapp._phx_ref(ref uuid, seq integer)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN seq = 0 THEN ref::text ELSE ref::text || '.' || seq END $$;

CREATE FUNCTION pgapp._pubsub_start_worker()
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_pubsub_start_worker'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp._pubsub_start_worker() IS
'Make sure this database''s pgapp pubsub worker runs (it announces presence and stops typing)';

CREATE FUNCTION pgapp._presence_check(topic text, key text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL OR key IS NULL THEN
        RAISE EXCEPTION 'topic and key must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the same rules as pgapp.broadcast's topics (a round broadcasts on it)
    PERFORM pgapp._pubsub_check_topic(topic);
    IF key = '' OR octet_length(key) > 255 THEN
        RAISE EXCEPTION 'key must have 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

/*
 * A key of a topic belongs to the role that tracks it (or types as it)
 * until its last meta has left: another role may not track, renew or type
 * as it (42501).  A key the caller holds already needs no lock (a claimer
 * sees its committed rows).  Claims of a free key are serialised by a
 * transaction-level advisory lock; as any role can take advisory locks, a
 * claim waits for it at most about 100 ms, then goes on without it (two
 * roles could then share a key claimed at the same instant): a role that
 * holds the lock can delay the first claim of a key, never block it.
 */
CREATE FUNCTION pgapp._presence_claim(topic text, key text, caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    holder oid;
BEGIN
    FOR pass IN 1..2 LOOP
        -- a live meta or typing indicator of the key: another role's first
        SELECT h.role INTO holder
          FROM (SELECT p.role FROM pgapp.presence AS p
                 WHERE p.topic = _presence_claim.topic AND p.key = _presence_claim.key
                   AND p.left_at IS NULL AND p.expires_at > clock_timestamp()
                UNION ALL
                SELECT t.role FROM pgapp.typing AS t
                 WHERE t.topic = _presence_claim.topic AND t.key = _presence_claim.key
                   AND t.expires_at > clock_timestamp()) AS h
         ORDER BY h.role = caller
         LIMIT 1;
        IF holder <> caller THEN
            RAISE EXCEPTION 'key "%" on topic "%" belongs to another role',
                            pgapp._pubsub_echo(key), pgapp._pubsub_echo(topic)
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'A key belongs to the role that tracks it (or types as it) until its last meta has left.',
                      HINT = 'Track and type under a key of your own.';
        END IF;
        EXIT WHEN holder = caller OR pass = 2;
        -- a free key: take the claim lock (at most ~100 ms of waiting), then check again
        FOR attempt IN 1..20 LOOP
            EXIT WHEN pg_try_advisory_xact_lock(hashtext(topic), hashtext(key));
            PERFORM pg_sleep(0.005);
        END LOOP;
    END LOOP;
END
$$;

/*
 * Track key on topic with meta for ttl; returns the meta's ref.  Call it
 * again with that ref before ttl passes to stay (and to change the meta);
 * without a ref each call adds a meta (one per connection or device).
 * pgapp.presence_track (C) calls it as pgapp's owner with the caller's role.
 */
CREATE FUNCTION pgapp._presence_track(topic text, key text, meta jsonb, ttl interval, ref uuid, caller oid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r uuid := coalesce(ref, gen_random_uuid());
    kept uuid;
    size integer;
    -- shown with a unit ('4kB', '100B', '10min'); pg_size_bytes knows no 'B'
    max_meta bigint := pg_size_bytes(regexp_replace(current_setting('pgapp.pubsub_presence_max_meta'), '^(\d+)B$', '\1'));
    max_ttl interval := current_setting('pgapp.pubsub_presence_max_ttl')::interval;
    metas integer;
BEGIN
    PERFORM pgapp._presence_check(topic, key);
    IF meta IS NULL OR jsonb_typeof(meta) <> 'object' THEN
        RAISE EXCEPTION 'meta must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    size := octet_length(meta::text);
    IF size > max_meta THEN
        RAISE EXCEPTION 'presence meta is too large (% bytes)', size
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('pgapp.pubsub_presence_max_meta allows at most %s bytes.',
                                  max_meta),
                  HINT = 'Keep metas small (a device, a status); keep the rest in a table.';
    END IF;
    IF ttl IS NULL OR ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, not %',
                        coalesce(trim_scale(extract(epoch FROM ttl))::text || ' seconds', 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ttl > max_ttl THEN
        RAISE EXCEPTION 'ttl of % seconds is longer than pgapp.pubsub_presence_max_ttl (%)',
                        trim_scale(extract(epoch FROM ttl)), current_setting('pgapp.pubsub_presence_max_ttl')
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = 'pgapp.pubsub_presence_max_ttl caps how long a presence stays without being renewed.',
                  HINT = 'Renew the presence (presence_track with its ref) at about half its ttl.';
    END IF;
    PERFORM pgapp._presence_claim(topic, key, caller);
    IF NOT EXISTS (SELECT 1 FROM pgapp.presence AS p
                    WHERE p.topic = _presence_track.topic AND p.key = _presence_track.key AND p.ref = r) THEN
        SELECT count(*) INTO metas FROM pgapp.presence AS p
         WHERE p.topic = _presence_track.topic AND p.key = _presence_track.key
           AND p.left_at IS NULL AND p.expires_at > clock_timestamp();
        IF metas >= current_setting('pgapp.pubsub_presence_max_metas')::integer THEN
            RAISE EXCEPTION 'key "%" already has % metas on topic "%"',
                            pgapp._pubsub_echo(key), metas, pgapp._pubsub_echo(topic)
                USING ERRCODE = 'program_limit_exceeded',
                      DETAIL = format('pgapp.pubsub_presence_max_metas allows at most %s at once.',
                                      current_setting('pgapp.pubsub_presence_max_metas')),
                      HINT = 'Renew a meta with its ref instead of tracking a new one, and untrack those no longer used.';
        END IF;
    END IF;
    INSERT INTO pgapp.presence AS p (topic, key, ref, role, meta, expires_at)
    VALUES (topic, key, r, caller, meta, clock_timestamp() + ttl)
    ON CONFLICT ON CONSTRAINT presence_pkey DO UPDATE
       SET expires_at = excluded.expires_at,
           meta = excluded.meta,
           -- a changed meta is announced as a leave of the old version and a
           -- join of the new one, which gets the next phx_ref
           prev_meta = CASE WHEN p.announced AND p.meta IS DISTINCT FROM excluded.meta
                            THEN p.meta ELSE p.prev_meta END,
           prev_seq = CASE WHEN p.announced AND p.meta IS DISTINCT FROM excluded.meta
                           THEN p.seq ELSE p.prev_seq END,
           seq = CASE WHEN p.announced AND p.meta IS DISTINCT FROM excluded.meta
                      THEN p.seq + 1 ELSE p.seq END,
           announced = p.announced AND p.meta IS NOT DISTINCT FROM excluded.meta,
           left_at = NULL
     WHERE p.role = excluded.role
    RETURNING p.ref INTO kept;
    IF kept IS NULL THEN
        -- a meta of another role's that has expired or left, not yet announced
        RAISE EXCEPTION 'presence % on topic "%" belongs to another role', r, pgapp._pubsub_echo(topic)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the role that tracked a presence may renew or change it.';
    END IF;
    PERFORM pgapp._pubsub_start_worker();
    RETURN r;
END
$$;

CREATE FUNCTION pgapp.presence_track(topic text, key text, meta jsonb DEFAULT '{}',
    ttl interval DEFAULT '30s', ref uuid DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'pgapp_presence_track'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.presence_track(text, text, jsonb, interval, uuid) IS
'Track a presence on a topic for ttl; returns the ref to renew or untrack it (joins are broadcast as presence_diff); the key is the caller role''s until it leaves';

CREATE FUNCTION pgapp._presence_untrack(topic text, key text, ref uuid, caller oid)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM pgapp._presence_check(topic, key);
    IF NOT pg_has_role(caller, 'pgapp_admin', 'USAGE')
       AND EXISTS (SELECT 1 FROM pgapp.presence AS p
                    WHERE p.topic = _presence_untrack.topic AND p.key = _presence_untrack.key
                      AND (_presence_untrack.ref IS NULL OR p.ref = _presence_untrack.ref)
                      AND p.left_at IS NULL AND p.role <> caller) THEN
        RAISE EXCEPTION 'presence of key "%" on topic "%" belongs to another role',
                        pgapp._pubsub_echo(key), pgapp._pubsub_echo(topic)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the role that tracked a presence, or a member of pgapp_admin, may untrack it.';
    END IF;
    UPDATE pgapp.presence AS p SET left_at = clock_timestamp()
     WHERE p.topic = _presence_untrack.topic AND p.key = _presence_untrack.key
       AND (_presence_untrack.ref IS NULL OR p.ref = _presence_untrack.ref)
       AND p.left_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pgapp._pubsub_start_worker();
    RETURN n;
END
$$;

CREATE FUNCTION pgapp.presence_untrack(topic text, key text, ref uuid DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'pgapp_presence_untrack'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.presence_untrack(text, text, uuid) IS
'Stop tracking a key on a topic (one meta by ref, or all of them); returns how many metas left; the tracking role''s own, or anyone''s for pgapp_admin';

CREATE FUNCTION pgapp.presence_list(topic text)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL THEN
        RAISE EXCEPTION 'topic must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the state as the last round announced it: the diffs that follow apply to it
    RETURN (
        SELECT coalesce(jsonb_object_agg(s.key, jsonb_build_object('metas', s.metas)), '{}')
          FROM (SELECT p.key,
                       jsonb_agg(coalesce(p.prev_meta, p.meta)
                                 || jsonb_build_object('phx_ref', pgapp._phx_ref(p.ref, v.seq))
                                 || CASE WHEN v.seq > 0
                                         THEN jsonb_build_object('phx_ref_prev', pgapp._phx_ref(p.ref, v.seq - 1))
                                         ELSE '{}' END
                                 ORDER BY p.joined_at, p.ref) AS metas
                  FROM pgapp.presence AS p,
                       LATERAL (SELECT CASE WHEN p.prev_meta IS NOT NULL THEN p.prev_seq ELSE p.seq END AS seq) AS v
                 WHERE p.topic = presence_list.topic AND (p.announced OR p.prev_meta IS NOT NULL)
                 GROUP BY p.key) AS s);
END
$$;

COMMENT ON FUNCTION pgapp.presence_list(text) IS
'Who is present on a topic as the last presence_diff left it, as Phoenix''s presence_state: {"key": {"metas": [{..., "phx_ref": ref}]}}';

/*
 * The pubsub worker's presence round: expired metas leave; then, per topic,
 * one presence_diff with what joined and what left since the last round.
 * A meta that joined and left within one round is never announced, nor one
 * changed and changed back.  The table is locked for the round (tracking
 * waits a few milliseconds), so that every statement of the round sees the
 * same rows: a change committed in between would otherwise be deleted or
 * marked announced without having been announced.
 */
CREATE FUNCTION pgapp._presence_flush()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
    n integer := 0;
BEGIN
    LOCK TABLE pgapp.presence IN EXCLUSIVE MODE;
    UPDATE pgapp.presence SET left_at = expires_at
     WHERE left_at IS NULL AND expires_at <= clock_timestamp();
    UPDATE pgapp.presence SET seq = prev_seq, prev_meta = NULL, prev_seq = NULL, announced = true
     WHERE left_at IS NULL AND prev_meta IS NOT NULL AND prev_meta = meta;
    DELETE FROM pgapp.presence WHERE left_at IS NOT NULL AND NOT announced AND prev_meta IS NULL;
    FOR d IN
        WITH changes AS (
            SELECT p.topic, p.key, 'leave' AS kind,
                   coalesce(p.prev_meta, p.meta)
                   || jsonb_build_object('phx_ref', pgapp._phx_ref(p.ref, coalesce(p.prev_seq, p.seq))) AS meta
              FROM pgapp.presence AS p
             WHERE (p.left_at IS NOT NULL AND (p.announced OR p.prev_meta IS NOT NULL))
                OR (p.left_at IS NULL AND p.prev_meta IS NOT NULL)
            UNION ALL
            SELECT p.topic, p.key, 'join',
                   p.meta || jsonb_build_object('phx_ref', pgapp._phx_ref(p.ref, p.seq))
                   || CASE WHEN p.prev_meta IS NOT NULL
                           THEN jsonb_build_object('phx_ref_prev', pgapp._phx_ref(p.ref, p.prev_seq))
                           ELSE '{}' END
              FROM pgapp.presence AS p
             WHERE NOT p.announced AND p.left_at IS NULL),
        per_key AS (
            SELECT topic, kind, key, jsonb_build_object('metas', jsonb_agg(meta ORDER BY meta ->> 'phx_ref')) AS entry
              FROM changes GROUP BY topic, kind, key)
        SELECT topic,
               coalesce(jsonb_object_agg(key, entry) FILTER (WHERE kind = 'join'), '{}') AS joins,
               coalesce(jsonb_object_agg(key, entry) FILTER (WHERE kind = 'leave'), '{}') AS leaves
          FROM per_key GROUP BY topic ORDER BY topic
    LOOP
        PERFORM pgapp._broadcast_system(d.topic, 'presence_diff',
                                        jsonb_build_object('joins', d.joins, 'leaves', d.leaves), 'direct');
        n := n + 1;
    END LOOP;
    DELETE FROM pgapp.presence WHERE left_at IS NOT NULL;
    UPDATE pgapp.presence SET announced = true, prev_meta = NULL, prev_seq = NULL
     WHERE NOT announced OR prev_meta IS NOT NULL;
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp._presence_flush() IS
'Announce presence joins and leaves as one presence_diff per topic (the pubsub worker runs it every 1.5 s)';

CREATE FUNCTION pgapp._typing(topic text, key text, caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started boolean;
BEGIN
    PERFORM pgapp._presence_check(topic, key);
    PERFORM pgapp._presence_claim(topic, key, caller);
    INSERT INTO pgapp.typing AS t (topic, key, role, expires_at)
    VALUES (topic, key, caller, clock_timestamp() + interval '3 seconds')
    ON CONFLICT ON CONSTRAINT typing_pkey DO UPDATE SET expires_at = excluded.expires_at, role = excluded.role
    RETURNING (xmax = 0) INTO started;
    IF started THEN
        PERFORM pgapp._broadcast_system(topic, 'typing', jsonb_build_object('key', key), 'direct');
    END IF;
    PERFORM pgapp._pubsub_start_worker();
END
$$;

CREATE FUNCTION pgapp.typing(topic text, key text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_typing'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.typing(text, text) IS
'Say that key is typing on topic: broadcasts typing, then typing_stopped 3 s after the last call';

CREATE FUNCTION pgapp.typing_list(topic text)
RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF topic IS NULL THEN
        RAISE EXCEPTION 'topic must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN (SELECT coalesce(array_agg(t.key ORDER BY t.key), '{}') FROM pgapp.typing AS t
             WHERE t.topic = typing_list.topic AND t.expires_at > clock_timestamp());
END
$$;

COMMENT ON FUNCTION pgapp.typing_list(text) IS
'Who is typing on a topic now (for a client that joins while someone types)';

CREATE FUNCTION pgapp._typing_flush()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    n integer := 0;
BEGIN
    FOR t IN DELETE FROM pgapp.typing WHERE expires_at <= clock_timestamp() RETURNING topic, key LOOP
        PERFORM pgapp._broadcast_system(t.topic, 'typing_stopped', jsonb_build_object('key', t.key), 'direct');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp._typing_flush() IS
'Broadcast typing_stopped for typing indicators whose 3 s have passed (the pubsub worker runs it every 250 ms)';

REVOKE ALL ON pgapp.presence, pgapp.typing FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._pubsub_start_worker(), pgapp._presence_check(text, text), pgapp._phx_ref(uuid, integer),
    pgapp._presence_flush(), pgapp._typing_flush(), pgapp._presence_claim(text, text, oid),
    pgapp._presence_track(text, text, jsonb, interval, uuid, oid), pgapp._presence_untrack(text, text, uuid, oid),
    pgapp._typing(text, text, oid) FROM PUBLIC;
GRANT SELECT ON pgapp.presence, pgapp.typing TO pgapp_admin;

-- sql/parts/80_jobs.sql: jobs: queues, jobs, enqueue (docs/jobs.md)
--
-- Queues and jobs live in two tables.  pgapp.job is hot: fillfactor leaves
-- room for HOT updates of the columns no index covers (heartbeats,
-- progress), its partial indexes cover only what the claim, the rescue and
-- the pruning read, autovacuum visits it early (every claim leaves a dead
-- entry in the claim index), and finished jobs are pruned after
-- pgapp.jobs_retention.
-- The functions that act for a role (enqueue, cancel, retry) are C entry
-- points that note who calls them and then run the pgapp._job_* function
-- of the same name as the schema owner: a job runs as the role that
-- enqueued it, and only that role or pgapp_admin may cancel or retry it.

-- pgapp_worker: the role external workers log in with (fetch_jobs,
-- heartbeat, complete_job, fail_job).  Cluster-wide, like pgapp_admin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'pgapp_worker') THEN
        CREATE ROLE pgapp_worker NOLOGIN;
    END IF;
END
$$;

CREATE TYPE pgapp.job_state AS ENUM
    ('scheduled', 'available', 'executing', 'retryable', 'completed', 'discarded', 'cancelled');

CREATE TABLE pgapp.queue (
    name        text PRIMARY KEY,
    concurrency integer NOT NULL,
    paused      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- optional rate limit (pgapp.limit_queue): at most rate_limit jobs started
    -- per rate_period, as a token bucket the claims draw from
    rate_limit      integer,
    rate_period     interval,
    rate_tokens     double precision,
    rate_updated_at timestamptz,
    CONSTRAINT queue_rate_check CHECK ((rate_limit IS NULL) = (rate_period IS NULL)
                                       AND rate_limit OPERATOR(pg_catalog.>) 0
                                       AND rate_period OPERATOR(pg_catalog.>) interval '0'),
    -- the channel pgapp_jobs:<name> must fit NOTIFY's 63 bytes
    CONSTRAINT queue_name_check CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,51}$'),
    CONSTRAINT queue_concurrency_check CHECK (concurrency BETWEEN 0 AND 1000)
);

COMMENT ON TABLE pgapp.queue IS
'Job queues: concurrency = background workers running its jobs at once (0: external workers only)';

CREATE TABLE pgapp.job (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text NOT NULL REFERENCES pgapp.queue (name) ON DELETE CASCADE,
    worker        regproc NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}',
    state         pgapp.job_state NOT NULL DEFAULT 'available',
    priority      integer NOT NULL DEFAULT 0,
    attempt       integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 20,
    inserted_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    scheduled_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attempted_at  timestamptz,
    completed_at  timestamptz,
    discarded_at  timestamptz,
    cancelled_at  timestamptz,
    discard_after interval,
    errors        jsonb NOT NULL DEFAULT '[]',
    unique_key    text,
    progress      numeric,
    result        jsonb,
    owner         oid NOT NULL,
    attempted_by  text,
    lease         interval,
    expires_at    timestamptz,
    -- pgapp.cancel_job of a job a pgapp worker has claimed: the worker cancels it
    cancel_requested_at timestamptz,
    -- waiting to be claimed (scheduled, available or retryable): the claim
    -- index's predicate.  Not the state itself, so that a completion, which
    -- changes the state but leaves the job unclaimable, touches no indexed
    -- column and is a HOT update (no index entries written)
    claimable     boolean NOT NULL GENERATED ALWAYS AS (state IN ('scheduled', 'available', 'retryable')) STORED,
    -- the job holds its unique key (job_unique_idx): it has one and is not
    -- discarded or cancelled.  The key itself stays on the job, so that
    -- retry_job can take it back
    holds_key     boolean NOT NULL GENERATED ALWAYS AS (unique_key IS NOT NULL AND state NOT IN ('discarded', 'cancelled')) STORED,
    CONSTRAINT job_args_check CHECK (pg_catalog.jsonb_typeof(args) OPERATOR(pg_catalog.=) 'object'),
    CONSTRAINT job_max_attempts_check CHECK (max_attempts OPERATOR(pg_catalog.>=) 1),
    CONSTRAINT job_attempt_check CHECK (attempt OPERATOR(pg_catalog.>=) 0)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);

COMMENT ON TABLE pgapp.job IS
'Jobs: one row per job, finished ones pruned after pgapp.jobs_retention';

-- The indexes never name state, completed_at, result or progress: a
-- job's completion then rewrites its row in place when the page has room
-- (HOT), and only the claim writes index entries (the primary key's).
-- what a queue's workers claim next
CREATE INDEX job_claim_idx ON pgapp.job (queue, priority, scheduled_at, id) WHERE claimable;
-- when the next scheduled or retryable job falls due (the supervisor's
-- wake-up); jobs enqueued to run now are not in it
CREATE INDEX job_scheduled_idx ON pgapp.job (queue, scheduled_at) WHERE claimable AND scheduled_at > inserted_at;
-- external workers' leases, for their rescue when they run out
CREATE INDEX job_leased_idx ON pgapp.job (expires_at) WHERE lease IS NOT NULL;
-- the jobs each role has waiting (pgapp.jobs_max_queued_per_role)
CREATE INDEX job_owner_idx ON pgapp.job (owner) WHERE claimable;
-- one job per unique key and time bucket (pgapp.enqueue's unique_by / unique_for)
CREATE UNIQUE INDEX job_unique_idx ON pgapp.job (unique_key) WHERE holds_key;

-- Pruning's bound, instead of an index on inserted_at (which every claim
-- would write to): at each prune, the last job id issued then.  A job that
-- finished before a time had its id issued before it, so the jobs finished
-- before a cutoff all have ids up to the mark of the first prune at or after
-- that cutoff, and pruning walks the primary key up to there.
CREATE TABLE pgapp.job_prune_mark (
    at       timestamptz PRIMARY KEY,
    last_id  bigint NOT NULL
);

COMMENT ON TABLE pgapp.job_prune_mark IS
'The last job id issued at each pgapp.prune_jobs: where a later prune''s scan of the primary key stops';

-- What a worker function receives besides its args.
CREATE TYPE pgapp.job_info AS (
    id           bigint,
    queue        text,
    worker       regproc,
    attempt      integer,
    max_attempts integer,
    priority     integer,
    inserted_at  timestamptz,
    scheduled_at timestamptz,
    errors       jsonb
);

-- Oban's default retry curve: 15 s + 2^attempt s (the attempt scaled onto a
-- 20-attempt curve when max_attempts is larger), plus up to 10% jitter.
CREATE FUNCTION pgapp.job_backoff(attempt integer, max_attempts integer DEFAULT 20,
                                  jitter double precision DEFAULT pg_catalog.random())
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT make_interval(secs => (15 + power(2, least(
               CASE WHEN max_attempts <= 20 THEN greatest(attempt, 0)
                    ELSE round(greatest(attempt, 0)::numeric / max_attempts * 20)::integer END,
               20))) * (1 + 0.1 * least(greatest(coalesce(jitter, 0), 0), 1)))
$$;

COMMENT ON FUNCTION pgapp.job_backoff(integer, integer, double precision) IS
'Delay before retrying a job that failed its attempth attempt: 15 s + 2^attempt s, plus up to 10% jitter';

CREATE FUNCTION pgapp._job_check_queue(queue text)
RETURNS pgapp.queue
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue;
BEGIN
    IF queue IS NULL THEN
        RAISE EXCEPTION 'queue must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO q FROM pgapp.queue AS x WHERE x.name = queue;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with pgapp.create_queue(name, concurrency).';
    END IF;
    RETURN q;
END
$$;

-- A worker is fn(args jsonb, job pgapp.job_info) -> jsonb that the role may execute.
CREATE FUNCTION pgapp._job_check_worker(worker regproc, caller oid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
BEGIN
    IF worker IS NULL THEN
        RAISE EXCEPTION 'worker must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT pronargs, proargtypes, prorettype, proretset, prokind, pronamespace INTO p FROM pg_proc WHERE oid = worker;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function with OID % does not exist', worker::oid USING ERRCODE = 'undefined_function';
    END IF;
    IF p.prokind <> 'f' OR p.proretset OR p.prorettype <> 'jsonb'::regtype
       OR p.pronargs <> 2 OR p.proargtypes[0] <> 'jsonb'::regtype OR p.proargtypes[1] <> 'pgapp.job_info'::regtype THEN
        RAISE EXCEPTION 'function %(%) cannot be a job worker', worker,
                        pg_get_function_identity_arguments(worker)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A worker takes (args jsonb, job pgapp.job_info) and returns jsonb.',
                  HINT = format('CREATE FUNCTION %s(args jsonb, job pgapp.job_info) RETURNS jsonb ...', worker);
    END IF;
    IF p.pronamespace = pg_my_temp_schema() OR pg_is_other_temp_schema(p.pronamespace) THEN
        RAISE EXCEPTION 'job worker % is a temporary function', worker
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A temporary function belongs to one session; a job runs in a worker process.',
                  HINT = 'Create the worker in a schema of its own.';
    END IF;
    IF NOT has_function_privilege(caller, worker, 'EXECUTE') THEN
        RAISE EXCEPTION 'permission denied for function %', worker
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A job runs as the role that enqueues it, which must be allowed to execute its worker.';
    END IF;
END
$$;

/*
 * The unique key of a job: a digest of its owner, queue, worker and the
 * unique_by values of its args (all args when unique_by is NULL), and the
 * time bucket of unique_for (one bucket for ever when it is NULL).  The
 * owner is part of it, so that one role cannot take another's key (a job
 * enqueued first, that never runs, would stand in for the other's).
 */
CREATE FUNCTION pgapp._job_unique_key(queue text, worker regproc, args jsonb, unique_by text[],
                                      unique_for interval, at timestamptz, owner oid)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT md5(jsonb_build_array(queue, worker::oid, owner,
                   CASE WHEN unique_by IS NULL THEN args
                        ELSE (SELECT coalesce(jsonb_agg(coalesce(args -> k, 'null'::jsonb) ORDER BY o), '[]')
                                FROM unnest(unique_by) WITH ORDINALITY AS u(k, o)) END)::text)
           || ':' || CASE WHEN unique_for IS NULL THEN '0'
                          ELSE floor(extract(epoch FROM at) / extract(epoch FROM unique_for))::bigint::text END
$$;

/*
 * Insert jobs, one per element of args_list (a JSON array of objects);
 * returns their ids in that order, the existing job's id for a duplicate.
 * Run by pgapp.enqueue / enqueue_many as the schema owner.
 */
CREATE FUNCTION pgapp._job_enqueue_many(queue text, worker regproc, args_list jsonb, scheduled_at timestamptz,
                                        priority integer, max_attempts integer, unique_by text[],
                                        unique_for interval, discard_after interval, caller oid)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue;
    at timestamptz := coalesce(scheduled_at, now());
    st pgapp.job_state;
    ids bigint[] := '{}';
    a jsonb;
    k text;
    jid bigint;
    bad integer;
    big integer;
    max_batch integer;
    max_args bigint;
    max_queued integer;
    queued bigint;
BEGIN
    q := pgapp._job_check_queue(queue);
    PERFORM pgapp._job_check_worker(worker, caller);
    IF args_list IS NULL OR jsonb_typeof(args_list) <> 'array' THEN
        RAISE EXCEPTION 'jobs must be given as a JSON array of argument objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    max_batch := current_setting('pgapp.jobs_max_batch')::integer;
    IF max_batch > 0 AND jsonb_array_length(args_list) > max_batch THEN
        RAISE EXCEPTION 'too many jobs in one call: % (at most %)', jsonb_array_length(args_list), max_batch
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Enqueue them in smaller batches, or raise pgapp.jobs_max_batch (0: no limit).';
    END IF;
    max_args := pg_size_bytes(current_setting('pgapp.jobs_max_args_size'));
    SELECT min(o) FILTER (WHERE jsonb_typeof(v) <> 'object'),
           min(o) FILTER (WHERE max_args > 0 AND pg_column_size(v) > max_args)
      INTO bad, big
      FROM jsonb_array_elements(args_list) WITH ORDINALITY AS e(v, o);
    IF big IS NOT NULL AND bad IS NULL THEN
        RAISE EXCEPTION 'job args are too large: % bytes (at most %)',
                        pg_column_size(args_list -> (big - 1)), max_args
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('Element %s of the jobs.', big),
                  HINT = 'Store large data in a table and pass its key, or raise pgapp.jobs_max_args_size.';
    END IF;
    -- what one role keeps waiting is bounded (superusers are not)
    max_queued := current_setting('pgapp.jobs_max_queued_per_role')::integer;
    IF max_queued > 0 AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = caller) THEN
        SELECT count(*) INTO queued
          FROM (SELECT FROM pgapp.job AS j WHERE j.owner = caller AND j.claimable
                 LIMIT max_queued) AS w;
        IF queued + jsonb_array_length(args_list) > max_queued THEN
            RAISE EXCEPTION 'role % has too many jobs waiting: % (at most %)', caller::regrole,
                            CASE WHEN queued >= max_queued THEN format('%s or more', queued)
                                 ELSE queued::text END, max_queued
                USING ERRCODE = 'program_limit_exceeded',
                      DETAIL = format('This call would add %s.', jsonb_array_length(args_list)),
                      HINT = 'Let its jobs run first, or raise pgapp.jobs_max_queued_per_role.';
        END IF;
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'job args must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s (element %s).', jsonb_typeof(args_list -> (bad - 1)), bad),
                  HINT = 'Pass the arguments as an object, e.g. ''{"user_id": 1}''.';
    END IF;
    IF coalesce(max_attempts, 20) < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', max_attempts);
    END IF;
    IF unique_for <= interval '0' THEN
        RAISE EXCEPTION 'unique_for must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', unique_for);
    END IF;
    IF discard_after <= interval '0' THEN
        RAISE EXCEPTION 'discard_after must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', discard_after);
    END IF;
    st := CASE WHEN at > now() THEN 'scheduled' ELSE 'available' END;

    IF unique_by IS NULL AND unique_for IS NULL THEN
        WITH ins AS (
            INSERT INTO pgapp.job (queue, worker, args, state, priority, max_attempts, scheduled_at,
                                   discard_after, owner)
            SELECT q.name, worker, e.v, st, coalesce(priority, 0), coalesce(max_attempts, 20), at,
                   discard_after, caller
              FROM jsonb_array_elements(args_list) WITH ORDINALITY AS e(v, o)
             ORDER BY e.o
            RETURNING id)
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO ids FROM ins;
    ELSE
        FOR a IN SELECT v FROM jsonb_array_elements(args_list) AS e(v) LOOP
            k := pgapp._job_unique_key(q.name, worker, a, unique_by, unique_for, now(), caller);
            INSERT INTO pgapp.job AS j (queue, worker, args, state, priority, max_attempts, scheduled_at,
                                        discard_after, owner, unique_key)
            VALUES (q.name, worker, a, st, coalesce(priority, 0), coalesce(max_attempts, 20), at,
                    discard_after, caller, k)
            ON CONFLICT (unique_key) WHERE holds_key DO NOTHING
            RETURNING j.id INTO jid;
            IF jid IS NULL THEN
                SELECT j.id INTO jid FROM pgapp.job AS j WHERE j.unique_key = k AND j.holds_key;
                IF NOT FOUND THEN
                    -- committed after this transaction's snapshot (REPEATABLE READ and up)
                    RAISE EXCEPTION 'could not serialize access due to a concurrent enqueue of the same unique job'
                        USING ERRCODE = 'serialization_failure';
                END IF;
            END IF;
            ids := ids || jid;
        END LOOP;
    END IF;
    IF st = 'available' AND cardinality(ids) > 0 THEN
        PERFORM pgapp._job_wake(q.name, cardinality(ids));
    END IF;
    RETURN ids;
END
$$;

CREATE FUNCTION pgapp.enqueue(queue text, worker regproc, args jsonb DEFAULT '{}',
                              scheduled_at timestamptz DEFAULT now(), priority integer DEFAULT 0,
                              max_attempts integer DEFAULT 20, unique_by text[] DEFAULT NULL,
                              unique_for interval DEFAULT NULL, discard_after interval DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'pgapp_job_enqueue'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.enqueue(text, regproc, jsonb, timestamptz, integer, integer, text[], interval, interval) IS
'Enqueue a job; returns its id (the existing job''s id for a duplicate within unique_for)';

CREATE FUNCTION pgapp.enqueue_many(queue text, worker regproc, args_list jsonb,
                                   scheduled_at timestamptz DEFAULT now(), priority integer DEFAULT 0,
                                   max_attempts integer DEFAULT 20, unique_by text[] DEFAULT NULL,
                                   unique_for interval DEFAULT NULL, discard_after interval DEFAULT NULL)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'pgapp_job_enqueue_many'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.enqueue_many(text, regproc, jsonb, timestamptz, integer, integer, text[], interval, interval) IS
'Enqueue one job per element of a JSON array of argument objects; returns the ids in order';

REVOKE ALL ON pgapp.queue, pgapp.job, pgapp.job_prune_mark FROM PUBLIC;
GRANT SELECT ON pgapp.queue TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgapp.queue TO pgapp_admin;
GRANT SELECT ON pgapp.job TO pgapp_admin;
REVOKE ALL ON FUNCTION pgapp._job_check_queue(text), pgapp._job_check_worker(regproc, oid),
    pgapp._job_unique_key(text, regproc, jsonb, text[], interval, timestamptz, oid),
    pgapp._job_enqueue_many(text, regproc, jsonb, timestamptz, integer, integer, text[], interval, interval, oid)
    FROM PUBLIC;

-- sql/parts/80_jobs_control.sql: jobs: cancel and retry, queue administration, failures and rescue (docs/jobs.md)

-- The job, locked, that caller may change (their own, or pgapp_admin); errors otherwise.
CREATE FUNCTION pgapp._job_for_caller(id bigint, caller oid)
RETURNS pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'job id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO j FROM pgapp.job AS x WHERE x.id = _job_for_caller.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = 'undefined_object',
            HINT = 'Finished jobs are pruned after pgapp.jobs_retention.';
    END IF;
    IF j.owner IS DISTINCT FROM caller AND NOT pg_has_role(caller, 'pgapp_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied for job %', id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the role that enqueued a job, or a member of pgapp_admin, may change it.';
    END IF;
    RETURN j;
END
$$;

CREATE FUNCTION pgapp._job_cancel_job(id bigint, caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
BEGIN
    j := pgapp._job_for_caller(id, caller);
    IF j.state IN ('completed', 'discarded', 'cancelled') OR j.cancel_requested_at IS NOT NULL THEN
        RETURN false;
    END IF;
    IF j.state = 'executing' AND j.lease IS NULL THEN
        -- claimed by a pgapp worker: flag it, and at commit ask the worker,
        -- which cancels it (rolling its effects back) unless it has finished
        UPDATE pgapp.job AS x SET cancel_requested_at = now() WHERE x.id = j.id;
        PERFORM pgapp._job_interrupt(j.id, substring(j.attempted_by FROM '^pgapp worker (\d+)$')::integer);
        RETURN true;
    END IF;
    UPDATE pgapp.job AS x
       SET state = 'cancelled', cancelled_at = now(), expires_at = NULL
     WHERE x.id = j.id;
    RETURN true;
END
$$;

CREATE FUNCTION pgapp.cancel_job(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_job_cancel_job'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.cancel_job(bigint) IS
'Cancel a job that has not finished; a running one is interrupted. False when it had finished';

CREATE FUNCTION pgapp._job_retry_job(id bigint, caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
    holder bigint;
BEGIN
    j := pgapp._job_for_caller(id, caller);
    IF j.state IN ('available', 'executing') THEN
        RETURN false;
    END IF;
    -- a discarded or cancelled job takes its unique key back, unless another
    -- job was enqueued with it meanwhile
    IF NOT j.holds_key AND j.unique_key IS NOT NULL THEN
        SELECT x.id INTO holder FROM pgapp.job AS x WHERE x.unique_key = j.unique_key AND x.holds_key;
        IF FOUND THEN
            RAISE EXCEPTION 'job % cannot run again: job % now holds its unique key', j.id, holder
                USING ERRCODE = 'unique_violation',
                      DETAIL = format('Job %s was %s, which released its key; job %s was enqueued with it since.',
                                      j.id, j.state, holder),
                      HINT = format('Job %s runs in its place; cancel it first to run job %s again.', holder, j.id);
        END IF;
    END IF;
    UPDATE pgapp.job AS x
       SET state = 'available', scheduled_at = now(), completed_at = NULL, discarded_at = NULL,
           cancelled_at = NULL, cancel_requested_at = NULL,
           max_attempts = greatest(x.max_attempts, x.attempt + 1)
     WHERE x.id = j.id;
    PERFORM pgapp._job_wake(j.queue);
    RETURN true;
END
$$;

CREATE FUNCTION pgapp.retry_job(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_job_retry_job'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.retry_job(bigint) IS
'Run a scheduled, retryable or finished job again now; false when it is available or running';

CREATE FUNCTION pgapp.create_queue(name text, concurrency integer, paused boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR concurrency IS NULL OR paused IS NULL THEN
        RAISE EXCEPTION 'queue name, concurrency and paused must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,51}$' THEN
        RAISE EXCEPTION 'invalid queue name "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A queue name has 1 to 52 letters, digits, "_", "." or "-" and does not start with "." or "-".';
    END IF;
    IF concurrency < 0 OR concurrency > 1000 THEN
        RAISE EXCEPTION 'concurrency must be between 0 and 1000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', concurrency),
            HINT = 'Concurrency 0 makes a queue that only external workers serve (pgapp.fetch_jobs).';
    END IF;
    IF EXISTS (SELECT FROM pgapp.queue AS q WHERE q.name = create_queue.name) THEN
        RAISE EXCEPTION 'queue "%" already exists', name USING ERRCODE = 'duplicate_object',
            HINT = 'Change its concurrency with UPDATE pgapp.queue, or drop it first.';
    END IF;
    INSERT INTO pgapp.queue (name, concurrency, paused) VALUES (name, concurrency, paused);
    PERFORM pgapp._job_wake_workers(name);     -- the database's supervisor, at commit
END
$$;

COMMENT ON FUNCTION pgapp.create_queue(text, integer, boolean) IS
'Create a job queue run by up to concurrency background workers (0: external workers only)';

CREATE FUNCTION pgapp._job_set_paused(queue text, paused boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_check_queue(queue);
    UPDATE pgapp.queue AS q SET paused = _job_set_paused.paused WHERE q.name = queue;
    IF NOT paused THEN
        PERFORM pgapp._job_wake(queue);
    END IF;
END
$$;

CREATE FUNCTION pgapp.pause_queue(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_set_paused(name, true);
END
$$;

COMMENT ON FUNCTION pgapp.pause_queue(text) IS
'Stop starting jobs of a queue (running ones finish)';

CREATE FUNCTION pgapp.resume_queue(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_set_paused(name, false);
END
$$;

COMMENT ON FUNCTION pgapp.resume_queue(text) IS
'Start running the jobs of a paused queue again';

CREATE FUNCTION pgapp.drop_queue(name text, force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pending bigint;
BEGIN
    PERFORM pgapp._job_check_queue(name);
    PERFORM FROM pgapp.queue AS q WHERE q.name = drop_queue.name FOR UPDATE;
    SELECT count(*) INTO pending FROM pgapp.job AS j
     WHERE j.queue = drop_queue.name AND j.state NOT IN ('completed', 'discarded', 'cancelled');
    IF pending > 0 AND NOT coalesce(force, false) THEN
        RAISE EXCEPTION 'queue "%" has % unfinished jobs', name, pending
            USING ERRCODE = 'object_in_use',
                  HINT = 'Wait for them, cancel them, or drop the queue with force => true to delete them.';
    END IF;
    DELETE FROM pgapp.queue AS q WHERE q.name = drop_queue.name;
END
$$;

CREATE FUNCTION pgapp.limit_queue(name text, max_jobs integer, per interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_check_queue(name);
    IF (max_jobs IS NULL) <> (per IS NULL) THEN
        RAISE EXCEPTION 'max_jobs and per must both be given, or both be null to remove the limit'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_jobs < 1 OR per <= interval '0' THEN
        RAISE EXCEPTION 'a queue''s rate limit needs max_jobs >= 1 and a positive period'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s per %s.', max_jobs, per);
    END IF;
    UPDATE pgapp.queue AS q
       SET rate_limit = max_jobs, rate_period = per, rate_tokens = max_jobs, rate_updated_at = now()
     WHERE q.name = limit_queue.name;
    PERFORM pgapp._job_wake(name);
END
$$;

COMMENT ON FUNCTION pgapp.limit_queue(text, integer, interval) IS
'Let a queue start at most max_jobs jobs per period (a token bucket); NULL, NULL removes the limit';

COMMENT ON FUNCTION pgapp.drop_queue(text, boolean) IS
'Drop a queue and its finished jobs; force => true also deletes unfinished ones';

/*
 * Record a failed attempt of an executing job: retryable after the backoff,
 * or discarded after max_attempts or when the retry would come past
 * discard_after.  error: {"message", "sqlstate", ...}.
 */
CREATE FUNCTION pgapp._job_record_failure(jid bigint, error jsonb)
RETURNS pgapp.job_state
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result pgapp.job_state;
BEGIN
    UPDATE pgapp.job AS j
       SET errors = CASE WHEN d.state = 'cancelled' THEN j.errors
                         ELSE j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', clock_timestamp()) || error) END,
           state = d.state,
           scheduled_at = CASE WHEN d.state = 'retryable' THEN d.retry_at ELSE j.scheduled_at END,
           discarded_at = CASE WHEN d.state = 'discarded' THEN clock_timestamp() END,
           cancelled_at = CASE WHEN d.state = 'cancelled' THEN clock_timestamp() END,
           expires_at = NULL
      FROM (SELECT x.id,
                   clock_timestamp() + pgapp.job_backoff(x.attempt, x.max_attempts) AS retry_at,
                   CASE WHEN x.cancel_requested_at IS NOT NULL THEN 'cancelled'
                        WHEN x.attempt >= x.max_attempts
                          OR x.inserted_at + x.discard_after < clock_timestamp() + pgapp.job_backoff(x.attempt, x.max_attempts, 0)
                        THEN 'discarded' ELSE 'retryable' END::pgapp.job_state AS state
              FROM pgapp.job AS x WHERE x.id = jid) AS d
     WHERE j.id = d.id AND j.state = 'executing'
    RETURNING j.state INTO result;
    RETURN result;
END
$$;

/*
 * Executing jobs whose external worker stopped renewing its lease go back
 * to available at once (their attempt counted and an error recorded), or
 * to discarded after their last attempt.  Run by fetch_jobs and the
 * launcher.
 */
CREATE FUNCTION pgapp._job_rescue_expired(queue text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    WITH lost AS (
        SELECT j.id FROM pgapp.job AS j
         WHERE j.lease IS NOT NULL AND j.expires_at < statement_timestamp() AND j.state = 'executing'
           AND (_job_rescue_expired.queue IS NULL OR j.queue = _job_rescue_expired.queue)
           FOR UPDATE SKIP LOCKED)
    UPDATE pgapp.job AS j
       SET errors = j.errors || jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'at', now(), 'sqlstate', '57P01',
               'message', 'the worker stopped renewing its lease; the job was rescued',
               'worker', j.attempted_by)),
           state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::pgapp.job_state,
           discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
           scheduled_at = now(), expires_at = NULL
      FROM lost WHERE j.id = lost.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION pgapp._job_for_caller(bigint, oid), pgapp._job_cancel_job(bigint, oid),
    pgapp._job_retry_job(bigint, oid), pgapp._job_set_paused(text, boolean),
    pgapp._job_record_failure(bigint, jsonb), pgapp._job_rescue_expired(text)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.create_queue(text, integer, boolean), pgapp.pause_queue(text),
    pgapp.resume_queue(text), pgapp.drop_queue(text, boolean), pgapp.limit_queue(text, integer, interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.create_queue(text, integer, boolean), pgapp.pause_queue(text),
    pgapp.resume_queue(text), pgapp.drop_queue(text, boolean), pgapp.limit_queue(text, integer, interval)
    TO pgapp_admin;

-- sql/parts/81_jobs_external.sql: jobs: external workers, any process that can call SQL (pgapp_worker role) (docs/jobs.md)

/*
 * THE claim, for every claimer: up to n due jobs of the queue, highest
 * priority first, locked with SKIP LOCKED, made executing with their
 * attempt counted (or discarded when past their discard_after); returns the
 * executing ones in priority order.  by names the claimer (attempted_by);
 * lease is NULL for pgapp's own workers (the supervisor watches their
 * processes) and the heartbeat deadline for external ones.  No check of the
 * queue (paused, rate limit): pgapp._job_claim and the workers' claim
 * (src/jobs/jobs_claim.c) call it after theirs.  PL/pgSQL for its plan,
 * kept for the session and generic (the custom plans are the same plan,
 * yet would be made at every call): as LANGUAGE sql it was planned at
 * every call, which doubled the claim's time (bench/jobs: claim_p50
 * 0.36-0.48 ms -> 0.74-0.86 ms; PL/pgSQL 0.41-0.42 ms).
 */
CREATE FUNCTION pgapp._job_claim_due(queue text, n integer, by text, lease interval)
RETURNS SETOF pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT j.id FROM pgapp.job AS j
         WHERE j.queue = _job_claim_due.queue AND j.claimable
           AND j.scheduled_at <= statement_timestamp()
         ORDER BY j.priority, j.scheduled_at, j.id
         LIMIT _job_claim_due.n
           FOR UPDATE OF j SKIP LOCKED),
    claimed AS (
        UPDATE pgapp.job AS j
           SET state = CASE WHEN j.inserted_at + j.discard_after < statement_timestamp()
                            THEN 'discarded' ELSE 'executing' END::pgapp.job_state,
               discarded_at = CASE WHEN j.inserted_at + j.discard_after < statement_timestamp() THEN now() END,
               attempt = j.attempt + CASE WHEN j.inserted_at + j.discard_after < statement_timestamp() THEN 0 ELSE 1 END,
               attempted_at = statement_timestamp(),
               attempted_by = _job_claim_due.by,
               lease = _job_claim_due.lease,
               expires_at = statement_timestamp() + _job_claim_due.lease
         WHERE j.id = ANY (ARRAY(SELECT picked.id FROM picked))
        RETURNING j.*)
    SELECT * FROM claimed AS c WHERE c.state = 'executing'
     ORDER BY c.priority, c.scheduled_at, c.id;
END
$$;

/*
 * Claim up to n due jobs of a queue: executing, attempt counted, in
 * priority order; jobs past their discard_after are discarded instead.
 * by names the claimer (attempted_by); lease is NULL for pgapp's own
 * workers (the supervisor watches their processes) and the heartbeat
 * deadline for external ones.  Nothing for a paused queue; a rate-limited
 * one takes no more than its token bucket holds.  The claim itself is
 * pgapp._job_claim_due.
 */
CREATE FUNCTION pgapp._job_claim(queue text, n integer, by text, lease interval)
RETURNS SETOF pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q pgapp.queue;
    tokens double precision;
    claimed integer;
BEGIN
    q := pgapp._job_check_queue(queue);
    IF q.paused THEN
        RETURN;
    END IF;
    IF q.rate_limit IS NOT NULL THEN
        -- the bucket refills at rate_limit per rate_period, up to rate_limit;
        -- claims of the queue take turns on its row for as long as they last
        SELECT * INTO q FROM pgapp.queue AS x WHERE x.name = q.name FOR NO KEY UPDATE;
        tokens := least(q.rate_limit::double precision,
                        coalesce(q.rate_tokens, q.rate_limit)
                        + q.rate_limit * extract(epoch FROM statement_timestamp() - coalesce(q.rate_updated_at, statement_timestamp()))
                                       / extract(epoch FROM q.rate_period));
        n := least(n, floor(tokens)::integer);
        IF n < 1 THEN
            UPDATE pgapp.queue AS x SET rate_tokens = tokens, rate_updated_at = statement_timestamp()
             WHERE x.name = q.name;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM pgapp._job_claim_due(q.name, n, by, lease);
    IF q.rate_limit IS NOT NULL THEN
        GET DIAGNOSTICS claimed = ROW_COUNT;
        UPDATE pgapp.queue AS x SET rate_tokens = tokens - claimed, rate_updated_at = statement_timestamp()
         WHERE x.name = q.name;
    END IF;
END
$$;

CREATE FUNCTION pgapp.fetch_jobs(queue text, n integer, lease interval DEFAULT interval '30 seconds')
RETURNS SETOF pgapp.job
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp._job_check_queue(queue);
    IF n IS NULL OR n < 1 OR n > 10000 THEN
        RAISE EXCEPTION 'n must be between 1 and 10000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', coalesce(n::text, 'NULL'));
    END IF;
    IF lease IS NULL OR lease < interval '1 second' THEN
        RAISE EXCEPTION 'lease must be at least 1 second' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', coalesce(lease::text, 'NULL'));
    END IF;
    PERFORM pgapp._job_rescue_expired(queue);
    RETURN QUERY SELECT * FROM pgapp._job_claim(queue, n, format('external %s (%s)', session_user, pg_backend_pid()), lease);
END
$$;

COMMENT ON FUNCTION pgapp.fetch_jobs(text, integer, interval) IS
'Claim up to n due jobs of a queue for an external worker, which must finish them or renew the lease (heartbeat) before it ends';

/*
 * The external worker's calls on the jobs it fetched.  attempt (the job's
 * attempt as fetch_jobs returned it) is the fetch's fencing token: given,
 * the call acts only while the job is still that fetch -- not after its
 * lease ran out and the job was rescued, fetched again and so renumbered.
 */
CREATE FUNCTION pgapp.heartbeat(ids bigint[], attempts integer[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held bigint[];
BEGIN
    IF attempts IS NOT NULL AND cardinality(attempts) <> cardinality(ids) THEN
        RAISE EXCEPTION 'attempts must have one element per id' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s id(s) and %s attempt(s).', cardinality(ids), cardinality(attempts)),
            HINT = 'Pass each job''s attempt as fetch_jobs returned it, in the order of ids.';
    END IF;
    WITH renewed AS (
        UPDATE pgapp.job AS j SET expires_at = statement_timestamp() + j.lease
         WHERE j.id IN (SELECT h.id FROM unnest(ids, attempts) AS h(id, attempt)
                         WHERE attempts IS NULL OR h.attempt IS NOT DISTINCT FROM j.attempt)
           AND j.state = 'executing' AND j.lease IS NOT NULL
        RETURNING j.id)
    SELECT coalesce(array_agg(r.id ORDER BY r.id), '{}') INTO held FROM renewed AS r;
    RETURN held;
END
$$;

COMMENT ON FUNCTION pgapp.heartbeat(bigint[], integer[]) IS
'Renew the leases of fetched jobs (attempts: their fencing tokens); returns the ids still held (a missing id was cancelled or rescued: stop working on it)';

/*
 * The job an external worker fetched, locked, while it is still that
 * fetch's: executing under a lease and, when attempt is given (the fetch's
 * fencing token), at that attempt.  NULL when it no longer is (cancelled,
 * finished, or rescued after its lease ran out and perhaps fetched again);
 * an error when the job does not exist.
 */
CREATE FUNCTION pgapp._job_for_lease(id bigint, attempt integer)
RETURNS pgapp.job
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j pgapp.job;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'job id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO j FROM pgapp.job AS x
     WHERE x.id = _job_for_lease.id AND x.state = 'executing' AND x.lease IS NOT NULL
       AND (_job_for_lease.attempt IS NULL OR x.attempt = _job_for_lease.attempt)
       FOR UPDATE;
    IF FOUND THEN
        RETURN j;
    END IF;
    PERFORM FROM pgapp.job AS x WHERE x.id = _job_for_lease.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgapp.complete_job(id bigint, result jsonb DEFAULT NULL, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (pgapp._job_for_lease(id, attempt)).id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE pgapp.job AS j
       SET state = 'completed', completed_at = clock_timestamp(), result = complete_job.result, expires_at = NULL
     WHERE j.id = complete_job.id;
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.complete_job(bigint, jsonb, integer) IS
'Record a fetched job as completed; false when it no longer runs (cancelled, or rescued after its lease ran out; with attempt, also when fetched again since)';

CREATE FUNCTION pgapp.fail_job(id bigint, error text, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- locked: the job stays this fetch's until its failure is recorded
    IF (pgapp._job_for_lease(id, attempt)).id IS NULL THEN
        RETURN false;
    END IF;
    RETURN pgapp._job_record_failure(id, jsonb_build_object('message', coalesce(error, 'failed'))) IS NOT NULL;
END
$$;

COMMENT ON FUNCTION pgapp.fail_job(bigint, text, integer) IS
'Record a failed attempt of a fetched job (attempt: its fencing token): retryable after the backoff, or discarded after its last attempt';


/*
 * An external worker's progress on a job it fetched (pgapp.job_progress is
 * for jobs pgapp's workers run): kept in the job's progress column, shown
 * by queue_stats, and broadcast on jobs:<id> as pgapp's workers' progress
 * is.  attempt fences the call as for complete_job.
 */
CREATE FUNCTION pgapp.report_progress(id bigint, percent numeric, message text DEFAULT NULL,
                                      attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF id IS NULL OR percent IS NULL THEN
        RAISE EXCEPTION 'job id and percent must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (percent >= 0 AND percent <= 100) THEN
        RAISE EXCEPTION 'percent must be between 0 and 100' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', percent);
    END IF;
    IF (pgapp._job_for_lease(id, attempt)).id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE pgapp.job AS j SET progress = report_progress.percent WHERE j.id = report_progress.id;
    PERFORM pgapp._broadcast_system('jobs:' || id, 'progress',
                            jsonb_strip_nulls(jsonb_build_object('id', id, 'percent', percent, 'message', message)),
                            'direct');
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.report_progress(bigint, numeric, text, integer) IS
'An external worker''s progress on a fetched job (percent 0..100): kept on the job, shown by queue_stats, broadcast on jobs:<id>; false when the job is no longer that fetch''s';

REVOKE ALL ON FUNCTION pgapp._job_claim_due(text, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._job_claim(text, integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._job_for_lease(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.fetch_jobs(text, integer, interval), pgapp.heartbeat(bigint[], integer[]),
    pgapp.complete_job(bigint, jsonb, integer), pgapp.fail_job(bigint, text, integer),
    pgapp.report_progress(bigint, numeric, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.fetch_jobs(text, integer, interval), pgapp.heartbeat(bigint[], integer[]),
    pgapp.complete_job(bigint, jsonb, integer), pgapp.fail_job(bigint, text, integer),
    pgapp.report_progress(bigint, numeric, text, integer) TO pgapp_worker, pgapp_admin;

-- sql/parts/82_jobs_supervision.sql: jobs: monitoring, wake-ups, the supervisor, pruning (docs/jobs.md)

CREATE FUNCTION pgapp._job_workers(
    OUT slot integer, OUT pid integer, OUT queue text, OUT state text, OUT job bigint,
    OUT since timestamptz, OUT job_started timestamptz, OUT jobs_done bigint,
    OUT progress double precision, OUT progress_message text, OUT progress_seq bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgapp_job_workers'
LANGUAGE C VOLATILE;

CREATE VIEW pgapp.workers AS
SELECT w.slot, w.pid, w.queue, w.state, w.job, w.since, w.job_started, w.jobs_done,
       w.progress, w.progress_message
  FROM pgapp._job_workers() AS w;

COMMENT ON VIEW pgapp.workers IS
'The queue workers of this database: slot, process, queue, state, the job running and its progress';

CREATE FUNCTION pgapp.job_progress(percent numeric, message text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_job_progress'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.job_progress(numeric, text) IS
'From inside a job: report how far it has come (broadcast on jobs:<id>, shown in pgapp.workers and queue_stats)';

CREATE VIEW pgapp.queue_stats AS
SELECT q.name AS queue, q.concurrency, q.paused,
       count(j.id) FILTER (WHERE j.state = 'scheduled') AS scheduled,
       count(j.id) FILTER (WHERE j.state = 'available'
                              OR (j.state IN ('scheduled', 'retryable') AND j.scheduled_at <= now())) AS due,
       count(j.id) FILTER (WHERE j.state = 'available') AS available,
       count(j.id) FILTER (WHERE j.state = 'executing') AS executing,
       count(j.id) FILTER (WHERE j.state = 'retryable') AS retryable,
       count(j.id) FILTER (WHERE j.state = 'completed') AS completed,
       count(j.id) FILTER (WHERE j.state = 'discarded') AS discarded,
       count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       now() - min(j.scheduled_at) FILTER (WHERE j.state IN ('scheduled', 'available', 'retryable')
                                             AND j.scheduled_at <= now()) AS oldest_due_age,
       (SELECT count(*) FROM pgapp._job_workers() AS w WHERE w.queue = q.name) AS workers,
       (SELECT count(*) FROM pgapp._job_workers() AS w WHERE w.queue = q.name AND w.job IS NOT NULL) AS busy,
       (SELECT jsonb_agg(p.p ORDER BY p.job)
          FROM (SELECT w.job, jsonb_strip_nulls(jsonb_build_object('job', w.job, 'percent', w.progress,
                                                                   'message', w.progress_message)) AS p
                  FROM pgapp._job_workers() AS w WHERE w.queue = q.name AND w.progress IS NOT NULL
                UNION ALL
                -- external workers' (pgapp.report_progress)
                SELECT x.id, jsonb_build_object('job', x.id, 'percent', x.progress)
                  FROM pgapp.job AS x
                 WHERE x.queue = q.name AND x.state = 'executing' AND x.lease IS NOT NULL
                   AND x.progress IS NOT NULL) AS p) AS progress
  FROM pgapp.queue AS q
  LEFT JOIN pgapp.job AS j ON j.queue = q.name
 GROUP BY q.name, q.concurrency, q.paused;

COMMENT ON VIEW pgapp.queue_stats IS
'Per queue: jobs by state, how many are due now, how long the oldest due job has waited, workers and progress';

CREATE VIEW pgapp.job_errors AS
SELECT j.id AS job_id, j.queue, j.worker, j.state, (e.value ->> 'attempt')::integer AS attempt,
       (e.value ->> 'at')::timestamptz AS at, e.value ->> 'sqlstate' AS sqlstate,
       e.value ->> 'message' AS message, e.value ->> 'detail' AS detail
  FROM pgapp.job AS j
 CROSS JOIN LATERAL jsonb_array_elements(j.errors) AS e(value)
 WHERE j.errors <> '[]';

COMMENT ON VIEW pgapp.job_errors IS
'Every recorded failure of every job still kept, one row per attempt';

/*
 * Tell whoever runs a queue that work is due: its background workers (at
 * commit, through shared memory), or, for a queue of external workers
 * (concurrency 0), a NOTIFY on pgapp_jobs:<queue>.
 */
CREATE FUNCTION pgapp._job_wake_workers(queue text, n integer DEFAULT 1)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_job_wake_workers'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp._job_interrupt(id bigint, pid integer)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_job_interrupt'
LANGUAGE C VOLATILE;

CREATE FUNCTION pgapp._job_wake(queue text, n integer DEFAULT 1)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pgapp.queue AS q WHERE q.name = queue AND q.concurrency = 0) THEN
        PERFORM pg_notify('pgapp_jobs:' || queue, jsonb_build_object('event', 'available', 'queue', queue)::text);
    END IF;
    -- an external queue still needs the supervisor (scheduled jobs falling due, rescue, pruning)
    PERFORM pgapp._job_wake_workers(queue, n);
END
$$;

/*
 * The supervisor's round (jobs_supervisor.c), in one transaction: jobs that
 * were running when the server crashed have their attempt counted (a
 * worker's claim commits without waiting for its WAL flush, so after a crash
 * the claim may be gone; the worker noted the running job in a file that
 * survives the crash: crashed / crashed_attempts); the jobs a worker that
 * ended had claimed but not started go back untouched; with rescue (the
 * first round, and a round after workers ended), executing jobs of pgapp
 * workers that are not among the live ones (read from shared memory just
 * before this statement began) become available again (discarded after
 * their last attempt); expired external leases too, every round;
 * external queues whose scheduled or retryable jobs fell due since the last
 * round are NOTIFYed; and each queue's state is returned: due = due jobs,
 * counted up to the concurrency; next_at = when the next one falls due.
 */
CREATE FUNCTION pgapp._job_supervise(live text[], since timestamptz, ended text[], ended_running bigint[],
                                     rescue boolean, crashed bigint[], crashed_attempts integer[])
RETURNS TABLE (queue text, concurrency integer, paused boolean, due integer, next_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(crashed) > 0 THEN
        -- as the rescue below would have, had the claim reached the disk
        UPDATE pgapp.job AS j
           SET attempt = c.attempt,
               errors = j.errors || jsonb_build_array(jsonb_build_object(
                   'attempt', c.attempt, 'at', now(), 'sqlstate', '57P01',
                   'message', 'the worker running the job ended before it finished; the job was rescued')),
               state = CASE WHEN c.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::pgapp.job_state,
               discarded_at = CASE WHEN c.attempt >= j.max_attempts THEN now() END,
               scheduled_at = now()
          FROM ROWS FROM (unnest(crashed), unnest(crashed_attempts)) AS c(id, attempt)
         WHERE j.id = c.id AND j.attempt < c.attempt
           AND j.state IN ('scheduled', 'available', 'retryable');
    END IF;
    -- a worker that ended (and was seen to) had claimed a batch: the jobs
    -- of it that had not started go back as they were, attempt not counted
    IF cardinality(ended) > 0 THEN
        UPDATE pgapp.job AS j
           SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'available' ELSE 'cancelled' END::pgapp.job_state,
               cancelled_at = CASE WHEN j.cancel_requested_at IS NULL THEN NULL ELSE now() END,
               attempt = greatest(j.attempt - 1, 0), scheduled_at = now()
         WHERE j.state = 'executing' AND j.lease IS NULL
           AND j.attempted_by = ANY (ended) AND j.id <> ALL (ended_running);
    END IF;
    IF rescue THEN
        WITH lost AS (
            SELECT j.id FROM pgapp.job AS j
             WHERE j.state = 'executing' AND j.lease IS NULL
               AND j.attempted_by <> ALL (live) AND j.attempted_at < statement_timestamp()
               FOR UPDATE SKIP LOCKED)
        UPDATE pgapp.job AS j
           SET errors = j.errors || jsonb_build_array(jsonb_build_object(
                   'attempt', j.attempt, 'at', now(), 'sqlstate', '57P01',
                   'message', 'the worker running the job ended before it finished; the job was rescued',
                   'worker', j.attempted_by)),
               state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                            WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::pgapp.job_state,
               discarded_at = CASE WHEN j.cancel_requested_at IS NULL AND j.attempt >= j.max_attempts THEN now() END,
               cancelled_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
               scheduled_at = now()
          FROM lost WHERE j.id = lost.id;
    END IF;
    PERFORM pgapp._job_rescue_expired(NULL);
    PERFORM pg_notify('pgapp_jobs:' || q.name, jsonb_build_object('event', 'available', 'queue', q.name)::text)
       FROM pgapp.queue AS q
      WHERE q.concurrency = 0 AND NOT q.paused
        AND EXISTS (SELECT FROM pgapp.job AS j
                     WHERE j.queue = q.name AND j.claimable
                       AND j.scheduled_at > since AND j.scheduled_at <= statement_timestamp()
                       AND j.inserted_at < j.scheduled_at);
    RETURN QUERY
    SELECT q.name, q.concurrency, q.paused,
           (SELECT count(*)::integer FROM (
                SELECT FROM pgapp.job AS j
                 WHERE j.queue = q.name AND j.claimable
                   AND j.scheduled_at <= statement_timestamp()
                 -- up to 64 a worker, for the share new workers take (at most 4096 read)
                 LIMIT least(greatest(q.concurrency, 1) * 64, 4096)) AS d),
           (SELECT j.scheduled_at FROM pgapp.job AS j
             WHERE j.queue = q.name AND j.claimable AND j.scheduled_at > j.inserted_at
               AND j.scheduled_at > statement_timestamp()
             ORDER BY j.scheduled_at LIMIT 1)
      FROM pgapp.queue AS q;
END
$$;

/*
 * Delete jobs finished longer ago than older_than, at most batch_size per
 * call (run it again while it returns batch_size).
 */
CREATE FUNCTION pgapp.prune_jobs(older_than interval DEFAULT NULL, batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    age interval := coalesce(older_than, current_setting('pgapp.jobs_retention', true)::interval, interval '1 day');
    n bigint;
    bound bigint;
BEGIN
    IF age < interval '0' OR coalesce(batch_size, 0) < 1 THEN
        RAISE EXCEPTION 'older_than must not be negative and batch_size must be at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- jobs finished before the cutoff have ids up to the first mark at or
    -- after it (none yet: the last id issued now)
    SELECT m.last_id INTO bound FROM pgapp.job_prune_mark AS m
     WHERE m.at >= now() - age ORDER BY m.at LIMIT 1;
    IF bound IS NULL THEN
        bound := coalesce(pg_sequence_last_value('pgapp.job_id_seq'), 0);
    END IF;
    DELETE FROM pgapp.job AS j
     WHERE j.id IN (SELECT x.id FROM pgapp.job AS x
                     WHERE x.id <= bound
                       AND x.state IN ('completed', 'discarded', 'cancelled')
                       AND coalesce(x.completed_at, x.discarded_at, x.cancelled_at) < now() - age
                     ORDER BY x.id
                     LIMIT batch_size
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- this prune's mark (one per second at most); marks before the cutoff
    -- serve no later prune of that age (nor of the retention's, when a
    -- shorter age was asked for)
    INSERT INTO pgapp.job_prune_mark (at, last_id)
    SELECT now(), coalesce(pg_sequence_last_value('pgapp.job_id_seq'), 0)
     WHERE NOT EXISTS (SELECT FROM pgapp.job_prune_mark AS m WHERE m.at > now() - interval '1 second')
    ON CONFLICT (at) DO NOTHING;
    DELETE FROM pgapp.job_prune_mark AS m
     WHERE m.at < now() - greatest(age, coalesce(current_setting('pgapp.jobs_retention', true)::interval,
                                                 interval '1 day'));
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp.prune_jobs(interval, integer) IS
'Delete finished jobs older than older_than (default pgapp.jobs_retention), batch_size at a time';

REVOKE ALL ON FUNCTION pgapp._job_wake(text, integer),
    pgapp._job_supervise(text[], timestamptz, text[], bigint[], boolean, bigint[], integer[]),
    pgapp._job_wake_workers(text, integer), pgapp._job_interrupt(bigint, integer), pgapp._job_workers()
    FROM PUBLIC;
GRANT SELECT ON pgapp.queue_stats, pgapp.job_errors TO pgapp_admin;
REVOKE ALL ON pgapp.queue_stats, pgapp.job_errors FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp._job_workers() TO pgapp_admin;
REVOKE ALL ON pgapp.workers FROM PUBLIC;
GRANT SELECT ON pgapp.workers TO pgapp_admin;
REVOKE ALL ON FUNCTION pgapp.prune_jobs(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.prune_jobs(interval, integer) TO pgapp_admin;

-- sql/parts/83_jobs_cron.sql: jobs: cron through pg_cron (docs/jobs.md)

CREATE FUNCTION pgapp._job_cron_command(queue text, worker regproc, args jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- unique by all args within the minute: a schedule that fires twice in a minute enqueues once
    SELECT format('SELECT pgapp.enqueue(%L, %L::pg_catalog.regprocedure, %L::jsonb, unique_for => interval %L)',
                  queue, worker::regprocedure::text, args::text, '1 minute')
$$;

CREATE FUNCTION pgapp.schedule(name text, cron text, queue text, worker regproc, args jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jobid bigint;
BEGIN
    IF name IS NULL OR cron IS NULL THEN
        RAISE EXCEPTION 'schedule name and cron text must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pgapp._job_check_queue(queue);
    PERFORM pgapp._job_check_worker(worker, current_user::regrole::oid);
    IF args IS NULL OR jsonb_typeof(args) <> 'object' THEN
        RAISE EXCEPTION 'job args must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got %s.', coalesce(jsonb_typeof(args), 'NULL'));
    END IF;
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Add pg_cron to shared_preload_libraries, run CREATE EXTENSION pg_cron in the '
                                'database named by cron.database_name (%s), and call pgapp.schedule there; '
                                'everything else of pgapp works without it.',
                                coalesce(current_setting('cron.database_name', true), 'postgres'));
    END IF;
    BEGIN
        EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4)'
           INTO jobid
          USING name, cron, pgapp._job_cron_command(queue, worker, args), current_database();
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'invalid cron schedule "%"', cron
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = SQLERRM,
                  HINT = 'Five fields: minute hour day-of-month month day-of-week, e.g. ''0 2 * * *'' (daily at 02:00), or ''@daily''.';
    END;
    RETURN jobid;
END
$$;

COMMENT ON FUNCTION pgapp.schedule(text, text, text, regproc, jsonb) IS
'Enqueue a job on a cron schedule (pg_cron); the same name replaces the schedule. Returns the pg_cron job id';

CREATE FUNCTION pgapp.unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found boolean;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM cron.job WHERE jobname = $1 AND username = current_user)'
       INTO found USING name;
    IF NOT found THEN
        RAISE EXCEPTION 'schedule "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' INTO found USING name;
    RETURN found;
END
$$;

COMMENT ON FUNCTION pgapp.unschedule(text) IS
'Remove a schedule made by pgapp.schedule';

REVOKE ALL ON FUNCTION pgapp._job_cron_command(text, regproc, jsonb) FROM PUBLIC;
-- schedules run as the role that makes them (pg_cron), which needs USAGE on schema cron
REVOKE ALL ON FUNCTION pgapp.schedule(text, text, text, regproc, jsonb), pgapp.unschedule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.schedule(text, text, text, regproc, jsonb), pgapp.unschedule(text),
    pgapp._job_check_queue(text), pgapp._job_check_worker(regproc, oid),
    pgapp._job_cron_command(text, regproc, jsonb) TO pgapp_admin;

-- sql/parts/90_openapi.sql: API description: JSON Schema and OpenAPI (docs/openapi.md)

/*
 * JSON Schema of a column or argument type (draft 2020-12, as OpenAPI 3.1
 * uses): domains resolve to their base type, enums list their labels,
 * arrays their items.
 */
CREATE FUNCTION pgapp.json_schema_type(typ regtype, typmod integer DEFAULT -1)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t pg_catalog.pg_type;
BEGIN
    SELECT * INTO t FROM pg_catalog.pg_type WHERE oid = typ;
    IF t.typtype = 'd' THEN
        RETURN pgapp.json_schema_type(t.typbasetype, t.typtypmod);
    END IF;
    IF t.typtype = 'e' THEN
        RETURN jsonb_build_object('type', 'string', 'enum',
            (SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder)
               FROM pg_catalog.pg_enum AS e WHERE e.enumtypid = typ));
    END IF;
    IF t.typcategory = 'A' AND t.typelem <> 0 THEN
        RETURN jsonb_build_object('type', 'array', 'items', pgapp.json_schema_type(t.typelem));
    END IF;
    IF t.typtype = 'c' THEN
        -- a row: an object of its columns
        RETURN jsonb_build_object('type', 'object', 'properties', coalesce(
            (SELECT jsonb_object_agg(a.attname, pgapp.json_schema_type(a.atttypid, a.atttypmod))
               FROM pg_catalog.pg_attribute AS a
              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '{}'));
    END IF;
    IF typ IN ('void'::regtype, 'record'::regtype) THEN
        RETURN '{}';
    END IF;
    IF t.oid IS NULL THEN
        RAISE EXCEPTION 'type with OID % does not exist', typ::oid USING ERRCODE = 'undefined_object';
    END IF;
    RETURN CASE typ
        WHEN 'boolean'::regtype THEN '{"type": "boolean"}'
        WHEN 'smallint'::regtype THEN '{"type": "integer"}'
        WHEN 'integer'::regtype THEN '{"type": "integer"}'
        WHEN 'bigint'::regtype THEN '{"type": "integer"}'
        WHEN 'numeric'::regtype THEN '{"type": "number"}'
        WHEN 'real'::regtype THEN '{"type": "number"}'
        WHEN 'double precision'::regtype THEN '{"type": "number"}'
        WHEN 'date'::regtype THEN '{"type": "string", "format": "date"}'
        WHEN 'timestamp without time zone'::regtype THEN '{"type": "string", "format": "date-time"}'
        WHEN 'timestamp with time zone'::regtype THEN '{"type": "string", "format": "date-time"}'
        WHEN 'time without time zone'::regtype THEN '{"type": "string", "format": "time"}'
        WHEN 'uuid'::regtype THEN '{"type": "string", "format": "uuid"}'
        WHEN 'json'::regtype THEN '{}'
        WHEN 'jsonb'::regtype THEN '{}'
        WHEN 'character varying'::regtype THEN
            CASE WHEN typmod > 4 THEN jsonb_build_object('type', 'string', 'maxLength', typmod - 4)
                 ELSE '{"type": "string"}' END
        ELSE '{"type": "string"}'
    END::jsonb;
END
$$;

/*
 * What one rule of a changeset (kind: length, number, inclusion,
 * exclusion, format, future or transition) adds to the JSON Schema prop of
 * its field: a step of pgapp.json_schema.
 */
CREATE FUNCTION pgapp._json_schema_rule(prop jsonb, rule jsonb, kind text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    is_array boolean := prop ->> 'type' = 'array';
BEGIN
    CASE kind
        WHEN 'length' THEN
            -- JSON Schema has no byte length: say it in words
            IF rule ->> 'count' = 'bytes' AND NOT is_array THEN
                RETURN prop || jsonb_build_object('description', concat_ws(' ', prop ->> 'description',
                    concat_ws(', ', 'Length in bytes (UTF-8)',
                              'at least ' || (rule ->> 'min'), 'at most ' || (rule ->> 'max'),
                              'exactly ' || (rule ->> 'is')) || '.'));
            END IF;
            RETURN prop
                || CASE WHEN rule ? 'min' THEN jsonb_build_object(CASE WHEN is_array THEN 'minItems' ELSE 'minLength' END, rule -> 'min') ELSE '{}' END
                || CASE WHEN rule ? 'max' THEN jsonb_build_object(CASE WHEN is_array THEN 'maxItems' ELSE 'maxLength' END, rule -> 'max') ELSE '{}' END
                || CASE WHEN rule ? 'is' THEN jsonb_build_object(CASE WHEN is_array THEN 'minItems' ELSE 'minLength' END, rule -> 'is',
                                                                 CASE WHEN is_array THEN 'maxItems' ELSE 'maxLength' END, rule -> 'is') ELSE '{}' END;
        WHEN 'number' THEN
            RETURN prop
                || CASE WHEN rule ? 'less_than' THEN jsonb_build_object('exclusiveMaximum', rule -> 'less_than') ELSE '{}' END
                || CASE WHEN rule ? 'greater_than' THEN jsonb_build_object('exclusiveMinimum', rule -> 'greater_than') ELSE '{}' END
                || CASE WHEN rule ? 'less_than_or_equal_to' THEN jsonb_build_object('maximum', rule -> 'less_than_or_equal_to') ELSE '{}' END
                || CASE WHEN rule ? 'greater_than_or_equal_to' THEN jsonb_build_object('minimum', rule -> 'greater_than_or_equal_to') ELSE '{}' END
                || CASE WHEN rule ? 'equal_to' THEN jsonb_build_object('const', rule -> 'equal_to') ELSE '{}' END;
        WHEN 'inclusion' THEN
            RETURN prop || jsonb_build_object('enum', rule -> 'in');
        WHEN 'exclusion' THEN
            RETURN prop || jsonb_build_object('not', jsonb_build_object('enum', rule -> 'in'));
        WHEN 'format' THEN
            RETURN prop || jsonb_build_object('pattern', rule -> 'pattern',
                'description', concat_ws(' ', prop ->> 'description',
                                         'The pattern is a POSIX regular expression (PostgreSQL''s ~).'));
        WHEN 'future' THEN
            RETURN prop || jsonb_build_object('description',
                concat_ws(' ', prop ->> 'description', 'Must be in the future.'));
        WHEN 'transition' THEN
            -- an enum column already lists its labels in order; a text column takes the states
            RETURN prop || jsonb_build_object('enum', coalesce(prop -> 'enum',
                (SELECT jsonb_agg(s ORDER BY s) FROM pgapp.machine AS m, jsonb_object_keys(m.transitions) AS s
                  WHERE m.name = rule ->> 'machine')),
                'description', concat_ws(' ', prop ->> 'description',
                    format('Changes follow the status machine "%s".', rule ->> 'machine')));
        ELSE
            RAISE EXCEPTION 'a JSON Schema has nothing for a rule of kind "%"', kind
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Kinds: length, number, inclusion, exclusion, format, future, transition.';
    END CASE;
END
$$;

/*
 * The rules of a named changeset as a JSON Schema, so clients can check
 * their input before sending it.
 */
CREATE FUNCTION pgapp.json_schema(changeset_name text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    def pgapp.changeset_def;
    props jsonb := '{}';
    required text[] := '{}';
    rule jsonb;
    kind text;
    field text;
    prop jsonb;
    nullable boolean;
BEGIN
    IF changeset_name IS NULL THEN
        RAISE EXCEPTION 'changeset_name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO def FROM pgapp.changeset_def AS d WHERE d.name = changeset_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'changeset "%" does not exist',
                CASE WHEN length(changeset_name) > 64 THEN left(changeset_name, 64) || '...' ELSE changeset_name END
            USING ERRCODE = 'undefined_object', HINT = 'Define it with pgapp.define_changeset().';
    END IF;

    -- each permitted field, typed from its column
    FOREACH field IN ARRAY def.permitted LOOP
        SELECT pgapp.json_schema_type(a.atttypid, a.atttypmod), NOT a.attnotnull
          INTO prop, nullable
          FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = def.source AND a.attname = field AND a.attnum > 0 AND NOT a.attisdropped;
        IF prop IS NULL THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', field, def.source
                USING ERRCODE = 'undefined_column',
                      HINT = format('Changeset "%s" is out of date: define it again.', changeset_name);
        END IF;
        props := props || jsonb_build_object(field, prop || jsonb_build_object('x-nullable', nullable));
    END LOOP;

    -- what the rules say about them
    FOR rule IN SELECT r FROM jsonb_array_elements(def.rules) AS r LOOP
        -- ("required": true is an option of confirmation, not the required rule)
        SELECT k INTO kind FROM jsonb_object_keys(rule) AS k
         WHERE k IN ('required', 'length', 'number', 'inclusion', 'exclusion', 'format', 'future', 'transition')
           AND NOT (k = 'required' AND jsonb_typeof(rule -> k) = 'boolean');
        CONTINUE WHEN kind IS NULL;
        IF kind = 'required' THEN
            required := required || ARRAY(
                SELECT f FROM jsonb_array_elements_text(
                    CASE jsonb_typeof(rule -> 'required') WHEN 'array' THEN rule -> 'required'
                         ELSE jsonb_build_array(rule -> 'required') END) AS f
                 WHERE props ? f AND NOT f = ANY (required));
            CONTINUE;
        END IF;
        field := rule ->> kind;
        CONTINUE WHEN NOT props ? field;
        props := jsonb_set(props, ARRAY[field], pgapp._json_schema_rule(props -> field, rule, kind));
    END LOOP;

    -- nullable columns accept null, unless required
    SELECT jsonb_object_agg(key,
             CASE WHEN (value ->> 'x-nullable')::boolean AND NOT key = ANY (required) AND value ? 'type'
                  THEN jsonb_set(value - 'x-nullable', '{type}', jsonb_build_array(value -> 'type', 'null'))
                       || CASE WHEN value ? 'enum' THEN jsonb_build_object('enum', (value -> 'enum') || 'null'::jsonb)
                               ELSE '{}' END
                  ELSE value - 'x-nullable' END)
      INTO props
      FROM jsonb_each(props);

    RETURN jsonb_build_object(
        '$schema', 'https://json-schema.org/draft/2020-12/schema',
        'title', changeset_name,
        'type', 'object',
        'properties', coalesce(props, '{}'),
        'required', to_jsonb(required),
        'x-pgapp-changeset', changeset_name);
END
$$;

COMMENT ON FUNCTION pgapp.json_schema_type(regtype, integer) IS
'The JSON Schema of a PostgreSQL type (with its typmod): what pgapp.json_schema and pgapp.openapi use';

COMMENT ON FUNCTION pgapp.json_schema(text) IS
'The rules of a named changeset as a JSON Schema (draft 2020-12)';

COMMENT ON FUNCTION pgapp._json_schema_rule(jsonb, jsonb, text) IS
'What one rule of a changeset adds to the JSON Schema of its field (a step of pgapp.json_schema)';

/*
 * The input arguments of function fn, for pgapp.openapi: the request body's
 * schema ("body"), the query parameters of GET ("params"), and whether the
 * body is required ("required").  cs_props are the properties of the
 * function's changeset (pgapp.json_schema), or NULL.
 */
CREATE FUNCTION pgapp._openapi_arguments(fn oid, cs_props jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pg_catalog.pg_proc;
    arg record;
    props jsonb := '{}';
    required text[] := '{}';
    params jsonb := '[]';
    body_schema jsonb;
BEGIN
    SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid = fn;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function with OID % does not exist', fn
            USING ERRCODE = 'undefined_function';
    END IF;
    -- input arguments, in order; the last pronargdefaults have defaults
    FOR arg IN
        SELECT a.name, a.typ, a.ord
          FROM (SELECT (coalesce(p.proargnames, ARRAY[]::text[]))[i] AS name,
                       coalesce(p.proallargtypes[i], p.proargtypes[i - 1]) AS typ,
                       coalesce(p.proargmodes[i], 'i') AS mode,
                       i AS ord
                  FROM generate_series(1, coalesce(array_length(p.proallargtypes, 1), p.pronargs)) AS i) AS a
         WHERE a.mode IN ('i', 'b', 'v')
         ORDER BY a.ord
    LOOP
        IF coalesce(arg.name, '') = '' THEN
            -- a single unnamed json/jsonb argument takes the whole body
            body_schema := '{}';
            CONTINUE;
        END IF;
        props := props || jsonb_build_object(arg.name,
            pgapp.json_schema_type(arg.typ) || coalesce(cs_props -> arg.name, '{}'));
        IF arg.ord <= p.pronargs - p.pronargdefaults THEN
            required := required || arg.name;
        END IF;
        params := params || jsonb_build_array(jsonb_build_object(
            'name', arg.name, 'in', 'query', 'required', arg.ord <= p.pronargs - p.pronargdefaults,
            'schema', pgapp.json_schema_type(arg.typ) || coalesce(cs_props -> arg.name, '{}')));
    END LOOP;
    body_schema := coalesce(body_schema,
        jsonb_build_object('type', 'object', 'properties', props)
        || CASE WHEN cardinality(required) > 0 THEN jsonb_build_object('required', to_jsonb(required))
                ELSE '{}' END);
    RETURN jsonb_build_object('body', body_schema, 'params', params,
                              'required', cardinality(required) > 0);
END
$$;

/*
 * The responses of function fn, for pgapp.openapi: 200 with what it returns
 * (OUT / TABLE parameters make the row, a set is an array), the PostgREST
 * error, and 422 when the function names a changeset (cs_name).
 */
CREATE FUNCTION pgapp._openapi_responses(fn oid, cs_name text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pg_catalog.pg_proc;
    result_schema jsonb;
    responses jsonb;
BEGIN
    SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid = fn;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function with OID % does not exist', fn
            USING ERRCODE = 'undefined_function';
    END IF;
    IF p.prorettype = 'record'::regtype AND p.proargmodes IS NOT NULL THEN
        -- OUT / TABLE parameters make the row
        SELECT jsonb_build_object('type', 'object', 'properties',
                   coalesce(jsonb_object_agg(p.proargnames[i], pgapp.json_schema_type(p.proallargtypes[i])), '{}'))
          INTO result_schema
          FROM generate_series(1, array_length(p.proallargtypes, 1)) AS i
         WHERE p.proargmodes[i] IN ('o', 'b', 't');
    ELSE
        result_schema := pgapp.json_schema_type(p.prorettype);
    END IF;
    IF p.proretset THEN
        result_schema := jsonb_build_object('type', 'array', 'items', result_schema);
    END IF;
    responses := jsonb_build_object(
        '200', jsonb_build_object('description', 'OK',
                 'content', jsonb_build_object('application/json', jsonb_build_object('schema', result_schema))),
        'default', jsonb_build_object('description', 'A PostgREST error',
                 'content', jsonb_build_object('application/json', jsonb_build_object(
                     'schema', jsonb_build_object('$ref', '#/components/schemas/PostgrestError')))));
    IF cs_name IS NOT NULL THEN
        responses := responses || jsonb_build_object(
            '422', jsonb_build_object('description', format('Validation failed (changeset %s)', cs_name),
                     'content', jsonb_build_object('application/json', jsonb_build_object(
                         'schema', jsonb_build_object('$ref', '#/components/schemas/ValidationErrors')))));
    END IF;
    RETURN responses;
END
$$;

/*
 * The path item of function fn for pgapp.openapi: POST, and GET for a
 * stable or immutable function.  Its comment gives the summary (first
 * line), the description (the rest) and an optional "@changeset <name>".
 */
CREATE FUNCTION pgapp._openapi_path(fn oid)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pg_catalog.pg_proc;
    fn_comment text := obj_description(fn, 'pg_proc');
    cs_name text;
    cs_props jsonb;
    summary text;
    description text;
    args jsonb;
    responses jsonb;
    operations jsonb;
BEGIN
    SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid = fn;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'function with OID % does not exist', fn
            USING ERRCODE = 'undefined_function';
    END IF;
    -- the comment: summary line, description, optional @changeset tag
    cs_name := substring(fn_comment FROM '(?m)^@changeset[[:space:]]+([^[:space:]]+)[[:space:]]*$');
    summary := split_part(coalesce(fn_comment, ''), E'\n', 1);
    description := nullif(btrim(regexp_replace(
        substring(coalesce(fn_comment, '') FROM position(E'\n' IN coalesce(fn_comment, '') || E'\n') + 1),
        '(?m)^@changeset.*$', '', 'g'), E' \n'), '');
    cs_props := CASE WHEN cs_name IS NOT NULL AND EXISTS (SELECT 1 FROM pgapp.changeset_def WHERE name = cs_name)
                     THEN pgapp.json_schema(cs_name) -> 'properties' END;
    args := pgapp._openapi_arguments(fn, cs_props);
    responses := pgapp._openapi_responses(fn, cs_name);

    operations := jsonb_build_object('post', jsonb_strip_nulls(jsonb_build_object(
        'operationId', p.proname::text,
        'summary', nullif(summary, ''),
        'description', description,
        'requestBody', jsonb_build_object('required', (args -> 'required')::boolean,
            'content', jsonb_build_object('application/json', jsonb_build_object('schema', args -> 'body'))),
        'responses', responses)));
    IF p.provolatile IN ('s', 'i') THEN
        operations := operations || jsonb_build_object('get', jsonb_strip_nulls(jsonb_build_object(
            'operationId', p.proname::text || '_get',
            'summary', nullif(summary, ''),
            'description', description,
            'parameters', args -> 'params',
            'responses', responses)));
    END IF;
    RETURN operations;
END
$$;

/*
 * The components.schemas of pgapp.openapi: the 422 body of a changeset and
 * PostgREST's error body.
 */
CREATE FUNCTION pgapp._openapi_components()
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('schemas', jsonb_build_object(
        'ValidationErrors', jsonb_build_object(
            'type', 'object',
            'required', jsonb_build_array('errors'),
            'properties', jsonb_build_object('errors', jsonb_build_object(
                'type', 'object',
                'additionalProperties', jsonb_build_object('type', 'array', 'items', '{"type": "string"}'::jsonb))),
            'example', '{"errors": {"title": ["can''t be blank"]}}'::jsonb),
        'PostgrestError', jsonb_build_object(
            'type', 'object',
            'properties', jsonb_build_object(
                'code', '{"type": "string"}'::jsonb,
                'message', '{"type": "string"}'::jsonb,
                'details', '{"type": ["string", "null"]}'::jsonb,
                'hint', '{"type": ["string", "null"]}'::jsonb))))
$$;

/*
 * An OpenAPI 3.1 document for the functions of an API schema, as PostgREST
 * serves them under /rpc/.  A line "@changeset <name>" in a function's
 * COMMENT links it to a named changeset: its rules constrain the request
 * body, and the 422 body is documented.
 */
CREATE FUNCTION pgapp.openapi(api_schema name)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ns oid;
    fn record;
    paths jsonb := '{}';
    seen text[] := '{}';
BEGIN
    IF api_schema IS NULL THEN
        RAISE EXCEPTION 'api_schema must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT oid INTO ns FROM pg_catalog.pg_namespace WHERE nspname = api_schema;
    IF ns IS NULL THEN
        RAISE EXCEPTION 'schema "%" does not exist', api_schema USING ERRCODE = 'invalid_schema_name';
    END IF;

    FOR fn IN
        SELECT p.oid, p.proname
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = ns AND p.prokind = 'f'
           AND p.prorettype <> 'trigger'::regtype
           AND has_function_privilege(p.oid, 'EXECUTE')
         ORDER BY p.proname, p.oid
    LOOP
        -- PostgREST picks among overloads by argument names; document the first
        CONTINUE WHEN fn.proname = ANY (seen);
        seen := seen || fn.proname::text;
        paths := paths || jsonb_build_object('/rpc/' || fn.proname, pgapp._openapi_path(fn.oid));
    END LOOP;

    RETURN jsonb_build_object(
        'openapi', '3.1.0',
        'info', jsonb_strip_nulls(jsonb_build_object(
            'title', api_schema::text,
            'version', pgapp.version(),
            'description', obj_description(ns, 'pg_namespace'))),
        'paths', paths,
        'components', pgapp._openapi_components());
END
$$;

COMMENT ON FUNCTION pgapp._openapi_arguments(oid, jsonb) IS
'The request body, GET parameters and whether the body is required, of one function (a step of pgapp.openapi)';

COMMENT ON FUNCTION pgapp._openapi_responses(oid, text) IS
'The responses of one function (a step of pgapp.openapi)';

COMMENT ON FUNCTION pgapp._openapi_path(oid) IS
'The path item of one function (a step of pgapp.openapi)';

COMMENT ON FUNCTION pgapp._openapi_components() IS
'The components of the document pgapp.openapi makes';

COMMENT ON FUNCTION pgapp.openapi(name) IS
'OpenAPI 3.1 document for the functions of an API schema, as PostgREST serves them under /rpc/';
-- sql/parts/99_footer.sql: tell a running PostgREST to reload its schema cache (docs/install.md)

-- Delivered at commit.  Every upgrade script ends with the same statement.
NOTIFY pgrst, 'reload schema';

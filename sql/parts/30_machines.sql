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


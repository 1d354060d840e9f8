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


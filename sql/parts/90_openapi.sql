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

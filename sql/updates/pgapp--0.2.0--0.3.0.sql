-- sql/updates/pgapp--0.2.0--0.3.0.sql: from 0.2.0 to 0.3.0 (written by hand)
--
-- 0.3.0 adds Multi (sql/parts/55_multi.sql, docs/multi.md): the type
-- pgapp.multi, its builders and pgapp.transact; and tokens
-- (sql/parts/65_auth.sql, docs/auth.md).  An updated 0.2.0 and a
-- fresh 0.3.0 have the same objects (the upgrade suite of scripts/test
-- compares them).

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgapp UPDATE TO '0.3.0'" to load this file. \quit

/*
 * A multi: {"steps": [{"name": ..., "op": ..., ...}, ...]}, built by
 * pgapp.multi() and the multi_* builders (each checks its step and returns
 * a new value; nothing runs until pgapp.transact).  Step names are unique
 * and have no "."; {"$ref": "step" | "step.path.to.field"} in a step's
 * arguments names an earlier step's result, checked when the step is
 * added and resolved when the multi runs.  A changeset's params are the
 * request's input and are never searched for references: a write step
 * takes its references in refs ({"order_id": {"$ref": "create_order.id"}}),
 * put into the changeset's changes when it runs.  {"$literal": value} is
 * value as it is, references and all (for a client's JSON in arguments).
 *
 *   op          fields                 result
 *   insert      changeset[, refs]      the inserted row
 *   update      changeset[, refs]      the updated row
 *   delete      table, id              the deleted row
 *   insert_all  table, rows            {"count": n, "rows": [...]}
 *   update_all  query, set             {"count": n, "rows": [...]}
 *   run         function, args         the "ok" value fn returned
 *   put         value                  value
 *   merge       function               the results of the steps fn returned
 */
CREATE DOMAIN pgapp.multi AS jsonb
    CONSTRAINT multi_shape CHECK (
        pg_catalog.jsonb_typeof(VALUE) OPERATOR(pg_catalog.=) 'object'
        AND pg_catalog.jsonb_typeof(VALUE OPERATOR(pg_catalog.->) 'steps') OPERATOR(pg_catalog.=) 'array');

COMMENT ON DOMAIN pgapp.multi IS
'A Multi: named steps run in one subtransaction by pgapp.transact (build with pgapp.multi() and the multi_* functions)';

CREATE FUNCTION pgapp.multi()
RETURNS pgapp.multi
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '{"steps": []}'::jsonb;

CREATE FUNCTION pgapp.multi_insert(m pgapp.multi, name text, cs pgapp.changeset, refs jsonb DEFAULT NULL)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_insert'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_update(m pgapp.multi, name text, cs pgapp.changeset, refs jsonb DEFAULT NULL)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_update'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_delete(m pgapp.multi, name text, tbl regclass, id jsonb)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_delete'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_insert_all(m pgapp.multi, name text, tbl regclass, rows jsonb)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_insert_all'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_update_all(m pgapp.multi, name text, q pgapp.query, set jsonb)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_update_all'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_run(m pgapp.multi, name text, fn regprocedure, args jsonb DEFAULT '{}')
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_run'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_put(m pgapp.multi, name text, value jsonb)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_put'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_append(m1 pgapp.multi, m2 pgapp.multi)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_append'
LANGUAGE C STABLE;

CREATE FUNCTION pgapp.multi_merge(m pgapp.multi, fn regprocedure)
RETURNS pgapp.multi
AS 'MODULE_PATHNAME', 'pgapp_multi_merge'
LANGUAGE C STABLE;

-- The names of a multi's steps, in order (what transact will run).
CREATE FUNCTION pgapp.multi_names(m pgapp.multi)
RETURNS text[]
AS 'MODULE_PATHNAME', 'pgapp_multi_names'
LANGUAGE C STABLE;

/*
 * Run every step in one subtransaction.  error_mode: NULL follows
 * pgapp.error_mode (auto: return inside a PostgREST request, raise
 * otherwise); 'return' always returns the failure, 'raise' always raises
 * it (SQLSTATE PT<status>, the failure as DETAIL).
 */
CREATE FUNCTION pgapp.transact(m pgapp.multi, error_mode text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_transact'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.transact(pgapp.multi, text) IS
'Run a multi''s steps in one subtransaction: {"ok": true, "changes": {...}} or {"ok": false, "failed_step", "error", "status", "changes_so_far"}';

-- Tokens (sql/parts/65_auth.sql, docs/auth.md): pgapp.encode_token,
-- pgapp.decode_token and pgapp.token_claims.
/*
 * encode_token signs: it is a privilege (a token acts as its role through
 * PostgREST), so only pgapp_admin may call it, and SECURITY DEFINER
 * functions that log users in.  decode_token only verifies and may be
 * called by anyone.  The secret is a setting or a file, never an argument.
 * Both are PARALLEL RESTRICTED: a parallel worker gets the leader's setting
 * values, and the value of pgapp.auth_jwt_secret is always '' (the secret
 * is kept outside it), so a worker would have no inline secret.
 */
CREATE FUNCTION pgapp.encode_token(sub text, claims jsonb, ttl interval)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_encode_token'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION pgapp.encode_token(text, jsonb, interval) IS
'An HS256 token for sub with claims, valid for ttl, signed with the current key (pgapp_admin)';

REVOKE ALL ON FUNCTION pgapp.encode_token(text, jsonb, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.encode_token(text, jsonb, interval) TO pgapp_admin;

CREATE FUNCTION pgapp.decode_token(token text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_decode_token'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION pgapp.decode_token(text) IS
'The claims of a valid HS256 token; SQLSTATE PJ001..PJ006 for a malformed, badly signed, expired, not yet valid, revoked or foreign one';

/*
 * The claims PostgREST verified for the current request (request.jwt.claims),
 * or NULL outside a request, for an anonymous request, or when the setting
 * holds no JSON object.  It trusts PostgREST: outside a request any session
 * can set request.jwt.claims, so it proves nothing there.
 */
CREATE FUNCTION pgapp.token_claims()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(c) OPERATOR(pg_catalog.=) 'object' THEN c END
      FROM (SELECT NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb AS c) AS s
$$;

COMMENT ON FUNCTION pgapp.token_claims() IS
'The current PostgREST request''s verified claims (request.jwt.claims), or NULL outside a request';

-- Channels served by pgapp-gateway (sql/parts/75_channels.sql, docs/gateway.md).

/*
 * A channel: the topics a pattern matches ('room:*' = every topic starting
 * with 'room:'; any other pattern only itself) may be joined through
 * pgapp-gateway, which calls join_function(topic text, params jsonb) on
 * phx_join and handle_in_function(topic text, event text, payload jsonb) on
 * a client's push, as the token's role with request.jwt.claims set, as
 * PostgREST runs a request.  Changed only through define_channel and
 * drop_channel (pgapp_admin), which notify "pgapp_channels" (payload
 * {"event", "pattern"}) so that running gateways reload.
 */
CREATE TABLE pgapp.channel (
    pattern             text PRIMARY KEY,
    join_function       regprocedure NOT NULL,
    handle_in_function  regprocedure,
    presence            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT channel_pattern CHECK (
        pg_catalog.octet_length(pattern) OPERATOR(pg_catalog.>=) 1
        AND pg_catalog.octet_length(pattern) OPERATOR(pg_catalog.<=) 255
        AND pg_catalog.strpos(pg_catalog.rtrim(pattern, '*'), '*') OPERATOR(pg_catalog.=) 0
        AND pg_catalog.length(pattern) OPERATOR(pg_catalog.-) pg_catalog.length(pg_catalog.rtrim(pattern, '*'))
            OPERATOR(pg_catalog.<=) 1)
);

COMMENT ON TABLE pgapp.channel IS
'Channels of pgapp-gateway (pgapp.define_channel): topic pattern, join and handle_in functions';

SELECT pg_catalog.pg_extension_config_dump('pgapp.channel', '');

/*
 * Check that fn takes exactly the argument types args and returns jsonb.
 * what names it in messages ("join", "handle_in").
 */
CREATE FUNCTION pgapp._channel_check_function(fn regprocedure, args oid[], what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
BEGIN
    SELECT proargtypes::oid[] AS argtypes, prorettype, proretset, prokind
      INTO p
      FROM pg_catalog.pg_proc
     WHERE oid OPERATOR(pg_catalog.=) fn;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% function % does not exist', what, fn::oid
            USING ERRCODE = 'undefined_function';
    END IF;
    IF p.prokind OPERATOR(pg_catalog.<>) 'f' OR p.proretset
       OR p.prorettype OPERATOR(pg_catalog.<>) 'pg_catalog.jsonb'::pg_catalog.regtype
       OR (SELECT pg_catalog.array_agg(u.a ORDER BY u.n)
             FROM pg_catalog.unnest(p.argtypes) WITH ORDINALITY AS u(a, n)) IS DISTINCT FROM args THEN
        RAISE EXCEPTION '% function % has the wrong signature', what, fn
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A %s function must be %s and return one jsonb value.', what,
                                  CASE what WHEN 'join' THEN '(topic text, params jsonb)'
                                            ELSE '(topic text, event text, payload jsonb)' END),
                  HINT = 'It returns {"ok": response} or {"error": response}.';
    END IF;
END
$$;

/*
 * Define (or redefine) the channel of pattern.
 */
CREATE FUNCTION pgapp.define_channel(pattern text, "join" regprocedure,
                                     handle_in regprocedure DEFAULT NULL,
                                     presence boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pattern IS NULL OR "join" IS NULL OR presence IS NULL THEN
        RAISE EXCEPTION 'pattern, join and presence must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF octet_length(pattern) OPERATOR(pg_catalog.<) 1 OR octet_length(pattern) OPERATOR(pg_catalog.>) 255
       OR strpos(rtrim(pattern, '*'), '*') OPERATOR(pg_catalog.<>) 0
       OR length(pattern) OPERATOR(pg_catalog.-) length(rtrim(pattern, '*')) OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'invalid channel pattern "%"', left(pattern, 64)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A pattern is 1 to 255 bytes, with at most one "*", at its end.',
                  HINT = 'Write ''room:*'' for every topic starting with ''room:'', or a topic for itself.';
    END IF;
    IF pattern OPERATOR(pg_catalog.=) 'phoenix' THEN
        RAISE EXCEPTION 'topic "phoenix" is reserved'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Phoenix clients send their heartbeats on topic "phoenix".';
    END IF;
    PERFORM pgapp._channel_check_function("join", ARRAY['pg_catalog.text'::regtype, 'pg_catalog.jsonb'::regtype]::oid[], 'join');
    IF handle_in IS NOT NULL THEN
        PERFORM pgapp._channel_check_function(handle_in,
            ARRAY['pg_catalog.text'::regtype, 'pg_catalog.text'::regtype, 'pg_catalog.jsonb'::regtype]::oid[],
            'handle_in');
    END IF;
    INSERT INTO pgapp.channel AS c (pattern, join_function, handle_in_function, presence)
    VALUES (define_channel.pattern, define_channel."join", define_channel.handle_in, define_channel.presence)
    ON CONFLICT ON CONSTRAINT channel_pkey DO UPDATE
       SET join_function = EXCLUDED.join_function,
           handle_in_function = EXCLUDED.handle_in_function,
           presence = EXCLUDED.presence,
           updated_at = pg_catalog.now();
    PERFORM pg_catalog.pg_notify('pgapp_channels', pg_catalog.json_build_object(
        'event', 'define_channel', 'pattern', define_channel.pattern)::text);
END
$$;

COMMENT ON FUNCTION pgapp.define_channel(text, regprocedure, regprocedure, boolean) IS
'Make the topics matching pattern joinable through pgapp-gateway, with their join and handle_in functions (pgapp_admin)';

CREATE FUNCTION pgapp.drop_channel(pattern text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM pgapp.channel AS c WHERE c.pattern OPERATOR(pg_catalog.=) drop_channel.pattern;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_catalog.pg_notify('pgapp_channels', pg_catalog.json_build_object(
        'event', 'drop_channel', 'pattern', drop_channel.pattern)::text);
    RETURN true;
END
$$;

COMMENT ON FUNCTION pgapp.drop_channel(text) IS
'Remove a channel of pgapp-gateway; false if there was none (pgapp_admin)';

CREATE VIEW pgapp.channels AS
SELECT c.pattern, c.join_function, c.handle_in_function, c.presence, c.created_at, c.updated_at
  FROM pgapp.channel AS c;

COMMENT ON VIEW pgapp.channels IS
'The channels of pgapp-gateway: pattern, join and handle_in functions, presence';

REVOKE ALL ON pgapp.channel FROM PUBLIC;
REVOKE ALL ON pgapp.channels FROM PUBLIC;
GRANT SELECT ON pgapp.channels TO PUBLIC;
REVOKE ALL ON FUNCTION pgapp._channel_check_function(regprocedure, oid[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.define_channel(text, regprocedure, regprocedure, boolean),
    pgapp.drop_channel(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.define_channel(text, regprocedure, regprocedure, boolean),
    pgapp.drop_channel(text) TO pgapp_admin;

-- Tell a running PostgREST to reload its schema cache (delivered at commit),
-- as the install script does at its end.
NOTIFY pgrst, 'reload schema';

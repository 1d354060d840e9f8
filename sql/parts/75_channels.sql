-- sql/parts/75_channels.sql: channels served by pgapp-gateway (docs/gateway.md)

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

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
 * The client of the current request, as a rate limit key: when
 * pgapp.ratelimit_client_header names a header, "ip:<address>" from the
 * LAST address of that header's list (the one the trusted proxy appended;
 * what the client wrote before it is ignored), IPv6 per /64, and
 * "ip:unknown" (one shared bucket) when the header is missing or
 * malformed; else the connection's client address ("ip:local" over a Unix
 * socket).  pgapp.rate_limit_request and pgapp.login use it.
 */
CREATE FUNCTION pgapp.request_client_key()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
    header_name text := lower(btrim(coalesce(current_setting('pgapp.ratelimit_client_header', true), '')));
    hop text;
    addr inet;
BEGIN
    IF header_name = '' THEN
        RETURN 'ip:' || coalesce(host(inet_client_addr()), 'local');
    END IF;
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
    RETURN CASE
        WHEN addr IS NULL THEN 'ip:unknown'
        WHEN family(addr) = 6 AND NOT addr <<= inet '::ffff:0:0/96'
            THEN 'ip:' || network(set_masklen(addr, 64))::text
        ELSE 'ip:' || host(addr)
    END;
END
$$;

COMMENT ON FUNCTION pgapp.request_client_key() IS
'The current request''s client as a rate limit key: ip:<address> from the trusted client header (pgapp.ratelimit_client_header) or the connection';

/*
 * PostgREST's db-pre-request hook: one check per request.
 *   key:  "sub:<sub>" from request.jwt.claims; else the client
 *         (pgapp.request_client_key: the trusted client header's last
 *         address, or the connection's address);
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
    plan_claim text := coalesce(nullif(current_setting('pgapp.ratelimit_plan_claim', true), ''), 'plan');
    key text;
    plan pgapp.rate_plan;
    d pgapp.rate_decision;
    policy text;
    state text;
    response_headers jsonb;
BEGIN
    key := coalesce('sub:' || (claims ->> 'sub'), pgapp.request_client_key());

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


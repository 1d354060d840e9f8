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

-- Token revocation (sql/parts/66_auth_revoke.sql, docs/auth.md).

/*
 * Revoked token ids and per-subject cutoffs.  Rows are keyed by the SHA-256
 * of the jti or sub, so a value of any length fits the index; the text is
 * kept for people.  Nobody but the extension's owner and pgapp_admin
 * (SELECT) may read them and nobody may write them but pgapp's functions,
 * which write as the owner: a check reads them (when it must) the same way.
 * A row is deleted once its expires_at (plus pgapp.auth_jwt_leeway) has
 * passed; each revocation deletes some, pgapp.auth_revocation_cleanup()
 * deletes all.
 */
CREATE TABLE pgapp.auth_revoked_token (
    jti_sha256  bytea PRIMARY KEY
                CHECK (pg_catalog.length(jti_sha256) OPERATOR(pg_catalog.=) 32),
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE INDEX auth_revoked_token_expires_at ON pgapp.auth_revoked_token (expires_at);

COMMENT ON TABLE pgapp.auth_revoked_token IS
'Revoked tokens by jti, until the token''s expiry (pgapp.revoke_token)';

CREATE TABLE pgapp.auth_subject_cutoff (
    sub_sha256  bytea PRIMARY KEY
                CHECK (pg_catalog.length(sub_sha256) OPERATOR(pg_catalog.=) 32),
    sub         text NOT NULL,
    not_before  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE INDEX auth_subject_cutoff_expires_at ON pgapp.auth_subject_cutoff (expires_at);

COMMENT ON TABLE pgapp.auth_subject_cutoff IS
'Per-subject cutoffs: tokens of sub issued before not_before are revoked, until expires_at (pgapp.revoke_subject)';

REVOKE ALL ON pgapp.auth_revoked_token, pgapp.auth_subject_cutoff FROM PUBLIC;
GRANT SELECT ON pgapp.auth_revoked_token, pgapp.auth_subject_cutoff TO pgapp_admin;
SELECT pg_catalog.pg_extension_config_dump('pgapp.auth_revoked_token', '');
SELECT pg_catalog.pg_extension_config_dump('pgapp.auth_subject_cutoff', '');

CREATE FUNCTION pgapp.revoke_token(jti text, expires_at timestamptz)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_revoke_token'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION pgapp.revoke_token(text, timestamptz) IS
'Revoke the token with this jti until expires_at (its exp); takes effect at commit (pgapp_admin)';

CREATE FUNCTION pgapp.revoke_subject(sub text, not_before timestamptz DEFAULT pg_catalog.now())
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_revoke_subject'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION pgapp.revoke_subject(text, timestamptz) IS
'Revoke every token of sub issued before not_before (in or before its second); takes effect at commit (pgapp_admin)';

CREATE FUNCTION pgapp.auth_revocation_cleanup()
RETURNS integer
AS 'MODULE_PATHNAME', 'pgapp_auth_revocation_cleanup'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION pgapp.auth_revocation_cleanup() IS
'Delete expired revocations and cutoffs; returns how many (pgapp_admin)';

REVOKE ALL ON FUNCTION pgapp.revoke_token(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.revoke_subject(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp.auth_revocation_cleanup() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.revoke_token(text, timestamptz) TO pgapp_admin;
GRANT EXECUTE ON FUNCTION pgapp.revoke_subject(text, timestamptz) TO pgapp_admin;
GRANT EXECUTE ON FUNCTION pgapp.auth_revocation_cleanup() TO pgapp_admin;

CREATE FUNCTION pgapp.auth_revocation_status()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_auth_revocation_status'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION pgapp.auth_revocation_status() IS
'The revocation cache as this database sees it: state, overflow, entries, capacity (pgapp_admin)';

REVOKE ALL ON FUNCTION pgapp.auth_revocation_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.auth_revocation_status() TO pgapp_admin;

/*
 * PostgREST's db-pre-request check of the request's token (auth_request.c):
 * the bearer token of request.headers verified as decode_token verifies it,
 * revocation included, and refused when it is a refresh token (PJ007); raised
 * inside a request as SQLSTATE PGRST with status 401.  Anyone may call it:
 * it runs as the request's role (anon included) and reads the revocation
 * tables, when it must, as the extension's owner.
 */
CREATE FUNCTION pgapp.authenticate_request()
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_authenticate_request'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION pgapp.authenticate_request() IS
'PostgREST db-pre-request check: the request''s bearer token is valid, not revoked and an access token (401 otherwise)';

/* authenticate_request, then the rate limiter: one db-pre-request. */
CREATE FUNCTION pgapp.pre_request()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgapp.authenticate_request();
    PERFORM pgapp.rate_limit_request();
END
$$;

COMMENT ON FUNCTION pgapp.pre_request() IS
'PostgREST db-pre-request hook: pgapp.authenticate_request() then pgapp.rate_limit_request()';

/*
 * 42501 unless the current token's role claim is one of roles.  PostgREST
 * answers 42501 with 401 for an anonymous request and 403 otherwise.  The
 * claims are request.jwt.claims, which PostgREST sets from the verified
 * token; outside a request any session can set them, so this protects
 * functions reached through PostgREST, not from a direct connection.
 */
CREATE FUNCTION pgapp.require_role(roles text[])
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r text := pgapp.token_claims() ->> 'role';
BEGIN
    IF roles IS NULL THEN
        RAISE EXCEPTION 'roles must not be null' USING ERRCODE = '22004';
    END IF;
    IF (r OPERATOR(pg_catalog.=) ANY (roles)) IS NOT TRUE THEN
        RAISE EXCEPTION 'the request''s role may not do this'
            USING ERRCODE = '42501',
                  DETAIL = CASE WHEN r IS NULL THEN 'The request has no token role.'
                           ELSE pg_catalog.format('Role %s is not among the roles allowed.', pg_catalog.quote_ident(r)) END;
    END IF;
END
$$;

COMMENT ON FUNCTION pgapp.require_role(text[]) IS
'42501 unless the current request''s token role is one of roles';

/*
 * Permission sets, as Guardian.Permissions has them: each resource names its
 * permissions in order, and a token carries, in its "pem" claim, a bit mask
 * per resource (bit i is permissions[i + 1]), e.g. {"pem": {"users": 3}}.
 * Bits keep their meaning for as long as issued tokens live, so a resource's
 * list can only grow at its end.
 */
CREATE TABLE pgapp.permission_set (
    resource     text PRIMARY KEY
                 CHECK (resource OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$'),
    permissions  text[] NOT NULL
                 CHECK (pg_catalog.cardinality(permissions) OPERATOR(pg_catalog.>=) 1
                        AND pg_catalog.cardinality(permissions) OPERATOR(pg_catalog.<=) 63)
);

COMMENT ON TABLE pgapp.permission_set IS
'Permissions per resource, in bit order, for the "pem" claim (pgapp.define_permissions)';

REVOKE ALL ON pgapp.permission_set FROM PUBLIC;
GRANT SELECT ON pgapp.permission_set TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pgapp.permission_set', '');

CREATE FUNCTION pgapp.define_permissions(resource text, permissions text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old text[];
    p text;
BEGIN
    IF resource IS NULL OR permissions IS NULL THEN
        RAISE EXCEPTION 'resource and permissions must not be null' USING ERRCODE = '22004';
    END IF;
    IF resource OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid resource name "%"', pg_catalog.left(resource, 100)
            USING ERRCODE = '22023',
                  DETAIL = 'A resource is 1 to 63 of a-z, 0-9 and _, starting with a letter.';
    END IF;
    IF pg_catalog.cardinality(permissions) OPERATOR(pg_catalog.<) 1
       OR pg_catalog.cardinality(permissions) OPERATOR(pg_catalog.>) 63
       OR pg_catalog.array_ndims(permissions) OPERATOR(pg_catalog.<>) 1 THEN
        RAISE EXCEPTION 'a resource has 1 to 63 permissions' USING ERRCODE = '22023';
    END IF;
    FOREACH p IN ARRAY permissions LOOP
        IF p IS NULL OR p OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'invalid permission name "%"', pg_catalog.left(coalesce(p, 'NULL'), 100)
                USING ERRCODE = '22023',
                      DETAIL = 'A permission is 1 to 63 of a-z, 0-9 and _, starting with a letter.';
        END IF;
    END LOOP;
    IF (SELECT pg_catalog.count(DISTINCT x) FROM pg_catalog.unnest(permissions) AS x)
       OPERATOR(pg_catalog.<>) pg_catalog.cardinality(permissions) THEN
        RAISE EXCEPTION 'permissions of resource "%" are not distinct', resource USING ERRCODE = '22023';
    END IF;
    SELECT s.permissions INTO old FROM pgapp.permission_set AS s
     WHERE s.resource OPERATOR(pg_catalog.=) define_permissions.resource FOR UPDATE;
    IF old IS NOT NULL
       AND permissions[1:pg_catalog.cardinality(old)] OPERATOR(pg_catalog.<>) old THEN
        RAISE EXCEPTION 'permissions of resource "%" can only be added at the end', resource
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('They are %s.', old),
                  HINT = 'Tokens carry permissions as bits in this order: reordering or removing one would change what issued tokens grant.';
    END IF;
    INSERT INTO pgapp.permission_set AS s (resource, permissions)
    VALUES (define_permissions.resource, define_permissions.permissions)
    ON CONFLICT ON CONSTRAINT permission_set_pkey DO UPDATE SET permissions = EXCLUDED.permissions;
END
$$;

COMMENT ON FUNCTION pgapp.define_permissions(text, text[]) IS
'Define (or extend at the end) the permissions of a resource, in bit order (pgapp_admin)';

/*
 * {"users": ["read", "write"], "posts": ["read"]} -> {"users": 3, "posts": 1}:
 * the "pem" claim to pass to encode_token.  22023 for an unknown resource or
 * permission.
 */
CREATE FUNCTION pgapp.encode_permissions(permissions jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb := '{}';
    r text;
    names jsonb;
    defined text[];
    mask bigint;
    n text;
    i integer;
BEGIN
    IF pg_catalog.jsonb_typeof(permissions) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'permissions must be a JSON object of arrays of names' USING ERRCODE = '22023';
    END IF;
    FOR r, names IN SELECT * FROM pg_catalog.jsonb_each(permissions) LOOP
        SELECT s.permissions INTO defined FROM pgapp.permission_set AS s
         WHERE s.resource OPERATOR(pg_catalog.=) r;
        IF defined IS NULL THEN
            RAISE EXCEPTION 'no permissions are defined for resource "%"', pg_catalog.left(r, 100)
                USING ERRCODE = '22023', HINT = 'Define them with pgapp.define_permissions.';
        END IF;
        IF pg_catalog.jsonb_typeof(names) OPERATOR(pg_catalog.<>) 'array' THEN
            RAISE EXCEPTION 'permissions of resource "%" must be an array of names', r USING ERRCODE = '22023';
        END IF;
        mask := 0;
        FOR n IN SELECT pg_catalog.jsonb_array_elements_text(names) LOOP
            i := pg_catalog.array_position(defined, n);
            IF i IS NULL THEN
                RAISE EXCEPTION 'resource "%" has no permission "%"', r, pg_catalog.left(coalesce(n, 'null'), 100)
                    USING ERRCODE = '22023';
            END IF;
            mask := mask OPERATOR(pg_catalog.|) (1::bigint OPERATOR(pg_catalog.<<) (i OPERATOR(pg_catalog.-) 1));
        END LOOP;
        result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(r, mask);
    END LOOP;
    RETURN result;
END
$$;

COMMENT ON FUNCTION pgapp.encode_permissions(jsonb) IS
'The "pem" claim of permissions by name: {"users": ["read"]} -> {"users": 1}';

/*
 * Does the current request's token (its "pem" claim) grant permission on
 * resource?  22023 for a resource or permission never defined (a typo must
 * not read as a denial); false without a token.  Trusts request.jwt.claims
 * as pgapp.require_role does.
 */
CREATE FUNCTION pgapp.has_permission(resource text, permission text)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    defined text[];
    i integer;
    granted jsonb;
    mask bigint;
BEGIN
    IF resource IS NULL OR permission IS NULL THEN
        RAISE EXCEPTION 'resource and permission must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT s.permissions INTO defined FROM pgapp.permission_set AS s
     WHERE s.resource OPERATOR(pg_catalog.=) has_permission.resource;
    i := pg_catalog.array_position(defined, permission);
    IF i IS NULL THEN
        RAISE EXCEPTION 'resource "%" has no permission "%"', pg_catalog.left(resource, 100),
            pg_catalog.left(permission, 100)
            USING ERRCODE = '22023', HINT = 'Define it with pgapp.define_permissions.';
    END IF;
    granted := pgapp.token_claims() OPERATOR(pg_catalog.->) 'pem' OPERATOR(pg_catalog.->) resource;
    IF granted IS NULL OR pg_catalog.jsonb_typeof(granted) OPERATOR(pg_catalog.<>) 'number' THEN
        RETURN false;
    END IF;
    BEGIN
        mask := granted::text::bigint;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        RETURN false;
    END;
    RETURN mask OPERATOR(pg_catalog.>=) 0 AND
           (mask OPERATOR(pg_catalog.&) (1::bigint OPERATOR(pg_catalog.<<) (i OPERATOR(pg_catalog.-) 1)))
           OPERATOR(pg_catalog.<>) 0;
END
$$;

COMMENT ON FUNCTION pgapp.has_permission(text, text) IS
'Does the current request''s token grant permission on resource (its "pem" claim)?';

CREATE FUNCTION pgapp.require_permission(resource text, permission text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pgapp.has_permission(resource, permission) IS NOT TRUE THEN
        RAISE EXCEPTION 'permission "%" on "%" is required', permission, resource
            USING ERRCODE = '42501';
    END IF;
END
$$;

COMMENT ON FUNCTION pgapp.require_permission(text, text) IS
'42501 unless the current request''s token grants permission on resource';

REVOKE ALL ON FUNCTION pgapp.define_permissions(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.define_permissions(text, text[]) TO pgapp_admin;

-- Passwords and sessions (sql/parts/67_auth_sessions.sql, docs/auth.md):
-- pgapp.register, pgapp.login, pgapp.refresh and their tables; the client
-- address of pgapp.rate_limit_request moves into pgapp._request_client_key,
-- which pgapp.login shares.
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
CREATE OR REPLACE FUNCTION pgapp.rate_limit_request()
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


/*
 * Password hashing in C (src/auth/auth_password.c): Argon2id with the costs
 * of pgapp.auth_password_opslimit / pgapp.auth_password_memlimit, at most
 * pgapp.auth_hash_concurrency at once in the server.  Only the SECURITY
 * DEFINER functions below call them.
 */
CREATE FUNCTION pgapp._password_hash(password text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_password_hash'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION pgapp._password_verify(stored text, password text)
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_password_verify'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION pgapp._auth_new_token()
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_auth_new_token'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

/*
 * Reused sessions, outside any transaction (src/auth/auth_session.c): a
 * ring in shared memory of the last 1024 families a used refresh token was
 * presented for, so that a reuse that pgapp.refresh reports by raising
 * (and so rolls back) still ends the session.
 */
CREATE FUNCTION pgapp._auth_reused(family uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_auth_reused'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION pgapp._auth_reused_families()
RETURNS uuid[]
AS 'MODULE_PATHNAME', 'pgapp_auth_reused_families'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION pgapp.auth_hash_stats(
    OUT in_use integer, OUT peak integer, OUT concurrency integer, OUT hashes bigint, OUT waits bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'pgapp_auth_hash_stats'
LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION pgapp.auth_hash_stats() IS
'Password hashing counters of this server (the view pgapp.auth_hash_stats)';

CREATE VIEW pgapp.auth_hash_stats AS SELECT * FROM pgapp.auth_hash_stats();

COMMENT ON VIEW pgapp.auth_hash_stats IS
'Password hashing in this server: slots in use, the most ever in use at once, the cap (pgapp.auth_hash_concurrency), hashes run and how many waited';

/*
 * The accounts.  email is unique case-insensitively (auth_user_email_index
 * on lower(email); citext is not needed); role is the role claim of the
 * user's tokens (NULL: none), from pgapp.auth_default_role at registration.
 * Only the extension's owner reads it: the hashes never leave it.
 */
CREATE TABLE pgapp.auth_user (
    id              uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    email           text NOT NULL CHECK (pg_catalog.octet_length(email) OPERATOR(pg_catalog.<=) 254),
    password_hash   text NOT NULL,
    profile         jsonb NOT NULL DEFAULT '{}'
                    CHECK (pg_catalog.jsonb_typeof(profile) OPERATOR(pg_catalog.=) 'object'
                           AND pg_catalog.octet_length(profile::text) OPERATOR(pg_catalog.<=) 8192),
    role            text DEFAULT NULLIF(pg_catalog.current_setting('pgapp.auth_default_role', true), ''),
    inserted_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE UNIQUE INDEX auth_user_email_index ON pgapp.auth_user (pg_catalog.lower(email));

COMMENT ON TABLE pgapp.auth_user IS
'Accounts of pgapp.register / pgapp.login (Argon2id hashes); the extension owner only';

/*
 * Refresh tokens: one row per token, SHA-256 of the token (never the
 * token).  A family is one session: login starts it, each refresh adds the
 * next token (parent_id: the token it replaced, whose used_at is then set).
 * access_jti / access_expires_at name the access token issued with the row,
 * so that revoking the family can revoke it too.
 */
CREATE TABLE pgapp.auth_refresh_token (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash          bytea NOT NULL UNIQUE,
    family_id           uuid NOT NULL,
    user_id             uuid NOT NULL REFERENCES pgapp.auth_user (id) ON DELETE CASCADE,
    parent_id           bigint,
    issued_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    revoked_at          timestamptz,
    access_jti          text NOT NULL,
    access_expires_at   timestamptz NOT NULL
);

CREATE INDEX auth_refresh_token_family_index ON pgapp.auth_refresh_token (family_id);
CREATE INDEX auth_refresh_token_user_index ON pgapp.auth_refresh_token (user_id);
CREATE INDEX auth_refresh_token_expires_index ON pgapp.auth_refresh_token (expires_at);

COMMENT ON TABLE pgapp.auth_refresh_token IS
'Refresh tokens (SHA-256 of each), by session family; the extension owner only';

SELECT pg_catalog.pg_extension_config_dump('pgapp.auth_user', '');
SELECT pg_catalog.pg_extension_config_dump('pgapp.auth_refresh_token', '');

/*
 * Too many login attempts: 429 with Retry-After.  Inside a PostgREST
 * request (request.method set) as SQLSTATE PGRST, like
 * pgapp.rate_limit_request, so that the header reaches the client; else
 * PT429 with the seconds in DETAIL and HINT.
 */
CREATE FUNCTION pgapp._auth_too_many(retry_after integer, what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(current_setting('request.method', true), '') <> '' THEN
        RAISE SQLSTATE 'PGRST' USING
            MESSAGE = jsonb_build_object(
                'code', 'PT429',
                'message', 'too many login attempts',
                'details', format('Too many login attempts for this %s.', what),
                'hint', format('Retry after %s second(s).', retry_after))::text,
            DETAIL = jsonb_build_object(
                'status', 429,
                'headers', jsonb_build_object('Retry-After', retry_after::text))::text;
    END IF;
    RAISE EXCEPTION 'too many login attempts' USING
        ERRCODE = 'PT429',
        DETAIL = jsonb_build_object('error', 'rate_limited', 'retry_after', retry_after)::text,
        HINT = format('Retry after %s second(s).', retry_after);
END
$$;

/*
 * Count a login attempt for the account (the lowercased email, hashed to a
 * bounded key) and for the client (pgapp.request_client_key: the trusted
 * client header or the connection's address), before any hashing, so that
 * a storm is refused cheaply.  A successful login forgets the account's
 * count (pgapp.login).  Sliding windows: a fixed window starts afresh at
 * each multiple of the window, where a guesser would get twice the limit.
 */
CREATE FUNCTION pgapp._auth_count_attempt(account_key text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    win integer := extract(epoch FROM current_setting('pgapp.auth_login_window')::interval)::integer;
    d pgapp.rate_decision;
BEGIN
    d := pgapp.check_rate('auth:login:' || pgapp.request_client_key(),
                          current_setting('pgapp.auth_login_client_max_attempts')::integer, win, 'sliding');
    IF NOT d.allowed THEN
        PERFORM pgapp._auth_too_many(d.retry_after, 'client');
    END IF;
    d := pgapp.check_rate(account_key, current_setting('pgapp.auth_login_max_attempts')::integer, win, 'sliding');
    IF NOT d.allowed THEN
        PERFORM pgapp._auth_too_many(d.retry_after, 'account');
    END IF;
END
$$;

/*
 * End a session: every refresh token of the family is revoked (kept, so
 * that its tokens keep failing as revoked ones until the sweep removes
 * them), and so is every access token issued with them that has not
 * expired (pgapp.revoke_token, in effect at commit).  Again until a pass
 * finds nothing: a concurrent pgapp.refresh holding the family's newest
 * token makes the UPDATE wait for it, and the token that refresh then
 * commits is not in the UPDATE's snapshot (READ COMMITTED); the next
 * statement's snapshot has it.
 */
CREATE FUNCTION pgapp._auth_revoke_family(family uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    found_any boolean;
BEGIN
    LOOP
        found_any := false;
        FOR t IN
            UPDATE pgapp.auth_refresh_token AS r
               SET revoked_at = now()
             WHERE r.family_id OPERATOR(pg_catalog.=) family AND r.revoked_at IS NULL
            RETURNING r.access_jti, r.access_expires_at
        LOOP
            found_any := true;
            IF t.access_expires_at > now() THEN
                PERFORM pgapp.revoke_token(t.access_jti, t.access_expires_at);
            END IF;
        END LOOP;
        EXIT WHEN NOT found_any;
    END LOOP;
END
$$;

/*
 * Write down the revocation of the reused families of the ring that are
 * not revoked in the table yet (pgapp.login and pgapp.refresh, when they
 * succeed).
 */
CREATE FUNCTION pgapp._auth_revoke_reused()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fam uuid;
BEGIN
    FOR fam IN
        SELECT DISTINCT t.family_id FROM pgapp.auth_refresh_token AS t
         WHERE t.family_id OPERATOR(pg_catalog.=) ANY (pgapp._auth_reused_families())
           AND t.revoked_at IS NULL
    LOOP
        PERFORM pgapp._auth_revoke_family(fam);
    END LOOP;
END
$$;

/*
 * Remove refresh tokens that expired, and those revoked more than a day
 * ago, at most max_rows of them (oldest first); returns how many.
 * pgapp.login and pgapp.refresh call it with 100 each time, so the table
 * stays bounded by the live sessions; pgapp_admin may call it too.
 */
CREATE FUNCTION pgapp.auth_sweep(max_rows integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    WITH gone AS (
        SELECT t.id FROM pgapp.auth_refresh_token AS t
         WHERE t.expires_at OPERATOR(pg_catalog.<=) now()
            OR t.revoked_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) interval '1 day')
         ORDER BY t.expires_at
         LIMIT greatest(max_rows, 0)
           FOR UPDATE SKIP LOCKED)
    DELETE FROM pgapp.auth_refresh_token AS t USING gone WHERE t.id OPERATOR(pg_catalog.=) gone.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION pgapp.auth_sweep(integer) IS
'Delete expired refresh tokens (and those revoked over a day ago), at most max_rows; pgapp_admin';

/*
 * A new access token and refresh token for a user, in family (a new one
 * when NULL), the refresh token replacing parent.  The access token: sub =
 * the user's id, role = the user's role (none when NULL), sid = the family,
 * lifetime pgapp.auth_access_ttl.
 */
CREATE FUNCTION pgapp._auth_session(user_id uuid, role text, family uuid, parent bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fam uuid := coalesce(family, gen_random_uuid());
    ttl interval := current_setting('pgapp.auth_access_ttl')::interval;
    claims jsonb := jsonb_build_object('sid', fam::text);
    access text;
    decoded jsonb;
    refresh text := pgapp._auth_new_token();
BEGIN
    IF role IS NOT NULL THEN
        claims := claims || jsonb_build_object('role', role);
    END IF;
    access := pgapp.encode_token(user_id::text, claims, ttl);
    decoded := pgapp.decode_token(access);
    INSERT INTO pgapp.auth_refresh_token
           (token_hash, family_id, user_id, parent_id, expires_at, access_jti, access_expires_at)
    VALUES (sha256(convert_to(refresh, 'UTF8')), fam, user_id, parent,
            now() + current_setting('pgapp.auth_refresh_ttl')::interval,
            decoded ->> 'jti', to_timestamp((decoded ->> 'exp')::double precision));
    RETURN jsonb_build_object('access_token', access, 'refresh_token', refresh,
                              'token_type', 'Bearer',
                              'expires_in', extract(epoch FROM ttl)::integer);
END
$$;

/*
 * pgapp.register: a new account through a changeset, like pgapp.insert
 * (PT422 with the field errors, or 422 and {"errors": ...} inside a
 * PostgREST request); the new user without its hash on success.
 */
CREATE FUNCTION pgapp.register(email text, password text, profile jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    min_length integer := current_setting('pgapp.auth_password_min_length')::integer;
    profile_ok boolean := jsonb_typeof(profile) = 'object';
    profile_small boolean := profile_ok AND octet_length(profile::text) <= 8192;
    cs pgapp.changeset;
BEGIN
    cs := pgapp.cast('pgapp.auth_user', NULL,
                     jsonb_build_object('email', left(email, 1000),
                                        'profile', CASE WHEN profile_small THEN profile END),
                     ARRAY['email', 'profile', 'password_hash']);
    cs := pgapp.validate_required(cs, ARRAY['email']);
    cs := pgapp.validate_length(cs, 'email', max => 254, count => 'bytes');
    cs := pgapp.validate_format(cs, 'email', '^[^@[:space:]]+@[^@[:space:]]+$');
    IF profile IS NOT NULL AND NOT profile_ok THEN
        cs := pgapp.add_error(cs, 'profile', 'is invalid');
    ELSIF profile IS NOT NULL AND NOT profile_small THEN
        cs := pgapp.add_error(cs, 'profile', 'should be at most 8192 byte(s)');
    END IF;
    IF coalesce(password, '') = '' THEN
        cs := pgapp.add_error(cs, 'password', 'can''t be blank');
    ELSIF octet_length(password) > 1024 THEN
        cs := pgapp.add_error(cs, 'password', 'should be at most 1024 byte(s)');
    ELSIF char_length(password) < min_length THEN
        cs := pgapp.add_error(cs, 'password', format('should be at least %s character(s)', min_length));
    END IF;
    cs := pgapp.unique_constraint(cs, 'email', 'auth_user_email_index');
    -- the table's own checks, as field errors: a raw 23514 would show the row, hash included
    cs := pgapp.check_constraint(cs, 'email', 'auth_user_email_check');
    cs := pgapp.check_constraint(cs, 'profile', 'auth_user_profile_check');
    IF pgapp.is_valid(cs) THEN
        cs := jsonb_set(cs, '{changes,password_hash}', to_jsonb(pgapp._password_hash(password)));
    END IF;
    RETURN pgapp.insert(cs) - 'password_hash';
END
$$;

COMMENT ON FUNCTION pgapp.register(text, text, jsonb) IS
'Create an account (Argon2id hash) through a changeset: the user, or 422 with the field errors';

/*
 * pgapp.login: an access token and a refresh token (a new session) for the
 * right email (case-insensitive) and password.  An unknown email and a
 * wrong password give the same PT401 and cost the same hash.
 */
CREATE FUNCTION pgapp.login(email text, password text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := lower(btrim(coalesce(email, '')));
    account_key text := 'auth:login:account:' || encode(sha256(convert_to(e, 'UTF8')), 'hex');
    u pgapp.auth_user;
    kept text;
    fam uuid;
BEGIN
    PERFORM pgapp._auth_count_attempt(account_key);
    SELECT * INTO u FROM pgapp.auth_user AS a WHERE lower(a.email) = e;
    IF password IS NOT NULL AND octet_length(password) <= 1024 THEN
        kept := pgapp._password_verify(u.password_hash, password);
    END IF;
    IF u.id IS NULL OR kept IS NULL THEN
        RAISE EXCEPTION 'invalid email or password' USING ERRCODE = 'PT401';
    END IF;
    IF kept <> u.password_hash THEN
        UPDATE pgapp.auth_user AS a SET password_hash = kept, updated_at = now() WHERE a.id = u.id;
    END IF;
    PERFORM pgapp.rate_reset(account_key);
    PERFORM pgapp.auth_sweep(100);
    PERFORM pgapp._auth_revoke_reused();
    -- at most pgapp.auth_max_sessions live sessions: the oldest end
    FOR fam IN
        SELECT t.family_id FROM pgapp.auth_refresh_token AS t
         WHERE t.user_id = u.id AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > now()
         ORDER BY t.issued_at DESC, t.id DESC
        OFFSET current_setting('pgapp.auth_max_sessions')::integer - 1
    LOOP
        PERFORM pgapp._auth_revoke_family(fam);
    END LOOP;
    RETURN pgapp._auth_session(u.id, u.role, NULL, NULL);
END
$$;

COMMENT ON FUNCTION pgapp.login(text, text) IS
'{"access_token", "refresh_token", "token_type": "Bearer", "expires_in"} for a right email and password; PT401 otherwise';

/*
 * pgapp.refresh: rotate.  The token presented is marked used and the next
 * one of its family is returned with a new access token.  Presenting a
 * token already used revokes the whole family (reuse: it was copied).
 * Concurrent refreshes with one token: the row lock lets one through; the
 * other then finds it used, which is reuse (READ COMMITTED; under
 * REPEATABLE READ or SERIALIZABLE the other fails with 40001).  A reuse is
 * also remembered in shared memory (pgapp._auth_reused), because a raised
 * failure rolls the revocation back.  Every failure is the same 401
 * through the error model (PT401 "invalid refresh token", or the body
 * {"errors": {"refresh_token": ["is invalid"]}} with response.status 401
 * inside a PostgREST request, whose transaction then commits the
 * revocation).
 */
CREATE FUNCTION pgapp.refresh(refresh_token text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r pgapp.auth_refresh_token;
    u pgapp.auth_user;
    live_until timestamptz;
    retry integer;
BEGIN
    IF refresh_token IS NOT NULL AND octet_length(refresh_token) <= 256 THEN
        SELECT * INTO r FROM pgapp.auth_refresh_token AS t
         WHERE t.token_hash = sha256(convert_to(refresh_token, 'UTF8'))
           FOR UPDATE;
    END IF;
    IF r.id IS NOT NULL AND r.used_at IS NOT NULL THEN
        -- reuse: remembered outside the transaction, which may roll back
        PERFORM pgapp._auth_reused(r.family_id);
    END IF;
    IF r.id IS NOT NULL AND r.revoked_at IS NULL
       AND (r.used_at IS NOT NULL OR r.family_id = ANY (pgapp._auth_reused_families())) THEN
        PERFORM pgapp._auth_revoke_family(r.family_id);
        r.revoked_at := now();
    END IF;
    IF r.id IS NULL OR r.used_at IS NOT NULL OR r.revoked_at IS NOT NULL OR r.expires_at <= now() THEN
        RETURN pgapp.report_error(401, '{"errors": {"refresh_token": ["is invalid"]}}',
                                  'invalid refresh token');
    END IF;
    -- A family keeps its newest 100 tokens, and the row of a token is the
    -- only record of the access token issued with it: ending the family
    -- revokes the access tokens its rows name.  So a row is dropped only
    -- once its access token has expired or was revoked; a refresh that
    -- would drop one still alive (100 refreshes within an access token's
    -- lifetime) is refused with 429 until it expires.  (Revoking it on
    -- the drop instead would let one session flood the revocation cache
    -- with refreshes, which cost no hash.)
    SELECT max(d.access_expires_at) INTO live_until
      FROM pgapp.auth_refresh_token AS d
     WHERE d.family_id = r.family_id AND d.revoked_at IS NULL AND d.access_expires_at > now()
       AND d.id < (SELECT min(k.id) FROM (SELECT f.id FROM pgapp.auth_refresh_token AS f
                                           WHERE f.family_id = r.family_id
                                           ORDER BY f.id DESC LIMIT 99) AS k);
    IF live_until IS NOT NULL THEN
        retry := greatest(ceil(extract(epoch FROM live_until - now())), 1)::integer;
        IF coalesce(current_setting('request.method', true), '') <> '' THEN
            RAISE SQLSTATE 'PGRST' USING
                MESSAGE = jsonb_build_object(
                    'code', 'PT429',
                    'message', 'too many refreshes',
                    'details', 'This session was refreshed 100 times within an access token''s lifetime.',
                    'hint', format('Retry after %s second(s).', retry))::text,
                DETAIL = jsonb_build_object(
                    'status', 429,
                    'headers', jsonb_build_object('Retry-After', retry::text))::text;
        END IF;
        RAISE EXCEPTION 'too many refreshes' USING
            ERRCODE = 'PT429',
            DETAIL = jsonb_build_object('error', 'rate_limited', 'retry_after', retry)::text,
            HINT = format('Retry after %s second(s).', retry);
    END IF;
    UPDATE pgapp.auth_refresh_token AS t SET used_at = now() WHERE t.id = r.id;
    SELECT * INTO u FROM pgapp.auth_user AS a WHERE a.id = r.user_id;
    -- keep the newest 100 tokens of a family (the check above): older ones
    -- then read as unknown
    DELETE FROM pgapp.auth_refresh_token AS t
     WHERE t.family_id = r.family_id
       AND t.id < (SELECT min(k.id) FROM (SELECT f.id FROM pgapp.auth_refresh_token AS f
                                           WHERE f.family_id = r.family_id
                                           ORDER BY f.id DESC LIMIT 99) AS k);
    PERFORM pgapp.auth_sweep(100);
    PERFORM pgapp._auth_revoke_reused();
    RETURN pgapp._auth_session(u.id, u.role, r.family_id, r.id);
END
$$;

COMMENT ON FUNCTION pgapp.refresh(text) IS
'Rotate a refresh token: the next tokens of its session; reuse of a used token ends the session; 401 otherwise';

/*
 * pgapp.logout: the access token proves who calls.  It is revoked, and so
 * is its session (the family its sid claim names, if it is the token
 * subject's): every refresh token and access token of it.
 */
CREATE FUNCTION pgapp.logout(access_token text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claims jsonb := pgapp.decode_token(access_token);
    fam uuid;
BEGIN
    PERFORM pgapp.revoke_token(claims ->> 'jti', to_timestamp((claims ->> 'exp')::double precision));
    IF claims ->> 'sid' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT t.family_id INTO fam FROM pgapp.auth_refresh_token AS t
         WHERE t.family_id = (claims ->> 'sid')::uuid AND t.user_id::text = claims ->> 'sub'
         LIMIT 1;
        IF fam IS NOT NULL THEN
            PERFORM pgapp._auth_revoke_family(fam);
        END IF;
    END IF;
END
$$;

COMMENT ON FUNCTION pgapp.logout(text) IS
'Revoke an access token and end its session (its refresh tokens and their access tokens)';

/*
 * pgapp.logout_everywhere: every session of the user ends, and every token
 * of sub issued until now is revoked (pgapp.revoke_subject).  Allowed to
 * the user (the request's verified claims name sub) and to pgapp_admin.
 */
CREATE FUNCTION pgapp.logout_everywhere(sub text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fam uuid;
BEGIN
    IF sub IS NULL OR sub = '' THEN
        RAISE EXCEPTION 'sub must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pgapp.token_claims() ->> 'sub' IS DISTINCT FROM sub AND NOT pgapp._auth_caller_is_admin() THEN
        RAISE EXCEPTION 'permission denied to end the sessions of "%"', left(sub, 64)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the user themself (a request whose token has this sub) or pgapp_admin may.';
    END IF;
    FOR fam IN
        SELECT DISTINCT t.family_id FROM pgapp.auth_refresh_token AS t
         WHERE t.user_id::text = sub AND t.revoked_at IS NULL
    LOOP
        PERFORM pgapp._auth_revoke_family(fam);
    END LOOP;
    PERFORM pgapp.revoke_subject(sub);
END
$$;

COMMENT ON FUNCTION pgapp.logout_everywhere(text) IS
'End every session of sub and revoke every token it was issued until now (the user themself or pgapp_admin)';

CREATE FUNCTION pgapp._auth_caller_is_admin()
RETURNS boolean
AS 'MODULE_PATHNAME', 'pgapp_auth_caller_is_admin'
LANGUAGE C STABLE PARALLEL RESTRICTED;

REVOKE ALL ON pgapp.auth_user, pgapp.auth_refresh_token FROM PUBLIC;
REVOKE ALL ON FUNCTION pgapp._password_hash(text), pgapp._password_verify(text, text),
    pgapp._auth_new_token(), pgapp._auth_too_many(integer, text), pgapp._auth_count_attempt(text),
    pgapp._auth_revoke_family(uuid), pgapp.auth_sweep(integer), pgapp._auth_reused(uuid),
    pgapp._auth_reused_families(), pgapp._auth_revoke_reused(), pgapp._auth_caller_is_admin(),
    pgapp._auth_session(uuid, text, uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.auth_sweep(integer) TO pgapp_admin;
GRANT SELECT ON pgapp.auth_hash_stats TO PUBLIC;
-- end of passwords and sessions

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

-- pgapp-gateway's broadcast_from (sql/parts/70_pubsub.sql, docs/gateway.md):
-- pgapp.broadcast_from, the outbox's sender column, and pgapp.typing's
-- "typing" not sent back to the gateway socket that types
-- (sql/parts/71_presence.sql).
ALTER TABLE pgapp.outbox ADD COLUMN sender text;

CREATE FUNCTION pgapp.broadcast_from(topic text, event text, payload jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast_from'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.broadcast_from(text, text, jsonb) IS
'pgapp.broadcast that the pgapp-gateway socket whose request runs (join, handle_in) does not receive; elsewhere the same as pgapp.broadcast';

CREATE FUNCTION pgapp._broadcast_system_from(topic text, event text, payload jsonb, mode text)
RETURNS void
AS 'MODULE_PATHNAME', 'pgapp_broadcast_system_from'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp._broadcast_system_from(text, text, jsonb, text) IS
'pgapp._broadcast_system that the pgapp-gateway socket whose request runs does not receive (not for PUBLIC)';

REVOKE ALL ON FUNCTION pgapp._broadcast_system_from(text, text, jsonb, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgapp._typing(topic text, key text, caller oid)
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
        -- not to the pgapp-gateway socket that types (when called in its request)
        PERFORM pgapp._broadcast_system_from(topic, 'typing', jsonb_build_object('key', key), 'direct');
    END IF;
    PERFORM pgapp._pubsub_start_worker();
END
$$;

-- Tell a running PostgREST to reload its schema cache (delivered at commit),
-- as the install script does at its end.
NOTIFY pgrst, 'reload schema';

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

-- Tell a running PostgREST to reload its schema cache (delivered at commit),
-- as the install script does at its end.
NOTIFY pgrst, 'reload schema';

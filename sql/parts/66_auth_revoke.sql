-- sql/parts/66_auth_revoke.sql: token revocation (docs/auth.md, "Revocation")

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

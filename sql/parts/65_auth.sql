-- sql/parts/65_auth.sql: HS256 tokens PostgREST accepts (docs/auth.md)

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

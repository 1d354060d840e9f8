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

-- Tell a running PostgREST to reload its schema cache (delivered at commit),
-- as the install script does at its end.
NOTIFY pgrst, 'reload schema';

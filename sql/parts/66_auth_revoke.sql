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

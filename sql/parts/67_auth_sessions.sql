-- sql/parts/67_auth_sessions.sql: passwords and sessions (docs/auth.md, "Passwords" and "Sessions")

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

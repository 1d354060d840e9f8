--
-- auth_revoke: revoking tokens by jti and by subject (pgapp.revoke_token,
-- pgapp.revoke_subject), the cache in shared memory and its tables.
-- Tokens differ from run to run (iat, jti): the output shows what they mean.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

ALTER SYSTEM SET pgapp.auth_jwt_secret = 'regress-revoke-secret-0123456789abcdef';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\i test/helpers/token_helpers.sql
\set ECHO all

CREATE TABLE tok AS
SELECT name, pgapp.encode_token(sub, '{}', '1 hour') AS token
  FROM (VALUES ('alice1', 'alice'), ('alice2', 'alice'), ('bob1', 'bob'), ('carol1', 'carol'))
       AS v(name, sub);
ALTER TABLE tok ADD COLUMN claims jsonb;
UPDATE tok SET claims = pgapp.decode_token(token);
CREATE FUNCTION pg_temp.claim(n text, c text) RETURNS text LANGUAGE sql AS $$
    SELECT claims ->> c FROM tok WHERE name = n
$$;
CREATE FUNCTION pg_temp.check_all() RETURNS TABLE (name text, result text) LANGUAGE sql AS $$
    SELECT name, pg_temp.token_error(token) FROM tok ORDER BY name
$$;

-- Nothing revoked: every token is valid, and the first check loaded the cache.
SELECT * FROM pg_temp.check_all();
SELECT s->>'cache' AS cache, s->'overflow_until' AS overflow_until, (s->>'capacity')::int AS capacity
  FROM pgapp.auth_revocation_status() AS s;

-- A revocation rolled back revokes nothing (neither in the tables nor in the cache).
BEGIN;
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '1 hour');
ROLLBACK;
SELECT * FROM pg_temp.check_all();
SELECT count(*) AS rows FROM pgapp.auth_revoked_token;

-- Nor one in a subtransaction that rolls back.
BEGIN;
SAVEPOINT s;
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '1 hour');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM pg_temp.check_all();

-- Committed, the token fails with PJ005; the others are untouched.
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'),
                          to_timestamp((pg_temp.claim('alice1', 'exp'))::bigint));
SELECT * FROM pg_temp.check_all();
SELECT pg_temp.show($$SELECT pgapp.decode_token(token) FROM tok WHERE name = 'alice1'$$);
SELECT jti = pg_temp.claim('alice2', 'jti') AS other_jti, length(jti_sha256) AS digest_bytes,
       jti_sha256 = sha256(convert_to(jti, 'UTF8')) AS digest_is_sha256,
       expires_at > now() AS live
  FROM pgapp.auth_revoked_token;

-- Revoking again keeps the later expiry.
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '2 hours');
SELECT pgapp.revoke_token(pg_temp.claim('alice1', 'jti'), now() + interval '10 minutes');
SELECT count(*) AS rows, bool_and(expires_at > now() + interval '90 minutes') AS later_kept
  FROM pgapp.auth_revoked_token;

-- The check read no table: the cache answered (a transaction's own counters).
-- (pg_stat_xact_user_tables also counts what earlier transactions have not
-- flushed yet: compare before and after.)
CREATE FUNCTION pg_temp.scans() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::bigint FROM pg_stat_xact_user_tables
     WHERE relname IN ('auth_revoked_token', 'auth_subject_cutoff')
$$;
BEGIN;
SELECT pg_temp.scans() AS scans_before \gset
SELECT count(*) FILTER (WHERE r = 'ok') AS ok, count(*) FILTER (WHERE r LIKE 'PJ005%') AS revoked
  FROM (SELECT pg_temp.token_error(token) AS r FROM tok, generate_series(1, 10)) AS s;
SELECT pg_temp.scans() - :scans_before AS table_scans;
COMMIT;

-- Revoking an expired token records nothing (expiry already refuses it).
SELECT pgapp.revoke_token('already-expired', now() - interval '1 hour');
SELECT count(*) AS rows FROM pgapp.auth_revoked_token WHERE jti = 'already-expired';

-- Logged out everywhere: bob's tokens issued before the cutoff are revoked,
-- including those of the cutoff's own second (iat has whole seconds).
SELECT pgapp.revoke_subject('bob');
SELECT * FROM pg_temp.check_all();
SELECT pg_temp.token_error(pgapp.encode_token('bob', '{}', '1 hour')) AS same_second;
-- A cutoff in the past leaves tokens issued after it valid, and revokes older ones.
SELECT pgapp.revoke_subject('carol', now() - interval '1 minute');
SELECT * FROM pg_temp.check_all();
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"carol","iat":%s,"exp":%s}', pg_temp.now_s() - 120, pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS carol_older;
-- A token without iat cannot prove it is newer than its subject's cutoff.
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"carol","exp":%s}', pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS carol_no_iat;
-- Without a cutoff, the same tokens are fine.
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"dave","exp":%s}', pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS dave_no_iat;
-- A later cutoff wins over an earlier one; an earlier one does not move it back.
SELECT pgapp.revoke_subject('carol', now() - interval '1 day');
SELECT pg_temp.token_error(pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
         format('{"sub":"carol","iat":%s,"exp":%s}', pg_temp.now_s() - 120, pg_temp.now_s() + 600),
         'regress-revoke-secret-0123456789abcdef')) AS carol_older_still_revoked;
SELECT sub, not_before > now() - interval '2 minutes' AS later_kept,
       expires_at - not_before AS kept_for
  FROM pgapp.auth_subject_cutoff ORDER BY sub;

-- A cutoff older than the longest token lifetime has nothing left to revoke.
SELECT pgapp.revoke_subject('erin', now() - interval '31 days');
SELECT count(*) AS rows FROM pgapp.auth_subject_cutoff WHERE sub = 'erin';

-- Tokens live at most pgapp.auth_token_max_ttl (the cutoffs are kept that long).
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '31 days')$$);
SET pgapp.auth_token_max_ttl = '1h';
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '61 minutes')$$);
SELECT pg_temp.show($$SELECT pgapp.encode_token('alice', '{}', '1 hour')$$);
RESET pgapp.auth_token_max_ttl;

-- Arguments: NULL is NULL (STRICT), empty and over-long values, infinite times.
SELECT pgapp.revoke_token(NULL, now()) IS NULL AS strict;
SELECT pg_temp.show($$SELECT pgapp.revoke_token('', now() + interval '1 hour')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject(repeat('x', 8193))$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_token('x', 'infinity')$$);
SELECT pg_temp.show($$SELECT pgapp.revoke_subject('x', '-infinity')$$);

-- Expired rows are deleted by the cleanup (and a few by every revocation).
SET pgapp.auth_jwt_leeway = 0;
INSERT INTO pgapp.auth_revoked_token (jti_sha256, jti, expires_at)
SELECT sha256(convert_to('old' || i, 'UTF8')), 'old' || i, now() - interval '1 minute'
  FROM generate_series(1, 250) AS i;
SELECT pgapp.auth_revocation_cleanup() AS deleted;
SELECT count(*) AS rows FROM pgapp.auth_revoked_token;
RESET pgapp.auth_jwt_leeway;

-- Another session sees the same revocations (shared memory).
\c
\set ECHO none
\i test/helpers/token_helpers.sql
\set ECHO all
SELECT name, pg_temp.token_error(token) FROM tok ORDER BY name;

DROP TABLE tok;
DELETE FROM pgapp.auth_revoked_token;
DELETE FROM pgapp.auth_subject_cutoff;
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
SELECT pg_reload_conf();

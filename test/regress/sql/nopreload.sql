--
-- nopreload: the library is installed but not in shared_preload_libraries
-- (test/nopreload.conf).  Everything that needs no shared memory works;
-- what does refuses with 55000 and a hint naming the setting.
--
CREATE EXTENSION pgapp;
SELECT pgapp.version();
SELECT h->>'status' AS status,
       h->'preloaded' AS preloaded,
       h->'shared_memory' AS shared_memory,
       h->'modules' AS modules,
       h->'pg_cron'->'preloaded' AS pg_cron_preloaded
  FROM pgapp.health() AS h;

-- the GUC exists even without preloading
SET pgapp.error_mode = 'raise';
SHOW pgapp.error_mode;

\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT * FROM pg_temp.show('SELECT * FROM pgapp.error_stats');
SELECT * FROM pg_temp.show('SELECT pgapp.error_stats_reset()');
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 1, 60) $$);
SELECT * FROM pg_temp.show('SELECT * FROM pgapp.rate_stats');
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 'default') $$);
-- limiters can be defined (they are rows), not used
SELECT pgapp.create_limiter('np', 5, 1, 60);
SELECT * FROM pg_temp.show($$ SELECT pgapp.check_rate('k', 'np') $$);
SELECT pgapp.drop_limiter('np');

-- the error model itself needs no shared memory (nothing is counted)
DO $$
BEGIN
    PERFORM pgapp.report_error(422, '{"errors": {"title": ["can''t be blank"]}}');
EXCEPTION WHEN SQLSTATE 'PT422' THEN
    RAISE NOTICE 'caught PT422: %', SQLERRM;
END
$$;
SET pgapp.error_mode = 'return';
SELECT pgapp.report_error(409, '{"error": "conflict"}') AS body;
-- pubsub: direct broadcasts need no shared memory; the outbox does
SELECT count(*) AS sent FROM (SELECT pgapp.broadcast('np', 'direct without preload', '{}')) AS s;
SELECT * FROM pg_temp.show($$ SELECT pgapp.broadcast('np', 'e', '{}', mode => 'outbox') $$);
SELECT * FROM pg_temp.show('SELECT * FROM pgapp.pubsub_outbox');
-- jobs: queues and jobs are rows (external workers can serve them); no
-- background worker runs them, and progress needs one
CREATE FUNCTION public.np_job(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
SELECT pgapp.create_queue('np', 1);
SELECT pgapp.enqueue('np', 'public.np_job', '{"n": 1}') > 0 AS enqueued;
SELECT count(*) AS workers FROM pgapp.workers;
SELECT queue, available, workers FROM pgapp.queue_stats;
SELECT * FROM pg_temp.show('SELECT pgapp.job_progress(10)');
SELECT pgapp.drop_queue('np', force => true);
DROP FUNCTION public.np_job(jsonb, pgapp.job_info);
-- tokens: the inline secret is refused without preloading (a session that
-- has not loaded pgapp holds it as a placeholder any role could SHOW); the
-- key file works
ALTER SYSTEM SET pgapp.auth_jwt_secret = 'nopreload-secret-0123456789abcdef-0123456789';
SELECT pg_reload_conf();
\c
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT * FROM pg_temp.show($$ SELECT pgapp.encode_token('np', '{}', '1 minute') $$);
ALTER SYSTEM RESET pgapp.auth_jwt_secret;
COPY (SELECT 'nopreload-file-secret-0123456789abcdef-0123456789') TO PROGRAM 'cat > np_jwt_keys';
ALTER SYSTEM SET pgapp.auth_jwt_secret_file = 'np_jwt_keys';
SELECT pg_reload_conf();
\c
SELECT pgapp.decode_token(pgapp.encode_token('np', '{}', '1 minute')) ->> 'sub' AS sub;
-- revocation without shared memory: every check reads the tables
SELECT pgapp.encode_token('np', '{}', '1 minute') AS np_token \gset
SELECT pgapp.revoke_token(pgapp.decode_token(:'np_token') ->> 'jti', now() + interval '1 minute');
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all
SELECT * FROM pg_temp.show(format('SELECT pgapp.decode_token(%L)', :'np_token'));
SELECT pgapp.revoke_subject('np-other');
SELECT pgapp.decode_token(pgapp.encode_token('np', '{}', '1 minute')) ->> 'sub' AS not_revoked;
SELECT pgapp.auth_revocation_status() ->> 'cache' AS cache;
-- passwords: hashing needs the semaphore in shared memory, so register and
-- login refuse (login already at its rate limit); no hash runs uncapped
SELECT * FROM pg_temp.show($$ SELECT pgapp.register('np@example.com', 'np password 1') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp.login('np@example.com', 'np password 1') $$);
SELECT * FROM pg_temp.show($$ SELECT * FROM pgapp.auth_hash_stats $$);
SELECT count(*) AS users FROM pgapp.auth_user;
ALTER SYSTEM RESET pgapp.auth_jwt_secret_file;
SELECT pg_reload_conf();
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f np_jwt_keys';
DROP EXTENSION pgapp;

-- bench/auth/schema.sql: one access token of the inline secret, handed to
-- every session as PostgREST hands it to its pre-request: request.headers
-- (Authorization: Bearer ...) and request.jwt.claims, set for the database
-- so that pgbench's sessions start with them.  A few revocations (other
-- tokens, another subject) so that the cache is not empty; a rate plan
-- that never denies, so that pre_request measures its work, not refusals.
CREATE EXTENSION pgapp;
CREATE ROLE bench_web NOLOGIN;
SELECT pgapp.revoke_token('revoked-' || i, now() + interval '1 hour') FROM generate_series(1, 100) AS i;
SELECT pgapp.revoke_subject('someone-else');
UPDATE pgapp.rate_plan SET max_requests = 2000000000, window_seconds = 1 WHERE name = 'default';
SELECT pgapp.encode_token('alice', '{"role": "bench_web"}', '1 day') AS token \gset
SELECT format('ALTER DATABASE postgres SET request.headers = %L',
              jsonb_build_object('authorization', 'Bearer ' || :'token', 'accept', 'application/json',
                                 'user-agent', 'bench', 'host', 'localhost:3000')) \gexec
SELECT format('ALTER DATABASE postgres SET request.jwt.claims = %L', pgapp.decode_token(:'token')) \gexec
SELECT format('ALTER DATABASE postgres SET bench.token = %L', :'token') \gexec
-- the same for instructions.sh's single-user backend, which applies no
-- per-database settings: its first statement copies them from here
CREATE TABLE bench_settings AS
SELECT jsonb_build_object('authorization', 'Bearer ' || :'token', 'accept', 'application/json',
                          'user-agent', 'bench', 'host', 'localhost:3000')::text AS headers,
       pgapp.decode_token(:'token')::text AS claims, :'token' AS token;

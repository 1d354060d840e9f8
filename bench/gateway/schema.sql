-- bench/gateway/schema.sql: the database of bench/gateway.
--
-- Roles as a PostgREST deployment has them: bench_auth logs in (the
-- gateway's and the relay's connections) and may become bench_user, the
-- role of the tokens.  The channel "bench:*" lets in a token with a sub;
-- pgapp-gateway and the relay (JOIN=sql) call the same join function the
-- same way.
CREATE EXTENSION pgapp;

CREATE ROLE bench_auth LOGIN NOINHERIT;
CREATE ROLE bench_user NOLOGIN;
GRANT bench_user TO bench_auth;

CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO bench_user;

CREATE FUNCTION bench."join"(topic text, params jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT CASE WHEN pgapp.token_claims() ->> 'sub' IS NOT NULL
                THEN jsonb_build_object('ok', '{}'::jsonb)
                ELSE jsonb_build_object('error', jsonb_build_object('reason', 'unauthorized')) END
$$;
REVOKE ALL ON FUNCTION bench."join"(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bench."join"(text, jsonb) TO bench_user;

SELECT pgapp.define_channel('bench:*', 'bench.join(text, jsonb)');

--
-- security/80_layout: what the layout step (issue 16) added that PUBLIC may
-- call.  pgapp.openapi() and pgapp.json_schema() run with the caller's
-- rights, so their steps (_openapi_*, _json_schema_rule) are executable by
-- PUBLIC: bad arguments get a clear error, and they show no more than the
-- catalogs show the caller.  The new jobs helpers are not callable at all.
--
\set ECHO none
\i test/helpers/regress_helpers.sql
\set ECHO all

SET ROLE sec_attacker;
-- no such function
SELECT * FROM pg_temp.show($$ SELECT pgapp._openapi_path(0) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._openapi_arguments(0, NULL) $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._openapi_responses(0, NULL) $$);
-- a rule kind JSON Schema cannot say, or none
SELECT * FROM pg_temp.show($$ SELECT pgapp._json_schema_rule('{}', '{}', 'acceptance') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._json_schema_rule('{}', '{}', NULL) $$);
-- a function the attacker may not execute is described from pg_proc and
-- pg_description, which every role reads anyway
SELECT has_function_privilege('pgapp._job_claim_due(text, integer, text, interval)', 'EXECUTE') AS may_claim,
       has_function_privilege('pgapp._job_for_lease(bigint, integer)', 'EXECUTE') AS may_lease;
SELECT * FROM pg_temp.show($$ SELECT pgapp._job_claim_due('q', 1000000, 'me', '1 hour') $$);
SELECT * FROM pg_temp.show($$ SELECT pgapp._job_for_lease(1, 1) $$);
SELECT pgapp._openapi_path('pgapp._job_claim_due(text, integer, text, interval)'::regprocedure) ? 'post' AS described;
RESET ROLE;

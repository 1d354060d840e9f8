-- sql/parts/20_error.sql: error model (docs/errors.md)

CREATE FUNCTION pgapp.report_error(
    status int,
    body jsonb,
    message text DEFAULT NULL,
    hint text DEFAULT NULL,
    column_name text DEFAULT NULL,
    table_name regclass DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_report_error'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION pgapp.report_error(int, jsonb, text, text, text, regclass) IS
'Raise SQLSTATE PT<status> with body in DETAIL, or set response.status and return body, per pgapp.error_mode';

CREATE FUNCTION pgapp.error_mode()
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_error_mode_effective'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION pgapp.error_mode() IS
'The error mode in effect now, raise or return, with pgapp.error_mode = auto resolved';

CREATE TYPE pgapp.error_stat AS (
    status int,
    sqlstate text,
    raised bigint,
    returned bigint,
    stats_reset timestamptz
);

CREATE FUNCTION pgapp.error_stats()
RETURNS SETOF pgapp.error_stat
AS 'MODULE_PATHNAME', 'pgapp_error_stats'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW pgapp.error_stats AS
    SELECT * FROM pgapp.error_stats();

COMMENT ON VIEW pgapp.error_stats IS
'Errors reported through the error model since the last reset, per HTTP status';

GRANT SELECT ON pgapp.error_stats TO PUBLIC;

CREATE FUNCTION pgapp.error_stats_reset()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'pgapp_error_stats_reset'
LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION pgapp.error_stats_reset() IS
'Zero the counters of pgapp.error_stats (pgapp_admin)';

REVOKE ALL ON FUNCTION pgapp.error_stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgapp.error_stats_reset() TO pgapp_admin;


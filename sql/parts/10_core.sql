-- sql/parts/10_core.sql: version, health, the definition cache trigger (docs/core.md)

CREATE FUNCTION pgapp.version()
RETURNS text
AS 'MODULE_PATHNAME', 'pgapp_version'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION pgapp.version() IS
'Version of the loaded pgapp library';

CREATE FUNCTION pgapp.health()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pgapp_health'
LANGUAGE C STRICT STABLE;

COMMENT ON FUNCTION pgapp.health() IS
'State of pgapp: preloading, shared memory, workers, pg_cron, per-module status';

-- Definitions change rarely and are read on every validated write: backends
-- cache them and this trigger tells every backend to drop its cache.
CREATE FUNCTION pgapp._definitions_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pgapp_definitions_changed'
LANGUAGE C;
REVOKE ALL ON FUNCTION pgapp._definitions_changed() FROM PUBLIC;


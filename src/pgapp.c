/*-------------------------------------------------------------------------
 *
 * pgapp.c
 *	  The top of pgapp: _PG_init (settings, the modules in order, hooks),
 *	  pgapp.version() and pgapp.health().
 *
 * Each feature is a module (PgappModule, core/module.h) registered here in
 * the order its shared memory is set up.  Only this file includes every
 * feature's public header; features include core/ and, where they build on
 * one, the public header of a feature below them (see README.md).
 *
 * Loaded without shared_preload_libraries (e.g. by CREATE EXTENSION on a
 * server that does not preload it), the library still defines its settings
 * and serves the functions that need no shared memory; the others refuse
 * with SQLSTATE 55000 through pgapp_require_shmem().
 *
 * src/pgapp.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/varlena.h"

#include "auth/auth.h"
#include "changesets/changeset.h"
#include "core/crypto.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "jobs/jobs.h"
#include "machines/machine.h"
#include "pgapp.h"
#include "pubsub/pubsub.h"
#include "queries/query.h"
#include "ratelimit/ratelimit.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static bool library_listed(const char *setting, const char *library);
static json_t *spi_json_value(const char *query, MemoryContext mcxt);

PG_FUNCTION_INFO_V1(pgapp_version);
PG_FUNCTION_INFO_V1(pgapp_health);

void
_PG_init(void)
{
	pgapp_preloaded = process_shared_preload_libraries_in_progress;

	pgapp_json_init();
	pgapp_crypto_init();
	pgapp_settings_define(pgapp_preloaded);

	/* the modules, in the order their shared memory is set up */
	pgapp_module_register(&pgapp_error_module);
	pgapp_module_register(&pgapp_machines_module);
	pgapp_module_register(&pgapp_changesets_module);
	pgapp_module_register(&pgapp_queries_module);
	pgapp_module_register(&pgapp_ratelimit_module);
	pgapp_module_register(&pgapp_auth_module);
	pgapp_module_register(&pgapp_auth_sessions_module);
	pgapp_module_register(&pgapp_pubsub_module);
	pgapp_module_register(&pgapp_jobs_module);

	if (!pgapp_preloaded)
		return;
	pgapp_register_housekeeper();
	pgapp_module_install_hooks();
}

/*
 * pgapp.version() -> text: the version of the loaded library.
 */
Datum
pgapp_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(PGAPP_VERSION));
}

/*
 * Is library named in a shared_preload_libraries-style list?
 */
static bool
library_listed(const char *setting, const char *library)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (setting == NULL)
		return false;
	raw = pstrdup(setting);
	if (!SplitDirectoriesString(raw, ',', &names))
		return false;
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		const char *base = strrchr(name, '/');

		base = base ? base + 1 : name;
		if (strcmp(base, library) == 0 ||
			(strncmp(base, library, strlen(library)) == 0 &&
			 strcmp(base + strlen(library), DLSUFFIX) == 0))
			found = true;
	}
	return found;
}

/*
 * First column of the first row of a query returning jsonb, as json_t made
 * in mcxt so that it survives SPI_finish (JSON null when there is no row or
 * the value is NULL).  The caller is connected to SPI.
 */
static json_t *
spi_json_value(const char *query, MemoryContext mcxt)
{
	int			ret;
	bool		isnull;
	Datum		d;
	MemoryContext oldcxt;
	json_t	   *json;

	ret = SPI_execute(query, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return pgapp_json_null();
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return pgapp_json_null();
	oldcxt = MemoryContextSwitchTo(mcxt);
	json = pgapp_json_from_jsonb(DatumGetJsonbP(d));
	MemoryContextSwitchTo(oldcxt);
	return json;
}

/* May the current user see health()'s configuration part? */
static bool
health_admin(void)
{
	Oid			admin = get_role_oid("pgapp_admin", true);

	return superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin));
}

/*
 * pgapp.health() -> jsonb
 *
 * {"status": "ok" | "degraded", "version", "library_version",
 *  "preloaded", "shared_memory", "background_workers": {...},
 *  "pg_cron": {...}, "libraries": {...}, "modules": {name: status}}
 *
 * "degraded" means something a deployment should fix: not preloaded, or an
 * installed extension version that differs from the loaded library.
 *
 * Only superusers and members of pgapp_admin see the configuration, the
 * workers and the libraries; everyone else (PostgREST's anonymous role
 * included) gets {"status", "version"}, what a load balancer needs.
 */
Datum
pgapp_health(PG_FUNCTION_ARGS)
{
	json_t	   *health = pgapp_json_object();
	json_t	   *mods = pgapp_json_object();
	json_t	   *cron = pgapp_json_object();
	json_t	   *libs = pgapp_json_object();
	json_t	   *installed;
	json_t	   *workers;
	json_t	   *cron_state;
	const char *cron_db;
	bool		shmem_ok = true;
	bool		degraded = false;
	Jsonb	   *result;
	int			ret;
	MemoryContext mcxt = CurrentMemoryContext;

	for (int i = 0; i < pgapp_module_count(); i++)
	{
		const PgappModule *m = pgapp_module_get(i);
		const char *status;

		if (m->status == NULL)
			continue;
		status = m->status();
		if (m->shmem_startup && strcmp(status, "not preloaded") == 0)
			shmem_ok = false;
		pgapp_json_set(mods, m->name, pgapp_json_string(status));
	}

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));

	installed = spi_json_value(
							   "SELECT pg_catalog.to_jsonb(extversion) FROM pg_catalog.pg_extension"
							   " WHERE extname OPERATOR(pg_catalog.=) 'pgapp'", mcxt);
	workers = spi_json_value(
							 "SELECT pg_catalog.jsonb_build_object("
							 "  'running', pg_catalog.count(*),"
							 "  'types', COALESCE(pg_catalog.jsonb_agg(DISTINCT backend_type), '[]'))"
							 " FROM pg_catalog.pg_stat_activity"
							 " WHERE backend_type LIKE 'pgapp%'", mcxt);
	cron_state = spi_json_value(
								"SELECT pg_catalog.jsonb_build_object("
								"  'installed', EXISTS (SELECT 1 FROM pg_catalog.pg_extension"
								"                       WHERE extname OPERATOR(pg_catalog.=) 'pg_cron'),"
								"  'launcher_running', EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity"
								"                       WHERE backend_type OPERATOR(pg_catalog.=) 'pg_cron launcher'))", mcxt);

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));

	pgapp_json_set(cron, "preloaded",
				   pgapp_json_bool(library_listed(GetConfigOption("shared_preload_libraries", true, false),
												  "pg_cron")));
	pgapp_json_set(cron, "installed", pgapp_json_copy(pgapp_json_get(cron_state, "installed")));
	pgapp_json_set(cron, "launcher_running",
				   pgapp_json_copy(pgapp_json_get(cron_state, "launcher_running")));
	cron_db = GetConfigOption("cron.database_name", true, false);
	pgapp_json_set(cron, "database_name", cron_db ? pgapp_json_string(cron_db) : pgapp_json_null());

	pgapp_json_set(libs, "jansson", pgapp_json_string(pgapp_json_library_version()));
	pgapp_json_set(libs, "libsodium", pgapp_json_string(pgapp_crypto_library_version()));
	pgapp_json_set(libs, "libsodium_ready", pgapp_json_bool(pgapp_crypto_ready()));

	if (!pgapp_preloaded || !shmem_ok || !pgapp_crypto_ready())
		degraded = true;
	if (pgapp_json_string_value(installed) == NULL ||
		strcmp(pgapp_json_string_value(installed), PGAPP_VERSION) != 0)
		degraded = true;

	pgapp_json_set(health, "status", pgapp_json_string(degraded ? "degraded" : "ok"));
	pgapp_json_set(health, "version", installed);
	if (!health_admin())
	{
		pgapp_json_free(cron);
		pgapp_json_free(libs);
		pgapp_json_free(mods);
		pgapp_json_free(workers);
		result = pgapp_json_to_jsonb(health);
		pgapp_json_free(health);
		pgapp_json_free(cron_state);
		PG_RETURN_JSONB_P(result);
	}
	pgapp_json_set(health, "library_version", pgapp_json_string(PGAPP_VERSION));
	pgapp_json_set(health, "preloaded", pgapp_json_bool(pgapp_preloaded));
	pgapp_json_set(health, "shared_memory", pgapp_json_bool(pgapp_preloaded && shmem_ok));
	pgapp_json_set(health, "background_workers", workers);
	pgapp_json_set(health, "pg_cron", cron);
	pgapp_json_set(health, "libraries", libs);
	pgapp_json_set(health, "modules", mods);

	result = pgapp_json_to_jsonb(health);
	pgapp_json_free(health);
	pgapp_json_free(cron_state);
	PG_RETURN_JSONB_P(result);
}

/*-------------------------------------------------------------------------
 *
 * pgapp.c
 *	  Module entry point: GUCs, shared-memory hooks, the module registry,
 *	  pgapp.version() and pgapp.health().
 *
 * Each part of pgapp is a module (see PgappModule in pgapp.h) listed once in
 * the registry below.  _PG_init installs the two shared-memory hooks only
 * when the library is preloaded, and those hooks call every module's
 * request/startup callback in registry order.  A module therefore never
 * chains hooks itself, and pgapp.health() can ask every module for its
 * status in one place.
 *
 * Loaded without shared_preload_libraries (e.g. by CREATE EXTENSION on a
 * server that does not preload it), the library still defines its GUCs and
 * serves the functions that need no shared memory; the others refuse with
 * SQLSTATE 55000 through pgapp_require_shmem().
 *
 * src/pgapp.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "changeset.h"
#include "crypto.h"
#include "error.h"
#include "jobs.h"
#include "json_util.h"
#include "pgapp.h"
#include "pubsub.h"
#include "query.h"
#include "ratelimit.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

bool		pgapp_preloaded = false;

/* The registry: every module, in the order its shared memory is set up. */
static const PgappModule *const modules[] = {
	&pgapp_error_module,
	&pgapp_ratelimit_module,
	&pgapp_pubsub_module,
	&pgapp_jobs_module,
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static void pgapp_shmem_request(void);
static void pgapp_shmem_startup(void);
static void pgapp_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
								  ProcessUtilityContext context, ParamListInfo params,
								  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc);
static bool library_listed(const char *setting, const char *library);
static json_t *spi_json_value(const char *query, MemoryContext mcxt);

PG_FUNCTION_INFO_V1(pgapp_version);
PG_FUNCTION_INFO_V1(pgapp_health);

/* pgapp.databases: a list of names SplitIdentifierString accepts */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *copy = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitIdentifierString(copy, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(copy);
	return ok;
}

void
_PG_init(void)
{
	pgapp_preloaded = process_shared_preload_libraries_in_progress;

	pgapp_json_init();
	pgapp_crypto_init();

	DefineCustomEnumVariable("pgapp.error_mode",
							 "How pgapp reports errors: raise, return, or auto.",
							 "raise: SQLSTATE PTnnn with the JSON body in DETAIL. "
							 "return: set response.status and return the JSON body. "
							 "auto: return inside a PostgREST request (request.method set), else raise.",
							 &pgapp_error_mode,
							 PGAPP_ERROR_MODE_AUTO,
							 pgapp_error_mode_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.changeset_max_items",
							"Most errors, permitted fields, required fields or constraints a changeset value may hold.",
							"Longer changesets are refused (54000) before any validator reads them.",
							&pgapp_changeset_max_items,
							1000, 1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.max_page_size",
							"Largest page_size pgapp.paginate accepts.",
							NULL,
							&pgapp_max_page_size,
							100, 1, 100000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.query_cache_memory",
							"Memory the kept query plans of one backend may hold.",
							"Past it, the least recently used plans are dropped; 0 keeps none.",
							&pgapp_query_cache_memory,
							8192, 0, MAX_KILOBYTES,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("pgapp.ratelimit_on_full",
							 "What pgapp.check_rate does when no bucket can be evicted for a new key.",
							 "deny: refuse the request; allow: let it through uncounted; error: raise an error.",
							 &pgapp_ratelimit_on_full,
							 RATE_ON_FULL_DENY,
							 pgapp_ratelimit_on_full_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.ratelimit_max_window",
							"Longest window_seconds a rate limit check accepts.",
							"A bucket lives as long as its window; longer windows are refused (22023).",
							&pgapp_ratelimit_max_window,
							86400, 1, 315360000,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.ratelimit_client_header",
							   "Request header whose last address identifies anonymous clients in pgapp.rate_limit_request.",
							   "Set it only to a header your proxy appends the client's address to (e.g. x-forwarded-for behind nginx); empty uses the connection's address.",
							   &pgapp_ratelimit_client_header,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.ratelimit_plan_claim",
							   "JWT claim naming the caller's plan in pgapp.rate_limit_request.",
							   NULL,
							   &pgapp_ratelimit_plan_claim,
							   "plan",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.ratelimit_sweep_interval",
							"How often the pgapp housekeeper removes expired rate limit buckets.",
							"0 turns the periodic sweep off (a full table still evicts expired buckets first).",
							&pgapp_ratelimit_sweep_interval,
							60, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pgapp.ratelimit_save",
							 "Save rate limit buckets at shutdown and restore them at start.",
							 NULL,
							 &pgapp_ratelimit_save,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_retention",
							"How long messages too large for NOTIFY stay readable with pgapp.message().",
							NULL,
							&pgapp_pubsub_retention,
							3600, 60, 7 * 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_batch_delay",
							"How long the pubsub worker lets writers add to a batch when it is busy.",
							"0 sends at once; a few milliseconds let one delivering transaction carry many messages.",
							&pgapp_pubsub_batch_delay,
							2, 0, 100,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_max_payload",
							"Largest payload pgapp.broadcast accepts (jsonb bytes).",
							"Larger payloads are refused with SQLSTATE 54000; pgapp's own messages are not limited.",
							&pgapp_pubsub_max_payload,
							1024 * 1024, 1024, 256 * 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_presence_max_meta",
							"Largest meta pgapp.presence_track accepts (bytes of its JSON text).",
							"Larger metas are refused with SQLSTATE 54000.",
							&pgapp_pubsub_presence_max_meta,
							4096, 64, 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_presence_max_ttl",
							"Longest ttl pgapp.presence_track accepts.",
							"A presence not renewed within its ttl leaves; longer ttls are refused with SQLSTATE 54000.",
							&pgapp_pubsub_presence_max_ttl,
							600, 1, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_presence_max_metas",
							"Most metas one key may have at once on a topic (connections or devices).",
							"A further pgapp.presence_track without ref is refused with SQLSTATE 54000.",
							&pgapp_pubsub_presence_max_metas,
							64, 1, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.databases",
							   "Databases where pgapp's background workers run jobs (comma-separated; empty: all).",
							   "Elsewhere jobs can still be enqueued and served by external workers.",
							   &pgapp_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_retention",
							"How long finished jobs are kept before pruning.",
							"Completed, discarded and cancelled jobs older than this are deleted in batches.",
							&pgapp_jobs_retention,
							86400, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_max_args_size",
							"The largest args one job may carry.",
							"Measured as stored (jsonb); a larger one is refused with 54000.  0: no limit.",
							&pgapp_jobs_max_args_size,
							256, 0, 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_max_batch",
							"How many jobs one call of pgapp.enqueue_many may enqueue, at most.",
							"A larger batch is refused with 54000.  0: no limit.",
							&pgapp_jobs_max_batch,
							10000, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_max_queued_per_role",
							"How many jobs one role may have waiting (scheduled, available or retryable), at most.",
							"An enqueue beyond it is refused with 54000; superusers are not limited.  0: no limit.",
							&pgapp_jobs_max_queued_per_role,
							10000, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_batch_size",
							"How many jobs a queue worker claims at once, at most.",
							"Fewer when the backlog is small, so that the queue's workers share it, and when jobs are slow (about one pgapp.jobs_commit_interval of work); the claim commits before the jobs run.",
							&pgapp_jobs_batch_size,
							1000, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_commit_interval",
							"How long a queue worker lets one transaction carry its jobs before it commits.",
							"Quick jobs share a transaction (fewer commits); after this long it commits after the current job.",
							&pgapp_jobs_commit_interval,
							200, 0, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_idle_timeout",
							"How long a queue worker with nothing to do waits before it exits.",
							"0 keeps idle workers for ever.",
							&pgapp_jobs_idle_timeout,
							60, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_timeout",
							"Longest a job may run, unless its worker function sets statement_timeout.",
							"0 means no limit. A job over its time fails with SQLSTATE 57014 and is retried.",
							&pgapp_jobs_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_circuit_cooldown",
							"How long a queue whose workers crashed 5 times within a minute gets no new workers.",
							NULL,
							&pgapp_jobs_circuit_cooldown,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pgapp.pubsub_fixed_envelope",
							 "Give broadcasts a counter for id and 2000-01-01 for at (for tests).",
							 "Lets tests compare whole messages, as isolationtester prints them.",
							 &pgapp_pubsub_fixed_envelope,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("pgapp.ratelimit_clock_offset",
							 "Seconds added to the rate limiter's clock (for tests).",
							 "Lets regression tests move time forward instead of sleeping.",
							 &pgapp_ratelimit_clock_offset,
							 0, -1e9, 1e9,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	/*
	 * Sizing of shared memory: only when preloading (a postmaster setting
	 * cannot be created later), and before the prefix is reserved, which
	 * would otherwise drop its value from postgresql.conf.
	 */
	if (pgapp_preloaded)
	{
		DefineCustomIntVariable("pgapp.ratelimit_max_keys",
								"How many rate limit buckets shared memory holds.",
								"Each bucket takes about 200 bytes.",
								&pgapp_ratelimit_max_keys,
								10000, 16, 10000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
		DefineCustomIntVariable("pgapp.jobs_max_workers",
								"How many queue workers can run at once, over all databases.",
								"Each also needs a background worker process: keep max_worker_processes above it.",
								&pgapp_jobs_max_workers,
								32, 1, 1024,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("pgapp");

	pgapp_changeset_cache_init();
	pgapp_query_init();

	if (!pgapp_preloaded)
		return;

	pgapp_register_housekeeper();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgapp_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgapp_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = pgapp_process_utility;
}

static void
pgapp_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	for (int i = 0; i < lengthof(modules); i++)
		if (modules[i]->shmem_request)
			modules[i]->shmem_request();
}

static void
pgapp_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (int i = 0; i < lengthof(modules); i++)
		if (modules[i]->shmem_startup)
			modules[i]->shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * DROP DATABASE: first let the modules send their background workers away
 * from the database (they would make a plain DROP DATABASE fail).
 */
static void
pgapp_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, DropdbStmt))
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) pstmt->utilityStmt)->dbname, true);

		if (OidIsValid(dboid))
			for (int i = 0; i < lengthof(modules); i++)
				if (modules[i]->before_drop_database)
					modules[i]->before_drop_database(dboid);
	}
	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context, params,
								  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
pgapp_run_housekeeping(void)
{
	for (int i = 0; i < lengthof(modules); i++)
		if (modules[i]->housekeeping)
			modules[i]->housekeeping();
}

void
pgapp_subxact_begin(PgappSubxact *sx)
{
	sx->oldcontext = CurrentMemoryContext;
	sx->oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	/* work in the caller's memory context, not the subtransaction's */
	MemoryContextSwitchTo(sx->oldcontext);
}

void
pgapp_subxact_commit(PgappSubxact *sx)
{
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
}

/*
 * Call from PG_CATCH: returns the error (in the caller's context) and rolls
 * the subtransaction back.
 */
ErrorData *
pgapp_subxact_abort(PgappSubxact *sx)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(sx->oldcontext);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
	return edata;
}

Oid
pgapp_schema_oid(void)
{
	return get_namespace_oid("pgapp", false);
}

void
pgapp_become_owner(PgappOwnerSwitch *sw)
{
	Oid			owner;
	HeapTuple	tup;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(pgapp_schema_oid()));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for schema pgapp");
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&sw->saved_userid, &sw->saved_sec_context);
	SetUserIdAndSecContext(owner, sw->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
pgapp_restore_user(PgappOwnerSwitch *sw)
{
	SetUserIdAndSecContext(sw->saved_userid, sw->saved_sec_context);
}

/*
 * Run a read-only query with $1 = name (text) as the schema owner; the
 * caller is connected to SPI and reads SPI_tuptable.  Used to load
 * definitions whoever fires the trigger that needs them.
 */
void
pgapp_spi_select_as_owner(const char *sql, const char *name)
{
	PgappOwnerSwitch sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;

	args[0] = CStringGetTextDatum(name);
	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 1);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/*
 * Run a statement that writes pgapp's own tables as the schema owner; the
 * caller is connected to SPI.  The definition tables grant no write to
 * anyone else, so a definition changes only through a function that checked
 * the caller (ownership of the table it describes) and validated the input
 * first, as the caller.  Returns SPI's result code.
 */
int
pgapp_spi_execute_as_owner(const char *sql, int nargs, Oid *argtypes, Datum *args,
						   const char *nulls)
{
	PgappOwnerSwitch sw;
	int			ret;

	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, argtypes, args, nulls, false, 0);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	return ret;
}

char *
pgapp_arg_cstring(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", what));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * Refuse to run a feature whose shared memory is not attached.
 */
void
pgapp_require_shmem(const void *shared, const char *what)
{
	if (shared != NULL)
		return;
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("%s requires pgapp to be loaded via \"shared_preload_libraries\"", what),
			errhint("Add pgapp to \"shared_preload_libraries\" in postgresql.conf and restart the server."));
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

	for (int i = 0; i < lengthof(modules); i++)
	{
		const char *status = modules[i]->status ? modules[i]->status() : "ok";

		if (modules[i]->shmem_startup && strcmp(status, "not preloaded") == 0)
			shmem_ok = false;
		pgapp_json_set(mods, modules[i]->name, pgapp_json_string(status));
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

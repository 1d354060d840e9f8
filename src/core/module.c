/*-------------------------------------------------------------------------
 *
 * module.c
 *	  The module registry and the hooks that call the modules.
 *
 * pgapp.c registers each feature's PgappModule in order from _PG_init.  When
 * the library is preloaded, pgapp_module_install_hooks() chains the two
 * shared-memory hooks and ProcessUtility_hook, and those call every module's
 * request/startup/before_drop_database callback in registry order.  One
 * relcache callback, registered whether preloaded or not, tells every module
 * with a relcache_invalidate callback.  A module therefore never chains
 * hooks itself.
 *
 * The registry is a static array filled in _PG_init and only read after, so
 * it needs no lock.
 *
 * src/core/module.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/inval.h"

#include "core/module.h"

#define PGAPP_MAX_MODULES 16

bool		pgapp_preloaded = false;

static const PgappModule *modules[PGAPP_MAX_MODULES];
static int	nmodules = 0;
static bool relcache_registered = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static void module_shmem_request(void);
static void module_shmem_startup(void);
static void module_process_utility(PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree, ProcessUtilityContext context,
								   ParamListInfo params, QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);
static void module_relcache_callback(Datum arg, Oid relid);

void
pgapp_module_register(const PgappModule *module)
{
	if (nmodules >= PGAPP_MAX_MODULES)
		elog(ERROR, "too many pgapp modules");
	modules[nmodules++] = module;
	if (module->relcache_invalidate && !relcache_registered)
	{
		CacheRegisterRelcacheCallback(module_relcache_callback, (Datum) 0);
		relcache_registered = true;
	}
	if (module->init)
		module->init();
}

int
pgapp_module_count(void)
{
	return nmodules;
}

const PgappModule *
pgapp_module_get(int i)
{
	Assert(i >= 0 && i < nmodules);
	return modules[i];
}

void
pgapp_module_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = module_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = module_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = module_process_utility;
}

static void
module_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	for (int i = 0; i < nmodules; i++)
		if (modules[i]->shmem_request)
			modules[i]->shmem_request();
}

static void
module_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (int i = 0; i < nmodules; i++)
		if (modules[i]->shmem_startup)
			modules[i]->shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * DROP DATABASE: first let the modules send their background workers away
 * from the database (they would make a plain DROP DATABASE fail).
 */
static void
module_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					   ProcessUtilityContext context, ParamListInfo params,
					   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, DropdbStmt))
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) pstmt->utilityStmt)->dbname, true);

		if (OidIsValid(dboid))
			for (int i = 0; i < nmodules; i++)
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

static void
module_relcache_callback(Datum arg, Oid relid)
{
	for (int i = 0; i < nmodules; i++)
		if (modules[i]->relcache_invalidate)
			modules[i]->relcache_invalidate(relid);
}

void
pgapp_run_housekeeping(void)
{
	for (int i = 0; i < nmodules; i++)
		if (modules[i]->housekeeping)
			modules[i]->housekeeping();
}

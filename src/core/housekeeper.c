/*-------------------------------------------------------------------------
 *
 * housekeeper.c
 *	  The pgapp housekeeper: one background worker per server that runs the
 *	  modules' periodic work (core/module.h, PgappModule.housekeeping), such as
 *	  sweeping the rate limiter's expired buckets.
 *
 * It is registered from _PG_init when pgapp is preloaded, starts once the
 * server is consistent (so it also runs on a hot standby, whose shared
 * memory it keeps tidy), connects to no database (shared memory is all it
 * needs; the connection to no database makes it visible in
 * pg_stat_activity with backend_type "pgapp housekeeper"), and wakes
 * about once a second on its latch.  SIGHUP reloads the configuration;
 * SIGTERM stops it; the postmaster restarts it 10 seconds after a crash.
 *
 * src/core/housekeeper.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "core/module.h"
#include "core/util.h"

#define HOUSEKEEPER_NAP_MS 1000

PGDLLEXPORT void pgapp_housekeeper_main(Datum arg);

void
pgapp_register_housekeeper(void)
{
	BackgroundWorker bgw = {0};

	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = 10;
	strlcpy(bgw.bgw_library_name, "pgapp", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "pgapp_housekeeper_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "pgapp housekeeper", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "pgapp housekeeper", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

void
pgapp_housekeeper_main(Datum arg)
{
	MemoryContext round_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* no database: shared catalogs only, enough to appear in pg_stat_activity */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pgapp housekeeper");

	round_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp housekeeper",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 HOUSEKEEPER_NAP_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		old = MemoryContextSwitchTo(round_cxt);
		pgapp_run_housekeeping();
		MemoryContextSwitchTo(old);
		MemoryContextReset(round_cxt);
	}
}

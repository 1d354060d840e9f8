/*-------------------------------------------------------------------------
 *
 * jobs_launcher.c
 *	  The job queue's module entry (pgapp.c registers it) and the
 *	  launcher's part, which the pgapp housekeeper runs about once a second.
 *
 * Once the server accepts writes, the launcher starts the supervisor of
 * every database in pgapp.jobs_databases (one start at a time), so that
 * jobs due or orphaned before a restart are run without waiting for a new
 * enqueue; later, it restarts supervisors that crashed, after their backoff
 * (1 s doubling up to 60 s), if their database still exists.  A supervisor
 * leaves at once where pgapp is not installed, and is started again by the
 * next enqueue there.  The table of supervisors and its starts are
 * core/dbworker.c's.
 *
 * src/jobs/jobs_launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "core/dbworker.h"
#include "core/module.h"
#include "jobs.h"
#include "jobs_int.h"

static void
jobs_housekeeping(void)
{
	if (pgapp_jobs_shared == NULL)
		return;
	pgapp_dbworker_housekeeping(pgapp_jobs_supervisors);
}

/*
 * DROP DATABASE is coming (core/module.c): ask the database's supervisor
 * and workers to leave, and wait for them (at most 5 s; a job still running
 * then keeps its worker, and the DROP fails as for any other session).
 * They leave cleanly, so nothing restarts them; an enqueue in the database,
 * if it survives, starts its supervisor again.
 */
static void
jobs_before_drop_database(Oid dboid)
{
	if (pgapp_jobs_shared == NULL)
		return;
	pgapp_dbworker_before_drop_database(pgapp_jobs_supervisors, dboid);
}

static const char *
jobs_status(void)
{
	return pgapp_jobs_shared != NULL ? "ok" : "not preloaded";
}

const PgappModule pgapp_jobs_module = {
	.name = "jobs",
	.before_drop_database = jobs_before_drop_database,
	.shmem_request = pgapp_jobs_shmem_request,
	.shmem_startup = pgapp_jobs_shmem_startup,
	.status = jobs_status,
	.housekeeping = jobs_housekeeping,
};

/*-------------------------------------------------------------------------
 *
 * jobs_claim.c
 *	  A queue worker's claim: the due jobs of its queue, highest priority
 *	  first, locked with SKIP LOCKED and made executing in one transaction,
 *	  their attempt counted before they run (jobs_worker.c runs them).
 *
 * src/jobs/jobs_claim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "core/settings.h"
#include "jobs_int.h"

/*
 * The claim is pgapp._job_claim_due (sql/parts/81_jobs_external.sql), the
 * one every claimer uses, called in one statement that also reads the
 * queue: no row means the queue is gone; a paused queue claims nothing (n
 * = 0); a rate-limited one goes through pgapp._job_claim, which keeps the
 * token bucket.  (PL/pgSQL, so that its plan is kept for the session;
 * bench/jobs/RESULTS.md has what LANGUAGE sql cost.)  Run with search_path =
 * pg_catalog (set for the claim's transaction).
 */
#define CLAIM_COLUMNS \
	"c.id, c.worker::oid, c.owner, c.args," \
	" ROW(c.id, c.queue, c.worker, c.attempt, c.max_attempts, c.priority," \
	"     c.inserted_at, c.scheduled_at, c.errors)::pgapp.job_info, c.attempt"
static const char *const claim_sql =
	"WITH q AS ("
	"    SELECT q.paused, q.rate_limit IS NOT NULL AS limited, q.concurrency"
	"      FROM pgapp.queue AS q WHERE q.name = $1)"
	" SELECT q.paused, q.limited, q.concurrency, " CLAIM_COLUMNS
	"   FROM q LEFT JOIN LATERAL pgapp._job_claim_due($1,"
	"            CASE WHEN q.paused OR q.limited THEN 0 ELSE $2 END, $3, NULL) AS c ON true"
	"  ORDER BY c.priority, c.scheduled_at, c.id";
static const char *const limited_claim_sql =
	"SELECT false, true, (SELECT q.concurrency FROM pgapp.queue AS q WHERE q.name = $1), " CLAIM_COLUMNS
	"  FROM pgapp._job_claim($1, $2, $3, NULL) AS c"
	" ORDER BY c.priority, c.scheduled_at, c.id";

/*
 * The statement_timeout a worker function sets for itself (SET clause), in
 * ms, or pgapp.jobs_timeout.
 */
static int
worker_timeout(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	int			timeout = pgapp_jobs_timeout;

	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);

		if (!isnull)
		{
			ArrayType  *a = DatumGetArrayTypeP(config);
			Datum	   *items;
			int			n;

			deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &items, NULL, &n);
			for (int i = 0; i < n; i++)
			{
				char	   *item = TextDatumGetCString(items[i]);
				char	   *eq = strchr(item, '=');
				int			ms;

				if (eq != NULL && (size_t) (eq - item) == strlen("statement_timeout") &&
					strncmp(item, "statement_timeout", eq - item) == 0 &&
					parse_int(eq + 1, &ms, GUC_UNIT_MS, NULL))
					timeout = ms;
				pfree(item);
			}
		}
		ReleaseSysCache(tup);
	}
	return timeout;
}

/* A setting for the rest of the transaction. */
static void
set_local(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

/* Prepare the two claims for the session. */
static void
prepare_claims(SPIPlanPtr *plan, SPIPlanPtr *limited_plan)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};

	/*
	 * Its generic plan: the custom ones are the same plan (the claim index in
	 * its order, the primary key for the ids), yet the plan cache would make
	 * one at every claim (~0.6 ms), the generic plan's estimate being higher
	 * than theirs.
	 */
	*plan = SPI_prepare_cursor(claim_sql, 3, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (*plan == NULL || SPI_keepplan(*plan) != 0)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	*limited_plan = SPI_prepare(limited_claim_sql, 3, argtypes);
	if (*limited_plan == NULL || SPI_keepplan(*limited_plan) != 0)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
}

/*
 * The claimed jobs of the claim's result (SPI_tuptable), copied into cxt;
 * *cap gets the queue's concurrency.
 */
static List *
read_claimed(MemoryContext cxt, int *cap)
{
	List	   *jobs = NIL;
	Oid			last_worker = InvalidOid;
	int			last_timeout = 0;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old;
		ClaimedJob *j;
		Datum		id;

		if (i == 0)
			*cap = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		id = SPI_getbinval(tup, desc, 4, &isnull);
		if (isnull)
			continue;			/* nothing claimed */
		old = MemoryContextSwitchTo(cxt);
		j = palloc0(sizeof(ClaimedJob));
		j->id = DatumGetInt64(id);
		j->worker = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		j->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
		j->args = datumCopy(SPI_getbinval(tup, desc, 7, &isnull), false, -1);
		j->info = datumCopy(SPI_getbinval(tup, desc, 8, &isnull), false, -1);
		j->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		/* a batch's jobs mostly share their worker function */
		if (j->worker != last_worker)
		{
			last_worker = j->worker;
			last_timeout = worker_timeout(j->worker);
		}
		j->timeout_ms = last_timeout;
		jobs = lappend(jobs, j);
		MemoryContextSwitchTo(old);
	}
	return jobs;
}

/* Run one claim statement (SPI connected); false when the queue is gone. */
static bool
run_claim(SPIPlanPtr plan, Datum *values)
{
	int			ret;

	PG_TRY();
	{
		ret = SPI_execute_plan(plan, values, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		edata = CopyErrorData();
		MemoryContextSwitchTo(old);

		/*
		 * pgapp dropped (its tables with it), or the queue in a rate-limited
		 * claim
		 */
		if (edata->sqlerrcode != ERRCODE_UNDEFINED_OBJECT &&
			edata->sqlerrcode != ERRCODE_UNDEFINED_TABLE &&
			edata->sqlerrcode != ERRCODE_INVALID_SCHEMA_NAME &&
			edata->sqlerrcode != ERRCODE_UNDEFINED_FUNCTION)
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
		pgapp_jobs_worker_leave("its queue was dropped, or pgapp is not installed");
	}
	PG_END_TRY();
	return SPI_processed > 0;
}

/*
 * Claim a batch and commit.  Returns the jobs (in cxt), or NIL when none is
 * due; leaves when the queue is gone or pgapp is not installed.  *cap is
 * the queue's concurrency.
 *
 * The claim's commit does not wait for its WAL flush: the job starts
 * sooner.  A crash before the flush could lose the claim and the count of
 * the attempt that crashed; the running job's note (jobs_running.c) keeps
 * that count.
 */
List *
pgapp_jobs_claim_batch(MemoryContext cxt, const char *by, int n, bool *full, int *cap)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr limited_plan = NULL;
	Datum		values[3];
	List	   *jobs = NIL;
	int			ret;
	bool		found;
	bool		limited = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	set_local("search_path", "pg_catalog, pg_temp");
	set_local("synchronous_commit", "off");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pgapp jobs: claiming");
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (plan == NULL)
		prepare_claims(&plan, &limited_plan);
	values[0] = CStringGetTextDatum(pgapp_jobs_my_slot->queue);
	values[1] = Int32GetDatum(n);
	values[2] = CStringGetTextDatum(by);
	found = run_claim(plan, values);
	if (found)
	{
		bool		isnull;

		limited = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (limited)
			found = run_claim(limited_plan, values);
	}
	if (found)
		jobs = read_claimed(cxt, cap);
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (!found && !limited)
		pgapp_jobs_worker_leave("its queue was dropped, or pgapp is not installed");

	/*
	 * Busy before anyone is told: the supervisor counts idle workers as ready
	 * for the rest.  A full claim of more than one job means more is likely
	 * due; another worker (or the supervisor, when the queue has room for one
	 * more) takes it.  (A single job is what an idle queue's enqueue makes
	 * due, and that enqueue's commit told the others.)
	 */
	if (jobs != NIL)
		pgapp_jobs_set_state(JOBS_BUSY);
	*full = list_length(jobs) == n;
	if (*full && n > 1)
		pgapp_jobs_wake_queue(MyDatabaseId, pgapp_jobs_my_slot->queue, pgapp_jobs_my_slot, false, *cap, 1);
	return jobs;
}

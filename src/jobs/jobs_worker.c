/*-------------------------------------------------------------------------
 *
 * jobs_worker.c
 *	  A queue worker ("pgapp jobs worker"): claims batches of its queue's
 *	  due jobs and runs them.
 *
 * Its supervisor reserves a slot (jobs_int.h) naming the database and the
 * queue, and starts the worker with the slot's index and generation; a
 * worker whose slot has been given to another start leaves at once.
 *
 * One round:
 *	 1. claim due jobs (FOR UPDATE SKIP LOCKED) and commit: one at
 *		first, twice as many each time a claim comes back full, up to
 *		pgapp.jobs_batch_size and to about one commit interval of work at
 *		the queue's recent pace (a small backlog is shared by the queue's
 *		workers, a large one of quick jobs taken in large batches; a full
 *		claim also wakes another worker).  Their attempts are counted
 *		before they run, so a job that kills its process is not retried
 *		for ever: the claim commits without waiting for its flush, and the
 *		running job's note (jobs_running.c) covers a crash before it;
 *	 2. run each job in a subtransaction, as the role that enqueued it:
 *		its effects and its completion commit together, and a failing job
 *		only rolls back itself, then records its error (retryable with
 *		backoff, or discarded) in the same transaction.  Many quick jobs
 *		share a transaction (commits are what limits throughput); a
 *		transaction open for pgapp.jobs_commit_interval commits after its
 *		current job.
 * While a job runs, a 100 ms timer checks whether pgapp.cancel_job asked
 * for it (then the job is cancelled like a statement), and the worker
 * function's statement_timeout, or pgapp.jobs_timeout, limits it.
 *
 * With nothing due the worker waits on its latch (an enqueue's commit sets
 * it) and leaves after pgapp.jobs_idle_timeout.
 *
 * src/jobs_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "libpq/be-fsstubs.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "jobs_int.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "core/error.h"

#define CANCEL_CHECK_MS 100


static int	my_index = -1;
static TimeoutId cancel_timeout_id;
static volatile sig_atomic_t cancel_requested = false;

static void
release_slot(int code, Datum arg)
{
	JobsSlot   *s = pgapp_jobs_my_slot;

	if (s == NULL)
		return;
	LWLockAcquire(jobs_shared->lock, LW_EXCLUSIVE);
	if (s->pid == MyProcPid)
	{
		/*
		 * pid and job_id stay for the supervisor, which tells the job that
		 * was running (its attempt counts) from its batch-mates that had
		 * not started (theirs does not).
		 */
		s->state = JOBS_FREE;
		s->latch = NULL;
		pg_atomic_write_u64(&s->cancel_job, 0);
	}
	LWLockRelease(jobs_shared->lock);
	/*
	 * The note of a job still running stays: this exit may be the end of a
	 * server whose postmaster died, the claim's WAL never written.  Read
	 * after a later restart, a note whose attempt was counted changes
	 * nothing.
	 */
	pgapp_jobs_my_slot = NULL;
}

static void
set_state(JobsProcState state)
{
	JobsSlot   *s = pgapp_jobs_my_slot;

	if (s->state == state)
		return;
	LWLockAcquire(jobs_shared->lock, LW_EXCLUSIVE);
	s->state = state;
	s->since = GetCurrentTimestamp();
	LWLockRelease(jobs_shared->lock);
}

/* Leave on purpose: the supervisor does not count it as a crash. */
static void
leave(const char *why)
{
	pgapp_jobs_my_slot->clean_exit = true;
	ereport(DEBUG1, errmsg("pgapp jobs worker of queue \"%s\" leaves: %s",
						   pgapp_jobs_my_slot->queue, why));
	proc_exit(0);
}

/* Timer handler (signal context): is the running job to be cancelled? */
static void
cancel_check(void)
{
	JobsSlot   *s = pgapp_jobs_my_slot;
	uint64		job;

	if (s == NULL)
		return;
	job = pg_atomic_read_u64(&s->job_id);
	if (job != 0 && pg_atomic_read_u64(&s->cancel_job) == job)
	{
		cancel_requested = true;
		QueryCancelPending = true;
		InterruptPending = true;
		SetLatch(MyLatch);
	}
}

typedef struct ClaimedJob
{
	int64		id;
	int32		attempt;
	Oid			worker;
	Oid			owner;
	Datum		args;			/* jsonb */
	Datum		info;			/* pgapp.job_info */
	int			timeout_ms;		/* 0: none */
} ClaimedJob;

/*
 * The claim: the due jobs of the queue, highest priority first, locked
 * with SKIP LOCKED and made executing (or discarded when past their
 * discard_after), their attempt counted.  It is the same claim as
 * pgapp._job_claim's (which fetch_jobs and rate-limited queues use) in one
 * statement that also reads the queue: no row means the queue is gone; a
 * paused queue claims nothing; a rate-limited one goes through
 * pgapp._job_claim, which keeps the token bucket.  Keep the two in step.
 * Run with search_path = pg_catalog (set for the claim's transaction).
 */
#define CLAIM_COLUMNS \
	"c.id, c.worker::oid, c.owner, c.args," \
	" ROW(c.id, c.queue, c.worker, c.attempt, c.max_attempts, c.priority," \
	"     c.inserted_at, c.scheduled_at, c.errors)::pgapp.job_info, c.attempt"
static const char *const claim_sql =
	"WITH q AS ("
	"    SELECT q.paused, q.rate_limit IS NOT NULL AS limited, q.concurrency"
	"      FROM pgapp.queue AS q WHERE q.name = $1),"
	" picked AS ("
	"    SELECT j.id FROM pgapp.job AS j"
	"     WHERE j.queue = $1 AND j.claimable"
	"       AND j.scheduled_at <= statement_timestamp()"
	"       AND EXISTS (SELECT FROM q WHERE NOT q.paused AND NOT q.limited)"
	"     ORDER BY j.priority, j.scheduled_at, j.id"
	"     LIMIT $2"
	"       FOR UPDATE OF j SKIP LOCKED),"
	" claimed AS ("
	"    UPDATE pgapp.job AS j"
	"       SET state = CASE WHEN j.inserted_at + j.discard_after < statement_timestamp()"
	"                        THEN 'discarded' ELSE 'executing' END::pgapp.job_state,"
	"           discarded_at = CASE WHEN j.inserted_at + j.discard_after < statement_timestamp() THEN now() END,"
	"           attempt = j.attempt + CASE WHEN j.inserted_at + j.discard_after < statement_timestamp() THEN 0 ELSE 1 END,"
	"           attempted_at = statement_timestamp(), attempted_by = $3, lease = NULL, expires_at = NULL"
	"     WHERE j.id = ANY (ARRAY(SELECT picked.id FROM picked))"
	"    RETURNING j.*)"
	" SELECT q.paused, q.limited, q.concurrency, " CLAIM_COLUMNS
	"   FROM q LEFT JOIN claimed AS c ON c.state = 'executing'"
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
		/* pgapp dropped (its tables with it), or the queue in a rate-limited claim */
		if (edata->sqlerrcode != ERRCODE_UNDEFINED_OBJECT &&
			edata->sqlerrcode != ERRCODE_UNDEFINED_TABLE &&
			edata->sqlerrcode != ERRCODE_INVALID_SCHEMA_NAME &&
			edata->sqlerrcode != ERRCODE_UNDEFINED_FUNCTION)
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
		leave("its queue was dropped, or pgapp is not installed");
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
static List *
claim_batch(MemoryContext cxt, const char *by, int n, bool *full, int *cap)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr limited_plan = NULL;
	Datum		values[3];
	List	   *jobs = NIL;
	int			ret;
	bool		found;
	bool		limited = false;
	int			claimed = 0;
	Oid			last_worker = InvalidOid;
	int			last_timeout = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	set_local("search_path", "pg_catalog, pg_temp");
	set_local("synchronous_commit", "off");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pgapp jobs: claiming");
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (plan == NULL)
	{
		Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};

		/*
		 * Its generic plan: the custom ones are the same plan (the claim
		 * index in its order, the primary key for the ids), yet the plan
		 * cache would make one at every claim (~0.6 ms), the generic plan's
		 * estimate being higher than theirs.
		 */
		plan = SPI_prepare_cursor(claim_sql, 3, argtypes, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		limited_plan = SPI_prepare(limited_claim_sql, 3, argtypes);
		if (limited_plan == NULL || SPI_keepplan(limited_plan) != 0)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}
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
	for (uint64 i = 0; found && i < SPI_processed; i++)
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
		claimed++;
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (!found && !limited)
		leave("its queue was dropped, or pgapp is not installed");
	/*
	 * Busy before anyone is told: the supervisor counts idle workers as
	 * ready for the rest.  A full claim of more than one job means more is
	 * likely due; another worker (or the supervisor, when the queue has
	 * room for one more) takes it.  (A single job is what an idle queue's
	 * enqueue makes due, and that enqueue's commit told the others.)
	 */
	if (jobs != NIL)
		set_state(JOBS_BUSY);
	*full = claimed == n;
	if (*full && n > 1)
		pgapp_jobs_wake_queue(MyDatabaseId, pgapp_jobs_my_slot->queue, pgapp_jobs_my_slot, false, *cap, 1);
	return jobs;
}

/* The error of a failed job, as recorded in pgapp.job.errors. */
/*
 * Characters of a job's error message, detail, hint and context kept in
 * pgapp.job.errors: the job writes them (RAISE), and every attempt adds
 * its error to the row.
 */
#define JOB_ERROR_TEXT_CHARS 4096

static Datum
error_json(ErrorData *edata, bool cancelled)
{
	json_t	   *o = pgapp_json_object();
	Jsonb	   *jb;

	pgapp_json_set(o, "message", pgapp_json_string(edata->message ?
												   pga_truncate_for_message(edata->message, JOB_ERROR_TEXT_CHARS) :
												   "error"));
	pgapp_json_set(o, "sqlstate", pgapp_json_string(unpack_sql_state(edata->sqlerrcode)));
	if (edata->detail)
		pgapp_json_set(o, "detail", pgapp_json_string(pga_truncate_for_message(edata->detail, JOB_ERROR_TEXT_CHARS)));
	if (edata->hint)
		pgapp_json_set(o, "hint", pgapp_json_string(pga_truncate_for_message(edata->hint, JOB_ERROR_TEXT_CHARS)));
	if (edata->context)
		pgapp_json_set(o, "context", pgapp_json_string(pga_truncate_for_message(edata->context, JOB_ERROR_TEXT_CHARS)));
	if (cancelled)
		pgapp_json_set(o, "cancelled", pgapp_json_bool(true));
	jb = pgapp_json_to_jsonb(o);
	pgapp_json_free(o);
	return JsonbPGetDatum(jb);
}

/*
 * The jobs that succeeded in the open transaction: their completion is
 * written with one statement just before it commits (flush_completions).
 * Nobody else changes a job a pgapp worker has claimed (pgapp.cancel_job
 * only flags it and asks the worker), so the state read then is the one
 * the job ran in.
 */
typedef struct Completions
{
	MemoryContext cxt;			/* reset at each flush */
	int			n;
	int			cap;
	Datum	   *ids;
	Datum	   *results;
	bool	   *result_nulls;
	Datum	   *progress;
	bool	   *progress_nulls;
	Datum	   *at;
} Completions;

static Completions done;

static void
add_completion(int64 id, Datum result, bool isnull, double progress)
{
	MemoryContext old = MemoryContextSwitchTo(done.cxt);

	if (done.n == done.cap)
	{
		done.cap = Max(64, done.cap * 2);
		done.ids = done.ids ? repalloc(done.ids, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
		done.results = done.results ? repalloc(done.results, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
		done.result_nulls = done.result_nulls ? repalloc(done.result_nulls, sizeof(bool) * done.cap) : palloc(sizeof(bool) * done.cap);
		done.progress = done.progress ? repalloc(done.progress, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
		done.progress_nulls = done.progress_nulls ? repalloc(done.progress_nulls, sizeof(bool) * done.cap) : palloc(sizeof(bool) * done.cap);
		done.at = done.at ? repalloc(done.at, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
	}
	done.ids[done.n] = Int64GetDatum(id);
	done.results[done.n] = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(result));
	done.result_nulls[done.n] = isnull;
	done.progress[done.n] = Float8GetDatum(progress);
	done.progress_nulls[done.n] = progress < 0;
	done.at[done.n] = TimestampTzGetDatum(GetCurrentTimestamp());
	done.n++;
	MemoryContextSwitchTo(old);
}

static int
by_job_id(const void *a, const void *b)
{
	int64		x = DatumGetInt64(done.ids[*(const int *) a]);
	int64		y = DatumGetInt64(done.ids[*(const int *) b]);

	return (x > y) - (x < y);
}

/*
 * Write the completions of the open transaction (SPI connected): one
 * UPDATE that finds the rows by id (= ANY, an index scan whatever the
 * statistics say) and each row's values by a binary search of its id in
 * the sorted id array (width_bucket).
 */
static void
flush_completions(void)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];
	int			dims[1];
	int			lbs[1] = {1};
	int			ret;
	MemoryContext old;
	int		   *order;
	Datum	   *ids;
	Datum	   *results;
	bool	   *result_nulls;
	Datum	   *progress;
	bool	   *progress_nulls;
	Datum	   *at;

	if (done.n == 0)
		return;
	if (plan == NULL)
	{
		Oid			types[4] = {INT8ARRAYOID, JSONBARRAYOID, FLOAT8ARRAYOID, TIMESTAMPTZARRAYOID};

		plan = SPI_prepare_cursor("UPDATE pgapp.job AS j SET state = 'completed',"
								  "       completed_at = ($4)[pg_catalog.width_bucket(j.id, $1)],"
								  "       result = ($2)[pg_catalog.width_bucket(j.id, $1)],"
								  "       progress = ($3)[pg_catalog.width_bucket(j.id, $1)], expires_at = NULL"
								  " WHERE j.id OPERATOR(pg_catalog.=) ANY ($1)"
								  "   AND j.state OPERATOR(pg_catalog.=) 'executing'",
								  4, types, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}
	old = MemoryContextSwitchTo(done.cxt);
	order = palloc(sizeof(int) * done.n);
	for (int i = 0; i < done.n; i++)
		order[i] = i;
	qsort(order, done.n, sizeof(int), by_job_id);
	ids = palloc(sizeof(Datum) * done.n);
	results = palloc(sizeof(Datum) * done.n);
	result_nulls = palloc(sizeof(bool) * done.n);
	progress = palloc(sizeof(Datum) * done.n);
	progress_nulls = palloc(sizeof(bool) * done.n);
	at = palloc(sizeof(Datum) * done.n);
	for (int i = 0; i < done.n; i++)
	{
		ids[i] = done.ids[order[i]];
		results[i] = done.results[order[i]];
		result_nulls[i] = done.result_nulls[order[i]];
		progress[i] = done.progress[order[i]];
		progress_nulls[i] = done.progress_nulls[order[i]];
		at[i] = done.at[order[i]];
	}
	dims[0] = done.n;
	values[0] = PointerGetDatum(construct_array(ids, done.n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_md_array(results, result_nulls, 1, dims, lbs,
												   JSONBOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(progress, progress_nulls, 1, dims, lbs,
												   FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(at, done.n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	MemoryContextSwitchTo(old);
	PushActiveSnapshot(GetTransactionSnapshot());
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	PopActiveSnapshot();
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	done.n = 0;
	done.cap = 0;
	done.ids = done.results = done.progress = done.at = NULL;
	done.result_nulls = done.progress_nulls = NULL;
	MemoryContextReset(done.cxt);
}

/* Has pgapp.cancel_job asked for the job?  (SPI connected) */
static bool
job_cancelled(int64 id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		cancelled = false;
	int			ret;

	PushActiveSnapshot(GetTransactionSnapshot());
	ret = SPI_execute_with_args("SELECT cancel_requested_at IS NOT NULL FROM pgapp.job"
								" WHERE id OPERATOR(pg_catalog.=) $1",
								1, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;

		cancelled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	PopActiveSnapshot();
	return cancelled;
}

/*
 * A job's worker is checked again when it runs, as its owner: EXECUTE may
 * have been revoked since the enqueue, and a function in a temporary schema
 * (another session's pg_temp) is no worker.
 */
static Oid	checked_worker = InvalidOid;	/* and its owner: passed in this batch */
static Oid	checked_owner = InvalidOid;

static void
check_worker(ClaimedJob *j)
{
	Oid			nsp;

	if (j->worker == checked_worker && j->owner == checked_owner)
		return;
	nsp = get_func_namespace(j->worker);

	if (!OidIsValid(nsp))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("the worker function of job %lld (OID %u) no longer exists", (long long) j->id, j->worker));
	if (isAnyTempNamespace(nsp))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("job worker %s is a temporary function", format_procedure(j->worker)),
				errdetail("A temporary function belongs to one session; a job runs in a worker process."));
	if (pg_proc_aclcheck(j->worker, j->owner, ACL_EXECUTE) != ACLCHECK_OK)
	{
		char	   *owner = GetUserNameFromId(j->owner, true);

		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for function %s", format_procedure(j->worker)),
				errdetail("Job %lld runs as role %s, which may no longer execute its worker.",
						  (long long) j->id, owner ? owner : "(dropped)"));
	}
	checked_worker = j->worker;
	checked_owner = j->owner;
}

/*
 * Session state a job leaves in the worker process is not for the next
 * job, which may be another role's: prepared statements, the sequences'
 * currval/lastval, temporary objects, and large-object descriptors (lo_open
 * checks the opener's rights once; a descriptor left open would let the
 * next job of the batch, in the same transaction, read or write that large
 * object by its number).  The job's security-restricted operation refuses
 * to make most of them (and LISTEN); what it could make anyway is dropped
 * here.
 * Its settings and advisory locks are undone by run_job itself.
 */
static void
forget_session_state(void)
{
	Oid			temp_nsp;
	Oid			temp_toast_nsp;

	DropAllPreparedStatements();
	ResetSequenceCaches();
	/* closes every descriptor, as a commit would; the data stay written */
	AtEOXact_LargeObject(true);
	GetTempNamespaceState(&temp_nsp, &temp_toast_nsp);
	if (OidIsValid(temp_nsp))
		ResetTempTableNamespace();
}

/* Run one claimed job inside the open transaction (SPI connected). */
static void
run_job(ClaimedJob *j, SPIPlanPtr fail_plan, MemoryContext job_cxt)
{
	JobsSlot   *s = pgapp_jobs_my_slot;
	PgappSubxact sx;
	Oid			saved_user;
	int			saved_sec;
	MemoryContext old = MemoryContextSwitchTo(job_cxt);
	char		activity[128];

	/* cancelled while it waited its turn: record it so, and skip it */
	for (int k = 0; k < JOBS_CANCEL_RING; k++)
		if ((int64) pg_atomic_read_u64(&s->cancel_ring[k]) == j->id && job_cancelled(j->id))
		{
			Datum		values[2];
			int			ret;

			values[0] = Int64GetDatum(j->id);
			values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"message\": \"cancelled before it started\"}"));
			PushActiveSnapshot(GetTransactionSnapshot());
			ret = SPI_execute_plan(fail_plan, values, NULL, false, 0);
			PopActiveSnapshot();
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
			MemoryContextSwitchTo(old);
			MemoryContextReset(job_cxt);
			return;
		}
	snprintf(activity, sizeof(activity), "pgapp jobs: job %lld", (long long) j->id);
	pgstat_report_activity(STATE_RUNNING, activity);
	SpinLockAcquire(&s->mutex);
	s->progress = -1;
	s->progress_message[0] = '\0';
	SpinLockRelease(&s->mutex);
	s->job_started = GetCurrentTimestamp();
	pg_atomic_write_u64(&s->job_id, (uint64) j->id);
	pgapp_jobs_running_set(my_index, j->id, j->attempt);
	cancel_requested = false;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		FmgrInfo	flinfo;
		LOCAL_FCINFO(fc, 2);
		Datum		result;
		double		progress;
		/* what the job sets (SET, SET LOCAL, set_config) ends with it */
		int			guc_level = NewGUCNestLevel();

		if (j->timeout_ms > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, j->timeout_ms);
		/* the job runs as the role that enqueued it */
		if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(j->owner)))
			ereport(ERROR,
					errcode(ERRCODE_UNDEFINED_OBJECT),
					errmsg("the role that enqueued job %lld (OID %u) no longer exists", (long long) j->id, j->owner),
					errhint("Its jobs cannot run; cancel them, or re-enqueue them as another role."));
		/*
		 * ... in a security-restricted operation, as PostgreSQL runs a table
		 * owner's code during maintenance: no temporary objects, no WITH
		 * HOLD cursor, no SET ROLE, no LISTEN outlive it in this process.
		 */
		SetUserIdAndSecContext(j->owner,
							   saved_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
		check_worker(j);
		fmgr_info(j->worker, &flinfo);
		InitFunctionCallInfoData(*fc, &flinfo, 2, InvalidOid, NULL, NULL);
		fc->args[0].value = j->args;
		fc->args[0].isnull = false;
		fc->args[1].value = j->info;
		fc->args[1].isnull = false;
		/* a snapshot for the job's own time only (an abort pops it) */
		PushActiveSnapshot(GetTransactionSnapshot());
		result = FunctionCallInvoke(fc);

		/*
		 * Its result is stored in pgapp.job as its args are: bounded by the
		 * same setting (uncompressed; a TOAST pointer is measured by what
		 * it points to).
		 */
		if (!fc->isnull && pgapp_jobs_max_args_size > 0 &&
			toast_raw_datum_size(result) > (Size) pgapp_jobs_max_args_size * 1024)
			ereport(ERROR,
					errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					errmsg("job result is too large: %zu bytes (at most %d)",
						   toast_raw_datum_size(result), pgapp_jobs_max_args_size * 1024),
					errhint("Store large results in a table and return their key, or raise pgapp.jobs_max_args_size."));

		/*
		 * Nothing the job armed may run after it, as the worker's role: a
		 * security-restricted operation defers no trigger (PostgreSQL raises
		 * 42501 at the end of the statement that would), so none is pending
		 * here; should one be, it fires now, as the owner, or fails the
		 * job.  The cursors the job left open are closed.
		 */
		AfterTriggerFireDeferred();
		PortalHashTableDeleteAll();
		/* from here on, a cancel is too late for this job */
		pg_atomic_write_u64(&s->job_id, 0);
		SetUserIdAndSecContext(saved_user, saved_sec);
		if (j->timeout_ms > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);

		SpinLockAcquire(&s->mutex);
		progress = s->progress;
		SpinLockRelease(&s->mutex);
		PopActiveSnapshot();
		AtEOXact_GUC(false, guc_level);
		pgapp_subxact_commit(&sx);
		/* its completion is written with the others' before the commit */
		add_completion(j->id, result, fc->isnull, progress);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		Datum		values[2];
		int			ret;

		/*
		 * No more cancels for this job: the cancel timer must not interrupt
		 * the recording of its end below (that would end the worker).
		 */
		pg_atomic_write_u64(&s->job_id, 0);
		if (j->timeout_ms > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		SetUserIdAndSecContext(saved_user, saved_sec);
		MemoryContextSwitchTo(job_cxt);
		edata = pgapp_subxact_abort(&sx);
		QueryCancelPending = false;
		values[0] = Int64GetDatum(j->id);
		values[1] = error_json(edata, cancel_requested);
		/* recorded as failed, or, when cancel_job asked for it, as cancelled */
		PushActiveSnapshot(GetTransactionSnapshot());
		ret = SPI_execute_plan(fail_plan, values, NULL, false, 0);
		PopActiveSnapshot();
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	PG_END_TRY();
	/*
	 * Session-level advisory locks the job took (pg_advisory_lock) are not
	 * for the worker process to keep: they go with the job.  Those of its
	 * transaction stay until the transaction commits.
	 */
	LockReleaseSession(USER_LOCKMETHOD);
	forget_session_state();
	pgapp_jobs_running_clear(my_index);
	pg_atomic_write_u64(&s->job_id, 0);
	pg_atomic_write_u64(&s->cancel_job, 0);
	pg_atomic_fetch_add_u64(&s->jobs_done, 1);
	/* a cancel that came after the job: not for the next one */
	QueryCancelPending = false;
	cancel_requested = false;
	MemoryContextSwitchTo(old);
	MemoryContextReset(job_cxt);
}

static void
begin_run(void)
{
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* a worker's EXECUTE is checked again in each transaction */
	checked_worker = InvalidOid;
	/*
	 * No snapshot is held across the jobs: each statement takes its own, so
	 * the xmin horizon moves on between jobs and the claim index's entries
	 * of claimed jobs can be pruned while the batch runs.
	 */
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
}

static void
end_run(void)
{
	int			ret;

	flush_completions();
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	CommitTransactionCommand();
}

/*
 * Run a claimed batch.  The jobs' effects and completions commit together,
 * in one transaction for many short jobs; once a transaction has been open
 * for pgapp.jobs_commit_interval, it commits after the current job and the
 * next ones go on in a new one, so that a slow job does not keep the locks
 * of the quick ones before it, and before a job whose owner is not the
 * previous job's, so that jobs of two roles never share a transaction.
 * Returns how long the jobs took (in us), the commits not counted.
 */
static int64
run_batch(List *jobs, MemoryContext job_cxt)
{
	static SPIPlanPtr fail_plan = NULL;
	ListCell   *lc;
	TimestampTz began;
	int64		job_time = 0;
	Oid			last_owner = InvalidOid;

	begin_run();
	began = GetCurrentTimestamp();
	/* every 100 ms while the batch runs: is the running job to be cancelled? */
	enable_timeout_every(cancel_timeout_id, TimestampTzPlusMilliseconds(began, CANCEL_CHECK_MS),
						 CANCEL_CHECK_MS);
	if (fail_plan == NULL)
	{
		Oid			ftypes[2] = {INT8OID, JSONBOID};

		fail_plan = SPI_prepare("SELECT pgapp._job_record_failure($1, $2)", 2, ftypes);
		if (fail_plan == NULL || SPI_keepplan(fail_plan) != 0)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}
	foreach(lc, jobs)
	{
		ClaimedJob *j = (ClaimedJob *) lfirst(lc);
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		now = GetCurrentTimestamp();

		/*
		 * Another role's job starts in a transaction of its own: what a job
		 * leaves in its transaction (SET CONSTRAINTS, transaction advisory
		 * locks, pending notifications) is not for another role's job.
		 */
		if (TimestampDifferenceExceeds(began, now, pgapp_jobs_commit_interval) ||
			(OidIsValid(last_owner) && j->owner != last_owner))
		{
			end_run();
			begin_run();
			began = now = GetCurrentTimestamp();
		}
		last_owner = j->owner;
		run_job(j, fail_plan, job_cxt);
		job_time += GetCurrentTimestamp() - now;
	}
	disable_timeout(cancel_timeout_id, false);
	QueryCancelPending = false;
	end_run();
	pgstat_report_activity(STATE_IDLE, NULL);
	return job_time;
}

void
pgapp_jobs_worker_main(Datum arg)
{
	uint32		generation;
	Oid			dboid = InvalidOid;
	JobsSlot   *s;
	char		by[64];
	MemoryContext batch_cxt;
	MemoryContext job_cxt;
	TimestampTz idle_since;
	int			claim_size = 1;
	int			share = 0;		/* of the backlog it was started for */
	int			cap = 0;
	int64		job_usecs = 0;	/* how long a job takes, moving average */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_index = DatumGetInt32(arg);
	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(uint32));
	if (jobs_shared == NULL || my_index < 0 || my_index >= jobs_shared->nslots)
		proc_exit(0);
	s = &jobs_shared->slots[my_index];
	LWLockAcquire(jobs_shared->lock, LW_EXCLUSIVE);
	if (s->state == JOBS_STARTING && s->generation == generation)
	{
		s->state = JOBS_IDLE;
		s->pid = MyProcPid;
		s->latch = MyLatch;
		s->since = GetCurrentTimestamp();
		dboid = s->dboid;
		share = s->first_claim;
		pgapp_jobs_my_slot = s;
	}
	LWLockRelease(jobs_shared->lock);
	if (pgapp_jobs_my_slot == NULL)
		proc_exit(0);			/* the slot went to another start */
	before_shmem_exit(release_slot, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pgapp jobs worker");
	cancel_timeout_id = RegisterTimeout(USER_TIMEOUT, cancel_check);
	snprintf(by, sizeof(by), "pgapp worker %d", MyProcPid);

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs batch", ALLOCSET_DEFAULT_SIZES);
	job_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs job", ALLOCSET_DEFAULT_SIZES);
	done.cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs completions", ALLOCSET_DEFAULT_SIZES);
	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		List	   *jobs;
		bool		full;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (s->stop_requested)
			leave("its supervisor asked it to (lower concurrency, or the database left pgapp.jobs_databases)");
		ResetLatch(MyLatch);
		jobs = claim_batch(batch_cxt, by, claim_size, &full, &cap);
		/*
		 * Claims start at one job and double while they come back full, up
		 * to pgapp.jobs_batch_size: a small backlog is shared by the queue's
		 * workers, a large one is taken in large batches.
		 */
		claim_size = full ? Min(claim_size * 2, Max(pgapp_jobs_batch_size, 1)) : 1;
		/*
		 * A worker the supervisor started for a backlog takes its share of
		 * it (see below: no more than the pace allows) once its first job
		 * showed the pace, rather than doubling up to it.
		 */
		if (full && share > claim_size)
			claim_size = Min(share, Max(pgapp_jobs_batch_size, 1));
		share = 0;
		if (jobs != NIL)
		{
			int64		per_job;

			set_state(JOBS_BUSY);
			/*
			 * ... and hold about one transaction's worth of work
			 * (pgapp.jobs_commit_interval, at least 50 ms), by how long the
			 * queue's jobs have been taking: quick jobs go in large batches,
			 * slow ones a few at a time, so that jobs claimed by a busy
			 * worker do not wait while another worker is idle.  The jobs'
			 * own time: a batch's commit costs the same for one job or a
			 * thousand, and would make a first batch of one look slow.
			 */
			per_job = run_batch(jobs, job_cxt) / list_length(jobs);
			per_job = Max(per_job, 1);
			job_usecs = job_usecs == 0 ? per_job : (3 * job_usecs + per_job) / 4;
			claim_size = Min(claim_size,
							 Max(1, Max(pgapp_jobs_commit_interval, 50) * (int64) 1000 / job_usecs));
			MemoryContextReset(batch_cxt);
			idle_since = GetCurrentTimestamp();
			continue;
		}
		/* idle: mark it before the next claim, so a commit from now on wakes us */
		set_state(JOBS_IDLE);
		if (pgapp_jobs_idle_timeout > 0 &&
			TimestampDifferenceExceeds(idle_since, GetCurrentTimestamp(), pgapp_jobs_idle_timeout * 1000))
			leave("idle");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pgapp_jobs_idle_timeout > 0 ? Min(pgapp_jobs_idle_timeout * 1000L, 1000L) : 1000L,
						 PG_WAIT_EXTENSION);
	}
}

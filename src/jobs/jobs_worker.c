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
 * src/jobs/jobs_worker.c
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

#include "core/error.h"
#include "core/json_util.h"
#include "core/settings.h"
#include "core/util.h"
#include "jobs_int.h"

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
	LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
	if (s->pid == MyProcPid)
	{
		/*
		 * pid and job_id stay for the supervisor, which tells the job that
		 * was running (its attempt counts) from its batch-mates that had not
		 * started (theirs does not).
		 */
		s->state = JOBS_FREE;
		s->latch = NULL;
		pg_atomic_write_u64(&s->cancel_job, 0);
	}
	LWLockRelease(pgapp_jobs_shared->lock);

	/*
	 * The note of a job still running stays: this exit may be the end of a
	 * server whose postmaster died, the claim's WAL never written.  Read
	 * after a later restart, a note whose attempt was counted changes
	 * nothing.
	 */
	pgapp_jobs_my_slot = NULL;
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
static Oid	checked_worker = InvalidOid;	/* and its owner: passed in this
											 * batch */
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

/*
 * Cancelled while it waited its turn in the batch: record it so (SPI
 * connected) and return true; the caller skips it.
 */
static bool
cancelled_before_start(ClaimedJob *j, SPIPlanPtr fail_plan)
{
	JobsSlot   *s = pgapp_jobs_my_slot;

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
			return true;
		}
	return false;
}

/* The job starts: its slot and its crash note say so. */
static void
note_job_start(ClaimedJob *j)
{
	JobsSlot   *s = pgapp_jobs_my_slot;
	char		activity[128];

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
}

/*
 * Call the job's worker function as the role that enqueued it, in a
 * security-restricted operation (the caller's subtransaction open, its
 * snapshot pushed by us and popped by the caller or the abort); returns
 * its result (*isnull set).
 */
static Datum
invoke_job(ClaimedJob *j, int saved_sec, bool *isnull)
{
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fc, 2);
	Datum		result;

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
	 * owner's code during maintenance: no temporary objects, no WITH HOLD
	 * cursor, no SET ROLE, no LISTEN outlive it in this process.
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
	*isnull = fc->isnull;

	/*
	 * Its result is stored in pgapp.job as its args are: bounded by the same
	 * setting (uncompressed; a TOAST pointer is measured by what it points
	 * to).
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
	 * 42501 at the end of the statement that would), so none is pending here;
	 * should one be, it fires now, as the owner, or fails the job. The
	 * cursors the job left open are closed.
	 */
	AfterTriggerFireDeferred();
	PortalHashTableDeleteAll();
	return result;
}

/*
 * The job failed (its subtransaction is still to abort): record it as
 * failed, or, when cancel_job asked for it, as cancelled.
 */
static void
record_failure(ClaimedJob *j, PgappSubxact *sx, SPIPlanPtr fail_plan)
{
	ErrorData  *edata;
	Datum		values[2];
	int			ret;

	edata = pgapp_subxact_abort(sx);
	QueryCancelPending = false;
	values[0] = Int64GetDatum(j->id);
	values[1] = error_json(edata, cancel_requested);
	PushActiveSnapshot(GetTransactionSnapshot());
	ret = SPI_execute_plan(fail_plan, values, NULL, false, 0);
	PopActiveSnapshot();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
}

/* After a job, whatever its end: nothing of it stays for the next one. */
static void
note_job_end(void)
{
	JobsSlot   *s = pgapp_jobs_my_slot;

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

	if (cancelled_before_start(j, fail_plan))
	{
		MemoryContextSwitchTo(old);
		MemoryContextReset(job_cxt);
		return;
	}
	note_job_start(j);
	GetUserIdAndSecContext(&saved_user, &saved_sec);
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		bool		isnull;
		Datum		result;
		double		progress;

		/* what the job sets (SET, SET LOCAL, set_config) ends with it */
		int			guc_level = NewGUCNestLevel();

		result = invoke_job(j, saved_sec, &isnull);
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
		pgapp_jobs_add_completion(j->id, result, isnull, progress);
	}
	PG_CATCH();
	{
		/*
		 * No more cancels for this job: the cancel timer must not interrupt
		 * the recording of its end below (that would end the worker).
		 */
		pg_atomic_write_u64(&s->job_id, 0);
		if (j->timeout_ms > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		SetUserIdAndSecContext(saved_user, saved_sec);
		MemoryContextSwitchTo(job_cxt);
		record_failure(j, &sx, fail_plan);
	}
	PG_END_TRY();
	note_job_end();
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
	 * the xmin horizon moves on between jobs and the claim index's entries of
	 * claimed jobs can be pruned while the batch runs.
	 */
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
}

static void
end_run(void)
{
	int			ret;

	pgapp_jobs_flush_completions();
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

/*
 * Take the slot the supervisor reserved (index, generation); returns the
 * database, and in *share the backlog share the worker was started for.
 * Leaves when the slot went to another start.
 */
static Oid
attach_slot(uint32 generation, int *share)
{
	JobsSlot   *s;
	Oid			dboid = InvalidOid;

	if (pgapp_jobs_shared == NULL || my_index < 0 || my_index >= pgapp_jobs_shared->nslots)
		proc_exit(0);
	s = &pgapp_jobs_shared->slots[my_index];
	LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
	if (s->state == JOBS_STARTING && s->generation == generation)
	{
		s->state = JOBS_IDLE;
		s->pid = MyProcPid;
		s->latch = MyLatch;
		s->since = GetCurrentTimestamp();
		dboid = s->dboid;
		*share = s->first_claim;
		pgapp_jobs_my_slot = s;
	}
	LWLockRelease(pgapp_jobs_shared->lock);
	if (pgapp_jobs_my_slot == NULL)
		proc_exit(0);			/* the slot went to another start */
	before_shmem_exit(release_slot, (Datum) 0);
	return dboid;
}

/* Claim and run batches until told to leave, or idle for too long. */
static void
work(const char *by, int share)
{
	JobsSlot   *s = pgapp_jobs_my_slot;
	MemoryContext batch_cxt;
	MemoryContext job_cxt;
	TimestampTz idle_since;
	int			claim_size = 1;
	int			cap = 0;
	int64		job_usecs = 0;	/* how long a job takes, moving average */

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs batch", ALLOCSET_DEFAULT_SIZES);
	job_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs job", ALLOCSET_DEFAULT_SIZES);
	pgapp_jobs_completions_init();
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
			pgapp_jobs_worker_leave("its supervisor asked it to (lower concurrency, or the database left pgapp.jobs_databases)");
		ResetLatch(MyLatch);
		jobs = pgapp_jobs_claim_batch(batch_cxt, by, claim_size, &full, &cap);

		/*
		 * Claims start at one job and double while they come back full, up to
		 * pgapp.jobs_batch_size: a small backlog is shared by the queue's
		 * workers, a large one is taken in large batches.
		 */
		claim_size = full ? Min(claim_size * 2, Max(pgapp_jobs_batch_size, 1)) : 1;

		/*
		 * A worker the supervisor started for a backlog takes its share of it
		 * (see below: no more than the pace allows) once its first job showed
		 * the pace, rather than doubling up to it.
		 */
		if (full && share > claim_size)
			claim_size = Min(share, Max(pgapp_jobs_batch_size, 1));
		share = 0;
		if (jobs != NIL)
		{
			int64		per_job;

			pgapp_jobs_set_state(JOBS_BUSY);

			/*
			 * ... and hold about one transaction's worth of work
			 * (pgapp.jobs_commit_interval, at least 50 ms), by how long the
			 * queue's jobs have been taking: quick jobs go in large batches,
			 * slow ones a few at a time, so that jobs claimed by a busy
			 * worker do not wait while another worker is idle.  The jobs' own
			 * time: a batch's commit costs the same for one job or a
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

		/*
		 * idle: mark it before the next claim, so a commit from now on wakes
		 * us
		 */
		pgapp_jobs_set_state(JOBS_IDLE);
		if (pgapp_jobs_idle_timeout > 0 &&
			TimestampDifferenceExceeds(idle_since, GetCurrentTimestamp(), pgapp_jobs_idle_timeout * 1000))
			pgapp_jobs_worker_leave("idle");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pgapp_jobs_idle_timeout > 0 ? Min(pgapp_jobs_idle_timeout * 1000L, 1000L) : 1000L,
						 PG_WAIT_EXTENSION);
	}
}

void
pgapp_jobs_worker_main(Datum arg)
{
	uint32		generation;
	Oid			dboid;
	char		by[64];
	int			share = 0;		/* of the backlog it was started for */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_index = DatumGetInt32(arg);
	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(uint32));
	dboid = attach_slot(generation, &share);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pgapp jobs worker");
	cancel_timeout_id = RegisterTimeout(USER_TIMEOUT, cancel_check);
	snprintf(by, sizeof(by), "pgapp worker %d", MyProcPid);
	work(by, share);
}

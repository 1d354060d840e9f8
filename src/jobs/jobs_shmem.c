/*-------------------------------------------------------------------------
 *
 * jobs_shmem.c
 *	  The job queue's shared memory: supervisors and worker slots
 *	  (jobs_int.h), the wake-ups and interrupts sent at commit, progress
 *	  reports from inside a job, the pgapp.workers view, and the launcher's
 *	  part, run by the pgapp housekeeper.
 *
 * Wake-ups are hints: a transaction that makes work due calls
 * pgapp._job_wake_workers(queue); at its commit, an idle worker of that
 * queue gets its latch set, or, when none is idle, the database's
 * supervisor, which starts workers up to the queue's concurrency.  Workers
 * and supervisors always re-read the tables, so an early, late or lost
 * wake-up costs latency, never a job.
 *
 * pgapp.cancel_job of a running job calls pgapp._job_interrupt(id); at
 * commit, the slot running that job is told, and its worker cancels the
 * job within 100 ms (jobs_worker.c).
 *
 * src/jobs_shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/varlena.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "jobs_int.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"

#define SUPERVISOR_START_RETRY_USECS (10 * USECS_PER_SEC)
#define SUPERVISOR_BACKOFF_MAX_USECS (60 * USECS_PER_SEC)

JobsShared *jobs_shared = NULL;

/*
 * May pgapp run jobs in this database?  pgapp.jobs_databases lists the names
 * (comma-separated); empty means every database.
 */
bool
pgapp_jobs_database_allowed(const char *dbname)
{
	char	   *copy;
	List	   *names;
	ListCell   *lc;
	bool		allowed = false;

	if (pgapp_jobs_databases == NULL || pgapp_jobs_databases[0] == '\0')
		return true;
	if (dbname == NULL)
		return false;
	copy = pstrdup(pgapp_jobs_databases);
	if (!SplitIdentifierString(copy, ',', &names))
		return false;			/* rejected by the check hook; not reached */
	foreach(lc, names)
	{
		if (strcmp((char *) lfirst(lc), dbname) == 0)
			allowed = true;
	}
	list_free(names);
	pfree(copy);
	return allowed;
}

/* This process's slot when it is a queue worker (jobs_worker.c sets it). */
JobsSlot   *pgapp_jobs_my_slot = NULL;

static Size
jobs_shmem_size(void)
{
	return add_size(offsetof(JobsShared, slots),
					mul_size(sizeof(JobsSlot), pgapp_jobs_max_workers));
}

void
pgapp_jobs_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(jobs_shmem_size()));
	RequestNamedLWLockTranche("pgapp jobs", 1);
}

/* Caller holds AddinShmemInitLock. */
void
pgapp_jobs_shmem_startup(void)
{
	bool		found;

	jobs_shared = ShmemInitStruct("pgapp jobs", jobs_shmem_size(), &found);
	if (found)
		return;
	memset(jobs_shared, 0, jobs_shmem_size());
	jobs_shared->lock = &(GetNamedLWLockTranche("pgapp jobs"))->lock;
	jobs_shared->nslots = pgapp_jobs_max_workers;
	for (int i = 0; i < JOBS_MAX_DATABASES; i++)
		jobs_shared->databases[i].state = JOBS_FREE;
	for (int i = 0; i < jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &jobs_shared->slots[i];

		s->state = JOBS_FREE;
		pg_atomic_init_u64(&s->job_id, 0);
		pg_atomic_init_u64(&s->cancel_job, 0);
		pg_atomic_init_u64(&s->jobs_done, 0);
		pg_atomic_init_u32(&s->cancel_next, 0);
		for (int k = 0; k < JOBS_CANCEL_RING; k++)
			pg_atomic_init_u64(&s->cancel_ring[k], 0);
		SpinLockInit(&s->mutex);
		s->progress = -1;
	}
	/* the postmaster, at start and after a crash: what was running then */
	if (!IsUnderPostmaster && IsPostmasterEnvironment)
		pgapp_jobs_running_startup(jobs_shared->nslots);
}

static const char *
jobs_status(void)
{
	return jobs_shared != NULL ? "ok" : "not preloaded";
}

/*
 * DROP DATABASE is coming (pgapp.c): ask the database's supervisor and
 * workers to leave, and wait for them (at most 5 s; a job still running
 * then keeps its worker, and the DROP fails as for any other session).
 * They leave cleanly, so nothing restarts them; an enqueue in the
 * database, if it survives, starts its supervisor again.
 */
static void
jobs_before_drop_database(Oid dboid)
{
	if (jobs_shared == NULL)
		return;
	for (int tries = 0; tries < 500; tries++)
	{
		bool		present = false;

		LWLockAcquire(jobs_shared->lock, LW_SHARED);
		for (int i = 0; i < JOBS_MAX_DATABASES; i++)
		{
			JobsDatabase *db = &jobs_shared->databases[i];

			if (db->dboid == dboid && db->state != JOBS_FREE)
			{
				present = true;
				db->stop_requested = true;
				if (db->latch)
					SetLatch(db->latch);
			}
		}
		for (int i = 0; i < jobs_shared->nslots; i++)
		{
			JobsSlot   *s = &jobs_shared->slots[i];

			if (s->dboid == dboid && s->state != JOBS_FREE)
			{
				present = true;
				s->stop_requested = true;
				if (s->latch)
					SetLatch(s->latch);
			}
		}
		LWLockRelease(jobs_shared->lock);
		if (!present)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

const PgappModule pgapp_jobs_module = {
	.name = "jobs",
	.before_drop_database = jobs_before_drop_database,
	.shmem_request = pgapp_jobs_shmem_request,
	.shmem_startup = pgapp_jobs_shmem_startup,
	.status = jobs_status,
	.housekeeping = pgapp_jobs_housekeeping,
};

/* ---------------------------------------------------------------------
 * Supervisors
 * ---------------------------------------------------------------------
 */

/* The entry of a database, or NULL.  Caller holds the lock. */
JobsDatabase *
pgapp_jobs_database(Oid dboid)
{
	for (int i = 0; i < JOBS_MAX_DATABASES; i++)
		if (jobs_shared->databases[i].dboid == dboid)
			return &jobs_shared->databases[i];
	return NULL;
}

static bool
register_supervisor(Oid dboid)
{
	BackgroundWorker bgw = {0};

	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "pgapp", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "pgapp_jobs_supervisor_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "pgapp jobs supervisor for database %u", dboid);
	strlcpy(bgw.bgw_type, "pgapp jobs supervisor", BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	return RegisterDynamicBackgroundWorker(&bgw, NULL);
}

/*
 * Set the latch of a database's supervisor; when it has none and start is
 * true, register one (at most once per 10 s while a start is pending, and
 * not before the backoff of a crashed one has passed).  Raises no error: it
 * runs after commit.
 */
void
pgapp_jobs_wake_supervisor(Oid dboid, bool start)
{
	TimestampTz now = GetCurrentTimestamp();
	JobsDatabase *db;
	bool		must_start = false;
	bool		no_room = false;

	if (jobs_shared == NULL)
		return;
	LWLockAcquire(jobs_shared->lock, LW_EXCLUSIVE);
	db = pgapp_jobs_database(dboid);
	if (db == NULL && start)
	{
		db = pgapp_jobs_database(InvalidOid);
		if (db == NULL)
			no_room = true;
		else
		{
			memset(db, 0, sizeof(JobsDatabase));
			db->dboid = dboid;
			db->state = JOBS_FREE;
		}
	}
	if (db != NULL)
	{
		if (db->state == JOBS_IDLE && db->latch != NULL)
			SetLatch(db->latch);
		else if (start && now >= db->restart_at &&
				 (db->state == JOBS_FREE ||
				  now - db->requested_at >= SUPERVISOR_START_RETRY_USECS))
		{
			db->state = JOBS_STARTING;
			db->stop_requested = false;
			db->requested_at = now;
			db->no_extension = false;
			must_start = true;
		}
	}
	LWLockRelease(jobs_shared->lock);

	if (no_room)
		ereport(WARNING,
				errmsg("pgapp jobs: no supervisor entry is free for database %u", dboid),
				errdetail("At most %d databases can run pgapp jobs at once.", JOBS_MAX_DATABASES));
	else if (must_start && !register_supervisor(dboid))
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("pgapp jobs: could not start the supervisor of database %u", dboid),
				errhint("Raise \"max_worker_processes\": pgapp needs one process per database with jobs, plus one per running queue worker."));
}

/*
 * The launcher's part (the housekeeper runs it about once a second):
 * once the server accepts writes, start the supervisor of every database
 * (one start at a time), so that jobs due or orphaned before a restart are
 * run without waiting for a new enqueue; later, restart supervisors that
 * crashed, after their backoff, if their database still exists.  A
 * supervisor leaves at once where pgapp is not installed, and is started
 * again by the next enqueue there.
 */
static List *jobs_databases_to_visit = NIL;
static bool jobs_databases_listed = false;


void
pgapp_jobs_housekeeping(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		busy = false;
	List	   *restart = NIL;
	List	   *existing;

	if (jobs_shared == NULL || RecoveryInProgress())
		return;
	if (!jobs_databases_listed)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		jobs_databases_to_visit = pgapp_list_databases(pgapp_jobs_database_allowed);
		jobs_databases_listed = true;
		MemoryContextSwitchTo(old);
	}

	LWLockAcquire(jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < JOBS_MAX_DATABASES; i++)
	{
		JobsDatabase *db = &jobs_shared->databases[i];

		if (db->dboid == InvalidOid)
			continue;
		if (db->state == JOBS_STARTING && now - db->requested_at < SUPERVISOR_START_RETRY_USECS)
			busy = true;
		if (db->state == JOBS_FREE && db->crashed && now >= db->restart_at)
			restart = lappend_oid(restart, db->dboid);
	}
	LWLockRelease(jobs_shared->lock);

	if (restart != NIL)
	{
		ListCell   *lc;

		existing = pgapp_list_databases(pgapp_jobs_database_allowed);
		foreach(lc, restart)
		{
			Oid			dboid = lfirst_oid(lc);

			if (list_member_oid(existing, dboid))
			{
				ereport(LOG,
						errmsg("pgapp jobs: restarting the supervisor of database %u", dboid));
				pgapp_jobs_wake_supervisor(dboid, true);
			}
			else
			{
				/* dropped: forget it */
				LWLockAcquire(jobs_shared->lock, LW_EXCLUSIVE);
				{
					JobsDatabase *db = pgapp_jobs_database(dboid);

					if (db != NULL && db->state == JOBS_FREE)
						db->dboid = InvalidOid;
				}
				LWLockRelease(jobs_shared->lock);
			}
		}
	}

	if (busy || jobs_databases_to_visit == NIL)
		return;
	{
		Oid			dboid = linitial_oid(jobs_databases_to_visit);

		jobs_databases_to_visit = list_delete_first(jobs_databases_to_visit);
		pgapp_jobs_wake_supervisor(dboid, true);
	}
}

/* ---------------------------------------------------------------------
 * At commit: wake-ups and interrupts
 * ---------------------------------------------------------------------
 */

typedef struct PendingAction
{
	bool		interrupt;		/* else wake */
	bool		start;			/* may start the supervisor (pgapp.jobs_databases) */
	int			level;			/* subtransaction nesting level */
	int64		job_id;
	int			pid;			/* of the worker that claimed it */
	int			count;			/* jobs made due (wake-ups) */
	char		queue[JOBS_QUEUE_LEN];
} PendingAction;

static List *pending_actions = NIL;	/* in TopTransactionContext */
static bool callbacks_registered = false;

/*
 * Wake up to count idle workers of a queue (other than except); when fewer
 * were idle, wake the database's supervisor too (starting it if start),
 * unless cap > 0 and the queue already has that many workers: then there
 * is nobody to start.
 */
void
pgapp_jobs_wake_queue(Oid dboid, const char *queue, JobsSlot *except, bool start, int cap, int count)
{
	int			woke = 0;
	int			workers = 0;

	LWLockAcquire(jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &jobs_shared->slots[i];

		if (s->state == JOBS_FREE || s->dboid != dboid || s->stop_requested || strcmp(s->queue, queue) != 0)
			continue;
		workers++;
		if (woke < count && s != except && s->state == JOBS_IDLE && s->latch != NULL)
		{
			SetLatch(s->latch);
			woke++;
		}
	}
	LWLockRelease(jobs_shared->lock);
	if (woke < count && (cap <= 0 || workers < cap))
		pgapp_jobs_wake_supervisor(dboid, start);
}

/*
 * Tell the worker that claimed the job (pid) to cancel it: at once if it
 * runs it now, or, if it waits its turn in the worker's batch, when its
 * turn comes (the worker then skips it).
 */
static void
interrupt_job(int64 job_id, int pid)
{
	LWLockAcquire(jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &jobs_shared->slots[i];

		if (s->state == JOBS_FREE || s->dboid != MyDatabaseId)
			continue;
		if (s->pid == pid)
		{
			uint32		k = pg_atomic_fetch_add_u32(&s->cancel_next, 1);

			pg_atomic_write_u64(&s->cancel_ring[k % JOBS_CANCEL_RING], (uint64) job_id);
		}
		if ((int64) pg_atomic_read_u64(&s->job_id) == job_id)
			pg_atomic_write_u64(&s->cancel_job, (uint64) job_id);
		if ((s->pid == pid || (int64) pg_atomic_read_u64(&s->job_id) == job_id) && s->latch != NULL)
			SetLatch(s->latch);
	}
	LWLockRelease(jobs_shared->lock);
}

static void
jobs_xact_callback(XactEvent event, void *arg)
{
	List	   *actions = pending_actions;
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	pending_actions = NIL;		/* its memory goes with the transaction */
	if (event != XACT_EVENT_COMMIT || jobs_shared == NULL)
		return;
	foreach(lc, actions)
	{
		PendingAction *a = (PendingAction *) lfirst(lc);

		if (a->interrupt)
			interrupt_job(a->job_id, a->pid);
		else
			pgapp_jobs_wake_queue(MyDatabaseId, a->queue, NULL, a->start, 0, a->count);
	}
}

static void
jobs_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;

	if (pending_actions == NIL)
		return;
	level = GetCurrentTransactionNestLevel();
	foreach(lc, pending_actions)
	{
		PendingAction *a = (PendingAction *) lfirst(lc);

		if (a->level < level)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			/*
			 * Released: what it asked for is now its parent's, so that a
			 * later sibling's rollback (PL/pgSQL's BEGIN ... EXCEPTION makes
			 * one per block) does not take it away.
			 */
			a->level = level - 1;
		}
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			/* forget what the rolled-back subtransaction asked for */
			pending_actions = foreach_delete_current(pending_actions, lc);
		}
	}
}

static void
add_pending(bool interrupt, int64 job_id, int pid, const char *queue, int count)
{
	MemoryContext old;
	PendingAction *a;

	if (!callbacks_registered)
	{
		RegisterXactCallback(jobs_xact_callback, NULL);
		RegisterSubXactCallback(jobs_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (!interrupt)
	{
		ListCell   *lc;

		foreach(lc, pending_actions)
		{
			PendingAction *p = (PendingAction *) lfirst(lc);

			if (!p->interrupt && strcmp(p->queue, queue) == 0)
			{
				/* one wake-up per queue and transaction, for all its jobs */
				p->count = Min((int64) p->count + count, PG_INT32_MAX);
				return;
			}
		}
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	a = palloc0(sizeof(PendingAction));
	a->interrupt = interrupt;
	a->start = pgapp_jobs_database_allowed(get_database_name(MyDatabaseId));
	a->level = GetCurrentTransactionNestLevel();
	a->job_id = job_id;
	a->pid = pid;
	a->count = count;
	if (queue != NULL)
		strlcpy(a->queue, queue, JOBS_QUEUE_LEN);
	pending_actions = lappend(pending_actions, a);
	MemoryContextSwitchTo(old);
}

/*
 * pgapp._job_wake_workers(queue text, n integer) -> void: at commit, wake
 * n idle workers of the queue (n jobs were made due), and the supervisor
 * when fewer are idle.  Does nothing without shared memory (the jobs wait
 * until workers can run).
 */
PG_FUNCTION_INFO_V1(pgapp_job_wake_workers);
Datum
pgapp_job_wake_workers(PG_FUNCTION_ARGS)
{
	if (jobs_shared != NULL && !PG_ARGISNULL(0))
		add_pending(false, 0, 0, text_to_cstring(PG_GETARG_TEXT_PP(0)),
					PG_ARGISNULL(1) ? 1 : Max(PG_GETARG_INT32(1), 1));
	PG_RETURN_VOID();
}

/*
 * pgapp._job_interrupt(id bigint, pid integer) -> void: at commit, cancel
 * the job in the worker (pid) that claimed it.
 */
PG_FUNCTION_INFO_V1(pgapp_job_interrupt);
Datum
pgapp_job_interrupt(PG_FUNCTION_ARGS)
{
	if (jobs_shared != NULL && !PG_ARGISNULL(0))
		add_pending(true, PG_GETARG_INT64(0), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1), NULL, 0);
	PG_RETURN_VOID();
}

/*
 * pgapp.job_progress(percent numeric, message text DEFAULT NULL) -> void:
 * from inside a job, report how far it has come.  It goes to the worker's
 * slot (the job's own transaction is not visible until it ends); the
 * supervisor broadcasts it on jobs:<id> and pgapp.workers shows it.
 */
PG_FUNCTION_INFO_V1(pgapp_job_progress);
Datum
pgapp_job_progress(PG_FUNCTION_ARGS)
{
	JobsSlot   *s = pgapp_jobs_my_slot;
	double		percent;
	char	   *message = NULL;

	if (s == NULL || pg_atomic_read_u64(&s->job_id) == 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("pgapp.job_progress() can only be called by a job that a pgapp worker runs"),
				errhint("External workers report what they do in their own way; heartbeat keeps their jobs."));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("percent must not be null"));
	percent = DatumGetFloat8(DirectFunctionCall1(numeric_float8, PG_GETARG_DATUM(0)));
	if (!(percent >= 0 && percent <= 100))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("percent must be between 0 and 100"),
				errdetail("Got %g.", percent));
	if (!PG_ARGISNULL(1))
	{
		message = text_to_cstring(PG_GETARG_TEXT_PP(1));
		/* cut on a character boundary: the slot keeps JOBS_MESSAGE_LEN - 1 bytes */
		message[pg_mbcliplen(message, strlen(message), JOBS_MESSAGE_LEN - 1)] = '\0';
	}
	SpinLockAcquire(&s->mutex);
	s->progress = percent;
	if (message != NULL)
		strlcpy(s->progress_message, message, JOBS_MESSAGE_LEN);
	else
		s->progress_message[0] = '\0';
	s->progress_seq++;
	SpinLockRelease(&s->mutex);
	/* the supervisor relays it */
	LWLockAcquire(jobs_shared->lock, LW_SHARED);
	{
		JobsDatabase *db = pgapp_jobs_database(MyDatabaseId);

		if (db != NULL && db->state == JOBS_IDLE && db->latch != NULL)
			SetLatch(db->latch);
	}
	LWLockRelease(jobs_shared->lock);
	PG_RETURN_VOID();
}

/*
 * pgapp._job_workers() -> SETOF record: the queue workers of this database
 * (slot, pid, queue, state, job_id, since, job_started, jobs_done,
 * progress, progress_message, progress_seq).
 */
PG_FUNCTION_INFO_V1(pgapp_job_workers);
Datum
pgapp_job_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (jobs_shared == NULL)
		return (Datum) 0;		/* not preloaded: no workers */
	LWLockAcquire(jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &jobs_shared->slots[i];
		Datum		values[11];
		bool		nulls[11] = {false};
		int64		job_id;
		double		progress;
		char		message[JOBS_MESSAGE_LEN];
		uint32		seq;

		if (s->state == JOBS_FREE || s->dboid != MyDatabaseId)
			continue;
		job_id = (int64) pg_atomic_read_u64(&s->job_id);
		SpinLockAcquire(&s->mutex);
		progress = s->progress;
		memcpy(message, s->progress_message, JOBS_MESSAGE_LEN);
		seq = s->progress_seq;
		SpinLockRelease(&s->mutex);

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum(s->pid);
		nulls[1] = s->pid == 0;
		values[2] = CStringGetTextDatum(s->queue);
		values[3] = CStringGetTextDatum(s->state == JOBS_STARTING ? "starting" :
										job_id != 0 ? "running" :
										s->state == JOBS_BUSY ? "busy" : "idle");
		values[4] = Int64GetDatum(job_id);
		nulls[4] = job_id == 0;
		values[5] = TimestampTzGetDatum(s->since);
		values[6] = TimestampTzGetDatum(s->job_started);
		nulls[6] = job_id == 0;
		values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&s->jobs_done));
		values[8] = Float8GetDatum(progress);
		nulls[8] = job_id == 0 || progress < 0;
		values[9] = CStringGetTextDatum(message);
		nulls[9] = job_id == 0 || message[0] == '\0';
		values[10] = Int64GetDatum((int64) seq);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(jobs_shared->lock);
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 *
 * jobs_supervisor.c
 *	  A database's job supervisor ("pgapp jobs supervisor"): starts queue
 *	  workers when work is due, restarts crashed ones, rescues orphaned
 *	  jobs, wakes for scheduled jobs, relays progress, prunes.
 *
 * A round (when woken, when the next scheduled job falls due, and at least
 * once a second) runs pgapp._job_supervise() in one transaction: it counts
 * the attempts of jobs that were running when the server crashed
 * (jobs_running.c), rescues executing jobs whose worker is gone (not among
 * the live workers this process read from shared memory just before) -- on
 * the first round and after workers ended, as that reads the whole table --
 * or whose lease ran out, NOTIFYs external queues
 * whose scheduled jobs fell due, and returns each queue's concurrency,
 * pause, due work and next scheduled time.
 * Then, per queue:
 *	 - due work and fewer workers than min(due, concurrency): start more,
 *	   unless the queue's workers crashed recently (capped exponential
 *	   backoff: 0.1 s doubling up to 30 s) or its circuit is open (5 crashes
 *	   within a minute open it for pgapp.jobs_circuit_cooldown, logged);
 *	 - more workers than its concurrency: ask the extra ones to leave.
 * A worker that leaves on its own (idle, queue gone) says so in its slot;
 * any other end of a worker this supervisor started is a crash.  One
 * queue's crashes never hold back another queue.
 *
 * src/jobs/jobs_supervisor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "core/dbworker.h"
#include "core/settings.h"
#include "core/util.h"
#include "jobs_int.h"

#define SUPERVISOR_POLL_MS 1000
#define SUPERVISOR_MIN_ROUND_MS 5	/* rounds at most this often when woken */
#define RESCUE_CRASHED_MAX 64	/* crashed jobs taken per round */
#define PRUNE_EVERY_USECS (60 * USECS_PER_SEC)
#define CIRCUIT_CRASHES 5
#define CIRCUIT_WINDOW_USECS (60 * USECS_PER_SEC)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS (30 * 1000)


/* What this supervisor knows of a queue across rounds. */
typedef struct QueueHealth
{
	char		queue[JOBS_QUEUE_LEN];
	TimestampTz crashes[CIRCUIT_CRASHES];	/* ring of the last crash times */
	int			ncrashes;		/* in a row, for the backoff */
	int			next;			/* ring position */
	TimestampTz restart_at;		/* backoff: no start before */
	TimestampTz circuit_until;	/* open circuit: no start before */
	bool		warned_no_slot;
} QueueHealth;

/* A worker this supervisor started. */
typedef struct Started
{
	BackgroundWorkerHandle *handle;
	uint32		generation;
	char		queue[JOBS_QUEUE_LEN];
} Started;

/* Workers that ended since the last round, and the jobs they were running. */
static List *ended_workers = NIL;	/* of char *, in TopMemoryContext */
static List *ended_jobs = NIL;	/* of int64 * */
static Started *started;		/* [nslots] */
static QueueHealth *health = NULL;
static int	nhealth = 0;
static int	health_cap = 0;
static TimestampTz last_no_bgw_warning = 0;

static QueueHealth *
queue_health(const char *queue)
{
	for (int i = 0; i < nhealth; i++)
		if (strcmp(health[i].queue, queue) == 0)
			return &health[i];
	if (nhealth == health_cap)
	{
		health_cap = Max(16, health_cap * 2);
		health = health == NULL
			? MemoryContextAllocZero(TopMemoryContext, sizeof(QueueHealth) * health_cap)
			: repalloc(health, sizeof(QueueHealth) * health_cap);
		memset(&health[nhealth], 0, sizeof(QueueHealth) * (health_cap - nhealth));
	}
	strlcpy(health[nhealth].queue, queue, JOBS_QUEUE_LEN);
	return &health[nhealth++];
}

static void
note_crash(const char *queue)
{
	QueueHealth *h = queue_health(queue);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz oldest;
	int64		delay_ms;

	h->crashes[h->next] = now;
	h->next = (h->next + 1) % CIRCUIT_CRASHES;
	h->ncrashes = Min(h->ncrashes + 1, 20);
	delay_ms = Min((int64) BACKOFF_FIRST_MS << (h->ncrashes - 1), BACKOFF_MAX_MS);
	h->restart_at = TimestampTzPlusMilliseconds(now, delay_ms);
	oldest = h->crashes[h->next];	/* the crash CIRCUIT_CRASHES ago, or 0 */
	if (oldest != 0 && now - oldest <= CIRCUIT_WINDOW_USECS && h->circuit_until < now)
	{
		h->circuit_until = TimestampTzPlusMilliseconds(now, pgapp_jobs_circuit_cooldown * 1000L);
		ereport(LOG,
				errmsg("the workers of queue \"%s\" crashed %d times within a minute; not restarting them for %d s",
					   queue, CIRCUIT_CRASHES, pgapp_jobs_circuit_cooldown),
				errhint("See the errors above; pgapp.queue_stats shows the queue's jobs."));
	}
	else
		ereport(LOG,
				errmsg("a worker of queue \"%s\" crashed; the next starts in %lld ms",
					   queue, (long long) delay_ms));
}

/* Which started workers have ended, and how. */
static void
note_ended(JobsSlot *s)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	int64	   *job = palloc(sizeof(int64));

	*job = (int64) pg_atomic_read_u64(&s->job_id);
	ended_workers = lappend(ended_workers, psprintf("pgapp worker %d", (int) s->pid));
	ended_jobs = lappend(ended_jobs, job);
	MemoryContextSwitchTo(old);
}

static void
reap_workers(void)
{
	/*
	 * Workers of this database that ended with no handle of this process
	 * behind them (started by a supervisor that has since gone): reap them
	 * here, as their jobs' rescue needs.
	 */
	LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

		if (started[i].handle == NULL && s->state == JOBS_FREE && s->pid != 0 &&
			s->dboid == MyDatabaseId)
		{
			if (!s->clean_exit)
				note_ended(s);
			s->pid = 0;
			pg_atomic_write_u64(&s->job_id, 0);
		}
	}
	LWLockRelease(pgapp_jobs_shared->lock);

	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		Started    *st = &started[i];
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];
		pid_t		pid;
		bool		crashed = false;

		if (st->handle == NULL)
			continue;
		if (GetBackgroundWorkerPid(st->handle, &pid) != BGWH_STOPPED)
			continue;
		LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
		if (s->generation == st->generation)
		{
			if (s->state != JOBS_FREE)
			{
				/* ended without releasing its slot: never attached */
				s->state = JOBS_FREE;
				s->latch = NULL;
				crashed = true;
			}
			else
				crashed = !s->clean_exit;
			/* one that left on purpose had no claimed jobs: nothing to rescue */
			if (s->pid != 0 && crashed)
				note_ended(s);
			s->pid = 0;
			pg_atomic_write_u64(&s->job_id, 0);
		}
		LWLockRelease(pgapp_jobs_shared->lock);
		if (crashed)
			note_crash(st->queue);
		else
			queue_health(st->queue)->ncrashes = 0;
		pfree(st->handle);
		st->handle = NULL;
	}
}

/*
 * Reserve a free slot for a new worker of the queue (one whose last worker
 * is reaped first): STARTING, with a new generation.  Returns its index, or
 * -1 when none is free.
 */
static int
reserve_slot(const char *queue, int first_claim, uint32 *generation)
{
	int			index = -1;
	JobsSlot   *s;

	LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
		if (pgapp_jobs_shared->slots[i].state == JOBS_FREE && started[i].handle == NULL &&
			(index < 0 || pgapp_jobs_shared->slots[i].pid == 0))
		{
			index = i;
			if (pgapp_jobs_shared->slots[i].pid == 0)
				break;
		}
	if (index >= 0)
	{
		s = &pgapp_jobs_shared->slots[index];
		s->state = JOBS_STARTING;
		s->dboid = MyDatabaseId;
		strlcpy(s->queue, queue, JOBS_QUEUE_LEN);
		s->pid = 0;
		s->latch = NULL;
		s->generation = *generation = s->generation + 1;
		s->clean_exit = false;
		s->stop_requested = false;
		s->first_claim = first_claim;
		s->since = GetCurrentTimestamp();
		pg_atomic_write_u64(&s->job_id, 0);
		pg_atomic_write_u64(&s->cancel_job, 0);
		pg_atomic_write_u64(&s->jobs_done, 0);
	}
	LWLockRelease(pgapp_jobs_shared->lock);
	return index;
}

static bool
start_worker(const char *queue, int first_claim)
{
	BackgroundWorker bgw = {0};
	uint32		generation = 0;
	int			index = reserve_slot(queue, first_claim, &generation);
	JobsSlot   *s;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	bool		registered;

	if (index < 0)
	{
		QueueHealth *h = queue_health(queue);

		if (!h->warned_no_slot)
			ereport(WARNING,
					errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					errmsg("no worker slot is free for queue \"%s\"", queue),
					errdetail("All %d slots of \"pgapp.jobs_max_workers\" are in use.", pgapp_jobs_shared->nslots),
					errhint("Raise \"pgapp.jobs_max_workers\" (and \"max_worker_processes\") and restart the server, or lower the queues' concurrency."));
		h->warned_no_slot = true;
		return false;
	}
	queue_health(queue)->warned_no_slot = false;
	s = &pgapp_jobs_shared->slots[index];

	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "pgapp", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "pgapp_jobs_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "pgapp jobs worker for queue %s", queue);
	strlcpy(bgw.bgw_type, "pgapp jobs worker", BGW_MAXLEN);
	bgw.bgw_main_arg = Int32GetDatum(index);
	memcpy(bgw.bgw_extra, &generation, sizeof(uint32));
	bgw.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);	/* the handle outlives the
													 * round */
	registered = RegisterDynamicBackgroundWorker(&bgw, &handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
		if (s->generation == generation)
			s->state = JOBS_FREE;
		LWLockRelease(pgapp_jobs_shared->lock);
		if (TimestampDifferenceExceeds(last_no_bgw_warning, GetCurrentTimestamp(), 60 * 1000))
		{
			ereport(WARNING,
					errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					errmsg("could not start a worker for queue \"%s\": no background worker slot is free", queue),
					errhint("Raise \"max_worker_processes\" and restart the server: pgapp needs one process per running queue worker, one supervisor per database with jobs, and its housekeeper."));
			last_no_bgw_warning = GetCurrentTimestamp();
		}
		return false;
	}
	started[index].handle = handle;
	started[index].generation = generation;
	strlcpy(started[index].queue, queue, JOBS_QUEUE_LEN);
	return true;
}

/*
 * The live workers of this database as "pgapp worker <pid>" (text[]); one
 * that has ended but is not reaped yet counts as live, so that its claimed
 * jobs wait for the round that knows which one it was running.
 */
static Datum
live_workers(void)
{
	Datum	   *elems = palloc(sizeof(Datum) * (pgapp_jobs_shared->nslots + 1));
	int			n = 0;

	LWLockAcquire(pgapp_jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

		/* a worker that ended counts until it is reaped (reap_workers) */
		if (s->pid != 0 && s->dboid == MyDatabaseId)
			elems[n++] = CStringGetTextDatum(psprintf("pgapp worker %d", (int) s->pid));
	}
	LWLockRelease(pgapp_jobs_shared->lock);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* The workers that ended since the last round (text[]) and their running jobs (*jobs, bigint[]). */
static Datum
ended_array(Datum *jobs)
{
	int			n = list_length(ended_workers);
	Datum	   *w = palloc(sizeof(Datum) * (n + 1));
	Datum	   *j = palloc(sizeof(Datum) * (n + 1));
	int			i = 0;
	ListCell   *lw,
			   *lj;

	forboth(lw, ended_workers, lj, ended_jobs)
	{
		w[i] = CStringGetTextDatum((char *) lfirst(lw));
		j[i] = Int64GetDatum(*(int64 *) lfirst(lj));
		i++;
	}
	*jobs = PointerGetDatum(construct_array(j, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	return PointerGetDatum(construct_array(w, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Count, wake and trim a queue's workers; returns how many there are, and
 * in *idle how many of them wait for work (or are starting).
 */
static int
tend_queue(const char *queue, int concurrency, bool wake, int *idle)
{
	int			n = 0;

	*idle = 0;

	LWLockAcquire(pgapp_jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

		if (s->state == JOBS_FREE || s->dboid != MyDatabaseId || strcmp(s->queue, queue) != 0 ||
			s->stop_requested)
			continue;
		if (n >= concurrency)
		{
			s->stop_requested = true;	/* read by the worker between batches */
			if (s->latch)
				SetLatch(s->latch);
			continue;
		}
		n++;
		if (s->state == JOBS_IDLE || s->state == JOBS_STARTING)
			(*idle)++;
		if (wake && s->state == JOBS_IDLE && s->latch)
			SetLatch(s->latch);
	}
	LWLockRelease(pgapp_jobs_shared->lock);
	return n;
}

/* Progress reports of running jobs not relayed yet: broadcast them on jobs:<id>. */
static uint32 *seen_seq = NULL;

static void
relay_progress(SPIPlanPtr plan)
{
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];
		int64		job;
		uint32		seq;
		double		progress;
		char		message[JOBS_MESSAGE_LEN];
		Datum		values[3];
		char		nulls[3] = {' ', ' ', ' '};
		int			ret;

		if (s->dboid != MyDatabaseId || s->state == JOBS_FREE)
			continue;
		job = (int64) pg_atomic_read_u64(&s->job_id);
		SpinLockAcquire(&s->mutex);
		seq = s->progress_seq;
		progress = s->progress;
		memcpy(message, s->progress_message, JOBS_MESSAGE_LEN);
		SpinLockRelease(&s->mutex);
		if (job == 0 || seq == seen_seq[i] || progress < 0)
		{
			seen_seq[i] = seq;
			continue;
		}
		seen_seq[i] = seq;
		values[0] = Int64GetDatum(job);
		values[1] = Float8GetDatum(progress);
		values[2] = CStringGetTextDatum(message);
		nulls[2] = message[0] == '\0' ? 'n' : ' ';
		ret = SPI_execute_plan(plan, values, nulls, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
}

/* Prepare the round's statements for the session (SPI connected). */
static void
prepare_plans(SPIPlanPtr *round_plan, SPIPlanPtr *progress_plan)
{
	Oid			types[7] = {TEXTARRAYOID, TIMESTAMPTZOID, TEXTARRAYOID, INT8ARRAYOID, BOOLOID,
	INT8ARRAYOID, INT4ARRAYOID};
	Oid			ptypes[3] = {INT8OID, FLOAT8OID, TEXTOID};

	*round_plan = SPI_prepare("SELECT queue, concurrency, paused, due, next_at"
							  "  FROM pgapp._job_supervise($1, $2, $3, $4, $5, $6, $7)",
							  7, types);
	if (*round_plan == NULL || SPI_keepplan(*round_plan) != 0)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	*progress_plan = SPI_prepare("SELECT pgapp._broadcast_system('jobs:' OPERATOR(pg_catalog.||) $1, 'progress',"
								 " pg_catalog.jsonb_build_object('id', $1, 'percent', $2, 'message', $3), 'direct')",
								 3, ptypes);
	if (*progress_plan == NULL || SPI_keepplan(*progress_plan) != 0)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
}

/*
 * Start the round's transaction and connect SPI; leave when pgapp is not
 * installed here.
 */
static void
begin_round(const char *activity)
{
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if (!OidIsValid(get_extension_oid("pgapp", true)))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgapp_dbworker_leave(pgapp_jobs_supervisors);
		proc_exit(0);
	}
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
}

static void
end_round(void)
{
	int			ret;

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* The jobs that were running when the server crashed (jobs_running.c). */
typedef struct CrashedJobs
{
	int64		ids[RESCUE_CRASHED_MAX];
	int32		attempts[RESCUE_CRASHED_MAX];
	int			where[RESCUE_CRASHED_MAX];
	int			n;
} CrashedJobs;

/*
 * The arguments of pgapp._job_supervise: live workers, since, ended
 * workers and their jobs, whether to rescue, the crashed jobs and their
 * attempts.
 */
static void
round_args(Datum *values, TimestampTz since, bool rescue, CrashedJobs *crashed)
{
	Datum	   *elems;

	/*
	 * the live workers first: a worker that attaches later claims after this
	 * time
	 */
	values[1] = TimestampTzGetDatum(since);
	values[0] = live_workers();
	values[2] = ended_array(&values[3]);
	values[4] = BoolGetDatum(rescue);
	crashed->n = pgapp_jobs_running_crashed(crashed->ids, crashed->attempts, crashed->where,
											RESCUE_CRASHED_MAX);
	elems = palloc(sizeof(Datum) * (crashed->n + 1));
	for (int k = 0; k < crashed->n; k++)
		elems[k] = Int64GetDatum(crashed->ids[k]);
	values[5] = PointerGetDatum(construct_array(elems, crashed->n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	for (int k = 0; k < crashed->n; k++)
		elems[k] = Int32GetDatum(crashed->attempts[k]);
	values[6] = PointerGetDatum(construct_array(elems, crashed->n, INT4OID, 4, true, TYPALIGN_INT));
}

/*
 * One queue of the round's result: trim or wake its workers, and start
 * more for due work unless its backoff or open circuit holds them back
 * (then *sleep_ms shrinks to the time left).
 */
static void
tend_round_queue(HeapTuple tup, TupleDesc desc, TimestampTz now, TimestampTz *next_at, long *sleep_ms)
{
	bool		isnull;
	char	   *queue = SPI_getvalue(tup, desc, 1);
	int			concurrency = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	bool		paused = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	int			due = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
	Datum		at = SPI_getbinval(tup, desc, 5, &isnull);
	int			running;
	int			idle;
	int			starts;
	QueueHealth *h;

	if (!isnull && (*next_at == 0 || DatumGetTimestampTz(at) < *next_at))
		*next_at = DatumGetTimestampTz(at);
	running = tend_queue(queue, paused ? 0 : concurrency, due > 0, &idle);
	if (paused || concurrency == 0 || due == 0)
		return;
	h = queue_health(queue);
	if (now < h->circuit_until || now < h->restart_at)
	{
		TimestampTz until = Max(h->circuit_until, h->restart_at);

		*sleep_ms = Min(*sleep_ms, Max((until - now) / 1000, 1));
		return;
	}

	/*
	 * Due work beyond what the idle workers take, up to the concurrency. A
	 * new worker is told its share of the backlog (due counts up to 64 jobs a
	 * worker): after its first job it claims that much, rather than doubling
	 * up to it from one job.
	 */
	starts = Min(due - idle, concurrency - running);
	for (int k = 0; k < starts; k++)
		if (!start_worker(queue, Max(1, due / Max(running + starts, 1))))
			break;
}

/*
 * Prune finished jobs once a minute, or at the next round while a full
 * batch says more is waiting.
 */
static void
prune(TimestampTz now, TimestampTz *last_prune)
{
	int			ret;
	bool		behind = false;

	if (now - *last_prune < PRUNE_EVERY_USECS)
		return;
	begin_round("pgapp jobs: pruning");
	ret = SPI_execute("SELECT pgapp.prune_jobs() >= 10000", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;

		behind = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	end_round();
	*last_prune = behind ? now - PRUNE_EVERY_USECS : now;
}

/*
 * One round; returns how long to sleep (ms) at most.  Leaves when pgapp is
 * not installed here.
 */
static long
supervise(TimestampTz *since, TimestampTz *last_prune)
{
	static SPIPlanPtr round_plan = NULL;
	static SPIPlanPtr progress_plan = NULL;
	static bool first_round = true;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_at = 0;
	Datum		values[7];
	int			ret;
	long		sleep_ms = SUPERVISOR_POLL_MS;
	CrashedJobs crashed;

	reap_workers();
	begin_round("pgapp jobs: supervising");
	if (round_plan == NULL)
		prepare_plans(&round_plan, &progress_plan);

	/*
	 * Looking for lost jobs reads the whole table: on the first round (a
	 * restart, of the server or of this supervisor) and when workers ended
	 * without leaving on purpose.
	 */
	round_args(values, *since, first_round || ended_workers != NIL, &crashed);
	*since = now;
	ret = SPI_execute_plan(round_plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
		tend_round_queue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, now, &next_at, &sleep_ms);
	relay_progress(progress_plan);
	end_round();
	first_round = false;
	pgapp_jobs_running_forget(crashed.where, crashed.n);
	list_free_deep(ended_workers);
	list_free_deep(ended_jobs);
	ended_workers = ended_jobs = NIL;

	prune(now, last_prune);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (next_at != 0)
		sleep_ms = Min(sleep_ms, Max((next_at - GetCurrentTimestamp()) / 1000 + 1, 1));
	return sleep_ms;
}

/*
 * A configuration reload: when the database has left pgapp.jobs_databases,
 * its supervisor and (after their current batch) its workers leave.
 */
static void
reload_config(const char *dbname)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	if (pgapp_jobs_database_allowed(dbname))
		return;
	ereport(LOG,
			errmsg("database \"%s\" is no longer in \"pgapp.jobs_databases\"; its job supervisor stops",
				   dbname));
	(void) pgapp_jobs_slots_leave(MyDatabaseId);
	pgapp_dbworker_leave(pgapp_jobs_supervisors);
	proc_exit(0);
}

void
pgapp_jobs_supervisor_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	TimestampTz since;
	TimestampTz last_prune = 0;
	MemoryContext round_cxt;
	char	   *dbname;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (pgapp_jobs_shared == NULL)
		proc_exit(0);
	if (pgapp_dbworker_attach(pgapp_jobs_supervisors, dboid) < 0)
		proc_exit(0);			/* another supervisor runs here */

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pgapp jobs supervisor");
	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(dboid));
	CommitTransactionCommand();
	started = MemoryContextAllocZero(TopMemoryContext, sizeof(Started) * pgapp_jobs_shared->nslots);
	seen_seq = MemoryContextAllocZero(TopMemoryContext, sizeof(uint32) * pgapp_jobs_shared->nslots);
	round_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs supervisor", ALLOCSET_DEFAULT_SIZES);
	since = GetCurrentTimestamp() - USECS_PER_SEC;

	for (;;)
	{
		MemoryContext old;
		long		sleep_ms;
		TimestampTz round_start = GetCurrentTimestamp();

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (pgapp_dbworker_stop_requested(pgapp_jobs_supervisors))
		{
			/* DROP DATABASE: its workers were told too */
			pgapp_dbworker_leave(pgapp_jobs_supervisors);
			proc_exit(0);
		}
		if (ConfigReloadPending)
			reload_config(dbname);
		old = MemoryContextSwitchTo(round_cxt);
		sleep_ms = supervise(&since, &last_prune);
		MemoryContextSwitchTo(old);
		MemoryContextReset(round_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		/* woken again at once: let wake-ups gather a moment */
		if (!TimestampDifferenceExceeds(round_start, GetCurrentTimestamp(), SUPERVISOR_MIN_ROUND_MS))
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, SUPERVISOR_MIN_ROUND_MS,
							 PG_WAIT_EXTENSION);
	}
}

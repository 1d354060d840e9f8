/*-------------------------------------------------------------------------
 *
 * pubsub_outbox.c
 *	  The outbox's shared memory: one delivery worker slot per database, the
 *	  wake-up at commit, starting workers, and the module entry of PubSub.
 *
 * Every transaction that wrote to pgapp.outbox wakes its database's
 * delivery worker ("pgapp pubsub", pubsub_worker.c) after it commits; if
 * the database has no worker, it registers one (at most once per 10 seconds
 * while a start is pending).  The worker also wakes every second on its
 * own, which finds rows whose writer could not wake it (a prepared
 * transaction committed later, a failed start).  The housekeeper starts the
 * worker of every database once the server accepts writes, one at a time,
 * so that messages committed before a restart are delivered without
 * waiting for a new writer.  Before DROP DATABASE the database's worker is
 * asked to leave, and waited for.
 *
 * The slot management (OutboxSlot, find_slot, start_worker, wake_or_start,
 * before_drop_database, the housekeeping visit, claim and release) is kept
 * together here, behind the functions of pubsub_int.h, so that it can move
 * onto core/dbworker.c as one piece.
 *
 * Locking protocol: OutboxShared.lock (one LWLock, tranche "pgapp pubsub")
 * protects every slot's dboid, state, pid, latch, requested_at and
 * stop_requested.
 *	- EXCLUSIVE: wake_or_start (find the database's slot or take a free one
 *	  as STARTING; SetLatch on a running worker's latch while holding it, so
 *	  the latch cannot go away), the worker claiming its slot and releasing
 *	  it at exit, and before_drop_database (set stop_requested, SetLatch).
 *	- SHARED: the housekeeper looking for a start still pending, and
 *	  pgapp._pubsub_workers.
 *	- Nothing else is done under it: RegisterDynamicBackgroundWorker and the
 *	  WARNINGs come after it is released, and nothing raises an error while
 *	  it is held.
 *	- delivered, batches and last_delivery are atomics, written only by the
 *	  slot's worker, read without the lock.  The worker reads its own
 *	  stop_requested without the lock: a bool, set once, followed by a
 *	  SetLatch that makes the worker look.
 *
 * src/pubsub/pubsub_outbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "core/xact_defer.h"
#include "pubsub.h"
#include "pubsub_int.h"

#define OUTBOX_MAX_DATABASES 16
#define OUTBOX_START_RETRY_USECS (10 * USECS_PER_SEC)

typedef enum OutboxSlotState
{
	OUTBOX_FREE,
	OUTBOX_STARTING,			/* registered, not running yet */
	OUTBOX_RUNNING
} OutboxSlotState;

typedef struct OutboxSlot
{
	Oid			dboid;
	OutboxSlotState state;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz requested_at;	/* when a start was requested */
	bool		stop_requested; /* DROP DATABASE is coming: leave */
	pg_atomic_uint64 delivered; /* messages sent */
	pg_atomic_uint64 batches;	/* delivering transactions */
	pg_atomic_uint64 last_delivery; /* TimestampTz of the last batch */
} OutboxSlot;

typedef struct OutboxShared
{
	LWLock	   *lock;
	OutboxSlot	slots[OUTBOX_MAX_DATABASES];
} OutboxShared;

static OutboxShared *outbox_shared = NULL;
static int	my_slot = -1;

static void outbox_shmem_request(void);
static void outbox_shmem_startup(void);
static const char *pubsub_status(void);
static void outbox_before_drop_database(Oid dboid);
static void outbox_housekeeping(void);

const PgappModule pgapp_pubsub_module = {
	.name = "pubsub",
	.shmem_request = outbox_shmem_request,
	.shmem_startup = outbox_shmem_startup,
	.status = pubsub_status,
	.housekeeping = outbox_housekeeping,
	.before_drop_database = outbox_before_drop_database,
};

static void
outbox_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxShared)));
	RequestNamedLWLockTranche("pgapp pubsub", 1);
}

/* Caller holds AddinShmemInitLock. */
static void
outbox_shmem_startup(void)
{
	bool		found;

	outbox_shared = ShmemInitStruct("pgapp pubsub", sizeof(OutboxShared), &found);
	if (!found)
	{
		outbox_shared->lock = &(GetNamedLWLockTranche("pgapp pubsub"))->lock;
		for (int i = 0; i < OUTBOX_MAX_DATABASES; i++)
		{
			OutboxSlot *s = &outbox_shared->slots[i];

			s->dboid = InvalidOid;
			s->state = OUTBOX_FREE;
			s->pid = 0;
			s->latch = NULL;
			s->requested_at = 0;
			pg_atomic_init_u64(&s->delivered, 0);
			pg_atomic_init_u64(&s->batches, 0);
			pg_atomic_init_u64(&s->last_delivery, 0);
		}
	}
}

static const char *
pubsub_status(void)
{
	return outbox_shared != NULL ? "ok" : "not preloaded";
}

bool
pgapp_pubsub_outbox_attached(void)
{
	return outbox_shared != NULL;
}

/*
 * The slot of a database's worker, or -1; *free_slot gets the first free
 * slot (or -1).  The caller holds the lock.
 */
static int
find_slot(Oid dboid, int *free_slot)
{
	int			slot = -1;

	*free_slot = -1;
	for (int i = 0; i < OUTBOX_MAX_DATABASES; i++)
	{
		if (outbox_shared->slots[i].state != OUTBOX_FREE && outbox_shared->slots[i].dboid == dboid)
			slot = i;
		else if (outbox_shared->slots[i].state == OUTBOX_FREE && *free_slot < 0)
			*free_slot = i;
	}
	return slot;
}

static bool
start_worker(Oid dboid)
{
	BackgroundWorker bgw = {0};

	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "pgapp", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "pgapp_pubsub_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "pgapp pubsub for database %u", dboid);
	strlcpy(bgw.bgw_type, "pgapp pubsub", BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	return RegisterDynamicBackgroundWorker(&bgw, NULL);
}

/*
 * Wake a database's delivery worker, starting it if needed.  Raises no
 * error (it runs after commit): a failed start is a WARNING, and the rows
 * wait for the next writer or the next start.
 */
static void
wake_or_start(Oid dboid)
{
	OutboxShared *sh = outbox_shared;
	TimestampTz now = GetCurrentTimestamp();
	int			slot = -1;
	int			free_slot = -1;
	bool		must_start = false;
	Latch	   *latch = NULL;

	if (sh == NULL)
		return;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	slot = find_slot(dboid, &free_slot);
	if (slot >= 0)
	{
		OutboxSlot *s = &sh->slots[slot];

		if (s->state == OUTBOX_RUNNING)
			latch = s->latch;
		else if (now - s->requested_at >= OUTBOX_START_RETRY_USECS)
		{
			s->requested_at = now;	/* the last start never came up */
			must_start = true;
		}
	}
	else if (free_slot >= 0)
	{
		OutboxSlot *s = &sh->slots[free_slot];

		s->dboid = dboid;
		s->state = OUTBOX_STARTING;
		s->pid = 0;
		s->latch = NULL;
		s->requested_at = now;
		slot = free_slot;
		must_start = true;
	}
	if (latch != NULL)
		SetLatch(latch);
	LWLockRelease(sh->lock);

	if (slot < 0)
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("no pubsub delivery worker slot is free for database %u", dboid),
				errdetail("At most %d databases can have an outbox worker at once.", OUTBOX_MAX_DATABASES));
	else if (must_start && !start_worker(dboid))
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("could not start the pubsub delivery worker of database %u", dboid),
				errhint("Raise \"max_worker_processes\"; messages wait in pgapp.outbox until a worker starts."));
}

/* After the commit of a transaction that wrote to the outbox. */
static void
wake_action(List *args)
{
	wake_or_start(MyDatabaseId);
}

/*
 * Wake the database's delivery worker after the current transaction
 * commits (once however often it is asked; never for a prepared one, whose
 * rows the worker's poll finds).
 */
void
pgapp_pubsub_outbox_wake_at_commit(void)
{
	if (pgapp_xact_deferred(PGAPP_XACT_COMMIT, wake_action) == NIL)
		pgapp_xact_defer(PGAPP_XACT_COMMIT, wake_action, NULL);
}

/*
 * DROP DATABASE is coming (core/module.c): ask the database's delivery worker to
 * leave and wait for it (at most 5 s).  Messages it had not sent yet are
 * dropped with the database.
 */
static void
outbox_before_drop_database(Oid dboid)
{
	if (outbox_shared == NULL)
		return;
	for (int tries = 0; tries < 500; tries++)
	{
		bool		present = false;

		LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
		for (int i = 0; i < OUTBOX_MAX_DATABASES; i++)
		{
			OutboxSlot *s = &outbox_shared->slots[i];

			if (s->state == OUTBOX_RUNNING && s->dboid == dboid)
			{
				present = true;
				s->stop_requested = true;
				if (s->latch)
					SetLatch(s->latch);
			}
		}
		LWLockRelease(outbox_shared->lock);
		if (!present)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The housekeeper's part (core/housekeeper.c): once the server accepts writes, start
 * the delivery worker of every database, one at a time, so that messages
 * committed before a restart or a crash are delivered without waiting for
 * a new writer.  A worker leaves at once where pgapp is not installed.
 */
static List *databases_to_visit = NIL;
static bool databases_listed = false;

static void
outbox_housekeeping(void)
{
	Oid			dboid;
	bool		busy = false;

	if (outbox_shared == NULL || RecoveryInProgress())
		return;
	if (!databases_listed)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		databases_to_visit = pgapp_list_databases(NULL);
		databases_listed = true;
		MemoryContextSwitchTo(old);
	}
	if (databases_to_visit == NIL)
		return;
	/* one start at a time: wait while another is coming up */
	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (int i = 0; i < OUTBOX_MAX_DATABASES; i++)
		if (outbox_shared->slots[i].state == OUTBOX_STARTING &&
			GetCurrentTimestamp() - outbox_shared->slots[i].requested_at < OUTBOX_START_RETRY_USECS)
			busy = true;
	LWLockRelease(outbox_shared->lock);
	if (busy)
		return;
	dboid = linitial_oid(databases_to_visit);
	databases_to_visit = list_delete_first(databases_to_visit);
	wake_or_start(dboid);
}

/* ---------------------------------------------------------------------
 * The worker's slot
 * ---------------------------------------------------------------------
 */

static void
release_slot(int code, Datum arg)
{
	if (my_slot < 0 || outbox_shared == NULL)
		return;
	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	if (outbox_shared->slots[my_slot].pid == MyProcPid)
	{
		outbox_shared->slots[my_slot].state = OUTBOX_FREE;
		outbox_shared->slots[my_slot].dboid = InvalidOid;
		outbox_shared->slots[my_slot].pid = 0;
		outbox_shared->slots[my_slot].latch = NULL;
	}
	LWLockRelease(outbox_shared->lock);
	my_slot = -1;
}

/*
 * The delivery worker of dboid takes its slot, given back when it exits;
 * false when the shared memory is missing or another worker runs there.
 */
bool
pgapp_pubsub_outbox_claim(Oid dboid)
{
	OutboxShared *sh = outbox_shared;
	int			slot = -1;
	int			free_slot = -1;

	if (sh == NULL)
		return false;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	slot = find_slot(dboid, &free_slot);
	if (slot >= 0 && sh->slots[slot].state == OUTBOX_RUNNING)
		slot = -2;				/* a worker already runs for this database */
	else if (slot < 0)
		slot = free_slot;
	if (slot >= 0)
	{
		OutboxSlot *s = &sh->slots[slot];

		s->dboid = dboid;
		s->state = OUTBOX_RUNNING;
		s->pid = MyProcPid;
		s->latch = MyLatch;
		s->stop_requested = false;
		pg_atomic_write_u64(&s->delivered, 0);
		pg_atomic_write_u64(&s->batches, 0);
		pg_atomic_write_u64(&s->last_delivery, 0);
		my_slot = slot;
	}
	LWLockRelease(sh->lock);
	if (slot >= 0)
		before_shmem_exit(release_slot, (Datum) 0);
	return slot >= 0;
}

/* Has DROP DATABASE asked the calling worker to leave? */
bool
pgapp_pubsub_outbox_stop_requested(void)
{
	return outbox_shared->slots[my_slot].stop_requested;
}

/* The calling worker delivered n messages in one transaction. */
void
pgapp_pubsub_outbox_delivered(int n)
{
	OutboxSlot *s = &outbox_shared->slots[my_slot];

	pg_atomic_fetch_add_u64(&s->delivered, n);
	pg_atomic_fetch_add_u64(&s->batches, 1);
	pg_atomic_write_u64(&s->last_delivery, (uint64) GetCurrentTimestamp());
}

/*
 * pgapp._pubsub_start_worker() -> void: start this database's worker if it
 * is not running, and wake it (presence and typing need its rounds).
 */
PG_FUNCTION_INFO_V1(pgapp_pubsub_start_worker);
Datum
pgapp_pubsub_start_worker(PG_FUNCTION_ARGS)
{
	pgapp_require_shmem(outbox_shared, "presence and typing indicators");
	wake_or_start(MyDatabaseId);
	PG_RETURN_VOID();
}

/*
 * pgapp._pubsub_workers() -> SETOF record: the delivery workers of every
 * database (for pgapp.pubsub_outbox).
 */
PG_FUNCTION_INFO_V1(pgapp_pubsub_workers);
Datum
pgapp_pubsub_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	pgapp_require_shmem(outbox_shared, "the pubsub outbox");
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (int i = 0; i < OUTBOX_MAX_DATABASES; i++)
	{
		OutboxSlot *s = &outbox_shared->slots[i];
		Datum		values[6];
		bool		nulls[6] = {false};
		uint64		last;

		if (s->state == OUTBOX_FREE)
			continue;
		values[0] = ObjectIdGetDatum(s->dboid);
		values[1] = Int32GetDatum(s->pid);
		nulls[1] = s->pid == 0;
		values[2] = CStringGetTextDatum(s->state == OUTBOX_RUNNING ? "running" : "starting");
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&s->delivered));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&s->batches));
		last = pg_atomic_read_u64(&s->last_delivery);
		values[5] = TimestampTzGetDatum((TimestampTz) last);
		nulls[5] = last == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(outbox_shared->lock);
	return (Datum) 0;
}

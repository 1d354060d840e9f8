/*-------------------------------------------------------------------------
 *
 * dbworker.c
 *	  One dynamic background worker per database, of one kind: the table of
 *	  slots in shared memory, wake-or-start with a start retry and a crash
 *	  backoff, leaving before DROP DATABASE, and the housekeeper's visit of
 *	  every database once the server accepts writes.
 *
 * A slot per database (kind->max_databases of them): FREE (unused, or the
 * entry of a crashed worker waiting for its restart), STARTING (registered,
 * not attached yet) or RUNNING.  A start is registered with
 * RegisterDynamicBackgroundWorker and BGW_NEVER_RESTART: the restart policy
 * is ours.  A start that never attaches is retried after 10 s; a worker
 * that ends without pgapp_dbworker_leave is a crash and, when the kind asks
 * for it, is restarted by the housekeeper after 1 s doubling up to 60 s.
 *
 * Lock protocol.  One LWLock per kind (tranche kind->shmem_name) protects
 * every field of every slot:
 *	 - pgapp_dbworker_wake: EXCLUSIVE when it may start a worker (takes or
 *	   fills a slot, marks it STARTING), SHARED otherwise; under it only
 *	   SetLatch of the running worker.  The registration and the WARNINGs
 *	   come after the release.
 *	 - pgapp_dbworker_attach (the worker, at start): EXCLUSIVE, marks the
 *	   slot RUNNING with its pid and latch.
 *	 - release at exit (before_shmem_exit): EXCLUSIVE, frees the slot or
 *	   notes the crash and its backoff.
 *	 - pgapp_dbworker_before_drop_database: EXCLUSIVE, sets stop_requested
 *	   and the latch; waits (10 ms at a time) with the lock released.
 *	 - pgapp_dbworker_housekeeping: SHARED to read the starts in flight and
 *	   the crashed slots; EXCLUSIVE to forget the slot of a dropped
 *	   database.  The database list is read with no lock held.
 *	 - pgapp_dbworker_find and pgapp_dbworker_slots: SHARED.
 * stop_requested is also read without the lock by its worker (a bool: a
 * late read costs one more round).  No other lock is taken while holding
 * it, and nothing under it can raise an error.
 *
 * src/core/dbworker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/dbworker.h"
#include "core/util.h"

#define DBWORKER_START_RETRY_USECS (10 * USECS_PER_SEC)
#define DBWORKER_BACKOFF_MAX_USECS (60 * USECS_PER_SEC)
#define DBWORKER_MAX_CRASHES 10
#define DBWORKER_DROP_WAIT_TRIES 500	/* of 10 ms */

typedef enum DbWorkerState
{
	DBWORKER_FREE,
	DBWORKER_STARTING,			/* registered, not attached yet */
	DBWORKER_RUNNING
} DbWorkerState;

typedef struct DbWorkerSlot
{
	Oid			dboid;			/* InvalidOid: slot unused */
	DbWorkerState state;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz requested_at;	/* when a start was last requested */
	bool		stop_requested; /* DROP DATABASE is coming: leave */
	bool		crashed;		/* the last worker did not leave on purpose */
	int			crashes;		/* in a row, for the backoff */
	TimestampTz restart_at;		/* not before this */
} DbWorkerSlot;

struct PgappDbWorkers
{
	const PgappDbWorkerKind *kind;	/* backend-local: set by shmem_startup */
	LWLock	   *lock;
	int			nslots;
	DbWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

/*
 * Backend-local: the kind (its pointer differs in each process), and this
 * process's slot when it is a worker of that kind.  One worker kind per
 * process: a process attaches to at most one table.
 */
typedef struct DbWorkerLocal
{
	PgappDbWorkers *shared;
	const PgappDbWorkerKind *kind;
	List	   *to_visit;		/* the housekeeper's databases not visited yet */
	bool		listed;
} DbWorkerLocal;

#define DBWORKER_MAX_KINDS 4
static DbWorkerLocal locals[DBWORKER_MAX_KINDS];
static int	nlocals = 0;
static PgappDbWorkers *my_table = NULL;
static int	my_slot = -1;
static bool my_clean_exit = false;

static Size
dbworker_size(const PgappDbWorkerKind *kind)
{
	return add_size(offsetof(PgappDbWorkers, slots),
					mul_size(sizeof(DbWorkerSlot), kind->max_databases));
}

static DbWorkerLocal *
local_of(PgappDbWorkers *w)
{
	for (int i = 0; i < nlocals; i++)
		if (locals[i].shared == w)
			return &locals[i];
	elog(ERROR, "unknown per-database worker table");
	return NULL;				/* keep the compiler quiet */
}

void
pgapp_dbworker_shmem_request(const PgappDbWorkerKind *kind)
{
	RequestAddinShmemSpace(MAXALIGN(dbworker_size(kind)));
	RequestNamedLWLockTranche(kind->shmem_name, 1);
}

/* Caller holds AddinShmemInitLock. */
PgappDbWorkers *
pgapp_dbworker_shmem_startup(const PgappDbWorkerKind *kind)
{
	bool		found;
	PgappDbWorkers *w;
	DbWorkerLocal *l = NULL;

	w = ShmemInitStruct(kind->shmem_name, dbworker_size(kind), &found);
	if (!found)
	{
		memset(w, 0, dbworker_size(kind));
		w->lock = &(GetNamedLWLockTranche(kind->shmem_name))->lock;
		w->nslots = kind->max_databases;
		for (int i = 0; i < w->nslots; i++)
			w->slots[i].state = DBWORKER_FREE;
	}
	for (int i = 0; i < nlocals; i++)
		if (locals[i].kind == kind)
			l = &locals[i];
	if (l == NULL)
	{
		if (nlocals == DBWORKER_MAX_KINDS)
			elog(ERROR, "too many per-database worker kinds");
		l = &locals[nlocals++];
	}
	l->shared = w;
	l->kind = kind;
	return w;
}

/* The slot of a database, or NULL.  Caller holds the lock. */
static DbWorkerSlot *
find_slot(PgappDbWorkers *w, Oid dboid)
{
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].dboid == dboid)
			return &w->slots[i];
	return NULL;
}

static bool
register_worker(const PgappDbWorkerKind *kind, Oid dboid)
{
	BackgroundWorker bgw = {0};

	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "pgapp", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, kind->function_name, BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, kind->name_format, dboid);
	strlcpy(bgw.bgw_type, kind->type_name, BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	return RegisterDynamicBackgroundWorker(&bgw, NULL);
}

/*
 * Under the lock (EXCLUSIVE when start): wake the database's worker, or
 * mark its slot STARTING; returns whether to register a start, and in
 * *no_room whether no slot was free.
 */
static bool
wake_locked(PgappDbWorkers *w, Oid dboid, bool start, bool *no_room)
{
	TimestampTz now = GetCurrentTimestamp();
	DbWorkerSlot *s = find_slot(w, dboid);

	*no_room = false;
	if (s == NULL && start)
	{
		s = find_slot(w, InvalidOid);
		if (s == NULL)
		{
			*no_room = true;
			return false;
		}
		memset(s, 0, sizeof(DbWorkerSlot));
		s->dboid = dboid;
		s->state = DBWORKER_FREE;
	}
	if (s == NULL)
		return false;
	if (s->state == DBWORKER_RUNNING && s->latch != NULL)
		SetLatch(s->latch);
	else if (start && now >= s->restart_at &&
			 (s->state == DBWORKER_FREE ||
			  now - s->requested_at >= DBWORKER_START_RETRY_USECS))
	{
		s->state = DBWORKER_STARTING;
		s->stop_requested = false;
		s->requested_at = now;
		return true;
	}
	return false;
}

void
pgapp_dbworker_wake(PgappDbWorkers *w, Oid dboid, bool start)
{
	const PgappDbWorkerKind *kind;
	bool		must_start;
	bool		no_room;

	if (w == NULL)
		return;
	kind = local_of(w)->kind;
	LWLockAcquire(w->lock, start ? LW_EXCLUSIVE : LW_SHARED);
	must_start = wake_locked(w, dboid, start, &no_room);
	LWLockRelease(w->lock);

	if (no_room)
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("no slot is free for background worker \"%s\" of database %u",
					   kind->type_name, dboid),
				errdetail(kind->full_detail, kind->max_databases));
	else if (must_start && !register_worker(kind, dboid))
		ereport(WARNING,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("could not start background worker \"%s\" of database %u",
					   kind->type_name, dboid),
				errhint("%s", kind->start_hint));
}

/*
 * Restart the crashed workers whose backoff has passed, if their database
 * still exists (else forget their slot).
 */
static void
restart_crashed(PgappDbWorkers *w, const PgappDbWorkerKind *kind, List *restart)
{
	List	   *existing = pgapp_list_databases(kind->database_allowed);
	ListCell   *lc;

	foreach(lc, restart)
	{
		Oid			dboid = lfirst_oid(lc);

		if (list_member_oid(existing, dboid))
		{
			ereport(LOG,
					errmsg("restarting background worker \"%s\" of database %u",
						   kind->type_name, dboid));
			pgapp_dbworker_wake(w, dboid, true);
		}
		else
		{
			DbWorkerSlot *s;

			/* dropped: forget it */
			LWLockAcquire(w->lock, LW_EXCLUSIVE);
			s = find_slot(w, dboid);
			if (s != NULL && s->state == DBWORKER_FREE)
				s->dboid = InvalidOid;
			LWLockRelease(w->lock);
		}
	}
}

/*
 * The housekeeper's part (about once a second): once the server accepts
 * writes, start the worker of every database (one start at a time), so that
 * work left before a restart is done without waiting for a new wake-up;
 * later, restart crashed workers after their backoff.
 */
void
pgapp_dbworker_housekeeping(PgappDbWorkers *w)
{
	DbWorkerLocal *l;
	TimestampTz now = GetCurrentTimestamp();
	bool		busy = false;
	List	   *restart = NIL;

	if (w == NULL || RecoveryInProgress())
		return;
	l = local_of(w);
	if (!l->listed)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		l->to_visit = pgapp_list_databases(l->kind->database_allowed);
		l->listed = true;
		MemoryContextSwitchTo(old);
	}

	LWLockAcquire(w->lock, LW_SHARED);
	for (int i = 0; i < w->nslots; i++)
	{
		DbWorkerSlot *s = &w->slots[i];

		if (s->dboid == InvalidOid)
			continue;
		if (s->state == DBWORKER_STARTING && now - s->requested_at < DBWORKER_START_RETRY_USECS)
			busy = true;
		if (l->kind->restart_crashed && s->state == DBWORKER_FREE && s->crashed &&
			now >= s->restart_at)
			restart = lappend_oid(restart, s->dboid);
	}
	LWLockRelease(w->lock);

	if (restart != NIL)
		restart_crashed(w, l->kind, restart);
	if (busy || l->to_visit == NIL)
		return;
	{
		Oid			dboid = linitial_oid(l->to_visit);

		l->to_visit = list_delete_first(l->to_visit);
		pgapp_dbworker_wake(w, dboid, true);
	}
}

/*
 * DROP DATABASE is coming: ask the database's worker (and the kind's other
 * processes) to leave, and wait for them (at most 5 s; one still there then
 * makes the DROP fail as any other session does).  They leave on purpose,
 * so nothing restarts them.
 */
void
pgapp_dbworker_before_drop_database(PgappDbWorkers *w, Oid dboid)
{
	const PgappDbWorkerKind *kind;

	if (w == NULL)
		return;
	kind = local_of(w)->kind;
	for (int tries = 0; tries < DBWORKER_DROP_WAIT_TRIES; tries++)
	{
		bool		present = false;

		LWLockAcquire(w->lock, LW_EXCLUSIVE);
		for (int i = 0; i < w->nslots; i++)
		{
			DbWorkerSlot *s = &w->slots[i];

			if (s->dboid == dboid && s->state != DBWORKER_FREE)
			{
				present = true;
				s->stop_requested = true;
				if (s->latch)
					SetLatch(s->latch);
			}
		}
		LWLockRelease(w->lock);
		if (kind->others_leave != NULL && kind->others_leave(dboid))
			present = true;
		if (!present)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* At the worker's exit: free its slot, or note its crash. */
static void
release_slot(int code, Datum arg)
{
	PgappDbWorkers *w = my_table;
	TimestampTz now = GetCurrentTimestamp();
	DbWorkerSlot *s;

	if (w == NULL || my_slot < 0)
		return;
	s = &w->slots[my_slot];
	LWLockAcquire(w->lock, LW_EXCLUSIVE);
	if (s->pid == MyProcPid)
	{
		s->state = DBWORKER_FREE;
		s->pid = 0;
		s->latch = NULL;
		s->crashed = !my_clean_exit;
		if (my_clean_exit || !local_of(w)->kind->restart_crashed)
		{
			/* nothing to restart: the slot goes back */
			s->crashes = 0;
			s->dboid = InvalidOid;
		}
		else
		{
			s->crashes = Min(s->crashes + 1, DBWORKER_MAX_CRASHES);
			s->restart_at = now + Min((int64) USECS_PER_SEC << s->crashes,
									  DBWORKER_BACKOFF_MAX_USECS);
		}
	}
	LWLockRelease(w->lock);
	my_slot = -1;
	my_table = NULL;
}

int
pgapp_dbworker_attach(PgappDbWorkers *w, Oid dboid)
{
	DbWorkerSlot *s;

	if (w == NULL)
		return -1;
	LWLockAcquire(w->lock, LW_EXCLUSIVE);
	s = find_slot(w, dboid);
	if (s != NULL && s->state != DBWORKER_RUNNING)
	{
		s->state = DBWORKER_RUNNING;
		s->pid = MyProcPid;
		s->latch = MyLatch;
		my_slot = s - w->slots;
		my_table = w;
	}
	LWLockRelease(w->lock);
	if (my_slot < 0)
		return -1;				/* another worker runs here */
	before_shmem_exit(release_slot, (Datum) 0);
	return my_slot;
}

bool
pgapp_dbworker_stop_requested(PgappDbWorkers *w)
{
	return my_slot >= 0 && w->slots[my_slot].stop_requested;
}

void
pgapp_dbworker_leave(PgappDbWorkers *w)
{
	my_clean_exit = true;
}

int
pgapp_dbworker_find(PgappDbWorkers *w, Oid dboid)
{
	int			index = -1;

	if (w == NULL)
		return -1;
	LWLockAcquire(w->lock, LW_SHARED);
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].dboid == dboid && w->slots[i].state == DBWORKER_RUNNING)
			index = i;
	LWLockRelease(w->lock);
	return index;
}

int
pgapp_dbworker_slots(PgappDbWorkers *w, PgappDbWorkerSlotInfo *out)
{
	int			n = 0;

	if (w == NULL)
		return 0;
	LWLockAcquire(w->lock, LW_SHARED);
	for (int i = 0; i < w->nslots; i++)
	{
		DbWorkerSlot *s = &w->slots[i];

		if (s->dboid == InvalidOid || s->state == DBWORKER_FREE)
			continue;
		out[n].index = i;
		out[n].dboid = s->dboid;
		out[n].pid = s->state == DBWORKER_RUNNING ? s->pid : 0;
		out[n].running = s->state == DBWORKER_RUNNING;
		n++;
	}
	LWLockRelease(w->lock);
	return n;
}

/*-------------------------------------------------------------------------
 *
 * pubsub_outbox.c
 *	  The outbox delivery worker: one dynamic background worker per
 *	  database ("pgapp pubsub"), woken at the commit of every transaction
 *	  that wrote to pgapp.outbox, which sends the recorded messages with
 *	  NOTIFY in batches and deletes them in the same transaction.
 *
 * A message is deleted by the transaction that NOTIFYs it: if the server
 * stops between the writer's commit and the delivery, the rows are still
 * there and the next worker sends them.  Delivering transactions commit
 * asynchronously (see pgapp_pubsub_worker_main), so a crash right after a
 * delivery may send its messages again: at least once, with the same ids.
 * Batches are taken in outbox order (seq), which is the order in which the
 * writers reached their commit (pubsub.c writes the rows just before it).
 *
 * Shared memory holds one slot per database with a worker: its pid, its
 * latch and counters, under one LWLock.  A committing writer sets the
 * latch; if the database has no worker, it registers one (at most once per
 * 10 seconds while a start is pending).  The worker also wakes every second
 * on its own, which finds rows whose writer could not wake it (a prepared
 * transaction committed later, a failed start).  It leaves when pgapp is
 * not installed in its database.
 *
 * The same worker runs the rounds of presence and typing indicators
 * (SQL functions of the install script): pgapp._presence_flush() every
 * 1.5 s (one coalesced presence_diff per topic, expired metas leave) and
 * pgapp._typing_flush() every 250 ms while any indicator is on
 * (typing_stopped 3 s after the last pgapp.typing() call).  Presence and
 * typing calls wake it.
 *
 * src/pubsub_outbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "pubsub.h"
#include "pubsub_int.h"

#define OUTBOX_MAX_DATABASES 16
#define OUTBOX_BATCH 500
#define OUTBOX_POLL_MS 1000
#define OUTBOX_START_RETRY_USECS (10 * USECS_PER_SEC)
#define OUTBOX_PRUNE_USECS (60 * USECS_PER_SEC)
#define OUTBOX_SEQ_MARGIN 10000		/* how far behind the last seq a batch reads */
#define OUTBOX_RESCAN_USECS (10 * USECS_PER_SEC)	/* read from the start this often */
#define PRESENCE_ROUND_USECS (1500 * 1000)	/* presence_diff at most this often */
#define TYPING_ROUND_USECS (250 * 1000) /* typing_stopped within this of its time */

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

PGDLLEXPORT void pgapp_pubsub_worker_main(Datum arg);

void
pgapp_pubsub_outbox_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxShared)));
	RequestNamedLWLockTranche("pgapp pubsub", 1);
}

/* Caller holds AddinShmemInitLock. */
void
pgapp_pubsub_outbox_shmem_startup(void)
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
				errmsg("pgapp pubsub: no delivery worker slot is free for database %u", dboid),
				errdetail("At most %d databases can have an outbox worker at once.", OUTBOX_MAX_DATABASES));
	else if (must_start && !start_worker(dboid))
		ereport(WARNING,
				errmsg("pgapp pubsub: could not start the delivery worker of database %u", dboid),
				errhint("Raise \"max_worker_processes\"; messages wait in pgapp.outbox until a worker starts."));
}

/* At the commit of a transaction that wrote to the outbox. */
void
pgapp_pubsub_wake_worker(void)
{
	wake_or_start(MyDatabaseId);
}

/*
 * DROP DATABASE is coming (pgapp.c): ask the database's delivery worker to
 * leave and wait for it (at most 5 s).  Messages it had not sent yet are
 * dropped with the database.
 */
void
pgapp_pubsub_before_drop_database(Oid dboid)
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
 * The housekeeper's part (worker.c): once the server accepts writes, start
 * the delivery worker of every database, one at a time, so that messages
 * committed before a restart or a crash are delivered without waiting for
 * a new writer.  A worker leaves at once where pgapp is not installed.
 */
static List *databases_to_visit = NIL;
static bool databases_listed = false;


void
pgapp_pubsub_housekeeping(void)
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
 * The worker
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

/* Take the database's slot; false when another worker runs there. */
static bool
claim_slot(Oid dboid)
{
	OutboxShared *sh = outbox_shared;
	int			slot = -1;
	int			free_slot = -1;

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
	return slot >= 0;
}

/*
 * One batch: delete up to OUTBOX_BATCH messages in outbox order and NOTIFY
 * them, in one transaction.  Returns how many, or -1 when pgapp is not
 * installed in this database.
 *
 * check_extension: first see whether pgapp is still installed (once per
 * round of batches, not for every batch).
 *
 * Only rows after *from are read.  A queue table's index starts with the
 * entries of rows deleted since the last vacuum; reading from the start each
 * time would step over all of them for every batch (and fall behind the
 * writers just when they are busiest).  *from is kept OUTBOX_SEQ_MARGIN
 * behind the last row delivered, because a writer takes its seq just before
 * its commit and may commit after a later seq; the caller also reads from
 * the start now and then, which finds any straggler beyond the margin.
 */
static int
deliver_batch(int64 *from, bool check_extension)
{
	int			ret;
	int			n = 0;
	int64		last = *from;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (check_extension && !OidIsValid(get_extension_oid("pgapp", true)))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return -1;
	}
	pgstat_report_activity(STATE_RUNNING, "pgapp pubsub: delivering the outbox");
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	args[0] = Int64GetDatum(*from);
	ret = SPI_execute_with_args("WITH batch AS ("
								"  DELETE FROM pgapp.outbox WHERE seq IN ("
								"    SELECT seq FROM pgapp.outbox WHERE seq > $1"
								"     ORDER BY seq LIMIT " CppAsString2(OUTBOX_BATCH) " FOR UPDATE SKIP LOCKED)"
								"  RETURNING seq, id, topic, event, payload, at)"
								" SELECT id::text, topic, event, payload, at, seq FROM batch ORDER BY seq",
								1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *id = SPI_getvalue(tup, desc, 1);
		char	   *topic = SPI_getvalue(tup, desc, 2);
		char	   *event = SPI_getvalue(tup, desc, 3);
		Jsonb	   *payload = DatumGetJsonbP(SPI_getbinval(tup, desc, 4, &isnull));
		TimestampTz at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));

		last = Max(last, DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)));
		CHECK_FOR_INTERRUPTS();
		pgapp_pubsub_notify(id, topic, event, payload, at);
		n++;
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	*from = Max(*from, last - OUTBOX_SEQ_MARGIN);
	if (n > 0)
	{
		OutboxSlot *s = &outbox_shared->slots[my_slot];

		pg_atomic_fetch_add_u64(&s->delivered, n);
		pg_atomic_fetch_add_u64(&s->batches, 1);
		pg_atomic_write_u64(&s->last_delivery, (uint64) GetCurrentTimestamp());
	}
	return n;
}

/*
 * Run one query in a transaction of its own; returns the first column of
 * its first row as a boolean (false when there is none).
 */
static bool
run_round(const char *sql, const char *activity)
{
	int			ret;
	bool		result = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute(sql, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		result = !isnull && DatumGetBool(d);
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

void
pgapp_pubsub_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	TimestampTz last_prune = 0;
	TimestampTz last_presence = 0;
	TimestampTz last_typing = 0;
	bool		typing_active = true;
	bool		woken = false;
	bool		busy = false;	/* the last batch had more than one message */
	int64		from = 0;		/* batches read rows with seq > from */
	bool		first;
	TimestampTz last_rescan = GetCurrentTimestamp();

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (outbox_shared == NULL || !claim_slot(dboid))
		proc_exit(0);			/* another worker serves this database */
	before_shmem_exit(release_slot, (Datum) 0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pgapp pubsub");

	/*
	 * A delivering transaction does not wait for its WAL flush: NOTIFY's
	 * cluster-wide lock is held through the commit, and a flush there would
	 * make every other NOTIFYing transaction wait for it.  Should the server
	 * crash before the flush, the deleted rows come back and their messages
	 * are sent again (same id): delivery is at least once, never lost.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	for (;;)
	{
		int			n;
		long		timeout;
		TimestampTz now;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (outbox_shared->slots[my_slot].stop_requested)
			proc_exit(0);		/* DROP DATABASE: the next writer elsewhere starts none here */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/*
		 * Woken by writers while busy: give the next ones a moment to commit
		 * too, so that one delivering transaction (one NOTIFY lock, one
		 * wake-up of every listener) carries many messages.
		 */
		if (woken && busy && pgapp_pubsub_batch_delay > 0)
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, pgapp_pubsub_batch_delay,
							 PG_WAIT_EXTENSION);
		if (GetCurrentTimestamp() - last_rescan >= OUTBOX_RESCAN_USECS)
		{
			from = 0;			/* stragglers beyond the margin, if any */
			last_rescan = GetCurrentTimestamp();
		}
		first = true;
		do
		{
			n = deliver_batch(&from, first);
			first = false;
			if (n < 0)
			{
				ereport(DEBUG1,
						errmsg("pgapp pubsub: pgapp is not installed in database %u; the delivery worker stops",
							   dboid));
				proc_exit(0);
			}
			busy = n > 1;
		} while (n == OUTBOX_BATCH);
		now = GetCurrentTimestamp();
		if (now - last_typing >= TYPING_ROUND_USECS)
		{
			/* typing_stopped for what is over; keep the fast pace while any is on */
			typing_active = run_round("SELECT pgapp._typing_flush() >= 0"
									  " AND EXISTS (SELECT FROM pgapp.typing)",
									  "pgapp pubsub: typing indicators");
			last_typing = now;
		}
		if (now - last_presence >= PRESENCE_ROUND_USECS)
		{
			(void) run_round("SELECT pgapp._presence_flush() > 0", "pgapp pubsub: presence");
			last_presence = now;
		}
		if (now - last_prune >= OUTBOX_PRUNE_USECS)
		{
			(void) run_round("SELECT pgapp._pubsub_prune() > 0", "pgapp pubsub: pruning messages");
			last_prune = now;
		}
		timeout = (last_presence + PRESENCE_ROUND_USECS - GetCurrentTimestamp()) / 1000;
		if (typing_active)
			timeout = Min(timeout, TYPING_ROUND_USECS / 1000);
		timeout = Max(Min(timeout, OUTBOX_POLL_MS), 1);
		woken = (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   timeout, PG_WAIT_EXTENSION) & WL_LATCH_SET) != 0;
		if (woken)
			typing_active = true;	/* woken by a writer: typing may have started */
	}
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

/*-------------------------------------------------------------------------
 *
 * pubsub_outbox.c
 *	  The outbox's delivery workers, one per database on core/dbworker.c,
 *	  their counters in shared memory, the wake-up at commit, and the module
 *	  entry of PubSub.
 *
 * Every transaction that wrote to pgapp.outbox wakes its database's
 * delivery worker ("pgapp pubsub", pubsub_worker.c) after it commits; if
 * the database has no worker, it registers one (core/dbworker.c: at most
 * once per 10 seconds while a start is pending).  The worker also wakes
 * every second on its own, which finds rows whose writer could not wake it
 * (a prepared transaction committed later, a failed start).  The
 * housekeeper starts the worker of every database once the server accepts
 * writes, one at a time, so that messages committed before a restart are
 * delivered without waiting for a new writer.  Before DROP DATABASE the
 * database's worker is asked to leave, and waited for.  A worker that
 * crashes is not restarted: the next writer or the housekeeper's next
 * visit of its database starts one.
 *
 * Lock protocol.  The slots (database, state, pid, latch, start time,
 * stop request) are core/dbworker.c's, under its one LWLock (tranche
 * "pgapp pubsub workers"); see there for which path takes it in which
 * mode.  This file never takes it directly: it goes through the
 * pgapp_dbworker_* functions and holds no other lock meanwhile.  pubsub's
 * own shared memory ("pgapp pubsub") is an array of counters, one per
 * slot index, with no lock: delivered, batches and last_delivery are
 * atomics, reset when a worker attaches to the slot and then written only
 * by that worker; pgapp._pubsub_workers reads them without a lock after
 * copying the slots (a worker that attaches meanwhile shows its first
 * counters, which is fine for a monitoring view).
 *
 * src/pubsub/pubsub_outbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "core/dbworker.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "core/xact_defer.h"
#include "pubsub.h"
#include "pubsub_int.h"

#define OUTBOX_MAX_DATABASES 16

static const PgappDbWorkerKind outbox_kind = {
	.shmem_name = "pgapp pubsub workers",
	.function_name = "pgapp_pubsub_worker_main",
	.type_name = "pgapp pubsub",
	.name_format = "pgapp pubsub for database %u",
	.max_databases = OUTBOX_MAX_DATABASES,
	.restart_crashed = false,
	.database_allowed = NULL,
	.others_leave = NULL,
	.full_detail = "At most %d databases can have an outbox worker at once.",
	.start_hint = "Raise \"max_worker_processes\"; messages wait in pgapp.outbox until a worker starts.",
};

/* The counters of the worker in one slot (by core/dbworker's slot index). */
typedef struct OutboxCounters
{
	pg_atomic_uint64 delivered; /* messages sent */
	pg_atomic_uint64 batches;	/* delivering transactions */
	pg_atomic_uint64 last_delivery; /* TimestampTz of the last batch */
} OutboxCounters;

static PgappDbWorkers *outbox_workers = NULL;
static OutboxCounters *outbox_counters = NULL;
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

#define OUTBOX_COUNTERS_SIZE (sizeof(OutboxCounters) * OUTBOX_MAX_DATABASES)

static void
outbox_shmem_request(void)
{
	pgapp_dbworker_shmem_request(&outbox_kind);
	RequestAddinShmemSpace(MAXALIGN(OUTBOX_COUNTERS_SIZE));
}

/* Caller holds AddinShmemInitLock. */
static void
outbox_shmem_startup(void)
{
	bool		found;

	outbox_workers = pgapp_dbworker_shmem_startup(&outbox_kind);
	outbox_counters = ShmemInitStruct("pgapp pubsub", OUTBOX_COUNTERS_SIZE, &found);
	if (!found)
	{
		for (int i = 0; i < OUTBOX_MAX_DATABASES; i++)
		{
			pg_atomic_init_u64(&outbox_counters[i].delivered, 0);
			pg_atomic_init_u64(&outbox_counters[i].batches, 0);
			pg_atomic_init_u64(&outbox_counters[i].last_delivery, 0);
		}
	}
}

static const char *
pubsub_status(void)
{
	return outbox_workers != NULL ? "ok" : "not preloaded";
}

bool
pgapp_pubsub_outbox_attached(void)
{
	return outbox_workers != NULL;
}

/* After the commit of a transaction that wrote to the outbox. */
static void
wake_action(List *args)
{
	pgapp_dbworker_wake(outbox_workers, MyDatabaseId, true);
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
 * DROP DATABASE is coming (core/module.c): ask the database's delivery
 * worker to leave and wait for it (at most 5 s).  Messages it had not sent
 * yet are dropped with the database.
 */
static void
outbox_before_drop_database(Oid dboid)
{
	pgapp_dbworker_before_drop_database(outbox_workers, dboid);
}

/*
 * The housekeeper's part (core/housekeeper.c): once the server accepts
 * writes, start the delivery worker of every database, one at a time, so
 * that messages committed before a restart or a crash are delivered
 * without waiting for a new writer.  A worker leaves at once where pgapp is
 * not installed.
 */
static void
outbox_housekeeping(void)
{
	pgapp_dbworker_housekeeping(outbox_workers);
}

/* ---------------------------------------------------------------------
 * The worker's slot
 * ---------------------------------------------------------------------
 */

/*
 * The delivery worker of dboid takes its slot (given back when it exits)
 * and starts its counters from zero; false when the shared memory is
 * missing, no start was asked for, or another worker runs there.
 */
bool
pgapp_pubsub_outbox_claim(Oid dboid)
{
	int			slot;
	OutboxCounters *c;

	if (outbox_counters == NULL)
		return false;
	slot = pgapp_dbworker_attach(outbox_workers, dboid);
	if (slot < 0)
		return false;
	c = &outbox_counters[slot];
	pg_atomic_write_u64(&c->delivered, 0);
	pg_atomic_write_u64(&c->batches, 0);
	pg_atomic_write_u64(&c->last_delivery, 0);
	my_slot = slot;
	return true;
}

/* Has DROP DATABASE asked the calling worker to leave? */
bool
pgapp_pubsub_outbox_stop_requested(void)
{
	return pgapp_dbworker_stop_requested(outbox_workers);
}

/* The calling worker leaves on purpose (before proc_exit). */
void
pgapp_pubsub_outbox_leave(void)
{
	pgapp_dbworker_leave(outbox_workers);
}

/* The calling worker delivered n messages in one transaction. */
void
pgapp_pubsub_outbox_delivered(int n)
{
	OutboxCounters *c = &outbox_counters[my_slot];

	pg_atomic_fetch_add_u64(&c->delivered, n);
	pg_atomic_fetch_add_u64(&c->batches, 1);
	pg_atomic_write_u64(&c->last_delivery, (uint64) GetCurrentTimestamp());
}

/*
 * pgapp._pubsub_start_worker() -> void: start this database's worker if it
 * is not running, and wake it (presence and typing need its rounds).
 */
PG_FUNCTION_INFO_V1(pgapp_pubsub_start_worker);
Datum
pgapp_pubsub_start_worker(PG_FUNCTION_ARGS)
{
	pgapp_require_shmem(outbox_workers, "presence and typing indicators");
	pgapp_dbworker_wake(outbox_workers, MyDatabaseId, true);
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
	PgappDbWorkerSlotInfo slots[OUTBOX_MAX_DATABASES];
	int			n;

	pgapp_require_shmem(outbox_workers, "the pubsub outbox");
	InitMaterializedSRF(fcinfo, 0);
	n = pgapp_dbworker_slots(outbox_workers, slots);
	for (int i = 0; i < n; i++)
	{
		OutboxCounters *c = &outbox_counters[slots[i].index];
		Datum		values[6];
		bool		nulls[6] = {false};
		uint64		last;

		values[0] = ObjectIdGetDatum(slots[i].dboid);
		values[1] = Int32GetDatum(slots[i].pid);
		nulls[1] = slots[i].pid == 0;
		values[2] = CStringGetTextDatum(slots[i].running ? "running" : "starting");
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&c->delivered));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&c->batches));
		last = pg_atomic_read_u64(&c->last_delivery);
		values[5] = TimestampTzGetDatum((TimestampTz) last);
		nulls[5] = last == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

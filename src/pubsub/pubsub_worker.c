/*-------------------------------------------------------------------------
 *
 * pubsub_worker.c
 *	  The outbox delivery worker: one dynamic background worker per
 *	  database ("pgapp pubsub"), which sends the messages recorded in
 *	  pgapp.outbox with NOTIFY in batches and deletes them in the same
 *	  transaction, and runs the rounds of presence and typing indicators.
 *
 * A message is deleted by the transaction that NOTIFYs it: if the server
 * stops between the writer's commit and the delivery, the rows are still
 * there and the next worker sends them.  Delivering transactions commit
 * asynchronously (see pgapp_pubsub_worker_main), so a crash right after a
 * delivery may send its messages again: at least once, with the same ids.
 * Batches are taken in outbox order (seq), which is the order in which the
 * writers reached their commit (pubsub_broadcast.c writes the rows just
 * before it).  The worker leaves when pgapp is not installed in its
 * database.
 *
 * The same worker runs the rounds of presence and typing indicators
 * (SQL functions of the install script): pgapp._presence_flush() every
 * 1.5 s (one coalesced presence_diff per topic, expired metas leave) and
 * pgapp._typing_flush() every 250 ms while any indicator is on
 * (typing_stopped 3 s after the last pgapp.typing() call).  Presence and
 * typing calls wake it.
 *
 * Shared memory: the worker's slot is a core/dbworker.c one and its
 * counters are pubsub_outbox.c's atomics (see its lock protocol); this file
 * only claims the slot, reads its stop request, leaves on purpose and adds
 * to the counters, through pubsub_int.h.
 *
 * src/pubsub/pubsub_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "core/settings.h"
#include "pubsub_int.h"

#define OUTBOX_BATCH 500
#define OUTBOX_POLL_MS 1000
#define OUTBOX_PRUNE_USECS (60 * USECS_PER_SEC)
#define OUTBOX_SEQ_MARGIN 10000 /* how far behind the last seq a batch reads */
#define OUTBOX_RESCAN_USECS (10 * USECS_PER_SEC)	/* read from the start
													 * this often */
#define PRESENCE_ROUND_USECS (1500 * 1000)	/* presence_diff at most this
											 * often */
#define TYPING_ROUND_USECS (250 * 1000) /* typing_stopped within this of its
										 * time */

/* Where the worker's loop stands between rounds. */
typedef struct PubsubWorkerState
{
	Oid			dboid;
	TimestampTz last_prune;
	TimestampTz last_presence;
	TimestampTz last_typing;
	TimestampTz last_rescan;
	bool		typing_active;
	bool		woken;			/* the last wait ended on the latch */
	bool		busy;			/* the last batch had more than one message */
	int64		from;			/* batches read rows with seq > from */
} PubsubWorkerState;

PGDLLEXPORT void pgapp_pubsub_worker_main(Datum arg);

/*
 * Has pgapp.outbox the sender column of 0.3.0?  (A syscache lookup: cheap
 * enough for every batch, and right after ALTER EXTENSION UPDATE.)
 */
static bool
outbox_has_sender(void)
{
	Oid			relid = get_relname_relid("outbox", get_namespace_oid("pgapp", true));

	return OidIsValid(relid) && get_attnum(relid, "sender") != InvalidAttrNumber;
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

	/*
	 * The sender column (broadcast_from) came with 0.3.0: a table not yet
	 * updated by ALTER EXTENSION UPDATE has none.
	 */
	ret = SPI_execute_with_args(outbox_has_sender() ?
								"WITH batch AS ("
								"  DELETE FROM pgapp.outbox WHERE seq IN ("
								"    SELECT seq FROM pgapp.outbox WHERE seq > $1"
								"     ORDER BY seq LIMIT " CppAsString2(OUTBOX_BATCH) " FOR UPDATE SKIP LOCKED)"
								"  RETURNING seq, id, topic, event, payload, at, sender)"
								" SELECT id::text, topic, event, payload, at, seq, sender FROM batch ORDER BY seq" :
								"WITH batch AS ("
								"  DELETE FROM pgapp.outbox WHERE seq IN ("
								"    SELECT seq FROM pgapp.outbox WHERE seq > $1"
								"     ORDER BY seq LIMIT " CppAsString2(OUTBOX_BATCH) " FOR UPDATE SKIP LOCKED)"
								"  RETURNING seq, id, topic, event, payload, at)"
								" SELECT id::text, topic, event, payload, at, seq, NULL::text FROM batch ORDER BY seq",
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

		char	   *sender = SPI_getvalue(tup, desc, 7);

		last = Max(last, DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)));
		CHECK_FOR_INTERRUPTS();
		pgapp_pubsub_notify(id, topic, event, payload, at, sender);
		n++;
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
	*from = Max(*from, last - OUTBOX_SEQ_MARGIN);
	if (n > 0)
		pgapp_pubsub_outbox_delivered(n);

	/*
	 * Idle only once the batch is counted: an empty outbox and an idle worker
	 * mean the counters are current (the regress test waits on that).
	 */
	pgstat_report_activity(STATE_IDLE, NULL);
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

/*
 * Deliver everything waiting: batches until one comes back short.  Woken by
 * writers while busy, first give the next ones a moment to commit too, so
 * that one delivering transaction (one NOTIFY lock, one wake-up of every
 * listener) carries many messages.
 */
static void
deliver_all(PubsubWorkerState *ws)
{
	bool		first = true;
	int			n;

	if (ws->woken && ws->busy && pgapp_pubsub_batch_delay > 0)
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, pgapp_pubsub_batch_delay,
						 PG_WAIT_EXTENSION);
	if (GetCurrentTimestamp() - ws->last_rescan >= OUTBOX_RESCAN_USECS)
	{
		ws->from = 0;			/* stragglers beyond the margin, if any */
		ws->last_rescan = GetCurrentTimestamp();
	}
	do
	{
		n = deliver_batch(&ws->from, first);
		first = false;
		if (n < 0)
		{
			ereport(DEBUG1,
					errmsg("pgapp is not installed in database %u; the pubsub delivery worker stops",
						   ws->dboid));
			pgapp_pubsub_outbox_leave();
			proc_exit(0);
		}
		ws->busy = n > 1;
	} while (n == OUTBOX_BATCH);
}

/* The presence, typing and pruning rounds that are due. */
static void
run_due_rounds(PubsubWorkerState *ws)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now - ws->last_typing >= TYPING_ROUND_USECS)
	{
		/* typing_stopped for what is over; keep the fast pace while any is on */
		ws->typing_active = run_round("SELECT pgapp._typing_flush() >= 0"
									  " AND EXISTS (SELECT FROM pgapp.typing)",
									  "pgapp pubsub: typing indicators");
		ws->last_typing = now;
	}
	if (now - ws->last_presence >= PRESENCE_ROUND_USECS)
	{
		(void) run_round("SELECT pgapp._presence_flush() > 0", "pgapp pubsub: presence");
		ws->last_presence = now;
	}
	if (now - ws->last_prune >= OUTBOX_PRUNE_USECS)
	{
		(void) run_round("SELECT pgapp._pubsub_prune() > 0", "pgapp pubsub: pruning messages");
		ws->last_prune = now;
	}
}

/* Sleep until the next round is due or a writer sets the latch. */
static void
wait_for_work(PubsubWorkerState *ws)
{
	long		timeout;

	timeout = (ws->last_presence + PRESENCE_ROUND_USECS - GetCurrentTimestamp()) / 1000;
	if (ws->typing_active)
		timeout = Min(timeout, TYPING_ROUND_USECS / 1000);
	timeout = Max(Min(timeout, OUTBOX_POLL_MS), 1);
	ws->woken = (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   timeout, PG_WAIT_EXTENSION) & WL_LATCH_SET) != 0;
	if (ws->woken)
		ws->typing_active = true;	/* woken by a writer: typing may have
									 * started */
}

void
pgapp_pubsub_worker_main(Datum arg)
{
	PubsubWorkerState ws = {0};

	ws.dboid = DatumGetObjectId(arg);
	ws.typing_active = true;
	ws.last_rescan = GetCurrentTimestamp();
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!pgapp_pubsub_outbox_claim(ws.dboid))
		proc_exit(0);			/* another worker serves this database */
	BackgroundWorkerInitializeConnectionByOid(ws.dboid, InvalidOid, 0);
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
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (pgapp_pubsub_outbox_stop_requested())
		{
			/* DROP DATABASE: the next writer elsewhere starts none here */
			pgapp_pubsub_outbox_leave();
			proc_exit(0);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		deliver_all(&ws);
		run_due_rounds(&ws);
		wait_for_work(&ws);
	}
}

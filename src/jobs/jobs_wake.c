/*-------------------------------------------------------------------------
 *
 * jobs_wake.c
 *	  Wake-ups of queue workers and supervisors, at once or at the commit
 *	  of the transaction that asks (core/xact_defer), and the interrupts
 *	  pgapp.cancel_job sends to a running job's worker.
 *
 * Wake-ups are hints: a transaction that makes work due calls
 * pgapp._job_wake_workers(queue); at its commit, an idle worker of that
 * queue gets its latch set, or, when none is idle, the database's
 * supervisor, which starts workers up to the queue's concurrency.  Workers
 * and supervisors always re-read the tables, so an early, late or lost
 * wake-up costs latency, never a job.  A transaction sends one wake-up per
 * queue, for all the jobs it made due.
 *
 * pgapp.cancel_job of a running job calls pgapp._job_interrupt(id); at
 * commit, the slot running that job is told, and its worker cancels the
 * job within 100 ms (jobs_worker.c).
 *
 * What a savepoint asked for follows it: released, it is its parent's (a
 * later sibling's rollback does not take it away); rolled back, it is gone.
 *
 * Takes the lock of pgapp_jobs_shared in SHARED mode (see jobs_shmem.c).
 *
 * src/jobs/jobs_wake.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "core/dbworker.h"
#include "core/xact_defer.h"
#include "jobs_int.h"

/* A wake-up or an interrupt to send at commit. */
typedef struct PendingAction
{
	bool		interrupt;		/* else wake */
	bool		start;			/* may start the supervisor
								 * (pgapp.jobs_databases) */
	int64		job_id;
	int			pid;			/* of the worker that claimed it */
	int			count;			/* jobs made due (wake-ups) */
	char		queue[JOBS_QUEUE_LEN];
} PendingAction;

/*
 * Set the latch of a database's supervisor; when it has none and start is
 * true, start one (core/dbworker.c: at most once per 10 s while a start is
 * pending, not before a crashed one's backoff).  Raises no error.
 */
void
pgapp_jobs_wake_supervisor(Oid dboid, bool start)
{
	pgapp_dbworker_wake(pgapp_jobs_supervisors, dboid, start);
}

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

	LWLockAcquire(pgapp_jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

		if (s->state == JOBS_FREE || s->dboid != dboid || s->stop_requested || strcmp(s->queue, queue) != 0)
			continue;
		workers++;
		if (woke < count && s != except && s->state == JOBS_IDLE && s->latch != NULL)
		{
			SetLatch(s->latch);
			woke++;
		}
	}
	LWLockRelease(pgapp_jobs_shared->lock);
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
	LWLockAcquire(pgapp_jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

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
	LWLockRelease(pgapp_jobs_shared->lock);
}

/* After commit (core/xact_defer): send what the transaction asked for, in order. */
static void
jobs_at_commit(List *actions)
{
	ListCell   *lc;

	if (pgapp_jobs_shared == NULL)
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
defer_action(bool interrupt, int64 job_id, int pid, const char *queue, int count)
{
	MemoryContext old;
	PendingAction *a;

	if (!interrupt)
	{
		ListCell   *lc;
		List	   *pending = pgapp_xact_deferred(PGAPP_XACT_COMMIT, jobs_at_commit);

		foreach(lc, pending)
		{
			PendingAction *p = (PendingAction *) lfirst(lc);

			if (!p->interrupt && strcmp(p->queue, queue) == 0)
			{
				/*
				 * One wake-up per queue and transaction, for all its jobs.
				 * Merged into a parent's request, it stays if this
				 * subtransaction rolls back: a wake-up too many is harmless.
				 */
				p->count = Min((int64) p->count + count, PG_INT32_MAX);
				list_free(pending);
				return;
			}
		}
		list_free(pending);
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	a = palloc0(sizeof(PendingAction));
	a->interrupt = interrupt;
	a->start = pgapp_jobs_database_allowed(get_database_name(MyDatabaseId));
	a->job_id = job_id;
	a->pid = pid;
	a->count = count;
	if (queue != NULL)
		strlcpy(a->queue, queue, JOBS_QUEUE_LEN);
	MemoryContextSwitchTo(old);
	pgapp_xact_defer(PGAPP_XACT_COMMIT, jobs_at_commit, a);
}

/* At commit: wake count idle workers of the queue, or its supervisor. */
void
pgapp_jobs_wake_at_commit(const char *queue, int count)
{
	defer_action(false, 0, 0, queue, count);
}

/* At commit: cancel the job in the worker (pid) that claimed it. */
void
pgapp_jobs_interrupt_at_commit(int64 job_id, int pid)
{
	defer_action(true, job_id, pid, NULL, 0);
}

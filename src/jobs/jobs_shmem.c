/*-------------------------------------------------------------------------
 *
 * jobs_shmem.c
 *	  The job queue's shared memory: the queue workers' slots (JobsShared,
 *	  jobs_int.h) and the supervisors' table (a core/dbworker one), their
 *	  request and initialization, and the slot helpers of a worker.
 *
 * Lock protocol.  pgapp_jobs_shared->lock (tranche "pgapp jobs") protects
 * each slot's identity and state fields: state, dboid, queue, pid, latch,
 * generation, clean_exit, stop_requested, first_claim, since.  Its atomics
 * (job_id, cancel_job, cancel_ring, cancel_next, jobs_done) are read and
 * written without it; the progress fields are under the slot's spinlock
 * (mutex), taken alone and never with a wait or an error inside.  The
 * supervisors' table has its own lock (core/dbworker.c); no path holds
 * both.  Who takes the lock, in which mode, for what:
 *	 EXCLUSIVE
 *	   - jobs_worker.c: the worker's attach (STARTING -> IDLE, pid, latch),
 *		 release_slot at its exit (-> FREE);
 *	   - jobs_shmem.c: pgapp_jobs_set_state (IDLE <-> BUSY, since);
 *	   - jobs_supervisor.c: start_worker's reservation of a slot (-> STARTING
 *		 with a new generation) and its undo when the start fails;
 *		 reap_workers (orphans, then each ended worker it started).
 *	 SHARED (reading the slots; setting a latch, or a stop_requested flag
 *	 only the slot's own worker reads: a stale read costs one round)
 *	   - jobs_shmem.c: pgapp_jobs_slots_leave (DROP DATABASE, the database
 *		 leaving pgapp.jobs_databases);
 *	   - jobs_wake.c: pgapp_jobs_wake_queue, interrupt_job (at commit);
 *	   - jobs_supervisor.c: live_workers, tend_queue (also asks extra
 *		 workers to leave);
 *	   - jobs_api.c: pgapp._job_workers().
 * Nothing done under the lock waits or raises an error: set fields, set a
 * latch, copy names (live_workers pallocs, which can only fail with out of
 * memory).  relay_progress reads the slots with no lock: a slot it reads
 * while it changes hands shows a job id 0 or its old one, and at worst a
 * progress report is relayed for the job that just ended.
 *
 * src/jobs/jobs_shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "core/dbworker.h"
#include "core/settings.h"
#include "jobs_int.h"

JobsShared *pgapp_jobs_shared = NULL;
PgappDbWorkers *pgapp_jobs_supervisors = NULL;

/* This process's slot when it is a queue worker (jobs_worker.c sets it). */
JobsSlot   *pgapp_jobs_my_slot = NULL;

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

/* The supervisors: one per database, restarted after a crash. */
static const PgappDbWorkerKind supervisor_kind = {
	.shmem_name = "pgapp jobs supervisors",
	.function_name = "pgapp_jobs_supervisor_main",
	.type_name = "pgapp jobs supervisor",
	.name_format = "pgapp jobs supervisor for database %u",
	.max_databases = JOBS_MAX_DATABASES,
	.restart_crashed = true,
	.database_allowed = pgapp_jobs_database_allowed,
	.others_leave = pgapp_jobs_slots_leave,
	.full_detail = "At most %d databases can run pgapp jobs at once.",
	.start_hint = "Raise \"max_worker_processes\": pgapp needs one process per database with jobs, plus one per running queue worker.",
};

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
	pgapp_dbworker_shmem_request(&supervisor_kind);
}

/* Caller holds AddinShmemInitLock. */
void
pgapp_jobs_shmem_startup(void)
{
	bool		found;

	pgapp_jobs_supervisors = pgapp_dbworker_shmem_startup(&supervisor_kind);
	pgapp_jobs_shared = ShmemInitStruct("pgapp jobs", jobs_shmem_size(), &found);
	if (found)
		return;
	memset(pgapp_jobs_shared, 0, jobs_shmem_size());
	pgapp_jobs_shared->lock = &(GetNamedLWLockTranche("pgapp jobs"))->lock;
	pgapp_jobs_shared->nslots = pgapp_jobs_max_workers;
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

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
		pgapp_jobs_running_startup(pgapp_jobs_shared->nslots);
}

/*
 * Ask the queue workers of a database to leave (after their current batch);
 * returns whether any is there.
 */
bool
pgapp_jobs_slots_leave(Oid dboid)
{
	bool		present = false;

	if (pgapp_jobs_shared == NULL)
		return false;
	LWLockAcquire(pgapp_jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];

		if (s->dboid == dboid && s->state != JOBS_FREE)
		{
			present = true;
			s->stop_requested = true;
			if (s->latch)
				SetLatch(s->latch);
		}
	}
	LWLockRelease(pgapp_jobs_shared->lock);
	return present;
}

/* In a queue worker: its slot's state. */
void
pgapp_jobs_set_state(JobsProcState state)
{
	JobsSlot   *s = pgapp_jobs_my_slot;

	if (s->state == state)
		return;
	LWLockAcquire(pgapp_jobs_shared->lock, LW_EXCLUSIVE);
	s->state = state;
	s->since = GetCurrentTimestamp();
	LWLockRelease(pgapp_jobs_shared->lock);
}

/* In a queue worker: leave on purpose (the supervisor does not count it as a crash). */
void
pgapp_jobs_worker_leave(const char *why)
{
	pgapp_jobs_my_slot->clean_exit = true;
	ereport(DEBUG1, errmsg("worker of queue \"%s\" leaves: %s",
						   pgapp_jobs_my_slot->queue, why));
	proc_exit(0);
}

/*-------------------------------------------------------------------------
 *
 * jobs_int.h
 *	  What the job queue's C files share: the shared-memory table of
 *	  supervisors (one per database) and worker slots (one per running
 *	  queue worker), and the functions that reach them.
 *
 * Three levels of processes, each watching the next:
 *	 - the pgapp housekeeper (core/housekeeper.c), server-wide and connected
 *	   to no database, is the launcher: it starts the supervisor of every
 *	   database once the server accepts writes, and restarts a crashed
 *	   supervisor with capped exponential backoff (jobs_launcher.c on
 *	   core/dbworker.c);
 *	 - a supervisor per database ("pgapp jobs supervisor",
 *	   jobs_supervisor.c) reads the queues, starts queue workers when work is
 *	   due, restarts crashed ones with backoff and a circuit breaker, rescues
 *	   orphaned jobs, wakes for scheduled jobs, relays progress, prunes;
 *	 - queue workers ("pgapp jobs worker", jobs_worker.c) claim batches of a
 *	   queue's jobs and run them.
 * Supervisors and workers are dynamic background workers that are never
 * restarted by the postmaster: their parent owns the restart policy.
 *
 * Files, bottom up (each includes only those below it): jobs_running.c,
 * jobs_shmem.c, jobs_wake.c, jobs_claim.c, jobs_completion.c, jobs_worker.c,
 * jobs_supervisor.c,
 * jobs_api.c, jobs_launcher.c (module entry).
 *
 * src/jobs/jobs_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_JOBS_INT_H
#define PGAPP_JOBS_INT_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/palloc.h"

#include "core/dbworker.h"
#include "jobs.h"

/* the most arguments a pgapp._job_* function called as the owner takes, caller excluded */
#define JOBS_MAX_CALL_ARGS 9

#define JOBS_MAX_DATABASES 16	/* with a supervisor at once */
#define JOBS_QUEUE_LEN 64		/* queue names have at most 52 bytes */
#define JOBS_MESSAGE_LEN 128	/* progress message kept in a slot */
#define JOBS_CANCEL_RING 16		/* cancel requests for a worker's claimed jobs */

typedef enum JobsProcState
{
	JOBS_FREE,					/* nobody */
	JOBS_STARTING,				/* registered, not attached yet */
	JOBS_IDLE,					/* attached, waiting for work */
	JOBS_BUSY					/* attached, running jobs */
} JobsProcState;

/* One queue worker. */
typedef struct JobsSlot
{
	JobsProcState state;
	Oid			dboid;
	char		queue[JOBS_QUEUE_LEN];
	pid_t		pid;
	Latch	   *latch;
	uint32		generation;		/* bumped at each start, so a stale start is
								 * told apart */
	bool		clean_exit;		/* the worker said it leaves on purpose */
	bool		stop_requested; /* its supervisor wants it to leave */
	int			first_claim;	/* its share of the backlog it is started for,
								 * claimed after its first job */
	TimestampTz since;			/* of the current state */
	TimestampTz job_started;
	pg_atomic_uint64 job_id;	/* the job running now, 0 if none */
	pg_atomic_uint64 cancel_job;	/* a job to interrupt */
	pg_atomic_uint64 cancel_ring[JOBS_CANCEL_RING]; /* claimed jobs to skip */
	pg_atomic_uint32 cancel_next;
	pg_atomic_uint64 jobs_done;
	slock_t		mutex;			/* protects the progress fields */
	uint32		progress_seq;	/* bumped at each report */
	double		progress;		/* percent, or -1 for none */
	char		progress_message[JOBS_MESSAGE_LEN];
} JobsSlot;

/*
 * The queue workers' slots.  The supervisors' table is a core/dbworker one
 * (pgapp_jobs_supervisors).  See jobs_shmem.c for the lock protocol.
 */
typedef struct JobsShared
{
	LWLock	   *lock;			/* the slots' identity and state fields */
	int			nslots;
	JobsSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} JobsShared;

/* A job a worker claimed (jobs_claim.c), to run (jobs_worker.c). */
typedef struct ClaimedJob
{
	int64		id;
	int32		attempt;
	Oid			worker;
	Oid			owner;
	Datum		args;			/* jsonb */
	Datum		info;			/* pgapp.job_info */
	int			timeout_ms;		/* 0: none */
} ClaimedJob;

extern JobsShared *pgapp_jobs_shared;
extern PgappDbWorkers *pgapp_jobs_supervisors;
extern JobsSlot *pgapp_jobs_my_slot;

/* jobs_shmem.c: shared memory, slots */
extern bool pgapp_jobs_database_allowed(const char *dbname);
extern void pgapp_jobs_shmem_request(void);
extern void pgapp_jobs_shmem_startup(void);
extern bool pgapp_jobs_slots_leave(Oid dboid);
extern void pgapp_jobs_set_state(JobsProcState state);
extern void pgapp_jobs_worker_leave(const char *why) pg_attribute_noreturn();

/* jobs_wake.c: wake-ups, at once or at commit */
extern void pgapp_jobs_wake_supervisor(Oid dboid, bool start);
extern void pgapp_jobs_wake_queue(Oid dboid, const char *queue, JobsSlot *except, bool start, int cap,
								  int count);
extern void pgapp_jobs_wake_at_commit(const char *queue, int count);
extern void pgapp_jobs_interrupt_at_commit(int64 job_id, int pid);

/* jobs_completion.c: the completions of a worker's open transaction */
extern void pgapp_jobs_completions_init(void);
extern void pgapp_jobs_add_completion(int64 id, Datum result, bool isnull, double progress);
extern void pgapp_jobs_flush_completions(void);

/* jobs_claim.c: a worker's claim of a batch */
extern List *pgapp_jobs_claim_batch(MemoryContext cxt, const char *by, int n, bool *full, int *cap);

/* jobs_running.c: the running job of each slot, in a file that outlives a crash */
extern void pgapp_jobs_running_startup(int nslots);
extern void pgapp_jobs_running_set(int slot, int64 job_id, int32 attempt);
extern void pgapp_jobs_running_clear(int slot);
extern int	pgapp_jobs_running_crashed(int64 *jobs, int32 *attempts, int *where, int max);
extern void pgapp_jobs_running_forget(const int *where, int n);

/* jobs_supervisor.c, jobs_worker.c: the processes' main functions */
PGDLLEXPORT void pgapp_jobs_supervisor_main(Datum arg);
PGDLLEXPORT void pgapp_jobs_worker_main(Datum arg);

#endif							/* PGAPP_JOBS_INT_H */

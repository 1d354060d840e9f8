/*-------------------------------------------------------------------------
 *
 * jobs_int.h
 *	  What the job queue's C files share: the shared-memory table of
 *	  supervisors (one per database) and worker slots (one per running
 *	  queue worker), and the functions that reach them.
 *
 * Three levels of processes, each watching the next:
 *	 - the pgapp housekeeper (worker.c), server-wide and connected to no
 *	   database, is the launcher: it starts the supervisor of every database
 *	   once the server accepts writes, and restarts a crashed supervisor with
 *	   capped exponential backoff (jobs_shmem.c, pgapp_jobs_housekeeping);
 *	 - a supervisor per database ("pgapp jobs supervisor",
 *	   jobs_supervisor.c) reads the queues, starts queue workers when work is
 *	   due, restarts crashed ones with backoff and a circuit breaker, rescues
 *	   orphaned jobs, wakes for scheduled jobs, relays progress, prunes;
 *	 - queue workers ("pgapp jobs worker", jobs_worker.c) claim batches of a
 *	   queue's jobs and run them.
 * Supervisors and workers are dynamic background workers that are never
 * restarted by the postmaster: their parent owns the restart policy.
 *
 * src/jobs_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_JOBS_INT_H
#define PGAPP_JOBS_INT_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#include "jobs.h"

#define JOBS_MAX_DATABASES 16
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

/* One database's supervisor. */
typedef struct JobsDatabase
{
	Oid			dboid;			/* InvalidOid: entry unused */
	JobsProcState state;		/* FREE, STARTING or IDLE (running) */
	pid_t		pid;
	Latch	   *latch;
	TimestampTz requested_at;	/* when a start was last requested */
	bool		no_extension;	/* the last supervisor found no pgapp here */
	bool		crashed;		/* the last supervisor did not exit cleanly */
	bool		stop_requested; /* DROP DATABASE is coming: leave */
	int			crashes;		/* in a row, for the backoff */
	TimestampTz restart_at;		/* not before this */
} JobsDatabase;

/* One queue worker. */
typedef struct JobsSlot
{
	JobsProcState state;
	Oid			dboid;
	char		queue[JOBS_QUEUE_LEN];
	pid_t		pid;
	Latch	   *latch;
	uint32		generation;		/* bumped at each start, so a stale start is told apart */
	bool		clean_exit;		/* the worker said it leaves on purpose */
	bool		stop_requested; /* its supervisor wants it to leave */
	int			first_claim;	/* its share of the backlog it is started for, claimed after its first job */
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

typedef struct JobsShared
{
	LWLock	   *lock;			/* databases[] and the slots' identity fields */
	JobsDatabase databases[JOBS_MAX_DATABASES];
	int			nslots;
	JobsSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} JobsShared;

extern JobsShared *jobs_shared;
extern JobsSlot *pgapp_jobs_my_slot;

/* jobs_shmem.c */
extern void pgapp_jobs_shmem_request(void);
extern void pgapp_jobs_shmem_startup(void);
extern void pgapp_jobs_housekeeping(void);
extern void pgapp_jobs_wake_supervisor(Oid dboid, bool start);
extern JobsDatabase *pgapp_jobs_database(Oid dboid);
extern void pgapp_jobs_wake_queue(Oid dboid, const char *queue, JobsSlot *except, bool start, int cap,
								  int count);

/* jobs_running.c: the running job of each slot, in a file that outlives a crash */
extern void pgapp_jobs_running_startup(int nslots);
extern void pgapp_jobs_running_set(int slot, int64 job_id, int32 attempt);
extern void pgapp_jobs_running_clear(int slot);
extern int	pgapp_jobs_running_crashed(int64 *jobs, int32 *attempts, int *where, int max);
extern void pgapp_jobs_running_forget(const int *where, int n);

/* jobs_supervisor.c, jobs_worker.c */
PGDLLEXPORT void pgapp_jobs_supervisor_main(Datum arg);
PGDLLEXPORT void pgapp_jobs_worker_main(Datum arg);

#endif							/* PGAPP_JOBS_INT_H */

/*-------------------------------------------------------------------------
 *
 * jobs_running.c
 *	  The job each queue worker is running, noted where a crash of the
 *	  server cannot erase it.
 *
 * A worker's claim commits without waiting for its WAL to reach the disk
 * (synchronous_commit = off for that transaction only): the job starts
 * sooner, and the run's own commit, which does wait, flushes the claim
 * with it.  If the server crashes in between -- and a job that kills its
 * backend is exactly what makes it crash -- recovery may bring the job back
 * as if it had never been claimed, its attempt not counted, and the job
 * would crash the server again, for ever.
 *
 * So before a job runs, its worker writes (database, job, attempt) into its
 * slot of a small file in the data directory that every server process
 * maps (MAP_SHARED): plain stores into the page cache, no system call, and
 * they survive the end of any process, the postmaster included; only an
 * operating-system crash can lose them, which no job can cause.  The slot
 * is cleared when the job ends (not when its worker exits: that may be an
 * orphan leaving after the postmaster died).  A note read when its attempt
 * was counted after all (the claim did reach the disk) changes nothing.
 *
 * When the postmaster (re)initializes shared memory -- at start and after a
 * crash -- whatever the slots still hold was running at the crash: it moves
 * to the file's pending list.  Each database's supervisor takes its pending
 * entries into its first round (pgapp._job_supervise counts the attempt of
 * a job whose claim was lost) and removes them once that has committed.
 *
 * No lock: each entry has one writer at a time.  Ownership: a slot's entry
 * is written only by the worker holding that slot, a pending entry only by
 * the supervisor of its database, and the whole file only by the postmaster
 * while no other process runs.
 *
 * src/jobs/jobs_running.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "port/atomics.h"

#include "jobs_int.h"

#define RUNNING_FILE "pgapp_jobs.running"
#define RUNNING_MAGIC 0x50474a52	/* "PGJR" */
#define RUNNING_PENDING_MIN 64

typedef struct RunningEntry
{
	Oid			dboid;
	int32		attempt;
	int64		job_id;			/* 0: empty */
} RunningEntry;

typedef struct RunningFile
{
	uint32		magic;
	uint32		nslots;			/* entries[0 .. nslots): one per worker slot */
	uint32		npending;		/* entries[nslots .. nslots + npending): after
								 * a crash */
	uint32		unused;
	RunningEntry entries[FLEXIBLE_ARRAY_MEMBER];
} RunningFile;

static RunningFile *running = NULL;
static size_t running_size = 0;

static size_t
file_size(uint32 nslots, uint32 npending)
{
	return offsetof(RunningFile, entries) + sizeof(RunningEntry) * ((size_t) nslots + npending);
}

/*
 * Map the file for nslots worker slots, carrying over what the previous
 * mapping left (postmaster, when shared memory is (re)initialized).  On
 * failure the job queue works on without it, as if every claim waited for
 * its flush to matter: a LOG line says so.
 */
void
pgapp_jobs_running_startup(int nslots)
{
	int			fd;
	struct stat st;
	RunningEntry *carried = NULL;
	uint32		ncarried = 0;
	uint32		npending;
	size_t		size;
	void	   *p;

	if (running != NULL)
	{
		(void) munmap(running, running_size);
		running = NULL;
	}
	fd = open(RUNNING_FILE, O_RDWR | O_CREAT | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0 || fstat(fd, &st) != 0)
	{
		ereport(LOG,
				errcode_for_file_access(),
				errmsg("could not open file \"%s\": %m", RUNNING_FILE),
				errdetail("A job running when the server crashes may not have its attempt counted."));
		if (fd >= 0)
			close(fd);
		return;
	}
	/* what the last server left: every entry still set */
	if ((size_t) st.st_size >= offsetof(RunningFile, entries))
	{
		RunningFile head;

		if (pread(fd, &head, offsetof(RunningFile, entries), 0) == offsetof(RunningFile, entries) &&
			head.magic == RUNNING_MAGIC &&
			(size_t) st.st_size >= file_size(head.nslots, head.npending))
		{
			uint32		n = head.nslots + head.npending;
			RunningEntry *old = palloc(sizeof(RunningEntry) * Max(n, 1));

			if (pread(fd, old, sizeof(RunningEntry) * n, offsetof(RunningFile, entries)) ==
				(ssize_t) (sizeof(RunningEntry) * n))
			{
				carried = palloc(sizeof(RunningEntry) * Max(n, 1));
				for (uint32 i = 0; i < n; i++)
					if (old[i].job_id != 0)
						carried[ncarried++] = old[i];
			}
			pfree(old);
		}
	}
	npending = Max(RUNNING_PENDING_MIN, ncarried);
	size = file_size(nslots, npending);
	if (ftruncate(fd, 0) != 0 || ftruncate(fd, size) != 0 ||
		(p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
	{
		ereport(LOG,
				errcode_for_file_access(),
				errmsg("could not map file \"%s\": %m", RUNNING_FILE),
				errdetail("A job running when the server crashes may not have its attempt counted."));
		close(fd);
		return;
	}
	close(fd);
	running = (RunningFile *) p;
	running_size = size;
	running->magic = RUNNING_MAGIC;
	running->nslots = nslots;
	running->npending = npending;
	for (uint32 i = 0; i < ncarried; i++)
		running->entries[nslots + i] = carried[i];
	if (ncarried > 0)
		ereport(LOG,
				errmsg_plural("%u job was running when the server stopped; its supervisor will count its attempt",
							  "%u jobs were running when the server stopped; their supervisors will count their attempts",
							  ncarried, ncarried));
	if (carried)
		pfree(carried);
}

/* A worker is about to run a job (its slot's index). */
void
pgapp_jobs_running_set(int slot, int64 job_id, int32 attempt)
{
	RunningEntry *e;

	if (running == NULL || slot < 0 || (uint32) slot >= running->nslots)
		return;
	e = &running->entries[slot];
	e->dboid = MyDatabaseId;
	e->attempt = attempt;
	pg_write_barrier();
	e->job_id = job_id;
}

/* The job has ended, or its worker exits normally. */
void
pgapp_jobs_running_clear(int slot)
{
	if (running == NULL || slot < 0 || (uint32) slot >= running->nslots)
		return;
	running->entries[slot].job_id = 0;
}

/*
 * The jobs of this database that were running at a crash (supervisor):
 * up to max of them, into jobs[] and attempts[], their places into where[]
 * for pgapp_jobs_running_forget.  Returns how many.
 */
int
pgapp_jobs_running_crashed(int64 *jobs, int32 *attempts, int *where, int max)
{
	int			n = 0;

	if (running == NULL)
		return 0;
	for (uint32 i = running->nslots; i < running->nslots + running->npending && n < max; i++)
	{
		RunningEntry *e = &running->entries[i];

		if (e->job_id != 0 && e->dboid == MyDatabaseId)
		{
			jobs[n] = e->job_id;
			attempts[n] = e->attempt;
			where[n] = (int) i;
			n++;
		}
	}
	return n;
}

/* Their attempts are counted (committed): forget them. */
void
pgapp_jobs_running_forget(const int *where, int n)
{
	if (running == NULL)
		return;
	for (int k = 0; k < n; k++)
		if (where[k] >= (int) running->nslots && (uint32) where[k] < running->nslots + running->npending)
			running->entries[where[k]].job_id = 0;
}

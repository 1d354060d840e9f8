/*-------------------------------------------------------------------------
 *
 * dbworker.h
 *	  One dynamic background worker per database, of one kind (the jobs
 *	  supervisors, the pubsub outbox workers): a slot table in shared
 *	  memory, wake-or-start, crash backoff, leaving before DROP DATABASE,
 *	  and the housekeeper's visit of every database.
 *
 * A feature describes its kind in a static PgappDbWorkerKind and keeps the
 * PgappDbWorkers pointer pgapp_dbworker_shmem_startup returns:
 *
 *	 shmem_request:	pgapp_dbworker_shmem_request(&kind);
 *	 shmem_startup:	workers = pgapp_dbworker_shmem_startup(&kind);
 *	 at commit:		pgapp_dbworker_wake(workers, MyDatabaseId, true);
 *	 housekeeping:	pgapp_dbworker_housekeeping(workers);
 *	 before DROP DATABASE: pgapp_dbworker_before_drop_database(workers, dboid);
 *	 the worker's main: if (pgapp_dbworker_attach(workers, dboid) < 0) proc_exit(0);
 *					then, in its loop, pgapp_dbworker_stop_requested(workers),
 *					and pgapp_dbworker_leave(workers) before a clean exit.
 *
 * See dbworker.c for the lock protocol.
 *
 * src/core/dbworker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_DBWORKER_H
#define PGAPP_DBWORKER_H

#include "datatype/timestamp.h"

/* What a feature tells core about its per-database worker. */
typedef struct PgappDbWorkerKind
{
	/* shared memory and LWLock tranche name; starts with "pgapp" */
	const char *shmem_name;
	/* bgw_function_name of the worker (in the pgapp library) and bgw_type */
	const char *function_name;
	const char *type_name;
	/* bgw_name, with %u for the database's OID */
	const char *name_format;
	/* how many databases can have one at once */
	int			max_databases;

	/*
	 * Restart a worker that did not leave on purpose (pgapp_dbworker_leave)
	 * after a capped exponential backoff (1 s doubling up to 60 s), from the
	 * housekeeper while its database exists, and delay starts by wake-ups
	 * until then.  Otherwise a worker's end frees its slot.
	 */
	bool		restart_crashed;

	/* which databases the housekeeper visits (and restarts); NULL: all */
	bool		(*database_allowed) (const char *dbname);

	/*
	 * Before DROP DATABASE, asked with the kind's workers at each try: ask
	 * the feature's other processes of the database to leave and return
	 * whether any is still there.  NULL: none.
	 */
	bool		(*others_leave) (Oid dboid);

	/* the WARNINGs when no slot is free / no background worker starts */
	const char *full_detail;	/* with %d for max_databases */
	const char *start_hint;
} PgappDbWorkerKind;

typedef struct PgappDbWorkers PgappDbWorkers;

/* From the module's shmem_request and shmem_startup callbacks. */
extern void pgapp_dbworker_shmem_request(const PgappDbWorkerKind *kind);
extern PgappDbWorkers *pgapp_dbworker_shmem_startup(const PgappDbWorkerKind *kind);

/*
 * Set the latch of the database's worker; when it has none and start is
 * true, register one (at most once per 10 s while a start is pending, not
 * before a crashed one's backoff).  Raises no error (WARNINGs): it runs
 * after commit.
 */
extern void pgapp_dbworker_wake(PgappDbWorkers *w, Oid dboid, bool start);

/* The housekeeper's round: restart crashed workers, visit one database. */
extern void pgapp_dbworker_housekeeping(PgappDbWorkers *w);

/* Ask the database's worker (and the others_leave ones) to leave; wait up to 5 s. */
extern void pgapp_dbworker_before_drop_database(PgappDbWorkers *w, Oid dboid);

/*
 * In the worker, before connecting: take the database's slot; returns its
 * index (0 .. max_databases - 1), or -1 when another worker runs there or
 * no start was asked for (then proc_exit(0)).  Releases the slot at exit.
 */
extern int	pgapp_dbworker_attach(PgappDbWorkers *w, Oid dboid);

/* In the worker: DROP DATABASE asked it to leave. */
extern bool pgapp_dbworker_stop_requested(PgappDbWorkers *w);

/* In the worker, before proc_exit: it leaves on purpose (not a crash). */
extern void pgapp_dbworker_leave(PgappDbWorkers *w);

/* The slot index of the database's running worker, or -1. */
extern int	pgapp_dbworker_find(PgappDbWorkers *w, Oid dboid);

/* A slot with a worker starting or running, for a feature's own view. */
typedef struct PgappDbWorkerSlotInfo
{
	int			index;			/* as pgapp_dbworker_attach/find return it */
	Oid			dboid;
	int			pid;			/* 0 until the worker attaches */
	bool		running;		/* false: starting */
} PgappDbWorkerSlotInfo;

/*
 * Copy the slots with a worker starting or running into out (room for
 * max_databases of them); returns how many.
 */
extern int	pgapp_dbworker_slots(PgappDbWorkers *w, PgappDbWorkerSlotInfo *out);

#endif							/* PGAPP_DBWORKER_H */

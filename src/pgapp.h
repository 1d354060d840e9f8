/*-------------------------------------------------------------------------
 *
 * pgapp.h
 *	  Shared declarations of the pgapp extension: version, the module
 *	  registry that lets each module plug into shared memory and health
 *	  reporting, GUC variables, and the preload check.
 *
 * Every module is one entry of the registry in pgapp.c.  pgapp.c owns the
 * shared-memory hooks and calls each module's request/startup functions from
 * them, so a module never installs a hook of its own.
 *
 * src/pgapp.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_H
#define PGAPP_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/resowner.h"

#define PGAPP_VERSION "0.2.0"

/*
 * What one module contributes to the shared plumbing.  Any callback may be
 * NULL.  shmem_request runs in the postmaster's shmem_request_hook and may
 * call RequestAddinShmemSpace / RequestNamedLWLockTranche; shmem_startup runs
 * in shmem_startup_hook with AddinShmemInitLock held by the caller.
 * status returns a short word for pgapp.health(): "ok", "not preloaded", ...
 * housekeeping runs about once a second in the pgapp housekeeper background
 * worker (worker.c), outside any transaction; it decides itself whether its
 * work is due, must be short, and may use shared memory and LWLocks, or
 * start a transaction of its own to read shared catalogs (the housekeeper
 * is connected to no database).
 * before_drop_database runs in the backend about to execute DROP DATABASE
 * (ProcessUtility_hook in pgapp.c): a module whose background workers stay
 * connected to that database asks them to leave and waits for them briefly,
 * so that a plain DROP DATABASE is not refused because of them.
 */
typedef struct PgappModule
{
	const char *name;
	void		(*shmem_request) (void);
	void		(*shmem_startup) (void);
	const char *(*status) (void);
	void		(*housekeeping) (void);
	void		(*before_drop_database) (Oid dboid);
} PgappModule;

/* Run every module's housekeeping callback (the housekeeper's round). */
extern void pgapp_run_housekeeping(void);

/*
 * The oids of the databases that accept connections and are not templates
 * (and whose name passes allowed, unless NULL), read from pg_database in a
 * transaction of its own (worker.c; for processes connected to no database).
 */
extern List *pgapp_list_databases(bool (*allowed) (const char *dbname));

/* Register the housekeeper background worker (worker.c); from _PG_init. */
extern void pgapp_register_housekeeper(void);

/* True when this process got the library through shared_preload_libraries. */
extern bool pgapp_preloaded;

/*
 * Raise ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE unless shared memory of the
 * named module is attached; "what" names the feature in the message.
 */
extern void pgapp_require_shmem(const void *shared, const char *what);

/*
 * Internal subtransactions, as PL/pgSQL's EXCEPTION blocks use them: run a
 * piece of work that may fail without losing the caller's transaction.
 *
 *	PgappSubxact sx;
 *	pgapp_subxact_begin(&sx);
 *	PG_TRY();
 *	{ ...work...; pgapp_subxact_commit(&sx); }
 *	PG_CATCH();
 *	{ ErrorData *e = pgapp_subxact_abort(&sx); ... }
 *	PG_END_TRY();
 */
typedef struct PgappSubxact
{
	MemoryContext oldcontext;
	ResourceOwner oldowner;
} PgappSubxact;

extern void pgapp_subxact_begin(PgappSubxact *sx);
extern void pgapp_subxact_commit(PgappSubxact *sx);
extern struct ErrorData *pgapp_subxact_abort(PgappSubxact *sx);

/*
 * Run SPI as the owner of the pgapp schema (like RI triggers run as the
 * table owner), so that definitions and logs are read and written with the
 * extension's rights, whoever triggered the work.
 */
typedef struct PgappOwnerSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
} PgappOwnerSwitch;

extern void pgapp_become_owner(PgappOwnerSwitch *sw);
extern void pgapp_spi_select_as_owner(const char *sql, const char *name);
extern int	pgapp_spi_execute_as_owner(const char *sql, int nargs, Oid *argtypes,
									   Datum *args, const char *nulls);
extern void pgapp_restore_user(PgappOwnerSwitch *sw);
extern Oid	pgapp_schema_oid(void);

/*
 * Input echoed in an error message: at most PGA_MESSAGE_ECHO_CHARS
 * characters (error.h), then "...", so that a message never carries a
 * caller's megabytes.  Defined in error.c.
 */
extern char *pgapp_echo(const char *input);

/* Argument n as a C string; 22004 naming what when it is NULL. */
extern char *pgapp_arg_cstring(FunctionCallInfo fcinfo, int n, const char *what);

#endif							/* PGAPP_H */

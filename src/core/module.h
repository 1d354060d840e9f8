/*-------------------------------------------------------------------------
 *
 * module.h
 *	  The module registry: how each feature plugs into the hooks, shared
 *	  memory, housekeeping and health reporting of pgapp.
 *
 * Every feature describes itself with one PgappModule and pgapp.c registers
 * them, in order, from _PG_init.  module.c owns the hooks (shared memory,
 * ProcessUtility, the relcache callback) and calls each module's callbacks
 * from them, so a feature never installs a hook of its own, and core/ never
 * needs to know which features exist.
 *
 * src/core/module.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_MODULE_H
#define PGAPP_MODULE_H

#include "fmgr.h"

/*
 * What one module contributes to the shared plumbing.  Any callback may be
 * NULL.
 *
 * init runs in _PG_init when the module is registered, preloaded or not
 * (caches, callbacks that need no shared memory).
 * shmem_request runs in the postmaster's shmem_request_hook and may call
 * RequestAddinShmemSpace / RequestNamedLWLockTranche; shmem_startup runs in
 * shmem_startup_hook with AddinShmemInitLock held by the caller.
 * status returns a short word for pgapp.health(): "ok", "not preloaded", ...
 * (a module without it is not listed there).
 * housekeeping runs about once a second in the pgapp housekeeper background
 * worker (housekeeper.c), outside any transaction; it decides itself whether
 * its work is due, must be short, and may use shared memory and LWLocks, or
 * start a transaction of its own to read shared catalogs (the housekeeper is
 * connected to no database).
 * before_drop_database runs in the backend about to execute DROP DATABASE: a
 * module whose background workers stay connected to that database asks them
 * to leave and waits for them briefly, so that a plain DROP DATABASE is not
 * refused because of them.
 * relcache_invalidate runs from the relcache invalidation callback
 * (InvalidOid: all relations); it must only mark caches stale.
 */
typedef struct PgappModule
{
	const char *name;
	void		(*init) (void);
	void		(*shmem_request) (void);
	void		(*shmem_startup) (void);
	const char *(*status) (void);
	void		(*housekeeping) (void);
	void		(*before_drop_database) (Oid dboid);
	void		(*relcache_invalidate) (Oid relid);
} PgappModule;

/* True when this process got the library through shared_preload_libraries. */
extern bool pgapp_preloaded;

/* Add a module to the registry (from _PG_init; runs its init callback). */
extern void pgapp_module_register(const PgappModule *module);

/* Install the hooks that call the modules (from _PG_init, last). */
extern void pgapp_module_install_hooks(void);

/* The registered modules, in registration order. */
extern int	pgapp_module_count(void);
extern const PgappModule *pgapp_module_get(int i);

/* Run every module's housekeeping callback (the housekeeper's round). */
extern void pgapp_run_housekeeping(void);

/* Register the housekeeper background worker (housekeeper.c). */
extern void pgapp_register_housekeeper(void);

#endif							/* PGAPP_MODULE_H */

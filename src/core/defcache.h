/*-------------------------------------------------------------------------
 *
 * defcache.h
 *	  Named definitions read from a pgapp table and compiled once per
 *	  backend: the one loader behind the caches of machines and changesets.
 *
 * A feature describes its kind of definition with a PgappDefKind (the
 * table, the SELECT that reads one row by name, the hint of the "does not
 * exist" error, the size of its cache entry and a compile callback) and
 * keeps one PgappDefCache.  pgapp_defcache_get returns the compiled entry,
 * reading and compiling the definition on first use or after an
 * invalidation; the feature's relcache_invalidate callback (core/module.h)
 * calls pgapp_defcache_invalidate.  The statement trigger that sends that
 * invalidation when a definition table changes, pgapp._definitions_changed,
 * is defcache.c's too.
 *
 * src/core/defcache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_DEFCACHE_H
#define PGAPP_DEFCACHE_H

#include "utils/hsearch.h"

/*
 * The head of every cache entry: a feature's entry struct begins with it.
 * The entry's compiled data lives in mcxt (a child of CacheMemoryContext).
 */
typedef struct PgappDefEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		valid;
	MemoryContext mcxt;
} PgappDefEntry;

typedef struct PgappDefKind
{
	const char *what;			/* "machine": in messages and names */
	const char *table;			/* definition table in the pgapp schema */
	const char *select_sql;		/* its columns of the row whose name is $1 */
	const char *hint;			/* of the 42704 "does not exist" error */
	Size		entrysize;		/* of the entry struct, >= PgappDefEntry */

	/*
	 * Fill entry (everything after the PgappDefEntry head) from the row's
	 * columns, allocating in CurrentMemoryContext, which is the entry's new
	 * context; raise to refuse the definition (no entry is then kept). values
	 * live in the caller's context only: copy what the entry keeps or points
	 * into.
	 */
	void		(*compile) (PgappDefEntry *entry, const char *name,
							Datum *values, bool *nulls);

	/*
	 * Optional: does the entry depend on relation relid, so that a relcache
	 * invalidation of relid makes it stale?
	 */
	bool		(*uses_relation) (PgappDefEntry *entry, Oid relid);
} PgappDefKind;

typedef struct PgappDefCache
{
	const PgappDefKind *kind;
	HTAB	   *hash;			/* created on first use */
	Oid			table_oid;		/* of kind->table, learned on first load */
} PgappDefCache;

#define PGAPP_DEFCACHE_INIT(kind) {(kind), NULL, InvalidOid}

/*
 * 22023 for an empty name, 42622 for one of NAMEDATALEN bytes or more
 * ("what" names the kind in the message).
 */
extern void pgapp_check_definition_name(const char *name, const char *what);

/*
 * The valid compiled entry called name: from the cache, or read as the
 * extension's owner and compiled.  A missing definition is NULL with
 * missing_ok, else 42704 with the kind's hint.
 */
extern PgappDefEntry *pgapp_defcache_get(PgappDefCache *cache, const char *name,
										 bool missing_ok);

/*
 * Mark entries stale: all of them for InvalidOid or the definition table,
 * else those whose kind's uses_relation says they depend on relid.
 */
extern void pgapp_defcache_invalidate(PgappDefCache *cache, Oid relid);

#endif							/* PGAPP_DEFCACHE_H */

/*-------------------------------------------------------------------------
 *
 * spi_cache.c
 *	  Statements pgapp builds at run time (a changeset's INSERT, a multi
 *	  step's DELETE) planned once per backend and kept.
 *
 * pgapp builds its write statements from catalog names: the same table and
 * columns give the same text.  Planning such a statement costs more than
 * running it, so each text is prepared once (SPI_prepare, SPI_keepplan) and
 * found again by its text and its arguments' types.  The plan cache revalidates a kept plan after
 * DDL, and privileges and row security are checked when a plan runs, as the
 * current user, so a kept plan gives no one more rights than running the
 * text.  The text names everything qualified (pg_catalog.*, schema.table),
 * so it means the same under any search_path; a renamed table gives a new
 * text.
 *
 * The cache is per backend, in CacheMemoryContext, and bounded: past
 * SPI_CACHE_MAX texts, new ones run unprepared (SPI_execute_with_args), as
 * they did before the cache.
 *
 * src/core/spi_cache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "core/util.h"

#define SPI_CACHE_MAX 512

#define SPI_CACHE_MAX_ARGS 8

typedef struct SpiCacheEntry
{
	uint64		key;			/* hash of the text and argument types */
	char	   *sql;			/* the text (CacheMemoryContext) */
	int			nargs;
	Oid			argtypes[SPI_CACHE_MAX_ARGS];
	SPIPlanPtr	plan;			/* kept */
} SpiCacheEntry;

static HTAB *spi_cache = NULL;

static void
spi_cache_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(SpiCacheEntry);
	ctl.hcxt = CacheMemoryContext;
	spi_cache = hash_create("pgapp statement cache", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Run sql as SPI_execute_with_args would, with its plan prepared once per
 * backend.  The caller is connected to SPI.
 */
int
pgapp_spi_execute_cached(const char *sql, int nargs, Oid *argtypes, Datum *args,
						 const char *nulls, bool read_only, long count)
{
	uint64		key;
	bool		found;
	SpiCacheEntry *e;
	SPIPlanPtr	plan;

	if (nargs > SPI_CACHE_MAX_ARGS)
		return SPI_execute_with_args(sql, nargs, argtypes, args, nulls, read_only, count);
	if (spi_cache == NULL)
		spi_cache_init();

	/*
	 * The text and its arguments' types: a plan must never be given a value
	 * of another type than the one it was made for.
	 */
	key = hash_bytes_extended((const unsigned char *) sql, strlen(sql), nargs);
	if (nargs > 0)
		key ^= hash_bytes_extended((const unsigned char *) argtypes, sizeof(Oid) * nargs, 0);
	e = hash_search(spi_cache, &key, HASH_FIND, &found);
	if (found && e->nargs == nargs && strcmp(e->sql, sql) == 0 &&
		(nargs == 0 || memcmp(e->argtypes, argtypes, sizeof(Oid) * nargs) == 0))
		return SPI_execute_plan(e->plan, args, nulls, read_only, count);
	if (found || hash_get_num_entries(spi_cache) >= SPI_CACHE_MAX)
		return SPI_execute_with_args(sql, nargs, argtypes, args, nulls, read_only, count);

	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	e = hash_search(spi_cache, &key, HASH_ENTER, &found);
	e->sql = MemoryContextStrdup(CacheMemoryContext, sql);
	e->nargs = nargs;
	if (nargs > 0)
		memcpy(e->argtypes, argtypes, sizeof(Oid) * nargs);
	e->plan = plan;
	return SPI_execute_plan(plan, args, nulls, read_only, count);
}

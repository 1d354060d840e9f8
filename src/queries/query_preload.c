/*-------------------------------------------------------------------------
 *
 * query_preload.c
 *	  Relations of a table through foreign keys, for preloads, cached per
 *	  backend.
 *
 * The catalog query behind a table's relations is the most expensive part
 * of building and running a query with preloads, so its answer is kept
 * per backend and dropped on any relcache invalidation (through the
 * module registry: pgapp_queries_module.relcache_invalidate).
 *
 * src/queries/query_preload.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "core/error.h"
#include "query_int.h"

/* ---------------------------------------------------------------------
 * Preloads: related rows through foreign keys, in the same statement
 * ---------------------------------------------------------------------
 */

static char *
relation_name(bool many, Oid other, int ncols, char **fkcols, const char *conname)
{
	if (many)
		return pstrdup(get_rel_name(other));
	if (ncols == 1)
	{
		size_t		len = strlen(fkcols[0]);

		if (len > 3 && strcmp(fkcols[0] + len - 3, "_id") == 0)
			return pnstrdup(fkcols[0], len - 3);
		return pstrdup(get_rel_name(other));
	}
	return pstrdup(conname);
}

/* text[] datum d as C strings; their number in *n. */
static char **
text_array_cstrings(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **result;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	result = palloc(sizeof(char *) * Max(*n, 1));
	for (int j = 0; j < *n; j++)
		result[j] = TextDatumGetCString(elems[j]);
	return result;
}

/*
 * A relation from a row of the catalog query of relations_of, in the
 * current memory context.
 */
static QueryRelation *
relation_from_row(HeapTuple tup, TupleDesc desc)
{
	QueryRelation *r = palloc0(sizeof(QueryRelation));
	bool		isnull;
	char	  **fk;
	char	  **pk;
	int			nfk;
	int			npk;

	r->many = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	r->other = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	fk = text_array_cstrings(SPI_getbinval(tup, desc, 4, &isnull), &nfk);
	pk = text_array_cstrings(SPI_getbinval(tup, desc, 5, &isnull), &npk);
	r->order = text_array_cstrings(SPI_getbinval(tup, desc, 6, &isnull), &r->norder);
	r->ncols = nfk;
	/* belongs to: source.fk = other.pk; has many: source.pk = other.fk */
	r->local = r->many ? pk : fk;
	r->remote = r->many ? fk : pk;
	r->name = relation_name(r->many, r->other, nfk, fk, SPI_getvalue(tup, desc, 3));
	return r;
}

/*
 * Every relation of relid, from pg_constraint.  SPI connected.
 */
static List *
relations_of(Oid relid, MemoryContext mcxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	int			ret;
	List	   *result = NIL;

	args[0] = ObjectIdGetDatum(relid);
	ret = SPI_execute_with_args(
								"SELECT c.conrelid OPERATOR(pg_catalog.<>) $1 AS many,"
								"       CASE WHEN c.conrelid OPERATOR(pg_catalog.=) $1 THEN c.confrelid ELSE c.conrelid END AS other,"
								"       c.conname::pg_catalog.text,"
								"       ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(n, i)"
								"               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.conrelid"
								"                AND a.attnum OPERATOR(pg_catalog.=) k.n ORDER BY k.i) AS fk,"
								"       ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(n, i)"
								"               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.confrelid"
								"                AND a.attnum OPERATOR(pg_catalog.=) k.n ORDER BY k.i) AS pk,"
								"       ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_index x"
								"               CROSS JOIN LATERAL pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(n, i)"
								"               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) x.indrelid"
								"                AND a.attnum OPERATOR(pg_catalog.=) k.n"
								"              WHERE x.indrelid OPERATOR(pg_catalog.=) c.conrelid AND x.indisprimary"
								"              ORDER BY k.i) AS order_by"
								"  FROM pg_catalog.pg_constraint c"
								" WHERE c.contype OPERATOR(pg_catalog.=) 'f'"
								"   AND (c.conrelid OPERATOR(pg_catalog.=) $1 OR c.confrelid OPERATOR(pg_catalog.=) $1)"
								" ORDER BY c.conname",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		result = lappend(result, relation_from_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc));
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * Relations of each table, cached per backend: the catalog query behind them
 * is the most expensive part of building and running a query with
 * preloads.  Any relcache invalidation drops the whole cache (a foreign key
 * added or dropped invalidates both tables it joins).
 */
typedef struct RelationsEntry
{
	Oid			relid;			/* hash key */
	List	   *relations;
} RelationsEntry;

static HTAB *relations_cache = NULL;
static MemoryContext relations_mcxt = NULL;
static bool relations_stale = false;

/*
 * Only mark the cache stale: invalidations arrive whenever a catalog lock is
 * taken, possibly while a caller walks a cached list; the cache is dropped
 * at the next pgapp_query_cached_relations() call instead.
 */
void
pgapp_query_relations_invalidate(Oid relid)
{
	relations_stale = true;
}

/* relations_of, through the cache.  SPI connected. */
List *
pgapp_query_cached_relations(Oid relid)
{
	RelationsEntry *e;
	bool		found;

	if (relations_stale && relations_mcxt != NULL)
	{
		/* the hash lives in relations_mcxt */
		MemoryContextDelete(relations_mcxt);
		relations_mcxt = NULL;
		relations_cache = NULL;
	}
	relations_stale = false;
	if (relations_cache == NULL)
	{
		HASHCTL		ctl = {0};

		relations_mcxt = AllocSetContextCreate(CacheMemoryContext, "pgapp query relations",
											   ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelationsEntry);
		ctl.hcxt = relations_mcxt;
		relations_cache = hash_create("pgapp query relations", 16, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(relations_cache, &relid, HASH_FIND, &found);
	if (found)
		return e->relations;
	{
		List	   *relations = relations_of(relid, relations_mcxt);

		e = hash_search(relations_cache, &relid, HASH_ENTER, &found);
		e->relations = relations;
		return relations;
	}
}

/* The relation called name, or 42704 listing the ones there are. */
QueryRelation *
pgapp_query_find_relation(Oid relid, List *relations, const char *name)
{
	ListCell   *lc;
	QueryRelation *found = NULL;
	StringInfoData known;

	initStringInfo(&known);
	foreach(lc, relations)
	{
		QueryRelation *r = lfirst(lc);

		appendStringInfo(&known, "%s%s", known.len ? ", " : "", r->name);
		if (strcmp(r->name, name) == 0)
		{
			if (found != NULL)
				ereport(ERROR,
						errcode(ERRCODE_AMBIGUOUS_PARAMETER),
						errmsg("relation \"%s\" of %s is ambiguous", name, get_rel_name(relid)),
						errdetail("More than one foreign key gives that name."));
			found = r;
		}
	}
	if (found == NULL)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("relation \"%s\" of %s does not exist", pgapp_echo(name), get_rel_name(relid)),
				known.len ? errdetail("Relations through foreign keys: %s.", known.data)
				: errdetail("No foreign key refers to or from %s.", get_rel_name(relid)));
	return found;
}

/* A copy of r in the current memory context. */
QueryRelation *
pgapp_query_copy_relation(const QueryRelation *r)
{
	QueryRelation *c = palloc(sizeof(QueryRelation));

	*c = *r;
	c->name = pstrdup(r->name);
	c->local = palloc(sizeof(char *) * Max(r->ncols, 1));
	c->remote = palloc(sizeof(char *) * Max(r->ncols, 1));
	for (int j = 0; j < r->ncols; j++)
	{
		c->local[j] = pstrdup(r->local[j]);
		c->remote[j] = pstrdup(r->remote[j]);
	}
	c->order = palloc(sizeof(char *) * Max(r->norder, 1));
	for (int j = 0; j < r->norder; j++)
		c->order[j] = pstrdup(r->order[j]);
	return c;
}

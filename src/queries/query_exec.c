/*-------------------------------------------------------------------------
 *
 * query_exec.c
 *	  Executors of a pgapp.query value (all, one, count, paginate,
 *	  paginate_after, to_sql), the per-backend plan cache, and the module
 *	  entry of the queries feature.
 *
 * Plans are prepared once per SQL text and kept (SPI_keepplan) in a
 * per-backend cache, so the second page of the same query shape does not
 * plan again; PostgreSQL's plan cache invalidates them when the tables
 * change.  The cache holds at most MAX_CACHED_PLANS plans and
 * pgapp.query_cache_memory kB, least recently used evicted.  Keyset
 * pagination (paginate_after) pages on the sort fields plus the primary
 * key, with an opaque cursor.
 *
 * src/queries/query_exec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/spi_priv.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "query.h"
#include "query_int.h"

const PgappModule pgapp_queries_module = {
	.name = "queries",
	.relcache_invalidate = pgapp_query_relations_invalidate,
};

/* Kept plans, by the hash and length of their SQL text. */

/* Kept plans, by the hash and length of their SQL text. */
typedef struct PlanKey
{
	uint32		hash;
	uint32		len;
} PlanKey;

typedef struct PlanEntry
{
	PlanKey		key;
	char	   *sql;			/* in TopMemoryContext */
	SPIPlanPtr	plan;
	Size		bytes;			/* memory of the plan, last measured */
	int			running;		/* executions under way (a stat may run a
								 * query) */
	dlist_node	lru;			/* in plans_lru, most recently used first */
} PlanEntry;

#define MAX_CACHED_PLANS 256

static HTAB *plans = NULL;
static dlist_head plans_lru = DLIST_STATIC_INIT(plans_lru);
static Size plans_bytes = 0;

/* ---------------------------------------------------------------------
 * Kept plans: at most MAX_CACHED_PLANS and pgapp.query_cache_memory
 * ---------------------------------------------------------------------
 */

/*
 * The memory a kept plan holds: the SPI plan's own context, and for each
 * of its CachedPlanSources the source context (with the analyzed queries
 * under it) and the generic plan's context, once there is one.
 */
static Size
plan_bytes(SPIPlanPtr plan)
{
	Size		bytes = 0;
	ListCell   *lc;

	if (plan->plancxt != NULL)
		bytes += MemoryContextMemAllocated(plan->plancxt, true);
	foreach(lc, plan->plancache_list)
	{
		CachedPlanSource *ps = lfirst(lc);

		if (ps->context != NULL)
			bytes += MemoryContextMemAllocated(ps->context, true);
		if (ps->query_context != NULL && ps->query_context->parent != ps->context)
			bytes += MemoryContextMemAllocated(ps->query_context, true);
		if (ps->gplan != NULL && ps->gplan->context != NULL)
			bytes += MemoryContextMemAllocated(ps->gplan->context, true);
	}
	return bytes;
}

static void
plan_forget(PlanEntry *e)
{
	dlist_delete(&e->lru);
	plans_bytes -= e->bytes;
	SPI_freeplan(e->plan);
	pfree(e->sql);
	hash_search(plans, &e->key, HASH_REMOVE, NULL);
}

/*
 * Measure entry again and evict least recently used plans past the caps.
 * A plan that is running (a scope or stat may itself run a query) stays.
 */
static void
plans_enforce(PlanEntry *entry)
{
	Size		cap = (Size) pgapp_query_cache_memory * 1024;
	Size		doomed = 0;		/* a running plan that will not be kept */
	dlist_node *node;

	if (entry != NULL)
	{
		plans_bytes -= entry->bytes;
		entry->bytes = plan_bytes(entry->plan);
		plans_bytes += entry->bytes;
		/* a plan larger than the cap alone is not kept ... */
		if (entry->bytes > cap && entry->running == 0)
			plan_forget(entry);
		/* ... nor does it push out the others while it runs */
		else if (entry->bytes > cap)
			doomed = entry->bytes;
	}
	node = dlist_is_empty(&plans_lru) ? NULL : dlist_tail_node(&plans_lru);
	while (node != NULL && (plans_bytes - doomed > cap || hash_get_num_entries(plans) > MAX_CACHED_PLANS))
	{
		PlanEntry  *e = dlist_container(PlanEntry, lru, node);

		node = dlist_has_prev(&plans_lru, node) ? dlist_prev_node(&plans_lru, node) : NULL;
		if (e->running == 0)
			plan_forget(e);
	}
}

/*
 * The plan of qs: a kept one from the per-backend cache (made and kept
 * now if need be; *entry is its cache entry), or an uncached one (*entry
 * NULL: a hash collision, or no cache), which the caller frees.
 */
static SPIPlanPtr
plan_get(QuerySql *qs, PlanEntry **entry)
{
	StringInfoData text;
	PlanKey		key;
	bool		found;
	SPIPlanPtr	plan;

	if (plans == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = sizeof(PlanKey);
		ctl.entrysize = sizeof(PlanEntry);
		ctl.hcxt = TopMemoryContext;
		plans = hash_create("pgapp query plans", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/*
	 * The key is the text and its parameters' types: the same text can come
	 * with other types (a column's type changed, the table dropped and made
	 * again), and a plan must never see a value of a type it was not made
	 * for.
	 */
	initStringInfo(&text);
	appendStringInfoString(&text, qs->sql.data);
	for (int i = 0; i < qs->nparams; i++)
		appendStringInfo(&text, "%c%u", i == 0 ? '\n' : ',', qs->types[i]);
	memset(&key, 0, sizeof(key));
	key.hash = string_hash(text.data, text.len + 1);
	key.len = text.len;

	*entry = hash_search(plans, &key, HASH_FIND, &found);
	if (found && strcmp((*entry)->sql, text.data) == 0)
	{
		dlist_move_head(&plans_lru, &(*entry)->lru);
		return (*entry)->plan;
	}
	plan = SPI_prepare(qs->sql.data, qs->nparams, qs->types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (found || pgapp_query_cache_memory <= 0)
	{
		*entry = NULL;
		return plan;
	}
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	*entry = hash_search(plans, &key, HASH_ENTER, &found);
	(*entry)->sql = MemoryContextStrdup(TopMemoryContext, text.data);
	(*entry)->plan = plan;
	(*entry)->bytes = 0;
	(*entry)->running = 0;
	dlist_push_head(&plans_lru, &(*entry)->lru);
	return plan;
}

/*
 * Execute qs read-only with a kept plan from the per-backend cache, under
 * search_path when it is not NULL (that of the query's scopes and stats).
 * The caller is connected to SPI.
 */
static void
sql_execute(QuerySql *qs, long count, const char *search_path)
{
	PlanEntry  *entry;
	SPIPlanPtr	plan;
	int			ret;
	int			guc_level = -1;

	if (search_path != NULL)
	{
		/* undone below, or by the (sub)transaction's abort on an error */
		guc_level = NewGUCNestLevel();
		(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}

	plan = plan_get(qs, &entry);
	if (entry != NULL)
	{
		entry->running++;

		/*
		 * Measured and capped before it runs, too: a statement that fails (no
		 * SELECT right, a timeout) never reaches the measure below, and
		 * unmeasured plans would pile up past both caps.
		 */
		plans_enforce(entry);
	}
	PG_TRY();
	{
		ret = SPI_execute_plan(plan, qs->values, NULL, true, count);
	}
	PG_FINALLY();
	{
		if (entry != NULL)
			entry->running--;
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (entry == NULL)
		SPI_freeplan(plan);
	/* measured after running: the generic plan is made by then */
	plans_enforce(entry);
	if (guc_level >= 0)
		AtEOXact_GUC(true, guc_level);
}

/*
 * pgapp.query_cache_stats() -> (entries, bytes, max_entries, max_bytes):
 * the kept plans of the calling backend, and their caps.
 */
PG_FUNCTION_INFO_V1(pgapp_query_cache_stats);
Datum
pgapp_query_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (plans != NULL)
		plans_enforce(NULL);	/* the cap may have been lowered since */
	values[0] = Int32GetDatum(plans ? (int32) hash_get_num_entries(plans) : 0);
	values[1] = Int64GetDatum((int64) plans_bytes);
	values[2] = Int32GetDatum(MAX_CACHED_PLANS);
	values[3] = Int64GetDatum((int64) pgapp_query_cache_memory * 1024);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---------------------------------------------------------------------
 * Executors
 * ---------------------------------------------------------------------
 */

/*
 * The query's rows as a jsonb array, in its order.  limit/offset < 0: none.
 */
static Jsonb *
run_rows(QueryValue *qv, int64 limit, int64 offset, int64 *total)
{
	QuerySql	qs;
	int			ret;
	PgappJsonbBuilder b = {0};
	Jsonb	   *result;
	MemoryContext caller = CurrentMemoryContext;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_query_sql_select_rows(&qs, qv, total != NULL, limit, offset, NULL);
	sql_execute(&qs, 0, qv->search_path);

	MemoryContextSwitchTo(caller);
	pgapp_jsonb_begin_array(&b);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		CHECK_FOR_INTERRUPTS();
		pgapp_jsonb_add_jsonb(&b, DatumGetJsonbP(d));
		if (total != NULL && i == 0)
			*total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	pgapp_jsonb_end_array(&b);
	result = pgapp_jsonb_finish(&b);
	if (total != NULL && SPI_processed == 0)
		*total = -1;			/* unknown: past the end, or nothing matches */
	SPI_finish();
	return result;
}

static int64
run_count(QueryValue *qv)
{
	QuerySql	qs;
	int			ret;
	bool		isnull;
	int64		n;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_query_sql_init(&qs);
	appendStringInfoString(&qs.sql, "SELECT pg_catalog.count(*)");
	/* preloads and stats do not change the count: no laterals */
	pgapp_query_sql_from_where(&qs, qv, NULL, NULL);
	sql_execute(&qs, 1, qv->search_path);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return n;
}

/* pgapp.all(q) -> jsonb: every row, as an array. */
PG_FUNCTION_INFO_V1(pgapp_all);
Datum
pgapp_all(PG_FUNCTION_ARGS)
{
	QueryValue	qv;

	(void) pgapp_query_arg(fcinfo, &qv);
	PG_RETURN_JSONB_P(run_rows(&qv, -1, 0, NULL));
}

/* pgapp.one(q) -> jsonb: the first row, or NULL. */
PG_FUNCTION_INFO_V1(pgapp_one);
Datum
pgapp_one(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *rows;

	(void) pgapp_query_arg(fcinfo, &qv);
	rows = run_rows(&qv, 1, 0, NULL);
	if (JB_ROOT_COUNT(rows) == 0)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(pgapp_jsonb_from_value(getIthJsonbValueFromContainer(&rows->root, 0)));
}

/* pgapp.count(q) -> bigint */
PG_FUNCTION_INFO_V1(pgapp_count);
Datum
pgapp_count(PG_FUNCTION_ARGS)
{
	QueryValue	qv;

	(void) pgapp_query_arg(fcinfo, &qv);
	PG_RETURN_INT64(run_count(&qv));
}

/*
 * pgapp.paginate(q, page int, page_size int) -> jsonb
 * {"entries", "total", "page", "page_size", "total_pages"}, entries and
 * total from one scan (count(*) OVER ()); a page past the end counts apart.
 */
PG_FUNCTION_INFO_V1(pgapp_paginate);
Datum
pgapp_paginate(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	int32		page;
	int32		page_size;
	int64		total;
	Jsonb	   *entries;
	PgappJsonbBuilder b = {0};

	(void) pgapp_query_arg(fcinfo, &qv);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(1) ? "page" : "page_size"));
	page = PG_GETARG_INT32(1);
	page_size = PG_GETARG_INT32(2);
	if (page < 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("page must be at least 1, not %d", page));
	if (page_size < 1 || page_size > pgapp_query_max_page_size)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("page_size must be between 1 and %d, not %d", pgapp_query_max_page_size, page_size),
				errhint("The upper bound is the setting \"pgapp.query_max_page_size\"."));

	entries = run_rows(&qv, page_size, (int64) (page - 1) * page_size, &total);
	if (total < 0)
		total = page == 1 ? 0 : run_count(&qv);

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "entries");
	pgapp_jsonb_add_jsonb(&b, entries);
	pgapp_jsonb_key(&b, "total");
	pgapp_jsonb_add_int(&b, total);
	pgapp_jsonb_key(&b, "page");
	pgapp_jsonb_add_int(&b, page);
	pgapp_jsonb_key(&b, "page_size");
	pgapp_jsonb_add_int(&b, page_size);
	pgapp_jsonb_key(&b, "total_pages");
	pgapp_jsonb_add_int(&b, (total + page_size - 1) / page_size);
	pgapp_jsonb_end_object(&b);
	PG_RETURN_JSONB_P(pgapp_jsonb_finish(&b));
}

/*
 * pgapp.to_sql(q) -> text: the statement pgapp.all runs (one row of jsonb
 * per source row), with its parameters listed in a trailing comment.
 */
PG_FUNCTION_INFO_V1(pgapp_to_sql);
Datum
pgapp_to_sql(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	QuerySql	qs;
	text	   *result;

	(void) pgapp_query_arg(fcinfo, &qv);
	pgapp_query_sql_select_rows(&qs, &qv, false, -1, 0, NULL);
	if (qs.nparams > 0)
	{
		appendStringInfoString(&qs.sql, "\n-- parameters:");
		for (int i = 0; i < qs.nparams; i++)
		{
			Oid			typoutput;
			bool		isvarlena;

			CHECK_FOR_INTERRUPTS();
			getTypeOutputInfo(qs.types[i], &typoutput, &isvarlena);
			appendStringInfo(&qs.sql, " $%d = %s::%s", i + 1,
							 quote_literal_cstr(OidOutputFunctionCall(typoutput, qs.values[i])),
							 format_type_be(qs.types[i]));
			if (i + 1 < qs.nparams)
				appendStringInfoChar(&qs.sql, ',');
		}
	}
	result = cstring_to_text(qs.sql.data);
	PG_RETURN_TEXT_P(result);
}

/* ---------------------------------------------------------------------
 * QueryKeyset pagination
 * ---------------------------------------------------------------------
 */


/*
 * The keyset of qv: its sort fields, then the primary key columns not
 * already sorted on (a unique tie-breaker), all in one direction and NOT
 * NULL, so "(keys) > (cursor)" is exactly "after the cursor".
 */
static List *
keyset_columns(QueryValue *qv, bool *descending)
{
	List	   *keys = NIL;
	bool		have_dir = false;
	bool		desc = false;
	Relation	rel;
	Bitmapset  *pk = NULL;
	int			attr = -1;
	ListCell   *lc;

	foreach(lc, qv->orders)
	{
		QueryOrder *o = lfirst(lc);

		if (have_dir && o->desc != desc)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("keyset pagination needs every sort in the same direction"),
					errhint("Sort all fields asc, or all desc, or use pgapp.paginate."));
		desc = o->desc;
		have_dir = true;
		keys = lappend(keys, &o->f);
	}
	*descending = desc;

	rel = relation_open(qv->relid, AccessShareLock);
	if (rel->rd_rel->relkind == RELKIND_RELATION || rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	while ((attr = bms_next_member(pk, attr)) >= 0)
	{
		AttrNumber	attnum = attr + FirstLowInvalidHeapAttributeNumber;
		char	   *name = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
		bool		have = false;

		foreach(lc, keys)
			have |= (((PgappColumn *) lfirst(lc))->attnum == attnum);
		if (!have)
		{
			PgappColumn *k = palloc0(sizeof(PgappColumn));

			pgapp_query_column(qv->relid, pstrdup(name), k);
			keys = lappend(keys, k);
		}
	}
	if (pk == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("keyset pagination needs a primary key on %s", RelationGetRelationName(rel)),
				errdetail("The primary key breaks ties between rows with the same sort values."));
	foreach(lc, keys)
	{
		PgappColumn *k = lfirst(lc);

		if (!TupleDescAttr(RelationGetDescr(rel), k->attnum - 1)->attnotnull)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("keyset pagination cannot sort on \"%s\", which may be null", k->name),
					errhint("Sort on NOT NULL columns, or use pgapp.paginate."));
	}
	relation_close(rel, AccessShareLock);
	return keys;
}

static char *
encode_cursor(const char *json)
{
	int			len = strlen(json);
	char	   *out = palloc(pg_b64_enc_len(len) + 1);
	int			n = pg_b64_encode(json, len, out, pg_b64_enc_len(len));

	if (n < 0)
		elog(ERROR, "could not encode cursor");
	out[n] = '\0';
	return out;
}

/* The key values of a cursor, each in its column's type. */
static Datum *
decode_cursor(const char *cursor, List *keys)
{
	int			nkeys = list_length(keys);
	int			len = strlen(cursor);
	char	   *json = palloc(pg_b64_dec_len(len) + 1);
	int			n = pg_b64_decode(cursor, len, json, pg_b64_dec_len(len));
	Jsonb	   *jb = NULL;
	Datum	   *values;

	if (n < 0)
		goto bad;
	json[n] = '\0';
	jb = pgapp_jsonb_parse_or_null(json);
	if (jb == NULL || !JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb) || JB_ROOT_COUNT(jb) != nkeys)
		goto bad;
	values = palloc(sizeof(Datum) * Max(nkeys, 1));
	for (int i = 0; i < nkeys; i++)
	{
		char	   *text = pgapp_jsonb_value_cstring(getIthJsonbValueFromContainer(&jb->root, i));

		if (text == NULL)
			goto bad;
		values[i] = pgapp_query_column_input(text, ((PgappColumn *) list_nth(keys, i))->typid);
	}
	return values;

bad:
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid cursor \"%s\"", pgapp_echo(cursor)),
			errhint("Pass the \"after\" value of the previous page, unchanged, for the same query."));
	return NULL;				/* keep compiler quiet */
}

/*
 * pgapp.paginate_after(q, after text, page_size int) -> jsonb
 * {"entries", "page_size", "after"}: the page after the cursor (the first
 * page when after is NULL), and the cursor of the next page, or null at
 * the end.  Deep pages cost the same as the first: no OFFSET.
 */
PG_FUNCTION_INFO_V1(pgapp_paginate_after);
Datum
pgapp_paginate_after(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	char	   *after = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		page_size;
	QuerySql	qs;
	int			ret;
	QueryKeyset ks;
	PgappJsonbBuilder b = {0};
	char	   *next = NULL;
	Jsonb	   *result;
	MemoryContext caller = CurrentMemoryContext;

	(void) pgapp_query_arg(fcinfo, &qv);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("page_size must not be null"));
	page_size = PG_GETARG_INT32(2);
	if (page_size < 1 || page_size > pgapp_query_max_page_size)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("page_size must be between 1 and %d, not %d", pgapp_query_max_page_size, page_size),
				errhint("The upper bound is the setting \"pgapp.query_max_page_size\"."));

	ks.keys = keyset_columns(&qv, &ks.descending);
	ks.after = after ? decode_cursor(after, ks.keys) : NULL;
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_query_sql_select_rows(&qs, &qv, false, (int64) page_size + 1, 0, &ks);
	sql_execute(&qs, 0, qv.search_path);

	MemoryContextSwitchTo(caller);
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "entries");
	pgapp_jsonb_begin_array(&b);
	for (uint64 r = 0; r < SPI_processed && r < (uint64) page_size; r++)
	{
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		pgapp_jsonb_add_jsonb(&b, DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)));
		if (r == (uint64) page_size - 1 && SPI_processed > (uint64) page_size)
			next = encode_cursor(SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2));
	}
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_key(&b, "page_size");
	pgapp_jsonb_add_int(&b, page_size);
	pgapp_jsonb_key(&b, "after");
	if (next)
		pgapp_jsonb_add_string(&b, next);
	else
		pgapp_jsonb_add_null(&b);
	pgapp_jsonb_end_object(&b);
	result = pgapp_jsonb_finish(&b);
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}

/*-------------------------------------------------------------------------
 *
 * multi_steps.c
 *	  Run one step of a multi: a changeset write, a delete, a bulk insert
 *	  or update, a function, or a value.
 *
 * Each runner works as the current user, inside pgapp.transact's
 * subtransaction, and either returns the step's result or fills a
 * MultiFailure (the step failed as steps do: an invalid changeset, a row
 * not found, a function's {"error": ...}) and returns NULL.  An error
 * raised while a step runs (a constraint, a trigger, a function raising)
 * is caught and mapped by pgapp.transact (multi_exec.c).  Statements are
 * built from catalog names (quote_identifier) and run with the values as
 * parameters, never spliced.
 *
 * src/multi/multi_steps.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"

#include "changesets/changeset.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "multi_int.h"

/* The failure of a step: status and error value. */
static Jsonb *
fail_with(MultiFailure *fail, int status, Jsonb *error)
{
	fail->status = status;
	fail->error = error;
	return NULL;
}

static Jsonb *
jsonb_text(const char *text)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* {"field": ["is invalid"]} */
static Jsonb *
invalid_field(const char *field)
{
	PgappJsonbBuilder b = {0};

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, field);
	pgapp_jsonb_begin_array(&b);
	pgapp_jsonb_add_string(&b, "is invalid");
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

typedef struct RefFields
{
	List	   *results;
	List	   *fields;
	List	   *values;
} RefFields;

static void
collect_ref_field(const char *key, int keylen, JsonbValue *value, void *arg)
{
	RefFields  *rf = arg;

	rf->fields = lappend(rf->fields, pstrdup(key));
	rf->values = lappend(rf->values,
						 pgapp_multi_root_value(pgapp_multi_resolve(value, rf->results)));
}

/*
 * insert / update: the changeset with its refs resolved into its changes
 * (each value cast-checked against its column), written as
 * pgapp.insert or pgapp.update write it, but raising (an invalid changeset,
 * a mapped constraint or a missing row is raised as PT422 / PT404 with its
 * body, which pgapp.transact maps like any raised error).
 */
static Jsonb *
run_write(MultiStep *s, List *results, MultiFailure *fail)
{
	Jsonb	   *cs = pgapp_jsonb_from_value(s->arg);
	Jsonb	   *row;

	if (s->refs != NULL)
	{
		RefFields	rf = {results, NIL, NIL};
		char	   *bad = NULL;

		pgapp_jsonb_foreach(s->refs->val.binary.data, collect_ref_field, &rf);
		cs = pgapp_changeset_put_changes(cs, rf.fields, rf.values, &bad);
		if (cs == NULL)
			return fail_with(fail, 422, invalid_field(bad));
	}
	if (s->op == MULTI_INSERT)
		row = pgapp_changeset_insert_unguarded(cs, &fail->write);
	else
		row = pgapp_changeset_update_unguarded(cs, &fail->write);
	return row;
}

/* The primary key columns of relid (char *); 22023 when it has none. */
static List *
primary_key(Oid relid)
{
	List	   *cols = pgapp_primary_key_columns(relid);

	if (cols == NIL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("table \"%s\" has no primary key", get_rel_name(relid)),
				errdetail("Multi finds rows by their primary key."));
	return cols;
}

/* "r.a = k.a AND r.b = k.b" for the columns (char *). */
static char *
key_condition(List *cols)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, cols)
		appendStringInfo(&buf, "%sr.%s OPERATOR(pg_catalog.=) k.%s", buf.len ? " AND " : "",
						 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
	return buf.data;
}

/* "a, b" or "p.a, p.b" for the columns (char *). */
static char *
column_list(List *cols, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, cols)
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix, quote_identifier(lfirst(lc)));
	return buf.data;
}

/*
 * Run a statement returning to_jsonb of each row, as the current user;
 * the rows as a JSON array in the caller's context, *count their number.
 */
static Jsonb *
spi_rows(const char *sql, int nargs, Oid *argtypes, Datum *args, uint64 *count)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext spicxt;
	JsonbValue *rows;
	JsonbValue **values;
	Jsonb	   *array;
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = pgapp_spi_execute_cached(sql, nargs, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING && ret != SPI_OK_UPDATE_RETURNING &&
		ret != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > (uint64) JB_CMASK)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("a multi step changed more than %d rows", (int) JB_CMASK));
	rows = palloc(sizeof(JsonbValue) * Max(SPI_processed, 1));
	values = palloc(sizeof(JsonbValue *) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		CHECK_FOR_INTERRUPTS();
		/* to_jsonb of a row: an object, copied as it is */
		values[i] = pgapp_jsonb_root_value(DatumGetJsonbP(d), &rows[i]);
	}
	*count = SPI_processed;
	spicxt = MemoryContextSwitchTo(caller);
	array = pgapp_jsonb_raw_array((int) SPI_processed, values);
	MemoryContextSwitchTo(spicxt);
	SPI_finish();
	return array;
}

/* {"count": n, "rows": [...]} */
static Jsonb *
count_and_rows(uint64 count, Jsonb *rows)
{
	const char *keys[] = {"count", "rows"};
	JsonbValue	v[2];
	JsonbValue *values[] = {&v[0], &v[1]};

	v[0].type = jbvNumeric;
	v[0].val.numeric = int64_to_numeric((int64) count);
	pgapp_jsonb_root_value(rows, &v[1]);
	return pgapp_jsonb_raw_object(2, keys, values);
}

/* delete: the row whose primary key is id (an object for a composite key). */
static Jsonb *
run_delete(MultiStep *s, List *results, MultiFailure *fail)
{
	List	   *pk;
	Jsonb	   *id = pgapp_multi_resolve(s->arg, results);
	char	   *rel;
	Jsonb	   *key = id;
	Oid			argtypes[1] = {JSONBOID};
	Datum		args[1];
	uint64		count;
	Jsonb	   *rows;

	pgapp_lock_existing_relation(s->relid);
	pk = primary_key(s->relid);
	rel = pgapp_qualified_relname(s->relid);
	if (list_length(pk) == 1)
	{
		PgappJsonbBuilder b = {0};

		pgapp_jsonb_begin_object(&b);
		pgapp_jsonb_key(&b, linitial(pk));
		pgapp_jsonb_add_jsonb(&b, id);
		pgapp_jsonb_end_object(&b);
		key = pgapp_jsonb_finish(&b);
	}
	else if (!pgapp_jsonb_is_object(id))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("the id of multi step \"%s\" must be an object of %s's primary key columns",
					   s->name, get_rel_name(s->relid)));
	args[0] = JsonbPGetDatum(key);
	rows = spi_rows(psprintf("DELETE FROM %s AS r USING pg_catalog.jsonb_populate_record(NULL::%s, $1) AS k"
							 " WHERE %s RETURNING pg_catalog.to_jsonb(r)",
							 rel, rel, key_condition(pk)),
					1, argtypes, args, &count);
	if (count == 0)
		return fail_with(fail, 404, jsonb_text("{\"detail\": \"Not Found\"}"));
	return pgapp_jsonb_from_value(getIthJsonbValueFromContainer(&rows->root, 0));
}

static void
collect_key(const char *key, int keylen, JsonbValue *value, void *arg)
{
	List	  **keys = arg;

	*keys = lappend(*keys, pstrdup(key));
}

/* insert_all: every row in one INSERT; {"count", "rows"}. */
static Jsonb *
run_insert_all(MultiStep *s, List *results)
{
	Jsonb	   *rows = pgapp_multi_resolve(s->arg, results);
	JsonbValue *first = pgapp_jsonb_array_get(s->arg, 0);
	List	   *cols = NIL;
	char	   *rel;
	Oid			argtypes[1] = {JSONBOID};
	Datum		args[1];
	uint64		count;
	Jsonb	   *inserted;

	if (first == NULL)
		return count_and_rows(0, jsonb_text("[]"));
	pgapp_lock_existing_relation(s->relid);
	rel = pgapp_qualified_relname(s->relid);
	pgapp_jsonb_foreach(first->val.binary.data, collect_key, &cols);
	args[0] = JsonbPGetDatum(rows);
	if (cols == NIL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rows of multi step \"%s\" name no column", s->name));
	inserted = spi_rows(psprintf("INSERT INTO %s AS r (%s) SELECT %s"
								 " FROM pg_catalog.jsonb_populate_recordset(NULL::%s, $1) AS p"
								 " RETURNING pg_catalog.to_jsonb(r)",
								 rel, column_list(cols, ""), column_list(cols, "p."), rel),
						1, argtypes, args, &count);
	return count_and_rows(count, inserted);
}

/*
 * update_all: set on the rows the query selects (pgapp.all, as the current
 * user), found again by primary key; {"count", "rows"}.
 */
static Jsonb *
run_update_all(MultiStep *s, List *results)
{
	Jsonb	   *set = pgapp_multi_resolve(s->arg, results);
	List	   *pk;
	List	   *cols = NIL;
	char	   *rel;
	StringInfoData assign;
	ListCell   *lc;
	Oid			argtypes[2] = {JSONBOID, JSONBOID};
	Datum		args[2];
	uint64		count;
	Jsonb	   *updated;

	pgapp_lock_existing_relation(s->relid);
	pk = primary_key(s->relid);
	rel = pgapp_qualified_relname(s->relid);
	pgapp_jsonb_foreach(&set->root, collect_key, &cols);
	initStringInfo(&assign);
	foreach(lc, cols)
		appendStringInfo(&assign, "%s%s = p.%s", assign.len ? ", " : "",
						 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
	args[0] = JsonbPGetDatum(set);
	args[1] = JsonbPGetDatum(s->query);
	updated = spi_rows(psprintf("UPDATE %s AS r SET %s"
								" FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS p"
								" WHERE EXISTS (SELECT FROM pg_catalog.jsonb_populate_recordset(NULL::%s,"
								" pgapp.all($2::pgapp.query)) AS k WHERE %s)"
								" RETURNING pg_catalog.to_jsonb(r)",
								rel, assign.data, rel, rel, key_condition(pk)),
					   2, argtypes, args, &count);
	return count_and_rows(count, updated);
}

/* Raise the 22023 of a run function's malformed result. */
static void
bad_result(MultiStep *s, const char *what)
{
	pgapp_multi_error_is_ours = true;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("function %s of multi step \"%s\" returned %s", format_procedure_qualified(s->fn),
				   s->name, what),
			errhint("A run function returns {\"ok\": value} or {\"error\": value}, optionally with \"status\" (400 to 599)."));
}

/* The status a run function's {"error": ..., "status": n} names. */
static int
result_status(MultiStep *s, JsonbValue *status)
{
	char	   *text;
	char	   *end;
	int			n;

	if (status == NULL)
		return 422;
	if (status->type != jbvNumeric)
		bad_result(s, "a \"status\" that is not a number");
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(status->val.numeric)));

	n = (int) strtol(text, &end, 10);
	if (*end != '\0' || strlen(text) > 3 || n < PGAPP_MIN_ERROR_STATUS || n > PGAPP_MAX_ERROR_STATUS)
		bad_result(s, "a \"status\" outside 400 to 599");
	return n;
}

/* run: fn(changes, args) -> {"ok": value} or {"error": value}. */
static Jsonb *
run_function(MultiStep *s, List *results, MultiFailure *fail)
{
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fcinfo, 2);
	Datum		d;
	Jsonb	   *r;
	JsonbValue *v;

	fmgr_info(s->fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(pgapp_multi_changes(results));
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = JsonbPGetDatum(pgapp_multi_resolve(s->arg, results));
	fcinfo->args[1].isnull = false;
	d = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		bad_result(s, "null");
	r = DatumGetJsonbP(d);
	if (!pgapp_jsonb_is_object(r))
		bad_result(s, "something other than an object");
	if (pgapp_jsonb_get_key(r, "ok") != NULL && pgapp_jsonb_get_key(r, "error") != NULL)
		bad_result(s, "both \"ok\" and \"error\"");
	if ((v = pgapp_jsonb_get_key(r, "ok")) != NULL)
		return pgapp_jsonb_from_value(v);
	if ((v = pgapp_jsonb_get_key(r, "error")) != NULL)
		return fail_with(fail, result_status(s, pgapp_jsonb_get_key(r, "status")),
						 pgapp_jsonb_from_value(v));
	bad_result(s, "an object with neither \"ok\" nor \"error\"");
	return NULL;				/* not reached */
}

/*
 * Run step s (not a merge) with the results so far; its result, or NULL
 * with *fail filled.
 */
Jsonb *
pgapp_multi_run_step(MultiStep *s, List *results, MultiFailure *fail)
{
	switch (s->op)
	{
		case MULTI_INSERT:
		case MULTI_UPDATE:
			return run_write(s, results, fail);
		case MULTI_DELETE:
			return run_delete(s, results, fail);
		case MULTI_INSERT_ALL:
			return run_insert_all(s, results);
		case MULTI_UPDATE_ALL:
			return run_update_all(s, results);
		case MULTI_RUN:
			return run_function(s, results, fail);
		case MULTI_PUT:
			return pgapp_multi_resolve(s->arg, results);
		case MULTI_MERGE:
			break;
	}
	elog(ERROR, "unexpected multi step kind %d", (int) s->op);
	return NULL;				/* not reached */
}

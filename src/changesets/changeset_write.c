/*-------------------------------------------------------------------------
 *
 * changeset_write.c
 *	  pgapp.insert and pgapp.update: write a valid changeset, and turn the
 *	  violation of a constraint it declares into an error on its field.
 *
 * Both write in a subtransaction; Multi's steps write in pgapp.transact's
 * one and map a raised error after it is rolled back, through
 * pgapp_changeset_write_errors.  A violated constraint that the changeset
 * declares (by name, or by the default names
 * <table>_<field>_key / _index / _fkey / _excl / _exclusion) becomes an
 * error on its field; errors raised by a validate_table trigger on the same
 * table are merged too; anything else is re-raised unchanged.
 *
 * src/changesets/changeset_write.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "changeset.h"
#include "changeset_int.h"
#include "changeset_read.h"
#include "core/error.h"
#include "core/json_util.h"

/* PgappCsWrite (changeset.h) is a write's state: Multi keeps it to map errors */
typedef struct PgappCsWrite
{
	Jsonb	   *cs;
	CsRead		read;			/* the changeset, checked by pgapp_cs_read */
	Oid			relid;
	JsonbValue	changes;		/* the "changes" object */
	List	   *columns;		/* char *, the changed columns */
	List	   *values;			/* JsonbValue *, their values (into cs) */
	bool		force_raise;	/* raise errors whatever pgapp.error_mode says */
	bool		unguarded;		/* no subtransaction: the caller maps errors */
} WriteState;

/* Every key of changes is a permitted column: pgapp_cs_read checked it. */
static void
collect_column(const char *key, int keylen, JsonbValue *value, void *arg)
{
	WriteState *ws = (WriteState *) arg;
	JsonbValue *copy = palloc(sizeof(JsonbValue));

	*copy = *value;
	ws->columns = lappend(ws->columns, pstrdup(key));
	ws->values = lappend(ws->values, copy);
}

/*
 * Every value of a valid changeset's changes must fit its column before the
 * write runs (a crafted value gets 22023, not the executor's error).
 */
static void
check_change_fits(const char *key, int keylen, JsonbValue *value, void *arg)
{
	WriteState *ws = (WriteState *) arg;

	CHECK_FOR_INTERRUPTS();
	if (!pgapp_cs_change_fits(ws->relid, key, value))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset change of \"%s\" is not a valid %s", key,
					   format_type_be(get_atttype(ws->relid, get_attnum(ws->relid, key)))),
				errdetail("The value is %s.",
						  pgapp_echo(pgapp_jsonb_value_to_cstring(value))),
				errhint("Build changesets with pgapp.cast() or pgapp.changeset() and pass them on unchanged."));
}

/* The errors of the changeset, as CsErrors (existing). */
static void
load_errors(WriteState *ws, CsErrors *errors)
{
	*errors = ws->read.errors;
}

/* Does constraint conname on relid match a declared constraint? */
static bool
constraint_matches(JsonbValue *decl, Oid relid, int sqlerrcode, const char *conname,
				   char **field, char **message)
{
	char	   *type = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "type"));
	char	   *f = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "field"));
	char	   *name = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "name"));
	char	   *msg = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "message"));
	const char *table = get_rel_name(relid);
	const char *dflt_msg;
	bool		match;

	if (type == NULL || f == NULL)
		return false;
	if (strcmp(type, "unique") == 0 && sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
	{
		dflt_msg = "has already been taken";
		match = name ? strcmp(name, conname) == 0
			: (strcmp(psprintf("%s_%s_key", table, f), conname) == 0 ||
			   strcmp(psprintf("%s_%s_index", table, f), conname) == 0);
	}
	else if (strcmp(type, "foreign_key") == 0 &&
			 (sqlerrcode == ERRCODE_FOREIGN_KEY_VIOLATION || sqlerrcode == ERRCODE_RESTRICT_VIOLATION))
	{
		dflt_msg = "does not exist";
		match = name ? strcmp(name, conname) == 0
			: strcmp(psprintf("%s_%s_fkey", table, f), conname) == 0;
	}
	else if (strcmp(type, "check") == 0 && sqlerrcode == ERRCODE_CHECK_VIOLATION)
	{
		dflt_msg = "is invalid";
		match = name != NULL && strcmp(name, conname) == 0;
	}
	else if (strcmp(type, "exclusion") == 0 && sqlerrcode == ERRCODE_EXCLUSION_VIOLATION)
	{
		dflt_msg = "violates an exclusion constraint";
		match = name ? strcmp(name, conname) == 0
			: (strcmp(psprintf("%s_%s_excl", table, f), conname) == 0 ||
			   strcmp(psprintf("%s_%s_exclusion", table, f), conname) == 0);
	}
	else
		return false;

	if (match)
	{
		*field = f;
		*message = msg ? msg : (char *) dflt_msg;
	}
	return match;
}

/*
 * Re-raise a write's error that no declaration maps.  PostgreSQL's own
 * messages quote the value (invalid input syntax for type uuid: "...", Key
 * (email)=(...) already exists): cut message and detail so an error does not
 * echo a whole request body back.
 */
#define WRITE_ERROR_ECHO_CHARS (4 * PGA_MESSAGE_ECHO_CHARS)

static void
rethrow_cut(ErrorData *edata)
{
	edata->message = pga_truncate_for_message(edata->message, WRITE_ERROR_ECHO_CHARS);
	edata->detail = pga_truncate_for_message(edata->detail, WRITE_ERROR_ECHO_CHARS);
	ReThrowError(edata);
}

/* The DETAIL of a PT422 as jsonb, or NULL when it does not parse. */
static Jsonb *
parse_error_detail(const char *detail_text)
{
	/* the DETAIL is ours, but parse defensively */
	return pgapp_jsonb_parse_or_null(detail_text);
}

/*
 * Add the field errors of a validate_table trigger's {"errors": {...}}
 * object (errs) to errors.  The trigger lists each field's newest first;
 * they are added oldest first.
 */
static void
add_trigger_errors(JsonbValue *errs, CsErrors *errors)
{
	JsonbIterator *it = JsonbIteratorInit(errs->val.binary.data);
	JsonbValue	jv;
	JsonbIteratorToken tok;
	char	   *field = NULL;
	List	   *fieldmsgs = NIL;
	ListCell   *lc;

	while ((tok = JsonbIteratorNext(&it, &jv, false)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			field = pnstrdup(jv.val.string.val, jv.val.string.len);
		else if (tok == WJB_ELEM && jv.type == jbvString && field)
		{
			CsError    *e = palloc(sizeof(CsError));

			e->field = field;
			e->message = pnstrdup(jv.val.string.val, jv.val.string.len);
			fieldmsgs = lcons(e, fieldmsgs);
		}
	}
	foreach(lc, fieldmsgs)
	{
		CsError    *e = lfirst(lc);

		pgapp_cs_add_error(errors, e->field, e->message);
	}
}

/*
 * The field errors a failed write maps to, as {"errors": {...}} with
 * *first_field set, or NULL when nothing maps it (the error stands).
 */
static Jsonb *
mapped_errors(WriteState *ws, ErrorData *edata, const char **first_field)
{
	CsErrors	errors = {0};

	load_errors(ws, &errors);

	/* errors of a validate_table trigger: {"errors": {...}} in DETAIL */
	if (edata->sqlerrcode == ERRCODE_PGAPP_VALIDATION && edata->detail != NULL)
	{
		Jsonb	   *detail = parse_error_detail(edata->detail);
		JsonbValue *errs = detail ? pgapp_jsonb_get_key(detail, "errors") : NULL;

		if (errs == NULL || !pgapp_jsonb_value_is_object(errs))
			return NULL;
		add_trigger_errors(errs, &errors);
		*first_field = pgapp_cs_first_error_field(&errors);
		return pgapp_cs_errors_body(&errors);
	}

	if (edata->constraint_name != NULL &&
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
	{
		JsonbValue *decls = ws->read.constraints;
		int			n = decls ? pgapp_jsonb_array_length(decls) : 0;

		for (int i = 0; i < n; i++)
		{
			JsonbValue *decl = pgapp_jsonb_array_get(decls, i);
			char	   *field;
			char	   *message;

			if (!pgapp_jsonb_value_is_object(decl))
				continue;
			if (constraint_matches(decl, ws->relid, edata->sqlerrcode, edata->constraint_name,
								   &field, &message))
			{
				pgapp_cs_add_error(&errors, field, message);
				*first_field = field;
				return pgapp_cs_errors_body(&errors);
			}
		}
	}
	return NULL;
}

/*
 * Map a failed write to field errors, or re-raise it.  Returns the 422
 * body in return mode; does not return in raise mode.
 */
static Jsonb *
map_write_error(WriteState *ws, ErrorData *edata)
{
	const char *first_field = NULL;
	Jsonb	   *body = mapped_errors(ws, edata, &first_field);

	if (body == NULL)
		rethrow_cut(edata);
	return pgapp_cs_report(body, ws->relid, first_field, ws->force_raise);
}

/*
 * Multi: the field errors ({field: [messages]}) the error of a write run by
 * pgapp_changeset_insert_unguarded or _update_unguarded maps to, or NULL
 * when nothing maps it.  Called after the caller's subtransaction is rolled
 * back; write and edata are in the caller's memory.
 */
Jsonb *
pgapp_changeset_write_errors(PgappCsWrite *write, ErrorData *edata)
{
	const char *first_field = NULL;
	Jsonb	   *body = mapped_errors(write, edata, &first_field);

	return body ? pgapp_jsonb_from_value(pgapp_jsonb_get_key(body, "errors")) : NULL;
}

/* The statement's one row (copied into cxt), or NULL; SPI is connected. */
static Jsonb *
execute_write(const char *sql, int nargs, Oid *argtypes, Datum *args, const char *nulls,
			  MemoryContext cxt)
{
	int			ret;
	Jsonb	   *row = NULL;

	ret = pgapp_spi_execute_cached(sql, nargs, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING && ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 1)
		elog(ERROR, "write changed %lu rows, expected at most one", (unsigned long) SPI_processed);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext spicxt = MemoryContextSwitchTo(cxt);

		row = DatumGetJsonbPCopy(d);
		MemoryContextSwitchTo(spicxt);
	}
	return row;
}

/*
 * Run one write statement in a subtransaction; the row as jsonb, or NULL
 * when no row matched.  Failures go through map_write_error; *error_body
 * gets the 422 body in return mode.  An unguarded write (Multi) runs in the
 * caller's subtransaction and lets its error go up to the caller, which
 * maps it with pgapp_changeset_write_errors.
 */
static Jsonb *
run_write(WriteState *ws, const char *sql, int nargs, Oid *argtypes, Datum *args,
		  const char *nulls, Jsonb **error_body)
{
	PgappSubxact sx;
	Jsonb	   *volatile row = NULL;
	ErrorData  *volatile edata = NULL;
	int			ret;

	*error_body = NULL;
	if (ws->unguarded)
	{
		MemoryContext cxt = CurrentMemoryContext;

		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		row = execute_write(sql, nargs, argtypes, args, nulls, cxt);
		SPI_finish();
		return row;
	}

	/*
	 * SPI is connected inside the subtransaction: on error its rollback also
	 * pops the SPI connection, and results are copied to the caller's context
	 * (sx.oldcontext) before SPI_finish.
	 */
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		row = execute_write(sql, nargs, argtypes, args, nulls, sx.oldcontext);
		SPI_finish();
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		edata = pgapp_subxact_abort(&sx);
	}
	PG_END_TRY();

	if (edata != NULL)
		*error_body = map_write_error(ws, edata);
	return row;
}

static void
prepare_write(WriteState *ws, Jsonb *cs, bool force_raise)
{
	memset(ws, 0, sizeof(WriteState));
	ws->force_raise = force_raise;
	pgapp_cs_read(cs, &ws->read);
	ws->cs = cs;
	ws->relid = ws->read.relid;
	ws->changes = *pgapp_jsonb_get_key(cs, "changes");
	pgapp_jsonb_foreach(ws->read.changes, collect_column, ws);
}

/* Render an invalid changeset's errors (422). */
static Jsonb *
report_invalid(WriteState *ws)
{
	CsErrors	errors = {0};

	load_errors(ws, &errors);
	return pgapp_cs_report(pgapp_cs_errors_body(&errors), ws->relid,
						   pgapp_cs_first_error_field(&errors), ws->force_raise);
}

static char *
column_list(List *columns, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, columns)
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix, quote_identifier(lfirst(lc)));
	return buf.data;
}

static void
set_response_status(const char *status)
{
	if (pgapp_error_returns())
		(void) set_config_option("response.status", status, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Values (JsonbValue *) of columns as parameters of the columns' own
 * types, converted as
 * jsonb_populate_record converts them (a string as it is, a number as
 * numeric_out prints it, a boolean as true or false, through the type's
 * input function with the column's typmod; null as NULL), so that the
 * INSERT needs no jsonb_populate_record.  False, and the caller uses
 * jsonb_populate_record, when a column's type is not a plain scalar (a
 * domain, whose constraints hold for NULL too; an array, composite, json
 * or jsonb) or a value is an array or object.  check_change_fits (or, for
 * a key, primary_key_condition) has checked every value with the same
 * input function.
 */
static bool
typed_values(Oid relid, List *columns, List *values, Oid *argtypes, Datum *args, char *nulls)
{
	ListCell   *c;
	ListCell   *v;
	int			i = 0;

	forboth(c, columns, v, values)
	{
		JsonbValue *jv = lfirst(v);
		AttrNumber	attnum = get_attnum(relid, lfirst(c));
		Oid			typid;
		int32		typmod;
		Oid			collid;
		char		typtype;
		Oid			typinput;
		Oid			typioparam;
		char	   *str;

		get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
		typtype = get_typtype(typid);
		if ((typtype != TYPTYPE_BASE && typtype != TYPTYPE_ENUM) || type_is_array(typid) ||
			typid == JSONOID || typid == JSONBOID || jv->type == jbvBinary)
			return false;
		argtypes[i] = typid;
		nulls[i] = ' ';
		args[i] = (Datum) 0;
		switch (jv->type)
		{
			case jbvNull:
				nulls[i++] = 'n';
				continue;
			case jbvString:
				str = pnstrdup(jv->val.string.val, jv->val.string.len);
				break;
			case jbvBool:
				str = pstrdup(jv->val.boolean ? "true" : "false");
				break;
			case jbvNumeric:
				str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(jv->val.numeric)));
				break;
			default:
				return false;
		}
		getTypeInputInfo(typid, &typinput, &typioparam);
		args[i++] = OidInputFunctionCall(typinput, str, typioparam, typmod);
	}
	return true;
}

/*
 * Insert a changeset's changes: the row, or the error body (return mode).
 * force_raise raises errors whatever pgapp.error_mode says (Multi).
 */
static Jsonb *
write_insert(Jsonb *cs, bool force_raise, PgappCsWrite **unguarded)
{
	WriteState *ws = palloc(sizeof(WriteState));
	char	   *rel;
	char	   *sql;
	int			n;
	Oid		   *argtypes;
	Datum	   *args;
	char	   *nulls;
	Jsonb	   *row;
	Jsonb	   *error_body;

	prepare_write(ws, cs, force_raise);
	if (!ws->read.valid)
		return report_invalid(ws);
	pgapp_jsonb_foreach(ws->read.changes, check_change_fits, ws);

	n = list_length(ws->columns);
	argtypes = palloc(sizeof(Oid) * Max(n, 1));
	args = palloc(sizeof(Datum) * Max(n, 1));
	nulls = palloc(Max(n, 1));
	rel = pgapp_qualified_relname(ws->relid);
	if (ws->columns == NIL)
		sql = psprintf("INSERT INTO %s AS r DEFAULT VALUES RETURNING pg_catalog.to_jsonb(r)", rel);
	else if (typed_values(ws->relid, ws->columns, ws->values, argtypes, args, nulls))
	{
		StringInfoData params;

		initStringInfo(&params);
		for (int i = 1; i <= n; i++)
			appendStringInfo(&params, "%s$%d", i > 1 ? ", " : "", i);
		sql = psprintf("INSERT INTO %s AS r (%s) VALUES (%s) RETURNING pg_catalog.to_jsonb(r)",
					   rel, column_list(ws->columns, ""), params.data);
	}
	else
	{
		sql = psprintf("INSERT INTO %s AS r (%s) SELECT %s FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS p"
					   " RETURNING pg_catalog.to_jsonb(r)",
					   rel, column_list(ws->columns, ""), column_list(ws->columns, "p."), rel);
		n = 1;
		argtypes[0] = JSONBOID;
		args[0] = JsonbPGetDatum(pgapp_jsonb_from_value(&ws->changes));
		nulls[0] = ' ';
	}
	if (unguarded != NULL)
	{
		ws->unguarded = true;
		*unguarded = ws;
	}
	row = run_write(ws, sql, ws->columns == NIL ? 0 : n, argtypes, args, nulls, &error_body);
	if (error_body != NULL)
		return error_body;
	if (row == NULL)
		elog(ERROR, "INSERT returned no row");
	if (!force_raise)
		set_response_status("201");
	return row;
}

/*
 * pgapp.insert for Multi: errors are raised, and the statement runs in the
 * caller's subtransaction; *write is set before it runs, for
 * pgapp_changeset_write_errors.
 */
Jsonb *
pgapp_changeset_insert_unguarded(Jsonb *cs, PgappCsWrite **write)
{
	return write_insert(cs, true, write);
}

/*
 * pgapp.insert(cs) -> jsonb
 */
PG_FUNCTION_INFO_V1(pgapp_insert);
Datum
pgapp_insert(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("changeset must not be null"));
	PG_RETURN_JSONB_P(write_insert(PG_GETARG_JSONB_P(0), false, NULL));
}

/* The primary key columns of relid (22023 when it has none). */
static List *
primary_key_columns(Oid relid)
{
	List	   *pkcols = pgapp_primary_key_columns(relid);

	if (pkcols == NIL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("table \"%s\" has no primary key", get_rel_name(relid)),
				errdetail("pgapp.update finds the row by its primary key."));
	return pkcols;
}

/*
 * The WHERE condition of pgapp.update: r.<pk> = k.<pk> for each primary key
 * column, each of which must have a valid value in the changeset's data;
 * the key columns (char *) and their values (JsonbValue *) are appended to
 * *keys and *key_values.
 */
static char *
primary_key_condition(Oid relid, JsonbValue *data, List **keys, List **key_values)
{
	StringInfoData where;
	ListCell   *lc;

	initStringInfo(&where);
	foreach(lc, primary_key_columns(relid))
	{
		JsonbValue *v = pgapp_jsonb_get(data->val.binary.data, lfirst(lc));

		if (v == NULL || v->type == jbvNull)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("changeset data has no value for primary key column \"%s\"",
						   (char *) lfirst(lc)));
		if (!pgapp_cs_change_fits(relid, lfirst(lc), v))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("changeset data holds no valid %s for primary key column \"%s\"",
						   format_type_be(get_atttype(relid, get_attnum(relid, lfirst(lc)))),
						   (char *) lfirst(lc)),
					errdetail("The value is %s.",
							  pgapp_echo(pgapp_jsonb_value_to_cstring(v))),
					errhint("Build the changeset with the current row, e.g. to_jsonb(t)."));
		appendStringInfo(&where, "%sr.%s OPERATOR(pg_catalog.=) k.%s", where.len ? " AND " : "",
						 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
		*keys = lappend(*keys, lfirst(lc));
		*key_values = lappend(*key_values, v);
	}
	return where.data;
}

/* The 404 of pgapp.update when no row matches the changeset's data. */
static Jsonb *
report_not_found(Oid relid, bool force_raise)
{
	PgappError	err = {0};

	err.status = 404;
	err.body = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												  CStringGetDatum("{\"errors\": {\"detail\": \"Not Found\"}}")));
	err.message = psprintf("no row of \"%s\" matches the changeset's data", get_rel_name(relid));
	err.table_name = get_rel_name(relid);
	err.schema_name = get_namespace_name(get_rel_namespace(relid));
	return pgapp_error_report(&err, force_raise);
}

/*
 * Update a changeset's row (by the primary key of its data) with its
 * changes: the row, or the error body (return mode).  force_raise as for
 * write_insert.
 */
static Jsonb *
write_update(Jsonb *cs, bool force_raise, PgappCsWrite **unguarded)
{
	WriteState *ws = palloc(sizeof(WriteState));
	JsonbValue *data;
	StringInfoData set;
	ListCell   *lc;
	char	   *where;
	char	   *relname;
	char	   *sql;
	List	   *keys = NIL;
	List	   *key_values = NIL;
	int			n;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *args;
	char	   *nulls;
	Jsonb	   *row;
	Jsonb	   *error_body;

	prepare_write(ws, cs, force_raise);
	data = pgapp_jsonb_get_key(ws->cs, "data");
	if (ws->read.data == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset has no data to update"),
				errhint("Build it with the current row, e.g. pgapp.changeset('task_update', params, to_jsonb(t))."));
	if (!ws->read.valid)
		return report_invalid(ws);
	pgapp_jsonb_foreach(ws->read.changes, check_change_fits, ws);
	if (ws->columns == NIL)
		return pgapp_jsonb_from_value(data);	/* no changes, no write (as
												 * Ecto) */

	where = primary_key_condition(ws->relid, data, &keys, &key_values);
	relname = pgapp_qualified_relname(ws->relid);
	n = list_length(ws->columns);
	nargs = n + list_length(keys);
	argtypes = palloc(sizeof(Oid) * nargs);
	args = palloc(sizeof(Datum) * nargs);
	nulls = palloc(nargs);
	initStringInfo(&set);
	if (typed_values(ws->relid, ws->columns, ws->values, argtypes, args, nulls) &&
		typed_values(ws->relid, keys, key_values, argtypes + n, args + n, nulls + n))
	{
		/* SET a = $1, ... WHERE r.k = $n+1 AND ...: no jsonb_populate_record */
		StringInfoData cond;
		int			i = 0;

		initStringInfo(&cond);
		foreach(lc, ws->columns)
		{
			i++;
			appendStringInfo(&set, "%s%s = $%d", set.len ? ", " : "", quote_identifier(lfirst(lc)), i);
		}
		foreach(lc, keys)
		{
			i++;
			appendStringInfo(&cond, "%sr.%s OPERATOR(pg_catalog.=) $%d", cond.len ? " AND " : "",
							 quote_identifier(lfirst(lc)), i);
		}
		sql = psprintf("UPDATE %s AS r SET %s WHERE %s RETURNING pg_catalog.to_jsonb(r)",
					   relname, set.data, cond.data);
	}
	else
	{
		foreach(lc, ws->columns)
			appendStringInfo(&set, "%s%s = p.%s", set.len ? ", " : "",
							 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
		sql = psprintf("UPDATE %s AS r SET %s"
					   " FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS p,"
					   "      pg_catalog.jsonb_populate_record(NULL::%s, $2) AS k"
					   " WHERE %s RETURNING pg_catalog.to_jsonb(r)",
					   relname, set.data, relname, relname, where);
		nargs = 2;
		argtypes[0] = JSONBOID;
		argtypes[1] = JSONBOID;
		args[0] = JsonbPGetDatum(pgapp_jsonb_from_value(&ws->changes));
		args[1] = JsonbPGetDatum(pgapp_jsonb_from_value(data));
		nulls[0] = nulls[1] = ' ';
	}
	if (unguarded != NULL)
	{
		ws->unguarded = true;
		*unguarded = ws;
	}
	row = run_write(ws, sql, nargs, argtypes, args, nulls, &error_body);
	if (error_body != NULL)
		return error_body;
	if (row == NULL)
		return report_not_found(ws->relid, force_raise);
	return row;
}

/* pgapp.update for Multi, as pgapp_changeset_insert_unguarded. */
Jsonb *
pgapp_changeset_update_unguarded(Jsonb *cs, PgappCsWrite **write)
{
	return write_update(cs, true, write);
}

/*
 * pgapp.update(cs) -> jsonb: by the primary key of the changeset's data.
 */
PG_FUNCTION_INFO_V1(pgapp_update);
Datum
pgapp_update(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("changeset must not be null"));
	PG_RETURN_JSONB_P(write_update(PG_GETARG_JSONB_P(0), false, NULL));
}

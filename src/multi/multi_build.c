/*-------------------------------------------------------------------------
 *
 * multi_build.c
 *	  pgapp.multi_insert, multi_update, multi_delete, multi_insert_all,
 *	  multi_update_all, multi_run, multi_put, multi_append, multi_merge and
 *	  multi_names: the builders of a multi.
 *
 * Each builder takes the step names of the multi it is given, checks the
 * new step as pgapp.transact will (its name is unique, its references name
 * earlier steps, its table, columns and function exist and the caller may
 * execute the function) and returns a new multi with the step appended.
 * The earlier steps are not checked again (that would make building a
 * multi quadratic): pgapp.transact checks every step before it runs any.  Nothing is written: the steps run in
 * pgapp.transact.  The builders are not STRICT: a NULL argument is 22004,
 * never a NULL multi that would silently drop the steps built so far.
 *
 * src/multi/multi_build.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "changesets/changeset.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "multi_int.h"

/* Argument n, not NULL (22004 naming what). */
static Datum
required_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", what),
				strcmp(what, "value") == 0 || strcmp(what, "id") == 0 ||
				strcmp(what, "args") == 0
				? errhint("For a JSON null, pass 'null'::jsonb.") : 0);
	return PG_GETARG_DATUM(n);
}

/*
 * The steps of m (containers, pointing into m) appended to *steps; n
 * counts them.
 */
static JsonbValue **
collect_steps(Jsonb *m, JsonbValue **steps, int *n)
{
	JsonbValue *arr = pgapp_jsonb_get_key(m, "steps");
	int			k = pgapp_jsonb_array_length(arr);

	steps = steps ? repalloc(steps, sizeof(JsonbValue *) * (*n + k + 1))
		: palloc(sizeof(JsonbValue *) * (k + 1));
	for (int i = 0; i < k; i++)
	{
		JsonbValue *step = pgapp_jsonb_array_get(arr, i);

		if (step->type != jbvBinary)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("multi is malformed: step %d is not an object", i + 1));
		steps[(*n)++] = step;
	}
	return steps;
}

/* a JSON string value pointing at s */
static JsonbValue *
string_value(const char *s, JsonbValue *v)
{
	v->type = jbvString;
	v->val.string.val = (char *) s;
	v->val.string.len = strlen(s);
	return v;
}

/*
 * m with one more step: {"name": name, "op": op, key: value[, key2:
 * value2]}, checked against m's steps.  value is jsonb; for "table" and
 * "function" the caller passes a JSON string.
 */
static Jsonb *
append_step(Jsonb *m, const char *name, MultiOp op,
			const char *key, Jsonb *value, const char *key2, Jsonb *value2)
{
	List	   *names = pgapp_multi_quick_names(m);
	const char *keys[4];
	JsonbValue *values[4];
	JsonbValue	opv;
	JsonbValue	namev;
	JsonbValue	v1;
	JsonbValue	v2;
	int			k = 0;
	Jsonb	   *step;
	JsonbValue	sv;
	JsonbValue **steps;
	int			n = 0;

	if (pgapp_jsonb_array_length(pgapp_jsonb_get_key(m, "steps")) >= MULTI_MAX_STEPS)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("multi has too many steps"),
				errdetail("A multi has at most %d steps.", MULTI_MAX_STEPS));

	keys[k] = "op";
	values[k++] = string_value(pgapp_multi_op_name(op), &opv);
	if (name != NULL)
	{
		keys[k] = "name";
		values[k++] = string_value(name, &namev);
	}
	keys[k] = key;
	values[k++] = pgapp_jsonb_root_value(value, &v1);
	if (key2 != NULL)
	{
		keys[k] = key2;
		values[k++] = pgapp_jsonb_root_value(value2, &v2);
	}
	step = pgapp_jsonb_raw_object(k, keys, values);

	sv.type = jbvBinary;
	sv.val.binary.data = &step->root;
	sv.val.binary.len = VARSIZE(step) - VARHDRSZ;
	(void) pgapp_multi_read_step(&sv, NIL, names, list_length(names));

	steps = collect_steps(m, NULL, &n);
	steps[n++] = &sv;
	return pgapp_jsonb_object_of_array("steps", n, steps);
}

static Jsonb *
json_string(const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	return pgapp_jsonb_from_value(&v);
}

/* A changeset argument, checked as the changeset functions check it. */
static Jsonb *
changeset_arg(FunctionCallInfo fcinfo, int n)
{
	Jsonb	   *cs = DatumGetJsonbP(required_arg(fcinfo, n, "changeset"));

	pgapp_changeset_check(cs);
	return cs;
}

/* insert / update: the changeset, and refs when given (not null). */
static Jsonb *
write_step(FunctionCallInfo fcinfo, MultiOp op)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "step name");
	Jsonb	   *cs = changeset_arg(fcinfo, 2);

	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		return append_step(m, name, op, "changeset", cs, "refs", PG_GETARG_JSONB_P(3));
	return append_step(m, name, op, "changeset", cs, NULL, NULL);
}

/* pgapp.multi_insert(m, name, cs, refs jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_insert);
Datum
pgapp_multi_insert(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(write_step(fcinfo, MULTI_INSERT));
}

/* pgapp.multi_update(m, name, cs, refs jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_update);
Datum
pgapp_multi_update(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(write_step(fcinfo, MULTI_UPDATE));
}

/* A table argument as the JSON string of its qualified name. */
static Jsonb *
table_arg(FunctionCallInfo fcinfo, int n)
{
	Oid			relid = DatumGetObjectId(required_arg(fcinfo, n, "table"));

	if (get_rel_relkind(relid) == '\0')
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_TABLE),
				errmsg("relation with OID %u does not exist", relid));
	return json_string(pgapp_qualified_relname(relid));
}

/* pgapp.multi_delete(m, name, tbl regclass, id jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_delete);
Datum
pgapp_multi_delete(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "step name");
	Jsonb	   *table = table_arg(fcinfo, 2);
	Jsonb	   *id = DatumGetJsonbP(required_arg(fcinfo, 3, "id"));

	PG_RETURN_JSONB_P(append_step(m, name, MULTI_DELETE, "table", table, "id", id));
}

/* pgapp.multi_insert_all(m, name, tbl regclass, rows jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_insert_all);
Datum
pgapp_multi_insert_all(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "step name");
	Jsonb	   *table = table_arg(fcinfo, 2);
	Jsonb	   *rows = DatumGetJsonbP(required_arg(fcinfo, 3, "rows"));

	PG_RETURN_JSONB_P(append_step(m, name, MULTI_INSERT_ALL, "table", table, "rows", rows));
}

/* pgapp.multi_update_all(m, name, q pgapp.query, set jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_update_all);
Datum
pgapp_multi_update_all(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "step name");
	Jsonb	   *q = DatumGetJsonbP(required_arg(fcinfo, 2, "query"));
	Jsonb	   *set = DatumGetJsonbP(required_arg(fcinfo, 3, "set"));

	PG_RETURN_JSONB_P(append_step(m, name, MULTI_UPDATE_ALL, "query", q, "set", set));
}

/* A function argument, checked, as the JSON string of its signature. */
static Jsonb *
function_arg(FunctionCallInfo fcinfo, int n, bool merge)
{
	Oid			fn = DatumGetObjectId(required_arg(fcinfo, n, "function"));

	pgapp_multi_check_function(fn, merge);
	return json_string(format_procedure_qualified(fn));
}

/* pgapp.multi_run(m, name, fn regprocedure, args jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_run);
Datum
pgapp_multi_run(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "step name");
	Jsonb	   *fn = function_arg(fcinfo, 2, false);
	Jsonb	   *args = DatumGetJsonbP(required_arg(fcinfo, 3, "args"));

	PG_RETURN_JSONB_P(append_step(m, name, MULTI_RUN, "function", fn, "args", args));
}

/* pgapp.multi_put(m, name, value jsonb) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_put);
Datum
pgapp_multi_put(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "step name");
	Jsonb	   *value = DatumGetJsonbP(required_arg(fcinfo, 2, "value"));

	PG_RETURN_JSONB_P(append_step(m, name, MULTI_PUT, "value", value, NULL, NULL));
}

/* pgapp.multi_merge(m, fn regprocedure) -> pgapp.multi */
PG_FUNCTION_INFO_V1(pgapp_multi_merge);
Datum
pgapp_multi_merge(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	Jsonb	   *fn = function_arg(fcinfo, 1, true);

	PG_RETURN_JSONB_P(append_step(m, NULL, MULTI_MERGE, "function", fn, NULL, NULL));
}

/*
 * pgapp.multi_append(m1, m2) -> pgapp.multi: m1's steps, then m2's (whose
 * names must not be m1's).
 */
PG_FUNCTION_INFO_V1(pgapp_multi_append);
Datum
pgapp_multi_append(PG_FUNCTION_ARGS)
{
	Jsonb	   *m1 = pgapp_multi_arg(fcinfo, 0);
	Jsonb	   *m2 = pgapp_multi_arg(fcinfo, 1);
	List	   *first = pgapp_multi_read(m1, NIL);

	JsonbValue **steps;
	int			n = 0;

	(void) pgapp_multi_read(m2, pgapp_multi_step_names(first));
	steps = collect_steps(m1, NULL, &n);
	steps = collect_steps(m2, steps, &n);
	PG_RETURN_JSONB_P(pgapp_jsonb_object_of_array("steps", n, steps));
}

/* pgapp.multi_names(m) -> text[]: the step names, in order. */
PG_FUNCTION_INFO_V1(pgapp_multi_names);
Datum
pgapp_multi_names(PG_FUNCTION_ARGS)
{
	List	   *names = pgapp_multi_step_names(pgapp_multi_read(pgapp_multi_arg(fcinfo, 0), NIL));
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(names), 1));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, names)
		elems[i++] = CStringGetTextDatum(lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT));
}

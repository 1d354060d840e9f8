/*-------------------------------------------------------------------------
 *
 * changeset_cast.c
 *	  Building a changeset: pgapp.cast (and pgapp.changeset's cast step),
 *	  and the check that a change fits its column before a write.
 *
 * Casting follows Ecto: permitted params only; strings trimmed and blank
 * strings are nil; a value equal to the data's is not a change; a value
 * that does not fit the column is "is invalid".  Common types are cast in
 * C; the rest through jsonb_populate_record in a subtransaction.
 *
 * src/changeset_cast.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "changeset_int.h"
#include "core/error.h"
#include "core/json_util.h"

/* ---------------------------------------------------------------------
 * Cast
 * ---------------------------------------------------------------------
 */


/*
 * In PG_CATCH of a cast: roll the subtransaction back and return false when
 * the error says the value does not fit the type (data exception or domain
 * check); re-raise anything else, which is real trouble.
 */
static bool
value_did_not_fit(PgappSubxact *sx)
{
	ErrorData  *edata = pgapp_subxact_abort(sx);

	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
		ReThrowError(edata);
	FreeErrorData(edata);
	return false;
}

/*
 * Run a type's input function on str; false instead of an error when the
 * text is not a valid value (in a subtransaction, as PL/pgSQL would).
 */
bool
pgapp_cs_try_input(Oid typid, int32 typmod, const char *str, Datum *out)
{
	Oid			typinput;
	Oid			typioparam;
	PgappSubxact sx;
	volatile bool ok = true;

	getTypeInputInfo(typid, &typinput, &typioparam);
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		*out = OidInputFunctionCall(typinput, (char *) str, typioparam, typmod);
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		ok = value_did_not_fit(&sx);
	}
	PG_END_TRY();
	return ok;
}

/*
 * Cast through jsonb_populate_record, for the types without a fast path
 * (arrays, domains, composites, ranges, dates...): the column's value as
 * to_jsonb renders it, or false when the value does not fit the column.
 */
static bool
cast_populate(Oid relid, const char *field, JsonbValue *value, JsonbValue **out)
{
	PgappJsonbBuilder b = {0};
	Jsonb	   *arg;
	char	   *relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													 get_rel_name(relid));
	char	   *sql;
	Oid			argtypes[2] = {JSONBOID, TEXTOID};
	Datum		values[2];
	PgappSubxact sx;
	volatile bool ok = true;
	int			ret;

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, field);
	pgapp_jsonb_add_value(&b, value);
	pgapp_jsonb_end_object(&b);
	arg = pgapp_jsonb_finish(&b);

	sql = psprintf("SELECT pg_catalog.to_jsonb(r) OPERATOR(pg_catalog.->) $2"
				   " FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS r", relname);
	values[0] = JsonbPGetDatum(arg);
	values[1] = CStringGetTextDatum(field);

	/* SPI inside the subtransaction: a failed cast rolls both back */
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		bool		isnull;
		Datum		d;
		MemoryContext spicxt;

		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		ret = SPI_execute_with_args(sql, 2, argtypes, values, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		/* the result must outlive SPI_finish: copy it into the caller's context */
		spicxt = MemoryContextSwitchTo(sx.oldcontext);
		*out = palloc0(sizeof(JsonbValue));
		if (isnull)
			(*out)->type = jbvNull;
		else
		{
			Jsonb	   *jb = DatumGetJsonbPCopy(d);

			if (JB_ROOT_IS_SCALAR(jb))
				*out = getIthJsonbValueFromContainer(&jb->root, 0);
			else
			{
				(*out)->type = jbvBinary;
				(*out)->val.binary.data = &jb->root;
				(*out)->val.binary.len = VARSIZE(jb) - VARHDRSZ;
			}
		}
		MemoryContextSwitchTo(spicxt);
		SPI_finish();
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		ok = value_did_not_fit(&sx);
	}
	PG_END_TRY();
	return ok;
}

/*
 * Cast one param to the column's type.  Returns false for "is invalid";
 * otherwise *out is the value as it goes into the changes (NULL jsonb value
 * for blank).
 */
static bool
cast_value(Oid relid, const CsField *f, JsonbValue *in, JsonbValue *out)
{
	const char *s = NULL;
	int			len = 0;

	memset(out, 0, sizeof(JsonbValue));
	out->type = jbvNull;
	if (in->type == jbvNull)
		return true;

	/* json/jsonb columns take any JSON as it is */
	if (f->typid == JSONBOID || f->typid == JSONOID)
	{
		*out = *in;
		return true;
	}

	if (in->type == jbvString)
	{
		len = pgapp_cs_trim(in->val.string.val, in->val.string.len, &s);
		if (len == 0)
			return true;		/* blank is nil */
	}

	switch (f->typid)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			if (in->type != jbvString)
				return false;
			if (f->typmod >= 0)
			{
				Datum		d;

				if (!pgapp_cs_try_input(f->typid, f->typmod, pnstrdup(s, len), &d))
					return false;
			}
			out->type = jbvString;
			out->val.string.val = (char *) s;
			out->val.string.len = len;
			return true;

		case BOOLOID:
			if (in->type == jbvBool)
			{
				*out = *in;
				return true;
			}
			if (in->type == jbvString)
			{
				out->type = jbvBool;
				if ((len == 4 && strncmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1'))
					out->val.boolean = true;
				else if ((len == 5 && strncmp(s, "false", 5) == 0) || (len == 1 && s[0] == '0'))
					out->val.boolean = false;
				else
					return false;
				return true;
			}
			return false;

		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			{
				char	   *str;
				Datum		d;

				if (in->type == jbvNumeric)
					str = DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(in->val.numeric)));
				else if (in->type == jbvString)
					str = pnstrdup(s, len);
				else
					return false;
				if (!pgapp_cs_try_input(f->typid, f->typmod, str, &d))
					return false;
				out->type = jbvNumeric;
				switch (f->typid)
				{
					case INT2OID:
						out->val.numeric = int64_to_numeric(DatumGetInt16(d));
						break;
					case INT4OID:
						out->val.numeric = int64_to_numeric(DatumGetInt32(d));
						break;
					case INT8OID:
						out->val.numeric = int64_to_numeric(DatumGetInt64(d));
						break;
					case NUMERICOID:
						if (numeric_is_nan(DatumGetNumeric(d)) || numeric_is_inf(DatumGetNumeric(d)))
							return false;
						out->val.numeric = DatumGetNumeric(d);
						break;
					default:
						{
							float8		x = f->typid == FLOAT4OID ? DatumGetFloat4(d) : DatumGetFloat8(d);

							if (isnan(x) || isinf(x))
								return false;
							out->val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
																				   Float8GetDatum(x)));
						}
				}
				return true;
			}

		default:
			break;
	}

	if (f->typcategory == TYPCATEGORY_ENUM)
	{
		HeapTuple	tup;

		if (in->type != jbvString)
			return false;
		tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(f->typid),
							  CStringGetDatum(pnstrdup(s, len)));
		if (!HeapTupleIsValid(tup))
			return false;
		ReleaseSysCache(tup);
		out->type = jbvString;
		out->val.string.val = (char *) s;
		out->val.string.len = len;
		return true;
	}

	/* everything else: PostgreSQL's own jsonb-to-column conversion */
	if (in->type == jbvString)
	{
		JsonbValue	trimmed = *in;
		JsonbValue *res;

		trimmed.val.string.val = (char *) s;
		trimmed.val.string.len = len;
		if (!cast_populate(relid, f->name, &trimmed, &res))
			return false;
		*out = *res;
		return true;
	}
	else
	{
		JsonbValue *res;

		if (!cast_populate(relid, f->name, in, &res))
			return false;
		*out = *res;
		return true;
	}
}

/*
 * Does a change hold a value its column can take?  For pgapp.insert and
 * pgapp.update, before the write: a crafted changeset gets 22023 from the
 * reader's side rather than whatever the executor would say.  A string for
 * a scalar column goes through the type's input function; anything else
 * through the same conversion pgapp.cast uses.
 */
bool
pgapp_cs_change_fits(Oid relid, const char *name, JsonbValue *value)
{
	CsField		f;
	JsonbValue	out;
	Datum		d;

	if (value->type == jbvNull)
		return true;
	pgapp_cs_resolve_field(relid, name, false, &f);
	if (f.typid == JSONOID || f.typid == JSONBOID)
		return true;
	/* a string is what the write gives the type's input function, as is */
	if (value->type == jbvString && f.typmod < 0 &&
		(f.typid == TEXTOID || f.typid == VARCHAROID || f.typid == BPCHAROID))
		return true;			/* any string is a text: no subtransaction */
	if (value->type == jbvString)
		return pgapp_cs_try_input(f.typid, f.typmod,
								  pnstrdup(value->val.string.val, value->val.string.len), &d);
	return cast_value(relid, &f, value, &out);
}

static void
add_jsonb_member(PgappJsonbBuilder *b, const char *key, Jsonb *value)
{
	pgapp_jsonb_key(b, key);
	if (value == NULL)
		pgapp_jsonb_add_null(b);
	else
		pgapp_jsonb_add_jsonb(b, value);
}

/*
 * Build a changeset: cast the permitted params, then apply rules (a List of
 * CsRule, possibly NIL).  action is "insert" or "update" (or NULL).
 */
Jsonb *
pgapp_cs_cast(Oid relid, Jsonb *data, Jsonb *params, ArrayType *permitted, List *rules,
			  const char *action, const char *name)
{
	List	   *permitted_names = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	PgappJsonbBuilder cb = {0};
	PgappJsonbBuilder b = {0};
	Jsonb	   *changes;
	CsErrors	errors = {0};
	CsInput		in = {0};
	List	   *required = NIL;
	List	   *constraints = NIL;
	ListCell   *lc;
	char	   *source;

	if (data != NULL && !pgapp_jsonb_is_object(data))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("data must be a JSON object or null"),
				errhint("Pass the current row, e.g. to_jsonb(t), or NULL for a new row."));
	if (!pgapp_jsonb_is_object(params))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("params must be a JSON object"));

	deconstruct_array(permitted, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > pgapp_changeset_max_items)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("too many permitted fields (%d)", n),
				errdetail("The limit is %d.", pgapp_changeset_max_items),
				errhint("A superuser can raise pgapp.changeset_max_items."));

	pgapp_jsonb_begin_object(&cb);
	for (int i = 0; i < n; i++)
	{
		CsField		f;
		JsonbValue *param;
		JsonbValue	cast;
		JsonbValue *current;

		CHECK_FOR_INTERRUPTS();
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("permitted fields must not contain nulls"));
		pgapp_cs_resolve_field(relid, TextDatumGetCString(elems[i]), false, &f);
		permitted_names = lappend(permitted_names, f.name);
		param = pgapp_jsonb_get(&params->root, f.name);
		if (param == NULL)
			continue;
		if (!cast_value(relid, &f, param, &cast))
		{
			pgapp_cs_add_error(&errors, f.name, "is invalid");
			continue;
		}
		/* a value equal to the data's is not a change */
		current = data ? pgapp_jsonb_get(&data->root, f.name) : NULL;
		if (current == NULL)
		{
			if (cast.type == jbvNull)
				continue;
		}
		else if (pgapp_jsonb_values_equal(current, &cast))
			continue;
		pgapp_jsonb_key(&cb, f.name);
		pgapp_jsonb_add_value(&cb, &cast);
	}
	pgapp_jsonb_end_object(&cb);
	changes = pgapp_jsonb_finish(&cb);

	in.changes = &changes->root;
	in.data = data ? &data->root : NULL;
	in.params = &params->root;
	foreach(lc, rules)
	{
		CsRule	   *rule = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (CS_IS_CONSTRAINT(rule->kind))
			constraints = lappend(constraints, rule);
		else
		{
			if (rule->kind == CS_REQUIRED)
				for (int i = 0; i < rule->nfields; i++)
					required = lappend(required, rule->fields[i].name);
			pgapp_cs_apply_rule(rule, &in, &errors);
		}
	}

	pgapp_cs_check_error_count(&errors);
	source = pgapp_cs_source_name(relid);
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "source");
	pgapp_jsonb_add_string(&b, source);
	pgapp_jsonb_key(&b, "action");
	if (action)
		pgapp_jsonb_add_string(&b, action);
	else
		pgapp_jsonb_add_null(&b);
	add_jsonb_member(&b, "data", data);
	pgapp_jsonb_key(&b, "name");
	if (name)
		pgapp_jsonb_add_string(&b, name);
	else
		pgapp_jsonb_add_null(&b);
	pgapp_jsonb_key(&b, "permitted");
	pgapp_jsonb_begin_array(&b);
	foreach(lc, permitted_names)
		pgapp_jsonb_add_string(&b, lfirst(lc));
	pgapp_jsonb_end_array(&b);
	add_jsonb_member(&b, "params", params);
	pgapp_jsonb_key(&b, "changes");
	pgapp_cs_add_changes_json(&b, &changes->root, in.drop_changes);
	pgapp_jsonb_key(&b, "errors");
	pgapp_cs_add_errors_json(&b, &errors);
	pgapp_jsonb_key(&b, "valid");
	pgapp_jsonb_add_bool(&b, errors.added == NIL);
	pgapp_jsonb_key(&b, "required");
	pgapp_jsonb_begin_array(&b);
	foreach(lc, required)
		pgapp_jsonb_add_string(&b, lfirst(lc));
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_key(&b, "constraints");
	pgapp_jsonb_begin_array(&b);
	foreach(lc, constraints)
		pgapp_cs_add_constraint_json(&b, lfirst(lc));
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

/*
 * pgapp.cast(source regclass, data jsonb, params jsonb, permitted text[])
 */
PG_FUNCTION_INFO_V1(pgapp_cast);
Datum
pgapp_cast(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("source must not be null"));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("params must not be null"),
				errhint("Pass '{}' for no params."));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("permitted must not be null"),
				errhint("Pass the list of fields the caller may set, e.g. ARRAY['title']."));
	relid = PG_GETARG_OID(0);
	if (get_rel_relkind(relid) != RELKIND_RELATION && get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a table", get_rel_name(relid)));
	PG_RETURN_JSONB_P(pgapp_cs_cast(relid,
									PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
									PG_GETARG_JSONB_P(2),
									PG_GETARG_ARRAYTYPE_P(3),
									NIL, PG_ARGISNULL(1) ? "insert" : "update", NULL));
}

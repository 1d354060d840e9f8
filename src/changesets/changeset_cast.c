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
 * src/changesets/changeset_cast.c
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
#include "changeset_read.h"
#include "core/error.h"
#include "core/json_util.h"

/* ---------------------------------------------------------------------
 * Cast
 * ---------------------------------------------------------------------
 */


/*
 * Cast through jsonb_to_record, for the types without a fast path (arrays,
 * domains, composites, ranges, dates...): the column's value as to_jsonb
 * renders it, or false when the value does not fit the column.  The record
 * has the one column, of the column's type and typmod: populating the
 * table's whole row type would also check the other columns' NULLs
 * against their domains (a NOT NULL domain made every such cast invalid).
 */
static bool
cast_populate(Oid relid, const char *field, JsonbValue *value, JsonbValue **out)
{
	PgappJsonbBuilder b = {0};
	Jsonb	   *arg;
	char	   *sql;
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1];
	AttrNumber	attnum = get_attnum(relid, field);
	Oid			typid;
	int32		typmod;
	Oid			collid;
	PgappSubxact sx;
	volatile bool ok = true;
	int			ret;

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, field);
	pgapp_jsonb_add_value(&b, value);
	pgapp_jsonb_end_object(&b);
	arg = pgapp_jsonb_finish(&b);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of relation %u does not exist", field, relid);
	get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
	sql = psprintf("SELECT pg_catalog.to_jsonb(r.%s) FROM pg_catalog.jsonb_to_record($1) AS r (%s %s)",
				   quote_identifier(field), quote_identifier(field),
				   format_type_extended(typid, typmod,
										FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
	values[0] = JsonbPGetDatum(arg);

	/* SPI inside the subtransaction: a failed cast rolls both back */
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		bool		isnull;
		Datum		d;
		MemoryContext spicxt;

		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		ret = SPI_execute_with_args(sql, 1, argtypes, values, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		/*
		 * the result must outlive SPI_finish: copy it into the caller's
		 * context
		 */
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
		ok = pgapp_cs_value_did_not_fit(&sx);
	}
	PG_END_TRY();
	return ok;
}

/* A string value s (len bytes, in the caller's memory) into *out. */
static void
set_string(JsonbValue *out, const char *s, int len)
{
	out->type = jbvString;
	out->val.string.val = (char *) s;
	out->val.string.len = len;
}

/* text, varchar, char: a string that fits the column's length. */
static bool
cast_text(const PgappColumn *f, JsonbValue *in, const char *s, int len, JsonbValue *out)
{
	if (in->type != jbvString)
		return false;
	if (f->typmod >= 0)
	{
		Datum		d;

		if (!pgapp_cs_try_input(f->basetype, f->typmod, pnstrdup(s, len), &d))
			return false;
	}
	set_string(out, s, len);
	return true;
}

/* boolean: true/false, or the strings "true"/"1" and "false"/"0". */
static bool
cast_bool(JsonbValue *in, const char *s, int len, JsonbValue *out)
{
	if (in->type == jbvBool)
	{
		*out = *in;
		return true;
	}
	if (in->type != jbvString)
		return false;
	out->type = jbvBool;
	if ((len == 4 && strncmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1'))
		out->val.boolean = true;
	else if ((len == 5 && strncmp(s, "false", 5) == 0) || (len == 1 && s[0] == '0'))
		out->val.boolean = false;
	else
		return false;
	return true;
}

/*
 * The numeric value d of type typid as a JSON number; false for NaN and
 * infinities, which JSON cannot hold.
 */
static bool
number_to_numeric(Oid typid, Datum d, Numeric *out)
{
	float8		x;

	switch (typid)
	{
		case INT2OID:
			*out = int64_to_numeric(DatumGetInt16(d));
			return true;
		case INT4OID:
			*out = int64_to_numeric(DatumGetInt32(d));
			return true;
		case INT8OID:
			*out = int64_to_numeric(DatumGetInt64(d));
			return true;
		case NUMERICOID:
			if (numeric_is_nan(DatumGetNumeric(d)) || numeric_is_inf(DatumGetNumeric(d)))
				return false;
			*out = DatumGetNumeric(d);
			return true;
		default:
			x = typid == FLOAT4OID ? DatumGetFloat4(d) : DatumGetFloat8(d);
			if (isnan(x) || isinf(x))
				return false;
			*out = DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(x)));
			return true;
	}
}

/* integers, numeric, floats: a number or a string the type accepts. */
static bool
cast_number(const PgappColumn *f, JsonbValue *in, const char *s, int len, JsonbValue *out)
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
	if (!pgapp_cs_try_input(f->basetype, f->typmod, str, &d))
		return false;
	out->type = jbvNumeric;
	return number_to_numeric(f->basetype, d, &out->val.numeric);
}

/* an enum: a string that is one of its labels. */
static bool
cast_enum(const PgappColumn *f, JsonbValue *in, const char *s, int len, JsonbValue *out)
{
	HeapTuple	tup;

	if (in->type != jbvString)
		return false;
	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(f->basetype),
						  CStringGetDatum(pnstrdup(s, len)));
	if (!HeapTupleIsValid(tup))
		return false;
	ReleaseSysCache(tup);
	set_string(out, s, len);
	return true;
}

/* everything else: PostgreSQL's own jsonb-to-column conversion */
static bool
cast_other(Oid relid, const PgappColumn *f, JsonbValue *in, const char *s, int len,
		   JsonbValue *out)
{
	JsonbValue	trimmed = *in;
	JsonbValue *res;

	if (in->type == jbvString)
	{
		trimmed.val.string.val = (char *) s;
		trimmed.val.string.len = len;
	}
	if (!cast_populate(relid, f->name, &trimmed, &res))
		return false;
	*out = *res;
	return true;
}

/*
 * Cast one param to the column's type.  Returns false for "is invalid";
 * otherwise *out is the value as it goes into the changes (NULL jsonb value
 * for blank).
 */
static bool
cast_value(Oid relid, const PgappColumn *f, JsonbValue *in, JsonbValue *out)
{
	const char *s = NULL;
	int			len = 0;

	memset(out, 0, sizeof(JsonbValue));
	out->type = jbvNull;
	if (in->type == jbvNull)
		return true;

	/* json/jsonb columns take any JSON as it is */
	if (f->basetype == JSONBOID || f->basetype == JSONOID)
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

	switch (f->basetype)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return cast_text(f, in, s, len, out);
		case BOOLOID:
			return cast_bool(in, s, len, out);
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			return cast_number(f, in, s, len, out);
		default:
			break;
	}
	if (f->category == TYPCATEGORY_ENUM)
		return cast_enum(f, in, s, len, out);
	return cast_other(relid, f, in, s, len, out);
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
	PgappColumn f;
	JsonbValue	out;
	Datum		d;

	if (value->type == jbvNull)
		return true;
	pgapp_resolve_column(relid, name, false, NULL, &f);
	if (f.basetype == JSONOID || f.basetype == JSONBOID)
		return true;
	/* a string is what the write gives the type's input function, as is */
	if (value->type == jbvString && f.typmod < 0 &&
		(f.basetype == TEXTOID || f.basetype == VARCHAROID || f.basetype == BPCHAROID))
		return true;			/* any string is a text: no subtransaction */
	if (value->type == jbvString)
		return pgapp_cs_try_input(f.basetype, f.typmod,
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

/* Is field one of the fields validate_required dropped? */
static bool
dropped(List *drop, const char *field)
{
	ListCell   *lc;

	foreach(lc, drop)
	{
		if (strcmp(lfirst(lc), field) == 0)
			return true;
	}
	return false;
}

/* The changes object without the dropped fields. */
void
pgapp_cs_add_changes_json(PgappJsonbBuilder *b, JsonbContainer *changes, List *drop)
{
	JsonbIterator *it = JsonbIteratorInit(changes);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	pgapp_jsonb_begin_object(b);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && !dropped(drop, key))
		{
			pgapp_jsonb_key(b, key);
			pgapp_jsonb_add_value(b, &v);
		}
	}
	pgapp_jsonb_end_object(b);
}

void
pgapp_cs_add_constraint_json(PgappJsonbBuilder *b, const CsRule *rule)
{
	pgapp_jsonb_begin_object(b);
	pgapp_jsonb_key(b, "type");
	pgapp_jsonb_add_string(b, pgapp_cs_constraint_type(rule->kind));
	pgapp_jsonb_key(b, "field");
	pgapp_jsonb_add_string(b, rule->fields[0].name);
	pgapp_jsonb_key(b, "name");
	if (rule->constraint_name)
		pgapp_jsonb_add_string(b, rule->constraint_name);
	else
		pgapp_jsonb_add_null(b);
	pgapp_jsonb_key(b, "message");
	if (rule->message)
		pgapp_jsonb_add_string(b, rule->message);
	else
		pgapp_jsonb_add_null(b);
	pgapp_jsonb_end_object(b);
}

/* What pgapp_cs_cast builds up before it writes the changeset. */
typedef struct CastState
{
	Oid			relid;
	Jsonb	   *data;			/* NULL: a new row */
	Jsonb	   *params;
	List	   *permitted;		/* char *, the permitted field names */
	Jsonb	   *changes;
	CsInput		in;
	CsErrors	errors;
	List	   *required;		/* char *, fields of the required rules */
	List	   *constraints;	/* CsRule *, the constraint mappings */
} CastState;

/*
 * Cast each permitted param into st->changes; a param that does not cast is
 * "is invalid", and a value equal to the data's is not a change.
 */
static void
cast_changes(CastState *st, ArrayType *permitted)
{
	PgappJsonbBuilder cb = {0};
	Datum	   *elems;
	bool	   *nulls;
	int			n;

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
		PgappColumn f;
		JsonbValue *param;
		JsonbValue	cast;
		JsonbValue *current;

		CHECK_FOR_INTERRUPTS();
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("permitted fields must not contain nulls"));
		pgapp_resolve_column(st->relid, TextDatumGetCString(elems[i]), false, NULL, &f);
		st->permitted = lappend(st->permitted, f.name);
		param = pgapp_jsonb_get(&st->params->root, f.name);
		if (param == NULL)
			continue;
		if (!cast_value(st->relid, &f, param, &cast))
		{
			pgapp_cs_add_error(&st->errors, f.name, "is invalid");
			continue;
		}
		current = st->data ? pgapp_jsonb_get(&st->data->root, f.name) : NULL;
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
	st->changes = pgapp_jsonb_finish(&cb);
}

/* Apply the validation rules; set the constraint mappings aside. */
static void
apply_rules(CastState *st, List *rules)
{
	ListCell   *lc;

	st->in.changes = &st->changes->root;
	st->in.data = st->data ? &st->data->root : NULL;
	st->in.params = &st->params->root;
	foreach(lc, rules)
	{
		CsRule	   *rule = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (CS_IS_CONSTRAINT(rule->kind))
			st->constraints = lappend(st->constraints, rule);
		else
		{
			if (rule->kind == CS_REQUIRED)
				for (int i = 0; i < rule->nfields; i++)
					st->required = lappend(st->required, rule->fields[i].name);
			pgapp_cs_apply_rule(rule, &st->in, &st->errors);
		}
	}
}

static void
add_string_or_null(PgappJsonbBuilder *b, const char *key, const char *value)
{
	pgapp_jsonb_key(b, key);
	if (value)
		pgapp_jsonb_add_string(b, value);
	else
		pgapp_jsonb_add_null(b);
}

static void
add_string_array(PgappJsonbBuilder *b, const char *key, List *strings)
{
	ListCell   *lc;

	pgapp_jsonb_key(b, key);
	pgapp_jsonb_begin_array(b);
	foreach(lc, strings)
		pgapp_jsonb_add_string(b, lfirst(lc));
	pgapp_jsonb_end_array(b);
}

/* The changeset value, its keys in the documented order. */
static Jsonb *
changeset_json(CastState *st, const char *action, const char *name)
{
	PgappJsonbBuilder b = {0};
	ListCell   *lc;

	pgapp_jsonb_begin_object(&b);
	add_string_or_null(&b, "source", pgapp_cs_source_name(st->relid));
	add_string_or_null(&b, "action", action);
	add_jsonb_member(&b, "data", st->data);
	add_string_or_null(&b, "name", name);
	add_string_array(&b, "permitted", st->permitted);
	add_jsonb_member(&b, "params", st->params);
	pgapp_jsonb_key(&b, "changes");
	pgapp_cs_add_changes_json(&b, &st->changes->root, st->in.drop_changes);
	pgapp_jsonb_key(&b, "errors");
	pgapp_cs_add_errors_json(&b, &st->errors);
	pgapp_jsonb_key(&b, "valid");
	pgapp_jsonb_add_bool(&b, st->errors.added == NIL);
	add_string_array(&b, "required", st->required);
	pgapp_jsonb_key(&b, "constraints");
	pgapp_jsonb_begin_array(&b);
	foreach(lc, st->constraints)
		pgapp_cs_add_constraint_json(&b, lfirst(lc));
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

/*
 * Build a changeset: cast the permitted params, then apply rules (a List of
 * CsRule, possibly NIL).  action is "insert" or "update" (or NULL).
 */
Jsonb *
pgapp_cs_cast(Oid relid, Jsonb *data, Jsonb *params, ArrayType *permitted, List *rules,
			  const char *action, const char *name)
{
	CastState	st = {0};

	if (data != NULL && !pgapp_jsonb_is_object(data))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("data must be a JSON object or null"),
				errhint("Pass the current row, e.g. to_jsonb(t), or NULL for a new row."));
	if (!pgapp_jsonb_is_object(params))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("params must be a JSON object"));

	st.relid = relid;
	st.data = data;
	st.params = params;
	cast_changes(&st, permitted);
	apply_rules(&st, rules);
	pgapp_cs_check_error_count(&st.errors);
	return changeset_json(&st, action, name);
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

/*-------------------------------------------------------------------------
 *
 * changeset_engine.c
 *	  The changeset engine's values: what a validator reads of a field,
 *	  from a changeset's JSON or from a trigger's tuples.
 *
 * Validators read values through CsInput, which hides where they come
 * from: the JSON of a changeset (changes/data/params), or the NEW and OLD
 * tuples of a trigger.  Both paths share every validator and message
 * (changeset_validate.c).
 *
 * src/changesets/changeset_engine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include <unicode/ubrk.h>
#include <unicode/utext.h>

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
#include "pgtime.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "changeset_int.h"
#include "core/error.h"
#include "core/json_util.h"

/* ---------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------
 */

static void
value_from_json(JsonbValue *jv, CsValue *v)
{
	memset(v, 0, sizeof(CsValue));
	v->jv = jv;
	v->isnull = (jv == NULL || jv->type == jbvNull);
}

static void
value_from_tuple(CsInput *in, HeapTuple tup, const PgappColumn *f, CsValue *v)
{
	memset(v, 0, sizeof(CsValue));
	v->from_tuple = true;
	if (tup == NULL || f->attnum == InvalidAttrNumber)
	{
		v->isnull = true;
		return;
	}
	v->datum = heap_getattr(tup, f->attnum, in->tupdesc, &v->isnull);
	v->typid = f->basetype;
}

/*
 * Is the field in the changes?  On a trigger: any non-null value on INSERT,
 * a value different from OLD on UPDATE.
 */
bool
pgapp_cs_get_change(CsInput *in, const PgappColumn *f, CsValue *v)
{
	if (in->newtup != NULL)
	{
		value_from_tuple(in, in->newtup, f, v);
		if (f->attnum == InvalidAttrNumber)
			return false;
		if (in->oldtup == NULL)
			return !v->isnull;
		else
		{
			CsValue		old;
			Form_pg_attribute att = TupleDescAttr(in->tupdesc, f->attnum - 1);

			value_from_tuple(in, in->oldtup, f, &old);
			if (old.isnull != v->isnull)
				return true;
			if (v->isnull)
				return false;
			return !datumIsEqual(old.datum, v->datum, att->attbyval, att->attlen);
		}
	}
	else
	{
		JsonbValue *jv = pgapp_jsonb_get(in->changes, f->name);

		value_from_json(jv, v);
		return jv != NULL;
	}
}

/* The current value: the change if there is one, else the data. */
void
pgapp_cs_get_field(CsInput *in, const PgappColumn *f, CsValue *v)
{
	if (in->newtup != NULL)
		value_from_tuple(in, in->newtup, f, v);
	else if (!pgapp_cs_get_change(in, f, v))
		value_from_json(pgapp_jsonb_get(in->data, f->name), v);
}

/* The value before the change: OLD or the changeset's data. */
void
pgapp_cs_get_old(CsInput *in, const PgappColumn *f, CsValue *v)
{
	if (in->newtup != NULL)
		value_from_tuple(in, in->oldtup, f, v);
	else
		value_from_json(pgapp_jsonb_get(in->data, f->name), v);
}

/*
 * The value as text: strings as they are, other values in their text form
 * (enum labels, numbers, dates...).  *len gets the byte length.
 */
char *
pgapp_cs_value_text(const CsValue *v, int *len)
{
	char	   *s;

	if (v->from_tuple)
	{
		Oid			typoutput;
		bool		isvarlena;

		if (v->typid == TEXTOID || v->typid == VARCHAROID || v->typid == BPCHAROID)
		{
			text	   *t = DatumGetTextPP(v->datum);

			*len = VARSIZE_ANY_EXHDR(t);
			return VARDATA_ANY(t);
		}
		getTypeOutputInfo(v->typid, &typoutput, &isvarlena);
		s = OidOutputFunctionCall(typoutput, v->datum);
	}
	else if (v->jv->type == jbvString)
	{
		*len = v->jv->val.string.len;
		return v->jv->val.string.val;
	}
	else if (v->jv->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->jv->val.numeric)));
	else if (v->jv->type == jbvBool)
		s = pstrdup(v->jv->val.boolean ? "true" : "false");
	else
		s = pgapp_jsonb_value_to_cstring(v->jv);
	*len = strlen(s);
	return s;
}

/* The value as a number, or NULL when it is not one. */
Numeric
pgapp_cs_value_numeric(const CsValue *v)
{
	if (v->from_tuple)
	{
		switch (v->typid)
		{
			case NUMERICOID:
				return DatumGetNumeric(v->datum);
			case INT2OID:
				return int64_to_numeric(DatumGetInt16(v->datum));
			case INT4OID:
				return int64_to_numeric(DatumGetInt32(v->datum));
			case INT8OID:
				return int64_to_numeric(DatumGetInt64(v->datum));
			case FLOAT4OID:
				return DatumGetNumeric(DirectFunctionCall1(float4_numeric, v->datum));
			case FLOAT8OID:
				return DatumGetNumeric(DirectFunctionCall1(float8_numeric, v->datum));
			default:
				return NULL;
		}
	}
	return v->jv->type == jbvNumeric ? v->jv->val.numeric : NULL;
}

/* Number of items of an array value, or -1. */
int
pgapp_cs_value_count(const CsValue *v)
{
	if (v->from_tuple)
	{
		ArrayType  *arr;

		if (type_is_array(v->typid) == false)
			return -1;
		arr = DatumGetArrayTypeP(v->datum);
		return ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	}
	return pgapp_jsonb_array_length(v->jv);
}

/* Trim ASCII white space; returns the trimmed length. */
int
pgapp_cs_trim(const char *s, int len, const char **start)
{
	while (len > 0 && isspace((unsigned char) s[0]))
		s++, len--;
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	*start = s;
	return len;
}

static bool
all_space(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		if (!isspace((unsigned char) s[i]))
			return false;
	return true;
}

/* Ecto's missing?: nil, or a string that is empty after trimming. */
bool
pgapp_cs_value_blank(const CsValue *v, const PgappColumn *f)
{
	if (v->isnull)
		return true;
	if (v->from_tuple)
	{
		if (pgapp_cs_field_is_text(f) && !f->is_array)
		{
			int			len;
			char	   *s = pgapp_cs_value_text(v, &len);

			return all_space(s, len);
		}
		return false;
	}
	if (v->jv->type == jbvString)
		return all_space(v->jv->val.string.val, v->jv->val.string.len);
	return false;
}

/*
 * In PG_CATCH of a cast: roll the subtransaction back and return false when
 * the error says the value does not fit the type (data exception or domain
 * check); re-raise anything else, which is real trouble.
 */
bool
pgapp_cs_value_did_not_fit(PgappSubxact *sx)
{
	ErrorData  *edata = pgapp_subxact_abort(sx);

	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
		ReThrowError(edata);
	FreeErrorData(edata);
	return false;
}

/*
 * An integer as PostgreSQL 15's int2in, int4in and int8in read it
 * (pg_strtoint16/32/64: spaces, an optional sign, at least one digit,
 * spaces, nothing else; no underscores or other bases), in min..max.
 * false where they raise, for a bad syntax or a value out of range.
 */
static bool
parse_integer(const char *s, int64 min, int64 max, int64 *out)
{
	const char *p = s;
	bool		neg = false;
	uint64		limit;
	uint64		acc = 0;

	while (*p && isspace((unsigned char) *p))
		p++;
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	else if (*p == '+')
		p++;
	if (!isdigit((unsigned char) *p))
		return false;
	limit = neg ? (uint64) (-(min + 1)) + 1 : (uint64) max;
	while (isdigit((unsigned char) *p))
	{
		uint64		d = (uint64) (*p++ - '0');

		if (acc > (limit - d) / 10)
			return false;
		acc = acc * 10 + d;
	}
	while (*p && isspace((unsigned char) *p))
		p++;
	if (*p != '\0')
		return false;
	if (neg)
		*out = acc == (uint64) PG_INT64_MAX + 1 ? PG_INT64_MIN : -(int64) acc;
	else
		*out = (int64) acc;
	return true;
}

/*
 * Run a type's input function on str; false instead of an error when the
 * text is not a valid value (in a subtransaction, as PL/pgSQL would).
 * Integers, the commonest case, are read without one (parse_integer).
 */
bool
pgapp_cs_try_input(Oid typid, int32 typmod, const char *str, Datum *out)
{
	Oid			typinput;
	Oid			typioparam;
	PgappSubxact sx;
	volatile bool ok = true;
	int64		i;

	switch (typid)
	{
		case INT2OID:
			if (!parse_integer(str, PG_INT16_MIN, PG_INT16_MAX, &i))
				return false;
			*out = Int16GetDatum((int16) i);
			return true;
		case INT4OID:
			if (!parse_integer(str, PG_INT32_MIN, PG_INT32_MAX, &i))
				return false;
			*out = Int32GetDatum((int32) i);
			return true;
		case INT8OID:
			if (!parse_integer(str, PG_INT64_MIN, PG_INT64_MAX, &i))
				return false;
			*out = Int64GetDatum(i);
			return true;
		default:
			break;
	}

	getTypeInputInfo(typid, &typinput, &typioparam);
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		*out = OidInputFunctionCall(typinput, (char *) str, typioparam, typmod);
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		ok = pgapp_cs_value_did_not_fit(&sx);
	}
	PG_END_TRY();
	return ok;
}

/* The qualified name of relid, as "source" holds it. */
char *
pgapp_cs_source_name(Oid relid)
{
	return pgapp_qualified_relname(relid);
}

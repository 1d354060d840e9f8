/*-------------------------------------------------------------------------
 *
 * changeset.c
 *	  The changeset engine: rules, values, validators with Ecto's messages,
 *	  the JSON changeset, pgapp.cast and the SQL validator functions.
 *
 * A rule (CsRule) is compiled once against its source table, so that field
 * names are resolved to columns and types are checked before any value is
 * seen.  Validators read values through CsInput, which hides where they
 * come from: the JSON of a changeset (changes/data/params), or the NEW and
 * OLD tuples of a trigger.  Both paths share every validator and message.
 *
 * Ecto's semantics kept here:
 *	- validators other than required run only on fields present in the
 *	  changes with a non-null value;
 *	- required adds only "can't be blank", and not to a field that already
 *	  has an error (e.g. from a failed cast);
 *	- within a field the newest error comes first;
 *	- messages interpolate %{count}, %{number} (and, for add_error, any
 *	  key of opts).
 *
 * Values in changesets stay jsonb (PostgreSQL's exact numerics); jansson is
 * not used for user data.
 *
 * src/changeset.c
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

#include "changeset.h"
#include "error.h"
#include "json_util.h"

/* A value read for a validator. */
typedef struct CsValue
{
	bool		isnull;
	/* from JSON */
	JsonbValue *jv;
	/* from a tuple */
	bool		from_tuple;
	Datum		datum;
	Oid			typid;
} CsValue;

/* Names of the rule kinds, as used in rules and messages. */
static const char *const rule_names[] = {
	[CS_REQUIRED] = "required",
	[CS_LENGTH] = "length",
	[CS_NUMBER] = "number",
	[CS_INCLUSION] = "inclusion",
	[CS_EXCLUSION] = "exclusion",
	[CS_FORMAT] = "format",
	[CS_FUTURE] = "future",
	[CS_TRANSITION] = "transition",
	[CS_CONFIRMATION] = "confirmation",
	[CS_ACCEPTANCE] = "acceptance",
	[CS_UNIQUE_CONSTRAINT] = "unique_constraint",
	[CS_FOREIGN_KEY_CONSTRAINT] = "foreign_key_constraint",
	[CS_CHECK_CONSTRAINT] = "check_constraint",
	[CS_EXCLUSION_CONSTRAINT] = "exclusion_constraint",
};

static const char *const bound_names[CS_NUMBER_BOUNDS] = {
	"less_than", "greater_than", "less_than_or_equal_to",
	"greater_than_or_equal_to", "equal_to"
};

static const char *const bound_messages[CS_NUMBER_BOUNDS] = {
	"must be less than %{number}",
	"must be greater than %{number}",
	"must be less than or equal to %{number}",
	"must be greater than or equal to %{number}",
	"must be equal to %{number}"
};

/* ---------------------------------------------------------------------
 * Fields and rules
 * ---------------------------------------------------------------------
 */

/*
 * Resolve a field name against the source table.  allow_virtual lets a name
 * that is not a column through (acceptance, add_error).
 */
void
pgapp_cs_resolve_field(Oid relid, const char *name, bool allow_virtual, CsField *field)
{
	AttrNumber	attnum;
	Oid			typid;
	int32		typmod;
	Oid			collid;
	bool		preferred;

	if (name == NULL || name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("field name must not be empty"));

	memset(field, 0, sizeof(CsField));
	field->name = pstrdup(name);
	attnum = get_attnum(relid, name);
	if (attnum == InvalidAttrNumber || attnum < 0)
	{
		if (allow_virtual)
		{
			field->attnum = InvalidAttrNumber;
			return;
		}
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_COLUMN),
				errmsg("column \"%s\" of relation \"%s\" does not exist",
					   name, get_rel_name(relid)));
	}
	field->attnum = attnum;
	get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
	field->typid = getBaseTypeAndTypmod(typid, &typmod);
	field->typmod = typmod;
	get_type_category_preferred(field->typid, &field->typcategory, &preferred);
	field->is_array = (field->typcategory == TYPCATEGORY_ARRAY);
}

static bool
is_text_like(const CsField *f)
{
	return f->typcategory == TYPCATEGORY_STRING;
}

static bool
is_enum(const CsField *f)
{
	return f->typcategory == TYPCATEGORY_ENUM;
}

const char *
pgapp_cs_constraint_type(CsRuleKind kind)
{
	switch (kind)
	{
		case CS_UNIQUE_CONSTRAINT:
			return "unique";
		case CS_FOREIGN_KEY_CONSTRAINT:
			return "foreign_key";
		case CS_CHECK_CONSTRAINT:
			return "check";
		case CS_EXCLUSION_CONSTRAINT:
			return "exclusion";
		default:
			elog(ERROR, "not a constraint rule: %d", (int) kind);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * Check a rule against its source table and fill in what depends on the
 * column types.  Raises the error a user needs to fix the rule.
 */
void
pgapp_cs_check_rule(Oid relid, CsRule *rule)
{
	CsField    *f = &rule->fields[0];
	const char *what = rule_names[rule->kind];

	switch (rule->kind)
	{
		case CS_REQUIRED:
			break;

		case CS_LENGTH:
			if (!is_text_like(f) && !f->is_array)
				ereport(ERROR,
						errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("length rule applies to text and array columns, but \"%s\" is of type %s",
							   f->name, format_type_be(f->typid)));
			if (!rule->has_min && !rule->has_max && !rule->has_is)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("length rule for \"%s\" needs at least one of min, max and is", f->name));
			if ((rule->has_min && rule->min < 0) || (rule->has_max && rule->max < 0) ||
				(rule->has_is && rule->is < 0))
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("length bounds for \"%s\" must not be negative", f->name));
			if (rule->has_min && rule->has_max && rule->min > rule->max)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("length rule for \"%s\" has min %d greater than max %d",
							   f->name, rule->min, rule->max));
			break;

		case CS_NUMBER:
			{
				bool		any = false;

				if (f->typcategory != TYPCATEGORY_NUMERIC)
					ereport(ERROR,
							errcode(ERRCODE_DATATYPE_MISMATCH),
							errmsg("number rule applies to numeric columns, but \"%s\" is of type %s",
								   f->name, format_type_be(f->typid)));
				for (int i = 0; i < CS_NUMBER_BOUNDS; i++)
					any |= (rule->bounds[i] != NULL);
				if (!any)
					ereport(ERROR,
							errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("number rule for \"%s\" needs at least one bound", f->name),
							errhint("Give less_than, greater_than, less_than_or_equal_to, greater_than_or_equal_to or equal_to."));
				break;
			}

		case CS_INCLUSION:
		case CS_EXCLUSION:
			if (rule->list == NULL || !JB_ROOT_IS_ARRAY(rule->list) || JB_ROOT_IS_SCALAR(rule->list))
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s rule for \"%s\" needs a JSON array of values", what, f->name));
			rule->nlist = JB_ROOT_COUNT(rule->list);
			if (is_enum(f))
			{
				/* compare enum OIDs on the trigger path; every label must exist */
				rule->enum_oids = palloc(sizeof(Oid) * Max(rule->nlist, 1));
				for (int i = 0; i < rule->nlist; i++)
				{
					JsonbValue *v = getIthJsonbValueFromContainer(&rule->list->root, i);
					HeapTuple	tup;

					if (v->type != jbvString)
						ereport(ERROR,
								errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("%s rule for \"%s\" lists %s, which is not a label of enum %s",
									   what, f->name, pgapp_jsonb_value_to_cstring(v),
									   format_type_be(f->typid)));
					tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(f->typid),
										  CStringGetDatum(pgapp_jsonb_value_cstring(v)));
					if (!HeapTupleIsValid(tup))
						ereport(ERROR,
								errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("%s rule for \"%s\" lists \"%s\", which is not a label of enum %s",
									   what, f->name, pgapp_jsonb_value_cstring(v),
									   format_type_be(f->typid)));
					rule->enum_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
					ReleaseSysCache(tup);
				}
			}
			break;

		case CS_FORMAT:
			if (rule->pattern == NULL)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("format rule for \"%s\" needs a pattern", f->name));
			/* compile now: a bad regular expression raises 2201B here */
			(void) RE_compile_and_cache(rule->pattern, REG_ADVANCED, C_COLLATION_OID);
			break;

		case CS_FUTURE:
			if (f->typid != DATEOID && f->typid != TIMESTAMPOID && f->typid != TIMESTAMPTZOID)
				ereport(ERROR,
						errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("future rule applies to date and timestamp columns, but \"%s\" is of type %s",
							   f->name, format_type_be(f->typid)));
			break;

		case CS_TRANSITION:
			if (!is_text_like(f) && !is_enum(f))
				ereport(ERROR,
						errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("transition rule applies to text and enum columns, but \"%s\" is of type %s",
							   f->name, format_type_be(f->typid)));
			if (rule->machine == NULL)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("transition rule for \"%s\" needs a machine", f->name));
			pgapp_machine_check_exists(rule->machine);
			break;

		case CS_CONFIRMATION:
		case CS_ACCEPTANCE:
			break;

		case CS_CHECK_CONSTRAINT:
			if (rule->constraint_name == NULL)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("check_constraint for \"%s\" needs the constraint name", f->name),
						errhint("PostgreSQL names check constraints <table>_<column>_check unless told otherwise."));
			break;

		case CS_UNIQUE_CONSTRAINT:
		case CS_FOREIGN_KEY_CONSTRAINT:
		case CS_EXCLUSION_CONSTRAINT:
			break;
	}
}

/* ---------------------------------------------------------------------
 * Rules written as JSON (define_changeset)
 * ---------------------------------------------------------------------
 */

/* Options each rule kind accepts besides its own key and "message". */
static const char *const *
rule_options(CsRuleKind kind)
{
	static const char *const none[] = {NULL};
	static const char *const length[] = {"min", "max", "is", NULL};
	static const char *const list[] = {"in", NULL};
	static const char *const format[] = {"pattern", NULL};
	static const char *const transition[] = {"machine", NULL};
	static const char *const constraint[] = {"name", NULL};

	switch (kind)
	{
		case CS_LENGTH:
			return length;
		case CS_NUMBER:
			return bound_names;
		case CS_INCLUSION:
		case CS_EXCLUSION:
			return list;
		case CS_FORMAT:
			return format;
		case CS_TRANSITION:
			return transition;
		case CS_UNIQUE_CONSTRAINT:
		case CS_FOREIGN_KEY_CONSTRAINT:
		case CS_CHECK_CONSTRAINT:
		case CS_EXCLUSION_CONSTRAINT:
			return constraint;
		default:
			return none;
	}
}

static bool
option_known(CsRuleKind kind, const char *key)
{
	const char *const *opts = rule_options(kind);

	if (strcmp(key, "message") == 0)
		return true;
	for (int i = 0; (kind == CS_NUMBER ? i < CS_NUMBER_BOUNDS : opts[i] != NULL); i++)
		if (strcmp(opts[i], key) == 0)
			return true;
	return false;
}

static char *
options_list(CsRuleKind kind)
{
	StringInfoData buf;
	const char *const *opts = rule_options(kind);

	initStringInfo(&buf);
	for (int i = 0; (kind == CS_NUMBER ? i < CS_NUMBER_BOUNDS : opts[i] != NULL); i++)
		appendStringInfo(&buf, "%s, ", opts[i]);
	appendStringInfoString(&buf, "message");
	return buf.data;
}

static int
rule_kind_from_name(const char *key)
{
	for (int k = 0; k < lengthof(rule_names); k++)
		if (strcmp(rule_names[k], key) == 0)
			return k;
	return -1;
}

typedef struct RuleParse
{
	int			index;
	int			kind;
	int			nkinds;
	JsonbValue *target;
	Oid			relid;
} RuleParse;

static void
find_kind(const char *key, int keylen, JsonbValue *value, void *arg)
{
	RuleParse  *rp = (RuleParse *) arg;
	int			k = rule_kind_from_name(key);

	if (k >= 0)
	{
		rp->kind = k;
		rp->nkinds++;
		rp->target = palloc(sizeof(JsonbValue));
		*rp->target = *value;
	}
}

static int32
option_int(JsonbValue *v, const char *opt, int index)
{
	Numeric		n;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("option \"%s\" of rule %d must be an integer", opt, index));
	n = v->val.numeric;
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
										  DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
															  Int32GetDatum(0)))))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("option \"%s\" of rule %d must be an integer", opt, index));
	return numeric_int4_opt_error(n, NULL);
}

static char *
option_string(JsonbValue *v, const char *opt, int index)
{
	if (v->type != jbvString)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("option \"%s\" of rule %d must be a string", opt, index));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void
set_option(const char *key, int keylen, JsonbValue *value, void *arg)
{
	CsRule	   *rule = ((void **) arg)[0];
	RuleParse  *rp = ((void **) arg)[1];
	int			index = rp->index;

	if (rule_kind_from_name(key) >= 0)
		return;					/* the validator key itself */
	if (!option_known(rule->kind, key))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("unknown option \"%s\" in rule %d (%s)", key, index, rule_names[rule->kind]),
				errhint("The %s rule takes: %s.", rule_names[rule->kind], options_list(rule->kind)));

	if (strcmp(key, "message") == 0)
		rule->message = option_string(value, key, index);
	else if (strcmp(key, "min") == 0)
	{
		rule->min = option_int(value, key, index);
		rule->has_min = true;
	}
	else if (strcmp(key, "max") == 0)
	{
		rule->max = option_int(value, key, index);
		rule->has_max = true;
	}
	else if (strcmp(key, "is") == 0)
	{
		rule->is = option_int(value, key, index);
		rule->has_is = true;
	}
	else if (strcmp(key, "in") == 0)
	{
		if (!pgapp_jsonb_value_is_array(value))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("option \"in\" of rule %d must be a JSON array", index));
		rule->list = pgapp_jsonb_from_value(value);
	}
	else if (strcmp(key, "pattern") == 0)
		rule->pattern = cstring_to_text(option_string(value, key, index));
	else if (strcmp(key, "machine") == 0)
		rule->machine = option_string(value, key, index);
	else if (strcmp(key, "name") == 0)
		rule->constraint_name = option_string(value, key, index);
	else
	{
		for (int i = 0; i < CS_NUMBER_BOUNDS; i++)
		{
			if (strcmp(key, bound_names[i]) == 0)
			{
				if (value->type != jbvNumeric)
					ereport(ERROR,
							errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("option \"%s\" of rule %d must be a number", key, index));
				rule->bounds[i] = value->val.numeric;
			}
		}
	}
}

/*
 * Compile rule number index (1-based, for messages) of a rules array.
 */
CsRule *
pgapp_cs_rule_from_json(Oid relid, JsonbValue *json, int index)
{
	RuleParse	rp = {0};
	CsRule	   *rule;
	void	   *args[2];

	rp.index = index;
	rp.relid = relid;
	if (!pgapp_jsonb_value_is_object(json))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rule %d must be a JSON object", index),
				errhint("Write rules such as {\"length\": \"title\", \"min\": 3}."));

	pgapp_jsonb_foreach(json->val.binary.data, find_kind, &rp);
	if (rp.nkinds == 0)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		for (int k = 0; k < lengthof(rule_names); k++)
			appendStringInfo(&buf, "%s%s", k ? ", " : "", rule_names[k]);
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rule %d names no known validator", index),
				errdetail("The rule is %s.", pgapp_jsonb_value_to_cstring(json)),
				errhint("A rule has one of: %s.", buf.data));
	}
	if (rp.nkinds > 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rule %d names more than one validator", index),
				errhint("Write one rule per validator."));

	rule = palloc0(sizeof(CsRule));
	rule->kind = (CsRuleKind) rp.kind;

	/* the field(s) */
	if (rp.target->type == jbvString)
	{
		rule->nfields = 1;
		rule->fields = palloc0(sizeof(CsField));
		pgapp_cs_resolve_field(relid, pgapp_jsonb_value_cstring(rp.target),
							   rule->kind == CS_ACCEPTANCE, &rule->fields[0]);
	}
	else if (rule->kind == CS_REQUIRED && pgapp_jsonb_value_is_array(rp.target) &&
			 pgapp_jsonb_array_length(rp.target) > 0)
	{
		rule->nfields = pgapp_jsonb_array_length(rp.target);
		rule->fields = palloc0(sizeof(CsField) * rule->nfields);
		for (int i = 0; i < rule->nfields; i++)
		{
			JsonbValue *f = pgapp_jsonb_array_get(rp.target, i);

			if (f->type != jbvString)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("fields of rule %d (required) must be strings", index));
			pgapp_cs_resolve_field(relid, pgapp_jsonb_value_cstring(f), false, &rule->fields[i]);
		}
	}
	else
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rule %d (%s) must name its field as a string%s", index,
					   rule_names[rule->kind],
					   rule->kind == CS_REQUIRED ? " or a non-empty array of strings" : ""));

	args[0] = rule;
	args[1] = &rp;
	pgapp_jsonb_foreach(json->val.binary.data, set_option, args);
	pgapp_cs_check_rule(relid, rule);
	return rule;
}

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
value_from_tuple(CsInput *in, HeapTuple tup, const CsField *f, CsValue *v)
{
	memset(v, 0, sizeof(CsValue));
	v->from_tuple = true;
	if (tup == NULL || f->attnum == InvalidAttrNumber)
	{
		v->isnull = true;
		return;
	}
	v->datum = heap_getattr(tup, f->attnum, in->tupdesc, &v->isnull);
	v->typid = f->typid;
}

/*
 * Is the field in the changes?  On a trigger: any non-null value on INSERT,
 * a value different from OLD on UPDATE.
 */
static bool
get_change(CsInput *in, const CsField *f, CsValue *v)
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
static void
get_field(CsInput *in, const CsField *f, CsValue *v)
{
	if (in->newtup != NULL)
		value_from_tuple(in, in->newtup, f, v);
	else if (!get_change(in, f, v))
		value_from_json(pgapp_jsonb_get(in->data, f->name), v);
}

/* The value before the change: OLD or the changeset's data. */
static void
get_old(CsInput *in, const CsField *f, CsValue *v)
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
static char *
value_text(const CsValue *v, int *len)
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
static Numeric
value_numeric(const CsValue *v)
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
static int
value_count(const CsValue *v)
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

static bool
all_space(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		if (!isspace((unsigned char) s[i]))
			return false;
	return true;
}

/* Ecto's missing?: nil, or a string that is empty after trimming. */
static bool
value_blank(const CsValue *v, const CsField *f)
{
	if (v->isnull)
		return true;
	if (v->from_tuple)
	{
		if (is_text_like(f) && !f->is_array)
		{
			int			len;
			char	   *s = value_text(v, &len);

			return all_space(s, len);
		}
		return false;
	}
	if (v->jv->type == jbvString)
		return all_space(v->jv->val.string.val, v->jv->val.string.len);
	return false;
}

/* ---------------------------------------------------------------------
 * Errors and messages
 * ---------------------------------------------------------------------
 */

/*
 * Replace %{key} by the value of key; unknown keys stay as written.
 */
static char *
interpolate(const char *msg, int n, const char *const *keys, const char *const *values)
{
	StringInfoData buf;
	const char *p = msg;

	initStringInfo(&buf);
	while (*p)
	{
		const char *close;

		if (p[0] == '%' && p[1] == '{' && (close = strchr(p + 2, '}')) != NULL)
		{
			int			keylen = close - (p + 2);
			bool		done = false;

			for (int i = 0; i < n && !done; i++)
			{
				if (strlen(keys[i]) == keylen && strncmp(keys[i], p + 2, keylen) == 0)
				{
					appendStringInfoString(&buf, values[i]);
					done = true;
				}
			}
			if (done)
			{
				p = close + 1;
				continue;
			}
		}
		appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

static char *
interpolate1(const char *msg, const char *key, const char *value)
{
	return interpolate(msg, 1, &key, &value);
}

bool
pgapp_cs_has_error(CsErrors *errors, const char *field)
{
	ListCell   *lc;

	foreach(lc, errors->added)
		if (strcmp(((CsError *) lfirst(lc))->field, field) == 0)
			return true;
	foreach(lc, errors->existing)
		if (strcmp(((CsError *) lfirst(lc))->field, field) == 0)
			return true;
	return false;
}

void
pgapp_cs_add_error(CsErrors *errors, const char *field, const char *message)
{
	CsError    *e = palloc(sizeof(CsError));

	e->field = pstrdup(field);
	e->message = pstrdup(message);
	errors->added = lappend(errors->added, e);
}

/*
 * Write the errors object: per field, the errors added now (newest first),
 * then the ones the changeset had.
 */
void
pgapp_cs_add_errors_json(PgappJsonbBuilder *b, CsErrors *errors)
{
	List	   *fields = NIL;
	List	   *all = list_concat_copy(errors->added, errors->existing);
	ListCell   *lc;

	/* each field once: fields with new errors first, then the others */
	foreach(lc, all)
	{
		const char *field = ((CsError *) lfirst(lc))->field;
		ListCell   *lc2;
		bool		seen = false;

		foreach(lc2, fields)
			seen |= (strcmp(lfirst(lc2), field) == 0);
		if (!seen)
			fields = lappend(fields, (char *) field);
	}

	pgapp_jsonb_begin_object(b);
	foreach(lc, fields)
	{
		const char *field = lfirst(lc);
		ListCell   *lc2;

		pgapp_jsonb_key(b, field);
		pgapp_jsonb_begin_array(b);
		for (int i = list_length(errors->added) - 1; i >= 0; i--)
		{
			CsError    *e = list_nth(errors->added, i);

			if (strcmp(e->field, field) == 0)
				pgapp_jsonb_add_string(b, e->message);
		}
		foreach(lc2, errors->existing)
		{
			CsError    *e = lfirst(lc2);

			if (strcmp(e->field, field) == 0)
				pgapp_jsonb_add_string(b, e->message);
		}
		pgapp_jsonb_end_array(b);
	}
	pgapp_jsonb_end_object(b);
}

/* {"errors": {...}} */
Jsonb *
pgapp_cs_errors_body(CsErrors *errors)
{
	PgappJsonbBuilder b = {0};

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "errors");
	pgapp_cs_add_errors_json(&b, errors);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

static void
load_field_errors(const char *key, int keylen, JsonbValue *value, void *arg)
{
	CsErrors   *errors = (CsErrors *) arg;
	int			n = pgapp_jsonb_array_length(value);

	if (value->type == jbvString)
		n = 0;
	for (int i = 0; i < n; i++)
	{
		JsonbValue *m = pgapp_jsonb_array_get(value, i);
		CsError    *e = palloc(sizeof(CsError));

		e->field = pstrdup(key);
		e->message = m->type == jbvString ? pgapp_jsonb_value_cstring(m) : pgapp_jsonb_value_to_cstring(m);
		errors->existing = lappend(errors->existing, e);
	}
	if (value->type == jbvString)
	{
		CsError    *e = palloc(sizeof(CsError));

		e->field = pstrdup(key);
		e->message = pgapp_jsonb_value_cstring(value);
		errors->existing = lappend(errors->existing, e);
	}
}

/* ---------------------------------------------------------------------
 * Validators
 * ---------------------------------------------------------------------
 */

static void
add(CsErrors *errors, const CsRule *rule, const char *field, const char *dflt,
	const char *key, const char *value)
{
	const char *msg = rule->message ? rule->message : dflt;

	pgapp_cs_add_error(errors, field, key ? interpolate1(msg, key, value) : msg);
}

static void
validate_length(const CsRule *rule, const CsField *f, CsValue *v, CsErrors *errors)
{
	int			count;
	bool		list = f->is_array;
	char		buf[16];

	if (list)
	{
		count = value_count(v);
		if (count < 0)
			return;
	}
	else
	{
		int			len;
		char	   *s = value_text(v, &len);

		count = pg_mbstrlen_with_len(s, len);
	}

	if (rule->has_is && count != rule->is)
	{
		snprintf(buf, sizeof(buf), "%d", rule->is);
		add(errors, rule, f->name, list ? "should have %{count} item(s)" : "should be %{count} character(s)",
			"count", buf);
	}
	else if (rule->has_min && count < rule->min)
	{
		snprintf(buf, sizeof(buf), "%d", rule->min);
		add(errors, rule, f->name,
			list ? "should have at least %{count} item(s)" : "should be at least %{count} character(s)",
			"count", buf);
	}
	else if (rule->has_max && count > rule->max)
	{
		snprintf(buf, sizeof(buf), "%d", rule->max);
		add(errors, rule, f->name,
			list ? "should have at most %{count} item(s)" : "should be at most %{count} character(s)",
			"count", buf);
	}
}

static void
validate_number(const CsRule *rule, const CsField *f, CsValue *v, CsErrors *errors)
{
	Numeric		n = value_numeric(v);

	if (n == NULL)
	{
		/* a JSON changeset whose value is not a number: Ecto's cast would have refused it */
		add(errors, rule, f->name, "is invalid", NULL, NULL);
		return;
	}
	for (int i = 0; i < CS_NUMBER_BOUNDS; i++)
	{
		int			cmp;
		bool		ok;

		if (rule->bounds[i] == NULL)
			continue;
		cmp = DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
												NumericGetDatum(rule->bounds[i])));
		switch ((CsNumberBound) i)
		{
			case CS_LESS_THAN:
				ok = cmp < 0;
				break;
			case CS_GREATER_THAN:
				ok = cmp > 0;
				break;
			case CS_LESS_THAN_OR_EQUAL_TO:
				ok = cmp <= 0;
				break;
			case CS_GREATER_THAN_OR_EQUAL_TO:
				ok = cmp >= 0;
				break;
			default:
				ok = cmp == 0;
				break;
		}
		if (!ok)
		{
			char	   *number = DatumGetCString(DirectFunctionCall1(numeric_out,
																	 NumericGetDatum(rule->bounds[i])));

			add(errors, rule, f->name, bound_messages[i], "number", number);
			return;				/* Ecto stops at the first failed bound */
		}
	}
}

/* Is the value one of the rule's list? */
static bool
value_in_list(const CsRule *rule, const CsField *f, CsValue *v)
{
	if (v->from_tuple && rule->enum_oids != NULL)
	{
		Oid			oid = DatumGetObjectId(v->datum);

		for (int i = 0; i < rule->nlist; i++)
			if (rule->enum_oids[i] == oid)
				return true;
		return false;
	}

	for (int i = 0; i < rule->nlist; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&rule->list->root, i);

		if (!v->from_tuple)
		{
			if (pgapp_jsonb_values_equal(v->jv, item))
				return true;
		}
		else if (item->type == jbvNumeric)
		{
			Numeric		n = value_numeric(v);

			if (n != NULL &&
				DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
												 NumericGetDatum(item->val.numeric))))
				return true;
		}
		else if (item->type == jbvBool)
		{
			if (v->typid == BOOLOID && DatumGetBool(v->datum) == item->val.boolean)
				return true;
		}
		else if (item->type == jbvString)
		{
			int			len;
			char	   *s = value_text(v, &len);

			if (len == item->val.string.len && memcmp(s, item->val.string.val, len) == 0)
				return true;
		}
	}
	return false;
}

static void
validate_format(const CsRule *rule, const CsField *f, CsValue *v, CsErrors *errors)
{
	int			len;
	char	   *s = value_text(v, &len);

	if (!RE_compile_and_execute(rule->pattern, s, len, REG_ADVANCED, C_COLLATION_OID, 0, NULL))
		add(errors, rule, f->name, "has invalid format", NULL, NULL);
}

static void
validate_future(const CsRule *rule, const CsField *f, CsValue *v, CsErrors *errors)
{
	Datum		d;
	bool		future;

	if (v->from_tuple)
		d = v->datum;
	else
	{
		Oid			typinput;
		Oid			typioparam;
		int			len;
		char	   *s;

		/* changes hold the cast value as text (ISO 8601) */
		if (v->jv->type != jbvString)
		{
			add(errors, rule, f->name, "is invalid", NULL, NULL);
			return;
		}
		s = pnstrdup(value_text(v, &len), v->jv->val.string.len);
		getTypeInputInfo(f->typid, &typinput, &typioparam);
		d = OidInputFunctionCall(typinput, s, typioparam, -1);
	}

	switch (f->typid)
	{
		case DATEOID:
			future = DatumGetDateADT(d) > GetSQLCurrentDate();
			break;
		case TIMESTAMPOID:
			future = DatumGetTimestamp(d) > GetSQLLocalTimestamp(-1);
			break;
		default:
			future = DatumGetTimestampTz(d) > GetCurrentTransactionStartTimestamp();
			break;
	}
	if (!future)
		add(errors, rule, f->name, "must be in the future", NULL, NULL);
}

static void
validate_transition(const CsRule *rule, const CsField *f, CsValue *v, CsInput *in, CsErrors *errors)
{
	CsValue		old;
	int			len;
	char	   *to;
	char	   *from = NULL;
	const char *keys[2] = {"from", "to"};
	const char *values[2];

	to = value_text(v, &len);
	to = pnstrdup(to, len);
	get_old(in, f, &old);
	if (!old.isnull)
	{
		from = value_text(&old, &len);
		from = pnstrdup(from, len);
	}

	values[0] = from ? from : "nil";
	values[1] = to;
	switch (pgapp_machine_check(rule->machine, from, to))
	{
		case CS_TRANSITION_OK:
			break;
		case CS_TRANSITION_FORBIDDEN:
			pgapp_cs_add_error(errors, f->name,
							   interpolate(rule->message ? rule->message
										   : "cannot transition from %{from} to %{to}",
										   2, keys, values));
			break;
		case CS_TRANSITION_NOT_INITIAL:
			pgapp_cs_add_error(errors, f->name,
							   interpolate(rule->message ? rule->message : "cannot start as %{to}",
										   2, keys, values));
			break;
		case CS_TRANSITION_UNKNOWN_STATE:
			pgapp_cs_add_error(errors, f->name,
							   interpolate(rule->message ? rule->message : "is invalid",
										   2, keys, values));
			break;
	}
}

static void
validate_confirmation(const CsRule *rule, const CsField *f, CsValue *v, CsInput *in, CsErrors *errors)
{
	char	   *param = psprintf("%s_confirmation", f->name);
	JsonbValue *conf = pgapp_jsonb_get(in->params, param);
	int			len;
	char	   *value;
	char	   *given;
	int			glen;

	if (conf == NULL)
		return;					/* Ecto: no confirmation parameter, no check */
	value = value_text(v, &len);
	if (conf->type == jbvString)
	{
		/* compare as cast compares: trimmed */
		given = conf->val.string.val;
		glen = conf->val.string.len;
		while (glen > 0 && isspace((unsigned char) given[0]))
			given++, glen--;
		while (glen > 0 && isspace((unsigned char) given[glen - 1]))
			glen--;
	}
	else
	{
		given = pgapp_jsonb_value_to_cstring(conf);
		glen = strlen(given);
	}
	if (glen != len || memcmp(given, value, len) != 0)
		add(errors, rule, param, "does not match confirmation", NULL, NULL);
}

static void
validate_acceptance(const CsRule *rule, const CsField *f, CsInput *in, CsErrors *errors)
{
	JsonbValue *p = pgapp_jsonb_get(in->params, f->name);
	bool		accepted = false;

	if (p != NULL && p->type == jbvBool)
		accepted = p->val.boolean;
	else if (p != NULL && p->type == jbvString)
	{
		char	   *s = pgapp_jsonb_value_cstring(p);

		accepted = (strcmp(s, "true") == 0 || strcmp(s, "1") == 0);
	}
	else if (p != NULL && p->type == jbvNumeric)
		accepted = DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(p->val.numeric),
													NumericGetDatum(int64_to_numeric(1))));
	if (!accepted)
		add(errors, rule, f->name, "must be accepted", NULL, NULL);
}

/*
 * Apply one rule, adding its errors.
 */
void
pgapp_cs_apply_rule(const CsRule *rule, CsInput *in, CsErrors *errors)
{
	const CsField *f = &rule->fields[0];
	CsValue		v;

	switch (rule->kind)
	{
		case CS_REQUIRED:
			for (int i = 0; i < rule->nfields; i++)
			{
				get_field(in, &rule->fields[i], &v);
				if (value_blank(&v, &rule->fields[i]) &&
					!pgapp_cs_has_error(errors, rule->fields[i].name))
					add(errors, rule, rule->fields[i].name, "can't be blank", NULL, NULL);
			}
			return;

		case CS_ACCEPTANCE:
			if (in->newtup == NULL && in->params != NULL)
				validate_acceptance(rule, f, in, errors);
			return;

		case CS_UNIQUE_CONSTRAINT:
		case CS_FOREIGN_KEY_CONSTRAINT:
		case CS_CHECK_CONSTRAINT:
		case CS_EXCLUSION_CONSTRAINT:
			return;				/* mapped by pgapp.insert / pgapp.update */

		default:
			break;
	}

	/* the rest look only at present, non-null changes */
	if (!get_change(in, f, &v) || v.isnull)
		return;

	switch (rule->kind)
	{
		case CS_LENGTH:
			validate_length(rule, f, &v, errors);
			break;
		case CS_NUMBER:
			validate_number(rule, f, &v, errors);
			break;
		case CS_INCLUSION:
			if (!value_in_list(rule, f, &v))
				add(errors, rule, f->name, "is invalid", NULL, NULL);
			break;
		case CS_EXCLUSION:
			if (value_in_list(rule, f, &v))
				add(errors, rule, f->name, "is reserved", NULL, NULL);
			break;
		case CS_FORMAT:
			validate_format(rule, f, &v, errors);
			break;
		case CS_FUTURE:
			validate_future(rule, f, &v, errors);
			break;
		case CS_TRANSITION:
			validate_transition(rule, f, &v, in, errors);
			break;
		case CS_CONFIRMATION:
			if (in->newtup == NULL && in->params != NULL)
				validate_confirmation(rule, f, &v, in, errors);
			break;
		default:
			elog(ERROR, "unrecognized changeset rule: %d", (int) rule->kind);
	}
}

/* ---------------------------------------------------------------------
 * The JSON changeset
 * ---------------------------------------------------------------------
 */

typedef struct CsState
{
	Jsonb	   *cs;
	Oid			relid;
	CsInput		in;
	CsErrors	errors;
	List	   *new_required;	/* fields to add to "required" */
	List	   *new_constraints;	/* CsRule * to add to "constraints" */
} CsState;

Oid
pgapp_cs_source_relid(Jsonb *cs)
{
	JsonbValue *src = pgapp_jsonb_get_key(cs, "source");
	char	   *name;
	List	   *names;

	if (src == NULL || src->type != jbvString)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset has no \"source\""),
				errhint("Build changesets with pgapp.cast() or pgapp.changeset()."));
	name = pgapp_jsonb_value_cstring(src);
	names = stringToQualifiedNameList(name);
	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false);
}

static JsonbContainer *
object_member(Jsonb *cs, const char *key, bool required)
{
	JsonbValue *v = pgapp_jsonb_get_key(cs, key);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("changeset has no \"%s\" object", key),
					errhint("Build changesets with pgapp.cast() or pgapp.changeset()."));
		return NULL;
	}
	if (!pgapp_jsonb_value_is_object(v))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset member \"%s\" must be a JSON object", key));
	return v->val.binary.data;
}

static void
cs_load(Jsonb *cs, CsState *st)
{
	memset(st, 0, sizeof(CsState));
	if (!pgapp_jsonb_is_object(cs))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset must be a JSON object"));
	st->cs = cs;
	st->relid = pgapp_cs_source_relid(cs);
	st->in.changes = object_member(cs, "changes", true);
	st->in.data = object_member(cs, "data", false);
	st->in.params = object_member(cs, "params", false);
	pgapp_jsonb_foreach(object_member(cs, "errors", true), load_field_errors, &st->errors);
}

static void
add_constraint_json(PgappJsonbBuilder *b, const CsRule *rule)
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

typedef struct CsStore
{
	CsState    *st;
	PgappJsonbBuilder *b;
} CsStore;

static void
store_member(const char *key, int keylen, JsonbValue *value, void *arg)
{
	CsStore    *s = (CsStore *) arg;
	CsState    *st = s->st;

	if (strcmp(key, "errors") == 0 || strcmp(key, "valid") == 0)
		return;					/* rewritten below */
	pgapp_jsonb_key(s->b, key);
	if (strcmp(key, "required") == 0 && st->new_required != NIL)
	{
		ListCell   *lc;
		int			n = pgapp_jsonb_array_length(value);

		pgapp_jsonb_begin_array(s->b);
		for (int i = 0; i < n; i++)
			pgapp_jsonb_add_value(s->b, pgapp_jsonb_array_get(value, i));
		foreach(lc, st->new_required)
			pgapp_jsonb_add_string(s->b, lfirst(lc));
		pgapp_jsonb_end_array(s->b);
		st->new_required = NIL;
	}
	else if (strcmp(key, "constraints") == 0 && st->new_constraints != NIL)
	{
		ListCell   *lc;
		int			n = pgapp_jsonb_array_length(value);

		pgapp_jsonb_begin_array(s->b);
		for (int i = 0; i < n; i++)
			pgapp_jsonb_add_value(s->b, pgapp_jsonb_array_get(value, i));
		foreach(lc, st->new_constraints)
			add_constraint_json(s->b, lfirst(lc));
		pgapp_jsonb_end_array(s->b);
		st->new_constraints = NIL;
	}
	else
		pgapp_jsonb_add_value(s->b, value);
}

/*
 * The changeset with the new errors, requirements and constraints; the
 * input itself when nothing changed.
 */
static Jsonb *
cs_store(CsState *st)
{
	PgappJsonbBuilder b = {0};
	CsStore		s = {st, &b};
	ListCell   *lc;

	if (st->errors.added == NIL && st->new_required == NIL && st->new_constraints == NIL)
		return st->cs;

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_foreach(&st->cs->root, store_member, &s);
	if (st->new_required != NIL)
	{
		pgapp_jsonb_key(&b, "required");
		pgapp_jsonb_begin_array(&b);
		foreach(lc, st->new_required)
			pgapp_jsonb_add_string(&b, lfirst(lc));
		pgapp_jsonb_end_array(&b);
	}
	if (st->new_constraints != NIL)
	{
		pgapp_jsonb_key(&b, "constraints");
		pgapp_jsonb_begin_array(&b);
		foreach(lc, st->new_constraints)
			add_constraint_json(&b, lfirst(lc));
		pgapp_jsonb_end_array(&b);
	}
	pgapp_jsonb_key(&b, "errors");
	pgapp_cs_add_errors_json(&b, &st->errors);
	pgapp_jsonb_key(&b, "valid");
	pgapp_jsonb_add_bool(&b, st->errors.added == NIL && st->errors.existing == NIL);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

/* ---------------------------------------------------------------------
 * SQL validator functions
 * ---------------------------------------------------------------------
 */

static Jsonb *
arg_changeset(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("changeset must not be null"));
	return PG_GETARG_JSONB_P(0);
}

static char *
arg_text(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", what));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static char *
arg_text_opt(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * A one-field rule of kind for the validator functions: field in argument 1.
 */
static CsRule *
single_rule(CsState *st, CsRuleKind kind, FunctionCallInfo fcinfo, bool allow_virtual)
{
	CsRule	   *rule = palloc0(sizeof(CsRule));

	rule->kind = kind;
	rule->nfields = 1;
	rule->fields = palloc0(sizeof(CsField));
	pgapp_cs_resolve_field(st->relid, arg_text(fcinfo, 1, "field"), allow_virtual, &rule->fields[0]);
	return rule;
}

static Datum
run_rule(CsState *st, CsRule *rule)
{
	pgapp_cs_check_rule(st->relid, rule);
	pgapp_cs_apply_rule(rule, &st->in, &st->errors);
	PG_RETURN_JSONB_P(cs_store(st));
}

PG_FUNCTION_INFO_V1(pgapp_validate_required);
Datum
pgapp_validate_required(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule = palloc0(sizeof(CsRule));
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	cs_load(arg_changeset(fcinfo), &st);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("fields must not be null"));
	arr = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	rule->kind = CS_REQUIRED;
	rule->nfields = n;
	rule->fields = palloc0(sizeof(CsField) * Max(n, 1));
	rule->message = arg_text_opt(fcinfo, 2);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("fields must not contain nulls"));
		pgapp_cs_resolve_field(st.relid, TextDatumGetCString(elems[i]), false, &rule->fields[i]);
		st.new_required = lappend(st.new_required, rule->fields[i].name);
	}
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_length);
Datum
pgapp_validate_length(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_LENGTH, fcinfo, false);
	if ((rule->has_min = !PG_ARGISNULL(2)))
		rule->min = PG_GETARG_INT32(2);
	if ((rule->has_max = !PG_ARGISNULL(3)))
		rule->max = PG_GETARG_INT32(3);
	if ((rule->has_is = !PG_ARGISNULL(4)))
		rule->is = PG_GETARG_INT32(4);
	rule->message = arg_text_opt(fcinfo, 5);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_number);
Datum
pgapp_validate_number(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_NUMBER, fcinfo, false);
	for (int i = 0; i < CS_NUMBER_BOUNDS; i++)
		rule->bounds[i] = PG_ARGISNULL(2 + i) ? NULL : PG_GETARG_NUMERIC(2 + i);
	rule->message = arg_text_opt(fcinfo, 7);
	return run_rule(&st, rule);
}

static Datum
list_rule(FunctionCallInfo fcinfo, CsRuleKind kind)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, kind, fcinfo, false);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("the list of values must not be null"));
	rule->list = PG_GETARG_JSONB_P(2);
	rule->message = arg_text_opt(fcinfo, 3);
	/* the function path compares JSON values, never enum OIDs */
	pgapp_cs_check_rule(st.relid, rule);
	rule->enum_oids = NULL;
	pgapp_cs_apply_rule(rule, &st.in, &st.errors);
	PG_RETURN_JSONB_P(cs_store(&st));
}

PG_FUNCTION_INFO_V1(pgapp_validate_inclusion);
Datum
pgapp_validate_inclusion(PG_FUNCTION_ARGS)
{
	return list_rule(fcinfo, CS_INCLUSION);
}

PG_FUNCTION_INFO_V1(pgapp_validate_exclusion);
Datum
pgapp_validate_exclusion(PG_FUNCTION_ARGS)
{
	return list_rule(fcinfo, CS_EXCLUSION);
}

PG_FUNCTION_INFO_V1(pgapp_validate_format);
Datum
pgapp_validate_format(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_FORMAT, fcinfo, false);
	rule->pattern = cstring_to_text(arg_text(fcinfo, 2, "pattern"));
	rule->message = arg_text_opt(fcinfo, 3);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_future);
Datum
pgapp_validate_future(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_FUTURE, fcinfo, false);
	rule->message = arg_text_opt(fcinfo, 2);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_transition);
Datum
pgapp_validate_transition(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_TRANSITION, fcinfo, false);
	rule->machine = arg_text(fcinfo, 2, "machine");
	rule->message = arg_text_opt(fcinfo, 3);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_confirmation);
Datum
pgapp_validate_confirmation(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_CONFIRMATION, fcinfo, false);
	rule->message = arg_text_opt(fcinfo, 2);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_acceptance);
Datum
pgapp_validate_acceptance(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_ACCEPTANCE, fcinfo, true);
	rule->message = arg_text_opt(fcinfo, 2);
	return run_rule(&st, rule);
}

typedef struct OptsArgs
{
	int			n;
	const char **keys;
	const char **values;
} OptsArgs;

static void
collect_opt(const char *key, int keylen, JsonbValue *value, void *arg)
{
	OptsArgs   *o = (OptsArgs *) arg;

	o->keys[o->n] = key;
	o->values[o->n] = value->type == jbvString ? pgapp_jsonb_value_cstring(value)
		: pgapp_jsonb_value_to_cstring(value);
	o->n++;
}

/*
 * pgapp.add_error(cs, field, message, opts): a custom check's error;
 * %{key} in the message is replaced by opts' values.
 */
PG_FUNCTION_INFO_V1(pgapp_add_error);
Datum
pgapp_add_error(PG_FUNCTION_ARGS)
{
	CsState		st;
	char	   *field;
	char	   *message;
	OptsArgs	o = {0};

	cs_load(arg_changeset(fcinfo), &st);
	field = arg_text(fcinfo, 1, "field");
	if (field[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("field name must not be empty"));
	message = arg_text(fcinfo, 2, "message");
	if (message[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("error message must not be empty"));
	if (!PG_ARGISNULL(3))
	{
		Jsonb	   *opts = PG_GETARG_JSONB_P(3);

		if (!pgapp_jsonb_is_object(opts))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("opts must be a JSON object"));
		o.keys = palloc(sizeof(char *) * (JB_ROOT_COUNT(opts) + 1));
		o.values = palloc(sizeof(char *) * (JB_ROOT_COUNT(opts) + 1));
		pgapp_jsonb_foreach(&opts->root, collect_opt, &o);
	}
	pgapp_cs_add_error(&st.errors, field, interpolate(message, o.n, o.keys, o.values));
	PG_RETURN_JSONB_P(cs_store(&st));
}

static Datum
constraint_rule(FunctionCallInfo fcinfo, CsRuleKind kind)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, kind, fcinfo, false);
	rule->constraint_name = arg_text_opt(fcinfo, 2);
	rule->message = arg_text_opt(fcinfo, 3);
	pgapp_cs_check_rule(st.relid, rule);
	st.new_constraints = lappend(st.new_constraints, rule);
	PG_RETURN_JSONB_P(cs_store(&st));
}

PG_FUNCTION_INFO_V1(pgapp_unique_constraint);
Datum
pgapp_unique_constraint(PG_FUNCTION_ARGS)
{
	return constraint_rule(fcinfo, CS_UNIQUE_CONSTRAINT);
}

PG_FUNCTION_INFO_V1(pgapp_foreign_key_constraint);
Datum
pgapp_foreign_key_constraint(PG_FUNCTION_ARGS)
{
	return constraint_rule(fcinfo, CS_FOREIGN_KEY_CONSTRAINT);
}

PG_FUNCTION_INFO_V1(pgapp_check_constraint);
Datum
pgapp_check_constraint(PG_FUNCTION_ARGS)
{
	return constraint_rule(fcinfo, CS_CHECK_CONSTRAINT);
}

PG_FUNCTION_INFO_V1(pgapp_exclusion_constraint);
Datum
pgapp_exclusion_constraint(PG_FUNCTION_ARGS)
{
	return constraint_rule(fcinfo, CS_EXCLUSION_CONSTRAINT);
}

PG_FUNCTION_INFO_V1(pgapp_is_valid);
Datum
pgapp_is_valid(PG_FUNCTION_ARGS)
{
	Jsonb	   *cs = PG_GETARG_JSONB_P(0);
	JsonbValue *v = pgapp_jsonb_get_key(cs, "valid");

	if (v == NULL || v->type != jbvBool)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset has no boolean \"valid\""));
	PG_RETURN_BOOL(v->val.boolean);
}

PG_FUNCTION_INFO_V1(pgapp_errors);
Datum
pgapp_errors(PG_FUNCTION_ARGS)
{
	Jsonb	   *cs = PG_GETARG_JSONB_P(0);
	JsonbValue *v = pgapp_jsonb_get_key(cs, "errors");

	if (!pgapp_jsonb_value_is_object(v))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset has no \"errors\" object"));
	PG_RETURN_JSONB_P(pgapp_jsonb_from_value(v));
}

/* ---------------------------------------------------------------------
 * Cast
 * ---------------------------------------------------------------------
 */

/* Trim ASCII white space; returns the trimmed length. */
static int
trim(const char *s, int len, const char **start)
{
	while (len > 0 && isspace((unsigned char) s[0]))
		s++, len--;
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	*start = s;
	return len;
}

/*
 * Run a type's input function on str; false instead of an error when the
 * text is not a valid value (in a subtransaction, as PL/pgSQL would).
 */
static bool
try_input(Oid typid, int32 typmod, const char *str, Datum *out)
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
		ErrorData  *edata = pgapp_subxact_abort(&sx);

		/* only data errors mean "is invalid"; anything else is real trouble */
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		ok = false;
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
		ErrorData  *edata = pgapp_subxact_abort(&sx);

		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		ok = false;
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
		len = trim(in->val.string.val, in->val.string.len, &s);
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

				if (!try_input(f->typid, f->typmod, pnstrdup(s, len), &d))
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
				if (!try_input(f->typid, f->typmod, str, &d))
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
			  const char *action)
{
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

	source = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										get_rel_name(relid));
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "source");
	pgapp_jsonb_add_string(&b, source);
	pgapp_jsonb_key(&b, "action");
	if (action)
		pgapp_jsonb_add_string(&b, action);
	else
		pgapp_jsonb_add_null(&b);
	add_jsonb_member(&b, "data", data);
	add_jsonb_member(&b, "params", params);
	add_jsonb_member(&b, "changes", changes);
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
		add_constraint_json(&b, lfirst(lc));
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
									NIL, PG_ARGISNULL(1) ? "insert" : "update"));
}

/*
 * Report a changeset's errors through the error model (422).
 */
Jsonb *
pgapp_cs_report(Jsonb *errors_body, Oid relid, const char *first_field, bool force_raise)
{
	PgappError err = {0};

	err.status = 422;
	err.body = errors_body;
	if (OidIsValid(relid))
	{
		err.table_name = get_rel_name(relid);
		err.schema_name = get_namespace_name(get_rel_namespace(relid));
	}
	err.column_name = first_field;
	return pgapp_error_report(&err, force_raise);
}

/* The field of the oldest error added, for the COLUMN of a raised error. */
const char *
pgapp_cs_first_error_field(CsErrors *errors)
{
	if (errors->added != NIL)
		return ((CsError *) linitial(errors->added))->field;
	if (errors->existing != NIL)
		return ((CsError *) linitial(errors->existing))->field;
	return NULL;
}

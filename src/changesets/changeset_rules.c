/*-------------------------------------------------------------------------
 *
 * changeset_rules.c
 *	  Compiling changeset rules: resolving fields against the source table,
 *	  checking each rule's options and types, and reading rules written as
 *	  JSON (pgapp.define_changeset).
 *
 * Everything a user can get wrong in a rule is refused here, with the
 * SQLSTATE and a message naming the rule and the offending piece, so that
 * a definition that compiles never fails at write time (unless the table
 * changes afterwards, which invalidates the compiled rules).
 *
 * src/changesets/changeset_rules.c
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

static inline bool
pgapp_cs_field_is_enum(const PgappColumn *f)
{
	return f->category == 'E';	/* TYPCATEGORY_ENUM */
}

static const char *const bound_names[CS_NUMBER_BOUNDS] = {
	"less_than", "greater_than", "less_than_or_equal_to",
	"greater_than_or_equal_to", "equal_to"
};

/* ---------------------------------------------------------------------
 * Fields and rules
 * ---------------------------------------------------------------------
 */

/*
 * validate_length's count option: graphemes (Ecto's default), codepoints or
 * bytes.  rule_desc names the rule in the message (NULL: the function).
 */
CsLengthCount
pgapp_cs_length_count(const char *name, const char *rule_desc)
{
	if (strcmp(name, "graphemes") == 0)
		return CS_COUNT_GRAPHEMES;
	if (strcmp(name, "codepoints") == 0)
		return CS_COUNT_CODEPOINTS;
	if (strcmp(name, "bytes") == 0)
		return CS_COUNT_BYTES;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("count %s\"%s\" is not graphemes, codepoints or bytes",
				   rule_desc ? rule_desc : "",
				   pgapp_echo(name)),
			errhint("Length counts graphemes (user-perceived characters) unless told codepoints or bytes."));
	return CS_COUNT_GRAPHEMES;	/* keep compiler quiet */
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

/* length: text or array columns, bounds that make sense. */
static void
check_length(CsRule *rule, PgappColumn *f)
{
	if (!pgapp_cs_field_is_text(f) && !f->is_array)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("length rule applies to text and array columns, but \"%s\" is of type %s",
					   f->name, format_type_be(f->basetype)));
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
}

/* number: a numeric column and at least one bound. */
static void
check_number(CsRule *rule, PgappColumn *f)
{
	bool		any = false;

	if (f->category != TYPCATEGORY_NUMERIC)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("number rule applies to numeric columns, but \"%s\" is of type %s",
					   f->name, format_type_be(f->basetype)));
	for (int i = 0; i < CS_NUMBER_BOUNDS; i++)
		any |= (rule->bounds[i] != NULL);
	if (!any)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("number rule for \"%s\" needs at least one bound", f->name),
				errhint("Give less_than, greater_than, less_than_or_equal_to, greater_than_or_equal_to or equal_to."));
}

/*
 * inclusion/exclusion: a list, and for an enum column the OIDs of its labels
 * (the trigger path compares OIDs; every label must exist).
 */
static void
check_list(CsRule *rule, PgappColumn *f, const char *what)
{
	if (rule->list == NULL || !JB_ROOT_IS_ARRAY(rule->list) || JB_ROOT_IS_SCALAR(rule->list))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s rule for \"%s\" needs a JSON array of values", what, f->name));
	rule->nlist = JB_ROOT_COUNT(rule->list);
	if (pgapp_cs_field_is_enum(f))
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
							   what, f->name, pgapp_echo(pgapp_jsonb_value_to_cstring(v)),
							   format_type_be(f->basetype)));
			tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(f->basetype),
								  CStringGetDatum(pgapp_jsonb_value_cstring(v)));
			if (!HeapTupleIsValid(tup))
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s rule for \"%s\" lists \"%s\", which is not a label of enum %s",
							   what, f->name, pgapp_echo(pgapp_jsonb_value_cstring(v)),
							   format_type_be(f->basetype)));
			rule->enum_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
			ReleaseSysCache(tup);
		}
	}
}

/* format: a pattern that compiles, on a string column. */
static void
check_format(CsRule *rule, PgappColumn *f)
{
	if (rule->pattern == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("format rule for \"%s\" needs a pattern", f->name));
	/* Ecto's validate_format takes strings only */
	if (f->category == TYPCATEGORY_NUMERIC || f->category == TYPCATEGORY_BOOLEAN ||
		f->is_array || f->basetype == JSONOID || f->basetype == JSONBOID)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("format rule applies to string values, but \"%s\" is of type %s",
					   f->name, format_type_be(f->basetype)),
				errhint("Validate numbers with a number rule, lists with length or inclusion."));
	/* compile now: a bad regular expression raises 2201B here */
	(void) RE_compile_and_cache(rule->pattern, REG_ADVANCED, C_COLLATION_OID);
}

/* future: a date or timestamp column. */
static void
check_future(CsRule *rule, PgappColumn *f)
{
	if (f->basetype != DATEOID && f->basetype != TIMESTAMPOID && f->basetype != TIMESTAMPTZOID)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("future rule applies to date and timestamp columns, but \"%s\" is of type %s",
					   f->name, format_type_be(f->basetype)));
}

/* transition: a text or enum column and a machine that exists. */
static void
check_transition(CsRule *rule, PgappColumn *f)
{
	if (!pgapp_cs_field_is_text(f) && !pgapp_cs_field_is_enum(f))
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("transition rule applies to text and enum columns, but \"%s\" is of type %s",
					   f->name, format_type_be(f->basetype)));
	if (rule->machine == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("transition rule for \"%s\" needs a machine", f->name));
	pgapp_machine_check_exists(rule->machine);
}

/* check_constraint: the constraint name. */
static void
check_check_constraint(CsRule *rule, PgappColumn *f)
{
	if (rule->constraint_name == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("check_constraint for \"%s\" needs the constraint name", f->name),
				errhint("PostgreSQL names check constraints <table>_<column>_check unless told otherwise."));
}

/*
 * Check a rule against its source table and fill in what depends on the
 * column types.  Raises the error a user needs to fix the rule.
 */
void
pgapp_cs_check_rule(Oid relid, CsRule *rule)
{
	PgappColumn *f = &rule->fields[0];

	switch (rule->kind)
	{
		case CS_LENGTH:
			check_length(rule, f);
			break;
		case CS_NUMBER:
			check_number(rule, f);
			break;
		case CS_INCLUSION:
		case CS_EXCLUSION:
			check_list(rule, f, rule_names[rule->kind]);
			break;
		case CS_FORMAT:
			check_format(rule, f);
			break;
		case CS_FUTURE:
			check_future(rule, f);
			break;
		case CS_TRANSITION:
			check_transition(rule, f);
			break;
		case CS_CHECK_CONSTRAINT:
			check_check_constraint(rule, f);
			break;
		case CS_REQUIRED:
		case CS_CONFIRMATION:
		case CS_ACCEPTANCE:
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
	static const char *const length[] = {"min", "max", "is", "count", NULL};
	static const char *const confirmation[] = {"required", NULL};
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
		case CS_CONFIRMATION:
			return confirmation;
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

	/* "required": true is confirmation's option, not the required validator */
	if (k == CS_REQUIRED && value->type == jbvBool)
		return;
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

	if (rule_kind_from_name(key) >= 0 && !(strcmp(key, "required") == 0 && value->type == jbvBool))
		return;					/* the validator key itself */
	if (!option_known(rule->kind, key))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("unknown option \"%s\" in rule %d (%s)", pgapp_echo(key), index, rule_names[rule->kind]),
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
	else if (strcmp(key, "count") == 0)
		rule->count = pgapp_cs_length_count(option_string(value, key, index),
											psprintf("of rule %d ", index));
	else if (strcmp(key, "required") == 0)
	{
		if (value->type != jbvBool)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("option \"required\" of rule %d must be a boolean", index));
		rule->required = value->val.boolean;
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
				errdetail("The rule is %s.", pgapp_echo(pgapp_jsonb_value_to_cstring(json))),
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
		rule->fields = palloc0(sizeof(PgappColumn));
		pgapp_resolve_column(relid, pgapp_jsonb_value_cstring(rp.target),
							 rule->kind == CS_ACCEPTANCE || rule->kind == CS_CONFIRMATION,
							 NULL, &rule->fields[0]);
	}
	else if (rule->kind == CS_REQUIRED && pgapp_jsonb_value_is_array(rp.target) &&
			 pgapp_jsonb_array_length(rp.target) > 0)
	{
		rule->nfields = pgapp_jsonb_array_length(rp.target);
		rule->fields = palloc0(sizeof(PgappColumn) * rule->nfields);
		for (int i = 0; i < rule->nfields; i++)
		{
			JsonbValue *f = pgapp_jsonb_array_get(rp.target, i);

			if (f->type != jbvString)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("fields of rule %d (required) must be strings", index));
			pgapp_resolve_column(relid, pgapp_jsonb_value_cstring(f), false, NULL, &rule->fields[i]);
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

/*-------------------------------------------------------------------------
 *
 * changeset_value.c
 *	  Changesets as values: the jsonb changeset (load and store) and the
 *	  SQL validator functions that pipe it through the engine in
 *	  changeset.c.  Building one (pgapp.cast) is in changeset_cast.c.
 *
 * A changeset is jsonb (the pgapp.changeset domain): source, action, name,
 * permitted, data, params, changes, errors, valid, required, constraints.
 * Every function here reads one through pgapp_cs_read (changeset_read.c),
 * which checks all of it first.  Values stay jsonb, so numerics are exact;
 * jansson is not used for user data.  A validator that adds nothing returns
 * its input unchanged (unless its "valid" disagreed with its errors).
 *
 * src/changesets/changeset_value.c
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
 * The JSON changeset
 * ---------------------------------------------------------------------
 */

typedef struct CsState
{
	Jsonb	   *cs;
	Oid			relid;
	CsRead		read;
	CsInput		in;
	CsErrors	errors;
	List	   *new_required;	/* fields to add to "required" */
	List	   *new_constraints;	/* CsRule * to add to "constraints" */
} CsState;

/*
 * Load a changeset for a validator: pgapp_cs_read() checks every part of it
 * first (changeset_read.c).
 */
static void
cs_load(Jsonb *cs, CsState *st)
{
	memset(st, 0, sizeof(CsState));
	pgapp_cs_read(cs, &st->read);
	st->cs = cs;
	st->relid = st->read.relid;
	st->in.changes = st->read.changes;
	st->in.data = st->read.data;
	st->in.params = st->read.params;
	st->errors = st->read.errors;
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
	if (strcmp(key, "changes") == 0 && st->in.drop_changes != NIL)
	{
		pgapp_cs_add_changes_json(s->b, value->val.binary.data, st->in.drop_changes);
		return;
	}
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
			pgapp_cs_add_constraint_json(s->b, lfirst(lc));
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

	if (st->errors.added == NIL && st->new_required == NIL && st->new_constraints == NIL &&
		st->in.drop_changes == NIL && st->read.stated_valid == st->read.valid)
		return st->cs;
	pgapp_cs_check_error_count(&st->errors);

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
			pgapp_cs_add_constraint_json(&b, lfirst(lc));
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
	rule->fields = palloc0(sizeof(PgappColumn));
	pgapp_resolve_column(st->relid, pgapp_arg_cstring(fcinfo, 1, "field"), allow_virtual, NULL, &rule->fields[0]);
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
	rule->fields = palloc0(sizeof(PgappColumn) * Max(n, 1));
	rule->message = arg_text_opt(fcinfo, 2);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("fields must not contain nulls"));
		pgapp_resolve_column(st.relid, TextDatumGetCString(elems[i]), false, NULL, &rule->fields[i]);
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
	if (PG_NARGS() > 6 && !PG_ARGISNULL(6))
		rule->count = pgapp_cs_length_count(text_to_cstring(PG_GETARG_TEXT_PP(6)), NULL);
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
	rule->pattern = cstring_to_text(pgapp_arg_cstring(fcinfo, 2, "pattern"));
	rule->message = arg_text_opt(fcinfo, 3);
	return run_rule(&st, rule);
}

/* Validators whose only option is the message (argument 2). */
static Datum
message_rule(FunctionCallInfo fcinfo, CsRuleKind kind, bool allow_virtual)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, kind, fcinfo, allow_virtual);
	rule->message = arg_text_opt(fcinfo, 2);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_future);
Datum
pgapp_validate_future(PG_FUNCTION_ARGS)
{
	return message_rule(fcinfo, CS_FUTURE, false);
}

PG_FUNCTION_INFO_V1(pgapp_validate_transition);
Datum
pgapp_validate_transition(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_TRANSITION, fcinfo, false);
	rule->machine = pgapp_arg_cstring(fcinfo, 2, "machine");
	rule->message = arg_text_opt(fcinfo, 3);
	return run_rule(&st, rule);
}

/*
 * pgapp.validate_confirmation(cs, field, message, required): the field
 * need not be a column (a password is rarely stored as sent).
 */
PG_FUNCTION_INFO_V1(pgapp_validate_confirmation);
Datum
pgapp_validate_confirmation(PG_FUNCTION_ARGS)
{
	CsState		st;
	CsRule	   *rule;

	cs_load(arg_changeset(fcinfo), &st);
	rule = single_rule(&st, CS_CONFIRMATION, fcinfo, true);
	rule->message = arg_text_opt(fcinfo, 2);
	rule->required = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
	return run_rule(&st, rule);
}

PG_FUNCTION_INFO_V1(pgapp_validate_acceptance);
Datum
pgapp_validate_acceptance(PG_FUNCTION_ARGS)
{
	return message_rule(fcinfo, CS_ACCEPTANCE, true);
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
	field = pgapp_arg_cstring(fcinfo, 1, "field");
	if (field[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("field name must not be empty"));
	message = pgapp_arg_cstring(fcinfo, 2, "message");
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
	pgapp_cs_add_error(&st.errors, field, pgapp_cs_interpolate(message, o.n, o.keys, o.values));
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

/*
 * pgapp.is_valid(cs): no errors.  The "valid" key is never trusted: a
 * changeset is valid exactly when its errors object is empty.
 */
PG_FUNCTION_INFO_V1(pgapp_is_valid);
Datum
pgapp_is_valid(PG_FUNCTION_ARGS)
{
	CsRead		cs;

	pgapp_cs_read(PG_GETARG_JSONB_P(0), &cs);
	PG_RETURN_BOOL(cs.valid);
}

PG_FUNCTION_INFO_V1(pgapp_errors);
Datum
pgapp_errors(PG_FUNCTION_ARGS)
{
	CsRead		cs;

	pgapp_cs_read(PG_GETARG_JSONB_P(0), &cs);
	PG_RETURN_JSONB_P(pgapp_jsonb_from_value(pgapp_jsonb_get_key(cs.cs, "errors")));
}

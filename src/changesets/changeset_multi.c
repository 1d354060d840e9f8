/*-------------------------------------------------------------------------
 *
 * changeset_multi.c
 *	  What Multi (src/multi/) uses of changesets: the check of a changeset
 *	  argument, and the changes a step's references supply when it runs.
 *
 * A multi step's changeset may take a field's value from an earlier step:
 * {"order_id": {"$ref": "create_order.id"}} in its params.  Casting such an
 * object to a bigint column fails ("is invalid") and the validators skip a
 * field with a cast error, as Ecto's do.  When the multi runs, the resolved
 * value replaces it: pgapp_changeset_put_changes checks the value fits the
 * column, puts it in changes and removes that one cast error.  The value
 * comes from the multi's own earlier step, so the changeset's validators
 * are not run on it again (as a value set with Ecto's put_change or
 * build_assoc is not).
 *
 * src/changesets/changeset_multi.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "changeset.h"
#include "changeset_int.h"
#include "changeset_read.h"
#include "core/json_util.h"

/* Check a changeset value as every changeset function does (22023). */
void
pgapp_changeset_check(Jsonb *cs)
{
	CsRead		r;

	pgapp_cs_read(cs, &r);
}

typedef struct PutState
{
	PgappJsonbBuilder *b;
	List	   *fields;			/* char * */
	List	   *values;			/* JsonbValue * */
	CsErrors   *errors;
} PutState;

static bool
string_in(List *strings, const char *s)
{
	ListCell   *lc;

	foreach(lc, strings)
	{
		if (strcmp(lfirst(lc), s) == 0)
			return true;
	}
	return false;
}

static void
put_change_member(const char *key, int keylen, JsonbValue *value, void *arg)
{
	PutState   *ps = arg;

	if (string_in(ps->fields, key))
		return;
	pgapp_jsonb_key(ps->b, key);
	pgapp_jsonb_add_value(ps->b, value);
}

static void
put_member(const char *key, int keylen, JsonbValue *value, void *arg)
{
	PutState   *ps = arg;
	ListCell   *f;
	ListCell   *v;

	if (strcmp(key, "valid") == 0)
		return;					/* recomputed below */
	pgapp_jsonb_key(ps->b, key);
	if (strcmp(key, "errors") == 0)
		pgapp_cs_add_errors_json(ps->b, ps->errors);
	else if (strcmp(key, "changes") == 0)
	{
		pgapp_jsonb_begin_object(ps->b);
		pgapp_jsonb_foreach(value->val.binary.data, put_change_member, ps);
		forboth(f, ps->fields, v, ps->values)
		{
			pgapp_jsonb_key(ps->b, lfirst(f));
			pgapp_jsonb_add_value(ps->b, lfirst(v));
		}
		pgapp_jsonb_end_object(ps->b);
	}
	else
		pgapp_jsonb_add_value(ps->b, value);
}

/* Remove the cast error ("is invalid") of field from errors, if any. */
static void
drop_cast_error(CsErrors *errors, const char *field)
{
	ListCell   *lc;

	foreach(lc, errors->existing)
	{
		CsError    *e = lfirst(lc);

		if (strcmp(e->field, field) == 0 && strcmp(e->message, "is invalid") == 0)
		{
			errors->existing = foreach_delete_current(errors->existing, lc);
			return;
		}
	}
}

/*
 * cs with changes[field] = value for each of fields (char *, permitted
 * fields) and values (JsonbValue *), their cast errors removed and "valid"
 * recomputed.  NULL, with *bad_field set, when a value does not fit its
 * column.
 */
Jsonb *
pgapp_changeset_put_changes(Jsonb *cs, List *fields, List *values, char **bad_field)
{
	CsRead		r;
	PgappJsonbBuilder b = {0};
	PutState	ps = {&b, fields, values, NULL};
	ListCell   *f;
	ListCell   *v;

	pgapp_cs_read(cs, &r);
	forboth(f, fields, v, values)
	{
		CHECK_FOR_INTERRUPTS();
		if (!string_in(r.permitted, lfirst(f)))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("changeset field \"%s\" is not permitted", (char *) lfirst(f)));
		if (!pgapp_cs_change_fits(r.relid, lfirst(f), lfirst(v)))
		{
			*bad_field = lfirst(f);
			return NULL;
		}
		drop_cast_error(&r.errors, lfirst(f));
	}
	ps.errors = &r.errors;
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_foreach(&cs->root, put_member, &ps);
	pgapp_jsonb_key(&b, "valid");
	pgapp_jsonb_add_bool(&b, r.errors.existing == NIL && r.errors.added == NIL);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

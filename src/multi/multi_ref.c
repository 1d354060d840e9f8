/*-------------------------------------------------------------------------
 *
 * multi_ref.c
 *	  References between steps: {"$ref": "step.path"} in a step's
 *	  arguments, checked when the step is added, resolved when it runs.
 *
 * An object is a reference when its only key is "$ref".  Its value is
 * "step" (the step's whole result) or "step.a.b" (a path into it; a
 * segment of digits indexes an array: "create_items.rows.0.id").  Only
 * steps before the referring one may be named; a path that finds nothing
 * when the multi runs is an error in the multi, raised (22023), not a
 * failed step.  Values without references are passed on untouched; a value
 * with references is rebuilt with the referenced values in their place.
 * {"$literal": value} stands for value as it is, never searched: an app
 * wraps a client's JSON in it so that a "$ref" the client wrote stays data.
 * A changeset's params (the request's input) are never searched at all:
 * a write step's references come in its own refs.
 *
 * src/multi/multi_ref.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "core/error.h"
#include "core/json_util.h"
#include "multi_int.h"

/* The longest reference path, in bytes. */
#define MULTI_MAX_REF_PATH 1024

bool		pgapp_multi_error_is_ours = false;

/*
 * Is v a reference?  *path gets its path, or NULL when "$ref" does not
 * hold a string.
 */
bool
pgapp_multi_is_ref(JsonbValue *v, char **path)
{
	JsonbValue *p;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) != 1)
		return false;
	p = getKeyJsonValueFromContainer(v->val.binary.data, "$ref", 4, NULL);
	if (p == NULL)
		return false;
	*path = p->type == jbvString ? pnstrdup(p->val.string.val, p->val.string.len) : NULL;
	return true;
}

static bool found_ref(char *path, void *arg);

/*
 * Is v {"$literal": value}?  *inner gets value: JSON taken as it is, never
 * searched for references (a client's JSON passed in a step's arguments).
 */
static bool
is_literal(JsonbValue *v, JsonbValue **inner)
{
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) != 1)
		return false;
	*inner = getKeyJsonValueFromContainer(v->val.binary.data, "$literal", 8, NULL);
	return *inner != NULL;
}

/* Walk v calling fn on each reference; stop when fn returns true. */
static bool
walk_refs(JsonbValue *v, bool (*fn) (char *path, void *arg), void *arg)
{
	JsonbIterator *it;
	JsonbValue	child;
	JsonbIteratorToken tok;
	char	   *path;

	JsonbValue *inner;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (pgapp_multi_is_ref(v, &path))
		return fn(path, arg);
	if (v == NULL || v->type != jbvBinary)
		return false;
	if (is_literal(v, &inner))
		return fn == found_ref; /* a literal must be unwrapped: resolve it */
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &child, true)) != WJB_DONE)
	{
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && child.type == jbvBinary &&
			walk_refs(&child, fn, arg))
			return true;
	}
	return false;
}

static bool
found_ref(char *path, void *arg)
{
	return true;
}

bool
pgapp_multi_has_refs(JsonbValue *v)
{
	return walk_refs(v, found_ref, NULL);
}

typedef struct RefCheck
{
	List	   *names;
	const char *step;
} RefCheck;

/* The step a reference path names: up to its first ".". */
static char *
ref_step(const char *path)
{
	const char *dot = strchr(path, '.');

	return dot ? pnstrdup(path, dot - path) : pstrdup(path);
}

static bool
check_ref(char *path, void *arg)
{
	RefCheck   *rc = arg;
	char	   *step;
	ListCell   *lc;

	if (path == NULL || path[0] == '\0' || path[0] == '.' || strlen(path) > MULTI_MAX_REF_PATH ||
		path[strlen(path) - 1] == '.' || strstr(path, "..") != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("multi step \"%s\" has a malformed reference", rc->step),
				errdetail("A reference is {\"$ref\": \"step\"} or {\"$ref\": \"step.field.field\"} (no empty field), at most %d bytes.",
						  MULTI_MAX_REF_PATH));
	step = ref_step(path);
	foreach(lc, rc->names)
	{
		if (strcmp(lfirst(lc), step) == 0)
			return false;
	}
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("multi step \"%s\" refers to \"%s\", which is not an earlier step",
				   rc->step, pgapp_echo(path)),
			errhint("A step can refer only to the results of the steps added before it."));
	return true;				/* not reached */
}

/*
 * Check every reference in v: well formed, naming one of names (char *,
 * the steps before step).
 */
void
pgapp_multi_check_refs(JsonbValue *v, List *names, const char *step)
{
	RefCheck	rc = {names, step};

	(void) walk_refs(v, check_ref, &rc);
}

/* A document's root as a value (scalars unwrapped). */
JsonbValue *
pgapp_multi_root_value(Jsonb *jb)
{
	JsonbValue *v = palloc(sizeof(JsonbValue));

	if (JB_ROOT_IS_SCALAR(jb))
	{
		if (!JsonbExtractScalar(&jb->root, v))
			elog(ERROR, "could not extract a jsonb scalar");
		return v;
	}
	v->type = jbvBinary;
	v->val.binary.data = &jb->root;
	v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	return v;
}

/* Raise the 22023 of a reference that finds nothing (an error in the multi). */
static void
ref_not_found(const char *path, const char *segment)
{
	pgapp_multi_error_is_ours = true;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("reference \"%s\" finds no value", pgapp_echo(path)),
			errdetail("The result has no \"%s\".", pgapp_echo(segment)));
}

/* The value path names in results (MultiResult *). */
static JsonbValue *
lookup(const char *path, List *results)
{
	char	   *rest = pstrdup(path);
	char	   *seg = strsep(&rest, ".");
	JsonbValue *v = NULL;
	ListCell   *lc;

	foreach(lc, results)
	{
		MultiResult *r = lfirst(lc);

		if (strcmp(r->name, seg) == 0)
			v = pgapp_multi_root_value(r->value);
	}
	if (v == NULL)
		ref_not_found(path, seg);
	while (rest != NULL)
	{
		JsonbValue *next = NULL;

		seg = strsep(&rest, ".");
		if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
			next = getKeyJsonValueFromContainer(v->val.binary.data, seg, strlen(seg), NULL);
		else if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
				 seg[0] != '\0' && strspn(seg, "0123456789") == strlen(seg) && strlen(seg) < 10)
			next = getIthJsonbValueFromContainer(v->val.binary.data, (uint32) atoi(seg));
		if (next == NULL)
			ref_not_found(path, seg);
		v = next;
	}
	return v;
}

static JsonbValue *rebuild(JsonbParseState **ps, JsonbValue *v, List *results);

/* Push v, its references resolved, as token tok (a value or element). */
static void
push_resolved(JsonbParseState **ps, JsonbIteratorToken tok, JsonbValue *v, List *results)
{
	char	   *path;
	JsonbValue *inner;

	if (pgapp_multi_is_ref(v, &path))
		(void) pushJsonbValue(ps, tok, lookup(path, results));
	else if (is_literal(v, &inner))
		(void) pushJsonbValue(ps, tok, inner);
	else if (v->type == jbvBinary && pgapp_multi_has_refs(v))
		(void) rebuild(ps, v, results);
	else
		(void) pushJsonbValue(ps, tok, v);
}

/* Push container v member by member, resolving references in it. */
static JsonbValue *
rebuild(JsonbParseState **ps, JsonbValue *v, List *results)
{
	JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
	JsonbValue	child;
	JsonbIteratorToken tok;
	JsonbValue *res = NULL;

	check_stack_depth();
	while ((tok = JsonbIteratorNext(&it, &child, true)) != WJB_DONE)
	{
		if (tok == WJB_VALUE || tok == WJB_ELEM)
			push_resolved(ps, tok, &child, results);
		else if (tok == WJB_KEY || tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
			res = pushJsonbValue(ps, tok, tok == WJB_KEY ? &child : NULL);
		else
			res = pushJsonbValue(ps, tok, NULL);
	}
	return res;
}

/* v with its references resolved against results (MultiResult *). */
Jsonb *
pgapp_multi_resolve(JsonbValue *v, List *results)
{
	JsonbParseState *ps = NULL;
	char	   *path;
	JsonbValue *inner;

	if (pgapp_multi_is_ref(v, &path))
		return pgapp_jsonb_from_value(lookup(path, results));
	if (is_literal(v, &inner))
		return pgapp_jsonb_from_value(inner);
	if (v->type != jbvBinary || !pgapp_multi_has_refs(v))
		return pgapp_jsonb_from_value(v);
	return JsonbValueToJsonb(rebuild(&ps, v, results));
}

/* The changes so far: {"step": result, ...}. */
Jsonb *
pgapp_multi_changes(List *results)
{
	int			n = list_length(results);
	const char **keys = palloc(sizeof(char *) * Max(n, 1));
	JsonbValue **values = palloc(sizeof(JsonbValue *) * Max(n, 1));
	JsonbValue *slots = palloc(sizeof(JsonbValue) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	/* the results are copied as they are, not unpacked and encoded again */
	foreach(lc, results)
	{
		MultiResult *r = lfirst(lc);

		keys[i] = r->name;
		values[i] = pgapp_jsonb_root_value(r->value, &slots[i]);
		i++;
	}
	return pgapp_jsonb_raw_object(n, keys, values);
}

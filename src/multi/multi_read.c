/*-------------------------------------------------------------------------
 *
 * multi_read.c
 *	  The one checking reader of multi values: every builder and
 *	  pgapp.transact read a multi through pgapp_multi_read.
 *
 * A multi is {"steps": [step, ...]}; a step is {"name", "op", ...} with the
 * fields of its op (sql/parts/55_multi.sql lists them).  A multi is a plain
 * jsonb value a caller can write by hand, so nothing the builders checked
 * is trusted: every name, op, field, table, function and reference is
 * checked again here (22023 for a bad shape), and the privileges the steps
 * need are checked when they run, as the caller.
 *
 * src/multi/multi_read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "core/error.h"
#include "core/json_util.h"
#include "multi_int.h"

static const char *const op_names[] = {
	[MULTI_INSERT] = "insert",
	[MULTI_UPDATE] = "update",
	[MULTI_DELETE] = "delete",
	[MULTI_INSERT_ALL] = "insert_all",
	[MULTI_UPDATE_ALL] = "update_all",
	[MULTI_RUN] = "run",
	[MULTI_PUT] = "put",
	[MULTI_MERGE] = "merge",
};

const char *
pgapp_multi_op_name(MultiOp op)
{
	return op_names[op];
}

/* Raise the 22023 of a malformed multi. */
static void
bad_multi(const char *step, const char *what)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			step ? errmsg("multi step \"%s\" is malformed: %s", step, what)
			: errmsg("multi is malformed: %s", what),
			errhint("Build multis with pgapp.multi() and the pgapp.multi_* functions."));
}

/* Argument n, a pgapp.multi (22004 when NULL). */
Jsonb *
pgapp_multi_arg(FunctionCallInfo fcinfo, int n)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("multi must not be null"),
				errhint("Start with pgapp.multi()."));
	return PG_GETARG_JSONB_P(n);
}

/*
 * Check a new step name against the steps so far and known_names (char *):
 * not empty, at most MULTI_MAX_NAME bytes, no ".", not taken.
 */
void
pgapp_multi_check_name(const char *name, List *steps, List *known_names)
{
	ListCell   *lc;

	if (name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("multi step name must not be empty"));
	if (strlen(name) > MULTI_MAX_NAME)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("multi step name \"%s\" is too long", pgapp_echo(name)),
				errdetail("A step name has at most %d bytes.", MULTI_MAX_NAME));
	if (strchr(name, '.') != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("multi step name \"%s\" must not contain \".\"", pgapp_echo(name)),
				errdetail("References name a step's field as \"step.field\"."));
	foreach(lc, known_names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			goto taken;
	}
	foreach(lc, steps)
	{
		MultiStep  *s = lfirst(lc);

		if (s->name != NULL && strcmp(s->name, name) == 0)
			goto taken;
	}
	return;

taken:
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("multi already has a step named \"%s\"", pgapp_echo(name)),
			errdetail("Step names are unique within a multi, as in Ecto.Multi."));
}

/* The names of steps (char *), merges left out. */
List *
pgapp_multi_step_names(List *steps)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, steps)
	{
		MultiStep  *s = lfirst(lc);

		if (s->name != NULL)
			names = lappend(names, s->name);
	}
	return names;
}

/*
 * Check that fn can be a run step (fn(changes jsonb, args jsonb) -> jsonb)
 * or a merge (fn(changes jsonb) -> pgapp.multi or jsonb), and that the
 * current user may execute it.
 */
void
pgapp_multi_check_function(Oid fn, bool merge)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc proc;
	bool		ok;
	char	   *sig;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("function with OID %u does not exist", fn));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	ok = proc->prokind == PROKIND_FUNCTION && !proc->proretset &&
		proc->pronargs == (merge ? 1 : 2) &&
		getBaseType(proc->prorettype) == JSONBOID;
	for (int i = 0; ok && i < proc->pronargs; i++)
		ok = proc->proargtypes.values[i] == JSONBOID;
	ReleaseSysCache(tup);
	if (!ok)
	{
		sig = format_procedure_qualified(fn);
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("function %s cannot be a multi %s step", sig, merge ? "merge" : "run"),
				merge ? errdetail("A merge function takes (changes jsonb) and returns pgapp.multi.")
				: errdetail("A run function takes (changes jsonb, args jsonb) and returns jsonb: {\"ok\": value} or {\"error\": value}."));
	}
	if (pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for function %s", format_procedure_qualified(fn)));
}

/*
 * Signatures already looked up in this backend (text -> OID), so that a
 * multi's functions are not parsed again at every builder and transact.
 * The whole cache is forgotten when any function, schema or type changes
 * (a syscache invalidation of pg_proc, pg_namespace or pg_type: a dropped,
 * renamed or replaced function, or a renamed schema, gives a new lookup),
 * and the privilege and shape checks run every time.  Bounded: past
 * MULTI_FUNCTION_CACHE entries, lookups are not remembered.
 */
#define MULTI_FUNCTION_CACHE 256

typedef struct FunctionCacheEntry
{
	char		signature[NAMEDATALEN * 4];
	Oid			fn;
} FunctionCacheEntry;

static HTAB *function_cache = NULL;
static bool function_cache_stale = false;

/* A function, schema or type changed: forget every signature. */
static void
function_cache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	function_cache_stale = true;
}

static Oid
cached_function(const char *signature)
{
	FunctionCacheEntry *e;

	if (function_cache == NULL || strlen(signature) >= NAMEDATALEN * 4)
		return InvalidOid;
	if (function_cache_stale)
	{
		HASH_SEQ_STATUS seq;

		hash_seq_init(&seq, function_cache);
		while ((e = hash_seq_search(&seq)) != NULL)
			hash_search(function_cache, e->signature, HASH_REMOVE, NULL);
		function_cache_stale = false;
		return InvalidOid;
	}
	e = hash_search(function_cache, signature, HASH_FIND, NULL);
	return e != NULL ? e->fn : InvalidOid;
}

static void
remember_function(const char *signature, Oid fn)
{
	FunctionCacheEntry *e;

	if (strlen(signature) >= NAMEDATALEN * 4)
		return;
	if (function_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN * 4;
		ctl.entrysize = sizeof(FunctionCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		function_cache = hash_create("pgapp multi functions", 32, &ctl,
									 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		CacheRegisterSyscacheCallback(PROCOID, function_cache_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, function_cache_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, function_cache_invalidate, (Datum) 0);
	}
	if (function_cache_stale)
		return;
	if (hash_get_num_entries(function_cache) >= MULTI_FUNCTION_CACHE)
		return;
	e = hash_search(function_cache, signature, HASH_ENTER, NULL);
	e->fn = fn;
}

/* A step's function from its signature text (regprocedure output). */
Oid
pgapp_multi_function(const char *signature, bool merge)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		fn;
	Oid			cached = cached_function(signature);
	size_t		len = strlen(signature);

	if (OidIsValid(cached))
	{
		pgapp_multi_check_function(cached, merge);
		return cached;
	}
	if (len < 3 || strchr(signature, '(') == NULL || signature[len - 1] != ')')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("multi %s function \"%s\" is not a function signature",
					   merge ? "merge" : "run", pgapp_echo(signature)),
				errhint("Write it as regprocedure does: schema.name(jsonb,jsonb)."));
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = PointerGetDatum(cstring_to_text(signature));
	fcinfo->args[0].isnull = false;
	fn = to_regprocedure(fcinfo);
	if (fcinfo->isnull || !OidIsValid(DatumGetObjectId(fn)))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("multi %s function %s does not exist", merge ? "merge" : "run",
					   pgapp_echo(signature)));
	pgapp_multi_check_function(DatumGetObjectId(fn), merge);
	remember_function(signature, DatumGetObjectId(fn));
	return DatumGetObjectId(fn);
}

/* A table named by a step (qualified name text), or 22023. */
static Oid
step_table(JsonbValue *v, const char *step)
{
	char	   *name = pgapp_jsonb_value_cstring(v);
	List	   *names;
	Oid			relid;

	if (name == NULL)
		bad_multi(step, "\"table\" must be a table name");
	names = stringToQualifiedNameList(name);
	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	if (!OidIsValid(relid) || get_rel_relkind(relid) == '\0')
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_TABLE),
				errmsg("table %s of multi step \"%s\" does not exist", pgapp_echo(name), step));
	return relid;
}

/* Check that key is a column of relid (22023 naming the step). */
static void
check_column(Oid relid, const char *key, const char *step)
{
	AttrNumber	att = get_attnum(relid, key);

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("column \"%s\" of multi step \"%s\" is not a column of %s",
					   pgapp_echo(key), step, get_rel_name(relid)));
}

typedef struct ColumnCheck
{
	Oid			relid;
	const char *step;
	List	   *keys;
} ColumnCheck;

static void
check_member_column(const char *key, int keylen, JsonbValue *value, void *arg)
{
	ColumnCheck *cc = arg;

	check_column(cc->relid, key, cc->step);
	cc->keys = lappend(cc->keys, pstrdup(key));
}

/* Do two lists of strings (char *) hold the same strings in order? */
static bool
same_strings(List *a, List *b)
{
	ListCell   *la;
	ListCell   *lb;

	if (list_length(a) != list_length(b))
		return false;
	forboth(la, a, lb, b)
	{
		if (strcmp(lfirst(la), lfirst(lb)) != 0)
			return false;
	}
	return true;
}

/* insert_all's rows: objects of columns, all with the same keys. */
static void
check_rows(JsonbValue *rows, Oid relid, const char *step)
{
	int			n = pgapp_jsonb_array_length(rows);
	List	   *first = NIL;

	if (n < 0)
		bad_multi(step, "\"rows\" must be an array of objects");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *row = pgapp_jsonb_array_get(rows, i);
		ColumnCheck cc = {relid, step, NIL};

		CHECK_FOR_INTERRUPTS();
		if (!pgapp_jsonb_value_is_object(row))
			bad_multi(step, "\"rows\" must be an array of objects");
		pgapp_jsonb_foreach(row->val.binary.data, check_member_column, &cc);
		if (i == 0)
			first = cc.keys;
		else if (!same_strings(first, cc.keys))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("rows of multi step \"%s\" do not all have the same keys", step),
					errdetail("Row %d differs from row 1.", i + 1),
					errhint("Give every row the same columns (null where there is no value)."));
	}
}

/* The table of a query value (its "source"), or 22023. */
static Oid
query_source(JsonbValue *q, const char *step)
{
	JsonbValue *src;

	if (!pgapp_jsonb_value_is_object(q) ||
		(src = pgapp_jsonb_get(q->val.binary.data, "source")) == NULL ||
		pgapp_jsonb_get(q->val.binary.data, "where") == NULL ||
		pgapp_jsonb_get(q->val.binary.data, "order") == NULL)
		bad_multi(step, "\"query\" must be a pgapp.query");
	return step_table(src, step);
}

/* A required member of a step object. */
static JsonbValue *
member(JsonbValue *step, const char *key, const char *name)
{
	JsonbValue *v = pgapp_jsonb_get(step->val.binary.data, key);

	if (v == NULL)
		bad_multi(name, psprintf("it has no \"%s\"", key));
	return v;
}

static MultiOp
step_op(JsonbValue *step, const char *name)
{
	char	   *op = pgapp_jsonb_value_cstring(member(step, "op", name));

	for (int i = 0; op != NULL && i < lengthof(op_names); i++)
	{
		if (strcmp(op, op_names[i]) == 0)
			return (MultiOp) i;
	}
	bad_multi(name, "\"op\" is not a known step kind");
	return MULTI_PUT;			/* not reached */
}

/*
 * A write step's refs: an object whose keys are fields the changeset
 * permits, each value a reference (or JSON holding references).
 */
static void
check_refs_fields(MultiStep *s, const char *label)
{
	JsonbValue *permitted = pgapp_jsonb_get(s->arg->val.binary.data, "permitted");
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!pgapp_jsonb_value_is_object(s->refs))
		bad_multi(label, "\"refs\" must be an object of fields and references");
	it = JsonbIteratorInit(s->refs->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		found = false;
		int			n = permitted ? pgapp_jsonb_array_length(permitted) : -1;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; i < n && !found; i++)
		{
			JsonbValue *p = pgapp_jsonb_array_get(permitted, i);

			found = p->type == jbvString && p->val.string.len == v.val.string.len &&
				memcmp(p->val.string.val, v.val.string.val, v.val.string.len) == 0;
		}
		if (!found)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("refs of multi step \"%s\" name \"%s\", which its changeset does not permit",
						   label, pgapp_echo(pnstrdup(v.val.string.val, v.val.string.len))),
					errhint("A reference fills a permitted field of the changeset."));
	}
}

/* Read the fields of one step's op into s, checking them. */
static void
read_step_fields(MultiStep *s, const char *label)
{
	ColumnCheck cc;

	switch (s->op)
	{
		case MULTI_INSERT:
		case MULTI_UPDATE:
			s->arg = member(s->step, "changeset", label);
			if (!pgapp_jsonb_value_is_object(s->arg))
				bad_multi(label, "\"changeset\" must be a pgapp.changeset");
			s->refs = pgapp_jsonb_get(s->step->val.binary.data, "refs");
			if (s->refs != NULL && s->refs->type == jbvNull)
				s->refs = NULL;
			if (s->refs != NULL)
				check_refs_fields(s, label);
			break;
		case MULTI_DELETE:
			s->relid = step_table(member(s->step, "table", label), label);
			s->arg = member(s->step, "id", label);
			break;
		case MULTI_INSERT_ALL:
			s->relid = step_table(member(s->step, "table", label), label);
			s->arg = member(s->step, "rows", label);
			check_rows(s->arg, s->relid, label);
			break;
		case MULTI_UPDATE_ALL:
			{
				JsonbValue *q = member(s->step, "query", label);

				s->relid = query_source(q, label);
				s->query = pgapp_jsonb_from_value(q);
				s->arg = member(s->step, "set", label);
				if (!pgapp_jsonb_value_is_object(s->arg))
					bad_multi(label, "\"set\" must be an object of columns");
				cc.relid = s->relid;
				cc.step = label;
				cc.keys = NIL;
				pgapp_jsonb_foreach(s->arg->val.binary.data, check_member_column, &cc);
				if (cc.keys == NIL)
					bad_multi(label, "\"set\" names no column");
				break;
			}
		case MULTI_RUN:
		case MULTI_MERGE:
			{
				char	   *sig = pgapp_jsonb_value_cstring(member(s->step, "function", label));

				if (sig == NULL)
					bad_multi(label, "\"function\" must be a function signature");
				s->fn = pgapp_multi_function(sig, s->op == MULTI_MERGE);
				if (s->op == MULTI_RUN)
					s->arg = member(s->step, "args", label);
				break;
			}
		case MULTI_PUT:
			s->arg = member(s->step, "value", label);
			break;
	}
}

/*
 * Read one step object: its name (checked against the steps before it and
 * known_names), its op and fields, and its references (to earlier steps
 * only).
 */
MultiStep *
pgapp_multi_read_step(JsonbValue *step, List *steps, List *known_names, int index)
{
	MultiStep  *s = palloc0(sizeof(MultiStep));
	JsonbValue *name;
	char	   *label;
	List	   *earlier;

	if (!pgapp_jsonb_value_is_object(step))
		bad_multi(NULL, psprintf("step %d is not an object", index + 1));
	s->step = step;
	name = pgapp_jsonb_get(step->val.binary.data, "name");
	s->op = step_op(step, NULL);
	if (s->op == MULTI_MERGE)
	{
		if (name != NULL && name->type != jbvNull)
			bad_multi(NULL, psprintf("step %d is a merge, which has no name", index + 1));
		label = psprintf("merge %d", index + 1);
	}
	else
	{
		s->name = pgapp_jsonb_value_cstring(name);
		if (s->name == NULL)
			bad_multi(NULL, psprintf("step %d has no name", index + 1));
		pgapp_multi_check_name(s->name, steps, known_names);
		label = s->name;
	}
	read_step_fields(s, label);
	if (s->arg != NULL)
	{
		/*
		 * A changeset's params are the request's input: its references are in
		 * refs, never in the changeset.
		 */
		JsonbValue *refs = s->arg;

		if (s->op == MULTI_INSERT || s->op == MULTI_UPDATE)
			refs = s->refs;
		earlier = list_concat(list_copy(known_names), pgapp_multi_step_names(steps));
		if (refs != NULL)
			pgapp_multi_check_refs(refs, earlier, label);
	}
	return s;
}

/*
 * The step names of a multi (char *), merges left out, without checking
 * the steps (the builders: pgapp.transact checks every step).
 */
List *
pgapp_multi_quick_names(Jsonb *m)
{
	JsonbValue *steps = pgapp_jsonb_get_key(m, "steps");
	int			n = steps ? pgapp_jsonb_array_length(steps) : -1;
	List	   *names = NIL;

	if (n < 0)
		bad_multi(NULL, "it has no \"steps\" array");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *step = pgapp_jsonb_array_get(steps, i);
		char	   *name;

		CHECK_FOR_INTERRUPTS();
		if (!pgapp_jsonb_value_is_object(step))
			bad_multi(NULL, psprintf("step %d is not an object", i + 1));
		name = pgapp_jsonb_value_cstring(pgapp_jsonb_get(step->val.binary.data, "name"));
		if (name != NULL)
			names = lappend(names, name);
	}
	return names;
}

/*
 * Read and check a multi: its steps (MultiStep *), in order.  known_names
 * (char *) are names taken before it (the steps already run, for a merge),
 * which its steps may reference and must not reuse.
 */
List *
pgapp_multi_read(Jsonb *m, List *known_names)
{
	JsonbValue *steps = pgapp_jsonb_get_key(m, "steps");
	int			n = steps ? pgapp_jsonb_array_length(steps) : -1;
	List	   *out = NIL;

	if (n < 0)
		bad_multi(NULL, "it has no \"steps\" array");
	if (n + list_length(known_names) > MULTI_MAX_STEPS)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("multi has too many steps"),
				errdetail("A multi has at most %d steps, counting those merges add.", MULTI_MAX_STEPS));
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		out = lappend(out, pgapp_multi_read_step(pgapp_jsonb_array_get(steps, i), out, known_names, i));
	}
	return out;
}

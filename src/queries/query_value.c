/*-------------------------------------------------------------------------
 *
 * query_value.c
 *	  The one reader and validator of a pgapp.query value.
 *
 * A query is jsonb (the pgapp.query domain):
 *
 *	{"source": "public.product",
 *	 "where": [{"op": "eq", "field": "status", "value": "active"},
 *			   {"op": "in", "field": "id", "values": ["1", "2"]},
 *			   {"op": "null", "field": "deleted_at"},
 *			   {"op": "range", "field": "price", "from": "1.00", "to": null},
 *			   {"op": "search", "fields": ["name", "sku"], "term": "50%_off"}],
 *	 "order": [{"field": "name", "dir": "asc", "nulls": "last"}],
 *	 "scopes": [...], "stats": [...], "preload": [...]}
 *
 * Builders store values as text in the column's own type, but a value may
 * also be made by hand, so every builder and executor first reads it
 * through pgapp_query_read, the one place that checks every key, type and
 * operation, converts values to their column's type and checks sorts,
 * scopes, stats and preloads against their definitions (22023 for a bad
 * shape, never a crash).  Everything above works on the QueryValue it
 * returns, never on the jsonb.  This file also holds the column helpers
 * the builders share: input in a column's type and the btree operators of
 * a column type (resolution is pgapp_query_column in query_int.h).
 *
 * src/queries/query_value.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "query_int.h"

/* ---------------------------------------------------------------------
 * Fields and values
 * ---------------------------------------------------------------------
 */

/*
 * msg with the caller's text, where it quotes it, cut to ECHO_CHARS
 * characters; whatever else it says is cut at four times that.
 */
static char *
cut_echo(char *msg, const char *text)
{
	char	   *at;
	int			len;

	if (msg == NULL)
		return NULL;
	len = strlen(text);
	if (len > ECHO_CHARS && (at = strstr(msg, text)) != NULL)
		msg = psprintf("%.*s%s%s", (int) (at - msg), msg, pgapp_echo(text), at + len);
	if (pg_mbstrlen(msg) > 4 * ECHO_CHARS)
		msg = pga_truncate_for_message(msg, 4 * ECHO_CHARS);
	return msg;
}

/*
 * text through the input function of typid.  The type's own error (22P02
 * and the like) passes through, with the echoed text cut to ECHO_CHARS.
 */
Datum
pgapp_query_column_input(const char *text, Oid typid)
{
	MemoryContext mcxt = CurrentMemoryContext;
	Oid			typinput;
	Oid			typioparam;
	Datum		result = (Datum) 0;

	getTypeInputInfo(typid, &typinput, &typioparam);
	PG_TRY();
	{
		result = OidInputFunctionCall(typinput, (char *) text, typioparam, -1);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->message = cut_echo(edata->message, text);
		edata->detail = cut_echo(edata->detail, text);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return result;
}

/*
 * A value of any type as text in the column's type: output with its own
 * type, input with the column's.  Raises the column type's error (e.g.
 * 22P02) when the value does not fit.
 */
char *
pgapp_query_value_as_text(Datum value, Oid valtype, const PgappColumn *f)
{
	Oid			typoutput;
	bool		isvarlena;
	char	   *text;
	Datum		d;

	getTypeOutputInfo(valtype, &typoutput, &isvarlena);
	text = OidOutputFunctionCall(typoutput, value);

	if (valtype == f->typid)
		return text;

	d = pgapp_query_column_input(text, f->typid);
	getTypeOutputInfo(f->typid, &typoutput, &isvarlena);
	return OidOutputFunctionCall(typoutput, d);
}

/*
 * Is every key of the object container one of keys (NULL-terminated)?
 * Otherwise 22023 naming the first unknown one; what says whose key it is.
 */
static void
check_keys(JsonbContainer *object, const char *const *keys, const char *what)
{
	JsonbIterator *it = JsonbIteratorInit(object);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;
		char	   *key;
		StringInfoData list;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; keys[i] != NULL && !known; i++)
			known = (v.val.string.len == (int) strlen(keys[i]) &&
					 memcmp(v.val.string.val, keys[i], v.val.string.len) == 0);
		if (known)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		initStringInfo(&list);
		for (int i = 0; keys[i] != NULL; i++)
			appendStringInfo(&list, "%s\"%s\"", i ? ", " : "", keys[i]);
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s has an unknown key \"%s\"", what, pgapp_echo(key)),
				errdetail("Its keys are %s.", list.data),
				errhint(QUERY_HINT));
	}
}

/* The string member key of object (22023 when absent or not a string). */
static char *
required_string(JsonbContainer *object, const char *key, const char *what)
{
	JsonbValue *v = pgapp_jsonb_get(object, key);

	if (v == NULL)
		bad_query("%s has no \"%s\"", what, key);
	if (v->type != jbvString)
		bad_query("\"%s\" of %s must be a string, not %s", key, what, pgapp_jsonb_type_name(v));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The array member key of object (22023 when absent or not an array). */
static JsonbValue *
required_array(JsonbContainer *object, const char *key, const char *what)
{
	JsonbValue *v = pgapp_jsonb_get(object, key);

	if (v == NULL)
		bad_query("%s has no \"%s\"", what, key);
	if (!pgapp_jsonb_value_is_array(v))
		bad_query("\"%s\" of %s must be an array, not %s", key, what, pgapp_jsonb_type_name(v));
	return v;
}

/*
 * A value of a condition, in the column's type.  A JSON string is the
 * value's text; a JSON number is taken as its text too (5 on an integer
 * column is 5; 5.5 there is the type's own 22P02); a JSON boolean only on
 * a boolean column.  null, objects and arrays are 22023: "IS NULL" is its
 * own operation, and nothing ever compares with a made-up value.
 */
static Datum
condition_value(JsonbValue *v, const PgappColumn *f, const char *key, const char *what)
{
	char	   *text = NULL;

	if (v == NULL)
		bad_query("%s has no \"%s\"", what, key);
	switch (v->type)
	{
		case jbvString:
			text = pnstrdup(v->val.string.val, v->val.string.len);

			break;
		case jbvNumeric:
			text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));

			break;
		case jbvBool:
			if (f->category == TYPCATEGORY_BOOLEAN)
				text = v->val.boolean ? "true" : "false";

			break;
		default:
			break;
	}
	if (text == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("\"%s\" of %s must be a string or a number, not %s", key, what, pgapp_jsonb_type_name(v)),
				v->type == jbvNull ? errhint("Filter on NULL with {\"op\": \"null\", \"field\": ...}, "
											 "as pgapp.filter_by(q, field, NULL::type) writes it.")
				: errhint(QUERY_HINT));
	return pgapp_query_column_input(text, f->typid);
}

static const char *const query_keys[] = {"source", "where", "order", "scopes", "stats", "preload", NULL};
static const char *const eq_keys[] = {"op", "field", "value", NULL};
static const char *const in_keys[] = {"op", "field", "values", NULL};
static const char *const null_keys[] = {"op", "field", NULL};
static const char *const range_keys[] = {"op", "field", "from", "to", NULL};
static const char *const search_keys[] = {"op", "term", "fields", NULL};
static const char *const order_keys[] = {"field", "dir", "nulls", NULL};

/* A search condition: its fields (text columns) and its ILIKE pattern. */
static void
read_search(QueryCond *c, Oid relid, JsonbContainer *obj, const char *what)
{
	JsonbValue *fields;
	char	   *term;

	c->op = QOP_SEARCH;
	check_keys(obj, search_keys, what);
	term = required_string(obj, "term", what);
	fields = required_array(obj, "fields", what);
	c->nfields = pgapp_jsonb_array_length(fields);
	if (c->nfields == 0)
		bad_query("\"fields\" of %s must name at least one field", what);
	c->fields = palloc(sizeof(PgappColumn) * c->nfields);
	for (int j = 0; j < c->nfields; j++)
	{
		JsonbValue *fv = pgapp_jsonb_array_get(fields, j);
		char	   *name = pgapp_jsonb_value_cstring(fv);

		CHECK_FOR_INTERRUPTS();
		if (name == NULL)
			bad_query("\"fields\" of %s must be field names, not %s", what, pgapp_jsonb_type_name(fv));
		pgapp_query_column(relid, name, &c->fields[j]);
		if (c->fields[j].category != TYPCATEGORY_STRING)
			ereport(ERROR,
					errcode(ERRCODE_DATATYPE_MISMATCH),
					errmsg("function \"%s\" applies to text columns, but \"%s\" is of type %s",
						   "pgapp.search",
						   c->fields[j].name, format_type_be(c->fields[j].typid)));
	}
	c->pattern = CStringGetTextDatum(psprintf("%%%s%%", pgapp_query_escape_like(term)));
}

/* The operation op of a condition on one field, its keys checked. */
static QueryOp
read_op(JsonbContainer *obj, const char *op, const char *what)
{
	if (strcmp(op, "eq") == 0)
	{
		check_keys(obj, eq_keys, what);
		return QOP_EQ;
	}
	if (strcmp(op, "in") == 0)
	{
		check_keys(obj, in_keys, what);
		return QOP_IN;
	}
	if (strcmp(op, "null") == 0)
	{
		check_keys(obj, null_keys, what);
		return QOP_NULL;
	}
	if (strcmp(op, "range") == 0)
	{
		check_keys(obj, range_keys, what);
		return QOP_RANGE;
	}
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("%s has an unknown op \"%s\"", what, pgapp_echo(op)),
			errdetail("Operations are eq, in, null, range and search."),
			errhint(QUERY_HINT));
	return QOP_EQ;				/* keep compiler quiet */
}

/* The "values" of an in condition: an array of the column's type. */
static void
read_in_values(QueryCond *c, JsonbContainer *obj, const char *what)
{
	JsonbValue *values = required_array(obj, "values", what);
	int			nv = pgapp_jsonb_array_length(values);
	Datum	   *elems = palloc(sizeof(Datum) * Max(nv, 1));
	int16		typlen;
	bool		typbyval;
	char		typalign;

	c->arraytype = get_array_type(c->f.typid);
	if (!OidIsValid(c->arraytype))
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("cannot filter \"%s\" by a list of values", c->f.name));
	for (int j = 0; j < nv; j++)
	{
		CHECK_FOR_INTERRUPTS();
		elems[j] = condition_value(pgapp_jsonb_array_get(values, j), &c->f, "values", what);
	}
	get_typlenbyvalalign(c->f.typid, &typlen, &typbyval, &typalign);
	c->values = PointerGetDatum(construct_array(elems, nv, c->f.typid, typlen, typbyval, typalign));
}

/* The ends of a range condition: at least one, in the column's type. */
static void
read_range(QueryCond *c, JsonbContainer *obj, const char *what)
{
	JsonbValue *from = pgapp_jsonb_get(obj, "from");
	JsonbValue *to = pgapp_jsonb_get(obj, "to");

	if (c->f.category != TYPCATEGORY_NUMERIC && c->f.category != TYPCATEGORY_DATETIME)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("function \"%s\" applies to numeric, date and time columns, but \"%s\" is of type %s",
					   "pgapp.filter_range",
					   c->f.name, format_type_be(c->f.typid)));
	c->has_from = (from != NULL && from->type != jbvNull);
	c->has_to = (to != NULL && to->type != jbvNull);
	if (!c->has_from && !c->has_to)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s (range) has neither \"from\" nor \"to\"", what),
				errhint("A range needs at least one end; pgapp.filter_range adds nothing for two open ends."));
	if (c->has_from)
		c->from = condition_value(from, &c->f, "from", what);
	if (c->has_to)
		c->to = condition_value(to, &c->f, "to", what);
}

/* One element of "where". */
static QueryCond *
read_condition(Oid relid, JsonbValue *cv, int n)
{
	QueryCond  *c = palloc0(sizeof(QueryCond));
	char	   *what = psprintf("query condition %d", n);
	JsonbContainer *obj;
	char	   *op;

	if (!pgapp_jsonb_value_is_object(cv))
		bad_query("%s must be an object, not %s", what, pgapp_jsonb_type_name(cv));
	obj = cv->val.binary.data;
	op = required_string(obj, "op", what);
	if (strcmp(op, "search") == 0)
	{
		read_search(c, relid, obj, what);
		return c;
	}
	c->op = read_op(obj, op, what);
	pgapp_query_column(relid, required_string(obj, "field", what), &c->f);

	/* the column type's own btree operators (42883 when it has none) */
	if (c->op == QOP_EQ || c->op == QOP_IN)
		c->eq_op = pgapp_query_btree_operator(c->f.typid, BTEqualStrategyNumber);
	else if (c->op == QOP_RANGE)
	{
		c->ge_op = pgapp_query_btree_operator(c->f.typid, BTGreaterEqualStrategyNumber);
		c->le_op = pgapp_query_btree_operator(c->f.typid, BTLessEqualStrategyNumber);
	}

	if (c->op == QOP_EQ)
		c->value = condition_value(pgapp_jsonb_get(obj, "value"), &c->f, "value", what);
	else if (c->op == QOP_IN)
		read_in_values(c, obj, what);
	else if (c->op == QOP_RANGE)
		read_range(c, obj, what);
	return c;
}

/* One element of "order"; allowed is the source's sort whitelist. */
static QueryOrder *
read_ordering(Oid relid, ArrayType *allowed, JsonbValue *ov, int n)
{
	QueryOrder *o = palloc0(sizeof(QueryOrder));
	char	   *what = psprintf("query ordering %d", n);
	JsonbContainer *obj;
	char	   *field;
	char	   *dir;
	char	   *nulls;

	if (!pgapp_jsonb_value_is_object(ov))
		bad_query("%s must be an object, not %s", what, pgapp_jsonb_type_name(ov));
	obj = ov->val.binary.data;
	check_keys(obj, order_keys, what);
	field = required_string(obj, "field", what);
	dir = required_string(obj, "dir", what);
	nulls = required_string(obj, "nulls", what);
	if (strcmp(dir, "asc") != 0 && strcmp(dir, "desc") != 0)
		bad_query("\"dir\" of %s must be \"asc\" or \"desc\", not \"%s\"", what, pgapp_echo(dir));
	if (strcmp(nulls, "first") != 0 && strcmp(nulls, "last") != 0)
		bad_query("\"nulls\" of %s must be \"first\" or \"last\", not \"%s\"", what, pgapp_echo(nulls));
	/* a hand-made value goes through the whitelist as sort_by does */
	pgapp_query_check_sortable(relid, allowed, field);
	pgapp_query_column(relid, field, &o->f);
	o->desc = (strcmp(dir, "desc") == 0);
	o->nulls_first = (strcmp(nulls, "first") == 0);
	return o;
}

/* The names of array v (scopes, stats, preload); 22023 for anything else. */
static List *
read_names(JsonbValue *v, const char *key)
{
	List	   *names = NIL;
	int			n;

	if (v == NULL)
		return NIL;
	if (!pgapp_jsonb_value_is_array(v))
		bad_query("\"%s\" of a query must be an array of names, not %s", key, pgapp_jsonb_type_name(v));
	n = pgapp_jsonb_array_length(v);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = pgapp_jsonb_array_get(v, i);
		char	   *name = pgapp_jsonb_value_cstring(e);

		CHECK_FOR_INTERRUPTS();
		if (name == NULL)
			bad_query("\"%s\" of a query must be an array of names, but element %d is %s",
					  key, i + 1, pgapp_jsonb_type_name(e));
		names = lappend(names, name);
	}
	return names;
}

/* The relation a query's "source" names, a table or view (42P01, 42809). */
static Oid
read_source(Jsonb *q)
{
	JsonbValue *src = pgapp_jsonb_get_key(q, "source");
	List	   *names;
	Oid			relid;
	char		kind;

	if (src == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("query has no \"source\""),
				errhint("Start queries with pgapp.from(table)."));
	if (src->type != jbvString)
		bad_query("\"source\" of a query must be a string naming a table or view, not %s", pgapp_jsonb_type_name(src));
	names = stringToQualifiedNameList(pnstrdup(src->val.string.val, src->val.string.len));
	if (list_length(names) > 3)
		bad_query("\"source\" of a query must be a table or view name, as pgapp.from() writes it");
	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false);
	kind = get_rel_relkind(relid);
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_VIEW &&
		kind != RELKIND_MATVIEW && kind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a table or view", get_rel_name(relid)));
	return relid;
}

/*
 * The one reader of a pgapp.query value: every builder and executor calls
 * it before anything else.  It checks every key (unknown ones included),
 * every type and every operation, resolves fields against the catalog,
 * converts values to their column's type, and checks sort fields against
 * the whitelist and scope, stat and preload names against their
 * definitions.  Anything malformed is 22023 (or the exact SQLSTATE of an
 * unknown column, scope, type mismatch or bad value), never a crash, never
 * "no filter".  The result lives in the current memory context.
 */
void
pgapp_query_read(Jsonb *q, QueryValue *qv)
{
	MemoryContext mcxt = CurrentMemoryContext;
	JsonbValue *where;
	JsonbValue *order;
	List	   *scopes;
	List	   *stats;
	List	   *preloads;
	int			n;

	memset(qv, 0, sizeof(QueryValue));
	if (q == NULL || !pgapp_jsonb_is_object(q))
		bad_query("a query must be a JSON object");
	check_keys(&q->root, query_keys, "a query");
	qv->relid = read_source(q);

	where = required_array(&q->root, "where", "a query");
	n = pgapp_jsonb_array_length(where);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		qv->conds = lappend(qv->conds, read_condition(qv->relid, pgapp_jsonb_array_get(where, i), i + 1));
	}

	order = required_array(&q->root, "order", "a query");
	n = pgapp_jsonb_array_length(order);
	if (n > 0)
	{
		ArrayType  *allowed = pgapp_query_sortable_fields(qv->relid);

		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			qv->orders = lappend(qv->orders, read_ordering(qv->relid, allowed, pgapp_jsonb_array_get(order, i), i + 1));
		}
	}

	scopes = read_names(pgapp_jsonb_get_key(q, "scopes"), "scopes");
	stats = read_names(pgapp_jsonb_get_key(q, "stats"), "stats");
	preloads = read_names(pgapp_jsonb_get_key(q, "preload"), "preload");
	if (scopes != NIL || stats != NIL || preloads != NIL)
	{
		int			ret;
		ListCell   *lc;
		List	   *relations = NIL;
		MemoryContext old;

		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		qv->scopes = pgapp_query_named_expressions(qv->relid, "scope", scopes, mcxt);
		qv->stats = pgapp_query_named_expressions(qv->relid, "stat", stats, mcxt);
		qv->search_path = pgapp_query_common_search_path(list_concat_copy(qv->scopes, qv->stats));
		if (preloads != NIL)
			relations = pgapp_query_cached_relations(qv->relid);
		foreach(lc, preloads)
		{
			QueryRelation *r = pgapp_query_find_relation(qv->relid, relations, lfirst(lc));

			old = MemoryContextSwitchTo(mcxt);
			qv->preloads = lappend(qv->preloads, pgapp_query_copy_relation(r));
			MemoryContextSwitchTo(old);
		}
		SPI_finish();
		MemoryContextSwitchTo(mcxt);
	}
}

/* The query argument, read (NULL is 22004). */
Jsonb *
pgapp_query_arg(FunctionCallInfo fcinfo, QueryValue *qv)
{
	Jsonb	   *q;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("query must not be null"),
				errhint("Start queries with pgapp.from(table)."));
	q = PG_GETARG_JSONB_P(0);
	pgapp_query_read(q, qv);
	return q;
}

/*
 * pgapp.check_query(q) -> pgapp.query: q itself when pgapp_query_read accepts
 * it, for a value that comes from elsewhere (a client, a table).
 */
PG_FUNCTION_INFO_V1(pgapp_check_query);
Datum
pgapp_check_query(PG_FUNCTION_ARGS)
{
	QueryValue	qv;

	PG_RETURN_JSONB_P(pgapp_query_arg(fcinfo, &qv));
}

/*
 * LIKE pattern text matching s literally: \ % _ escaped with \.
 */
char *
pgapp_query_escape_like(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		if (*s == '\\' || *s == '%' || *s == '_')
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *s);
	}
	return buf.data;
}

/*
 * "OPERATOR(schema.op)" for the column type's btree operator of strategy
 * (=, >=, <=), found through the type cache rather than by name, so that
 * the search path cannot substitute another operator and indexes apply.
 */
char *
pgapp_query_btree_operator(Oid typid, int16 strategy)
{
	TypeCacheEntry *tce = lookup_type_cache(typid, TYPECACHE_BTREE_OPFAMILY);
	Oid			opfamily = tce->btree_opf;
	Oid			opintype = tce->btree_opintype;
	Oid			opr;
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *result;

	if (!OidIsValid(opfamily))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FUNCTION),
				errmsg("type %s has no default btree operator class", format_type_be(typid)),
				errdetail("Filters need equality and ordering operators."));
	opr = get_opfamily_member(opfamily, opintype, opintype, strategy);
	if (!OidIsValid(opr))
		elog(ERROR, "missing operator %d(%u,%u) in opfamily %u", strategy, opintype, opintype, opfamily);
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opr);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

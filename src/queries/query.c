/*-------------------------------------------------------------------------
 *
 * query.c
 *	  Composable queries: a pgapp.query value, builders that add checked
 *	  conditions to it, and executors that run it as one prepared statement.
 *
 * A query is jsonb (the pgapp.query domain):
 *
 *	{"source": "public.product",
 *	 "where": [{"op": "eq", "field": "status", "value": "active"},
 *			   {"op": "in", "field": "id", "values": ["1", "2"]},
 *			   {"op": "null", "field": "deleted_at"},
 *			   {"op": "range", "field": "price", "from": "1.00", "to": null},
 *			   {"op": "search", "fields": ["name", "sku"], "term": "50%_off"}],
 *	 "order": [{"field": "name", "dir": "asc", "nulls": "last"}]}
 *
 * Builders resolve every field against the catalog when they are called
 * and store values as text in the column's own type (cast through the
 * column type's input function), so a bad field or value fails at once.
 * A value may also be made by hand, so every builder and executor first
 * reads it through query_read, the one place that checks every key, type
 * and operation, converts values to their column's type and checks sorts,
 * scopes, stats and preloads against their definitions (22023 for a bad
 * shape, never a crash).  Executors build the SQL from what query_read
 * returned, never from the jsonb: identifiers come from the catalog and
 * are quoted, values are always bound parameters typed as their column,
 * never spliced.  Plans are prepared once per SQL text and kept
 * (SPI_keepplan) in a per-backend cache, so the second page of the same
 * query shape does not plan again; PostgreSQL's plan cache invalidates
 * them when the tables change.  The cache holds at most MAX_CACHED_PLANS
 * plans and pgapp.query_cache_memory kB, least recently used evicted.
 *
 * src/query.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/base64.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "executor/spi.h"
#include "executor/spi_priv.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/typcache.h"
#include "utils/syscache.h"
#include "catalog/pg_operator.h"
#include "access/stratnum.h"
#include "catalog/pg_collation.h"
#include "utils/formatting.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "query.h"

static void query_init(void);

const PgappModule pgapp_queries_module = {
	.name = "queries",
	.init = query_init,
};


/* At most this many characters of a caller's input in an error message. */
#define ECHO_CHARS PGA_MESSAGE_ECHO_CHARS

/* A column of the source, resolved. */
typedef struct QueryField
{
	const char *name;
	AttrNumber	attnum;
	Oid			typid;			/* the column's declared type */
	Oid			basetype;		/* domains resolved */
	char		category;
} QueryField;

/* SQL under construction and its parameters. */
typedef struct QuerySql
{
	StringInfoData sql;
	int			nparams;
	int			maxparams;
	Oid		   *types;
	Datum	   *values;
} QuerySql;

/* Kept plans, by the hash and length of their SQL text. */
typedef struct PlanKey
{
	uint32		hash;
	uint32		len;
} PlanKey;

typedef struct PlanEntry
{
	PlanKey		key;
	char	   *sql;			/* in TopMemoryContext */
	SPIPlanPtr	plan;
	Size		bytes;			/* memory of the plan, last measured */
	int			running;		/* executions under way (a stat may run a query) */
	dlist_node	lru;			/* in plans_lru, most recently used first */
} PlanEntry;

#define MAX_CACHED_PLANS 256

static HTAB *plans = NULL;
static dlist_head plans_lru = DLIST_STATIC_INIT(plans_lru);
static Size plans_bytes = 0;

/*
 * A relation of relid: a foreign key from it ("belongs to": one row or
 * null) or to it ("has many": an array).  Its name is the foreign-key
 * column without "_id" (assignee_id -> assignee) for one, the referencing
 * table's name for the other (task -> "task").
 */
typedef struct QueryRelation
{
	char	   *name;
	bool		many;
	Oid			other;			/* the related table */
	int			ncols;
	char	  **local;			/* columns of the source */
	char	  **remote;			/* matching columns of the related table */
	int			norder;
	char	  **order;			/* has many: the related rows' primary key, for a stable order */
} QueryRelation;

/*
 * A pgapp.query value, read and checked by query_read: every executor and
 * builder works on this, never on the jsonb itself.
 */
typedef enum QueryOp
{
	QOP_EQ,
	QOP_IN,
	QOP_NULL,
	QOP_RANGE,
	QOP_SEARCH
} QueryOp;

typedef struct QueryCond
{
	QueryOp		op;
	QueryField	f;				/* eq, in, null, range */
	Datum		value;			/* eq: in the column's type */
	Oid			arraytype;		/* in: the column type's array type */
	Datum		values;			/* in: an array of it */
	bool		has_from;		/* range: an open end has none */
	bool		has_to;
	Datum		from;
	Datum		to;
	char	   *eq_op;			/* eq, in: OPERATOR(...) of the column type's btree = */
	char	   *ge_op;			/* range: its >= and <= */
	char	   *le_op;
	Datum		pattern;		/* search: the ILIKE pattern (text) */
	int			nfields;
	QueryField *fields;
} QueryCond;

typedef struct QueryOrder
{
	QueryField	f;
	bool		desc;
	bool		nulls_first;
} QueryOrder;

/* A scope or stat: its name and the owner's expression. */
typedef struct QueryNamed
{
	char	   *name;
	char	   *expression;
	char	   *search_path;	/* the schemas it was defined under */
} QueryNamed;

typedef struct QueryValue
{
	Oid			relid;
	List	   *conds;			/* QueryCond * */
	List	   *orders;			/* QueryOrder * */
	List	   *scopes;			/* QueryNamed * */
	List	   *stats;			/* QueryNamed * */
	List	   *preloads;		/* QueryRelation *, copied */
	char	   *search_path;	/* of its scopes and stats; NULL: none */
} QueryValue;

static void resolve_field(Oid relid, const char *name, QueryField *f);
static ArrayType *sortable_fields(Oid relid);
static void check_sortable(Oid relid, ArrayType *allowed, const char *field);
static char *lookup_expression(Oid relid, const char *kind, const char *name, MemoryContext mcxt,
							   char **search_path);
static List *named_expressions(Oid relid, const char *kind, List *names, MemoryContext mcxt);
static char *common_search_path(List *named);
static List *cached_relations(Oid relid);
static QueryRelation *find_relation(Oid relid, List *relations, const char *name);
static char *escape_like(const char *s);
static char *btree_operator(Oid typid, int16 strategy);

/* ---------------------------------------------------------------------
 * Fields and values
 * ---------------------------------------------------------------------
 */

static void
resolve_field(Oid relid, const char *name, QueryField *f)
{
	int32		typmod;
	Oid			collid;
	bool		preferred;

	if (name == NULL || name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("field name must not be empty"));
	f->name = name;
	f->attnum = get_attnum(relid, name);
	if (f->attnum == InvalidAttrNumber || f->attnum < 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_COLUMN),
				errmsg("column \"%s\" of relation \"%s\" does not exist", pgapp_echo(name), get_rel_name(relid)),
				errhint("Fields are column names of the query's source, written as they are (no quoting)."));
	get_atttypetypmodcoll(relid, f->attnum, &f->typid, &typmod, &collid);
	f->basetype = getBaseType(f->typid);
	get_type_category_preferred(f->basetype, &f->category, &preferred);
}

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
static Datum
column_input(const char *text, Oid typid)
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
static char *
value_as_column_text(Datum value, Oid valtype, const QueryField *f)
{
	Oid			typoutput;
	bool		isvarlena;
	char	   *text;
	Datum		d;

	getTypeOutputInfo(valtype, &typoutput, &isvarlena);
	text = OidOutputFunctionCall(typoutput, value);
	if (valtype == f->typid)
		return text;
	d = column_input(text, f->typid);
	getTypeOutputInfo(f->typid, &typoutput, &isvarlena);
	return OidOutputFunctionCall(typoutput, d);
}

/* ---------------------------------------------------------------------
 * The query value: one reader checks all of it
 * ---------------------------------------------------------------------
 */

#define QUERY_HINT "Build queries with pgapp.from() and the builders; docs/queries.md describes the value."

/* 22023 for a malformed query value; fmt and its arguments as errmsg's. */
#define bad_query(...) \
	ereport(ERROR, \
			errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			errmsg(__VA_ARGS__), \
			errhint(QUERY_HINT))

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
condition_value(JsonbValue *v, const QueryField *f, const char *key, const char *what)
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
	return column_input(text, f->typid);
}

static const char *const query_keys[] = {"source", "where", "order", "scopes", "stats", "preload", NULL};
static const char *const eq_keys[] = {"op", "field", "value", NULL};
static const char *const in_keys[] = {"op", "field", "values", NULL};
static const char *const null_keys[] = {"op", "field", NULL};
static const char *const range_keys[] = {"op", "field", "from", "to", NULL};
static const char *const search_keys[] = {"op", "term", "fields", NULL};
static const char *const order_keys[] = {"field", "dir", "nulls", NULL};

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
		JsonbValue *fields;
		char	   *term;

		c->op = QOP_SEARCH;
		check_keys(obj, search_keys, what);
		term = required_string(obj, "term", what);
		fields = required_array(obj, "fields", what);
		c->nfields = pgapp_jsonb_array_length(fields);
		if (c->nfields == 0)
			bad_query("\"fields\" of %s must name at least one field", what);
		c->fields = palloc(sizeof(QueryField) * c->nfields);
		for (int j = 0; j < c->nfields; j++)
		{
			JsonbValue *fv = pgapp_jsonb_array_get(fields, j);
			char	   *name = pgapp_jsonb_value_cstring(fv);

			CHECK_FOR_INTERRUPTS();
			if (name == NULL)
				bad_query("\"fields\" of %s must be field names, not %s", what, pgapp_jsonb_type_name(fv));
			resolve_field(relid, name, &c->fields[j]);
			if (c->fields[j].category != TYPCATEGORY_STRING)
				ereport(ERROR,
						errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("search applies to text columns, but \"%s\" is of type %s",
							   c->fields[j].name, format_type_be(c->fields[j].typid)));
		}
		c->pattern = CStringGetTextDatum(psprintf("%%%s%%", escape_like(term)));
		return c;
	}

	if (strcmp(op, "eq") == 0)
	{
		c->op = QOP_EQ;
		check_keys(obj, eq_keys, what);
	}
	else if (strcmp(op, "in") == 0)
	{
		c->op = QOP_IN;
		check_keys(obj, in_keys, what);
	}
	else if (strcmp(op, "null") == 0)
	{
		c->op = QOP_NULL;
		check_keys(obj, null_keys, what);
	}
	else if (strcmp(op, "range") == 0)
	{
		c->op = QOP_RANGE;
		check_keys(obj, range_keys, what);
	}
	else
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s has an unknown op \"%s\"", what, pgapp_echo(op)),
				errdetail("Operations are eq, in, null, range and search."),
				errhint(QUERY_HINT));
	resolve_field(relid, required_string(obj, "field", what), &c->f);

	/* the column type's own btree operators (42883 when it has none) */
	if (c->op == QOP_EQ || c->op == QOP_IN)
		c->eq_op = btree_operator(c->f.typid, BTEqualStrategyNumber);
	else if (c->op == QOP_RANGE)
	{
		c->ge_op = btree_operator(c->f.typid, BTGreaterEqualStrategyNumber);
		c->le_op = btree_operator(c->f.typid, BTLessEqualStrategyNumber);
	}

	switch (c->op)
	{
		case QOP_EQ:
			c->value = condition_value(pgapp_jsonb_get(obj, "value"), &c->f, "value", what);
			break;
		case QOP_IN:
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
			break;
		case QOP_NULL:
			break;
		case QOP_RANGE:
			{
				JsonbValue *from = pgapp_jsonb_get(obj, "from");
				JsonbValue *to = pgapp_jsonb_get(obj, "to");

				if (c->f.category != TYPCATEGORY_NUMERIC && c->f.category != TYPCATEGORY_DATETIME)
					ereport(ERROR,
							errcode(ERRCODE_DATATYPE_MISMATCH),
							errmsg("filter_range applies to numeric, date and time columns, but \"%s\" is of type %s",
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
			break;
		case QOP_SEARCH:
			break;
	}
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
	check_sortable(relid, allowed, field);
	resolve_field(relid, field, &o->f);
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

/* A copy of r in the current memory context. */
static QueryRelation *
copy_relation(const QueryRelation *r)
{
	QueryRelation *c = palloc(sizeof(QueryRelation));

	*c = *r;
	c->name = pstrdup(r->name);
	c->local = palloc(sizeof(char *) * Max(r->ncols, 1));
	c->remote = palloc(sizeof(char *) * Max(r->ncols, 1));
	for (int j = 0; j < r->ncols; j++)
	{
		c->local[j] = pstrdup(r->local[j]);
		c->remote[j] = pstrdup(r->remote[j]);
	}
	c->order = palloc(sizeof(char *) * Max(r->norder, 1));
	for (int j = 0; j < r->norder; j++)
		c->order[j] = pstrdup(r->order[j]);
	return c;
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
static void
query_read(Jsonb *q, QueryValue *qv)
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
		ArrayType  *allowed = sortable_fields(qv->relid);

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
		qv->scopes = named_expressions(qv->relid, "scope", scopes, mcxt);
		qv->stats = named_expressions(qv->relid, "stat", stats, mcxt);
		qv->search_path = common_search_path(list_concat_copy(qv->scopes, qv->stats));
		if (preloads != NIL)
			relations = cached_relations(qv->relid);
		foreach(lc, preloads)
		{
			QueryRelation *r = find_relation(qv->relid, relations, lfirst(lc));

			old = MemoryContextSwitchTo(mcxt);
			qv->preloads = lappend(qv->preloads, copy_relation(r));
			MemoryContextSwitchTo(old);
		}
		SPI_finish();
		MemoryContextSwitchTo(mcxt);
	}
}

/* The query argument, read (NULL is 22004). */
static Jsonb *
arg_query(FunctionCallInfo fcinfo, QueryValue *qv)
{
	Jsonb	   *q;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("query must not be null"),
				errhint("Start queries with pgapp.from(table)."));
	q = PG_GETARG_JSONB_P(0);
	query_read(q, qv);
	return q;
}

/*
 * pgapp.check_query(q) -> pgapp.query: q itself when query_read accepts
 * it, for a value that comes from elsewhere (a client, a table).
 */
PG_FUNCTION_INFO_V1(pgapp_check_query);
Datum
pgapp_check_query(PG_FUNCTION_ARGS)
{
	QueryValue	qv;

	PG_RETURN_JSONB_P(arg_query(fcinfo, &qv));
}

/*
 * The query with one more element appended to the array under key
 * ("where" or "order").  The element is built by the caller between
 * begin and end.
 */
typedef struct QueryAppend
{
	Jsonb	   *q;
	const char *key;
	PgappJsonbBuilder b;
	bool		done;
} QueryAppend;

/*
 * Start appending to q's array "key": afterwards the builder is inside that
 * array, ready for one element; finish with append_end.  Keys after the
 * array are copied by append_end.
 */
static PgappJsonbBuilder *
append_begin(QueryAppend *a, Jsonb *q, const char *key)
{
	memset(a, 0, sizeof(QueryAppend));
	a->q = q;
	a->key = key;
	pgapp_jsonb_begin_object(&a->b);
	pgapp_jsonb_key(&a->b, "source");
	pgapp_jsonb_add_value(&a->b, pgapp_jsonb_get_key(q, "source"));
	pgapp_jsonb_key(&a->b, key);
	pgapp_jsonb_begin_array(&a->b);
	{
		JsonbValue *arr = pgapp_jsonb_get_key(q, key);
		int			n = pgapp_jsonb_array_length(arr);

		for (int i = 0; i < n; i++)
			pgapp_jsonb_add_value(&a->b, pgapp_jsonb_array_get(arr, i));
	}
	return &a->b;
}

static void
copy_other_member(const char *key, int keylen, JsonbValue *value, void *arg)
{
	QueryAppend	   *a = (QueryAppend *) arg;

	if (strcmp(key, "source") == 0 || strcmp(key, a->key) == 0)
		return;
	pgapp_jsonb_key(&a->b, key);
	pgapp_jsonb_add_value(&a->b, value);
}

static Jsonb *
append_end(QueryAppend *a)
{
	pgapp_jsonb_end_array(&a->b);
	pgapp_jsonb_foreach(&a->q->root, copy_other_member, a);
	pgapp_jsonb_end_object(&a->b);
	return pgapp_jsonb_finish(&a->b);
}

/* ---------------------------------------------------------------------
 * Builders
 * ---------------------------------------------------------------------
 */

/*
 * pgapp.from(source regclass) -> pgapp.query
 */
PG_FUNCTION_INFO_V1(pgapp_from);
Datum
pgapp_from(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char		kind = get_rel_relkind(relid);
	PgappJsonbBuilder b = {0};

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_VIEW &&
		kind != RELKIND_MATVIEW && kind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a table or view", get_rel_name(relid)));
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "source");
	pgapp_jsonb_add_string(&b, quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														  get_rel_name(relid)));
	pgapp_jsonb_key(&b, "where");
	pgapp_jsonb_begin_array(&b);
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_key(&b, "order");
	pgapp_jsonb_begin_array(&b);
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_end_object(&b);
	PG_RETURN_JSONB_P(pgapp_jsonb_finish(&b));
}

/*
 * pgapp.filter_by(q, field text, value anyelement) -> pgapp.query
 * Equality; NULL means IS NULL; an array means IN.
 */
PG_FUNCTION_INFO_V1(pgapp_filter_by);
Datum
pgapp_filter_by(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = arg_query(fcinfo, &qv);
	Oid			relid = qv.relid;
	QueryField	f;
	QueryAppend		a;
	PgappJsonbBuilder *b;
	Oid			valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	resolve_field(relid, pgapp_arg_cstring(fcinfo, 1, "field"), &f);
	if (!PG_ARGISNULL(2))
		(void) btree_operator(f.typid, BTEqualStrategyNumber);	/* 42883 now, not when it runs */
	b = append_begin(&a, q, "where");
	pgapp_jsonb_begin_object(b);
	pgapp_jsonb_key(b, "field");
	pgapp_jsonb_add_string(b, f.name);
	if (PG_ARGISNULL(2))
	{
		pgapp_jsonb_key(b, "op");
		pgapp_jsonb_add_string(b, "null");
	}
	else if (OidIsValid(get_element_type(valtype)) && !OidIsValid(get_element_type(f.basetype)))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
		Oid			elemtype = ARR_ELEMTYPE(arr);
		int16		typlen;
		bool		typbyval;
		char		typalign;
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
		pgapp_jsonb_key(b, "op");
		pgapp_jsonb_add_string(b, "in");
		pgapp_jsonb_key(b, "values");
		pgapp_jsonb_begin_array(b);
		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("values for \"%s\" must not contain nulls", f.name),
						errhint("Filter on NULL with its own filter_by(q, field, NULL::type)."));
			pgapp_jsonb_add_string(b, value_as_column_text(elems[i], elemtype, &f));
		}
		pgapp_jsonb_end_array(b);
	}
	else
	{
		pgapp_jsonb_key(b, "op");
		pgapp_jsonb_add_string(b, "eq");
		pgapp_jsonb_key(b, "value");
		pgapp_jsonb_add_string(b, value_as_column_text(PG_GETARG_DATUM(2), valtype, &f));
	}
	pgapp_jsonb_end_object(b);
	PG_RETURN_JSONB_P(append_end(&a));
}

/*
 * pgapp.filter_range(q, field, from_value anyelement, to_value anyelement)
 * Inclusive; a NULL end is open; both NULL adds nothing.
 */
PG_FUNCTION_INFO_V1(pgapp_filter_range);
Datum
pgapp_filter_range(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = arg_query(fcinfo, &qv);
	Oid			relid = qv.relid;
	QueryField	f;
	QueryAppend		a;
	PgappJsonbBuilder *b;
	Oid			valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	resolve_field(relid, pgapp_arg_cstring(fcinfo, 1, "field"), &f);
	if (f.category != TYPCATEGORY_NUMERIC && f.category != TYPCATEGORY_DATETIME)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("filter_range applies to numeric, date and time columns, but \"%s\" is of type %s",
					   f.name, format_type_be(f.typid)));
	if (PG_ARGISNULL(2) && PG_ARGISNULL(3))
		PG_RETURN_JSONB_P(q);

	b = append_begin(&a, q, "where");
	pgapp_jsonb_begin_object(b);
	pgapp_jsonb_key(b, "op");
	pgapp_jsonb_add_string(b, "range");
	pgapp_jsonb_key(b, "field");
	pgapp_jsonb_add_string(b, f.name);
	pgapp_jsonb_key(b, "from");
	if (PG_ARGISNULL(2))
		pgapp_jsonb_add_null(b);
	else
		pgapp_jsonb_add_string(b, value_as_column_text(PG_GETARG_DATUM(2), valtype, &f));
	pgapp_jsonb_key(b, "to");
	if (PG_ARGISNULL(3))
		pgapp_jsonb_add_null(b);
	else
		pgapp_jsonb_add_string(b, value_as_column_text(PG_GETARG_DATUM(3), valtype, &f));
	pgapp_jsonb_end_object(b);
	PG_RETURN_JSONB_P(append_end(&a));
}

/*
 * LIKE pattern text matching s literally: \ % _ escaped with \.
 */
static char *
escape_like(const char *s)
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

PG_FUNCTION_INFO_V1(pgapp_escape_like);
Datum
pgapp_escape_like(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(escape_like(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/*
 * pgapp.search(q, term text, fields text[]) -> pgapp.query
 * Case-insensitive substring match of term, taken literally, in any of the
 * fields.  A NULL or blank term adds nothing (an optional "q" parameter).
 */
PG_FUNCTION_INFO_V1(pgapp_search);
Datum
pgapp_search(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = arg_query(fcinfo, &qv);
	Oid			relid = qv.relid;
	char	   *term;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	QueryAppend		a;
	PgappJsonbBuilder *b;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("fields must not be null"));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("search needs at least one field"));
	for (int i = 0; i < n; i++)
	{
		QueryField	f;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("fields must not contain nulls"));
		resolve_field(relid, TextDatumGetCString(elems[i]), &f);
		if (f.category != TYPCATEGORY_STRING)
			ereport(ERROR,
					errcode(ERRCODE_DATATYPE_MISMATCH),
					errmsg("search applies to text columns, but \"%s\" is of type %s",
						   f.name, format_type_be(f.typid)));
	}
	term = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (term == NULL || term[strspn(term, " \t\r\n")] == '\0')
		PG_RETURN_JSONB_P(q);

	b = append_begin(&a, q, "where");
	pgapp_jsonb_begin_object(b);
	pgapp_jsonb_key(b, "op");
	pgapp_jsonb_add_string(b, "search");
	pgapp_jsonb_key(b, "term");
	pgapp_jsonb_add_string(b, term);
	pgapp_jsonb_key(b, "fields");
	pgapp_jsonb_begin_array(b);
	for (int i = 0; i < n; i++)
		pgapp_jsonb_add_string(b, TextDatumGetCString(elems[i]));
	pgapp_jsonb_end_array(b);
	pgapp_jsonb_end_object(b);
	PG_RETURN_JSONB_P(append_end(&a));
}

/*
 * Sort whitelists and scope/stat expressions looked up in this statement.
 * Every builder reads the whole value it is given, so a pipe of builders
 * would otherwise ask pgapp.sort_allowed and pgapp.query_expression the
 * same questions again and again.  The answers are kept only while the
 * statement, the transaction and its command counter are the same: any
 * write (allow_sort, define_scope) advances the command counter, and a new
 * statement may see a new snapshot.
 */
typedef struct MemoSort
{
	Oid			relid;
	ArrayType  *allowed;		/* NULL: no whitelist */
} MemoSort;

typedef struct MemoExpr
{
	Oid			relid;
	char	   *kind;
	char	   *name;
	char	   *expression;
	char	   *search_path;
} MemoExpr;

static MemoryContext memo_mcxt = NULL;
static LocalTransactionId memo_lxid = InvalidLocalTransactionId;
static CommandId memo_cid = InvalidCommandId;
static TimestampTz memo_stmt = 0;
static List *memo_sorts = NIL;
static List *memo_exprs = NIL;

/* Forget the memo when the statement, transaction or command changed. */
static void
memo_check(void)
{
	LocalTransactionId lxid = MyProc->lxid;
	CommandId	cid = GetCurrentCommandId(false);
	TimestampTz stmt = GetCurrentStatementStartTimestamp();

	if (memo_mcxt != NULL && lxid == memo_lxid && cid == memo_cid && stmt == memo_stmt)
		return;
	if (memo_mcxt == NULL)
		memo_mcxt = AllocSetContextCreate(TopMemoryContext, "pgapp query lookups", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(memo_mcxt);
	memo_sorts = NIL;
	memo_exprs = NIL;
	memo_lxid = lxid;
	memo_cid = cid;
	memo_stmt = stmt;
}

/* The fields allow_sort whitelisted for relid, as a text[] (NULL if none). */
static ArrayType *
sortable_fields(Oid relid)
{
	int			ret;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	ArrayType  *result = NULL;
	ListCell   *lc;
	MemoSort   *m;

	memo_check();
	foreach(lc, memo_sorts)
	{
		m = lfirst(lc);
		if (m->relid == relid)
			return m->allowed;
	}

	args[0] = ObjectIdGetDatum(relid);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args("SELECT fields FROM pgapp.sort_allowed WHERE source OPERATOR(pg_catalog.=) $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(memo_mcxt);

		if (!isnull)
			result = DatumGetArrayTypePCopy(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	m = MemoryContextAlloc(memo_mcxt, sizeof(MemoSort));
	m->relid = relid;
	m->allowed = result;
	{
		MemoryContext old = MemoryContextSwitchTo(memo_mcxt);

		memo_sorts = lappend(memo_sorts, m);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * 22023 unless field is on the sort whitelist allowed (sortable_fields of
 * relid); the detail lists the sortable fields.
 */
static void
check_sortable(Oid relid, ArrayType *allowed, const char *field)
{
	StringInfoData allowed_list;
	bool		ok = false;

	initStringInfo(&allowed_list);
	if (allowed != NULL)
	{
		Datum	   *elems;
		bool	   *isnull;
		int			n;

		deconstruct_array(allowed, TEXTOID, -1, false, TYPALIGN_INT, &elems, &isnull, &n);
		for (int i = 0; i < n; i++)
		{
			if (isnull[i])
				continue;
			ok |= (strcmp(TextDatumGetCString(elems[i]), field) == 0);
			appendStringInfo(&allowed_list, "%s%s", allowed_list.len ? ", " : "",
							 TextDatumGetCString(elems[i]));
		}
	}
	if (!ok)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("cannot sort %s by \"%s\"", get_rel_name(relid), pgapp_echo(field)),
				allowed_list.len > 0 ? errdetail("Sortable fields: %s.", allowed_list.data)
				: errdetail("No field of %s is sortable.", get_rel_name(relid)),
				errhint("The table owner allows fields with pgapp.allow_sort()."));
}

/*
 * pgapp.sort_by(q, field text, direction text DEFAULT 'asc')
 * direction: asc | desc, optionally followed by "nulls first" / "nulls last".
 */
PG_FUNCTION_INFO_V1(pgapp_sort_by);
Datum
pgapp_sort_by(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = arg_query(fcinfo, &qv);
	Oid			relid = qv.relid;
	char	   *field = pgapp_arg_cstring(fcinfo, 1, "field");
	char	   *direction = PG_ARGISNULL(2) ? pstrdup("asc") : text_to_cstring(PG_GETARG_TEXT_PP(2));
	const char *dir = NULL;
	const char *nulls = NULL;
	List	   *words;
	ListCell   *lc;
	QueryAppend		a;
	PgappJsonbBuilder *b;
	QueryField	f;

	check_sortable(relid, sortable_fields(relid), field);
	resolve_field(relid, field, &f);

	/* asc | desc [nulls first | nulls last], any case, any spacing */
	words = NIL;
	{
		char	   *tok;
		char	   *save;

		for (tok = strtok_r(direction, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
			words = lappend(words, str_tolower(tok, strlen(tok), DEFAULT_COLLATION_OID));
	}
	lc = list_head(words);
	if (lc && (strcmp(lfirst(lc), "asc") == 0 || strcmp(lfirst(lc), "desc") == 0))
	{
		dir = lfirst(lc);
		lc = lnext(words, lc);
		if (lc && strcmp(lfirst(lc), "nulls") == 0)
		{
			lc = lnext(words, lc);
			if (lc && (strcmp(lfirst(lc), "first") == 0 || strcmp(lfirst(lc), "last") == 0))
			{
				nulls = lfirst(lc);
				lc = lnext(words, lc);
			}
			else
				dir = NULL;
		}
		if (lc != NULL)
			dir = NULL;
	}
	if (dir == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid sort direction \"%s\"",
					   PG_ARGISNULL(2) ? "" : pgapp_echo(text_to_cstring(PG_GETARG_TEXT_PP(2)))),
				errhint("Use asc or desc, optionally followed by nulls first or nulls last."));

	b = append_begin(&a, q, "order");
	pgapp_jsonb_begin_object(b);
	pgapp_jsonb_key(b, "field");
	pgapp_jsonb_add_string(b, f.name);
	pgapp_jsonb_key(b, "dir");
	pgapp_jsonb_add_string(b, dir);
	pgapp_jsonb_key(b, "nulls");
	/* PostgreSQL's default: nulls sort as if larger than any value */
	pgapp_jsonb_add_string(b, nulls ? nulls : (strcmp(dir, "asc") == 0 ? "last" : "first"));
	pgapp_jsonb_end_object(b);
	PG_RETURN_JSONB_P(append_end(&a));
}

/*
 * pgapp.allow_sort(source regclass, fields text[]): the sort whitelist
 * (replaces the previous one).  For pgapp_admin, on tables it owns.
 */
PG_FUNCTION_INFO_V1(pgapp_allow_sort);
Datum
pgapp_allow_sort(PG_FUNCTION_ARGS)
{
	Oid			relid;
	ArrayType  *fields;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			ret;
	Oid			argtypes[2] = {REGCLASSOID, TEXTARRAYOID};
	Datum		args[2];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "source" : "fields"));
	relid = PG_GETARG_OID(0);
	fields = PG_GETARG_ARRAYTYPE_P(1);
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	deconstruct_array(fields, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		QueryField	f;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("fields must not contain nulls"));
		resolve_field(relid, TextDatumGetCString(elems[i]), &f);
	}
	args[0] = ObjectIdGetDatum(relid);
	args[1] = PointerGetDatum(fields);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = pgapp_spi_execute_as_owner("INSERT INTO pgapp.sort_allowed (source, fields) VALUES ($1, $2)"
									 " ON CONFLICT (source) DO UPDATE SET fields = EXCLUDED.fields",
									 2, argtypes, args, NULL);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Scopes and stats: owner-defined SQL, checked when defined
 * ---------------------------------------------------------------------
 */

/*
 * Is text exactly one SQL expression (not a statement list, not a query
 * with its own FROM or WHERE)?  Parsed the way PL/pgSQL parses an
 * expression, so "true); DROP TABLE x; --" is refused before it is run.
 */
static void
check_single_expression(const char *text, const char *what, const char *name)
{
	List	   *parsed;
	SelectStmt *select;

	parsed = raw_parser(text, RAW_PARSE_PLPGSQL_EXPR);
	if (list_length(parsed) != 1 || !IsA(((RawStmt *) linitial(parsed))->stmt, SelectStmt))
		goto bad;
	select = (SelectStmt *) ((RawStmt *) linitial(parsed))->stmt;
	if (list_length(select->targetList) != 1 || select->fromClause != NIL ||
		select->whereClause != NULL || select->groupClause != NIL || select->havingClause != NULL ||
		select->windowClause != NIL || select->sortClause != NIL || select->limitCount != NULL ||
		select->limitOffset != NULL || select->lockingClause != NIL || select->distinctClause != NIL ||
		select->intoClause != NULL || select->withClause != NULL ||
		((ResTarget *) linitial(select->targetList))->name != NULL)
		goto bad;
	return;

bad:
	ereport(ERROR,
			errcode(ERRCODE_SYNTAX_ERROR),
			errmsg("%s \"%s\" must be a single SQL expression", what, pgapp_echo(name)),
			errdetail("It was: %s", pga_truncate_for_message(text, 4 * ECHO_CHARS)));
}

/* The context of an error in a scope or stat being defined. */
static void
define_expression_context(void *arg)
{
	errcontext("checking %s", (const char *) arg);
}

/*
 * Define a scope (kind "scope": a boolean condition) or a stat (kind
 * "stat": any expression) on source; the row is "t".
 */
static void
define_expression(FunctionCallInfo fcinfo, const char *kind)
{
	Oid			relid;
	char	   *name;
	char	   *expr;
	char	   *sql;
	SPIPlanPtr	plan;
	int			ret;
	Oid			argtypes[5] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	bool		is_scope = strcmp(kind, "scope") == 0;
	char	   *path;
	int			guc_level;
	ErrorContextCallback errcb;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("source must not be null"));
	relid = PG_GETARG_OID(0);
	name = pgapp_arg_cstring(fcinfo, 1, "name");
	expr = pgapp_arg_cstring(fcinfo, 2, is_scope ? "condition_sql" : "expression_sql");
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s name must be 1 to %d bytes", kind, NAMEDATALEN - 1));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	check_single_expression(expr, kind, name);

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));

	/*
	 * The schemas its names resolve in, in every query that uses it: the
	 * definer's search_path now, less the schemas where a role the definer
	 * is not (and that is no superuser) may create objects, and pg_temp
	 * last.  Names resolve as the definer meant, whatever the reader's
	 * path, and no other role can put an operator or function of its own
	 * in their place.
	 */
	ret = SPI_execute("SELECT pg_catalog.concat_ws(', ', VARIADIC ARRAY("
					  "SELECT pg_catalog.quote_ident(s.n)"
					  "  FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS s(n, o)"
					  " WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r"
					  "                    WHERE NOT r.rolsuper"
					  "                      AND NOT pg_catalog.pg_has_role(CURRENT_USER, r.oid, 'MEMBER')"
					  "                      AND pg_catalog.has_schema_privilege(r.oid, s.n, 'CREATE'))"
					  " ORDER BY s.o) OPERATOR(pg_catalog.||) '{pg_temp}'::pg_catalog.text[])", true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the search_path: %s", SPI_result_code_string(ret));
	path = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	/* does it plan against the table, under that path; is a scope a boolean? */
	sql = psprintf(is_scope ? "SELECT 1 FROM %s AS t WHERE (%s)" : "SELECT (%2$s) FROM %1$s AS t",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid)), expr);
	guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	errcb.callback = define_expression_context;
	errcb.arg = psprintf("%s \"%s\" under search_path \"%s\" (the definer's path, less the schemas"
						 " other roles may create in): qualify names in other schemas",
						 kind, pgapp_echo(name), path);
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	error_context_stack = errcb.previous;
	SPI_freeplan(plan);
	AtEOXact_GUC(true, guc_level);

	args[0] = ObjectIdGetDatum(relid);
	args[1] = CStringGetTextDatum(name);
	args[2] = CStringGetTextDatum(kind);
	args[3] = CStringGetTextDatum(expr);
	args[4] = CStringGetTextDatum(path);
	ret = pgapp_spi_execute_as_owner("INSERT INTO pgapp.query_expression (source, name, kind, expression, search_path)"
									 " VALUES ($1, $2, $3, $4, $5)"
									 " ON CONFLICT (source, kind, name) DO UPDATE"
									 " SET expression = EXCLUDED.expression, search_path = EXCLUDED.search_path",
									 5, argtypes, args, NULL);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	SPI_finish();
}

PG_FUNCTION_INFO_V1(pgapp_define_scope);
Datum
pgapp_define_scope(PG_FUNCTION_ARGS)
{
	define_expression(fcinfo, "scope");
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(pgapp_define_stat);
Datum
pgapp_define_stat(PG_FUNCTION_ARGS)
{
	define_expression(fcinfo, "stat");
	PG_RETURN_VOID();
}

/*
 * pgapp.drop_scope(source, name) / pgapp.drop_stat(source, name): for the
 * table's owner, like defining; 42704 when there is no such definition.
 */
static void
drop_expression(FunctionCallInfo fcinfo, const char *kind)
{
	Oid			relid;
	char	   *name;
	int			ret;
	Oid			argtypes[3] = {REGCLASSOID, TEXTOID, TEXTOID};
	Datum		args[3];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("source must not be null"));
	relid = PG_GETARG_OID(0);
	name = pgapp_arg_cstring(fcinfo, 1, "name");
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	args[0] = ObjectIdGetDatum(relid);
	args[1] = CStringGetTextDatum(kind);
	args[2] = CStringGetTextDatum(name);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = pgapp_spi_execute_as_owner("DELETE FROM pgapp.query_expression"
									 " WHERE source OPERATOR(pg_catalog.=) $1 AND kind OPERATOR(pg_catalog.=) $2"
									 "   AND name OPERATOR(pg_catalog.=) $3",
									 3, argtypes, args, NULL);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("%s \"%s\" of %s does not exist", kind, pgapp_echo(name), get_rel_name(relid)));
	SPI_finish();
}

PG_FUNCTION_INFO_V1(pgapp_drop_scope);
Datum
pgapp_drop_scope(PG_FUNCTION_ARGS)
{
	drop_expression(fcinfo, "scope");
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(pgapp_drop_stat);
Datum
pgapp_drop_stat(PG_FUNCTION_ARGS)
{
	drop_expression(fcinfo, "stat");
	PG_RETURN_VOID();
}

/*
 * The expression of a scope or stat (42704 naming the defined ones when
 * missing).  The caller is connected to SPI; the result is in the
 * caller's memory context.
 */
static char *
lookup_expression(Oid relid, const char *kind, const char *name, MemoryContext mcxt,
				  char **search_path)
{
	Oid			argtypes[3] = {REGCLASSOID, TEXTOID, TEXTOID};
	Datum		args[3];
	int			ret;
	char	   *result;
	char	   *path;
	ListCell   *lc;

	memo_check();
	foreach(lc, memo_exprs)
	{
		MemoExpr   *m = lfirst(lc);

		if (m->relid == relid && strcmp(m->kind, kind) == 0 && strcmp(m->name, name) == 0)
		{
			if (search_path)
				*search_path = MemoryContextStrdup(mcxt, m->search_path);
			return MemoryContextStrdup(mcxt, m->expression);
		}
	}

	args[0] = ObjectIdGetDatum(relid);
	args[1] = CStringGetTextDatum(kind);
	args[2] = CStringGetTextDatum(name);
	ret = SPI_execute_with_args("SELECT expression, search_path FROM pgapp.query_expression"
								" WHERE source OPERATOR(pg_catalog.=) $1 AND kind OPERATOR(pg_catalog.=) $2"
								"   AND name OPERATOR(pg_catalog.=) $3",
								3, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		char	   *known = NULL;

		ret = SPI_execute_with_args("SELECT pg_catalog.string_agg(name, ', ' ORDER BY name)"
									" FROM pgapp.query_expression"
									" WHERE source OPERATOR(pg_catalog.=) $1 AND kind OPERATOR(pg_catalog.=) $2",
									2, argtypes, args, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
			known = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("%s \"%s\" of %s does not exist", kind, pgapp_echo(name), get_rel_name(relid)),
				known ? errdetail("Defined %ss: %s.", kind, known)
				: errdetail("%s has no %ss.", get_rel_name(relid), kind),
				errhint("The table owner defines them with pgapp.define_%s().", kind));
	}
	result = MemoryContextStrdup(mcxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	path = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (search_path)
		*search_path = MemoryContextStrdup(mcxt, path);
	{
		MemoryContext old = MemoryContextSwitchTo(memo_mcxt);
		MemoExpr   *m = palloc(sizeof(MemoExpr));

		m->relid = relid;
		m->kind = pstrdup(kind);
		m->name = pstrdup(name);
		m->expression = pstrdup(result);
		m->search_path = pstrdup(path);
		memo_exprs = lappend(memo_exprs, m);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * The named expressions (kind "scope" or "stat") of relid, looked up in
 * order, as a list of QueryNamed in mcxt (SPI connected).
 */
static List *
named_expressions(Oid relid, const char *kind, List *names, MemoryContext mcxt)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, names)
	{
		QueryNamed *n = MemoryContextAlloc(mcxt, sizeof(QueryNamed));
		MemoryContext old;

		n->name = lfirst(lc);
		n->expression = lookup_expression(relid, kind, n->name, mcxt, &n->search_path);
		old = MemoryContextSwitchTo(mcxt);
		result = lappend(result, n);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * The search_path the named expressions were defined under, which the
 * query that uses them runs with (NULL when there are none): names in an
 * expression resolve as when its owner defined it, never in a schema the
 * reader's path puts first.  Expressions defined under different paths
 * cannot share a query.
 */
static char *
common_search_path(List *named)
{
	char	   *path = NULL;
	const char *first = NULL;
	ListCell   *lc;

	foreach(lc, named)
	{
		QueryNamed *n = lfirst(lc);

		if (path == NULL)
		{
			path = n->search_path;
			first = n->name;
		}
		else if (strcmp(path, n->search_path) != 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("\"%s\" and \"%s\" were defined under different search_paths", first, n->name),
					errdetail("\"%s\" under %s, \"%s\" under %s.", first, path, n->name, n->search_path),
					errhint("Define them again under one search_path."));
	}
	return path;
}

/* Append name to q's list under key (scopes, stats), after checking it. */
static Datum
add_named(FunctionCallInfo fcinfo, const char *key, const char *kind)
{
	QueryValue	qv;
	Jsonb	   *q = arg_query(fcinfo, &qv);
	Oid			relid = qv.relid;
	QueryAppend a;
	PgappJsonbBuilder *b;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			ret;
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", key));
	if (get_fn_expr_argtype(fcinfo->flinfo, 1) == TEXTOID)
	{
		elems = palloc(sizeof(Datum));
		nulls = palloc0(sizeof(bool));
		elems[0] = PG_GETARG_DATUM(1);
		n = 1;
	}
	else
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("%s must not contain nulls", key));
		(void) lookup_expression(relid, kind, TextDatumGetCString(elems[i]), caller, NULL);
	}
	SPI_finish();

	b = append_begin(&a, q, key);
	for (int i = 0; i < n; i++)
		pgapp_jsonb_add_string(b, TextDatumGetCString(elems[i]));
	PG_RETURN_JSONB_P(append_end(&a));
}

/* pgapp.scope(q, name text) -> pgapp.query */
PG_FUNCTION_INFO_V1(pgapp_scope);
Datum
pgapp_scope(PG_FUNCTION_ARGS)
{
	return add_named(fcinfo, "scopes", "scope");
}

/* pgapp.with_stats(q, stats text[]) -> pgapp.query */
PG_FUNCTION_INFO_V1(pgapp_with_stats);
Datum
pgapp_with_stats(PG_FUNCTION_ARGS)
{
	return add_named(fcinfo, "stats", "stat");
}

/* ---------------------------------------------------------------------
 * Preloads: related rows through foreign keys, in the same statement
 * ---------------------------------------------------------------------
 */

static char *
relation_name(bool many, Oid other, int ncols, char **fkcols, const char *conname)
{
	if (many)
		return pstrdup(get_rel_name(other));
	if (ncols == 1)
	{
		size_t		len = strlen(fkcols[0]);

		if (len > 3 && strcmp(fkcols[0] + len - 3, "_id") == 0)
			return pnstrdup(fkcols[0], len - 3);
		return pstrdup(get_rel_name(other));
	}
	return pstrdup(conname);
}

/*
 * Every relation of relid, from pg_constraint.  SPI connected.
 */
static List *
relations_of(Oid relid, MemoryContext mcxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	int			ret;
	List	   *result = NIL;

	args[0] = ObjectIdGetDatum(relid);
	ret = SPI_execute_with_args(
		"SELECT c.conrelid OPERATOR(pg_catalog.<>) $1 AS many,"
		"       CASE WHEN c.conrelid OPERATOR(pg_catalog.=) $1 THEN c.confrelid ELSE c.conrelid END AS other,"
		"       c.conname::pg_catalog.text,"
		"       ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(n, i)"
		"               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.conrelid"
		"                AND a.attnum OPERATOR(pg_catalog.=) k.n ORDER BY k.i) AS fk,"
		"       ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(n, i)"
		"               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.confrelid"
		"                AND a.attnum OPERATOR(pg_catalog.=) k.n ORDER BY k.i) AS pk,"
		"       ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_index x"
		"               CROSS JOIN LATERAL pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(n, i)"
		"               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) x.indrelid"
		"                AND a.attnum OPERATOR(pg_catalog.=) k.n"
		"              WHERE x.indrelid OPERATOR(pg_catalog.=) c.conrelid AND x.indisprimary"
		"              ORDER BY k.i) AS order_by"
		"  FROM pg_catalog.pg_constraint c"
		" WHERE c.contype OPERATOR(pg_catalog.=) 'f'"
		"   AND (c.conrelid OPERATOR(pg_catalog.=) $1 OR c.confrelid OPERATOR(pg_catalog.=) $1)"
		" ORDER BY c.conname",
		1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(mcxt);
		QueryRelation *r = palloc0(sizeof(QueryRelation));
		Datum	   *fk;
		Datum	   *pk;
		bool	   *nulls;
		int			nfk;
		int			npk;

		r->many = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
		r->other = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull)), TEXTOID, -1, false,
						  TYPALIGN_INT, &fk, &nulls, &nfk);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull)), TEXTOID, -1, false,
						  TYPALIGN_INT, &pk, &nulls, &npk);
		{
			Datum	   *ord;
			int			nord;

			deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 6, &isnull)), TEXTOID, -1, false,
							  TYPALIGN_INT, &ord, &nulls, &nord);
			r->norder = nord;
			r->order = palloc(sizeof(char *) * Max(nord, 1));
			for (int j = 0; j < nord; j++)
				r->order[j] = TextDatumGetCString(ord[j]);
		}
		r->ncols = nfk;
		r->local = palloc(sizeof(char *) * nfk);
		r->remote = palloc(sizeof(char *) * nfk);
		for (int j = 0; j < nfk; j++)
		{
			/* belongs to: source.fk = other.pk; has many: source.pk = other.fk */
			r->local[j] = TextDatumGetCString(r->many ? pk[j] : fk[j]);
			r->remote[j] = TextDatumGetCString(r->many ? fk[j] : pk[j]);
		}
		{
			char	  **fkcols = palloc(sizeof(char *) * nfk);

			for (int j = 0; j < nfk; j++)
				fkcols[j] = TextDatumGetCString(fk[j]);
			r->name = relation_name(r->many, r->other, nfk, fkcols, SPI_getvalue(tup, desc, 3));
		}
		result = lappend(result, r);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * Relations of each table, cached per backend: the catalog query behind them
 * is the most expensive part of building and running a query with
 * preloads.  Any relcache invalidation drops the whole cache (a foreign key
 * added or dropped invalidates both tables it joins).
 */
typedef struct RelationsEntry
{
	Oid			relid;			/* hash key */
	List	   *relations;
} RelationsEntry;

static HTAB *relations_cache = NULL;
static MemoryContext relations_mcxt = NULL;
static bool relations_stale = false;

/*
 * Only mark the cache stale: invalidations arrive whenever a catalog lock is
 * taken, possibly while a caller walks a cached list; the cache is dropped
 * at the next cached_relations() call instead.
 */
static void
relations_invalidate(Datum arg, Oid relid)
{
	relations_stale = true;
}

static void
query_init(void)
{
	CacheRegisterRelcacheCallback(relations_invalidate, (Datum) 0);
}

/* relations_of, through the cache.  SPI connected. */
static List *
cached_relations(Oid relid)
{
	RelationsEntry *e;
	bool		found;

	if (relations_stale && relations_mcxt != NULL)
	{
		/* the hash lives in relations_mcxt */
		MemoryContextDelete(relations_mcxt);
		relations_mcxt = NULL;
		relations_cache = NULL;
	}
	relations_stale = false;
	if (relations_cache == NULL)
	{
		HASHCTL		ctl = {0};

		relations_mcxt = AllocSetContextCreate(CacheMemoryContext, "pgapp query relations",
											   ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelationsEntry);
		ctl.hcxt = relations_mcxt;
		relations_cache = hash_create("pgapp query relations", 16, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(relations_cache, &relid, HASH_FIND, &found);
	if (found)
		return e->relations;
	{
		List	   *relations = relations_of(relid, relations_mcxt);

		e = hash_search(relations_cache, &relid, HASH_ENTER, &found);
		e->relations = relations;
		return relations;
	}
}

/* The relation called name, or 42704 listing the ones there are. */
static QueryRelation *
find_relation(Oid relid, List *relations, const char *name)
{
	ListCell   *lc;
	QueryRelation *found = NULL;
	StringInfoData known;

	initStringInfo(&known);
	foreach(lc, relations)
	{
		QueryRelation *r = lfirst(lc);

		appendStringInfo(&known, "%s%s", known.len ? ", " : "", r->name);
		if (strcmp(r->name, name) == 0)
		{
			if (found != NULL)
				ereport(ERROR,
						errcode(ERRCODE_AMBIGUOUS_PARAMETER),
						errmsg("relation \"%s\" of %s is ambiguous", name, get_rel_name(relid)),
						errdetail("More than one foreign key gives that name."));
			found = r;
		}
	}
	if (found == NULL)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("relation \"%s\" of %s does not exist", pgapp_echo(name), get_rel_name(relid)),
				known.len ? errdetail("Relations through foreign keys: %s.", known.data)
				: errdetail("No foreign key refers to or from %s.", get_rel_name(relid)));
	return found;
}

/* pgapp.preload(q, relations text[]) -> pgapp.query */
PG_FUNCTION_INFO_V1(pgapp_preload);
Datum
pgapp_preload(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = arg_query(fcinfo, &qv);
	Oid			relid = qv.relid;
	QueryAppend a;
	PgappJsonbBuilder *b;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			ret;
	List	   *relations;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("relations must not be null"));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	relations = cached_relations(relid);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("relations must not contain nulls"));
		(void) find_relation(relid, relations, TextDatumGetCString(elems[i]));
	}
	SPI_finish();

	b = append_begin(&a, q, "preload");
	for (int i = 0; i < n; i++)
		pgapp_jsonb_add_string(b, TextDatumGetCString(elems[i]));
	PG_RETURN_JSONB_P(append_end(&a));
}

/* ---------------------------------------------------------------------
 * SQL
 * ---------------------------------------------------------------------
 */

/*
 * "OPERATOR(schema.op)" for the column type's btree operator of strategy
 * (=, >=, <=), found through the type cache rather than by name, so that
 * the search path cannot substitute another operator and indexes apply.
 */
static char *
btree_operator(Oid typid, int16 strategy)
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

static void
sql_init(QuerySql *qs)
{
	initStringInfo(&qs->sql);
	qs->nparams = 0;
	qs->maxparams = 8;
	qs->types = palloc(sizeof(Oid) * qs->maxparams);
	qs->values = palloc(sizeof(Datum) * qs->maxparams);
}

/* Add a parameter of type typid and append its $n. */
static void
sql_param(QuerySql *qs, Oid typid, Datum value)
{
	if (qs->nparams == qs->maxparams)
	{
		qs->maxparams *= 2;
		qs->types = repalloc(qs->types, sizeof(Oid) * qs->maxparams);
		qs->values = repalloc(qs->values, sizeof(Datum) * qs->maxparams);
	}
	qs->types[qs->nparams] = typid;
	qs->values[qs->nparams] = value;
	qs->nparams++;
	appendStringInfo(&qs->sql, "$%d", qs->nparams);
}

/*
 * " WHERE ..." for the conditions of qv (nothing when there are none).
 * Every identifier comes from the catalog and is quoted; every value is a
 * parameter of its column's type.
 */
static void
sql_where(QuerySql *qs, QueryValue *qv)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, qv->conds)
	{
		QueryCond  *c = lfirst(lc);
		const char *col = c->op == QOP_SEARCH ? NULL : quote_identifier(c->f.name);

		CHECK_FOR_INTERRUPTS();
		appendStringInfoString(&qs->sql, i++ == 0 ? " WHERE " : " AND ");
		switch (c->op)
		{
			case QOP_SEARCH:
				appendStringInfoChar(&qs->sql, '(');
				for (int j = 0; j < c->nfields; j++)
				{
					appendStringInfo(&qs->sql, "%st.%s::pg_catalog.text OPERATOR(pg_catalog.~~*) ",
									 j ? " OR " : "", quote_identifier(c->fields[j].name));
					sql_param(qs, TEXTOID, c->pattern);
				}
				appendStringInfoChar(&qs->sql, ')');
				break;
			case QOP_NULL:
				appendStringInfo(&qs->sql, "t.%s IS NULL", col);
				break;
			case QOP_EQ:
				appendStringInfo(&qs->sql, "t.%s %s ", col, c->eq_op);
				sql_param(qs, c->f.typid, c->value);
				break;
			case QOP_IN:
				appendStringInfo(&qs->sql, "t.%s %s ANY (", col, c->eq_op);
				sql_param(qs, c->arraytype, c->values);
				appendStringInfoChar(&qs->sql, ')');
				break;
			case QOP_RANGE:
				/* query_read made sure of at least one end */
				appendStringInfoChar(&qs->sql, '(');
				if (c->has_from)
				{
					appendStringInfo(&qs->sql, "t.%s %s ", col, c->ge_op);
					sql_param(qs, c->f.typid, c->from);
				}
				if (c->has_from && c->has_to)
					appendStringInfoString(&qs->sql, " AND ");
				if (c->has_to)
				{
					appendStringInfo(&qs->sql, "t.%s %s ", col, c->le_op);
					sql_param(qs, c->f.typid, c->to);
				}
				appendStringInfoChar(&qs->sql, ')');
				break;
		}
	}
}

/* " ORDER BY ..." (nothing when unsorted); prefix qualifies the columns. */
static void
sql_order(StringInfo sql, QueryValue *qv, const char *prefix)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, qv->orders)
	{
		QueryOrder *o = lfirst(lc);

		appendStringInfo(sql, "%s%s%s %s NULLS %s", i++ == 0 ? " ORDER BY " : ", ", prefix,
						 quote_identifier(o->f.name), o->desc ? "DESC" : "ASC",
						 o->nulls_first ? "FIRST" : "LAST");
	}
}

static char *
qualified(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

/*
 * " FROM source AS t WHERE ..." (filters and scopes) into qs.
 * *select_extra gets the expression that extends to_jsonb(t) with stats and
 * preloads (or NULL), *laterals the LEFT JOIN LATERAL clauses of the
 * preloads (or ""): the caller applies them to the rows it keeps (a page),
 * not to every row that matches.
 */
static void
sql_from_where(QuerySql *qs, QueryValue *qv, char **select_extra, char **laterals)
{
	StringInfoData extra;
	StringInfoData lat;
	ListCell   *lc;
	int			i = 0;

	initStringInfo(&extra);
	initStringInfo(&lat);
	foreach(lc, qv->stats)
	{
		QueryNamed *s = lfirst(lc);

		appendStringInfo(&extra, "%s%s, (%s)", extra.len ? ", " : "",
						 quote_literal_cstr(s->name), s->expression);
	}
	appendStringInfo(&qs->sql, " FROM %s AS t", qualified(qv->relid));
	foreach(lc, qv->preloads)
	{
		QueryRelation *r = lfirst(lc);
		StringInfoData value;

		i++;
		initStringInfo(&value);
		if (r->many)
		{
			appendStringInfo(&value, "COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r%d)", i);
			for (int j = 0; j < r->norder; j++)
				appendStringInfo(&value, "%sr%d.%s", j ? ", " : " ORDER BY ", i, quote_identifier(r->order[j]));
			appendStringInfoString(&value, "), '[]'::pg_catalog.jsonb)");
		}
		else
			appendStringInfo(&value, "pg_catalog.to_jsonb(r%d)", i);
		appendStringInfo(&lat, " LEFT JOIN LATERAL (SELECT %s AS pgapp_preload FROM %s AS r%d WHERE ",
						 value.data, qualified(r->other), i);
		for (int j = 0; j < r->ncols; j++)
			appendStringInfo(&lat, "%sr%d.%s %s t.%s", j ? " AND " : "", i,
							 quote_identifier(r->remote[j]),
							 btree_operator(get_atttype(r->other, get_attnum(r->other, r->remote[j])),
											BTEqualStrategyNumber),
							 quote_identifier(r->local[j]));
		appendStringInfo(&lat, ") AS p%d ON true", i);
		appendStringInfo(&extra, "%s%s, p%d.pgapp_preload", extra.len ? ", " : "", quote_literal_cstr(r->name), i);
	}
	sql_where(qs, qv);
	i = 0;
	foreach(lc, qv->scopes)
	{
		QueryNamed *s = lfirst(lc);

		appendStringInfo(&qs->sql, "%s(%s)", qv->conds == NIL && i == 0 ? " WHERE " : " AND ", s->expression);
		i++;
	}
	if (select_extra != NULL)
		*select_extra = extra.len ? extra.data : NULL;
	if (laterals != NULL)
		*laterals = lat.data;
}

/* A keyset page: its key columns, the cursor's values (NULL: first page). */
typedef struct Keyset
{
	List	   *keys;			/* QueryField * */
	Datum	   *after;
	bool		descending;
} Keyset;

/*
 * SELECT over a page: the rows are chosen (filters, scopes, order, limit,
 * offset) in an inner query, and only they get stats and preloads:
 *
 *	SELECT to_jsonb(t) || {stats, preloads} [, total]
 *	  FROM (SELECT t.* [, count(*) OVER () AS pgapp_total] FROM src AS t
 *			WHERE ... ORDER BY ... LIMIT ... OFFSET ...) AS t
 *	  LEFT JOIN LATERAL (...) ... ORDER BY ...
 *
 * keys, when given, are appended to the select list as a jsonb array of
 * their text (keyset cursors).
 */
static void
sql_select_rows(QuerySql *qs, QueryValue *qv, bool with_total, int64 limit, int64 offset, Keyset *ks)
{
	QuerySql	from;
	char	   *extra;
	char	   *laterals;
	StringInfoData order;
	StringInfoData keys_select;
	ListCell   *lc;
	int			i = 0;

	sql_init(&from);
	sql_from_where(&from, qv, &extra, &laterals);
	initStringInfo(&order);
	initStringInfo(&keys_select);
	if (ks == NULL)
		sql_order(&order, qv, "t.");
	else
	{
		/* the keys in one direction; their text makes the next cursor */
		appendStringInfoString(&keys_select, "pg_catalog.jsonb_build_array(");
		foreach(lc, ks->keys)
		{
			const char *col = quote_identifier(((QueryField *) lfirst(lc))->name);

			appendStringInfo(&order, "%st.%s %s", i ? ", " : " ORDER BY ", col,
							 ks->descending ? "DESC" : "ASC");
			appendStringInfo(&keys_select, "%st.%s::pg_catalog.text", i ? ", " : "", col);
			i++;
		}
		appendStringInfoString(&keys_select, ")::pg_catalog.text");
	}

	sql_init(qs);
	appendStringInfoString(&qs->sql, "SELECT pg_catalog.to_jsonb(t)");
	if (with_total)
		appendStringInfoString(&qs->sql, " OPERATOR(pg_catalog.-) 'pgapp_total'::pg_catalog.text");
	if (extra != NULL)
		appendStringInfo(&qs->sql, " OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(%s)", extra);
	if (with_total)
		appendStringInfoString(&qs->sql, ", t.pgapp_total");
	if (ks != NULL)
		appendStringInfo(&qs->sql, ", %s", keys_select.data);
	appendStringInfo(&qs->sql, " FROM (SELECT t.*%s%s",
					 with_total ? ", pg_catalog.count(*) OVER () AS pgapp_total" : "", from.sql.data);
	/* parameters of the inner query come first, in order */
	qs->nparams = from.nparams;
	qs->maxparams = from.maxparams;
	qs->types = from.types;
	qs->values = from.values;
	if (ks != NULL && ks->after != NULL)
	{
		/* row comparison: exactly "after" for NOT NULL keys in one direction */
		appendStringInfo(&qs->sql, "%s(", qv->conds != NIL || qv->scopes != NIL ? " AND " : " WHERE ");
		i = 0;
		foreach(lc, ks->keys)
			appendStringInfo(&qs->sql, "%st.%s", i++ ? ", " : "",
							 quote_identifier(((QueryField *) lfirst(lc))->name));
		appendStringInfo(&qs->sql, ") OPERATOR(pg_catalog.%s) (", ks->descending ? "<" : ">");
		i = 0;
		foreach(lc, ks->keys)
		{
			QueryField *k = lfirst(lc);

			if (i)
				appendStringInfoString(&qs->sql, ", ");
			sql_param(qs, k->typid, ks->after[i]);
			i++;
		}
		appendStringInfoChar(&qs->sql, ')');
	}
	appendStringInfoString(&qs->sql, order.data);
	if (limit >= 0)
	{
		appendStringInfoString(&qs->sql, " LIMIT ");
		sql_param(qs, INT8OID, Int64GetDatum(limit));
	}
	if (offset > 0)
	{
		appendStringInfoString(&qs->sql, " OFFSET ");
		sql_param(qs, INT8OID, Int64GetDatum(offset));
	}
	appendStringInfo(&qs->sql, ") AS t%s%s", laterals, order.data);
}

/* ---------------------------------------------------------------------
 * Kept plans: at most MAX_CACHED_PLANS and pgapp.query_cache_memory
 * ---------------------------------------------------------------------
 */

/*
 * The memory a kept plan holds: the SPI plan's own context, and for each
 * of its CachedPlanSources the source context (with the analyzed queries
 * under it) and the generic plan's context, once there is one.
 */
static Size
plan_bytes(SPIPlanPtr plan)
{
	Size		bytes = 0;
	ListCell   *lc;

	if (plan->plancxt != NULL)
		bytes += MemoryContextMemAllocated(plan->plancxt, true);
	foreach(lc, plan->plancache_list)
	{
		CachedPlanSource *ps = lfirst(lc);

		if (ps->context != NULL)
			bytes += MemoryContextMemAllocated(ps->context, true);
		if (ps->query_context != NULL && ps->query_context->parent != ps->context)
			bytes += MemoryContextMemAllocated(ps->query_context, true);
		if (ps->gplan != NULL && ps->gplan->context != NULL)
			bytes += MemoryContextMemAllocated(ps->gplan->context, true);
	}
	return bytes;
}

static void
plan_forget(PlanEntry *e)
{
	dlist_delete(&e->lru);
	plans_bytes -= e->bytes;
	SPI_freeplan(e->plan);
	pfree(e->sql);
	hash_search(plans, &e->key, HASH_REMOVE, NULL);
}

/*
 * Measure entry again and evict least recently used plans past the caps.
 * A plan that is running (a scope or stat may itself run a query) stays.
 */
static void
plans_enforce(PlanEntry *entry)
{
	Size		cap = (Size) pgapp_query_cache_memory * 1024;
	Size		doomed = 0;		/* a running plan that will not be kept */
	dlist_node *node;

	if (entry != NULL)
	{
		plans_bytes -= entry->bytes;
		entry->bytes = plan_bytes(entry->plan);
		plans_bytes += entry->bytes;
		/* a plan larger than the cap alone is not kept ... */
		if (entry->bytes > cap && entry->running == 0)
			plan_forget(entry);
		/* ... nor does it push out the others while it runs */
		else if (entry->bytes > cap)
			doomed = entry->bytes;
	}
	node = dlist_is_empty(&plans_lru) ? NULL : dlist_tail_node(&plans_lru);
	while (node != NULL && (plans_bytes - doomed > cap || hash_get_num_entries(plans) > MAX_CACHED_PLANS))
	{
		PlanEntry  *e = dlist_container(PlanEntry, lru, node);

		node = dlist_has_prev(&plans_lru, node) ? dlist_prev_node(&plans_lru, node) : NULL;
		if (e->running == 0)
			plan_forget(e);
	}
}

/*
 * Execute qs read-only with a kept plan from the per-backend cache, under
 * search_path when it is not NULL (that of the query's scopes and stats).
 * The caller is connected to SPI.
 */
static void
sql_execute(QuerySql *qs, long count, const char *search_path)
{
	PlanKey		key;
	PlanEntry  *entry = NULL;
	bool		found;
	SPIPlanPtr	plan;
	int			ret;
	int			guc_level = -1;

	if (search_path != NULL)
	{
		/* undone below, or by the (sub)transaction's abort on an error */
		guc_level = NewGUCNestLevel();
		(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}

	if (plans == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = sizeof(PlanKey);
		ctl.entrysize = sizeof(PlanEntry);
		ctl.hcxt = TopMemoryContext;
		plans = hash_create("pgapp query plans", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.hash = string_hash(qs->sql.data, qs->sql.len + 1);
	key.len = qs->sql.len;
	entry = hash_search(plans, &key, HASH_FIND, &found);
	if (found && strcmp(entry->sql, qs->sql.data) == 0)
	{
		plan = entry->plan;
		dlist_move_head(&plans_lru, &entry->lru);
	}
	else
	{
		plan = SPI_prepare(qs->sql.data, qs->nparams, qs->types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (found || pgapp_query_cache_memory <= 0)
			entry = NULL;		/* a hash collision, or no cache: run it uncached */
		else
		{
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed");
			entry = hash_search(plans, &key, HASH_ENTER, &found);
			entry->sql = MemoryContextStrdup(TopMemoryContext, qs->sql.data);
			entry->plan = plan;
			entry->bytes = 0;
			entry->running = 0;
			dlist_push_head(&plans_lru, &entry->lru);
		}
	}
	if (entry != NULL)
	{
		entry->running++;

		/*
		 * Measured and capped before it runs, too: a statement that fails
		 * (no SELECT right, a timeout) never reaches the measure below, and
		 * unmeasured plans would pile up past both caps.
		 */
		plans_enforce(entry);
	}
	PG_TRY();
	{
		ret = SPI_execute_plan(plan, qs->values, NULL, true, count);
	}
	PG_FINALLY();
	{
		if (entry != NULL)
			entry->running--;
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (entry == NULL)
		SPI_freeplan(plan);
	/* measured after running: the generic plan is made by then */
	plans_enforce(entry);
	if (guc_level >= 0)
		AtEOXact_GUC(true, guc_level);
}

/*
 * pgapp.query_cache_stats() -> (entries, bytes, max_entries, max_bytes):
 * the kept plans of the calling backend, and their caps.
 */
PG_FUNCTION_INFO_V1(pgapp_query_cache_stats);
Datum
pgapp_query_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (plans != NULL)
		plans_enforce(NULL);	/* the cap may have been lowered since */
	values[0] = Int32GetDatum(plans ? (int32) hash_get_num_entries(plans) : 0);
	values[1] = Int64GetDatum((int64) plans_bytes);
	values[2] = Int32GetDatum(MAX_CACHED_PLANS);
	values[3] = Int64GetDatum((int64) pgapp_query_cache_memory * 1024);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---------------------------------------------------------------------
 * Executors
 * ---------------------------------------------------------------------
 */

/*
 * The query's rows as a jsonb array, in its order.  limit/offset < 0: none.
 */
static Jsonb *
run_rows(QueryValue *qv, int64 limit, int64 offset, int64 *total)
{
	QuerySql	qs;
	int			ret;
	PgappJsonbBuilder b = {0};
	Jsonb	   *result;
	MemoryContext caller = CurrentMemoryContext;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	sql_select_rows(&qs, qv, total != NULL, limit, offset, NULL);
	sql_execute(&qs, 0, qv->search_path);

	MemoryContextSwitchTo(caller);
	pgapp_jsonb_begin_array(&b);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		CHECK_FOR_INTERRUPTS();
		pgapp_jsonb_add_jsonb(&b, DatumGetJsonbP(d));
		if (total != NULL && i == 0)
			*total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	pgapp_jsonb_end_array(&b);
	result = pgapp_jsonb_finish(&b);
	if (total != NULL && SPI_processed == 0)
		*total = -1;			/* unknown: past the end, or nothing matches */
	SPI_finish();
	return result;
}

static int64
run_count(QueryValue *qv)
{
	QuerySql	qs;
	int			ret;
	bool		isnull;
	int64		n;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	sql_init(&qs);
	appendStringInfoString(&qs.sql, "SELECT pg_catalog.count(*)");
	/* preloads and stats do not change the count: no laterals */
	sql_from_where(&qs, qv, NULL, NULL);
	sql_execute(&qs, 1, qv->search_path);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return n;
}

/* pgapp.all(q) -> jsonb: every row, as an array. */
PG_FUNCTION_INFO_V1(pgapp_all);
Datum
pgapp_all(PG_FUNCTION_ARGS)
{
	QueryValue	qv;

	(void) arg_query(fcinfo, &qv);
	PG_RETURN_JSONB_P(run_rows(&qv, -1, 0, NULL));
}

/* pgapp.one(q) -> jsonb: the first row, or NULL. */
PG_FUNCTION_INFO_V1(pgapp_one);
Datum
pgapp_one(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *rows;

	(void) arg_query(fcinfo, &qv);
	rows = run_rows(&qv, 1, 0, NULL);
	if (JB_ROOT_COUNT(rows) == 0)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(pgapp_jsonb_from_value(getIthJsonbValueFromContainer(&rows->root, 0)));
}

/* pgapp.count(q) -> bigint */
PG_FUNCTION_INFO_V1(pgapp_count);
Datum
pgapp_count(PG_FUNCTION_ARGS)
{
	QueryValue	qv;

	(void) arg_query(fcinfo, &qv);
	PG_RETURN_INT64(run_count(&qv));
}

/*
 * pgapp.paginate(q, page int, page_size int) -> jsonb
 * {"entries", "total", "page", "page_size", "total_pages"}, entries and
 * total from one scan (count(*) OVER ()); a page past the end counts apart.
 */
PG_FUNCTION_INFO_V1(pgapp_paginate);
Datum
pgapp_paginate(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	int32		page;
	int32		page_size;
	int64		total;
	Jsonb	   *entries;
	PgappJsonbBuilder b = {0};

	(void) arg_query(fcinfo, &qv);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(1) ? "page" : "page_size"));
	page = PG_GETARG_INT32(1);
	page_size = PG_GETARG_INT32(2);
	if (page < 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("page must be at least 1, not %d", page));
	if (page_size < 1 || page_size > pgapp_query_max_page_size)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("page_size must be between 1 and %d, not %d", pgapp_query_max_page_size, page_size),
				errhint("The upper bound is the setting \"pgapp.query_max_page_size\"."));

	entries = run_rows(&qv, page_size, (int64) (page - 1) * page_size, &total);
	if (total < 0)
		total = page == 1 ? 0 : run_count(&qv);

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "entries");
	pgapp_jsonb_add_jsonb(&b, entries);
	pgapp_jsonb_key(&b, "total");
	pgapp_jsonb_add_int(&b, total);
	pgapp_jsonb_key(&b, "page");
	pgapp_jsonb_add_int(&b, page);
	pgapp_jsonb_key(&b, "page_size");
	pgapp_jsonb_add_int(&b, page_size);
	pgapp_jsonb_key(&b, "total_pages");
	pgapp_jsonb_add_int(&b, (total + page_size - 1) / page_size);
	pgapp_jsonb_end_object(&b);
	PG_RETURN_JSONB_P(pgapp_jsonb_finish(&b));
}

/*
 * pgapp.to_sql(q) -> text: the statement pgapp.all runs (one row of jsonb
 * per source row), with its parameters listed in a trailing comment.
 */
PG_FUNCTION_INFO_V1(pgapp_to_sql);
Datum
pgapp_to_sql(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	QuerySql	qs;
	text	   *result;

	(void) arg_query(fcinfo, &qv);
	sql_select_rows(&qs, &qv, false, -1, 0, NULL);
	if (qs.nparams > 0)
	{
		appendStringInfoString(&qs.sql, "\n-- parameters:");
		for (int i = 0; i < qs.nparams; i++)
		{
			Oid			typoutput;
			bool		isvarlena;

			CHECK_FOR_INTERRUPTS();
			getTypeOutputInfo(qs.types[i], &typoutput, &isvarlena);
			appendStringInfo(&qs.sql, " $%d = %s::%s", i + 1,
							 quote_literal_cstr(OidOutputFunctionCall(typoutput, qs.values[i])),
							 format_type_be(qs.types[i]));
			if (i + 1 < qs.nparams)
				appendStringInfoChar(&qs.sql, ',');
		}
	}
	result = cstring_to_text(qs.sql.data);
	PG_RETURN_TEXT_P(result);
}

/* ---------------------------------------------------------------------
 * Keyset pagination
 * ---------------------------------------------------------------------
 */


/*
 * The keyset of qv: its sort fields, then the primary key columns not
 * already sorted on (a unique tie-breaker), all in one direction and NOT
 * NULL, so "(keys) > (cursor)" is exactly "after the cursor".
 */
static List *
keyset_columns(QueryValue *qv, bool *descending)
{
	List	   *keys = NIL;
	bool		have_dir = false;
	bool		desc = false;
	Relation	rel;
	Bitmapset  *pk = NULL;
	int			attr = -1;
	ListCell   *lc;

	foreach(lc, qv->orders)
	{
		QueryOrder *o = lfirst(lc);

		if (have_dir && o->desc != desc)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("keyset pagination needs every sort in the same direction"),
					errhint("Sort all fields asc, or all desc, or use pgapp.paginate."));
		desc = o->desc;
		have_dir = true;
		keys = lappend(keys, &o->f);
	}
	*descending = desc;

	rel = relation_open(qv->relid, AccessShareLock);
	if (rel->rd_rel->relkind == RELKIND_RELATION || rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	while ((attr = bms_next_member(pk, attr)) >= 0)
	{
		AttrNumber	attnum = attr + FirstLowInvalidHeapAttributeNumber;
		char	   *name = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
		bool		have = false;

		foreach(lc, keys)
			have |= (((QueryField *) lfirst(lc))->attnum == attnum);
		if (!have)
		{
			QueryField *k = palloc0(sizeof(QueryField));

			resolve_field(qv->relid, pstrdup(name), k);
			keys = lappend(keys, k);
		}
	}
	if (pk == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("keyset pagination needs a primary key on %s", RelationGetRelationName(rel)),
				errdetail("The primary key breaks ties between rows with the same sort values."));
	foreach(lc, keys)
	{
		QueryField *k = lfirst(lc);

		if (!TupleDescAttr(RelationGetDescr(rel), k->attnum - 1)->attnotnull)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("keyset pagination cannot sort on \"%s\", which may be null", k->name),
					errhint("Sort on NOT NULL columns, or use pgapp.paginate."));
	}
	relation_close(rel, AccessShareLock);
	return keys;
}

static char *
encode_cursor(const char *json)
{
	int			len = strlen(json);
	char	   *out = palloc(pg_b64_enc_len(len) + 1);
	int			n = pg_b64_encode(json, len, out, pg_b64_enc_len(len));

	if (n < 0)
		elog(ERROR, "could not encode cursor");
	out[n] = '\0';
	return out;
}

/* The key values of a cursor, each in its column's type. */
static Datum *
decode_cursor(const char *cursor, List *keys)
{
	int			nkeys = list_length(keys);
	int			len = strlen(cursor);
	char	   *json = palloc(pg_b64_dec_len(len) + 1);
	int			n = pg_b64_decode(cursor, len, json, pg_b64_dec_len(len));
	Jsonb	   *jb = NULL;
	Datum	   *values;
	PgappSubxact sx;

	if (n < 0)
		goto bad;
	json[n] = '\0';
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		FreeErrorData(pgapp_subxact_abort(&sx));
		jb = NULL;
	}
	PG_END_TRY();
	if (jb == NULL || !JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb) || JB_ROOT_COUNT(jb) != nkeys)
		goto bad;
	values = palloc(sizeof(Datum) * Max(nkeys, 1));
	for (int i = 0; i < nkeys; i++)
	{
		char	   *text = pgapp_jsonb_value_cstring(getIthJsonbValueFromContainer(&jb->root, i));

		if (text == NULL)
			goto bad;
		values[i] = column_input(text, ((QueryField *) list_nth(keys, i))->typid);
	}
	return values;

bad:
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("invalid cursor \"%s\"", pgapp_echo(cursor)),
			errhint("Pass the \"after\" value of the previous page, unchanged, for the same query."));
	return NULL;				/* keep compiler quiet */
}

/*
 * pgapp.paginate_after(q, after text, page_size int) -> jsonb
 * {"entries", "page_size", "after"}: the page after the cursor (the first
 * page when after is NULL), and the cursor of the next page, or null at
 * the end.  Deep pages cost the same as the first: no OFFSET.
 */
PG_FUNCTION_INFO_V1(pgapp_paginate_after);
Datum
pgapp_paginate_after(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	char	   *after = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		page_size;
	QuerySql	qs;
	int			ret;
	Keyset		ks;
	PgappJsonbBuilder b = {0};
	char	   *next = NULL;
	Jsonb	   *result;
	MemoryContext caller = CurrentMemoryContext;

	(void) arg_query(fcinfo, &qv);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("page_size must not be null"));
	page_size = PG_GETARG_INT32(2);
	if (page_size < 1 || page_size > pgapp_query_max_page_size)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("page_size must be between 1 and %d, not %d", pgapp_query_max_page_size, page_size),
				errhint("The upper bound is the setting \"pgapp.query_max_page_size\"."));

	ks.keys = keyset_columns(&qv, &ks.descending);
	ks.after = after ? decode_cursor(after, ks.keys) : NULL;
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	sql_select_rows(&qs, &qv, false, (int64) page_size + 1, 0, &ks);
	sql_execute(&qs, 0, qv.search_path);

	MemoryContextSwitchTo(caller);
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "entries");
	pgapp_jsonb_begin_array(&b);
	for (uint64 r = 0; r < SPI_processed && r < (uint64) page_size; r++)
	{
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		pgapp_jsonb_add_jsonb(&b, DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)));
		if (r == (uint64) page_size - 1 && SPI_processed > (uint64) page_size)
			next = encode_cursor(SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2));
	}
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_key(&b, "page_size");
	pgapp_jsonb_add_int(&b, page_size);
	pgapp_jsonb_key(&b, "after");
	if (next)
		pgapp_jsonb_add_string(&b, next);
	else
		pgapp_jsonb_add_null(&b);
	pgapp_jsonb_end_object(&b);
	result = pgapp_jsonb_finish(&b);
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}

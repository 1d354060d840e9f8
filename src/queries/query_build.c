/*-------------------------------------------------------------------------
 *
 * query_build.c
 *	  The builders of a pgapp.query value: from, filter_by, filter_range,
 *	  search, sort_by, scope, with_stats, preload.
 *
 * Each builder reads the value it is given (pgapp_query_read), resolves
 * the fields it adds against the catalog and stores values as text in the
 * column's own type (cast through the column type's input function), so a
 * bad field or value fails at once, and returns the value with one more
 * element appended.
 *
 * src/queries/query_build.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "query_int.h"

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
	QueryAppend *a = (QueryAppend *) arg;

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
	pgapp_jsonb_add_string(&b, pgapp_qualified_relname(relid));
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
	Jsonb	   *q = pgapp_query_arg(fcinfo, &qv);
	Oid			relid = qv.relid;
	PgappColumn f;
	QueryAppend a;
	PgappJsonbBuilder *b;
	Oid			valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	pgapp_query_column(relid, pgapp_arg_cstring(fcinfo, 1, "field"), &f);
	if (!PG_ARGISNULL(2))
		(void) pgapp_query_btree_operator(f.typid, BTEqualStrategyNumber);	/* 42883 now, not when
																			 * it runs */
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
			pgapp_jsonb_add_string(b, pgapp_query_value_as_text(elems[i], elemtype, &f));
		}
		pgapp_jsonb_end_array(b);
	}
	else
	{
		pgapp_jsonb_key(b, "op");
		pgapp_jsonb_add_string(b, "eq");
		pgapp_jsonb_key(b, "value");
		pgapp_jsonb_add_string(b, pgapp_query_value_as_text(PG_GETARG_DATUM(2), valtype, &f));
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
	Jsonb	   *q = pgapp_query_arg(fcinfo, &qv);
	Oid			relid = qv.relid;
	PgappColumn f;
	QueryAppend a;
	PgappJsonbBuilder *b;
	Oid			valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	pgapp_query_column(relid, pgapp_arg_cstring(fcinfo, 1, "field"), &f);
	if (f.category != TYPCATEGORY_NUMERIC && f.category != TYPCATEGORY_DATETIME)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("function \"%s\" applies to numeric, date and time columns, but \"%s\" is of type %s",
					   "pgapp.filter_range",
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
		pgapp_jsonb_add_string(b, pgapp_query_value_as_text(PG_GETARG_DATUM(2), valtype, &f));
	pgapp_jsonb_key(b, "to");
	if (PG_ARGISNULL(3))
		pgapp_jsonb_add_null(b);
	else
		pgapp_jsonb_add_string(b, pgapp_query_value_as_text(PG_GETARG_DATUM(3), valtype, &f));
	pgapp_jsonb_end_object(b);
	PG_RETURN_JSONB_P(append_end(&a));
}

PG_FUNCTION_INFO_V1(pgapp_escape_like);
Datum
pgapp_escape_like(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(pgapp_query_escape_like(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
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
	Jsonb	   *q = pgapp_query_arg(fcinfo, &qv);
	Oid			relid = qv.relid;
	char	   *term;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	QueryAppend a;
	PgappJsonbBuilder *b;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("fields must not be null"));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("function \"%s\" needs at least one field", "pgapp.search"));
	for (int i = 0; i < n; i++)
	{
		PgappColumn f;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("fields must not contain nulls"));
		pgapp_query_column(relid, TextDatumGetCString(elems[i]), &f);
		if (f.category != TYPCATEGORY_STRING)
			ereport(ERROR,
					errcode(ERRCODE_DATATYPE_MISMATCH),
					errmsg("function \"%s\" applies to text columns, but \"%s\" is of type %s",
						   "pgapp.search",
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
 * pgapp.sort_by(q, field text, direction text DEFAULT 'asc')
 * direction: asc | desc, optionally followed by "nulls first" / "nulls last".
 */
PG_FUNCTION_INFO_V1(pgapp_sort_by);
Datum
pgapp_sort_by(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = pgapp_query_arg(fcinfo, &qv);
	Oid			relid = qv.relid;
	char	   *field = pgapp_arg_cstring(fcinfo, 1, "field");
	char	   *direction = PG_ARGISNULL(2) ? pstrdup("asc") : text_to_cstring(PG_GETARG_TEXT_PP(2));
	const char *dir = NULL;
	const char *nulls = NULL;
	List	   *words;
	ListCell   *lc;
	QueryAppend a;
	PgappJsonbBuilder *b;
	PgappColumn f;

	pgapp_query_check_sortable(relid, pgapp_query_sortable_fields(relid), field);
	pgapp_query_column(relid, field, &f);

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

/* Append name to q's list under key (scopes, stats), after checking it. */
static Datum
add_named(FunctionCallInfo fcinfo, const char *key, const char *kind)
{
	QueryValue	qv;
	Jsonb	   *q = pgapp_query_arg(fcinfo, &qv);
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
		(void) pgapp_query_lookup_expression(relid, kind, TextDatumGetCString(elems[i]), caller, NULL);
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

/* pgapp.preload(q, relations text[]) -> pgapp.query */
PG_FUNCTION_INFO_V1(pgapp_preload);
Datum
pgapp_preload(PG_FUNCTION_ARGS)
{
	QueryValue	qv;
	Jsonb	   *q = pgapp_query_arg(fcinfo, &qv);
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
	relations = pgapp_query_cached_relations(relid);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("relations must not contain nulls"));
		(void) pgapp_query_find_relation(relid, relations, TextDatumGetCString(elems[i]));
	}
	SPI_finish();

	b = append_begin(&a, q, "preload");
	for (int i = 0; i < n; i++)
		pgapp_jsonb_add_string(b, TextDatumGetCString(elems[i]));
	PG_RETURN_JSONB_P(append_end(&a));
}

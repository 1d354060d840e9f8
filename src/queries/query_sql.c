/*-------------------------------------------------------------------------
 *
 * query_sql.c
 *	  The SQL of a read pgapp.query value.
 *
 * Built from what pgapp_query_read returned, never from the jsonb:
 * identifiers come from the catalog and are quoted, values are always
 * bound parameters typed as their column, never spliced, and operators
 * are the column type's own btree operators, schema-qualified.
 *
 * src/queries/query_sql.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "core/util.h"
#include "query_int.h"


void
pgapp_query_sql_init(QuerySql *qs)
{
	initStringInfo(&qs->sql);
	qs->nparams = 0;
	qs->maxparams = 8;
	qs->types = palloc(sizeof(Oid) * qs->maxparams);
	qs->values = palloc(sizeof(Datum) * qs->maxparams);
}

/* Add a parameter of type typid and append its $n. */
void
pgapp_query_sql_param(QuerySql *qs, Oid typid, Datum value)
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

/* A search: the pattern against any of its fields, as text. */
static void
sql_search(QuerySql *qs, QueryCond *c)
{
	appendStringInfoChar(&qs->sql, '(');
	for (int j = 0; j < c->nfields; j++)
	{
		appendStringInfo(&qs->sql, "%st.%s::pg_catalog.text OPERATOR(pg_catalog.~~*) ",
						 j ? " OR " : "", quote_identifier(c->fields[j].name));
		pgapp_query_sql_param(qs, TEXTOID, c->pattern);
	}
	appendStringInfoChar(&qs->sql, ')');
}

/* A range: its ends, inclusive (pgapp_query_read made sure of one). */
static void
sql_range(QuerySql *qs, QueryCond *c, const char *col)
{
	appendStringInfoChar(&qs->sql, '(');
	if (c->has_from)
	{
		appendStringInfo(&qs->sql, "t.%s %s ", col, c->ge_op);
		pgapp_query_sql_param(qs, c->f.typid, c->from);
	}
	if (c->has_from && c->has_to)
		appendStringInfoString(&qs->sql, " AND ");
	if (c->has_to)
	{
		appendStringInfo(&qs->sql, "t.%s %s ", col, c->le_op);
		pgapp_query_sql_param(qs, c->f.typid, c->to);
	}
	appendStringInfoChar(&qs->sql, ')');
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
				sql_search(qs, c);
				break;
			case QOP_NULL:
				appendStringInfo(&qs->sql, "t.%s IS NULL", col);
				break;
			case QOP_EQ:
				appendStringInfo(&qs->sql, "t.%s %s ", col, c->eq_op);
				pgapp_query_sql_param(qs, c->f.typid, c->value);
				break;
			case QOP_IN:
				appendStringInfo(&qs->sql, "t.%s %s ANY (", col, c->eq_op);
				pgapp_query_sql_param(qs, c->arraytype, c->values);
				appendStringInfoChar(&qs->sql, ')');
				break;
			case QOP_RANGE:
				sql_range(qs, c, col);
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

/*
 * " FROM source AS t WHERE ..." (filters and scopes) into qs.
 * *select_extra gets the expression that extends to_jsonb(t) with stats and
 * preloads (or NULL), *laterals the LEFT JOIN LATERAL clauses of the
 * preloads (or ""): the caller applies them to the rows it keeps (a page),
 * not to every row that matches.
 */
void
pgapp_query_sql_from_where(QuerySql *qs, QueryValue *qv, char **select_extra, char **laterals)
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
	appendStringInfo(&qs->sql, " FROM %s AS t", pgapp_qualified_relname(qv->relid));
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
						 value.data, pgapp_qualified_relname(r->other), i);
		for (int j = 0; j < r->ncols; j++)
			appendStringInfo(&lat, "%sr%d.%s %s t.%s", j ? " AND " : "", i,
							 quote_identifier(r->remote[j]),
							 pgapp_query_btree_operator(get_atttype(r->other, get_attnum(r->other, r->remote[j])),
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

/*
 * A keyset page's order (its keys in one direction) into order, and the
 * jsonb array of the keys' text, which makes the next cursor, into
 * keys_select.
 */
static void
sql_keyset_order(QueryKeyset *ks, StringInfo order, StringInfo keys_select)
{
	ListCell   *lc;
	int			i = 0;

	appendStringInfoString(keys_select, "pg_catalog.jsonb_build_array(");
	foreach(lc, ks->keys)
	{
		const char *col = quote_identifier(((PgappColumn *) lfirst(lc))->name);

		appendStringInfo(order, "%st.%s %s", i ? ", " : " ORDER BY ", col,
						 ks->descending ? "DESC" : "ASC");
		appendStringInfo(keys_select, "%st.%s::pg_catalog.text", i ? ", " : "", col);
		i++;
	}
	appendStringInfoString(keys_select, ")::pg_catalog.text");
}

/*
 * The condition of a keyset page after its cursor: a row comparison, which
 * is exactly "after" for NOT NULL keys in one direction.
 */
static void
sql_keyset_after(QuerySql *qs, QueryValue *qv, QueryKeyset *ks)
{
	ListCell   *lc;
	int			i = 0;

	appendStringInfo(&qs->sql, "%s(", qv->conds != NIL || qv->scopes != NIL ? " AND " : " WHERE ");
	foreach(lc, ks->keys)
		appendStringInfo(&qs->sql, "%st.%s", i++ ? ", " : "",
						 quote_identifier(((PgappColumn *) lfirst(lc))->name));
	appendStringInfo(&qs->sql, ") OPERATOR(pg_catalog.%s) (", ks->descending ? "<" : ">");
	i = 0;
	foreach(lc, ks->keys)
	{
		PgappColumn *k = lfirst(lc);

		if (i)
			appendStringInfoString(&qs->sql, ", ");
		pgapp_query_sql_param(qs, k->typid, ks->after[i]);
		i++;
	}
	appendStringInfoChar(&qs->sql, ')');
}

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
void
pgapp_query_sql_select_rows(QuerySql *qs, QueryValue *qv, bool with_total, int64 limit, int64 offset,
							QueryKeyset *ks)
{
	QuerySql	from;
	char	   *extra;
	char	   *laterals;
	StringInfoData order;
	StringInfoData keys_select;

	pgapp_query_sql_init(&from);
	pgapp_query_sql_from_where(&from, qv, &extra, &laterals);
	initStringInfo(&order);
	initStringInfo(&keys_select);
	if (ks == NULL)
		sql_order(&order, qv, "t.");
	else
		sql_keyset_order(ks, &order, &keys_select);

	pgapp_query_sql_init(qs);
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
		sql_keyset_after(qs, qv, ks);
	appendStringInfoString(&qs->sql, order.data);
	if (limit >= 0)
	{
		appendStringInfoString(&qs->sql, " LIMIT ");
		pgapp_query_sql_param(qs, INT8OID, Int64GetDatum(limit));
	}
	if (offset > 0)
	{
		appendStringInfoString(&qs->sql, " OFFSET ");
		pgapp_query_sql_param(qs, INT8OID, Int64GetDatum(offset));
	}
	appendStringInfo(&qs->sql, ") AS t%s%s", laterals, order.data);
}

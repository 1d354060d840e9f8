/*-------------------------------------------------------------------------
 *
 * query_int.h
 *	  What the files of the queries feature share: a pgapp.query value as
 *	  query_read returns it, the SQL under construction, and the functions
 *	  one file offers the files above it.
 *
 * The files form a DAG, bottom to top:
 *
 *	query_scope.c	the table owner's definitions: sort whitelist, scopes,
 *					stats (define/drop and the per-statement lookups)
 *	query_preload.c	relations through foreign keys, cached per backend
 *	query_value.c	the one reader and validator of a pgapp.query value
 *	query_sql.c		SQL generation from a read value
 *	query_build.c	the builders (from, filter_by, ..., sort_by, scope, preload)
 *	query_exec.c	plan cache, executors, keyset pagination, module entry
 *
 * The builders pgapp.scope, pgapp.with_stats and pgapp.preload live with
 * the other builders, not beside the definitions they check: the reader
 * calls the lookups of query_scope.c and query_preload.c, and every
 * builder calls the reader, so the lookups sit below it and the builders
 * above.
 *
 * src/queries/query_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_QUERY_INT_H
#define PGAPP_QUERY_INT_H

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "core/util.h"

/* At most this many characters of a caller's input in an error message. */
#define ECHO_CHARS PGA_MESSAGE_ECHO_CHARS

#define QUERY_HINT "Build queries with pgapp.from() and the builders; docs/queries.md describes the value."

/* 22023 for a malformed query value; fmt and its arguments as errmsg's. */
#define bad_query(...) \
	ereport(ERROR, \
			errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			errmsg(__VA_ARGS__), \
			errhint(QUERY_HINT))

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
	char	  **order;			/* has many: the related rows' primary key,
								 * for a stable order */
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
	PgappColumn f;				/* eq, in, null, range */
	Datum		value;			/* eq: in the column's type */
	Oid			arraytype;		/* in: the column type's array type */
	Datum		values;			/* in: an array of it */
	bool		has_from;		/* range: an open end has none */
	bool		has_to;
	Datum		from;
	Datum		to;
	char	   *eq_op;			/* eq, in: OPERATOR(...) of the column type's
								 * btree = */
	char	   *ge_op;			/* range: its >= and <= */
	char	   *le_op;
	Datum		pattern;		/* search: the ILIKE pattern (text) */
	int			nfields;
	PgappColumn *fields;
} QueryCond;

typedef struct QueryOrder
{
	PgappColumn f;
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

/* SQL under construction and its parameters. */
typedef struct QuerySql
{
	StringInfoData sql;
	int			nparams;
	int			maxparams;
	Oid		   *types;
	Datum	   *values;
} QuerySql;

/* A keyset page: its key columns, the cursor's values (NULL: first page). */
typedef struct QueryKeyset
{
	List	   *keys;			/* PgappColumn * */
	Datum	   *after;
	bool		descending;
} QueryKeyset;

/* query_scope.c */
extern ArrayType *pgapp_query_sortable_fields(Oid relid);
extern void pgapp_query_check_sortable(Oid relid, ArrayType *allowed, const char *field);
extern char *pgapp_query_lookup_expression(Oid relid, const char *kind, const char *name,
										   MemoryContext mcxt, char **search_path);
extern List *pgapp_query_named_expressions(Oid relid, const char *kind, List *names,
										   MemoryContext mcxt);
extern char *pgapp_query_common_search_path(List *named);

/* query_preload.c */
extern void pgapp_query_relations_invalidate(Oid relid);
extern List *pgapp_query_cached_relations(Oid relid);
extern QueryRelation *pgapp_query_find_relation(Oid relid, List *relations, const char *name);
extern QueryRelation *pgapp_query_copy_relation(const QueryRelation *r);

/*
 * Column name of relid (22023 when empty, 42703 when unknown), through
 * core's resolver with the hint every queries message gives.  Inline, so
 * that every file of the folder can use it without an arrow upwards.
 */
static inline void
pgapp_query_column(Oid relid, const char *name, PgappColumn *col)
{
	pgapp_resolve_column(relid, name, false,
						 "Fields are column names of the query's source, written as they are (no quoting).",
						 col);
}

/* query_value.c */
extern Datum pgapp_query_column_input(const char *text, Oid typid);
extern char *pgapp_query_value_as_text(Datum value, Oid valtype, const PgappColumn *col);
extern char *pgapp_query_btree_operator(Oid typid, int16 strategy);
extern char *pgapp_query_escape_like(const char *s);
extern void pgapp_query_read(Jsonb *q, QueryValue *qv);
extern Jsonb *pgapp_query_arg(FunctionCallInfo fcinfo, QueryValue *qv);

/* query_sql.c */
extern void pgapp_query_sql_init(QuerySql *qs);
extern void pgapp_query_sql_param(QuerySql *qs, Oid typid, Datum value);
extern void pgapp_query_sql_from_where(QuerySql *qs, QueryValue *qv, char **select_extra,
									   char **laterals);
extern void pgapp_query_sql_select_rows(QuerySql *qs, QueryValue *qv, bool with_total,
										int64 limit, int64 offset, QueryKeyset *ks);

#endif							/* PGAPP_QUERY_INT_H */

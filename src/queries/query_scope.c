/*-------------------------------------------------------------------------
 *
 * query_scope.c
 *	  The table owner's definitions for queries: the sort whitelist
 *	  (allow_sort), scopes and stats (define_scope, define_stat, drop_*),
 *	  and their lookups.
 *
 * Scopes and stats are SQL expressions a table's owner defines, checked
 * when defined (one expression, planned against the table) and stored
 * with the search_path they were defined under.  Lookups are memoized for
 * the statement, as every builder of a pipe reads the whole value again.
 *
 * src/queries/query_scope.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "core/error.h"
#include "core/util.h"
#include "query_int.h"

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
ArrayType *
pgapp_query_sortable_fields(Oid relid)
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
 * 22023 unless field is on the sort whitelist allowed (pgapp_query_sortable_fields of
 * relid); the detail lists the sortable fields.
 */
void
pgapp_query_check_sortable(Oid relid, ArrayType *allowed, const char *field)
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
		PgappColumn f;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("fields must not contain nulls"));
		pgapp_query_column(relid, TextDatumGetCString(elems[i]), &f);
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
 * The schemas the names of an expression being defined resolve in, in
 * every query that uses it: the definer's search_path now, less the
 * schemas where a role the definer is not (and that is no superuser) may
 * create objects, and pg_temp last.  Names resolve as the definer meant,
 * whatever the reader's path, and no other role can put an operator or
 * function of its own in their place.  SPI connected.
 */
static char *
definer_search_path(void)
{
	int			ret;

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
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * Does expr plan against the table relid, under path; is a scope a
 * boolean?  The planner's error passes through, with a context naming
 * the expression and the path.  SPI connected.
 */
static void
check_expression_plans(Oid relid, const char *kind, const char *name, const char *expr,
					   const char *path)
{
	bool		is_scope = strcmp(kind, "scope") == 0;
	char	   *sql;
	SPIPlanPtr	plan;
	int			guc_level;
	ErrorContextCallback errcb;

	sql = psprintf(is_scope ? "SELECT 1 FROM %s AS t WHERE (%s)" : "SELECT (%2$s) FROM %1$s AS t",
				   pgapp_qualified_relname(relid), expr);
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
	int			ret;
	Oid			argtypes[5] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char	   *path;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("source must not be null"));
	relid = PG_GETARG_OID(0);
	name = pgapp_arg_cstring(fcinfo, 1, "name");
	expr = pgapp_arg_cstring(fcinfo, 2, strcmp(kind, "scope") == 0 ? "condition_sql" : "expression_sql");
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s name must be 1 to %d bytes", kind, NAMEDATALEN - 1));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	check_single_expression(expr, kind, name);

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	path = definer_search_path();
	check_expression_plans(relid, kind, name, expr, path);

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
char *
pgapp_query_lookup_expression(Oid relid, const char *kind, const char *name, MemoryContext mcxt,
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
List *
pgapp_query_named_expressions(Oid relid, const char *kind, List *names, MemoryContext mcxt)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, names)
	{
		QueryNamed *n = MemoryContextAlloc(mcxt, sizeof(QueryNamed));
		MemoryContext old;

		n->name = lfirst(lc);
		n->expression = pgapp_query_lookup_expression(relid, kind, n->name, mcxt, &n->search_path);
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
char *
pgapp_query_common_search_path(List *named)
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

/*-------------------------------------------------------------------------
 *
 * changeset_def.c
 *	  Named changesets: definitions and their cache, pgapp.changeset(),
 *	  and the validate_table trigger.
 *
 * Definitions live in pgapp.changeset_def and are compiled
 * (changeset_rules.c) once per backend into a definition cache
 * (core/defcache.h).  Two things make a cached definition stale: a change
 * to pgapp.changeset_def (its statement trigger sends a relcache
 * invalidation for the table), and any relcache invalidation of the
 * definition's source table (a column renamed, dropped or retyped).  This
 * module's relcache_invalidate callback marks those entries stale; the
 * next use compiles them again.  Nothing is read from a table on the
 * trigger's hot path once the cache is warm.  (A transition rule names its
 * machine, which machines/ checks and caches on its own.)
 *
 * pgapp.insert and pgapp.update are in changeset_write.c.
 *
 * src/changesets/changeset_def.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "changeset.h"
#include "changeset_int.h"
#include "core/defcache.h"
#include "core/error.h"
#include "core/json_util.h"

/* A cache entry (core/defcache.h): a compiled pgapp.changeset_def row. */
typedef struct CompiledChangeset
{
	PgappDefEntry head;			/* name (hash key), valid, memory context */
	Oid			relid;
	ArrayType  *permitted;
	List	   *rules;			/* CsRule *, in order */
} CompiledChangeset;

static void compile_definition(PgappDefEntry *entry, const char *name,
							   Datum *values, bool *nulls);
static bool uses_relation(PgappDefEntry *entry, Oid relid);
static void changesets_relcache_invalidate(Oid relid);
static CompiledChangeset *changeset_get(const char *name);
static Oid	enforcing_table(const char *name, Oid other_than);

static const PgappDefKind changeset_kind = {
	.what = "changeset",
	.table = "changeset_def",
	.select_sql = "SELECT source, permitted, rules FROM pgapp.changeset_def"
	" WHERE name OPERATOR(pg_catalog.=) $1",
	.hint = "Define it with pgapp.define_changeset().",
	.entrysize = sizeof(CompiledChangeset),
	.compile = compile_definition,
	.uses_relation = uses_relation,
};

static PgappDefCache changesets = PGAPP_DEFCACHE_INIT(&changeset_kind);

const PgappModule pgapp_changesets_module = {
	.name = "changesets",
	.relcache_invalidate = changesets_relcache_invalidate,
};

/*
 * A change to pgapp.changeset_def makes every changeset stale; a change to
 * a table only the changesets defined for it.
 */
static void
changesets_relcache_invalidate(Oid relid)
{
	pgapp_defcache_invalidate(&changesets, relid);
}

static bool
uses_relation(PgappDefEntry *entry, Oid relid)
{
	return ((CompiledChangeset *) entry)->relid == relid;
}

static void
check_table(Oid relid)
{
	char		kind = get_rel_relkind(relid);

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a table", get_rel_name(relid)));
}

/*
 * Refuse (42501) unless the current user owns the table of the existing
 * changeset name, if there is one and the table still exists: redefining or
 * dropping a changeset changes what the writes to that table accept.
 * Returns whether the changeset exists.
 */
static bool
check_changeset_owner(const char *name)
{
	bool		isnull;
	bool		exists;
	Oid			relid = InvalidOid;
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_spi_select_as_owner("SELECT source::pg_catalog.oid FROM pgapp.changeset_def"
							  " WHERE name OPERATOR(pg_catalog.=) $1", name);
	exists = SPI_processed > 0;
	if (exists)
		relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (exists && get_rel_name(relid) != NULL && !pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("must be owner of table %s", get_rel_name(relid)),
				errdetail("Changeset \"%s\" is defined for table %s.", name, pgapp_qualified_relname(relid)));
	return exists;
}

/* Context callback: which rule was being compiled. */
typedef struct CompileContext
{
	const char *changeset;
	int			rule;
} CompileContext;

static void
compile_error_context(void *arg)
{
	CompileContext *cc = (CompileContext *) arg;

	if (cc->rule > 0)
		errcontext("rule %d of changeset \"%s\"", cc->rule, cc->changeset);
	else
		errcontext("changeset \"%s\"", cc->changeset);
}

/*
 * Compile permitted + rules against relid; a List of CsRule in the current
 * memory context.
 */
static List *
compile_rules(const char *name, Oid relid, ArrayType *permitted, Jsonb *rules)
{
	ErrorContextCallback cb;
	CompileContext cc = {name, 0};
	List	   *result = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	cb.callback = compile_error_context;
	cb.arg = &cc;
	cb.previous = error_context_stack;
	error_context_stack = &cb;

	deconstruct_array(permitted, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		PgappColumn f;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("permitted fields must not contain nulls"));
		pgapp_resolve_column(relid, TextDatumGetCString(elems[i]), false, NULL, &f);
	}

	if (!JB_ROOT_IS_ARRAY(rules) || JB_ROOT_IS_SCALAR(rules))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rules must be a JSON array of rule objects"),
				errhint("For example [{\"required\": [\"title\"]}, {\"length\": \"title\", \"min\": 3}]."));
	for (int i = 0; i < JB_ROOT_COUNT(rules); i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&rules->root, i);

		cc.rule = i + 1;
		result = lappend(result, pgapp_cs_rule_from_json(relid, v, i + 1));
	}
	error_context_stack = cb.previous;
	return result;
}

/* The defcache's compile callback: a row (source, permitted, rules). */
static void
compile_definition(PgappDefEntry *entry, const char *name, Datum *values, bool *nulls)
{
	CompiledChangeset *cs = (CompiledChangeset *) entry;

	/* compiled rules point into the rules, so they live in the entry too */
	cs->relid = DatumGetObjectId(values[0]);
	cs->permitted = DatumGetArrayTypePCopy(values[1]);
	cs->rules = compile_rules(name, cs->relid, cs->permitted, DatumGetJsonbPCopy(values[2]));
}

/*
 * The compiled changeset called name (42704 if there is none).
 */
static CompiledChangeset *
changeset_get(const char *name)
{
	return (CompiledChangeset *) pgapp_defcache_get(&changesets, name, false);
}

/*
 * The source and permitted list of the named changeset (42704 if there is
 * none), for the reader of changeset values.
 */
void
pgapp_cs_definition(const char *name, Oid *relid, ArrayType **permitted)
{
	CompiledChangeset *cs = changeset_get(name);

	*relid = cs->relid;
	*permitted = cs->permitted;
}

/*
 * pgapp.define_changeset(name, source, permitted, rules)
 */
PG_FUNCTION_INFO_V1(pgapp_define_changeset);
Datum
pgapp_define_changeset(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "name");
	Oid			relid;
	ArrayType  *permitted;
	Jsonb	   *rules;
	int			ret;
	Oid			argtypes[5] = {TEXTOID, REGCLASSOID, TEXTARRAYOID, JSONBOID, OIDOID};
	Datum		args[5];

	pgapp_check_definition_name(name, "changeset");
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null",
					   PG_ARGISNULL(1) ? "source" : PG_ARGISNULL(2) ? "permitted" : "rules"));
	relid = PG_GETARG_OID(1);
	permitted = PG_GETARG_ARRAYTYPE_P(2);
	rules = PG_GETARG_JSONB_P(3);
	check_table(relid);
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	(void) check_changeset_owner(name);

	/* compile now so that a bad rule is refused here, not at the first write */
	(void) compile_rules(name, relid, permitted, rules);

	/* a table that enforces this changeset must stay its source */
	{
		Oid			other = enforcing_table(name, relid);

		if (OidIsValid(other))
			ereport(ERROR,
					errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					errmsg("cannot move changeset \"%s\" to table %s because table %s enforces it",
						   name, pgapp_qualified_relname(relid), pgapp_qualified_relname(other)),
					errhint("Drop the table's pgapp_validate trigger first, or use another name."));
	}

	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(relid);
	args[2] = PointerGetDatum(permitted);
	args[3] = JsonbPGetDatum(rules);
	args[4] = ObjectIdGetDatum(GetUserId());
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	/* the owner again, for a changeset another table's owner defined since */
	ret = pgapp_spi_execute_as_owner("INSERT INTO pgapp.changeset_def AS d (name, source, permitted, rules)"
									 " VALUES ($1, $2, $3, $4)"
									 " ON CONFLICT (name) DO UPDATE"
									 " SET source = EXCLUDED.source, permitted = EXCLUDED.permitted,"
									 "     rules = EXCLUDED.rules, updated_at = pg_catalog.now()"
									 " WHERE COALESCE(pg_catalog.pg_has_role($5,"
									 "     (SELECT c.relowner FROM pg_catalog.pg_class c"
									 "       WHERE c.oid OPERATOR(pg_catalog.=) d.source), 'USAGE'), true)",
									 5, argtypes, args, NULL);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("must be owner of the table of changeset \"%s\"", name),
				errdetail("The owner of another table defined changeset \"%s\" at the same time.", name));
	SPI_finish();
	pgapp_defcache_invalidate(&changesets, InvalidOid);
	PG_RETURN_VOID();
}

/*
 * A table whose validate_table trigger names changeset name (InvalidOid if
 * none); other_than skips that table.
 */
static Oid
enforcing_table(const char *name, Oid other_than)
{
	int			ret;
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2];
	Oid			result = InvalidOid;

	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(other_than);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args(
								"SELECT t.tgrelid FROM pg_catalog.pg_trigger t"
								" WHERE t.tgfoid OPERATOR(pg_catalog.=) 'pgapp._changeset_trigger()'::pg_catalog.regprocedure"
								"   AND t.tgargs OPERATOR(pg_catalog.=) (pg_catalog.convert_to($1, 'UTF8')"
								"                                       OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea)"
								"   AND t.tgrelid OPERATOR(pg_catalog.<>) $2"
								" LIMIT 1",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		bool		isnull;

		result = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	return result;
}

/*
 * pgapp.drop_changeset(name): refused while a table enforces it.
 */
PG_FUNCTION_INFO_V1(pgapp_drop_changeset);
Datum
pgapp_drop_changeset(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "name");
	Oid			table;
	int			ret;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	pgapp_check_definition_name(name, "changeset");
	if (!check_changeset_owner(name))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("changeset \"%s\" does not exist", name));
	table = enforcing_table(name, InvalidOid);
	if (OidIsValid(table))
		ereport(ERROR,
				errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				errmsg("cannot drop changeset \"%s\" because table %s enforces it", name,
					   pgapp_qualified_relname(table)),
				errhint("Drop the table's pgapp_validate trigger first."));
	args[0] = CStringGetTextDatum(name);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = pgapp_spi_execute_as_owner("DELETE FROM pgapp.changeset_def WHERE name OPERATOR(pg_catalog.=) $1",
									 1, argtypes, args, NULL);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("changeset \"%s\" does not exist", name));
	SPI_finish();
	pgapp_defcache_invalidate(&changesets, InvalidOid);
	PG_RETURN_VOID();
}

/*
 * pgapp.changeset(name, params, data) -> changeset
 */
PG_FUNCTION_INFO_V1(pgapp_changeset);
Datum
pgapp_changeset(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "name");
	CompiledChangeset *cs;
	Jsonb	   *data = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("params must not be null"),
				errhint("Pass '{}' for no params."));
	cs = changeset_get(name);
	PG_RETURN_JSONB_P(pgapp_cs_cast(cs->relid, data, PG_GETARG_JSONB_P(1), cs->permitted,
									cs->rules, data ? "update" : "insert", name));
}

/*
 * pgapp.validate_table(tbl regclass, changeset_name text)
 */
PG_FUNCTION_INFO_V1(pgapp_validate_table);
Datum
pgapp_validate_table(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *name = pgapp_arg_cstring(fcinfo, 1, "changeset_name");
	CompiledChangeset *cs;
	char	   *trigname;
	char	   *sql;
	int			ret;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("tbl must not be null"));
	relid = PG_GETARG_OID(0);
	check_table(relid);
	cs = changeset_get(name);
	if (cs->relid != relid)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset \"%s\" is defined for table %s, not %s",
					   name, pgapp_qualified_relname(cs->relid), pgapp_qualified_relname(relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));

	trigname = psprintf("pgapp_validate_%s", name);
	if (strlen(trigname) >= NAMEDATALEN)
		trigname[pg_mbcliplen(trigname, strlen(trigname), NAMEDATALEN - 1)] = '\0';
	sql = psprintf("CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE ON %s"
				   " FOR EACH ROW EXECUTE FUNCTION pgapp._changeset_trigger(%s)",
				   quote_identifier(trigname), pgapp_qualified_relname(relid), quote_literal_cstr(name));
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if ((ret = SPI_execute(sql, false, 0)) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pgapp._changeset_trigger(changeset_name): BEFORE INSERT OR UPDATE FOR EACH
 * ROW.  Validates NEW with the named rules; raises PT422 with every error.
 */
PG_FUNCTION_INFO_V1(pgapp_changeset_trigger);
Datum
pgapp_changeset_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CompiledChangeset *cs;
	CsInput		in = {0};
	CsErrors	errors = {0};
	ListCell   *lc;
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" was not called by trigger manager", "pgapp._changeset_trigger"));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)) ||
		trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" must be fired BEFORE INSERT OR UPDATE FOR EACH ROW with a changeset name",
					   "pgapp._changeset_trigger"),
				errhint("Attach it with pgapp.validate_table()."));

	relid = RelationGetRelid(trigdata->tg_relation);

	/*
	 * Remember the cache entry for the rest of the statement: its address is
	 * stable, and it is looked up again only when invalidated.
	 */
	cs = (CompiledChangeset *) fcinfo->flinfo->fn_extra;
	if (cs == NULL || !cs->head.valid || strcmp(cs->head.name, trigdata->tg_trigger->tgargs[0]) != 0)
	{
		cs = changeset_get(trigdata->tg_trigger->tgargs[0]);
		fcinfo->flinfo->fn_extra = cs;
	}
	if (cs->relid != relid)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset \"%s\" is defined for table %s, not %s", cs->head.name,
					   pgapp_qualified_relname(cs->relid), pgapp_qualified_relname(relid)));

	in.tupdesc = RelationGetDescr(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		in.newtup = trigdata->tg_newtuple;
		in.oldtup = trigdata->tg_trigtuple;
	}
	else
		in.newtup = trigdata->tg_trigtuple;

	foreach(lc, cs->rules)
		pgapp_cs_apply_rule(lfirst(lc), &in, &errors);

	if (errors.added != NIL)
		pgapp_cs_report(pgapp_cs_errors_body(&errors), relid,
						pgapp_cs_first_error_field(&errors), true);
	return PointerGetDatum(in.newtup);
}

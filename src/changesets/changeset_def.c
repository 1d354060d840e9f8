/*-------------------------------------------------------------------------
 *
 * changeset_def.c
 *	  Named changesets: definitions and their cache, pgapp.changeset(),
 *	  the validate_table trigger, and pgapp.insert / pgapp.update with
 *	  constraint mapping.
 *
 * Definitions live in pgapp.changeset_def and are compiled (changeset.c)
 * once per backend into a hash in CacheMemoryContext.  Two things make a
 * cached definition stale: a change to pgapp.changeset_def or pgapp.machine
 * (their statement trigger sends a relcache invalidation for the table),
 * and any relcache invalidation of the definition's source table (a column
 * renamed, dropped or retyped).  The relcache callback below marks entries
 * invalid; the next use recompiles them.  Nothing is read from a table on
 * the trigger's hot path once the cache is warm.
 *
 * pgapp.insert / pgapp.update write in a subtransaction.  A violated
 * constraint that the changeset declares (by name, or by the default names
 * <table>_<field>_key / _index / _fkey / _excl / _exclusion) becomes an
 * error on its field; errors raised by a validate_table trigger on the same
 * table are merged too; anything else is re-raised unchanged.
 *
 * src/changeset_def.c
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

static void changeset_cache_init(void);

const PgappModule pgapp_changesets_module = {
	.name = "changesets",
	.init = changeset_cache_init,
};
#include "core/error.h"
#include "core/json_util.h"

typedef struct CompiledChangeset
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		valid;
	Oid			relid;
	ArrayType  *permitted;
	List	   *rules;			/* CsRule *, in order */
	MemoryContext mcxt;
} CompiledChangeset;

static HTAB *changesets = NULL;
static Oid	changeset_def_oid = InvalidOid;

static void relcache_callback(Datum arg, Oid relid);
static CompiledChangeset *changeset_get(const char *name);
static char *qualified_name(Oid relid);
static Oid	enforcing_table(const char *name, Oid other_than);

/*
 * Called from _PG_init: one callback for every cache of definitions.
 */
static void
changeset_cache_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}

static void
relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	CompiledChangeset *cs;
	bool		all = (relid == InvalidOid || relid == changeset_def_oid ||
					   relid == pgapp_machine_table_oid());

	if (all)
		pgapp_machine_invalidate();
	if (changesets == NULL)
		return;
	hash_seq_init(&status, changesets);
	while ((cs = hash_seq_search(&status)) != NULL)
		if (all || cs->relid == relid)
			cs->valid = false;
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static void
check_changeset_name(const char *name)
{
	if (name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset name must not be empty"));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				errcode(ERRCODE_NAME_TOO_LONG),
				errmsg("changeset name \"%s\" is too long", pgapp_echo(name)),
				errdetail("Names are at most %d bytes.", NAMEDATALEN - 1));
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
				errdetail("Changeset \"%s\" is defined for table %s.", name, qualified_name(relid)));
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
		CsField		f;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("permitted fields must not contain nulls"));
		pgapp_cs_resolve_field(relid, TextDatumGetCString(elems[i]), false, &f);
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

/*
 * The compiled changeset called name (42704 if there is none).
 */
static CompiledChangeset *
changeset_get(const char *name)
{
	CompiledChangeset *cs;
	bool		found;
	char		key[NAMEDATALEN] = {0};
	int			ret;
	MemoryContext oldcxt;
	MemoryContext mcxt;
	Oid			relid = InvalidOid;
	ArrayType  *permitted = NULL;
	Jsonb	   *rules = NULL;
	bool		exists = false;

	check_changeset_name(name);
	if (changesets == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(CompiledChangeset);
		ctl.hcxt = CacheMemoryContext;
		changesets = hash_create("pgapp changesets", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	strlcpy(key, name, NAMEDATALEN);
	cs = hash_search(changesets, key, HASH_FIND, &found);
	if (found && cs->valid)
		return cs;

	mcxt = AllocSetContextCreate(CacheMemoryContext, "pgapp changeset", ALLOCSET_SMALL_SIZES);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_spi_select_as_owner("SELECT source, permitted, rules FROM pgapp.changeset_def"
							  " WHERE name OPERATOR(pg_catalog.=) $1", name);
	if (SPI_processed == 1)
	{
		bool		isnull;

		exists = true;
		oldcxt = MemoryContextSwitchTo(mcxt);
		relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		permitted = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		rules = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		MemoryContextSwitchTo(oldcxt);
	}
	if (!OidIsValid(changeset_def_oid))
		changeset_def_oid = get_relname_relid("changeset_def", pgapp_schema_oid());
	SPI_finish();

	if (!exists)
	{
		MemoryContextDelete(mcxt);
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("changeset \"%s\" does not exist",
					   pgapp_echo(name)),
				errhint("Define it with pgapp.define_changeset()."));
	}

	oldcxt = MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		List	   *compiled = compile_rules(name, relid, permitted, rules);

		MemoryContextSwitchTo(oldcxt);
		cs = hash_search(changesets, key, HASH_ENTER, &found);
		if (found && cs->mcxt != NULL)
			MemoryContextDelete(cs->mcxt);
		cs->mcxt = mcxt;
		cs->relid = relid;
		cs->permitted = permitted;
		cs->rules = compiled;
		cs->valid = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(mcxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return cs;
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

	check_changeset_name(name);
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
						   name, qualified_name(relid), qualified_name(other)),
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
	relcache_callback((Datum) 0, InvalidOid);
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

	check_changeset_name(name);
	if (!check_changeset_owner(name))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("changeset \"%s\" does not exist", name));
	table = enforcing_table(name, InvalidOid);
	if (OidIsValid(table))
		ereport(ERROR,
				errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				errmsg("cannot drop changeset \"%s\" because table %s enforces it", name,
					   qualified_name(table)),
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
	relcache_callback((Datum) 0, InvalidOid);
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
					   name, qualified_name(cs->relid), qualified_name(relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));

	trigname = psprintf("pgapp_validate_%s", name);
	if (strlen(trigname) >= NAMEDATALEN)
		trigname[pg_mbcliplen(trigname, strlen(trigname), NAMEDATALEN - 1)] = '\0';
	sql = psprintf("CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE ON %s"
				   " FOR EACH ROW EXECUTE FUNCTION pgapp._changeset_trigger(%s)",
				   quote_identifier(trigname), qualified_name(relid), quote_literal_cstr(name));
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
	if (cs == NULL || !cs->valid || strcmp(cs->name, trigdata->tg_trigger->tgargs[0]) != 0)
	{
		cs = changeset_get(trigdata->tg_trigger->tgargs[0]);
		fcinfo->flinfo->fn_extra = cs;
	}
	if (cs->relid != relid)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset \"%s\" is defined for table %s, not %s", cs->name,
					   qualified_name(cs->relid), qualified_name(relid)));

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

/*
 * pgapp._definitions_changed(): statement trigger on the definition
 * tables; every backend drops its cached definitions.
 */
PG_FUNCTION_INFO_V1(pgapp_definitions_changed);
Datum
pgapp_definitions_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" was not called by trigger manager", "pgapp._definitions_changed"));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * insert / update
 * ---------------------------------------------------------------------
 */

typedef struct WriteState
{
	Jsonb	   *cs;
	CsRead		read;			/* the changeset, checked by pgapp_cs_read */
	Oid			relid;
	JsonbValue	changes;		/* the "changes" object */
	List	   *columns;		/* char *, the changed columns */
} WriteState;

/* Every key of changes is a permitted column: pgapp_cs_read checked it. */
static void
collect_column(const char *key, int keylen, JsonbValue *value, void *arg)
{
	WriteState *ws = (WriteState *) arg;

	ws->columns = lappend(ws->columns, pstrdup(key));
}

/*
 * Every value of a valid changeset's changes must fit its column before the
 * write runs (a crafted value gets 22023, not the executor's error).
 */
static void
check_change_fits(const char *key, int keylen, JsonbValue *value, void *arg)
{
	WriteState *ws = (WriteState *) arg;

	CHECK_FOR_INTERRUPTS();
	if (!pgapp_cs_change_fits(ws->relid, key, value))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset change of \"%s\" is not a valid %s", key,
					   format_type_be(get_atttype(ws->relid, get_attnum(ws->relid, key)))),
				errdetail("The value is %s.",
						  pgapp_echo(pgapp_jsonb_value_to_cstring(value))),
				errhint("Build changesets with pgapp.cast() or pgapp.changeset() and pass them on unchanged."));
}

/* The errors of the changeset, as CsErrors (existing). */
static void
load_errors(WriteState *ws, CsErrors *errors)
{
	*errors = ws->read.errors;
}

/* Does constraint conname on relid match a declared constraint? */
static bool
constraint_matches(JsonbValue *decl, Oid relid, int sqlerrcode, const char *conname,
				   char **field, char **message)
{
	char	   *type = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "type"));
	char	   *f = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "field"));
	char	   *name = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "name"));
	char	   *msg = pgapp_jsonb_value_cstring(pgapp_jsonb_get(decl->val.binary.data, "message"));
	const char *table = get_rel_name(relid);
	const char *dflt_msg;
	bool		match;

	if (type == NULL || f == NULL)
		return false;
	if (strcmp(type, "unique") == 0 && sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
	{
		dflt_msg = "has already been taken";
		match = name ? strcmp(name, conname) == 0
			: (strcmp(psprintf("%s_%s_key", table, f), conname) == 0 ||
			   strcmp(psprintf("%s_%s_index", table, f), conname) == 0);
	}
	else if (strcmp(type, "foreign_key") == 0 &&
			 (sqlerrcode == ERRCODE_FOREIGN_KEY_VIOLATION || sqlerrcode == ERRCODE_RESTRICT_VIOLATION))
	{
		dflt_msg = "does not exist";
		match = name ? strcmp(name, conname) == 0
			: strcmp(psprintf("%s_%s_fkey", table, f), conname) == 0;
	}
	else if (strcmp(type, "check") == 0 && sqlerrcode == ERRCODE_CHECK_VIOLATION)
	{
		dflt_msg = "is invalid";
		match = name != NULL && strcmp(name, conname) == 0;
	}
	else if (strcmp(type, "exclusion") == 0 && sqlerrcode == ERRCODE_EXCLUSION_VIOLATION)
	{
		dflt_msg = "violates an exclusion constraint";
		match = name ? strcmp(name, conname) == 0
			: (strcmp(psprintf("%s_%s_excl", table, f), conname) == 0 ||
			   strcmp(psprintf("%s_%s_exclusion", table, f), conname) == 0);
	}
	else
		return false;

	if (match)
	{
		*field = f;
		*message = msg ? msg : (char *) dflt_msg;
	}
	return match;
}

/*
 * Re-raise a write's error that no declaration maps.  PostgreSQL's own
 * messages quote the value (invalid input syntax for type uuid: "...", Key
 * (email)=(...) already exists): cut message and detail so an error does not
 * echo a whole request body back.
 */
#define WRITE_ERROR_ECHO_CHARS (4 * PGA_MESSAGE_ECHO_CHARS)

static void
rethrow_cut(ErrorData *edata)
{
	edata->message = pga_truncate_for_message(edata->message, WRITE_ERROR_ECHO_CHARS);
	edata->detail = pga_truncate_for_message(edata->detail, WRITE_ERROR_ECHO_CHARS);
	ReThrowError(edata);
}

/*
 * Map a failed write to field errors, or re-raise it.  Returns the 422
 * body in return mode; does not return in raise mode.
 */
static Jsonb *
map_write_error(WriteState *ws, ErrorData *edata)
{
	CsErrors	errors = {0};

	load_errors(ws, &errors);

	/* errors of a validate_table trigger: {"errors": {...}} in DETAIL */
	if (edata->sqlerrcode == ERRCODE_PGAPP_VALIDATION && edata->detail != NULL)
	{
		Jsonb	   *detail = NULL;
		PgappSubxact sx;

		/* the DETAIL is ours, but parse defensively */
		pgapp_subxact_begin(&sx);
		PG_TRY();
		{
			detail = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(edata->detail)));
			pgapp_subxact_commit(&sx);
		}
		PG_CATCH();
		{
			FreeErrorData(pgapp_subxact_abort(&sx));
			detail = NULL;
		}
		PG_END_TRY();
		if (detail != NULL)
		{
			JsonbValue *errs = pgapp_jsonb_get_key(detail, "errors");

			if (pgapp_jsonb_value_is_object(errs))
			{
				JsonbIterator *it = JsonbIteratorInit(errs->val.binary.data);
				JsonbValue	jv;
				JsonbIteratorToken tok;
				char	   *field = NULL;
				List	   *fieldmsgs = NIL;

				/* the trigger lists newest first; add oldest first */
				while ((tok = JsonbIteratorNext(&it, &jv, false)) != WJB_DONE)
				{
					if (tok == WJB_KEY)
						field = pnstrdup(jv.val.string.val, jv.val.string.len);
					else if (tok == WJB_ELEM && jv.type == jbvString && field)
					{
						CsError    *e = palloc(sizeof(CsError));

						e->field = field;
						e->message = pnstrdup(jv.val.string.val, jv.val.string.len);
						fieldmsgs = lcons(e, fieldmsgs);
					}
				}
				{
					ListCell   *lc;

					foreach(lc, fieldmsgs)
					{
						CsError    *e = lfirst(lc);

						pgapp_cs_add_error(&errors, e->field, e->message);
					}
				}
				return pgapp_cs_report(pgapp_cs_errors_body(&errors), ws->relid,
									   pgapp_cs_first_error_field(&errors), false);
			}
		}
		rethrow_cut(edata);
	}

	if (edata->constraint_name != NULL &&
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
	{
		JsonbValue *decls = ws->read.constraints;
		int			n = decls ? pgapp_jsonb_array_length(decls) : 0;

		for (int i = 0; i < n; i++)
		{
			JsonbValue *decl = pgapp_jsonb_array_get(decls, i);
			char	   *field;
			char	   *message;

			if (!pgapp_jsonb_value_is_object(decl))
				continue;
			if (constraint_matches(decl, ws->relid, edata->sqlerrcode, edata->constraint_name,
								   &field, &message))
			{
				pgapp_cs_add_error(&errors, field, message);
				return pgapp_cs_report(pgapp_cs_errors_body(&errors), ws->relid, field, false);
			}
		}
	}
	rethrow_cut(edata);
	return NULL;				/* not reached */
}

/*
 * Run one write statement in a subtransaction; the row as jsonb, or NULL
 * when no row matched.  Failures go through map_write_error; *error_body
 * gets the 422 body in return mode.
 */
static Jsonb *
run_write(WriteState *ws, const char *sql, int nargs, Oid *argtypes, Datum *args,
		  Jsonb **error_body)
{
	PgappSubxact sx;
	Jsonb	   *volatile row = NULL;
	ErrorData  *volatile edata = NULL;

	*error_body = NULL;

	/*
	 * SPI is connected inside the subtransaction: on error its rollback
	 * also pops the SPI connection, and results are copied to the caller's
	 * context (sx.oldcontext) before SPI_finish.
	 */
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		int			ret;

		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		ret = SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT_RETURNING && ret != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		if (SPI_processed > 1)
			elog(ERROR, "write changed %lu rows, expected at most one", (unsigned long) SPI_processed);
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			MemoryContext spicxt = MemoryContextSwitchTo(sx.oldcontext);

			row = DatumGetJsonbPCopy(d);
			MemoryContextSwitchTo(spicxt);
		}
		SPI_finish();
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		edata = pgapp_subxact_abort(&sx);
	}
	PG_END_TRY();

	if (edata != NULL)
		*error_body = map_write_error(ws, edata);
	return row;
}

static void
prepare_write(WriteState *ws, Jsonb *cs)
{
	memset(ws, 0, sizeof(WriteState));
	pgapp_cs_read(cs, &ws->read);
	ws->cs = cs;
	ws->relid = ws->read.relid;
	ws->changes = *pgapp_jsonb_get_key(cs, "changes");
	pgapp_jsonb_foreach(ws->read.changes, collect_column, ws);
}

/* Render an invalid changeset's errors (422). */
static Jsonb *
report_invalid(WriteState *ws)
{
	CsErrors	errors = {0};

	load_errors(ws, &errors);
	return pgapp_cs_report(pgapp_cs_errors_body(&errors), ws->relid,
						   pgapp_cs_first_error_field(&errors), false);
}

static char *
column_list(List *columns, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, columns)
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix, quote_identifier(lfirst(lc)));
	return buf.data;
}

static void
set_response_status(const char *status)
{
	if (pgapp_error_returns())
		(void) set_config_option("response.status", status, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * pgapp.insert(cs) -> jsonb
 */
PG_FUNCTION_INFO_V1(pgapp_insert);
Datum
pgapp_insert(PG_FUNCTION_ARGS)
{
	WriteState	ws;
	char	   *rel;
	char	   *sql;
	Oid			argtypes[1] = {JSONBOID};
	Datum		args[1];
	Jsonb	   *row;
	Jsonb	   *error_body;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("changeset must not be null"));
	prepare_write(&ws, PG_GETARG_JSONB_P(0));
	if (!ws.read.valid)
		PG_RETURN_JSONB_P(report_invalid(&ws));
	pgapp_jsonb_foreach(ws.read.changes, check_change_fits, &ws);

	rel = qualified_name(ws.relid);
	if (ws.columns == NIL)
		sql = psprintf("INSERT INTO %s AS r DEFAULT VALUES RETURNING pg_catalog.to_jsonb(r)", rel);
	else
		sql = psprintf("INSERT INTO %s AS r (%s) SELECT %s FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS p"
					   " RETURNING pg_catalog.to_jsonb(r)",
					   rel, column_list(ws.columns, ""), column_list(ws.columns, "p."), rel);
	args[0] = JsonbPGetDatum(pgapp_jsonb_from_value(&ws.changes));
	row = run_write(&ws, sql, ws.columns == NIL ? 0 : 1, argtypes, args, &error_body);
	if (error_body != NULL)
		PG_RETURN_JSONB_P(error_body);
	if (row == NULL)
		elog(ERROR, "INSERT returned no row");
	set_response_status("201");
	PG_RETURN_JSONB_P(row);
}

/*
 * pgapp.update(cs) -> jsonb: by the primary key of the changeset's data.
 */
PG_FUNCTION_INFO_V1(pgapp_update);
Datum
pgapp_update(PG_FUNCTION_ARGS)
{
	WriteState	ws;
	JsonbValue *data;
	Relation	rel;
	Bitmapset  *pk;
	List	   *pkcols = NIL;
	StringInfoData where;
	ListCell   *lc;
	char	   *relname;
	char	   *sql;
	Oid			argtypes[2] = {JSONBOID, JSONBOID};
	Datum		args[2];
	Jsonb	   *row;
	Jsonb	   *error_body;
	int			attr = -1;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("changeset must not be null"));
	prepare_write(&ws, PG_GETARG_JSONB_P(0));
	data = pgapp_jsonb_get_key(ws.cs, "data");
	if (ws.read.data == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset has no data to update"),
				errhint("Build it with the current row, e.g. pgapp.changeset('task_update', params, to_jsonb(t))."));
	if (!ws.read.valid)
		PG_RETURN_JSONB_P(report_invalid(&ws));
	pgapp_jsonb_foreach(ws.read.changes, check_change_fits, &ws);
	if (ws.columns == NIL)
		PG_RETURN_JSONB_P(pgapp_jsonb_from_value(data));	/* no changes, no write (as Ecto) */

	rel = table_open(ws.relid, AccessShareLock);
	pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	while ((attr = bms_next_member(pk, attr)) >= 0)
		pkcols = lappend(pkcols,
						 pstrdup(NameStr(TupleDescAttr(RelationGetDescr(rel),
													   attr + FirstLowInvalidHeapAttributeNumber - 1)->attname)));
	table_close(rel, AccessShareLock);
	if (pkcols == NIL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("table \"%s\" has no primary key", get_rel_name(ws.relid)),
				errdetail("pgapp.update finds the row by its primary key."));

	initStringInfo(&where);
	foreach(lc, pkcols)
	{
		JsonbValue *v = pgapp_jsonb_get(data->val.binary.data, lfirst(lc));

		if (v == NULL || v->type == jbvNull)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("changeset data has no value for primary key column \"%s\"",
						   (char *) lfirst(lc)));
		if (!pgapp_cs_change_fits(ws.relid, lfirst(lc), v))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("changeset data holds no valid %s for primary key column \"%s\"",
						   format_type_be(get_atttype(ws.relid, get_attnum(ws.relid, lfirst(lc)))),
						   (char *) lfirst(lc)),
					errdetail("The value is %s.",
							  pgapp_echo(pgapp_jsonb_value_to_cstring(v))),
					errhint("Build the changeset with the current row, e.g. to_jsonb(t)."));
		appendStringInfo(&where, "%sr.%s OPERATOR(pg_catalog.=) k.%s", where.len ? " AND " : "",
						 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
	}

	relname = qualified_name(ws.relid);
	{
		StringInfoData set;

		initStringInfo(&set);
		foreach(lc, ws.columns)
			appendStringInfo(&set, "%s%s = p.%s", set.len ? ", " : "",
							 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
		sql = psprintf("UPDATE %s AS r SET %s"
					   " FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS p,"
					   "      pg_catalog.jsonb_populate_record(NULL::%s, $2) AS k"
					   " WHERE %s RETURNING pg_catalog.to_jsonb(r)",
					   relname, set.data, relname, relname, where.data);
	}
	args[0] = JsonbPGetDatum(pgapp_jsonb_from_value(&ws.changes));
	args[1] = JsonbPGetDatum(pgapp_jsonb_from_value(data));
	row = run_write(&ws, sql, 2, argtypes, args, &error_body);
	if (error_body != NULL)
		PG_RETURN_JSONB_P(error_body);
	if (row == NULL)
	{
		PgappError err = {0};

		err.status = 404;
		err.body = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													  CStringGetDatum("{\"errors\": {\"detail\": \"Not Found\"}}")));
		err.message = psprintf("no row of \"%s\" matches the changeset's data", get_rel_name(ws.relid));
		err.table_name = get_rel_name(ws.relid);
		err.schema_name = get_namespace_name(get_rel_namespace(ws.relid));
		PG_RETURN_JSONB_P(pgapp_error_report(&err, false));
	}
	PG_RETURN_JSONB_P(row);
}

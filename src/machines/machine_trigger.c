/*-------------------------------------------------------------------------
 *
 * machine_trigger.c
 *	  Enforcing a status machine on a table: pgapp.enforce_transitions,
 *	  the check that an enum column's labels are the machine's states, the
 *	  transition trigger and the transition log.
 *
 * The trigger (pgapp._transition_trigger) runs BEFORE INSERT OR UPDATE OF
 * the column to check, and, when the table is attached with log => true,
 * again AFTER to record the change in pgapp.transition_log.  A refused move
 * is a 422 on the column (pgapp_error_report_field), as a changeset reports
 * it.  The log is written with the extension owner's rights, so ordinary
 * roles can add to it only through the trigger; a row-level security policy
 * shows each role only the entries of rows it may read (pgapp.row_visible).
 *
 * src/machines/machine_trigger.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "machine_int.h"

static SPIPlanPtr log_plan = NULL;

typedef struct EnumLabel
{
	float4		order;
	char	   *label;
} EnumLabel;

static int
enum_label_cmp(const void *a, const void *b)
{
	float4		x = ((const EnumLabel *) a)->order;
	float4		y = ((const EnumLabel *) b)->order;

	return (x > y) - (x < y);
}

/*
 * For an enum column: every label must be a state and every state a label.
 */
static void
check_enum_coverage(const Machine *m, const char *name, Oid enumtype)
{
	List	   *labels = NIL;
	StringInfoData missing;
	StringInfoData extra;
	CatCList   *list;

	/* labels in the enum's own order, so messages list them as \dT+ does */
	list = SearchSysCacheList1(ENUMTYPOIDNAME, ObjectIdGetDatum(enumtype));
	{
		EnumLabel  *sorted = palloc(sizeof(EnumLabel) * Max(list->n_members, 1));

		for (int i = 0; i < list->n_members; i++)
		{
			Form_pg_enum e = (Form_pg_enum) GETSTRUCT(&list->members[i]->tuple);

			sorted[i].order = e->enumsortorder;
			sorted[i].label = pstrdup(NameStr(e->enumlabel));
		}
		qsort(sorted, list->n_members, sizeof(EnumLabel), enum_label_cmp);
		for (int i = 0; i < list->n_members; i++)
			labels = lappend(labels, sorted[i].label);
	}
	ReleaseSysCacheList(list);

	initStringInfo(&missing);
	initStringInfo(&extra);
	{
		ListCell   *lc;

		foreach(lc, labels)
		{
			if (pgapp_machine_state_index(m, lfirst(lc)) < 0)
				appendStringInfo(&missing, "%s\"%s\"", missing.len ? ", " : "",
								 (char *) lfirst(lc));
		}
	}
	for (int i = 0; i < m->nstates; i++)
	{
		ListCell   *lc;
		bool		found = false;

		foreach(lc, labels)
			found |= (strcmp(lfirst(lc), m->states[i].name) == 0);
		if (!found)
			appendStringInfo(&extra, "%s\"%s\"", extra.len ? ", " : "", pgapp_echo(m->states[i].name));
	}
	if (missing.len > 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("machine \"%s\" does not cover every label of enum %s", name,
					   format_type_be(enumtype)),
				errdetail("Labels that are not states: %s.", missing.data),
				errhint("Add each label as a state (with [] if nothing follows it)."));
	if (extra.len > 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("machine \"%s\" has states that are not labels of enum %s", name,
					   format_type_be(enumtype)),
				errdetail("States that are not labels: %s.", extra.data));
}

static char *
trigger_name(const char *prefix, const char *col, const char *suffix)
{
	char	   *name = psprintf("%s%s%s", prefix, col, suffix);

	if (strlen(name) >= NAMEDATALEN)
		name[pg_mbcliplen(name, strlen(name), NAMEDATALEN - 1)] = '\0';
	return name;
}

/*
 * Create (or replace) the checking trigger on relid, and the logging one
 * when log; without log, drop a logging trigger left from an earlier
 * attachment, quietly.
 */
static void
create_triggers(Oid relid, const char *col, const char *name, bool log)
{
	char	   *qrel = pgapp_qualified_relname(relid);
	char	   *log_trigger = trigger_name("pgapp_transition_", col, "_log");
	char	   *sql;
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	sql = psprintf("CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE OF %s ON %s"
				   " FOR EACH ROW EXECUTE FUNCTION pgapp._transition_trigger(%s, %s)",
				   quote_identifier(trigger_name("pgapp_transition_", col, "")),
				   quote_identifier(col), qrel,
				   quote_literal_cstr(name), quote_literal_cstr(col));
	if ((ret = SPI_execute(sql, false, 0)) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (log)
		sql = psprintf("CREATE OR REPLACE TRIGGER %s AFTER INSERT OR UPDATE OF %s ON %s"
					   " FOR EACH ROW EXECUTE FUNCTION pgapp._transition_trigger(%s, %s, 'log')",
					   quote_identifier(log_trigger), quote_identifier(col), qrel,
					   quote_literal_cstr(name), quote_literal_cstr(col));
	else
	{
		Oid			argtypes[2] = {OIDOID, NAMEOID};
		Datum		args[2];

		args[0] = ObjectIdGetDatum(relid);
		args[1] = DirectFunctionCall1(namein, CStringGetDatum(log_trigger));
		ret = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger"
									" WHERE tgrelid OPERATOR(pg_catalog.=) $1"
									"   AND tgname OPERATOR(pg_catalog.=) $2",
									2, argtypes, args, NULL, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		sql = SPI_processed == 0 ? NULL
			: psprintf("DROP TRIGGER %s ON %s", quote_identifier(log_trigger), qrel);
	}
	if (sql != NULL && (ret = SPI_execute(sql, false, 0)) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * pgapp.enforce_transitions(tbl regclass, col name, machine text, log boolean)
 */
PG_FUNCTION_INFO_V1(pgapp_enforce_transitions);
Datum
pgapp_enforce_transitions(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *col;
	char	   *name;
	bool		log;
	Machine    *m;
	PgappColumn f;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "tbl" : "col"));
	relid = PG_GETARG_OID(0);
	col = NameStr(*PG_GETARG_NAME(1));
	name = pgapp_arg_cstring(fcinfo, 2, "machine");
	log = PG_ARGISNULL(3) ? false : PG_GETARG_BOOL(3);

	if (get_rel_relkind(relid) != RELKIND_RELATION && get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a table", get_rel_name(relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));

	pgapp_resolve_column(relid, col, false, NULL, &f);
	if (f.category != TYPCATEGORY_STRING && f.category != TYPCATEGORY_ENUM)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("status column \"%s\" must be text or an enum, not %s",
					   col, format_type_be(f.basetype)));
	m = pgapp_machine_get(name);
	if (f.category == TYPCATEGORY_ENUM)
		check_enum_coverage(m, name, f.basetype);
	if (log)
	{
		Relation	rel = table_open(relid, AccessShareLock);
		Oid			pk = RelationGetPrimaryKeyIndex(rel);

		table_close(rel, AccessShareLock);
		if (!OidIsValid(pk))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("table \"%s\" has no primary key", get_rel_name(relid)),
					errdetail("The transition log identifies rows by their primary key."));
	}

	create_triggers(relid, col, name, log);
	PG_RETURN_VOID();
}

/* The state in a tuple as text (enum label or string), or NULL. */
static char *
state_of(HeapTuple tup, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, attnum, desc, &isnull);
	Oid			typoutput;
	bool		isvarlena;

	if (isnull)
		return NULL;
	getTypeOutputInfo(TupleDescAttr(desc, attnum - 1)->atttypid, &typoutput, &isvarlena);
	return OidOutputFunctionCall(typoutput, d);
}

/* {"pk": value, ...} of a row, numbers as numbers. */
static Jsonb *
row_key(Relation rel, HeapTuple tup)
{
	PgappJsonbBuilder b = {0};
	Bitmapset  *pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	TupleDesc	desc = RelationGetDescr(rel);
	int			attr = -1;

	pgapp_jsonb_begin_object(&b);
	while ((attr = bms_next_member(pk, attr)) >= 0)
	{
		AttrNumber	attnum = attr + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		bool		isnull;
		Datum		d = heap_getattr(tup, attnum, desc, &isnull);

		pgapp_jsonb_key(&b, NameStr(att->attname));
		if (isnull)
			pgapp_jsonb_add_null(&b);
		else if (att->atttypid == INT2OID)
			pgapp_jsonb_add_int(&b, DatumGetInt16(d));
		else if (att->atttypid == INT4OID)
			pgapp_jsonb_add_int(&b, DatumGetInt32(d));
		else if (att->atttypid == INT8OID)
			pgapp_jsonb_add_int(&b, DatumGetInt64(d));
		else
		{
			Oid			typoutput;
			bool		isvarlena;

			getTypeOutputInfo(att->atttypid, &typoutput, &isvarlena);
			pgapp_jsonb_add_string(&b, OidOutputFunctionCall(typoutput, d));
		}
	}
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

static void
write_log(Relation rel, HeapTuple tup, const char *col, const char *machine,
		  const char *from, const char *to)
{
	Oid			argtypes[7] = {OIDOID, JSONBOID, NAMEOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID};
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	PgappOwnerSwitch sw;
	int			ret;

	args[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	args[1] = JsonbPGetDatum(row_key(rel, tup));
	args[2] = DirectFunctionCall1(namein, CStringGetDatum(col));
	args[3] = CStringGetTextDatum(machine);
	if (from)
		args[4] = CStringGetTextDatum(from);
	else
		nulls[4] = 'n';
	args[5] = CStringGetTextDatum(to);
	/* who changed it: the user before switching to the owner */
	args[6] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_become_owner(&sw);
	PG_TRY();
	{
		if (log_plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare("INSERT INTO pgapp.transition_log"
										   " (tbl, row_key, col, machine, from_state, to_state, changed_by)"
										   " VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, argtypes);

			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(plan);
			log_plan = plan;
		}
		ret = SPI_execute_plan(log_plan, args, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	SPI_finish();
}

/*
 * Refuse (PT422 on the column) a move from "from" (NULL: a new row) to
 * "to" that machine does not allow.
 */
static void
check_transition(Relation rel, const char *machine, const char *col,
				 const char *from, const char *to)
{
	const char *from_echo = from ? pgapp_echo(from) : "nil";
	const char *to_echo = pgapp_echo(to);
	const char *msg = NULL;

	switch (pgapp_machine_check(machine, from, to))
	{
		case MACHINE_TRANSITION_OK:
			return;
		case MACHINE_TRANSITION_FORBIDDEN:
			msg = psprintf("cannot transition from %s to %s", from_echo, to_echo);
			break;
		case MACHINE_TRANSITION_NOT_INITIAL:
			msg = psprintf("cannot start as %s", to_echo);
			break;
		case MACHINE_TRANSITION_UNKNOWN_STATE:
			msg = "is invalid";
			break;
	}
	pgapp_error_report_field(RelationGetRelid(rel), col, msg, true);
}

/*
 * pgapp._transition_trigger(machine, col [, 'log'])
 */
PG_FUNCTION_INFO_V1(pgapp_transition_trigger);
Datum
pgapp_transition_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *tg;
	TupleDesc	desc;
	HeapTuple	newtup;
	HeapTuple	oldtup = NULL;
	int			attnum;
	char	   *from;
	char	   *to;
	const char *machine;
	const char *col;
	bool		log_mode;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" was not called by trigger manager", "pgapp._transition_trigger"));
	tg = trigdata->tg_trigger;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) ||
		tg->tgnargs < 2)
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" must be fired for INSERT or UPDATE of each row, with a machine and a column",
					   "pgapp._transition_trigger"),
				errhint("Attach it with pgapp.enforce_transitions()."));
	machine = tg->tgargs[0];
	col = tg->tgargs[1];
	log_mode = tg->tgnargs > 2 && strcmp(tg->tgargs[2], "log") == 0;
	if (log_mode == TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" checks BEFORE and logs AFTER the change", "pgapp._transition_trigger"));

	desc = RelationGetDescr(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		newtup = trigdata->tg_newtuple;
		oldtup = trigdata->tg_trigtuple;
	}
	else
		newtup = trigdata->tg_trigtuple;

	attnum = SPI_fnumber(desc, col);
	if (attnum <= 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_COLUMN),
				errmsg("column \"%s\" of relation \"%s\" does not exist",
					   col, RelationGetRelationName(trigdata->tg_relation)),
				errhint("Attach the machine again with pgapp.enforce_transitions()."));

	to = state_of(newtup, desc, attnum);
	from = oldtup ? state_of(oldtup, desc, attnum) : NULL;

	/* nothing to check or log: unchanged, or no state at all */
	if (to == NULL || (from != NULL && strcmp(from, to) == 0))
		return PointerGetDatum(log_mode ? NULL : newtup);

	if (log_mode)
	{
		write_log(trigdata->tg_relation, newtup, col, machine, from, to);
		return PointerGetDatum(NULL);
	}

	check_transition(trigdata->tg_relation, machine, col, from, to);
	return PointerGetDatum(newtup);
}

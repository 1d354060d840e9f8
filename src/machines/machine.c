/*-------------------------------------------------------------------------
 *
 * machine.c
 *	  Status machines: declared transitions, enforced by a C trigger and
 *	  checked by validate_transition in changesets.
 *
 * A machine is a row of pgapp.machine: {"state": ["next", ...], ...} plus
 * optional initial states.  Backends keep compiled machines in a hash in
 * CacheMemoryContext; a statement trigger on pgapp.machine sends a relcache
 * invalidation for that table, and the callback registered by
 * changeset_def.c calls pgapp_machine_invalidate(), so every backend
 * reloads a machine after its definition changes (at its next command in
 * the defining session, at commit elsewhere).
 *
 * A machine belongs to the role that defined it (pgapp.machine.owner):
 * only that role, its members and superusers may redefine or drop it, as
 * PostgreSQL checks ALTER and DROP.  Nobody but the extension's owner may
 * write pgapp.machine directly: define_machine checks and compiles the
 * definition as the caller, then writes it with the owner's rights.
 *
 * The trigger (pgapp._transition_trigger) runs BEFORE INSERT OR UPDATE OF
 * the column to check, and, when the table is attached with log => true,
 * again AFTER to record the change in pgapp.transition_log.  The log is
 * written with the extension owner's rights, so ordinary roles can add to
 * it only through the trigger; a row-level security policy shows each role
 * only the entries of rows it may read (pgapp.row_visible).
 *
 * Errors echo at most 64 characters of a state or name the caller sent
 * (pgapp_echo).
 *
 * src/machine.c
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
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "changesets/changeset_int.h"
#include "core/error.h"
#include "core/json_util.h"

typedef struct MachineState
{
	char	   *name;
	int			ntargets;
	int		   *targets;		/* indexes into states, in declared order */
	bool		initial;
} MachineState;

typedef struct Machine
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		valid;
	bool		has_initial;
	int			nstates;
	MachineState *states;
	MemoryContext mcxt;
} Machine;

static HTAB *machines = NULL;
static Oid	machine_table_oid = InvalidOid;
static SPIPlanPtr log_plan = NULL;

static Machine *machine_get(const char *name, bool missing_ok);
static int	state_index(Machine *m, const char *state);
static void check_name(const char *name, const char *what);

/*
 * The OID of pgapp.machine, remembered for the invalidation callback.
 */
Oid
pgapp_machine_table_oid(void)
{
	return machine_table_oid;
}

void
pgapp_machine_invalidate(void)
{
	HASH_SEQ_STATUS status;
	Machine    *m;

	if (machines == NULL)
		return;
	hash_seq_init(&status, machines);
	while ((m = hash_seq_search(&status)) != NULL)
		m->valid = false;
}

static void
check_name(const char *name, const char *what)
{
	if (name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s name must not be empty", what));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				errcode(ERRCODE_NAME_TOO_LONG),
				errmsg("%s name \"%s\" is too long", what, pgapp_echo(name)),
				errdetail("Names are at most %d bytes.", NAMEDATALEN - 1));
}

/*
 * Compile transitions/initial into m (allocating in the current context).
 * Raises 22023 naming the offending state.
 */
static void
compile(Machine *m, const char *name, Jsonb *transitions, ArrayType *initial)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			i = 0;

	if (!pgapp_jsonb_is_object(transitions) || JB_ROOT_COUNT(transitions) == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("transitions of machine \"%s\" must be a non-empty JSON object", name),
				errhint("Map each state to the states it may move to, e.g. {\"todo\": [\"done\"], \"done\": []}."));

	m->nstates = JB_ROOT_COUNT(transitions);
	m->states = palloc0(sizeof(MachineState) * m->nstates);

	/* first the states (the keys), then the targets */
	it = JsonbIteratorInit(&transitions->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_KEY)
			m->states[i++].name = pnstrdup(v.val.string.val, v.val.string.len);

	for (i = 0; i < m->nstates; i++)
	{
		JsonbValue *targets = pgapp_jsonb_get(&transitions->root, m->states[i].name);
		int			n = pgapp_jsonb_array_length(targets);

		if (n < 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("transitions from state \"%s\" of machine \"%s\" must be a JSON array of states",
						   pgapp_echo(m->states[i].name), name),
					errhint("Use [] for a state with no way out."));
		m->states[i].targets = palloc(sizeof(int) * Max(n, 1));
		for (int j = 0; j < n; j++)
		{
			JsonbValue *t = pgapp_jsonb_array_get(targets, j);
			char	   *target = pgapp_jsonb_value_cstring(t);
			int			k;

			if (target == NULL)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("transitions from state \"%s\" of machine \"%s\" must be state names, not %s",
							   pgapp_echo(m->states[i].name), name,
							   pgapp_echo(pgapp_jsonb_value_to_cstring(t))));
			k = state_index(m, target);
			if (k < 0)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("machine \"%s\" has a transition from \"%s\" to unknown state \"%s\"",
							   name, pgapp_echo(m->states[i].name), pgapp_echo(target)),
						errhint("Every target must also be a key of the transitions object; use [] for a final state."));
			m->states[i].targets[m->states[i].ntargets++] = k;
		}
	}

	m->has_initial = (initial != NULL);
	if (initial != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(initial, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("initial states of machine \"%s\" must not be empty", name),
					errhint("Pass NULL to allow any state on insert."));
		for (int j = 0; j < n; j++)
		{
			char	   *state;
			int			k;

			if (nulls[j])
				ereport(ERROR,
						errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("initial states of machine \"%s\" must not contain nulls", name));
			state = TextDatumGetCString(elems[j]);
			k = state_index(m, state);
			if (k < 0)
				ereport(ERROR,
						errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("initial state \"%s\" is not a state of machine \"%s\"", pgapp_echo(state), name));
			m->states[k].initial = true;
		}
	}
}

static int
state_index(Machine *m, const char *state)
{
	for (int i = 0; i < m->nstates; i++)
		if (m->states[i].name != NULL && strcmp(m->states[i].name, state) == 0)
			return i;
	return -1;
}

/*
 * The compiled machine, loading it when needed; NULL or 42704 when missing.
 */
static Machine *
machine_get(const char *name, bool missing_ok)
{
	Machine    *m;
	bool		found;
	char		key[NAMEDATALEN] = {0};
	int			ret;
	MemoryContext oldcxt;
	Jsonb	   *transitions = NULL;
	ArrayType  *initial = NULL;
	bool		exists = false;

	check_name(name, "machine");
	if (machines == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(Machine);
		ctl.hcxt = CacheMemoryContext;
		machines = hash_create("pgapp machines", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	strlcpy(key, name, NAMEDATALEN);
	m = hash_search(machines, key, HASH_FIND, &found);
	if (found && m->valid)
		return m;

	/* (re)load from pgapp.machine with the extension's rights */
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_spi_select_as_owner("SELECT transitions, initial FROM pgapp.machine"
							  " WHERE name OPERATOR(pg_catalog.=) $1", name);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d;

		exists = true;
		oldcxt = MemoryContextSwitchTo(CacheMemoryContext);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		transitions = DatumGetJsonbPCopy(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			initial = DatumGetArrayTypePCopy(d);
		MemoryContextSwitchTo(oldcxt);
	}
	if (!OidIsValid(machine_table_oid))
		machine_table_oid = get_relname_relid("machine", pgapp_schema_oid());
	SPI_finish();

	if (!exists)
	{
		if (found)
			hash_search(machines, key, HASH_REMOVE, NULL);
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("machine \"%s\" does not exist", name),
				errhint("Define it with pgapp.define_machine()."));
	}

	m = hash_search(machines, key, HASH_ENTER, &found);
	if (found && m->mcxt != NULL)
		MemoryContextDelete(m->mcxt);
	m->valid = false;
	m->mcxt = AllocSetContextCreate(CacheMemoryContext, "pgapp machine", ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(m->mcxt);
	PG_TRY();
	{
		compile(m, name, transitions, initial);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		hash_search(machines, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	pfree(transitions);
	if (initial)
		pfree(initial);
	m->valid = true;
	return m;
}

void
pgapp_machine_check_exists(const char *machine)
{
	(void) machine_get(machine, false);
}

CsTransitionResult
pgapp_machine_check(const char *machine, const char *from_state, const char *to_state)
{
	Machine    *m = machine_get(machine, false);
	int			to = state_index(m, to_state);
	int			from;

	if (to < 0)
		return CS_TRANSITION_UNKNOWN_STATE;
	if (from_state == NULL)
		return (!m->has_initial || m->states[to].initial) ? CS_TRANSITION_OK : CS_TRANSITION_NOT_INITIAL;
	from = state_index(m, from_state);
	if (from == to)
		return CS_TRANSITION_OK;
	if (from < 0)
		return CS_TRANSITION_FORBIDDEN;
	for (int i = 0; i < m->states[from].ntargets; i++)
		if (m->states[from].targets[i] == to)
			return CS_TRANSITION_OK;
	return CS_TRANSITION_FORBIDDEN;
}

/*
 * Refuse (42501) unless the current user has the rights of the role that
 * owns machine name; the caller is connected to SPI.  Returns whether the
 * machine exists.
 */
static bool
check_machine_owner(const char *name)
{
	bool		isnull;
	Oid			owner;

	pgapp_spi_select_as_owner("SELECT owner FROM pgapp.machine"
							  " WHERE name OPERATOR(pg_catalog.=) $1", name);
	if (SPI_processed == 0)
		return false;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
	{
		char	   *owner_name = GetUserNameFromId(owner, true);

		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("must be owner of machine \"%s\"", name),
				owner_name ? errdetail("Machine \"%s\" belongs to role \"%s\".", name, owner_name)
				: errdetail("The role that defined machine \"%s\" no longer exists.", name),
				errhint("Only its owner, a member of the owner role or a superuser may change or drop it."));
	}
	return true;
}

/*
 * pgapp.define_machine(machine text, transitions jsonb, initial text[]):
 * a new machine belongs to the caller; an existing one may be redefined
 * only by its owner.
 */
PG_FUNCTION_INFO_V1(pgapp_define_machine);
Datum
pgapp_define_machine(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "machine");
	Jsonb	   *transitions;
	Machine		scratch = {0};
	int			ret;
	Oid			argtypes[4] = {TEXTOID, JSONBOID, TEXTARRAYOID, OIDOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	check_name(name, "machine");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("transitions must not be null"));
	transitions = PG_GETARG_JSONB_P(1);
	compile(&scratch, name, transitions, PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2));

	args[0] = CStringGetTextDatum(name);
	args[1] = JsonbPGetDatum(transitions);
	args[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	args[3] = ObjectIdGetDatum(GetUserId());
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	(void) check_machine_owner(name);
	/* the owner again, for a machine another role created since the check */
	ret = pgapp_spi_execute_as_owner("INSERT INTO pgapp.machine AS m (name, transitions, initial, owner)"
									 " VALUES ($1, $2, $3, $4)"
									 " ON CONFLICT (name) DO UPDATE"
									 " SET transitions = EXCLUDED.transitions, initial = EXCLUDED.initial,"
									 "     updated_at = pg_catalog.now()"
									 " WHERE pg_catalog.pg_has_role($4, m.owner, 'USAGE')",
									 4, argtypes, args, nulls);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("must be owner of machine \"%s\"", name),
				errdetail("Another role defined machine \"%s\" at the same time.", name));
	SPI_finish();
	pgapp_machine_invalidate();
	PG_RETURN_VOID();
}

/*
 * pgapp.drop_machine(machine text): for its owner; refused while a trigger
 * or a changeset uses the machine.
 */
PG_FUNCTION_INFO_V1(pgapp_drop_machine);
Datum
pgapp_drop_machine(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "machine");
	int			ret;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	check_name(name, "machine");
	args[0] = CStringGetTextDatum(name);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (!check_machine_owner(name))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("machine \"%s\" does not exist", name));
	ret = SPI_execute_with_args(
		"SELECT t.tgrelid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_trigger t"
		" WHERE t.tgfoid OPERATOR(pg_catalog.=) 'pgapp._transition_trigger()'::pg_catalog.regprocedure"
		"   AND pg_catalog.position(t.tgargs, pg_catalog.convert_to($1, 'UTF8')"
		"                           OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea) OPERATOR(pg_catalog.=) 1"
		" UNION ALL"
		" SELECT 'changeset ' OPERATOR(pg_catalog.||) d.name FROM pgapp.changeset_def d,"
		"        pg_catalog.jsonb_array_elements(d.rules) AS r"
		"  WHERE r OPERATOR(pg_catalog.->>) 'machine' OPERATOR(pg_catalog.=) $1"
		" LIMIT 1",
		1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(ERROR,
				errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				errmsg("cannot drop machine \"%s\" because %s uses it", name,
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)));
	ret = pgapp_spi_execute_as_owner("DELETE FROM pgapp.machine WHERE name OPERATOR(pg_catalog.=) $1",
									 1, argtypes, args, NULL);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("machine \"%s\" does not exist", name));
	SPI_finish();
	pgapp_machine_invalidate();
	PG_RETURN_VOID();
}

/*
 * pgapp.transition_allowed(machine, from_state, to_state) -> bool
 * A NULL from_state asks whether to_state may be the first state.
 */
PG_FUNCTION_INFO_V1(pgapp_transition_allowed);
Datum
pgapp_transition_allowed(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "machine");
	char	   *from = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *to = pgapp_arg_cstring(fcinfo, 2, "to_state");
	Machine    *m = machine_get(name, false);

	if (from != NULL && state_index(m, from) < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("\"%s\" is not a state of machine \"%s\"", pgapp_echo(from), name));
	if (state_index(m, to) < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("\"%s\" is not a state of machine \"%s\"", pgapp_echo(to), name));
	PG_RETURN_BOOL(pgapp_machine_check(name, from, to) == CS_TRANSITION_OK);
}

/*
 * pgapp.allowed_transitions(machine, from_state) -> text[], in declared
 * order; with a NULL from_state, the initial states.
 */
PG_FUNCTION_INFO_V1(pgapp_allowed_transitions);
Datum
pgapp_allowed_transitions(PG_FUNCTION_ARGS)
{
	char	   *name = pgapp_arg_cstring(fcinfo, 0, "machine");
	Machine    *m = machine_get(name, false);
	Datum	   *elems = palloc(sizeof(Datum) * Max(m->nstates, 1));
	int			n = 0;

	if (PG_ARGISNULL(1))
	{
		for (int i = 0; i < m->nstates; i++)
			if (!m->has_initial || m->states[i].initial)
				elems[n++] = CStringGetTextDatum(m->states[i].name);
	}
	else
	{
		char	   *from = text_to_cstring(PG_GETARG_TEXT_PP(1));
		int			k = state_index(m, from);

		if (k < 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("\"%s\" is not a state of machine \"%s\"", pgapp_echo(from), name));
		for (int i = 0; i < m->states[k].ntargets; i++)
			elems[n++] = CStringGetTextDatum(m->states[m->states[k].targets[i]].name);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

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
check_enum_coverage(Machine *m, const char *name, Oid enumtype)
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
			if (state_index(m, lfirst(lc)) < 0)
				appendStringInfo(&missing, "%s\"%s\"", missing.len ? ", " : "", (char *) lfirst(lc));
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
	CsField		f;
	char	   *qrel;
	char	   *sql;
	int			ret;

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

	pgapp_cs_resolve_field(relid, col, false, &f);
	if (f.typcategory != TYPCATEGORY_STRING && f.typcategory != TYPCATEGORY_ENUM)
		ereport(ERROR,
				errcode(ERRCODE_DATATYPE_MISMATCH),
				errmsg("status column \"%s\" must be text or an enum, not %s",
					   col, format_type_be(f.typid)));
	m = machine_get(name, false);
	if (f.typcategory == TYPCATEGORY_ENUM)
		check_enum_coverage(m, name, f.typid);
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

	qrel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
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
					   quote_identifier(trigger_name("pgapp_transition_", col, "_log")),
					   quote_identifier(col), qrel,
					   quote_literal_cstr(name), quote_literal_cstr(col));
	else
	{
		/* drop a log trigger left from an earlier attachment, quietly */
		Oid			argtypes[2] = {OIDOID, NAMEOID};
		Datum		args[2];

		args[0] = ObjectIdGetDatum(relid);
		args[1] = DirectFunctionCall1(namein, CStringGetDatum(trigger_name("pgapp_transition_", col, "_log")));
		ret = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger"
									" WHERE tgrelid OPERATOR(pg_catalog.=) $1"
									"   AND tgname OPERATOR(pg_catalog.=) $2",
									2, argtypes, args, NULL, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		sql = SPI_processed == 0 ? NULL
			: psprintf("DROP TRIGGER %s ON %s",
					   quote_identifier(trigger_name("pgapp_transition_", col, "_log")), qrel);
	}
	if (sql != NULL && (ret = SPI_execute(sql, false, 0)) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	SPI_finish();
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

	{
		CsErrors	errors = {0};
		const char *values[2];
		const char *msg = NULL;

		values[0] = from ? pgapp_echo(from) : "nil";
		values[1] = pgapp_echo(to);
		switch (pgapp_machine_check(machine, from, to))
		{
			case CS_TRANSITION_OK:
				return PointerGetDatum(newtup);
			case CS_TRANSITION_FORBIDDEN:
				msg = psprintf("cannot transition from %s to %s", values[0], values[1]);
				break;
			case CS_TRANSITION_NOT_INITIAL:
				msg = psprintf("cannot start as %s", values[1]);
				break;
			case CS_TRANSITION_UNKNOWN_STATE:
				msg = "is invalid";
				break;
		}
		pgapp_cs_add_error(&errors, col, msg);
		pgapp_cs_report(pgapp_cs_errors_body(&errors), RelationGetRelid(trigdata->tg_relation),
						col, true);
	}
	return PointerGetDatum(newtup);		/* not reached */
}

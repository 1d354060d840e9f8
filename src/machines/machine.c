/*-------------------------------------------------------------------------
 *
 * machine.c
 *	  Status machines: definitions and their cache, the transition check,
 *	  and the SQL functions define_machine, drop_machine,
 *	  transition_allowed and allowed_transitions.
 *
 * A machine is a row of pgapp.machine: {"state": ["next", ...], ...} plus
 * optional initial states.  Backends keep compiled machines in a
 * definition cache (core/defcache.h); a statement trigger on pgapp.machine
 * sends a relcache invalidation for that table, and this module's
 * relcache_invalidate callback marks the cache stale, so every backend
 * reloads a machine after its definition changes (at its next command in
 * the defining session, at commit elsewhere).
 *
 * A machine belongs to the role that defined it (pgapp.machine.owner):
 * only that role, its members and superusers may redefine or drop it, as
 * PostgreSQL checks ALTER and DROP.  Nobody but the extension's owner may
 * write pgapp.machine directly: define_machine checks and compiles the
 * definition as the caller, then writes it with the owner's rights.
 *
 * The trigger that enforces a machine on a table is in machine_trigger.c.
 * Errors echo at most 64 characters of a state or name the caller sent
 * (pgapp_echo).
 *
 * src/machines/machine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "machine_int.h"

static void compile(Machine *m, const char *name, Jsonb *transitions, ArrayType *initial);
static void compile_definition(PgappDefEntry *entry, const char *name,
							   Datum *values, bool *nulls);
static void machines_relcache_invalidate(Oid relid);

static const PgappDefKind machine_kind = {
	.what = "machine",
	.table = "machine",
	.select_sql = "SELECT transitions, initial FROM pgapp.machine"
	" WHERE name OPERATOR(pg_catalog.=) $1",
	.hint = "Define it with pgapp.define_machine().",
	.entrysize = sizeof(Machine),
	.compile = compile_definition,
};

static PgappDefCache machines = PGAPP_DEFCACHE_INIT(&machine_kind);

const PgappModule pgapp_machines_module = {
	.name = "machines",
	.relcache_invalidate = machines_relcache_invalidate,
};

/* A change to pgapp.machine (or to every relation) makes machines stale. */
static void
machines_relcache_invalidate(Oid relid)
{
	pgapp_defcache_invalidate(&machines, relid);
}

/* Mark the initial states (a non-empty array of states). */
static void
compile_initial(Machine *m, const char *name, ArrayType *initial)
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
		k = pgapp_machine_state_index(m, state);
		if (k < 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("initial state \"%s\" is not a state of machine \"%s\"", pgapp_echo(state), name));
		m->states[k].initial = true;
	}
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
			k = pgapp_machine_state_index(m, target);
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
		compile_initial(m, name, initial);
}

/* The defcache's compile callback: a row (transitions, initial). */
static void
compile_definition(PgappDefEntry *entry, const char *name, Datum *values, bool *nulls)
{
	compile((Machine *) entry, name, DatumGetJsonbP(values[0]),
			nulls[1] ? NULL : DatumGetArrayTypeP(values[1]));
}

int
pgapp_machine_state_index(const Machine *m, const char *state)
{
	for (int i = 0; i < m->nstates; i++)
		if (m->states[i].name != NULL && strcmp(m->states[i].name, state) == 0)
			return i;
	return -1;
}

Machine *
pgapp_machine_get(const char *name)
{
	return (Machine *) pgapp_defcache_get(&machines, name, false);
}

void
pgapp_machine_check_exists(const char *machine)
{
	(void) pgapp_machine_get(machine);
}

MachineTransition
pgapp_machine_check(const char *machine, const char *from_state, const char *to_state)
{
	Machine    *m = pgapp_machine_get(machine);
	int			to = pgapp_machine_state_index(m, to_state);
	int			from;

	if (to < 0)
		return MACHINE_TRANSITION_UNKNOWN_STATE;
	if (from_state == NULL)
		return (!m->has_initial || m->states[to].initial) ? MACHINE_TRANSITION_OK : MACHINE_TRANSITION_NOT_INITIAL;
	from = pgapp_machine_state_index(m, from_state);
	if (from == to)
		return MACHINE_TRANSITION_OK;
	if (from < 0)
		return MACHINE_TRANSITION_FORBIDDEN;
	for (int i = 0; i < m->states[from].ntargets; i++)
		if (m->states[from].targets[i] == to)
			return MACHINE_TRANSITION_OK;
	return MACHINE_TRANSITION_FORBIDDEN;
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

	pgapp_check_definition_name(name, "machine");
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
	pgapp_defcache_invalidate(&machines, InvalidOid);
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

	pgapp_check_definition_name(name, "machine");
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
	pgapp_defcache_invalidate(&machines, InvalidOid);
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
	Machine    *m = pgapp_machine_get(name);

	if (from != NULL && pgapp_machine_state_index(m, from) < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("\"%s\" is not a state of machine \"%s\"", pgapp_echo(from), name));
	if (pgapp_machine_state_index(m, to) < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("\"%s\" is not a state of machine \"%s\"", pgapp_echo(to), name));
	PG_RETURN_BOOL(pgapp_machine_check(name, from, to) == MACHINE_TRANSITION_OK);
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
	Machine    *m = pgapp_machine_get(name);
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
		int			k = pgapp_machine_state_index(m, from);

		if (k < 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("\"%s\" is not a state of machine \"%s\"", pgapp_echo(from), name));
		for (int i = 0; i < m->states[k].ntargets; i++)
			elems[n++] = CStringGetTextDatum(m->states[m->states[k].targets[i]].name);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

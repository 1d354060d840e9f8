/*-------------------------------------------------------------------------
 *
 * multi_exec.c
 *	  pgapp.transact: run a multi's steps in one subtransaction and report
 *	  the result, or the failed step, through the error model.
 *
 * The multi is read and checked before anything runs.  Then every step
 * runs, in order, inside one internal subtransaction (a savepoint when the
 * caller is inside a transaction block): a merge's steps are inserted after
 * it when it runs.  The first step that fails ends the run: the
 * subtransaction rolls back, undoing every step's writes, NOTIFYs,
 * broadcasts and enqueued jobs, and the failure names the step, its error,
 * its HTTP status and the results of the steps before it.
 *
 * Steps open no subtransaction of their own: a changeset write runs in
 * transact's (pgapp.insert alone writes in one of its own), and the step
 * leaves its write's state in fail.write so that, once transact's
 * subtransaction is rolled back, a violated constraint the changeset
 * declares (or a validate_table trigger's field errors) becomes the step's
 * 422 exactly as pgapp.insert would report it.  One subtransaction, and one
 * subtransaction id, per transact rather than one per step.
 *
 * A step fails when it says so (an invalid changeset, a missing row, a
 * function's {"error": ...}) or when an error is raised while it runs.
 * Raised errors a request can cause become the step's error (PTnnn: status
 * nnn and the body's errors; integrity violations 409; permission 403;
 * data exceptions 400; anything else 500).  Errors that are not the step's
 * to report are re-raised after the rollback: serialization failures and
 * deadlocks (the client retries the transaction), cancels and shutdowns,
 * resource and internal errors, and mistakes in the multi itself (a
 * reference that finds nothing, a function returning something else than
 * {"ok"} or {"error"}: pgapp_multi_error_is_ours).
 *
 * src/multi/multi_exec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/resowner.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "multi_int.h"

/* Where a run is; fields change inside PG_TRY, so it lives in memory. */
typedef struct MultiRun
{
	List	   *steps;			/* MultiStep *, merges' steps inserted */
	List	   *results;		/* MultiResult * */
	const char *current;		/* the running step's name */
	bool		failed;
	MultiFailure fail;
} MultiRun;

/* Should an error raised in a step end the transact (re-raised)? */
static bool
error_propagates(ErrorData *edata)
{
	int			cat = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	return pgapp_multi_error_is_ours ||
		edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||	/* lock_timeout, NOWAIT */
		cat == ERRCODE_TRANSACTION_ROLLBACK ||
		cat == ERRCODE_INSUFFICIENT_RESOURCES ||
		cat == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		cat == ERRCODE_OPERATOR_INTERVENTION ||
		cat == ERRCODE_SYSTEM_ERROR ||
		cat == ERRCODE_CONFIG_FILE_ERROR ||
		cat == ERRCODE_INTERNAL_ERROR;
}

/* The HTTP status of PTnnn, or 0. */
static int
pgapp_status_of(int sqlerrcode)
{
	const char *code = unpack_sql_state(sqlerrcode);
	int			status;

	if (code[0] != 'P' || code[1] != 'T' || strspn(code + 2, "0123456789") != 3)
		return 0;
	status = atoi(code + 2);
	return status >= PGAPP_MIN_ERROR_STATUS && status <= PGAPP_MAX_ERROR_STATUS ? status : 0;
}

/* A pgapp error's DETAIL as jsonb (NULL when it is not a JSON object). */
static Jsonb *
detail_json(const char *detail)
{
	Jsonb	   *jb;

	if (detail == NULL || detail[0] != '{')
		return NULL;
	jb = pgapp_jsonb_parse_or_null(detail);
	return jb != NULL && pgapp_jsonb_is_object(jb) ? jb : NULL;
}

/* {"message", "sqlstate"[, "detail"][, "constraint"]} of a raised error. */
static Jsonb *
error_object(ErrorData *edata)
{
	PgappJsonbBuilder b = {0};

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "message");
	pgapp_jsonb_add_string(&b, pga_truncate_for_message(edata->message ? edata->message : "", 256));
	pgapp_jsonb_key(&b, "sqlstate");
	pgapp_jsonb_add_string(&b, unpack_sql_state(edata->sqlerrcode));
	if (edata->detail != NULL)
	{
		pgapp_jsonb_key(&b, "detail");
		pgapp_jsonb_add_string(&b, pga_truncate_for_message(edata->detail, 256));
	}
	if (edata->constraint_name != NULL)
	{
		pgapp_jsonb_key(&b, "constraint");
		pgapp_jsonb_add_string(&b, edata->constraint_name);
	}
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

/* The failure of a step that raised edata. */
static void
map_error(ErrorData *edata, MultiFailure *fail)
{
	int			status = pgapp_status_of(edata->sqlerrcode);
	int			cat = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	if (status != 0)
	{
		Jsonb	   *body = detail_json(edata->detail);
		JsonbValue *errors = body ? pgapp_jsonb_get_key(body, "errors") : NULL;

		fail->status = status;
		fail->error = errors ? pgapp_jsonb_from_value(errors) : body ? body : error_object(edata);
		return;
	}
	fail->error = error_object(edata);
	if (cat == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
		fail->status = 409;
	else if (edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		fail->status = 403;
	else if (cat == ERRCODE_DATA_EXCEPTION)
		fail->status = 400;
	else
		fail->status = 500;
}

/* Run a merge step: its function's multi, read against the results so far. */
static List *
run_merge(MultiStep *s, MultiRun *run)
{
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fcinfo, 1);
	Datum		d;
	List	   *names = NIL;
	List	   *steps;
	ListCell   *lc;

	fmgr_info(s->fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(pgapp_multi_changes(run->results));
	fcinfo->args[0].isnull = false;
	d = FunctionCallInvoke(fcinfo);

	/* from here on, a mistake is in the multi the function built */
	pgapp_multi_error_is_ours = true;
	if (fcinfo->isnull)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("merge function %s returned null", format_procedure_qualified(s->fn)),
				errhint("A merge function returns a pgapp.multi (pgapp.multi() when there is nothing to add)."));
	foreach(lc, run->steps)
	{
		MultiStep  *other = lfirst(lc);

		if (other->name != NULL)
			names = lappend(names, other->name);
	}
	steps = pgapp_multi_read(DatumGetJsonbP(d), names);
	if (list_length(run->steps) + list_length(steps) > MULTI_MAX_STEPS)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("multi has too many steps"),
				errdetail("A multi has at most %d steps, counting those merges add.", MULTI_MAX_STEPS));
	pgapp_multi_error_is_ours = false;
	return steps;
}

/* Run the steps; stops at the first failure (run->failed). */
static void
run_steps(MultiRun *run)
{
	for (int i = 0; i < list_length(run->steps); i++)
	{
		MultiStep  *s = list_nth(run->steps, i);
		Jsonb	   *value;
		MultiResult *r;

		CHECK_FOR_INTERRUPTS();
		pgapp_multi_error_is_ours = false;
		if (s->op == MULTI_MERGE)
		{
			List	   *more;

			run->current = psprintf("merge %s", format_procedure_qualified(s->fn));
			more = run_merge(s, run);
			for (int j = 0; j < list_length(more); j++)
				run->steps = list_insert_nth(run->steps, i + 1 + j, list_nth(more, j));
			continue;
		}
		run->current = s->name;
		run->fail.write = NULL;
		value = pgapp_multi_run_step(s, run->results, &run->fail);
		run->fail.write = NULL;
		if (value == NULL)
		{
			run->failed = true;
			return;
		}
		r = palloc(sizeof(MultiResult));
		r->name = s->name;
		r->value = value;
		run->results = lappend(run->results, r);
	}
}

/* {"ok": false, "failed_step", "error", "status", "changes_so_far"} */
static Jsonb *
failure_body(MultiRun *run)
{
	const char *keys[] = {"ok", "failed_step", "error", "status", "changes_so_far"};
	JsonbValue	v[5];
	JsonbValue *values[5];

	v[0].type = jbvBool;
	v[0].val.boolean = false;
	v[1].type = jbvString;
	v[1].val.string.val = (char *) run->current;
	v[1].val.string.len = strlen(run->current);
	pgapp_jsonb_root_value(run->fail.error, &v[2]);
	v[3].type = jbvNumeric;
	v[3].val.numeric = int64_to_numeric(run->fail.status);
	pgapp_jsonb_root_value(pgapp_multi_changes(run->results), &v[4]);
	for (int i = 0; i < 5; i++)
		values[i] = &v[i];
	return pgapp_jsonb_raw_object(5, keys, values);
}

/* {"ok": true, "changes": {...}} */
static Jsonb *
success_body(MultiRun *run)
{
	const char *keys[] = {"ok", "changes"};
	JsonbValue	v[2];
	JsonbValue *values[] = {&v[0], &v[1]};

	v[0].type = jbvBool;
	v[0].val.boolean = true;
	pgapp_jsonb_root_value(pgapp_multi_changes(run->results), &v[1]);
	return pgapp_jsonb_raw_object(2, keys, values);
}

/* error_mode argument: true to return failures, false to raise them. */
static bool
returns_failures(FunctionCallInfo fcinfo)
{
	char	   *mode;

	if (PG_ARGISNULL(1))
		return pgapp_error_returns();
	mode = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(mode, "return") == 0)
		return true;
	if (strcmp(mode, "raise") == 0)
		return false;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("error_mode must be 'return', 'raise' or null, not \"%s\"", pgapp_echo(mode)),
			errdetail("Null follows pgapp.error_mode."));
	return false;				/* not reached */
}

/*
 * pgapp.transact(m pgapp.multi, error_mode text) -> jsonb
 */
PG_FUNCTION_INFO_V1(pgapp_transact);
Datum
pgapp_transact(PG_FUNCTION_ARGS)
{
	Jsonb	   *m = pgapp_multi_arg(fcinfo, 0);
	bool		returns = returns_failures(fcinfo);
	MultiRun   *run = palloc0(sizeof(MultiRun));
	ErrorData  *edata = NULL;
	PgappSubxact sx;
	PgappError	err = {0};
	Jsonb	   *volatile mapped = NULL;

	run->steps = pgapp_multi_read(m, NIL);
	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		run_steps(run);
		if (!run->failed)
			pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		edata = pgapp_subxact_abort(&sx);
		if (error_propagates(edata))
		{
			pgapp_multi_error_is_ours = false;
			ReThrowError(edata);
		}
		if (run->fail.write != NULL)
			mapped = pgapp_changeset_write_errors(run->fail.write, edata);
		if (mapped != NULL)
		{
			/* a constraint the changeset declares: its field errors */
			run->fail.status = 422;
			run->fail.error = mapped;
		}
		else
			map_error(edata, &run->fail);
		run->failed = true;
	}
	PG_END_TRY();

	if (!run->failed)
		PG_RETURN_JSONB_P(success_body(run));
	if (edata == NULL)
	{
		/* a step failed without raising: undo every step */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(sx.oldcontext);
		CurrentResourceOwner = sx.oldowner;
	}

	err.status = run->fail.status;
	err.body = failure_body(run);
	err.message = psprintf("multi step \"%s\" failed", run->current);
	if (!returns)
		(void) pgapp_error_report(&err, true);
	if (pgapp_error_returns())
		PG_RETURN_JSONB_P(pgapp_error_report(&err, false));
	PG_RETURN_JSONB_P(err.body);
}

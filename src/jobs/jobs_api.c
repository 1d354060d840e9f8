/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  The job queue's SQL entry points that act for a role: pgapp.enqueue,
 *	  pgapp.enqueue_many, pgapp.cancel_job and pgapp.retry_job.
 *
 * A job runs as the role that enqueued it, and only that role (or a member
 * of pgapp_admin) may cancel or retry it.  A SECURITY DEFINER function
 * cannot tell who called it, so these entry points are C functions that run
 * as the caller: each notes GetUserId() and then runs the install script's
 * pgapp._job_<name> function as the schema owner, passing its arguments
 * and the caller's oid.  The work itself (checks, unique keys, the insert)
 * is SQL there; only the identity is decided here.
 *
 * src/jobs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "jobs.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"


/*
 * A prepared call of pgapp._job_<name>($1..$n, caller), kept for the
 * session.
 */
typedef struct OwnerCall
{
	const char *sql;
	int			nargs;			/* without the caller */
	Oid			argtypes[JOBS_MAX_CALL_ARGS];
	SPIPlanPtr	plan;
} OwnerCall;

/*
 * Run call with the function's arguments and the caller's oid as the last
 * one, as the schema owner; returns the first column of the first row,
 * copied into the caller's memory context (*isnull set).
 */
static Datum
call_as_owner(FunctionCallInfo fcinfo, OwnerCall *call, bool *isnull)
{
	Datum		values[JOBS_MAX_CALL_ARGS + 1];
	char		nulls[JOBS_MAX_CALL_ARGS + 1];
	Oid			caller = GetUserId();
	PgappOwnerSwitch sw;
	Datum		result = (Datum) 0;
	int			ret;

	Assert(call->nargs <= JOBS_MAX_CALL_ARGS && call->nargs == PG_NARGS());
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (call->plan == NULL)
	{
		Oid			types[JOBS_MAX_CALL_ARGS + 1];
		SPIPlanPtr	plan;

		memcpy(types, call->argtypes, sizeof(Oid) * call->nargs);
		types[call->nargs] = OIDOID;
		plan = SPI_prepare(call->sql, call->nargs + 1, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", call->sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		call->plan = plan;
	}
	for (int i = 0; i < call->nargs; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[call->nargs] = ObjectIdGetDatum(caller);
	nulls[call->nargs] = ' ';

	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_plan(call->plan, values, nulls, false, 1);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	*isnull = true;
	if (SPI_processed == 1)
	{
		Oid			type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
		int16		typlen;
		bool		typbyval;

		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		get_typlenbyval(type, &typlen, &typbyval);
		if (!*isnull)
			result = SPI_datumTransfer(result, typbyval, typlen);
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	return result;
}

#define ENQUEUE_ARGTYPES {TEXTOID, REGPROCOID, JSONBOID, TIMESTAMPTZOID, INT4OID, INT4OID, \
						  TEXTARRAYOID, INTERVALOID, INTERVALOID}

/*
 * pgapp.enqueue(queue, worker, args, scheduled_at, priority, max_attempts,
 * unique_by, unique_for, discard_after) -> bigint
 */
PG_FUNCTION_INFO_V1(pgapp_job_enqueue);
Datum
pgapp_job_enqueue(PG_FUNCTION_ARGS)
{
	static OwnerCall call = {
		"SELECT (pgapp._job_enqueue_many($1, $2, pg_catalog.jsonb_build_array($3), $4, $5, $6, $7, $8, $9, $10))[1]",
		9, ENQUEUE_ARGTYPES, NULL
	};
	bool		isnull;
	Datum		id = call_as_owner(fcinfo, &call, &isnull);

	if (isnull)
		elog(ERROR, "pgapp._job_enqueue_many returned no id");
	PG_RETURN_DATUM(id);
}

/* pgapp.enqueue_many(queue, worker, args_list, ...) -> bigint[] */
PG_FUNCTION_INFO_V1(pgapp_job_enqueue_many);
Datum
pgapp_job_enqueue_many(PG_FUNCTION_ARGS)
{
	static OwnerCall call = {
		"SELECT pgapp._job_enqueue_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		9, ENQUEUE_ARGTYPES, NULL
	};
	bool		isnull;
	Datum		ids = call_as_owner(fcinfo, &call, &isnull);

	if (isnull)
		elog(ERROR, "pgapp._job_enqueue_many returned no ids");
	PG_RETURN_DATUM(ids);
}

/* pgapp.cancel_job(id bigint) -> boolean */
PG_FUNCTION_INFO_V1(pgapp_job_cancel_job);
Datum
pgapp_job_cancel_job(PG_FUNCTION_ARGS)
{
	static OwnerCall call = {"SELECT pgapp._job_cancel_job($1, $2)", 1, {INT8OID}, NULL};
	bool		isnull;
	Datum		done = call_as_owner(fcinfo, &call, &isnull);

	PG_RETURN_BOOL(!isnull && DatumGetBool(done));
}

/* pgapp.retry_job(id bigint) -> boolean */
PG_FUNCTION_INFO_V1(pgapp_job_retry_job);
Datum
pgapp_job_retry_job(PG_FUNCTION_ARGS)
{
	static OwnerCall call = {"SELECT pgapp._job_retry_job($1, $2)", 1, {INT8OID}, NULL};
	bool		isnull;
	Datum		done = call_as_owner(fcinfo, &call, &isnull);

	PG_RETURN_BOOL(!isnull && DatumGetBool(done));
}

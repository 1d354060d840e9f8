/*-------------------------------------------------------------------------
 *
 * jobs_api.c
 *	  The job queue's SQL entry points in C: those that act for a role
 *	  (pgapp.enqueue, pgapp.enqueue_many, pgapp.cancel_job and
 *	  pgapp.retry_job), and those that reach shared memory
 *	  (pgapp.job_progress, pgapp._job_workers, pgapp._job_wake_workers,
 *	  pgapp._job_interrupt).
 *
 * A job runs as the role that enqueued it, and only that role (or a member
 * of pgapp_admin) may cancel or retry it.  A SECURITY DEFINER function
 * cannot tell who called it, so these entry points are C functions that run
 * as the caller: each notes GetUserId() and then runs the install script's
 * pgapp._job_<name> function as the schema owner, passing its arguments
 * and the caller's oid.  The work itself (checks, unique keys, the insert)
 * is SQL there; only the identity is decided here.
 *
 * Takes the lock of pgapp_jobs_shared in SHARED mode (pgapp._job_workers;
 * see jobs_shmem.c), and a slot's spinlock for its progress fields.
 *
 * src/jobs/jobs_api.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "core/settings.h"
#include "core/util.h"
#include "jobs_int.h"


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

/*
 * pgapp._job_wake_workers(queue text, n integer) -> void: at commit, wake
 * n idle workers of the queue (n jobs were made due), and the supervisor
 * when fewer are idle.  Does nothing without shared memory (the jobs wait
 * until workers can run).
 */
PG_FUNCTION_INFO_V1(pgapp_job_wake_workers);
Datum
pgapp_job_wake_workers(PG_FUNCTION_ARGS)
{
	if (pgapp_jobs_shared != NULL && !PG_ARGISNULL(0))
		pgapp_jobs_wake_at_commit(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  PG_ARGISNULL(1) ? 1 : Max(PG_GETARG_INT32(1), 1));
	PG_RETURN_VOID();
}

/*
 * pgapp._job_interrupt(id bigint, pid integer) -> void: at commit, cancel
 * the job in the worker (pid) that claimed it.
 */
PG_FUNCTION_INFO_V1(pgapp_job_interrupt);
Datum
pgapp_job_interrupt(PG_FUNCTION_ARGS)
{
	if (pgapp_jobs_shared != NULL && !PG_ARGISNULL(0))
		pgapp_jobs_interrupt_at_commit(PG_GETARG_INT64(0), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}

/*
 * pgapp.job_progress(percent numeric, message text DEFAULT NULL) -> void:
 * from inside a job, report how far it has come.  It goes to the worker's
 * slot (the job's own transaction is not visible until it ends); the
 * supervisor broadcasts it on jobs:<id> and pgapp.workers shows it.
 */
PG_FUNCTION_INFO_V1(pgapp_job_progress);
Datum
pgapp_job_progress(PG_FUNCTION_ARGS)
{
	JobsSlot   *s = pgapp_jobs_my_slot;
	double		percent;
	char	   *message = NULL;

	if (s == NULL || pg_atomic_read_u64(&s->job_id) == 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("function \"pgapp.job_progress\" can only be called by a job that a pgapp worker runs"),
				errhint("External workers report what they do in their own way; heartbeat keeps their jobs."));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("percent must not be null"));
	percent = DatumGetFloat8(DirectFunctionCall1(numeric_float8, PG_GETARG_DATUM(0)));
	if (!(percent >= 0 && percent <= 100))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("percent must be between 0 and 100"),
				errdetail("Got %g.", percent));
	if (!PG_ARGISNULL(1))
	{
		message = text_to_cstring(PG_GETARG_TEXT_PP(1));

		/*
		 * cut on a character boundary: the slot keeps JOBS_MESSAGE_LEN - 1
		 * bytes
		 */
		message[pg_mbcliplen(message, strlen(message), JOBS_MESSAGE_LEN - 1)] = '\0';
	}
	SpinLockAcquire(&s->mutex);
	s->progress = percent;
	if (message != NULL)
		strlcpy(s->progress_message, message, JOBS_MESSAGE_LEN);
	else
		s->progress_message[0] = '\0';
	s->progress_seq++;
	SpinLockRelease(&s->mutex);
	/* the supervisor relays it */
	pgapp_jobs_wake_supervisor(MyDatabaseId, false);
	PG_RETURN_VOID();
}

/*
 * pgapp._job_workers() -> SETOF record: the queue workers of this database
 * (slot, pid, queue, state, job_id, since, job_started, jobs_done,
 * progress, progress_message, progress_seq).
 */
PG_FUNCTION_INFO_V1(pgapp_job_workers);
Datum
pgapp_job_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (pgapp_jobs_shared == NULL)
		return (Datum) 0;		/* not preloaded: no workers */
	LWLockAcquire(pgapp_jobs_shared->lock, LW_SHARED);
	for (int i = 0; i < pgapp_jobs_shared->nslots; i++)
	{
		JobsSlot   *s = &pgapp_jobs_shared->slots[i];
		Datum		values[11];
		bool		nulls[11] = {false};
		int64		job_id;
		double		progress;
		char		message[JOBS_MESSAGE_LEN];
		uint32		seq;

		if (s->state == JOBS_FREE || s->dboid != MyDatabaseId)
			continue;
		job_id = (int64) pg_atomic_read_u64(&s->job_id);
		SpinLockAcquire(&s->mutex);
		progress = s->progress;
		memcpy(message, s->progress_message, JOBS_MESSAGE_LEN);
		seq = s->progress_seq;
		SpinLockRelease(&s->mutex);

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum(s->pid);
		nulls[1] = s->pid == 0;
		values[2] = CStringGetTextDatum(s->queue);
		values[3] = CStringGetTextDatum(s->state == JOBS_STARTING ? "starting" :
										job_id != 0 ? "running" :
										s->state == JOBS_BUSY ? "busy" : "idle");
		values[4] = Int64GetDatum(job_id);
		nulls[4] = job_id == 0;
		values[5] = TimestampTzGetDatum(s->since);
		values[6] = TimestampTzGetDatum(s->job_started);
		nulls[6] = job_id == 0;
		values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&s->jobs_done));
		values[8] = Float8GetDatum(progress);
		nulls[8] = job_id == 0 || progress < 0;
		values[9] = CStringGetTextDatum(message);
		nulls[9] = job_id == 0 || message[0] == '\0';
		values[10] = Int64GetDatum((int64) seq);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(pgapp_jobs_shared->lock);
	return (Datum) 0;
}

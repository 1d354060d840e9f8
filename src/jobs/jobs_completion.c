/*-------------------------------------------------------------------------
 *
 * jobs_completion.c
 *	  The completions of the jobs a queue worker ran in its open
 *	  transaction, written with one UPDATE just before it commits.
 *
 * src/jobs/jobs_completion.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "jobs_int.h"

/*
 * The jobs that succeeded in the open transaction: their completion is
 * written with one statement just before it commits (pgapp_jobs_flush_completions).
 * Nobody else changes a job a pgapp worker has claimed (pgapp.cancel_job
 * only flags it and asks the worker), so the state read then is the one
 * the job ran in.
 */
typedef struct Completions
{
	MemoryContext cxt;			/* reset at each flush */
	int			n;
	int			cap;
	Datum	   *ids;
	Datum	   *results;
	bool	   *result_nulls;
	Datum	   *progress;
	bool	   *progress_nulls;
	Datum	   *at;
} Completions;

static Completions done;

void
pgapp_jobs_add_completion(int64 id, Datum result, bool isnull, double progress)
{
	MemoryContext old = MemoryContextSwitchTo(done.cxt);

	if (done.n == done.cap)
	{
		done.cap = Max(64, done.cap * 2);
		done.ids = done.ids ? repalloc(done.ids, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
		done.results = done.results ? repalloc(done.results, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
		done.result_nulls = done.result_nulls ? repalloc(done.result_nulls, sizeof(bool) * done.cap) : palloc(sizeof(bool) * done.cap);
		done.progress = done.progress ? repalloc(done.progress, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
		done.progress_nulls = done.progress_nulls ? repalloc(done.progress_nulls, sizeof(bool) * done.cap) : palloc(sizeof(bool) * done.cap);
		done.at = done.at ? repalloc(done.at, sizeof(Datum) * done.cap) : palloc(sizeof(Datum) * done.cap);
	}
	done.ids[done.n] = Int64GetDatum(id);
	done.results[done.n] = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(result));
	done.result_nulls[done.n] = isnull;
	done.progress[done.n] = Float8GetDatum(progress);
	done.progress_nulls[done.n] = progress < 0;
	done.at[done.n] = TimestampTzGetDatum(GetCurrentTimestamp());
	done.n++;
	MemoryContextSwitchTo(old);
}

static int
by_job_id(const void *a, const void *b)
{
	int64		x = DatumGetInt64(done.ids[*(const int *) a]);
	int64		y = DatumGetInt64(done.ids[*(const int *) b]);

	return (x > y) - (x < y);
}

/*
 * Write the completions of the open transaction (SPI connected): one
 * UPDATE that finds the rows by id (= ANY, an index scan whatever the
 * statistics say) and each row's values by a binary search of its id in
 * the sorted id array (width_bucket).
 */
void
pgapp_jobs_flush_completions(void)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];
	int			dims[1];
	int			lbs[1] = {1};
	int			ret;
	MemoryContext old;
	int		   *order;
	Datum	   *ids;
	Datum	   *results;
	bool	   *result_nulls;
	Datum	   *progress;
	bool	   *progress_nulls;
	Datum	   *at;

	if (done.n == 0)
		return;
	if (plan == NULL)
	{
		Oid			types[4] = {INT8ARRAYOID, JSONBARRAYOID, FLOAT8ARRAYOID, TIMESTAMPTZARRAYOID};

		plan = SPI_prepare_cursor("UPDATE pgapp.job AS j SET state = 'completed',"
								  "       completed_at = ($4)[pg_catalog.width_bucket(j.id, $1)],"
								  "       result = ($2)[pg_catalog.width_bucket(j.id, $1)],"
								  "       progress = ($3)[pg_catalog.width_bucket(j.id, $1)], expires_at = NULL"
								  " WHERE j.id OPERATOR(pg_catalog.=) ANY ($1)"
								  "   AND j.state OPERATOR(pg_catalog.=) 'executing'",
								  4, types, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}
	old = MemoryContextSwitchTo(done.cxt);
	order = palloc(sizeof(int) * done.n);
	for (int i = 0; i < done.n; i++)
		order[i] = i;
	qsort(order, done.n, sizeof(int), by_job_id);
	ids = palloc(sizeof(Datum) * done.n);
	results = palloc(sizeof(Datum) * done.n);
	result_nulls = palloc(sizeof(bool) * done.n);
	progress = palloc(sizeof(Datum) * done.n);
	progress_nulls = palloc(sizeof(bool) * done.n);
	at = palloc(sizeof(Datum) * done.n);
	for (int i = 0; i < done.n; i++)
	{
		ids[i] = done.ids[order[i]];
		results[i] = done.results[order[i]];
		result_nulls[i] = done.result_nulls[order[i]];
		progress[i] = done.progress[order[i]];
		progress_nulls[i] = done.progress_nulls[order[i]];
		at[i] = done.at[order[i]];
	}
	dims[0] = done.n;
	values[0] = PointerGetDatum(construct_array(ids, done.n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_md_array(results, result_nulls, 1, dims, lbs,
												   JSONBOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(progress, progress_nulls, 1, dims, lbs,
												   FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(at, done.n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	MemoryContextSwitchTo(old);
	PushActiveSnapshot(GetTransactionSnapshot());
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	PopActiveSnapshot();
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	done.n = 0;
	done.cap = 0;
	done.ids = done.results = done.progress = done.at = NULL;
	done.result_nulls = done.progress_nulls = NULL;
	MemoryContextReset(done.cxt);
}

/* In the worker, once: the memory its completions live in. */
void
pgapp_jobs_completions_init(void)
{
	done.cxt = AllocSetContextCreate(TopMemoryContext, "pgapp jobs completions", ALLOCSET_DEFAULT_SIZES);
}

/*-------------------------------------------------------------------------
 *
 * ratelimit_algo.c
 *	  The rate limiting algorithms -- fixed window, sliding window and GCRA
 *	  -- as pure functions of a bucket's state and the time, with the checks
 *	  of their arguments and the test-only SQL function pgapp._rate_simulate.
 *
 * Nothing here touches shared memory: the caller holds the bucket's
 * spinlock while pgapp_rate_decide updates its state (ratelimit_check.c),
 * or passes a private state (pgapp._rate_simulate).  All the arithmetic is
 * in int64 with bounded operands (windows are capped by
 * pgapp.ratelimit_max_window, a GCRA burst must drain within the cap, a
 * GCRA interval is at least 1 microsecond).
 *
 * src/ratelimit/ratelimit_algo.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "core/json_util.h"
#include "core/settings.h"
#include "ratelimit_algo.h"

const char *const pgapp_rate_algorithm_names[3] = {"fixed", "sliding", "gcra"};

/* How much of a user's input an error message repeats */
#define RATE_ECHO_CHARS 64

/* Whole seconds, rounded up, of a non-negative number of microseconds. */
static int32
ceil_seconds(int64 usecs)
{
	if (usecs <= 0)
		return 0;
	return (int32) ((usecs + USECS_PER_SEC - 1) / USECS_PER_SEC);
}

/*
 * Fixed window: windows aligned on multiples of the window length; up to
 * max_requests in each.
 */
static void
decide_fixed(RateState *s, int32 max, int32 window, int64 now, RateDecision *d)
{
	int64		w = USECS(window);
	int64		start = now - (now % w);

	if (s->window_start != start)
	{
		s->window_start = start;
		s->count = 0;
	}
	d->limit = max;
	d->allowed = s->count < max;
	if (d->allowed)
		s->count++;
	d->remaining = (int32) Max(max - s->count, 0);
	d->reset_after = ceil_seconds(start + w - now);
	d->retry_after = d->allowed ? 0 : d->reset_after;
	s->expires_at = start + w;
}

/*
 * Sliding window (weighted two-window): the previous window's count,
 * weighted by how much of it still overlaps the last window length, plus
 * the current window's count.
 */
static void
decide_sliding(RateState *s, int32 max, int32 window, int64 now, RateDecision *d)
{
	int64		w = USECS(window);
	int64		start = now - (now % w);
	double		weight;
	double		estimate;

	if (s->window_start == start - w)
	{
		s->prev_count = s->count;
		s->count = 0;
		s->window_start = start;
	}
	else if (s->window_start != start)
	{
		s->prev_count = 0;
		s->count = 0;
		s->window_start = start;
	}
	weight = (double) (w - (now - start)) / (double) w;
	estimate = s->prev_count * weight + s->count;
	d->limit = max;
	d->allowed = estimate + 1 <= max;
	if (d->allowed)
	{
		s->count++;
		estimate += 1;
	}
	d->remaining = (int32) Max(floor(max - estimate), 0);
	d->reset_after = ceil_seconds(start + w - now);
	if (d->allowed)
		d->retry_after = 0;
	else if (s->count + 1 > max)
		d->retry_after = d->reset_after;	/* the current window alone is
											 * full */
	else
	{
		/* when prev_count * weight(t) + count + 1 <= max */
		double		needed = (double) (max - 1 - s->count) / (double) s->prev_count;
		int64		at = start + (int64) ceil((1.0 - needed) * (double) w);

		d->retry_after = Max(ceil_seconds(at - now), 1);
	}
	s->expires_at = start + 2 * w;
}

/*
 * The time between two requests at a steady GCRA rate: at least 1
 * microsecond (more than a million requests a second is as good as no
 * limit), so that nothing divides by zero.
 */
int64
pgapp_rate_gcra_interval(int32 max, int32 window)
{
	return Max(USECS(window) / max, 1);
}

/*
 * GCRA (as redis-cell): one request every window/max_requests, with burst
 * more allowed at once.  tat is when the bucket would be empty again.
 * check_limits keeps tolerance within pgapp.ratelimit_max_window, so the
 * sums below cannot overflow, and limit (burst + 1) fits an int32.
 */
static void
decide_gcra(RateState *s, int32 max, int32 window, int32 burst, int64 now, RateDecision *d)
{
	int64		interval = pgapp_rate_gcra_interval(max, window);
	int64		tolerance = interval * ((int64) burst + 1);
	int64		tat = Max(s->tat, now);
	int64		new_tat = tat + interval;
	int64		allow_at = new_tat - tolerance;

	d->limit = burst + 1;
	if (now < allow_at)
	{
		d->allowed = false;
		d->retry_after = Max(ceil_seconds(allow_at - now), 1);
		d->remaining = 0;
		d->reset_after = ceil_seconds(tat - now);
		s->expires_at = tat;
		return;
	}
	d->allowed = true;
	s->tat = new_tat;
	d->retry_after = 0;
	d->remaining = (int32) Min(Max((tolerance - (new_tat - now)) / interval, 0), (int64) burst);
	d->reset_after = ceil_seconds(new_tat - now);
	s->expires_at = new_tat;
}

/*
 * Decide one request at now on the state s (which the caller protects),
 * and update it.
 */
void
pgapp_rate_decide(RateAlgorithm alg, RateState *s, int32 max, int32 window, int32 burst,
				  int64 now, RateDecision *d)
{
	/*
	 * A window never moves back: a caller that read the clock before another
	 * one opened the next window counts in that window, not in a fresh copy
	 * of the previous one.
	 */
	if ((alg == RATE_FIXED || alg == RATE_SLIDING) && now < s->window_start)
		now = s->window_start;
	switch (alg)
	{
		case RATE_FIXED:
			decide_fixed(s, max, window, now, d);
			break;
		case RATE_SLIDING:
			decide_sliding(s, max, window, now, d);
			break;
		case RATE_GCRA:
			decide_gcra(s, max, window, burst, now, d);
			break;
	}
}

RateAlgorithm
pgapp_rate_parse_algorithm(const char *name)
{
	for (int i = 0; i < lengthof(pgapp_rate_algorithm_names); i++)
		if (strcmp(name, pgapp_rate_algorithm_names[i]) == 0)
			return (RateAlgorithm) i;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("unknown rate limiting algorithm \"%s\"", pgapp_rate_echo(name)),
			errhint("Use fixed, sliding or gcra."));
	return RATE_FIXED;			/* keep compiler quiet */
}

/*
 * A user's input, cut for an error message: at most RATE_ECHO_CHARS
 * characters, then "...".
 */
const char *
pgapp_rate_echo(const char *input)
{
	int			len = strlen(input);
	int			cut;

	if (len <= RATE_ECHO_CHARS)
		return input;
	cut = pg_mbcharcliplen(input, len, RATE_ECHO_CHARS);
	if (cut >= len)
		return input;
	return psprintf("%.*s...", cut, input);
}

/*
 * Refuse limits out of range (22023): non-positive, a window longer than
 * pgapp.ratelimit_max_window, a burst whose limit (burst + 1) would not fit
 * an integer, or a GCRA burst that takes longer than the cap to drain (the
 * bucket would live that long).
 */
void
pgapp_rate_check_limits(RateAlgorithm alg, int32 max, int32 window, int32 burst)
{
	if (max <= 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("max_requests must be greater than 0, not %d", max));
	if (window <= 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("window_seconds must be greater than 0, not %d", window));
	if (window > pgapp_ratelimit_max_window)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("window_seconds must be at most %d, not %d", pgapp_ratelimit_max_window, window),
				errdetail("A bucket lives as long as its window; \"%s\" caps windows.",
						  "pgapp.ratelimit_max_window"),
				errhint("A superuser can raise \"%s\".", "pgapp.ratelimit_max_window"));
	if (burst < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("burst must not be negative, not %d", burst));
	if (burst == PG_INT32_MAX)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("burst must be at most %d, not %d", PG_INT32_MAX - 1, burst),
				errdetail("The limit reported is burst + 1, an integer."));
	if (alg == RATE_GCRA)
	{
		int64		interval = pgapp_rate_gcra_interval(max, window);

		/* (burst + 1) * interval > cap, without overflowing */
		if ((int64) burst + 1 > USECS(pgapp_ratelimit_max_window) / interval)
		{
			unsigned long drain = (unsigned long) ceil(((double) burst + 1) * (double) interval /
													   USECS_PER_SEC);

			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("burst %d is too large for max_requests %d and window_seconds %d",
						   burst, max, window),
					errdetail_plural("A full burst takes %lu second to drain, more than \"%s\" (%d seconds).",
									 "A full burst takes %lu seconds to drain, more than \"%s\" (%d seconds).",
									 drain, drain, "pgapp.ratelimit_max_window", pgapp_ratelimit_max_window),
					errhint("Lower the burst, or raise max_requests and window_seconds together."));
		}
	}
}

/*
 * What a bucket of these limits still holds at now, in requests counted:
 * what evicting it would give back to its client.  Expired buckets hold
 * nothing.
 */
int64
pgapp_rate_weight(RateAlgorithm alg, int32 max, int32 window, const RateState *s, int64 now)
{
	if (s->expires_at <= now)
		return 0;
	switch (alg)
	{
		case RATE_FIXED:
			return s->count;
		case RATE_SLIDING:
			return s->count + s->prev_count;
		case RATE_GCRA:
			{
				int64		interval = pgapp_rate_gcra_interval(max, window);

				return (Max(s->tat - now, 0) + interval - 1) / interval;
			}
	}
	return 0;
}

/*
 * pgapp._rate_simulate(algorithm, max_requests, window_seconds, burst,
 * at float8[]) -> jsonb: the decisions for requests at the given times (in
 * seconds), on a private bucket.  The pure algorithms, for tests and docs.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_simulate);
Datum
pgapp_rate_simulate(PG_FUNCTION_ARGS)
{
	RateAlgorithm alg;
	int32		max;
	int32		window;
	int32		burst;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	RateState	s = {0};
	PgappJsonbBuilder b = {0};

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("arguments must not be null"));
	alg = pgapp_rate_parse_algorithm(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	max = PG_GETARG_INT32(1);
	window = PG_GETARG_INT32(2);
	burst = PG_GETARG_INT32(3);
	pgapp_rate_check_limits(alg, max, window, burst);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	pgapp_jsonb_begin_array(&b);
	for (int i = 0; i < n; i++)
	{
		RateDecision d;
		double		at;

		if (nulls[i])
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("times must not contain nulls"));
		at = DatumGetFloat8(elems[i]);
		pgapp_rate_decide(alg, &s, max, window, burst, (int64) llround(at * USECS_PER_SEC), &d);
		pgapp_jsonb_begin_object(&b);
		pgapp_jsonb_key(&b, "at");
		pgapp_jsonb_add_numeric(&b, DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(at))));
		pgapp_jsonb_key(&b, "allowed");
		pgapp_jsonb_add_bool(&b, d.allowed);
		pgapp_jsonb_key(&b, "remaining");
		pgapp_jsonb_add_int(&b, d.remaining);
		pgapp_jsonb_key(&b, "retry_after");
		pgapp_jsonb_add_int(&b, d.retry_after);
		pgapp_jsonb_key(&b, "reset_after");
		pgapp_jsonb_add_int(&b, d.reset_after);
		pgapp_jsonb_end_object(&b);
	}
	pgapp_jsonb_end_array(&b);
	PG_RETURN_JSONB_P(pgapp_jsonb_finish(&b));
}

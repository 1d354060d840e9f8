/*-------------------------------------------------------------------------
 *
 * ratelimit_algo.h
 *	  The rate limiting algorithms (ratelimit_algo.c): a bucket's state, a
 *	  decision, and pure functions of (state, now).  The floor of the rate
 *	  limiter: it knows nothing of shared memory.
 *
 * src/ratelimit/ratelimit_algo.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_RATELIMIT_ALGO_H
#define PGAPP_RATELIMIT_ALGO_H

#include "datatype/timestamp.h"

#define USECS(seconds) ((int64) (seconds) * USECS_PER_SEC)

typedef enum RateAlgorithm
{
	RATE_FIXED,
	RATE_SLIDING,
	RATE_GCRA
} RateAlgorithm;

extern const char *const pgapp_rate_algorithm_names[3];

/* A bucket's counters (all times in microseconds since the PostgreSQL epoch). */
typedef struct RateState
{
	int64		window_start;	/* fixed, sliding: start of the current window */
	int64		count;			/* requests counted in the current window */
	int64		prev_count;		/* sliding: requests in the previous window */
	int64		tat;			/* gcra: theoretical arrival time */
	int64		expires_at;		/* after this the bucket holds nothing */
} RateState;

/* What a check decides. */
typedef struct RateDecision
{
	bool		allowed;
	int32		limit;
	int32		remaining;
	int32		retry_after;	/* seconds */
	int32		reset_after;	/* seconds */
} RateDecision;

extern RateAlgorithm pgapp_rate_parse_algorithm(const char *name);
extern const char *pgapp_rate_echo(const char *input);
extern void pgapp_rate_check_limits(RateAlgorithm alg, int32 max, int32 window, int32 burst);
extern int64 pgapp_rate_gcra_interval(int32 max, int32 window);
extern void pgapp_rate_decide(RateAlgorithm alg, RateState *s, int32 max, int32 window,
							  int32 burst, int64 now, RateDecision *d);
extern int64 pgapp_rate_weight(RateAlgorithm alg, int32 max, int32 window, const RateState *s,
							   int64 now);

#endif							/* PGAPP_RATELIMIT_ALGO_H */

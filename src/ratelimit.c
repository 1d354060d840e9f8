/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  Rate limiting in shared memory: fixed window, sliding window and GCRA
 *	  counters that write no table and no WAL.
 *
 * The buckets live in a shared hash sized by pgapp.ratelimit_max_keys and
 * split into RATE_PARTITIONS partitions, each with its own LWLock.  A key
 * (limiter name + user key) is hashed once to 128 bits; the hash picks the
 * partition and identifies the bucket, and a truncated copy of the key is
 * kept only for display in pgapp.rate_buckets.
 *
 * Locking protocol:
 *	- partition LWLock, SHARED: look a bucket up; then the bucket's spinlock
 *	  protects its counters while they are read and updated (a few
 *	  instructions, no allocation, no error);
 *	- partition LWLock, EXCLUSIVE: insert or remove buckets of that
 *	  partition (the lookup is repeated after taking it);
 *	- all partition LWLocks, EXCLUSIVE, in ascending order: sweeping expired
 *	  buckets when the table is full (at most once a second, by whichever
 *	  backend wins a compare-and-swap on last_sweep);
 *	- counters in RateShared are atomics, taken without locks.
 * Nothing raises an error while a spinlock is held; the table-full error
 * is raised after every lock is released.
 *
 * Time is the real clock (GetCurrentTimestamp, not the frozen transaction
 * start), plus pgapp.ratelimit_clock_offset, a superuser-only setting that
 * lets tests move time instead of sleeping.  The algorithms are pure
 * functions of (state, now), also reachable through the test-only SQL
 * function pgapp._rate_simulate.
 *
 * src/ratelimit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "error.h"
#include "json_util.h"
#include "pgapp.h"
#include "ratelimit.h"

#define RATE_PARTITIONS 16
#define RATE_DISPLAY_LEN 64

/* GUCs (defined in pgapp.c) */
int			pgapp_ratelimit_max_keys = 10000;
int			pgapp_ratelimit_on_full = RATE_ON_FULL_ALLOW;
double		pgapp_ratelimit_clock_offset = 0;
char	   *pgapp_ratelimit_client_header = NULL;
char	   *pgapp_ratelimit_plan_claim = NULL;

const struct config_enum_entry pgapp_ratelimit_on_full_options[] = {
	{"allow", RATE_ON_FULL_ALLOW, false},
	{"deny", RATE_ON_FULL_DENY, false},
	{"error", RATE_ON_FULL_ERROR, false},
	{NULL, 0, false}
};

typedef enum RateAlgorithm
{
	RATE_FIXED,
	RATE_SLIDING,
	RATE_GCRA
} RateAlgorithm;

static const char *const algorithm_names[] = {"fixed", "sliding", "gcra"};

/* Hash key: 128 bits of the limiter and key. */
typedef struct RateKey
{
	uint64		h1;
	uint64		h2;
} RateKey;

/* A bucket's counters (all times in microseconds). */
typedef struct RateState
{
	int64		window_start;	/* fixed, sliding: start of the current window */
	int64		count;			/* requests counted in the current window */
	int64		prev_count;		/* sliding: requests in the previous window */
	int64		tat;			/* gcra: theoretical arrival time */
	int64		expires_at;		/* after this the bucket holds nothing */
} RateState;

typedef struct RateBucket
{
	RateKey		key;			/* hash key: must be first */
	slock_t		mutex;
	RateState	state;
	int32		algorithm;
	int32		max_requests;
	int32		window_seconds;
	int32		burst;
	char		display[RATE_DISPLAY_LEN];
} RateBucket;

typedef struct RateShared
{
	LWLockPadded *locks;
	pg_atomic_uint64 checks;
	pg_atomic_uint64 denials;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 full_events;
	pg_atomic_uint64 last_sweep;	/* when the table was last swept (rate_now) */
} RateShared;

/* What a check returns. */
typedef struct RateDecision
{
	bool		allowed;
	int32		limit;
	int32		remaining;
	int32		retry_after;	/* seconds */
	int32		reset_after;	/* seconds */
} RateDecision;

static RateShared *rate_shared = NULL;
static HTAB *rate_table = NULL;

static void ratelimit_shmem_request(void);
static void ratelimit_shmem_startup(void);
static const char *ratelimit_status(void);

const PgappModule pgapp_ratelimit_module = {
	.name = "ratelimit",
	.shmem_request = ratelimit_shmem_request,
	.shmem_startup = ratelimit_shmem_startup,
	.status = ratelimit_status,
};

static void
ratelimit_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(RateShared)));
	RequestAddinShmemSpace(hash_estimate_size(pgapp_ratelimit_max_keys, sizeof(RateBucket)));
	RequestNamedLWLockTranche("pgapp ratelimit", RATE_PARTITIONS);
}

/* Caller holds AddinShmemInitLock. */
static void
ratelimit_shmem_startup(void)
{
	bool		found;
	HASHCTL		info = {0};

	rate_shared = ShmemInitStruct("pgapp ratelimit", sizeof(RateShared), &found);
	if (!found)
	{
		rate_shared->locks = GetNamedLWLockTranche("pgapp ratelimit");
		pg_atomic_init_u64(&rate_shared->checks, 0);
		pg_atomic_init_u64(&rate_shared->denials, 0);
		pg_atomic_init_u64(&rate_shared->evictions, 0);
		pg_atomic_init_u64(&rate_shared->full_events, 0);
		pg_atomic_init_u64(&rate_shared->last_sweep, 0);
	}
	info.keysize = sizeof(RateKey);
	info.entrysize = sizeof(RateBucket);
	info.num_partitions = RATE_PARTITIONS;
	rate_table = ShmemInitHash("pgapp ratelimit buckets", pgapp_ratelimit_max_keys,
							   pgapp_ratelimit_max_keys, &info,
							   HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
}

static const char *
ratelimit_status(void)
{
	return rate_shared != NULL ? "ok" : "not preloaded";
}

/* ---------------------------------------------------------------------
 * The algorithms: pure functions of the state and the time
 * ---------------------------------------------------------------------
 */

#define USECS(seconds) ((int64) (seconds) * USECS_PER_SEC)

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
		d->retry_after = d->reset_after;	/* the current window alone is full */
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
 * GCRA (as redis-cell): one request every window/max_requests, with burst
 * more allowed at once.  tat is when the bucket would be empty again.
 */
static void
decide_gcra(RateState *s, int32 max, int32 window, int32 burst, int64 now, RateDecision *d)
{
	int64		interval = USECS(window) / max;
	int64		tolerance = interval * (burst + 1);
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
	d->remaining = (int32) Max((tolerance - (new_tat - now)) / interval, 0);
	d->reset_after = ceil_seconds(new_tat - now);
	s->expires_at = new_tat;
}

static void
decide(RateAlgorithm alg, RateState *s, int32 max, int32 window, int32 burst, int64 now,
	   RateDecision *d)
{
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

/* ---------------------------------------------------------------------
 * Arguments and the shared table
 * ---------------------------------------------------------------------
 */

/* The real clock, moved by pgapp.ratelimit_clock_offset (tests). */
static int64
rate_now(void)
{
	return (int64) GetCurrentTimestamp() + (int64) (pgapp_ratelimit_clock_offset * USECS_PER_SEC);
}

static RateAlgorithm
parse_algorithm(const char *name)
{
	for (int i = 0; i < lengthof(algorithm_names); i++)
		if (strcmp(name, algorithm_names[i]) == 0)
			return (RateAlgorithm) i;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("unknown rate limiting algorithm \"%s\"", name),
			errhint("Use fixed, sliding or gcra."));
	return RATE_FIXED;			/* keep compiler quiet */
}

static void
check_limits(int32 max, int32 window, int32 burst)
{
	if (max <= 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("max_requests must be greater than 0, not %d", max));
	if (window <= 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("window_seconds must be greater than 0, not %d", window));
	if (burst < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("burst must not be negative, not %d", burst));
}

/*
 * Named limiters arrive with pgapp.create_limiter; until then there is
 * one, "default".
 */
static void
check_limiter(const char *limiter)
{
	if (strcmp(limiter, "default") != 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("rate limiter \"%s\" does not exist", limiter),
				errdetail("Only the \"default\" limiter exists in this version."));
}

static RateKey
make_key(const char *limiter, const char *key, int keylen)
{
	RateKey		k;
	uint64		seed = hash_bytes_extended((const unsigned char *) limiter, strlen(limiter), 0);

	k.h1 = hash_bytes_extended((const unsigned char *) key, keylen, seed);
	k.h2 = hash_bytes_extended((const unsigned char *) key, keylen, seed ^ UINT64CONST(0x9E3779B97F4A7C15));
	return k;
}

static LWLock *
partition_lock(uint32 hashcode)
{
	return &rate_shared->locks[hashcode % RATE_PARTITIONS].lock;
}

/*
 * Remove buckets that hold nothing any more (expired).  Takes every
 * partition lock exclusively, in order.  Returns how many were removed.
 */
static int
sweep_expired(int64 now)
{
	HASH_SEQ_STATUS status;
	RateBucket *b;
	int			removed = 0;

	for (int i = 0; i < RATE_PARTITIONS; i++)
		LWLockAcquire(&rate_shared->locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&status, rate_table);
	while ((b = hash_seq_search(&status)) != NULL)
	{
		if (b->state.expires_at <= now)
		{
			hash_search(rate_table, &b->key, HASH_REMOVE, NULL);
			removed++;
		}
	}
	for (int i = RATE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&rate_shared->locks[i].lock);
	pg_atomic_fetch_add_u64(&rate_shared->evictions, removed);
	return removed;
}

/*
 * One check: find or create the bucket and let the algorithm decide.
 * Returns false when the table is full (nothing was counted).
 */
static bool
check_bucket(RateKey *key, const char *display, RateAlgorithm alg, int32 max, int32 window,
			 int32 burst, RateDecision *d)
{
	uint32		hashcode = get_hash_value(rate_table, key);
	LWLock	   *lock = partition_lock(hashcode);
	RateBucket *b;
	bool		found;
	int64		now;

	LWLockAcquire(lock, LW_SHARED);
	b = hash_search_with_hash_value(rate_table, key, hashcode, HASH_FIND, &found);
	if (!found)
	{
		LWLockRelease(lock);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		b = hash_search_with_hash_value(rate_table, key, hashcode, HASH_ENTER_NULL, &found);
		if (b == NULL)
		{
			LWLockRelease(lock);
			return false;
		}
		if (!found)
		{
			SpinLockInit(&b->mutex);
			memset(&b->state, 0, sizeof(RateState));
			b->algorithm = alg;
			b->max_requests = max;
			b->window_seconds = window;
			b->burst = burst;
			strlcpy(b->display, display, RATE_DISPLAY_LEN);
		}
	}
	/* the rules of the latest caller are the bucket's rules */
	now = rate_now();
	SpinLockAcquire(&b->mutex);
	if (b->algorithm != (int32) alg || b->max_requests != max || b->window_seconds != window ||
		b->burst != burst)
	{
		if (found && b->algorithm != (int32) alg)
			memset(&b->state, 0, sizeof(RateState));
		b->algorithm = alg;
		b->max_requests = max;
		b->window_seconds = window;
		b->burst = burst;
	}
	decide(alg, &b->state, max, window, burst, now, d);
	SpinLockRelease(&b->mutex);
	LWLockRelease(lock);
	return true;
}

/*
 * The check behind pgapp.check_rate and pgapp.rate_limit.
 */
static void
rate_check(const char *limiter, text *key, int32 max, int32 window, const char *algorithm,
		   int32 burst, RateDecision *d)
{
	RateAlgorithm alg;
	RateKey		k;
	char		display[RATE_DISPLAY_LEN];
	int			keylen;

	pgapp_require_shmem(rate_shared, "rate limiting");
	keylen = VARSIZE_ANY_EXHDR(key);
	if (keylen == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rate limit key must not be empty"));
	check_limits(max, window, burst);
	alg = parse_algorithm(algorithm);
	check_limiter(limiter);

	k = make_key(limiter, VARDATA_ANY(key), keylen);
	/* a display copy, cut on a character boundary */
	{
		int			n = pg_mbcliplen(VARDATA_ANY(key), keylen, RATE_DISPLAY_LEN - 1);

		memcpy(display, VARDATA_ANY(key), n);
		display[n] = '\0';
	}

	pg_atomic_fetch_add_u64(&rate_shared->checks, 1);
	if (!check_bucket(&k, display, alg, max, window, burst, d))
	{
		/*
		 * Full: make room from expired buckets, then apply the policy.  One
		 * backend sweeps at most once a second, so that a table full of live
		 * buckets costs a policy decision, not a scan under every lock.
		 */
		int64		now = rate_now();
		uint64		last = pg_atomic_read_u64(&rate_shared->last_sweep);
		bool		swept = false;

		if (now - (int64) last >= USECS_PER_SEC &&
			pg_atomic_compare_exchange_u64(&rate_shared->last_sweep, &last, (uint64) now))
			swept = sweep_expired(now) > 0;
		if (!swept || !check_bucket(&k, display, alg, max, window, burst, d))
		{
			pg_atomic_fetch_add_u64(&rate_shared->full_events, 1);
			switch ((RateOnFull) pgapp_ratelimit_on_full)
			{
				case RATE_ON_FULL_ALLOW:
				case RATE_ON_FULL_DENY:
					d->allowed = (pgapp_ratelimit_on_full == RATE_ON_FULL_ALLOW);
					d->limit = max;
					d->remaining = 0;
					d->retry_after = d->allowed ? 0 : window;
					d->reset_after = window;
					break;
				case RATE_ON_FULL_ERROR:
					ereport(ERROR,
							errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("no free slot in the rate limiter table"),
							errdetail("The table holds at most %d keys and none has expired.",
									  pgapp_ratelimit_max_keys),
							errhint("Raise \"%s\" and restart the server, or set \"%s\" to allow or deny.",
									"pgapp.ratelimit_max_keys", "pgapp.ratelimit_on_full"));
			}
		}
	}
	if (!d->allowed)
		pg_atomic_fetch_add_u64(&rate_shared->denials, 1);
}

static HeapTuple
decision_tuple(FunctionCallInfo fcinfo, RateDecision *d)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = BoolGetDatum(d->allowed);
	values[1] = Int32GetDatum(d->limit);
	values[2] = Int32GetDatum(d->remaining);
	values[3] = Int32GetDatum(d->retry_after);
	values[4] = Int32GetDatum(d->reset_after);
	return heap_form_tuple(tupdesc, values, nulls);
}

static void
read_args(FunctionCallInfo fcinfo, text **key, int32 *max, int32 *window, char **algorithm,
		  int32 *burst, char **limiter)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("rate limit key must not be null"));
	for (int i = 1; i < 6; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("%s must not be null",
						   (const char *[]) {"", "max_requests", "window_seconds", "algorithm", "burst", "limiter"}[i]));
	*key = PG_GETARG_TEXT_PP(0);
	*max = PG_GETARG_INT32(1);
	*window = PG_GETARG_INT32(2);
	*algorithm = text_to_cstring(PG_GETARG_TEXT_PP(3));
	*burst = PG_GETARG_INT32(4);
	*limiter = text_to_cstring(PG_GETARG_TEXT_PP(5));
}

/*
 * pgapp.check_rate(key, max_requests, window_seconds, algorithm, burst,
 *					limiter) -> pgapp.rate_decision
 */
PG_FUNCTION_INFO_V1(pgapp_check_rate);
Datum
pgapp_check_rate(PG_FUNCTION_ARGS)
{
	text	   *key;
	int32		max;
	int32		window;
	char	   *algorithm;
	int32		burst;
	char	   *limiter;
	RateDecision d;

	read_args(fcinfo, &key, &max, &window, &algorithm, &burst, &limiter);
	rate_check(limiter, key, max, window, algorithm, burst, &d);
	PG_RETURN_DATUM(HeapTupleGetDatum(decision_tuple(fcinfo, &d)));
}

/*
 * pgapp.rate_limit(...) -> void: PT429 through the error model when limited.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_limit);
Datum
pgapp_rate_limit(PG_FUNCTION_ARGS)
{
	text	   *key;
	int32		max;
	int32		window;
	char	   *algorithm;
	int32		burst;
	char	   *limiter;
	RateDecision d;

	read_args(fcinfo, &key, &max, &window, &algorithm, &burst, &limiter);
	rate_check(limiter, key, max, window, algorithm, burst, &d);
	if (!d.allowed)
	{
		PgappError err = {0};
		PgappJsonbBuilder b = {0};

		pgapp_jsonb_begin_object(&b);
		pgapp_jsonb_key(&b, "error");
		pgapp_jsonb_add_string(&b, "rate_limited");
		pgapp_jsonb_key(&b, "retry_after");
		pgapp_jsonb_add_int(&b, d.retry_after);
		pgapp_jsonb_key(&b, "limit");
		pgapp_jsonb_add_int(&b, d.limit);
		pgapp_jsonb_end_object(&b);
		err.status = 429;
		err.body = pgapp_jsonb_finish(&b);
		err.message = psprintf("rate limit exceeded: retry after %d second(s)", d.retry_after);
		err.hint = psprintf("At most %d requests per %d second(s) are allowed.", max, window);
		(void) pgapp_error_report(&err, true);
	}
	PG_RETURN_VOID();
}

/*
 * pgapp.rate_reset(key, limiter) -> boolean: forget a key's bucket.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_reset);
Datum
pgapp_rate_reset(PG_FUNCTION_ARGS)
{
	text	   *key;
	char	   *limiter;
	RateKey		k;
	uint32		hashcode;
	LWLock	   *lock;
	bool		found;

	pgapp_require_shmem(rate_shared, "rate limiting");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "key" : "limiter"));
	key = PG_GETARG_TEXT_PP(0);
	limiter = text_to_cstring(PG_GETARG_TEXT_PP(1));
	check_limiter(limiter);
	k = make_key(limiter, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	hashcode = get_hash_value(rate_table, &k);
	lock = partition_lock(hashcode);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	(void) hash_search_with_hash_value(rate_table, &k, hashcode, HASH_REMOVE, &found);
	LWLockRelease(lock);
	PG_RETURN_BOOL(found);
}

/*
 * pgapp._rate_buckets() -> SETOF record: the buckets, for pgapp.rate_buckets.
 * Partitions are read one at a time under their shared lock.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_buckets);
Datum
pgapp_rate_buckets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS status;
	RateBucket *b;
	int64		now;

	pgapp_require_shmem(rate_shared, "rate limiting");
	InitMaterializedSRF(fcinfo, 0);
	now = rate_now();
	for (int i = 0; i < RATE_PARTITIONS; i++)
		LWLockAcquire(&rate_shared->locks[i].lock, LW_SHARED);
	hash_seq_init(&status, rate_table);
	while ((b = hash_seq_search(&status)) != NULL)
	{
		Datum		values[7];
		bool		nulls[7] = {false};
		RateState	s;

		SpinLockAcquire(&b->mutex);
		s = b->state;
		SpinLockRelease(&b->mutex);
		values[0] = CStringGetTextDatum(b->display);
		values[1] = CStringGetTextDatum(algorithm_names[b->algorithm]);
		values[2] = Int32GetDatum(b->max_requests);
		values[3] = Int32GetDatum(b->window_seconds);
		values[4] = Int64GetDatum(b->algorithm == RATE_GCRA ? 0 : s.count);
		values[5] = TimestampTzGetDatum((TimestampTz) s.expires_at);
		values[6] = BoolGetDatum(s.expires_at <= now);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = RATE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&rate_shared->locks[i].lock);
	return (Datum) 0;
}

/*
 * pgapp._rate_stats() -> record: the counters, for pgapp.rate_stats.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_stats);
Datum
pgapp_rate_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false};
	long		buckets;

	pgapp_require_shmem(rate_shared, "rate limiting");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	for (int i = 0; i < RATE_PARTITIONS; i++)
		LWLockAcquire(&rate_shared->locks[i].lock, LW_SHARED);
	buckets = hash_get_num_entries(rate_table);
	for (int i = RATE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&rate_shared->locks[i].lock);
	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->checks));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->denials));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->evictions));
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->full_events));
	values[4] = Int64GetDatum((int64) buckets);
	values[5] = Int32GetDatum(pgapp_ratelimit_max_keys);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
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
	alg = parse_algorithm(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	max = PG_GETARG_INT32(1);
	window = PG_GETARG_INT32(2);
	burst = PG_GETARG_INT32(3);
	check_limits(max, window, burst);
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
		decide(alg, &s, max, window, burst, (int64) llround(at * USECS_PER_SEC), &d);
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

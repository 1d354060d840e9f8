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
 * Named limiters (ratelimit_limiter.c) give a group of keys its own quota
 * of buckets; each bucket records its limiter's registry slot, and a
 * limiter's used count is kept exact as buckets come and go.  Sweeping and
 * the save file are in ratelimit_store.c.
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
#include "ratelimit_int.h"

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

const char *const pgapp_rate_algorithm_names[3] = {"fixed", "sliding", "gcra"};

/* What a check returns. */
typedef struct RateDecision
{
	bool		allowed;
	int32		limit;
	int32		remaining;
	int32		retry_after;	/* seconds */
	int32		reset_after;	/* seconds */
} RateDecision;

RateShared *pgapp_rate_shared = NULL;
HTAB	   *pgapp_rate_table = NULL;

/* What check_bucket found. */
typedef enum RateCheckResult
{
	RATE_COUNTED,				/* the decision is made */
	RATE_FULL,					/* no bucket free for this limiter: nothing counted */
	RATE_STALE					/* the limiter was dropped or re-created meanwhile */
} RateCheckResult;

static void ratelimit_shmem_request(void);
static void ratelimit_shmem_startup(void);
static const char *ratelimit_status(void);

const PgappModule pgapp_ratelimit_module = {
	.name = "ratelimit",
	.shmem_request = ratelimit_shmem_request,
	.shmem_startup = ratelimit_shmem_startup,
	.status = ratelimit_status,
	.housekeeping = pgapp_rate_housekeeping,
};

static void
ratelimit_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(RateShared)));
	RequestAddinShmemSpace(hash_estimate_size(pgapp_ratelimit_max_keys, sizeof(RateBucket)));
	RequestNamedLWLockTranche("pgapp ratelimit", RATE_PARTITIONS + 1);
}

/* The key is already a 128-bit hash: its first 32 bits are the table's hash. */
static uint32
rate_key_hash(const void *key, Size keysize)
{
	return (uint32) ((const RateKey *) key)->h1;
}

/* Caller holds AddinShmemInitLock. */
static void
ratelimit_shmem_startup(void)
{
	bool		found;
	HASHCTL		info = {0};

	pgapp_rate_shared = ShmemInitStruct("pgapp ratelimit", sizeof(RateShared), &found);
	if (!found)
	{
		pgapp_rate_shared->locks = GetNamedLWLockTranche("pgapp ratelimit");
		pg_atomic_init_u64(&pgapp_rate_shared->checks, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->denials, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->evictions, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->full_events, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->last_sweep, 0);
		pgapp_rate_registry_init();
	}
	info.keysize = sizeof(RateKey);
	info.entrysize = sizeof(RateBucket);
	info.hash = rate_key_hash;
	info.num_partitions = RATE_PARTITIONS;
	pgapp_rate_table = ShmemInitHash("pgapp ratelimit buckets", pgapp_ratelimit_max_keys,
							   pgapp_ratelimit_max_keys, &info,
							   HASH_ELEM | HASH_FUNCTION | HASH_PARTITION | HASH_FIXED_SIZE);

	/*
	 * In the postmaster (not in a backend re-attaching under EXEC_BACKEND):
	 * restore the buckets saved at the last clean shutdown, and save them at
	 * the next one, as pg_stat_statements does with its statistics.
	 */
	if (!IsUnderPostmaster)
	{
		if (!found)
			pgapp_rate_load_file();
		pgapp_rate_save_at_exit();
	}
}

static const char *
ratelimit_status(void)
{
	return pgapp_rate_shared != NULL ? "ok" : "not preloaded";
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

/* ---------------------------------------------------------------------
 * Arguments and the shared table
 * ---------------------------------------------------------------------
 */

/* The real clock, moved by pgapp.ratelimit_clock_offset (tests). */
int64
pgapp_rate_now(void)
{
	return (int64) GetCurrentTimestamp() + (int64) (pgapp_ratelimit_clock_offset * USECS_PER_SEC);
}

RateAlgorithm
pgapp_rate_parse_algorithm(const char *name)
{
	for (int i = 0; i < lengthof(pgapp_rate_algorithm_names); i++)
		if (strcmp(name, pgapp_rate_algorithm_names[i]) == 0)
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

RateKey
pgapp_rate_make_key(const char *limiter, Oid dboid, const char *key, int keylen)
{
	RateKey		k;
	uint64		seed = hash_bytes_extended((const unsigned char *) limiter, strlen(limiter), dboid);

	k.h1 = hash_bytes_extended((const unsigned char *) key, keylen, seed);
	k.h2 = hash_bytes_extended((const unsigned char *) key, keylen, seed ^ UINT64CONST(0x9E3779B97F4A7C15));
	return k;
}

/* Take every partition lock, in ascending order (the registry lock, when
 * needed, is taken before). */
void
pgapp_rate_lock_all(LWLockMode mode)
{
	for (int i = 0; i < RATE_PARTITIONS; i++)
		LWLockAcquire(&pgapp_rate_shared->locks[i].lock, mode);
}

void
pgapp_rate_unlock_all(void)
{
	for (int i = RATE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&pgapp_rate_shared->locks[i].lock);
}

/*
 * Remove a bucket and give its place back to its limiter.  The caller holds
 * the bucket's partition lock (or all of them) exclusively.
 */
void
pgapp_rate_remove_bucket(RateBucket *b)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[b->limiter];

	if (pg_atomic_read_u32(&slot->incarnation) == b->incarnation)
		pg_atomic_fetch_sub_u32(&slot->used, 1);
	(void) hash_search(pgapp_rate_table, &b->key, HASH_REMOVE, NULL);
}

/*
 * Take one place of the limiter's quota for a new bucket.  "default" has
 * what the named limiters' quotas leave of the table.
 */
static bool
reserve_place(const RateLimiterRef *ref)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[ref->slot];
	uint32		quota;

	if (ref->slot == RATE_DEFAULT_SLOT)
		quota = pg_atomic_read_u32(&pgapp_rate_shared->default_quota);
	else
		quota = (uint32) slot->max_keys;
	if (pg_atomic_fetch_add_u32(&slot->used, 1) >= quota)
	{
		pg_atomic_fetch_sub_u32(&slot->used, 1);
		return false;
	}
	return true;
}

/*
 * One check: find or create the bucket and let the algorithm decide.
 */
static RateCheckResult
check_bucket(const RateLimiterRef *ref, RateKey *key, text *keytext, RateAlgorithm alg,
			 int32 max, int32 window, int32 burst, RateDecision *d)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[ref->slot];
	uint32		hashcode = get_hash_value(pgapp_rate_table, key);
	LWLock	   *lock = &pgapp_rate_shared->locks[hashcode % RATE_PARTITIONS].lock;
	RateBucket *b;
	bool		found;
	int64		now;

	LWLockAcquire(lock, LW_SHARED);
	/* under any partition lock the incarnation cannot change */
	if (pg_atomic_read_u32(&slot->incarnation) != ref->incarnation)
	{
		LWLockRelease(lock);
		return RATE_STALE;
	}
	b = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_FIND, &found);
	if (!found)
	{
		LWLockRelease(lock);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		if (pg_atomic_read_u32(&slot->incarnation) != ref->incarnation)
		{
			LWLockRelease(lock);
			return RATE_STALE;
		}
		b = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_FIND, &found);
		if (!found)
		{
			if (!reserve_place(ref))
			{
				LWLockRelease(lock);
				return RATE_FULL;
			}
			b = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_ENTER_NULL, &found);
			if (b == NULL)
			{
				pg_atomic_fetch_sub_u32(&slot->used, 1);
				LWLockRelease(lock);
				return RATE_FULL;
			}
			SpinLockInit(&b->mutex);
			memset(&b->state, 0, sizeof(RateState));
			b->algorithm = alg;
			b->max_requests = max;
			b->window_seconds = window;
			b->burst = burst;
			b->limiter = (int16) ref->slot;
			b->incarnation = ref->incarnation;
			/* a display copy, cut on a character boundary */
			{
				int			n = pg_mbcliplen(VARDATA_ANY(keytext), VARSIZE_ANY_EXHDR(keytext),
											 RATE_DISPLAY_LEN - 1);

				memcpy(b->display, VARDATA_ANY(keytext), n);
				b->display[n] = '\0';
			}
		}
	}
	/* the rules of the latest caller are the bucket's rules */
	now = pgapp_rate_now();
	SpinLockAcquire(&b->mutex);
	if (b->algorithm != (int32) alg || b->max_requests != max || b->window_seconds != window ||
		b->burst != burst)
	{
		if (b->algorithm != (int32) alg)
			memset(&b->state, 0, sizeof(RateState));
		b->algorithm = alg;
		b->max_requests = max;
		b->window_seconds = window;
		b->burst = burst;
	}
	decide(alg, &b->state, max, window, burst, now, d);
	SpinLockRelease(&b->mutex);
	LWLockRelease(lock);
	return RATE_COUNTED;
}

/*
 * The check behind pgapp.check_rate and pgapp.rate_limit.
 */
static void
rate_check(const char *limiter, text *key, int32 max, int32 window, RateAlgorithm alg,
		   int32 burst, RateDecision *d)
{
	RateLimiterRef ref;
	RateKey		k;
	int			keylen;
	RateCheckResult result;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	keylen = VARSIZE_ANY_EXHDR(key);
	if (keylen == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rate limit key must not be empty"));
	check_limits(max, window, burst);
	pgapp_rate_resolve_limiter(limiter, &ref);

	k = pgapp_rate_make_key(limiter, ref.slot == RATE_DEFAULT_SLOT ? InvalidOid : MyDatabaseId,
							VARDATA_ANY(key), keylen);

	pg_atomic_fetch_add_u64(&pgapp_rate_shared->limiters[ref.slot].checks, 1);
	while ((result = check_bucket(&ref, &k, key, alg, max, window, burst, d)) == RATE_STALE)
	{
		CHECK_FOR_INTERRUPTS();
		pgapp_rate_resolve_limiter(limiter, &ref);
	}
	if (result == RATE_FULL)
	{
		/*
		 * Full: make room from expired buckets, then apply the policy.  One
		 * backend sweeps at most once a second, so that a table full of live
		 * buckets costs a policy decision, not a scan under every lock.
		 */
		int64		now = pgapp_rate_now();
		uint64		last = pg_atomic_read_u64(&pgapp_rate_shared->last_sweep);

		if (now - (int64) last >= USECS_PER_SEC &&
			pg_atomic_compare_exchange_u64(&pgapp_rate_shared->last_sweep, &last, (uint64) now) &&
			pgapp_rate_sweep(now) > 0)
			result = check_bucket(&ref, &k, key, alg, max, window, burst, d);
	}
	if (result != RATE_COUNTED)
	{
		/* still full, or dropped during the sweep: the policy decides */
		pg_atomic_fetch_add_u64(&pgapp_rate_shared->limiters[ref.slot].full_events, 1);
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
				if (ref.slot == RATE_DEFAULT_SLOT)
					ereport(ERROR,
							errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("no free slot in the rate limiter table"),
							errdetail("The table holds at most %d keys and none has expired.",
									  pgapp_ratelimit_max_keys),
							errhint("Raise \"%s\" and restart the server, or set \"%s\" to allow or deny.",
									"pgapp.ratelimit_max_keys", "pgapp.ratelimit_on_full"));
				else
					ereport(ERROR,
							errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("rate limiter \"%s\" has no free slot", limiter),
							errdetail("The limiter holds at most %d keys and none has expired.",
									  pgapp_rate_shared->limiters[ref.slot].max_keys),
							errhint("Re-create the limiter with a larger max_keys, or set \"%s\" to allow or deny.",
									"pgapp.ratelimit_on_full"));
		}
	}
	if (!d->allowed)
	{
		pg_atomic_fetch_add_u64(&pgapp_rate_shared->limiters[ref.slot].denials, 1);
	}
}

static HeapTuple
decision_tuple(FunctionCallInfo fcinfo, RateDecision *d)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};

	/* looked up once per call site: a check must cost little more than a call */
	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;
	if (tupdesc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = tupdesc;
	}
	values[0] = BoolGetDatum(d->allowed);
	values[1] = Int32GetDatum(d->limit);
	values[2] = Int32GetDatum(d->remaining);
	values[3] = Int32GetDatum(d->retry_after);
	values[4] = Int32GetDatum(d->reset_after);
	return heap_form_tuple(tupdesc, values, nulls);
}

/*
 * What a check needs from the SQL arguments: explicit limits, or (for the
 * (key, limiter) forms) the limits the limiter was created with.
 */
typedef struct RateArgs
{
	text	   *key;
	int32		max;
	int32		window;
	RateAlgorithm algorithm;
	int32		burst;
	char	   *limiter;
} RateArgs;

static void
read_args(FunctionCallInfo fcinfo, RateArgs *a)
{
	static const char *const names[] = {"key", "max_requests", "window_seconds", "algorithm", "burst", "limiter"};

	for (int i = 0; i < PG_NARGS(); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					errmsg("%s must not be null",
						   PG_NARGS() == 2 && i == 1 ? "limiter" : i == 0 ? "rate limit key" : names[i]));
	a->key = PG_GETARG_TEXT_PP(0);
	if (PG_NARGS() == 2)
	{
		/* (key, limiter): the limiter's own limits */
		RateLimiterRef ref;

		a->limiter = text_to_cstring(PG_GETARG_TEXT_PP(1));
		pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
		pgapp_rate_resolve_limiter(a->limiter, &ref);
		if (!ref.has_defaults)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("rate limiter \"%s\" has no limits of its own", a->limiter),
					errhint("Pass max_requests and window_seconds, or create the limiter with them."));
		a->max = ref.max_requests;
		a->window = ref.window_seconds;
		a->algorithm = ref.algorithm;
		a->burst = ref.burst;
		return;
	}
	a->max = PG_GETARG_INT32(1);
	a->window = PG_GETARG_INT32(2);
	a->algorithm = pgapp_rate_parse_algorithm(text_to_cstring(PG_GETARG_TEXT_PP(3)));
	a->burst = PG_GETARG_INT32(4);
	a->limiter = text_to_cstring(PG_GETARG_TEXT_PP(5));
}

/*
 * pgapp.check_rate(key, max_requests, window_seconds, algorithm, burst,
 *					limiter) -> pgapp.rate_decision
 * pgapp.check_rate(key, limiter) -> pgapp.rate_decision
 */
PG_FUNCTION_INFO_V1(pgapp_check_rate);
Datum
pgapp_check_rate(PG_FUNCTION_ARGS)
{
	RateArgs	a;
	RateDecision d;

	read_args(fcinfo, &a);
	rate_check(a.limiter, a.key, a.max, a.window, a.algorithm, a.burst, &d);
	PG_RETURN_DATUM(HeapTupleGetDatum(decision_tuple(fcinfo, &d)));
}

/*
 * pgapp.rate_limit(...) -> void: PT429 through the error model when limited.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_limit);
Datum
pgapp_rate_limit(PG_FUNCTION_ARGS)
{
	RateArgs	a;
	RateDecision d;

	read_args(fcinfo, &a);
	rate_check(a.limiter, a.key, a.max, a.window, a.algorithm, a.burst, &d);
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
		err.hint = psprintf("At most %d requests per %d second(s) are allowed.", a.max, a.window);
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
	RateLimiterRef ref;
	RateKey		k;
	uint32		hashcode;
	LWLock	   *lock;
	RateBucket *b;
	bool		found;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "key" : "limiter"));
	key = PG_GETARG_TEXT_PP(0);
	limiter = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pgapp_rate_resolve_limiter(limiter, &ref);
	k = pgapp_rate_make_key(limiter, ref.slot == RATE_DEFAULT_SLOT ? InvalidOid : MyDatabaseId,
							VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	hashcode = get_hash_value(pgapp_rate_table, &k);
	lock = &pgapp_rate_shared->locks[hashcode % RATE_PARTITIONS].lock;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	b = hash_search_with_hash_value(pgapp_rate_table, &k, hashcode, HASH_FIND, &found);
	if (found)
		pgapp_rate_remove_bucket(b);
	LWLockRelease(lock);
	PG_RETURN_BOOL(found);
}

/*
 * pgapp._rate_buckets() -> SETOF record: the buckets, for pgapp.rate_buckets.
 * Every partition is held shared while the table is read, which also keeps
 * the limiters' names stable.  Buckets of other databases' named limiters
 * are not shown.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_buckets);
Datum
pgapp_rate_buckets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS status;
	RateBucket *b;
	int64		now;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	InitMaterializedSRF(fcinfo, 0);
	now = pgapp_rate_now();
	pgapp_rate_lock_all(LW_SHARED);
	hash_seq_init(&status, pgapp_rate_table);
	while ((b = hash_seq_search(&status)) != NULL)
	{
		Datum		values[8];
		bool		nulls[8] = {false};
		RateState	s;

		if (!pgapp_rate_slot_visible(b->limiter))
			continue;			/* another database's named limiter */
		SpinLockAcquire(&b->mutex);
		s = b->state;
		SpinLockRelease(&b->mutex);
		values[0] = CStringGetTextDatum(pgapp_rate_shared->limiters[b->limiter].name);
		values[1] = CStringGetTextDatum(b->display);
		values[2] = CStringGetTextDatum(pgapp_rate_algorithm_names[b->algorithm]);
		values[3] = Int32GetDatum(b->max_requests);
		values[4] = Int32GetDatum(b->window_seconds);
		values[5] = Int64GetDatum(b->algorithm == RATE_GCRA ? 0 : s.count);
		values[6] = TimestampTzGetDatum((TimestampTz) s.expires_at);
		values[7] = BoolGetDatum(s.expires_at <= now);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pgapp_rate_unlock_all();
	return (Datum) 0;
}

/*
 * pgapp.rate_stats() -> record: the counters, for pgapp.rate_stats.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_stats);
Datum
pgapp_rate_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false};
	long		buckets;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	pgapp_rate_lock_all(LW_SHARED);
	buckets = hash_get_num_entries(pgapp_rate_table);
	pgapp_rate_unlock_all();
	values[0] = Int64GetDatum((int64) pgapp_rate_total(RATE_CHECKS));
	values[1] = Int64GetDatum((int64) pgapp_rate_total(RATE_DENIALS));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&pgapp_rate_shared->evictions));
	values[3] = Int64GetDatum((int64) pgapp_rate_total(RATE_FULL_EVENTS));
	values[4] = Int64GetDatum((int64) buckets);
	values[5] = Int32GetDatum(pgapp_ratelimit_max_keys);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * pgapp.rate_sweep() -> integer: remove the expired buckets now (the
 * housekeeper does it every pgapp.ratelimit_sweep_interval).
 */
PG_FUNCTION_INFO_V1(pgapp_rate_sweep_now);
Datum
pgapp_rate_sweep_now(PG_FUNCTION_ARGS)
{
	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	PG_RETURN_INT32(pgapp_rate_sweep(pgapp_rate_now()));
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

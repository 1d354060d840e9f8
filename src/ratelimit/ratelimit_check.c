/*-------------------------------------------------------------------------
 *
 * ratelimit_check.c
 *	  Rate limiting in shared memory -- fixed window, sliding window and
 *	  GCRA counters that write no table and no WAL: the check path, eviction,
 *	  the SQL API and the module entry.
 *
 * A full table never stops counting: a new key evicts a bucket of its own
 * limiter.  The victim is the cheapest of RATE_EVICT_SAMPLE buckets taken at
 * random from the directory (an array of every bucket): the one with the
 * fewest requests still counted, then the one closest to expiry (expired
 * buckets cost nothing).  A flood of fresh keys therefore evicts its own
 * fresh keys; to push out a bucket that has counted c requests an attacker
 * must first give most of the table c requests per key.  Windows are
 * capped by pgapp.ratelimit_max_window, so no bucket outlives that.
 *
 * Locking protocol (the whole of it is in ratelimit_int.h): a check looks
 * its bucket up under the partition lock held SHARED and counts under the
 * bucket's spinlock; a new key retakes the partition lock EXCLUSIVE to
 * insert (after looking again).  Eviction samples under the directory lock
 * held SHARED with no partition lock, releases it, then takes the victim's
 * partition lock EXCLUSIVE and checks the victim is still there and still
 * of the same limiter and incarnation before removing it.  The place of the
 * victim in its limiter's quota passes to the evicting check (the "used"
 * count does not move), so concurrent inserts cannot steal it.  No error is
 * raised under any lock: the table-full error comes after every lock is
 * released.  rate_buckets and rate_stats read the table with every
 * partition held SHARED (which also keeps the limiters' names stable).
 *
 * Named limiters (ratelimit_limiter.c) give a group of keys its own quota
 * of buckets; each bucket records its limiter's registry slot, and a
 * limiter's used count is kept exact as buckets come and go.  Sweeping and
 * the save file are in ratelimit_store.c, the algorithms in
 * ratelimit_algo.c.
 *
 * src/ratelimit/ratelimit_check.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "ratelimit.h"
#include "ratelimit_int.h"

/* Eviction: buckets compared per eviction, random probes, tries per check */
#define RATE_EVICT_SAMPLE 5
#define RATE_EVICT_PROBES 32
#define RATE_EVICT_ATTEMPTS 8

/* Buckets rate_reset removes per scan of the table */
#define RATE_RESET_BATCH 64

/* What check_bucket found. */
typedef enum RateCheckResult
{
	RATE_COUNTED,				/* the decision is made */
	RATE_FULL,					/* no bucket free for this limiter: nothing
								 * counted */
	RATE_STALE					/* the limiter was dropped or re-created
								 * meanwhile */
} RateCheckResult;

/* What evict_one did. */
typedef enum RateEvictResult
{
	RATE_EVICT_NONE,			/* the limiter has no bucket to evict */
	RATE_EVICT_LOST,			/* the victim went away meanwhile: try again */
	RATE_EVICT_FREED,			/* removed one; its place went back to the
								 * limiter */
	RATE_EVICT_HANDED			/* removed one; its place is the caller's now */
} RateEvictResult;

/* The candidates evict_one has looked at, and the cheapest so far. */
typedef struct RateEvictSample
{
	int			slot;
	uint32		incarnation;
	int64		now;
	int			picked[RATE_EVICT_SAMPLE];	/* directory indexes */
	int			npicked;
	bool		have;
	RateKey		victim;
	int64		weight;
	int64		expires_at;
} RateEvictSample;

static void ratelimit_shmem_startup(void);
static const char *ratelimit_status(void);

const PgappModule pgapp_ratelimit_module = {
	.name = "ratelimit",
	.shmem_request = pgapp_rate_shmem_request,
	.shmem_startup = ratelimit_shmem_startup,
	.status = ratelimit_status,
	.housekeeping = pgapp_rate_housekeeping,
	.relcache_invalidate = pgapp_rate_relcache_invalidate,
};

/*
 * Make or attach the shared memory (the caller holds AddinShmemInitLock):
 * the table, then, when it is new, the registry.  In the postmaster (not in
 * a backend re-attaching under EXEC_BACKEND): restore the buckets saved at
 * the last clean shutdown, and save them at the next one, as
 * pg_stat_statements does with its statistics.
 */
static void
ratelimit_shmem_startup(void)
{
	bool		found = pgapp_rate_shmem_init();

	if (!found)
		pgapp_rate_registry_init();
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
 * Quotas and eviction
 * ---------------------------------------------------------------------
 */

/* How many buckets the limiter may hold. */
static uint32
quota_of(int slot)
{
	if (slot == RATE_DEFAULT_SLOT)
		return pg_atomic_read_u32(&pgapp_rate_shared->default_quota);
	return (uint32) pgapp_rate_shared->limiters[slot].max_keys;
}

/*
 * Take one place of the limiter's quota for a new bucket.  "default" has
 * what the named limiters' quotas leave of the table.
 */
static bool
reserve_place(const RateLimiterRef *ref)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[ref->slot];

	if (pg_atomic_fetch_add_u32(&slot->used, 1) >= quota_of(ref->slot))
	{
		pg_atomic_fetch_sub_u32(&slot->used, 1);
		return false;
	}
	return true;
}

/*
 * Give back a place reserved (or handed over by evict_one) and not used.
 * Under a partition lock the incarnation is stable: a limiter re-created
 * meanwhile has started counting from zero and owes nothing.
 */
static void
give_back_place(const RateLimiterRef *ref, LWLock *held)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[ref->slot];

	if (held == NULL)
	{
		LWLock	   *lock = &pgapp_rate_shared->locks[0].lock;

		LWLockAcquire(lock, LW_SHARED);
		if (pg_atomic_read_u32(&slot->incarnation) == ref->incarnation)
			pg_atomic_fetch_sub_u32(&slot->used, 1);
		LWLockRelease(lock);
	}
	else if (pg_atomic_read_u32(&slot->incarnation) == ref->incarnation)
		pg_atomic_fetch_sub_u32(&slot->used, 1);
}

/*
 * Look at the directory's bucket i as a candidate for evict_one: keep it
 * when it is of the limiter and cheaper than the cheapest so far.  The
 * caller holds the directory lock.
 */
static void
consider_candidate(RateEvictSample *es, int i)
{
	RateBucket *b = pgapp_rate_shared->dir[i];
	RateState	st;
	int64		w;

	if (b->limiter != es->slot || b->incarnation != es->incarnation)
		return;
	for (int j = 0; j < es->npicked; j++)
		if (es->picked[j] == i)
			return;
	es->picked[es->npicked++] = i;
	SpinLockAcquire(&b->mutex);
	st = b->state;
	SpinLockRelease(&b->mutex);
	w = pgapp_rate_weight((RateAlgorithm) b->algorithm, b->max_requests, b->window_seconds,
						  &st, es->now);
	if (!es->have || w < es->weight || (w == es->weight && st.expires_at < es->expires_at))
	{
		es->have = true;
		es->victim = b->key;
		es->weight = w;
		es->expires_at = st.expires_at;
	}
}

/*
 * Evict one bucket of the limiter (slot, incarnation) to make room: the
 * cheapest of RATE_EVICT_SAMPLE distinct buckets drawn at random from the
 * directory (fewest requests still counted, then closest to expiry).  When
 * RATE_EVICT_PROBES random probes find none of the limiter's buckets (a
 * named limiter with a small share of the table), the directory is walked
 * from a random place until RATE_EVICT_SAMPLE of them are found.
 * Called with no lock held.  With want_place, the victim's place passes to
 * the caller (even when the limiter holds more than a quota that shrank:
 * the named limiter that took the share reclaims it, by evicting from
 * "default", when it needs the room).  See the header comment for the
 * locking.
 */
static RateEvictResult
evict_one(int slot, uint32 incarnation, bool want_place)
{
	RateShared *sh = pgapp_rate_shared;
	LWLock	   *dirlock = &sh->locks[RATE_DIRECTORY_LOCK].lock;
	RateEvictSample es = {0};
	uint32		hashcode;
	LWLock	   *lock;
	RateBucket *b;
	bool		found;
	RateEvictResult result = RATE_EVICT_LOST;
	int			n;

	es.slot = slot;
	es.incarnation = incarnation;
	es.now = pgapp_rate_now();
	LWLockAcquire(dirlock, LW_SHARED);
	n = sh->dir_count;
	for (int probe = 0; n > 0 && probe < RATE_EVICT_PROBES && es.npicked < RATE_EVICT_SAMPLE; probe++)
		consider_candidate(&es, (int) pg_prng_uint64_range(&pg_global_prng_state, 0, n - 1));
	if (n > 0 && es.npicked == 0)
	{
		/* none found at random: walk the directory from a random place */
		int			start = (int) pg_prng_uint64_range(&pg_global_prng_state, 0, n - 1);

		for (int j = 0; j < n && es.npicked < RATE_EVICT_SAMPLE; j++)
			consider_candidate(&es, (start + j) % n);
	}
	LWLockRelease(dirlock);
	if (!es.have)
		return RATE_EVICT_NONE;

	hashcode = get_hash_value(pgapp_rate_table, &es.victim);
	lock = &sh->locks[hashcode % RATE_PARTITIONS].lock;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	b = hash_search_with_hash_value(pgapp_rate_table, &es.victim, hashcode, HASH_FIND, &found);
	/* gone or replaced meanwhile: the caller tries again */
	if (found && b->limiter == slot && b->incarnation == incarnation &&
		pg_atomic_read_u32(&sh->limiters[slot].incarnation) == incarnation)
	{
		/* exclusive lock: nobody else touches the bucket's state now */
		bool		live = b->state.expires_at > es.now;

		pgapp_rate_remove_bucket(b, !want_place);
		if (live)
			pg_atomic_fetch_add_u64(&sh->limiters[slot].evictions, 1);
		else
			pg_atomic_fetch_add_u64(&sh->swept, 1);
		result = want_place ? RATE_EVICT_HANDED : RATE_EVICT_FREED;
	}
	LWLockRelease(lock);
	return result;
}

/* Fill a new bucket (its partition lock held exclusively). */
static void
init_bucket(RateBucket *b, const RateLimiterRef *ref, const RateKey *ident, text *keytext,
			RateAlgorithm alg, int32 max, int32 window, int32 burst)
{
	int			n = pg_mbcliplen(VARDATA_ANY(keytext), VARSIZE_ANY_EXHDR(keytext),
								 RATE_DISPLAY_LEN - 1);

	SpinLockInit(&b->mutex);
	memset(&b->state, 0, sizeof(RateState));
	b->algorithm = alg;
	b->max_requests = max;
	b->window_seconds = window;
	b->burst = burst;
	b->limiter = (int16) ref->slot;
	b->incarnation = ref->incarnation;
	b->dboid = MyDatabaseId;
	b->ident = *ident;
	/* a display copy, cut on a character boundary */
	memcpy(b->display, VARDATA_ANY(keytext), n);
	b->display[n] = '\0';
	pgapp_rate_dir_add(b, true);
}


/*
 * A new key: insert its bucket under the partition lock held exclusively,
 * taking a free place of its limiter or evicting one of its buckets.
 * Returns with the partition lock held and *bp set (RATE_COUNTED: the
 * bucket exists now), or with no lock held (RATE_FULL when even eviction
 * failed RATE_EVICT_ATTEMPTS times, RATE_STALE).
 */
static RateCheckResult
create_bucket(const RateLimiterRef *ref, const RateKey *ident, RateKey *key, uint32 hashcode,
			  LWLock *lock, text *keytext, RateAlgorithm alg, int32 max, int32 window,
			  int32 burst, RateBucket **bp)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[ref->slot];
	bool		have_place = false;
	RateEvictResult evicted = RATE_EVICT_LOST;
	bool		found;

	for (int attempt = 0;; attempt++)
	{
		LWLockAcquire(lock, LW_EXCLUSIVE);
		if (pg_atomic_read_u32(&slot->incarnation) != ref->incarnation)
		{
			/* a place we hold belonged to the old incarnation */
			LWLockRelease(lock);
			return RATE_STALE;
		}
		*bp = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_FIND, &found);
		if (found)
		{
			/* another backend made it meanwhile */
			if (have_place)
				give_back_place(ref, lock);
			return RATE_COUNTED;
		}
		if (!have_place)
			have_place = reserve_place(ref);
		if (have_place)
		{
			*bp = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_ENTER_NULL, &found);
			if (*bp != NULL)
			{
				init_bucket(*bp, ref, ident, keytext, alg, max, window, burst);
				return RATE_COUNTED;
			}
		}
		LWLockRelease(lock);
		if (attempt < RATE_EVICT_ATTEMPTS)
		{
			if (!have_place)
			{
				/* the limiter's quota is full: evict one of its buckets */
				evicted = evict_one(ref->slot, ref->incarnation, true);
				have_place = evicted == RATE_EVICT_HANDED;
			}
			else
			{
				/*
				 * A place in the quota but none in the table: "default" holds
				 * more than its share since a named limiter took some, and
				 * gives it back now.
				 */
				evicted = evict_one(RATE_DEFAULT_SLOT,
									pg_atomic_read_u32(&pgapp_rate_shared->limiters[RATE_DEFAULT_SLOT].incarnation),
									false);
			}
		}
		if (attempt >= RATE_EVICT_ATTEMPTS || evicted == RATE_EVICT_NONE)
		{
			/* a limiter dropped meanwhile has no buckets: look it up again */
			if (pg_atomic_read_u32(&slot->incarnation) != ref->incarnation)
				return RATE_STALE;
			if (have_place)
				give_back_place(ref, NULL);
			return RATE_FULL;
		}
	}
}

/*
 * One check: find or create the bucket and let the algorithm decide.  A
 * new key takes a free place of its limiter or evicts one of its buckets
 * (RATE_FULL only when even that fails RATE_EVICT_ATTEMPTS times).
 */
static RateCheckResult
check_bucket(const RateLimiterRef *ref, const RateKey *ident, RateKey *key, text *keytext,
			 RateAlgorithm alg, int32 max, int32 window, int32 burst, RateDecision *d)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[ref->slot];
	uint32		hashcode;
	LWLock	   *lock = pgapp_rate_partition_lock(key, &hashcode);
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
		RateCheckResult result;

		LWLockRelease(lock);
		result = create_bucket(ref, ident, key, hashcode, lock, keytext, alg, max, window,
							   burst, &b);
		if (result != RATE_COUNTED)
			return result;
	}
	now = pgapp_rate_now();
	SpinLockAcquire(&b->mutex);
	pgapp_rate_decide(alg, &b->state, max, window, burst, now, d);
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
	RateKey		ident;
	RateKey		k;
	int			keylen;
	RateCheckResult result;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	keylen = VARSIZE_ANY_EXHDR(key);
	if (keylen == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("rate limit key must not be empty"));
	pgapp_rate_check_limits(alg, max, window, burst);
	pgapp_rate_resolve_limiter(limiter, &ref);

	ident = pgapp_rate_ident(limiter, MyDatabaseId, VARDATA_ANY(key), keylen);
	k = pgapp_rate_make_key(&ident, alg, max, window, burst);

	pg_atomic_fetch_add_u64(&pgapp_rate_shared->limiters[ref.slot].checks, 1);
	while ((result = check_bucket(&ref, &ident, &k, key, alg, max, window, burst, d)) == RATE_STALE)
	{
		CHECK_FOR_INTERRUPTS();
		pgapp_rate_resolve_limiter(limiter, &ref);
	}
	if (result != RATE_COUNTED)
	{
		/*
		 * Nothing to evict (a quota of 0 keys), or every eviction lost its
		 * victim to another backend: the policy decides, and says so.
		 */
		pg_atomic_fetch_add_u64(&pgapp_rate_shared->limiters[ref.slot].full_events, 1);
		switch ((RateOnFull) pgapp_ratelimit_on_full)
		{
			case RATE_ON_FULL_ALLOW:
			case RATE_ON_FULL_DENY:
				d->allowed = (pgapp_ratelimit_on_full == RATE_ON_FULL_ALLOW);
				d->limit = alg == RATE_GCRA ? burst + 1 : max;
				d->remaining = 0;
				d->retry_after = d->allowed ? 0 : window;
				d->reset_after = window;
				break;
			case RATE_ON_FULL_ERROR:
				if (ref.slot == RATE_DEFAULT_SLOT)
					ereport(ERROR,
							errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("no free slot in the rate limiter table"),
							errdetail("The table holds at most %d keys and none could be evicted.",
									  pgapp_ratelimit_max_keys),
							errhint("Raise \"%s\" and restart the server, or set \"%s\" to allow or deny.",
									"pgapp.ratelimit_max_keys", "pgapp.ratelimit_on_full"));
				else
					ereport(ERROR,
							errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("rate limiter \"%s\" has no free slot", limiter),
							errdetail("The limiter holds at most %d keys and none could be evicted.",
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
					errmsg("rate limiter \"%s\" has no limits of its own", pgapp_rate_echo(a->limiter)),
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
		PgappError	err = {0};
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
		err.message = psprintf(ngettext("rate limit exceeded: retry after %d second",
										"rate limit exceeded: retry after %d seconds",
										d.retry_after), d.retry_after);
		err.hint = psprintf(ngettext("At most %d requests per %d second are allowed.",
									 "At most %d requests per %d seconds are allowed.",
									 a.window), a.max, a.window);
		(void) pgapp_error_report(&err, true);
	}
	PG_RETURN_VOID();
}

/* What rate_reset removes: the buckets of one identity and limiter. */
typedef struct RateResetMatch
{
	RateKey		ident;
	int			slot;
} RateResetMatch;

static bool
reset_match(const RateBucket *b, const RateState *s, void *arg)
{
	RateResetMatch *m = arg;

	return b->ident.h1 == m->ident.h1 && b->ident.h2 == m->ident.h2 && b->limiter == m->slot;
}

/*
 * pgapp.rate_reset(key, limiter) -> boolean: forget a key's buckets (one
 * per set of limits it was checked with) in the current database, a batch
 * at a time (pgapp_rate_remove_matching: a key checked with many limits has
 * many buckets).
 */
PG_FUNCTION_INFO_V1(pgapp_rate_reset);
Datum
pgapp_rate_reset(PG_FUNCTION_ARGS)
{
	text	   *key;
	char	   *limiter;
	RateLimiterRef ref;
	RateResetMatch m;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "key" : "limiter"));
	key = PG_GETARG_TEXT_PP(0);
	limiter = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pgapp_rate_resolve_limiter(limiter, &ref);
	m.ident = pgapp_rate_ident(limiter, MyDatabaseId, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	m.slot = ref.slot;
	PG_RETURN_BOOL(pgapp_rate_remove_matching(reset_match, &m, RATE_RESET_BATCH) > 0);
}

/*
 * pgapp._rate_buckets() -> SETOF record: the buckets, for pgapp.rate_buckets.
 * Every partition is held shared while the table is read, which also keeps
 * the limiters' names stable.  Only the current database's keys are shown.
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

		if (b->dboid != MyDatabaseId)
			continue;			/* another database's key */
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
	Datum		values[7];
	bool		nulls[7] = {false};
	long		buckets;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	pgapp_rate_lock_all(LW_SHARED);
	buckets = hash_get_num_entries(pgapp_rate_table);
	pgapp_rate_unlock_all();
	values[0] = Int64GetDatum((int64) pgapp_rate_total(RATE_CHECKS));
	values[1] = Int64GetDatum((int64) pgapp_rate_total(RATE_DENIALS));
	values[2] = Int64GetDatum((int64) pgapp_rate_total(RATE_EVICTIONS));
	values[3] = Int64GetDatum((int64) pgapp_rate_total(RATE_FULL_EVENTS));
	values[4] = Int64GetDatum((int64) buckets);
	values[5] = Int32GetDatum(pgapp_ratelimit_max_keys);
	values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&pgapp_rate_shared->swept));
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

/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  Rate limiting in shared memory: fixed window, sliding window and GCRA
 *	  counters that write no table and no WAL.
 *
 * The buckets live in a shared hash sized by pgapp.ratelimit_max_keys and
 * split into RATE_PARTITIONS partitions, each with its own LWLock.  A key
 * is hashed once, with a secret per-cluster seed, to 128 bits of identity
 * (database + limiter + user key: what rate_reset matches), and that with
 * the limits (algorithm, max_requests, window_seconds, burst) to the 128-bit
 * bucket key: the same key in another database, or checked with other
 * limits, is another bucket, so no caller can share or reset someone else's
 * counter.  A truncated copy of the key is kept only for display.
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
 * Locking protocol (in this order; never the reverse):
 *	- the registry LWLock (ratelimit_limiter.c) before any partition lock;
 *	- partition LWLock, SHARED: look a bucket up; then the bucket's spinlock
 *	  protects its counters while they are read and updated (a few
 *	  instructions, no allocation, no error);
 *	- partition LWLock, EXCLUSIVE: insert or remove buckets of that
 *	  partition (the lookup is repeated after taking it);
 *	- every partition LWLock, in ascending order: scans of the whole table
 *	  (SHARED: the sweep's first pass, rate_buckets, rate_reset's first
 *	  pass; EXCLUSIVE: registering or dropping a limiter);
 *	- the directory LWLock, innermost: EXCLUSIVE for a few instructions to
 *	  add or remove a bucket, always while holding that bucket's partition
 *	  lock exclusively (a bucket is in the directory exactly while it is in
 *	  the hash); SHARED to sample eviction candidates, whose counters are
 *	  read under their spinlock.  Only bucket spinlocks are taken under it.
 *	- counters in RateShared are atomics, taken without locks.
 * Eviction holds no partition lock while it samples: it chooses the victim
 * under the directory lock, releases it, then takes the victim's partition
 * lock exclusively and checks the victim is still there and still of the
 * same limiter before removing it.  Apart from the whole-table scans
 * (ascending order), a backend never waits for a partition lock while
 * holding another one.  The place of the victim in its
 * limiter's quota passes to the evicting check (the "used" count does not
 * move), so concurrent inserts cannot steal it.  Nothing raises an error
 * while a spinlock is held, and a check raises none under an LWLock: the
 * table-full error is raised after every lock is released (only
 * rate_buckets may fail to allocate a row under the shared scan, which an
 * abort releases).
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
 * function pgapp._rate_simulate.  All their arithmetic is in int64 with
 * bounded operands (windows are capped, a GCRA burst must drain within the
 * cap, a GCRA interval is at least 1 microsecond).
 *
 * src/ratelimit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
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

#include "core/error.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "ratelimit.h"
#include "ratelimit_int.h"


const char *const pgapp_rate_algorithm_names[3] = {"fixed", "sliding", "gcra"};

/* Eviction: buckets compared per eviction, random probes, tries per check */
#define RATE_EVICT_SAMPLE 5
#define RATE_EVICT_PROBES 32
#define RATE_EVICT_ATTEMPTS 8

/* Buckets rate_reset removes per scan of the table */
#define RATE_RESET_BATCH 64

/* How much of a user's input an error message repeats */
#define RATE_ECHO_CHARS 64

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

/* What evict_one did. */
typedef enum RateEvictResult
{
	RATE_EVICT_NONE,			/* the limiter has no bucket to evict */
	RATE_EVICT_LOST,			/* the victim went away meanwhile: try again */
	RATE_EVICT_FREED,			/* removed one; its place went back to the limiter */
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
	RequestAddinShmemSpace(MAXALIGN(sizeof(RateBucket *) * pgapp_ratelimit_max_keys));
	RequestAddinShmemSpace(hash_estimate_size(pgapp_ratelimit_max_keys, sizeof(RateBucket)));
	RequestNamedLWLockTranche("pgapp ratelimit", RATE_NUM_LOCKS);
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

	bool		dir_found;
	RateBucket **dir;

	pgapp_rate_shared = ShmemInitStruct("pgapp ratelimit", sizeof(RateShared), &found);
	dir = ShmemInitStruct("pgapp ratelimit directory",
						  sizeof(RateBucket *) * pgapp_ratelimit_max_keys, &dir_found);
	if (!found)
	{
		pgapp_rate_shared->locks = GetNamedLWLockTranche("pgapp ratelimit");
		/* replaced by the save file's seed when there is one */
		if (!pg_strong_random(&pgapp_rate_shared->seed, sizeof(pgapp_rate_shared->seed)))
			pgapp_rate_shared->seed = (uint64) GetCurrentTimestamp() ^ ((uint64) MyProcPid << 32);
		pg_atomic_init_u64(&pgapp_rate_shared->checks, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->denials, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->evictions, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->full_events, 0);
		pg_atomic_init_u64(&pgapp_rate_shared->swept, 0);
		pgapp_rate_shared->dir_count = 0;
		pgapp_rate_shared->dir = dir;
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
 * The time between two requests at a steady GCRA rate: at least 1
 * microsecond (more than a million requests a second is as good as no
 * limit), so that nothing divides by zero.
 */
static int64
gcra_interval(int32 max, int32 window)
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
	int64		interval = gcra_interval(max, window);
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
static void
check_limits(RateAlgorithm alg, int32 max, int32 window, int32 burst)
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
		int64		interval = gcra_interval(max, window);

		/* (burst + 1) * interval > cap, without overflowing */
		if ((int64) burst + 1 > USECS(pgapp_ratelimit_max_window) / interval)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("burst %d is too large for %d request(s) per %d second(s)", burst, max, window),
					errdetail("A full burst takes %.0f second(s) to drain, more than \"%s\" (%d seconds).",
							  ceil(((double) burst + 1) * (double) interval / USECS_PER_SEC),
							  "pgapp.ratelimit_max_window", pgapp_ratelimit_max_window),
					errhint("Lower the burst, or raise max_requests and window_seconds together."));
	}
}

/*
 * The identity of a key: 128 bits of (database, limiter, key) hashed with
 * the cluster's secret seed, so that nobody can make keys collide on
 * purpose (all in one partition or one hash chain).
 */
RateKey
pgapp_rate_ident(const char *limiter, Oid dboid, const char *key, int keylen)
{
	RateKey		id;
	uint64		seed = hash_bytes_extended((const unsigned char *) limiter, strlen(limiter),
										   pgapp_rate_shared->seed ^ ((uint64) dboid << 32));

	id.h1 = hash_bytes_extended((const unsigned char *) key, keylen, seed);
	id.h2 = hash_bytes_extended((const unsigned char *) key, keylen, seed ^ UINT64CONST(0x9E3779B97F4A7C15));
	return id;
}

/* The bucket of a key's identity under given limits. */
RateKey
pgapp_rate_make_key(const RateKey *ident, RateAlgorithm alg, int32 max, int32 window, int32 burst)
{
	int32		limits[4] = {(int32) alg, max, window, burst};
	RateKey		k;

	k.h1 = hash_bytes_extended((const unsigned char *) limits, sizeof(limits), ident->h1);
	k.h2 = hash_bytes_extended((const unsigned char *) limits, sizeof(limits), ident->h2);
	return k;
}

/*
 * Put a new bucket in the directory.  The caller holds its partition lock
 * exclusively; lock is false only in the postmaster before any backend
 * exists (restoring the save file).
 */
void
pgapp_rate_dir_add(RateBucket *b, bool lock)
{
	RateShared *sh = pgapp_rate_shared;
	LWLock	   *dirlock = &sh->locks[RATE_DIRECTORY_LOCK].lock;

	if (lock)
		LWLockAcquire(dirlock, LW_EXCLUSIVE);
	Assert(sh->dir_count < pgapp_ratelimit_max_keys);
	b->dir_index = sh->dir_count;
	sh->dir[sh->dir_count++] = b;
	if (lock)
		LWLockRelease(dirlock);
}

/* Take a bucket out of the directory (its partition lock held exclusively). */
static void
dir_remove(RateBucket *b)
{
	RateShared *sh = pgapp_rate_shared;
	LWLock	   *dirlock = &sh->locks[RATE_DIRECTORY_LOCK].lock;
	RateBucket *last;

	LWLockAcquire(dirlock, LW_EXCLUSIVE);
	last = sh->dir[--sh->dir_count];
	sh->dir[b->dir_index] = last;
	last->dir_index = b->dir_index;
	LWLockRelease(dirlock);
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
 * Remove a bucket; free_place gives its place back to its limiter (false:
 * the caller takes it over, or the limiter is going away).  The caller
 * holds the bucket's partition lock (or all of them) exclusively.
 */
void
pgapp_rate_remove_bucket(RateBucket *b, bool free_place)
{
	RateLimiterSlot *slot = &pgapp_rate_shared->limiters[b->limiter];

	dir_remove(b);
	if (free_place && pg_atomic_read_u32(&slot->incarnation) == b->incarnation)
		pg_atomic_fetch_sub_u32(&slot->used, 1);
	(void) hash_search(pgapp_rate_table, &b->key, HASH_REMOVE, NULL);
}

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
 * What a bucket still holds at now, in requests counted: what evicting it
 * would give back to its client.  Expired buckets hold nothing.
 */
static int64
bucket_weight(const RateBucket *b, const RateState *s, int64 now)
{
	if (s->expires_at <= now)
		return 0;
	switch ((RateAlgorithm) b->algorithm)
	{
		case RATE_FIXED:
			return s->count;
		case RATE_SLIDING:
			return s->count + s->prev_count;
		case RATE_GCRA:
			{
				int64		interval = gcra_interval(b->max_requests, b->window_seconds);

				return (Max(s->tat - now, 0) + interval - 1) / interval;
			}
	}
	return 0;
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
	w = bucket_weight(b, &st, es->now);
	if (!es->have || w < es->weight || (w == es->weight && st.expires_at < es->expires_at))
	{
		es->have = true;
		es->victim = b->key;
		es->weight = w;
		es->expires_at = st.expires_at;
	}
}

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
 * One check: find or create the bucket and let the algorithm decide.  A
 * new key takes a free place of its limiter or evicts one of its buckets
 * (RATE_FULL only when even that fails RATE_EVICT_ATTEMPTS times).
 */
static RateCheckResult
check_bucket(const RateLimiterRef *ref, const RateKey *ident, RateKey *key, text *keytext,
			 RateAlgorithm alg, int32 max, int32 window, int32 burst, RateDecision *d)
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
		bool		have_place = false;
		RateEvictResult evicted = RATE_EVICT_LOST;

		LWLockRelease(lock);
		for (int attempt = 0;; attempt++)
		{
			LWLockAcquire(lock, LW_EXCLUSIVE);
			if (pg_atomic_read_u32(&slot->incarnation) != ref->incarnation)
			{
				/* a place we hold belonged to the old incarnation */
				LWLockRelease(lock);
				return RATE_STALE;
			}
			b = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_FIND, &found);
			if (found)
			{
				/* another backend made it meanwhile */
				if (have_place)
					give_back_place(ref, lock);
				break;
			}
			if (!have_place)
				have_place = reserve_place(ref);
			if (have_place)
			{
				b = hash_search_with_hash_value(pgapp_rate_table, key, hashcode, HASH_ENTER_NULL, &found);
				if (b != NULL)
				{
					init_bucket(b, ref, ident, keytext, alg, max, window, burst);
					break;
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
					 * A place in the quota but none in the table: "default"
					 * holds more than its share since a named limiter took
					 * some, and gives it back now.
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
	now = pgapp_rate_now();
	SpinLockAcquire(&b->mutex);
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
	check_limits(alg, max, window, burst);
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
 * pgapp.rate_reset(key, limiter) -> boolean: forget a key's buckets (one
 * per set of limits it was checked with) in the current database.  Two
 * passes, as the sweep: find them with the partitions held shared, then
 * remove each under its partition lock held exclusively.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_reset);
Datum
pgapp_rate_reset(PG_FUNCTION_ARGS)
{
	text	   *key;
	char	   *limiter;
	RateLimiterRef ref;
	RateKey		ident;
	HASH_SEQ_STATUS status;
	RateBucket *b;
	RateKey		keys[RATE_RESET_BATCH];
	int			n;
	bool		removed = false;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "key" : "limiter"));
	key = PG_GETARG_TEXT_PP(0);
	limiter = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pgapp_rate_resolve_limiter(limiter, &ref);
	ident = pgapp_rate_ident(limiter, MyDatabaseId, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));

	/* a batch at a time (a key checked with many limits has many buckets) */
	do
	{
		CHECK_FOR_INTERRUPTS();
		n = 0;
		pgapp_rate_lock_all(LW_SHARED);
		hash_seq_init(&status, pgapp_rate_table);
		while ((b = hash_seq_search(&status)) != NULL)
		{
			if (b->ident.h1 == ident.h1 && b->ident.h2 == ident.h2 && b->limiter == ref.slot)
			{
				keys[n++] = b->key;
				if (n == RATE_RESET_BATCH)
				{
					hash_seq_term(&status);
					break;
				}
			}
		}
		pgapp_rate_unlock_all();

		for (int i = 0; i < n; i++)
		{
			uint32		hashcode = get_hash_value(pgapp_rate_table, &keys[i]);
			LWLock	   *lock = &pgapp_rate_shared->locks[hashcode % RATE_PARTITIONS].lock;
			bool		found;

			LWLockAcquire(lock, LW_EXCLUSIVE);
			b = hash_search_with_hash_value(pgapp_rate_table, &keys[i], hashcode, HASH_FIND, &found);
			if (found)
			{
				pgapp_rate_remove_bucket(b, true);
				removed = true;
			}
			LWLockRelease(lock);
		}
	} while (n == RATE_RESET_BATCH);
	PG_RETURN_BOOL(removed);
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
	check_limits(alg, max, window, burst);
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

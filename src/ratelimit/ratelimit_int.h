/*-------------------------------------------------------------------------
 *
 * ratelimit_int.h
 *	  Internals shared by the rate limiter's files: the shared-memory layout,
 *	  the limiter registry and the bucket helpers.
 *
 * The files form a DAG, bottom first: ratelimit_shmem.c (shared memory,
 * key hashing, locks, bucket removal, the clock) and ratelimit_algo.c (the
 * pure algorithms); ratelimit_limiter.c (named limiters) and
 * ratelimit_store.c (sweep, housekeeping, save file); ratelimit_check.c
 * (check path, eviction, SQL API, module entry).  Only they include this
 * header; other modules see ratelimit.h.
 *
 * Locking protocol of RateShared and the bucket hash (in this order; never
 * the reverse):
 *	- the registry LWLock (RATE_REGISTRY_LOCK) before any partition lock.
 *	  EXCLUSIVE to change a slot's name, dboid and max_keys and
 *	  RateShared.reserved; SHARED to read them (lookups, pgapp._rate_limiters,
 *	  garbage collection's first pass);
 *	- partition LWLock, SHARED: look a bucket up; then the bucket's spinlock
 *	  protects its counters (RateBucket.state) while they are read and
 *	  updated (a few instructions, no allocation, no error);
 *	- partition LWLock, EXCLUSIVE: insert or remove buckets of that
 *	  partition (the lookup is repeated after taking it); with it held,
 *	  nobody else touches the state of that partition's buckets;
 *	- every partition LWLock, in ascending order (pgapp_rate_lock_all):
 *	  scans of the whole table (SHARED: the first pass of the sweep and of
 *	  rate_reset, rate_buckets, rate_stats; EXCLUSIVE: registering or
 *	  freeing a limiter slot, which changes its incarnation -- so a backend
 *	  holding any partition lock sees every incarnation stable);
 *	- the directory LWLock (RATE_DIRECTORY_LOCK), innermost: EXCLUSIVE for
 *	  a few instructions to add or remove a bucket (dir, dir_count,
 *	  RateBucket.dir_index), always while holding that bucket's partition
 *	  lock exclusively (a bucket is in the directory exactly while it is in
 *	  the hash); SHARED to sample eviction candidates, whose counters are
 *	  read under their spinlock.  Only bucket spinlocks are taken under it;
 *	- the counters of RateShared and RateLimiterSlot are atomics (no lock).
 * Eviction holds no partition lock while it samples: it chooses the victim
 * under the directory lock, releases it, then takes the victim's partition
 * lock exclusively and checks the victim is still there and still of the
 * same limiter before removing it.  Apart from the whole-table scans
 * (ascending order), a backend never waits for a partition lock while
 * holding another one.  Nothing raises an error while a spinlock is held,
 * and a check raises none under an LWLock: the table-full error is raised
 * after every lock is released (only rate_buckets may fail to allocate a
 * row under the shared scan, which an abort releases).  The postmaster
 * restores and saves the table with no backend running: no lock.
 *
 * src/ratelimit/ratelimit_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_RATELIMIT_INT_H
#define PGAPP_RATELIMIT_INT_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

#include "ratelimit_algo.h"

#define RATE_PARTITIONS 16
#define RATE_REGISTRY_LOCK RATE_PARTITIONS	/* tranche index of the registry
											 * lock */
#define RATE_DIRECTORY_LOCK (RATE_PARTITIONS + 1)	/* ... and of the
													 * directory lock */
#define RATE_NUM_LOCKS (RATE_PARTITIONS + 2)
#define RATE_DISPLAY_LEN 64
#define RATE_MAX_LIMITERS 64	/* slot 0 is "default" */
#define RATE_DEFAULT_SLOT 0
#define RATE_LIMITER_NAME_LEN 64	/* NAMEDATALEN: names fit a PostgreSQL
									 * identifier */

/* Hash key: 128 bits of the limiter and key. */
typedef struct RateKey
{
	uint64		h1;
	uint64		h2;
} RateKey;

/*
 * A bucket.  The key hashes the database, the limiter, the user's key and
 * the limits, so the same key checked with other limits is another bucket.
 * Everything but state and dir_index is set before the bucket enters the
 * directory and never changes after.
 */
typedef struct RateBucket
{
	RateKey		key;			/* hash key: must be first */
	slock_t		mutex;			/* protects state */
	RateState	state;
	int32		algorithm;
	int32		max_requests;
	int32		window_seconds;
	int32		burst;
	int16		limiter;		/* registry slot */
	uint32		incarnation;	/* of the slot when the bucket was made */
	Oid			dboid;			/* the database that counts in it */
	RateKey		ident;			/* hash of database, limiter and key (not the
								 * limits): what rate_reset matches */
	int32		dir_index;		/* place in the directory; directory lock */
	char		display[RATE_DISPLAY_LEN];
} RateBucket;

/*
 * One limiter of the registry.  name and max_keys change only under the
 * registry lock held exclusively; incarnation changes only while the
 * registry lock and every partition lock are held exclusively (registering
 * or unregistering), so a backend holding any partition lock sees it
 * stable.  used counts the slot's buckets.  Named limiters belong to the
 * database whose pgapp.rate_limiter defines them; "default" is shared.
 */
typedef struct RateLimiterSlot
{
	char		name[RATE_LIMITER_NAME_LEN];	/* "" when free */
	Oid			dboid;			/* the database of its definition ("default":
								 * none) */
	int32		max_keys;		/* quota; for "default", 0 (what is left) */
	pg_atomic_uint32 incarnation;
	pg_atomic_uint32 used;
	pg_atomic_uint64 checks;
	pg_atomic_uint64 denials;
	pg_atomic_uint64 full_events;
	pg_atomic_uint64 evictions; /* live buckets removed to make room */
} RateLimiterSlot;

/*
 * The counters of checks, denials, full events and evictions are kept per
 * limiter (one contended cache line per check, not two); the ones below
 * hold what unregistered limiters had counted, so that pgapp.rate_stats'
 * totals never go down.  swept (expired buckets removed) is global.
 */
typedef struct RateShared
{
	LWLockPadded *locks;		/* RATE_NUM_LOCKS: partitions, registry,
								 * directory */
	uint64		seed;			/* secret hash seed: made at the first start,
								 * kept in the save file; constant once
								 * backends run */
	pg_atomic_uint64 checks;
	pg_atomic_uint64 denials;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 full_events;
	pg_atomic_uint64 swept;		/* expired buckets removed */
	pg_atomic_uint32 default_quota; /* max_keys minus every named quota */
	int64		reserved;		/* sum of named quotas; registry lock */
	int32		dir_count;		/* buckets in the directory; directory lock */
	RateBucket **dir;			/* every bucket, for sampling; directory lock */
	RateLimiterSlot limiters[RATE_MAX_LIMITERS];
} RateShared;

/* A limiter as a backend knows it (ratelimit_limiter.c). */
typedef struct RateLimiterRef
{
	int			slot;
	uint32		incarnation;
	bool		has_defaults;	/* max_requests etc. given at creation */
	int32		max_requests;
	int32		window_seconds;
	RateAlgorithm algorithm;
	int32		burst;
} RateLimiterRef;

extern RateShared *pgapp_rate_shared;
extern HTAB *pgapp_rate_table;

/* Does a bucket (with counters s) match?  For pgapp_rate_remove_matching. */
typedef bool (*RateBucketMatch) (const RateBucket *b, const RateState *s, void *arg);

/* ratelimit_shmem.c */
extern void pgapp_rate_shmem_request(void);
extern bool pgapp_rate_shmem_init(void);
extern int64 pgapp_rate_now(void);
extern RateKey pgapp_rate_ident(const char *limiter, Oid dboid, const char *key, int keylen);
extern RateKey pgapp_rate_make_key(const RateKey *ident, RateAlgorithm alg, int32 max,
								   int32 window, int32 burst);
extern LWLock *pgapp_rate_partition_lock(const RateKey *key, uint32 *hashcode);
extern void pgapp_rate_dir_add(RateBucket *b, bool lock);
extern void pgapp_rate_lock_all(LWLockMode mode);
extern void pgapp_rate_unlock_all(void);
extern void pgapp_rate_remove_bucket(RateBucket *b, bool free_place);
extern int	pgapp_rate_remove_matching(RateBucketMatch match, void *arg, int batch);

/* ratelimit_limiter.c */
extern void pgapp_rate_resolve_limiter(const char *name, RateLimiterRef *ref);
extern void pgapp_rate_registry_init(void);
extern int	pgapp_rate_restore_limiter(const char *name, Oid dboid, int32 max_keys);
extern void pgapp_rate_relcache_invalidate(Oid relid);

typedef enum RateCounter
{
	RATE_CHECKS,
	RATE_DENIALS,
	RATE_FULL_EVENTS,
	RATE_EVICTIONS
} RateCounter;

extern uint64 pgapp_rate_total(RateCounter counter);

/* ratelimit_store.c */
extern int	pgapp_rate_sweep(int64 now);
extern void pgapp_rate_housekeeping(void);
extern void pgapp_rate_load_file(void);
extern void pgapp_rate_save_at_exit(void);

#endif							/* PGAPP_RATELIMIT_INT_H */

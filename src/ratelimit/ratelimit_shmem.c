/*-------------------------------------------------------------------------
 *
 * ratelimit_shmem.c
 *	  The rate limiter's shared memory: the bucket hash, its directory and
 *	  locks, key hashing, bucket removal and the clock.
 *
 * The buckets live in a shared hash sized by pgapp.ratelimit_max_keys and
 * split into RATE_PARTITIONS partitions, each with its own LWLock.  A key
 * is hashed once, with a secret per-cluster seed, to 128 bits of identity
 * (database + limiter + user key: what rate_reset matches), and that with
 * the limits (algorithm, max_requests, window_seconds, burst) to the 128-bit
 * bucket key: the same key in another database, or checked with other
 * limits, is another bucket, so no caller can share or reset someone else's
 * counter.  The directory is an array of every bucket, for sampling
 * eviction candidates at random (ratelimit_check.c).
 *
 * Locking protocol: see ratelimit_int.h, which states it for every file of
 * the rate limiter.  Here: pgapp_rate_lock_all takes the partition locks in
 * ascending order; the directory lock is taken innermost, EXCLUSIVE, for
 * the few instructions that add or remove a bucket, while the caller holds
 * the bucket's partition lock exclusively; pgapp_rate_remove_matching scans
 * with every partition held SHARED (reading each bucket's counters under
 * its spinlock), releases them, then removes each bucket under its own
 * partition lock held EXCLUSIVE after checking it still matches.
 *
 * Time is the real clock (GetCurrentTimestamp, not the frozen transaction
 * start), plus pgapp.ratelimit_clock_offset, a superuser-only setting that
 * lets tests move time instead of sleeping.
 *
 * src/ratelimit/ratelimit_shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "core/settings.h"
#include "ratelimit_int.h"

RateShared *pgapp_rate_shared = NULL;
HTAB	   *pgapp_rate_table = NULL;

/* Reserve the shared memory and the locks (shmem_request_hook). */
void
pgapp_rate_shmem_request(void)
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

/*
 * Make or attach the shared memory (the caller holds AddinShmemInitLock).
 * Returns whether it existed already; when it did not, the caller fills the
 * registry and restores the save file.
 */
bool
pgapp_rate_shmem_init(void)
{
	bool		found;
	bool		dir_found;
	HASHCTL		info = {0};
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
	}
	info.keysize = sizeof(RateKey);
	info.entrysize = sizeof(RateBucket);
	info.hash = rate_key_hash;
	info.num_partitions = RATE_PARTITIONS;
	pgapp_rate_table = ShmemInitHash("pgapp ratelimit buckets", pgapp_ratelimit_max_keys,
									 pgapp_ratelimit_max_keys, &info,
									 HASH_ELEM | HASH_FUNCTION | HASH_PARTITION | HASH_FIXED_SIZE);
	return found;
}

/* The real clock, moved by pgapp.ratelimit_clock_offset (tests). */
int64
pgapp_rate_now(void)
{
	return (int64) GetCurrentTimestamp() + (int64) (pgapp_ratelimit_clock_offset * USECS_PER_SEC);
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

/* The partition lock of a bucket key; *hashcode gets the key's hash. */
LWLock *
pgapp_rate_partition_lock(const RateKey *key, uint32 *hashcode)
{
	*hashcode = get_hash_value(pgapp_rate_table, key);
	return &pgapp_rate_shared->locks[*hashcode % RATE_PARTITIONS].lock;
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

/*
 * Take every partition lock, in ascending order (the registry lock, when
 * needed, is taken before).
 */
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

/*
 * The first pass of pgapp_rate_remove_matching: with every partition held
 * shared (new keys wait, counting goes on), collect up to batch keys of
 * matching buckets.  Returns how many.
 */
static int
collect_matching(RateBucketMatch match, void *arg, RateKey *keys, int batch)
{
	HASH_SEQ_STATUS status;
	RateBucket *b;
	int			n = 0;

	pgapp_rate_lock_all(LW_SHARED);
	hash_seq_init(&status, pgapp_rate_table);
	while ((b = hash_seq_search(&status)) != NULL)
	{
		RateState	s;

		SpinLockAcquire(&b->mutex);
		s = b->state;
		SpinLockRelease(&b->mutex);
		if (match(b, &s, arg))
		{
			keys[n++] = b->key;
			if (n == batch)
			{
				hash_seq_term(&status);
				break;
			}
		}
	}
	pgapp_rate_unlock_all();
	return n;
}

/*
 * Remove every bucket that matches, giving its place back to its limiter;
 * returns how many.  Two passes, so that checks of existing buckets never
 * wait for it: collect up to batch keys with the partitions held shared,
 * then remove each under its own partition lock held exclusively, if it
 * still matches; again while a batch comes back full.
 */
int
pgapp_rate_remove_matching(RateBucketMatch match, void *arg, int batch)
{
	RateKey    *keys = palloc(sizeof(RateKey) * batch);
	int			removed = 0;
	int			n;

	do
	{
		CHECK_FOR_INTERRUPTS();
		n = collect_matching(match, arg, keys, batch);
		for (int i = 0; i < n; i++)
		{
			uint32		hashcode;
			LWLock	   *lock = pgapp_rate_partition_lock(&keys[i], &hashcode);
			RateBucket *b;
			bool		found;

			LWLockAcquire(lock, LW_EXCLUSIVE);
			b = hash_search_with_hash_value(pgapp_rate_table, &keys[i], hashcode, HASH_FIND, &found);
			/* exclusive lock: nobody else touches the bucket's state now */
			if (found && match(b, &b->state, arg))
			{
				pgapp_rate_remove_bucket(b, true);
				removed++;
			}
			LWLockRelease(lock);
		}
	} while (n == batch);
	pfree(keys);
	return removed;
}

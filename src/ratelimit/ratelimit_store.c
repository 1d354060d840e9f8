/*-------------------------------------------------------------------------
 *
 * ratelimit_store.c
 *	  Housekeeping of the rate limiter's table: sweeping expired buckets,
 *	  reporting a full table, and saving the buckets across a restart.
 *
 * Sweeping runs in two passes so that checks of existing buckets never
 * wait for it: the table is scanned with the partition locks held shared
 * (new keys wait, counting goes on), collecting expired keys; then each is
 * removed under its own partition lock held exclusively, after checking it
 * is still expired (pgapp_rate_remove_matching, ratelimit_shmem.c).  The
 * pgapp housekeeper (core/housekeeper.c) sweeps every
 * pgapp.ratelimit_sweep_interval seconds; between sweeps, a check that
 * finds the table full evicts (ratelimit_check.c), and expired buckets are
 * the first to go.
 *
 * The save file works as pg_stat_statements' does: written by the
 * postmaster at a clean shutdown (not after a crash), read when shared
 * memory is made and then removed, so that a crash never brings back stale
 * counters and base backups do not carry it to standbys.  Bucket times are
 * wall-clock timestamps, so a restored window ends when it would have.  The
 * file also keeps the secret hash seed (the buckets' keys depend on it); a
 * bucket whose window is longer than pgapp.ratelimit_max_window allows now,
 * or that would outlive it, is not restored.
 *
 * Locking protocol (the whole of it is in ratelimit_int.h): the sweep takes
 * the partition locks as pgapp_rate_remove_matching does (all SHARED to
 * collect, then each EXCLUSIVE to remove); housekeeping reads only atomic
 * counters.  The save file is written and read by the postmaster when no
 * backend exists (after they have all exited, and before any starts), so
 * it takes no lock.
 *
 * src/ratelimit/ratelimit_store.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "ratelimit.h"
#include "ratelimit_int.h"

#define RATE_SAVE_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/pgapp_ratelimit.stat"
#define RATE_SAVE_MAGIC 0x50415231	/* "PAR1" */
#define RATE_SAVE_VERSION 3
#define RATE_SWEEP_BATCH 8192

/* What the save file holds per limiter and per bucket. */
typedef struct SavedLimiter
{
	int32		slot;
	Oid			dboid;
	int32		max_keys;
	char		name[RATE_LIMITER_NAME_LEN];
} SavedLimiter;

typedef struct SavedBucket
{
	RateKey		key;
	RateKey		ident;
	Oid			dboid;
	RateState	state;
	int32		algorithm;
	int32		max_requests;
	int32		window_seconds;
	int32		burst;
	int32		slot;
	char		display[RATE_DISPLAY_LEN];
} SavedBucket;

static bool
expired(const RateBucket *b, const RateState *s, void *arg)
{
	return s->expires_at <= *(const int64 *) arg;
}

/*
 * Remove every bucket that expired by now; returns how many.  See the
 * header comment for the two passes.
 */
int
pgapp_rate_sweep(int64 now)
{
	int			removed = pgapp_rate_remove_matching(expired, &now, RATE_SWEEP_BATCH);

	pg_atomic_fetch_add_u64(&pgapp_rate_shared->swept, removed);
	return removed;
}

/*
 * The housekeeper's round (core/housekeeper.c): sweep, and say once per round how
 * many live buckets were evicted to make room (the table is too small for
 * the keys in use, or someone floods it) and how many checks found nothing
 * to evict, since the last round.
 */
void
pgapp_rate_housekeeping(void)
{
	static uint64 full_seen = 0;
	static uint64 evicted_seen = 0;
	static int64 last_run = 0;
	int64		now;
	uint64		full;
	uint64		evicted;

	if (pgapp_rate_shared == NULL || pgapp_ratelimit_sweep_interval <= 0)
		return;
	now = pgapp_rate_now();
	if (last_run != 0 && now - last_run < USECS(pgapp_ratelimit_sweep_interval))
		return;
	last_run = now;

	(void) pgapp_rate_sweep(now);
	evicted = pgapp_rate_total(RATE_EVICTIONS);
	if (evicted > evicted_seen)
		ereport(LOG,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg_plural("%llu live rate limit bucket was evicted since the last sweep to make room for new keys",
							  "%llu live rate limit buckets were evicted since the last sweep to make room for new keys",
							  (unsigned long) (evicted - evicted_seen),
							  (unsigned long long) (evicted - evicted_seen)),
				errdetail("A key evicted while its window runs starts counting afresh."),
				errhint("Raise \"%s\" (or the limiters' max_keys) to hold every active key; see pgapp.rate_stats.",
						"pgapp.ratelimit_max_keys"));
	evicted_seen = evicted;
	full = pgapp_rate_total(RATE_FULL_EVENTS);
	if (full > full_seen)
		ereport(LOG,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg_plural("%llu rate limit check found no free bucket and none to evict since the last sweep and was %s",
							  "%llu rate limit checks found no free bucket and none to evict since the last sweep and were %s",
							  (unsigned long) (full - full_seen),
							  (unsigned long long) (full - full_seen),
							  pgapp_ratelimit_on_full == RATE_ON_FULL_ALLOW ? "allowed without being counted" :
							  pgapp_ratelimit_on_full == RATE_ON_FULL_DENY ? "denied" : "refused with an error"),
				errhint("Raise \"%s\", or leave \"default\" a share of it when creating limiters.",
						"pgapp.ratelimit_max_keys"));
	full_seen = full;
}

/* ---------------------------------------------------------------------
 * The save file
 * ---------------------------------------------------------------------
 */

/* Write the registered named limiters; false on a write error. */
static bool
write_limiters(FILE *file)
{
	for (int i = 1; i < RATE_MAX_LIMITERS; i++)
	{
		SavedLimiter l = {0};

		if (pgapp_rate_shared->limiters[i].name[0] == '\0')
			continue;
		l.slot = i;
		l.dboid = pgapp_rate_shared->limiters[i].dboid;
		l.max_keys = pgapp_rate_shared->limiters[i].max_keys;
		strlcpy(l.name, pgapp_rate_shared->limiters[i].name, RATE_LIMITER_NAME_LEN);
		if (fwrite(&l, sizeof(l), 1, file) != 1)
			return false;
	}
	return true;
}

/*
 * Write every bucket; false on a write error.  The postmaster, after every
 * backend has exited: no lock needed.
 */
static bool
write_buckets(FILE *file)
{
	HASH_SEQ_STATUS status;
	RateBucket *b;

	hash_seq_init(&status, pgapp_rate_table);
	while ((b = hash_seq_search(&status)) != NULL)
	{
		SavedBucket sb = {0};

		sb.key = b->key;
		sb.ident = b->ident;
		sb.dboid = b->dboid;
		sb.state = b->state;
		sb.algorithm = b->algorithm;
		sb.max_requests = b->max_requests;
		sb.window_seconds = b->window_seconds;
		sb.burst = b->burst;
		sb.slot = b->limiter;
		memcpy(sb.display, b->display, RATE_DISPLAY_LEN);
		if (fwrite(&sb, sizeof(sb), 1, file) != 1)
		{
			hash_seq_term(&status);
			return false;
		}
	}
	return true;
}

static void
rate_save_file(int code, Datum arg)
{
	FILE	   *file;
	int32		header[2] = {RATE_SAVE_MAGIC, RATE_SAVE_VERSION};
	int32		nlimiters = 0;
	int64		nbuckets;
	const char *tmp = RATE_SAVE_FILE ".tmp";

	/* after a crash the counters may be inconsistent: do not keep them */
	if (code != 0 || pgapp_rate_shared == NULL || pgapp_rate_table == NULL)
		return;
	if (!pgapp_ratelimit_save)
	{
		unlink(RATE_SAVE_FILE);
		return;
	}

	file = AllocateFile(tmp, PG_BINARY_W);
	if (file == NULL)
		goto error;
	for (int i = 1; i < RATE_MAX_LIMITERS; i++)
		if (pgapp_rate_shared->limiters[i].name[0] != '\0')
			nlimiters++;
	nbuckets = hash_get_num_entries(pgapp_rate_table);
	if (fwrite(header, sizeof(header), 1, file) != 1 ||
		fwrite(&pgapp_rate_shared->seed, sizeof(uint64), 1, file) != 1 ||
		fwrite(&nlimiters, sizeof(nlimiters), 1, file) != 1)
		goto error;
	if (!write_limiters(file) ||
		fwrite(&nbuckets, sizeof(nbuckets), 1, file) != 1 ||
		!write_buckets(file))
		goto error;
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(tmp, RATE_SAVE_FILE, LOG);
	return;

error:
	ereport(LOG,
			errcode_for_file_access(),
			errmsg("could not write file \"%s\": %m", tmp));
	if (file)
		FreeFile(file);
	unlink(tmp);
}

/* Save the buckets when the postmaster exits cleanly. */
void
pgapp_rate_save_at_exit(void)
{
	on_shmem_exit(rate_save_file, (Datum) 0);
}

/* What restore_bucket did. */
typedef enum RateRestore
{
	RATE_RESTORE_DONE,
	RATE_RESTORE_SKIPPED,		/* expired, over a quota or the cap, or a
								 * duplicate */
	RATE_RESTORE_TABLE_FULL
} RateRestore;

/*
 * Put one saved bucket back into the table, in registry slot (-1: its
 * limiter was not restored).  The postmaster, before any backend exists:
 * no lock needed.
 */
static RateRestore
restore_bucket(SavedBucket *sb, int slotno, int64 now)
{
	int64		longest = now + 2 * USECS(pgapp_ratelimit_max_window);
	RateLimiterSlot *slot;
	uint32		quota;
	RateBucket *b;
	bool		found;

	if (sb->state.expires_at <= now || slotno < 0)
		return RATE_RESTORE_SKIPPED;
	/* a window the cap no longer allows, or a bucket that would outlive it */
	if (sb->window_seconds > pgapp_ratelimit_max_window || sb->state.expires_at > longest)
		return RATE_RESTORE_SKIPPED;
	slot = &pgapp_rate_shared->limiters[slotno];
	quota = slotno == RATE_DEFAULT_SLOT ?
		pg_atomic_read_u32(&pgapp_rate_shared->default_quota) : (uint32) slot->max_keys;
	if (pg_atomic_read_u32(&slot->used) >= quota)
		return RATE_RESTORE_SKIPPED;
	b = hash_search(pgapp_rate_table, &sb->key, HASH_ENTER_NULL, &found);
	if (b == NULL)
		return RATE_RESTORE_TABLE_FULL;
	if (found)
		return RATE_RESTORE_SKIPPED;
	SpinLockInit(&b->mutex);
	b->state = sb->state;
	b->algorithm = sb->algorithm;
	b->max_requests = sb->max_requests;
	b->window_seconds = sb->window_seconds;
	b->burst = sb->burst;
	b->limiter = (int16) slotno;
	b->incarnation = pg_atomic_read_u32(&slot->incarnation);
	b->dboid = sb->dboid;
	b->ident = sb->ident;
	sb->display[RATE_DISPLAY_LEN - 1] = '\0';
	memcpy(b->display, sb->display, RATE_DISPLAY_LEN);
	pgapp_rate_dir_add(b, false);
	pg_atomic_fetch_add_u32(&slot->used, 1);
	return RATE_RESTORE_DONE;
}

/*
 * Restore the buckets of the last clean shutdown (postmaster, at shared
 * memory creation).  A missing file is normal; a damaged one is logged and
 * ignored.  Expired buckets, those over a quota and those over the window
 * cap are skipped.
 */
void
pgapp_rate_load_file(void)
{
	FILE	   *file;
	int32		header[2];
	int32		nlimiters;
	int64		nbuckets;
	int			map[RATE_MAX_LIMITERS];
	int64		now = GetCurrentTimestamp();
	int64		restored = 0;
	uint64		seed;

	for (int i = 0; i < RATE_MAX_LIMITERS; i++)
		map[i] = i == RATE_DEFAULT_SLOT ? RATE_DEFAULT_SLOT : -1;

	file = AllocateFile(RATE_SAVE_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					errcode_for_file_access(),
					errmsg("could not read file \"%s\": %m", RATE_SAVE_FILE));
		return;
	}
	if (fread(header, sizeof(header), 1, file) != 1 ||
		header[0] != RATE_SAVE_MAGIC || header[1] != RATE_SAVE_VERSION ||
		fread(&seed, sizeof(seed), 1, file) != 1 ||
		fread(&nlimiters, sizeof(nlimiters), 1, file) != 1 ||
		nlimiters < 0 || nlimiters >= RATE_MAX_LIMITERS)
		goto bad;
	/* the saved keys were made with the saved seed */
	pgapp_rate_shared->seed = seed;
	for (int i = 0; i < nlimiters; i++)
	{
		SavedLimiter l;

		if (fread(&l, sizeof(l), 1, file) != 1 || l.slot <= 0 || l.slot >= RATE_MAX_LIMITERS)
			goto bad;
		l.name[RATE_LIMITER_NAME_LEN - 1] = '\0';
		map[l.slot] = pgapp_rate_restore_limiter(l.name, l.dboid, l.max_keys);
	}
	if (fread(&nbuckets, sizeof(nbuckets), 1, file) != 1 || nbuckets < 0)
		goto bad;
	for (int64 i = 0; i < nbuckets; i++)
	{
		SavedBucket sb;
		RateRestore r;

		if (fread(&sb, sizeof(sb), 1, file) != 1 || sb.slot < 0 || sb.slot >= RATE_MAX_LIMITERS ||
			sb.algorithm < RATE_FIXED || sb.algorithm > RATE_GCRA ||
			sb.max_requests <= 0 || sb.window_seconds <= 0 || sb.burst < 0 || sb.burst == PG_INT32_MAX)
			goto bad;
		r = restore_bucket(&sb, map[sb.slot], now);
		if (r == RATE_RESTORE_TABLE_FULL)
			break;				/* a smaller table than before: keep what fits */
		if (r == RATE_RESTORE_DONE)
			restored++;
	}
	FreeFile(file);
	unlink(RATE_SAVE_FILE);
	ereport(LOG,
			errmsg_plural("restored %lld rate limit bucket saved at the last shutdown",
						  "restored %lld rate limit buckets saved at the last shutdown",
						  (unsigned long) restored, (long long) restored));
	return;

bad:
	ereport(LOG,
			errmsg("ignoring damaged rate limiter file \"%s\"", RATE_SAVE_FILE));
	FreeFile(file);
	unlink(RATE_SAVE_FILE);
}

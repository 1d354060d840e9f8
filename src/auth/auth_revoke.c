/*-------------------------------------------------------------------------
 *
 * auth_revoke.c
 *	  Token revocation: revoked token ids and per-subject cutoffs, kept in
 *	  two tables of each database and cached in shared memory for the
 *	  whole cluster, so that checking a token reads no table.
 *
 * pgapp.revoke_token(jti, expires_at) revokes one token until it expires;
 * pgapp.revoke_subject(sub, not_before) revokes every token of sub issued
 * before not_before (iat has whole seconds: a token issued in not_before's
 * second, even just after it, is revoked too, and a token without iat is
 * revoked while its subject has a cutoff).  A cutoff is kept until
 * not_before + pgapp.auth_token_max_ttl, the longest lifetime
 * encode_token gives.  Rows are keyed by the SHA-256 of the jti or sub, so
 * any length fits an index; expired rows are deleted a few at a time by
 * every revocation (and by pgapp.auth_revocation_cleanup()).
 *
 * The cache: a shared hash of RevokeEntry keyed by (database, kind, keyed
 * BLAKE2b of the jti or sub; the key is random per server start, so nobody
 * can aim entries at one hash chain), sized by
 * pgapp.auth_revocation_capacity, and an array of RevokeDb, one per
 * database using revocation, with its state:
 *
 *	 EMPTY    nothing cached: the first check loads the database's rows;
 *	 LOADING  one backend (loader_pid) is loading; others read the tables;
 *	 LOADED   every live revocation of the database is cached, except while
 *			  now < overflow_until (some did not fit: read the tables).
 *
 * A revocation reaches the cache when its transaction commits (xact_defer:
 * a rolled-back revoke revokes nothing), in every database state but
 * "no slot", so a load that started before the commit cannot miss it: the
 * loader's snapshot is taken after it made the slot LOADING, and a commit
 * the snapshot does not see pushes its entry after that.  A full cache
 * never drops a revocation: the database's overflow_until moves to the
 * entry's expiry (checks read the tables until every entry that did not fit
 * has expired) and a WARNING is logged once per overflow.  The housekeeper
 * drops expired entries every REVOKE_SWEEP_SECONDS.
 *
 * A hot standby cannot hear of revocations committed on the primary, so in
 * recovery every check reads the tables (replicated like any table).  A
 * database without a slot (more than REVOKE_MAX_DATABASES use revocation)
 * or a server without pgapp preloaded reads the tables too.  Rows deleted
 * by hand stay revoked in the cache until the entry expires or the server
 * restarts: revocation cannot be undone.
 *
 * Locking protocol (tranche "pgapp auth revocation"):
 *	 locks[REVOKE_DB_LOCK] guards dbs[] (dboid, state, loader_pid,
 *	   overflow_until, overflow_logged): SHARED to read a slot, EXCLUSIVE to
 *	   change one.
 *	 locks[0..REVOKE_PARTITIONS-1] guard the hash's partitions: SHARED to
 *	   look an entry up, EXCLUSIVE to insert, update or remove one; the sweep
 *	   takes all of them EXCLUSIVE in ascending order.
 *	 No one holds the db lock and a partition lock at once, or an LWLock
 *	 across SPI, an allocation or an ereport above WARNING.
 *	 nentries (atomic) counts the entries: an insert reserves one before
 *	 entering it and gives it back if it cannot.
 *
 * src/auth/auth_revoke.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/crypto.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "core/xact_defer.h"

#include "auth/auth.h"
#include "auth/auth_int.h"

#define REVOKE_PARTITIONS 16
#define REVOKE_DB_LOCK REVOKE_PARTITIONS
#define REVOKE_NUM_LOCKS (REVOKE_PARTITIONS + 1)
#define REVOKE_MAX_DATABASES 64
#define REVOKE_SWEEP_SECONDS 10
/* expired rows a revocation deletes from each table */
#define REVOKE_CLEANUP_BATCH 100

typedef enum RevokeKind
{
	REVOKE_JTI = 1,
	REVOKE_SUBJECT = 2
} RevokeKind;

typedef enum RevokeDbState
{
	REVOKE_DB_EMPTY = 0,
	REVOKE_DB_LOADING,
	REVOKE_DB_LOADED
} RevokeDbState;

typedef struct RevokeKey
{
	Oid			dboid;
	uint32		kind;
	uint8		digest[PGAPP_KEYED_HASH_BYTES];
} RevokeKey;

typedef struct RevokeEntry
{
	RevokeKey	key;
	TimestampTz not_before;		/* REVOKE_SUBJECT: the cutoff */
	TimestampTz expires_at;		/* dropped after this (plus the leeway) */
} RevokeEntry;

typedef struct RevokeDb
{
	Oid			dboid;			/* InvalidOid: free slot */
	RevokeDbState state;
	int			loader_pid;
	bool		overflow_logged;
	TimestampTz overflow_until;
} RevokeDb;

typedef struct RevokeShared
{
	LWLockPadded *locks;
	uint8		hash_key[PGAPP_KEYED_HASH_KEY_BYTES];
	pg_atomic_uint32 nentries;
	pg_atomic_uint64 last_sweep;	/* TimestampTz */
	bool		no_slot_logged;
	RevokeDb	dbs[REVOKE_MAX_DATABASES];
} RevokeShared;

/* A revocation waiting for its transaction to commit. */
typedef struct PendingRevocation
{
	RevokeKey	key;
	TimestampTz not_before;
	TimestampTz expires_at;
} PendingRevocation;

static RevokeShared *revoke_shared = NULL;
static HTAB *revoke_table = NULL;

PG_FUNCTION_INFO_V1(pgapp_revoke_token);
PG_FUNCTION_INFO_V1(pgapp_revoke_subject);
PG_FUNCTION_INFO_V1(pgapp_auth_revocation_cleanup);
PG_FUNCTION_INFO_V1(pgapp_auth_revocation_status);

static void revoke_shmem_request(void);
static void revoke_shmem_startup(void);
static const char *revoke_status(void);
static void revoke_housekeeping(void);
static void revoke_before_drop_database(Oid dboid);

const PgappModule pgapp_auth_module = {
	.name = "auth",
	.shmem_request = revoke_shmem_request,
	.shmem_startup = revoke_shmem_startup,
	.status = revoke_status,
	.housekeeping = revoke_housekeeping,
	.before_drop_database = revoke_before_drop_database,
};

/* ---------------------------------------------------------------- shmem */

static void
revoke_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(RevokeShared)));
	RequestAddinShmemSpace(hash_estimate_size(pgapp_auth_revocation_capacity,
											  sizeof(RevokeEntry)));
	RequestNamedLWLockTranche("pgapp auth revocation", REVOKE_NUM_LOCKS);
}

/* The key is already a keyed hash: its first 32 bits are the table's hash. */
static uint32
revoke_key_hash(const void *key, Size keysize)
{
	const RevokeKey *k = (const RevokeKey *) key;
	uint32		h;

	memcpy(&h, k->digest, sizeof(h));
	return h ^ k->dboid ^ (k->kind << 30);
}

static void
revoke_shmem_startup(void)
{
	bool		found;
	HASHCTL		info = {0};

	revoke_shared = ShmemInitStruct("pgapp auth revocation", sizeof(RevokeShared), &found);
	if (!found)
	{
		memset(revoke_shared, 0, sizeof(RevokeShared));
		revoke_shared->locks = GetNamedLWLockTranche("pgapp auth revocation");
		if (!pg_strong_random(revoke_shared->hash_key, sizeof(revoke_shared->hash_key)))
			ereport(FATAL,
					errcode(ERRCODE_INTERNAL_ERROR),
					errmsg("could not generate the revocation cache's hash key"));
		pg_atomic_init_u32(&revoke_shared->nentries, 0);
		pg_atomic_init_u64(&revoke_shared->last_sweep, 0);
	}
	info.keysize = sizeof(RevokeKey);
	info.entrysize = sizeof(RevokeEntry);
	info.hash = revoke_key_hash;
	info.num_partitions = REVOKE_PARTITIONS;
	revoke_table = ShmemInitHash("pgapp auth revocation entries",
								 pgapp_auth_revocation_capacity,
								 pgapp_auth_revocation_capacity, &info,
								 HASH_ELEM | HASH_FUNCTION | HASH_PARTITION | HASH_FIXED_SIZE);
}

static const char *
revoke_status(void)
{
	return revoke_shared ? "ok" : "not preloaded";
}

static inline LWLock *
partition_lock(uint32 hashcode)
{
	return &revoke_shared->locks[hashcode % REVOKE_PARTITIONS].lock;
}

static inline LWLock *
db_lock(void)
{
	return &revoke_shared->locks[REVOKE_DB_LOCK].lock;
}

/* How long past its expiry an entry or row still matters: the clock leeway. */
static inline TimestampTz
live_limit(TimestampTz now)
{
	return now - (TimestampTz) pgapp_auth_jwt_leeway * USECS_PER_SEC;
}

/* The cache key of a jti or sub in the current database. */
static void
make_key(RevokeKind kind, const char *s, size_t len, RevokeKey *key)
{
	memset(key, 0, sizeof(RevokeKey));
	key->dboid = MyDatabaseId;
	key->kind = (uint32) kind;
	pgapp_crypto_keyed_hash(revoke_shared->hash_key, (const uint8 *) s, len, key->digest);
}

/* The slot of dboid, or NULL; the caller holds the db lock. */
static RevokeDb *
find_db(Oid dboid)
{
	for (int i = 0; i < REVOKE_MAX_DATABASES; i++)
		if (revoke_shared->dbs[i].dboid == dboid)
			return &revoke_shared->dbs[i];
	return NULL;
}

/*
 * Put a revocation into the cache, keeping the later not_before and
 * expiry; false when the cache is full.  Takes the entry's partition lock.
 */
static bool
cache_put(const RevokeKey *key, TimestampTz not_before, TimestampTz expires_at)
{
	uint32		hashcode = get_hash_value(revoke_table, key);
	LWLock	   *lock = partition_lock(hashcode);
	RevokeEntry *e;
	bool		found;
	bool		ok = true;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(revoke_table, key, hashcode, HASH_FIND, NULL);
	if (e == NULL)
	{
		if (pg_atomic_fetch_add_u32(&revoke_shared->nentries, 1) >=
			(uint32) pgapp_auth_revocation_capacity)
			e = NULL;
		else
			e = hash_search_with_hash_value(revoke_table, key, hashcode, HASH_ENTER_NULL,
											&found);
		if (e == NULL)
		{
			pg_atomic_fetch_sub_u32(&revoke_shared->nentries, 1);
			ok = false;
		}
		else
		{
			e->not_before = not_before;
			e->expires_at = expires_at;
		}
	}
	else
	{
		e->not_before = Max(e->not_before, not_before);
		e->expires_at = Max(e->expires_at, expires_at);
	}
	LWLockRelease(lock);
	return ok;
}

/*
 * A revocation that did not fit: the database reads its tables until
 * expires_at (plus the leeway) has passed.  Logs once per overflow.
 */
static void
mark_overflow(Oid dboid, TimestampTz expires_at)
{
	RevokeDb   *db;
	bool		log = false;

	LWLockAcquire(db_lock(), LW_EXCLUSIVE);
	db = find_db(dboid);
	if (db != NULL)
	{
		TimestampTz until = expires_at + (TimestampTz) pgapp_auth_jwt_leeway * USECS_PER_SEC;

		if (db->overflow_until < GetCurrentTimestamp())
			db->overflow_logged = false;
		db->overflow_until = Max(db->overflow_until, until);
		log = !db->overflow_logged;
		db->overflow_logged = true;
	}
	LWLockRelease(db_lock());
	if (log)
		ereport(WARNING,
				errcode(ERRCODE_OUT_OF_MEMORY),
				errmsg("the token revocation cache is full"),
				errdetail("Token checks in this database read the revocation tables until the revocations that did not fit have expired."),
				errhint("Raise \"%s\" and restart the server.", "pgapp.auth_revocation_capacity"));
}

/* Put a revocation of the current database into the cache, or overflow. */
static void
cache_add(const RevokeKey *key, TimestampTz not_before, TimestampTz expires_at)
{
	if (!cache_put(key, not_before, expires_at))
		mark_overflow(key->dboid, expires_at);
}

/* ---------------------------------------------------------------- tables */

/*
 * Run sql (pgapp's tables, names qualified) as the schema's owner with a
 * plan kept per backend; connects to SPI itself when the caller has not.
 */
static int
run_as_owner(const char *sql, int nargs, Oid *types, Datum *values, bool read_only)
{
	PgappOwnerSwitch sw;
	int			ret;

	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = pgapp_spi_execute_cached(sql, nargs, types, values, NULL, read_only, 0);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	return ret;
}

static bytea *
digest_bytea(const char *s, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + PGAPP_SHA256_BYTES);

	SET_VARSIZE(b, VARHDRSZ + PGAPP_SHA256_BYTES);
	pgapp_crypto_sha256((const uint8 *) s, len, (uint8 *) VARDATA(b));
	return b;
}

/* Delete a bounded number of expired rows from both tables. */
static int
cleanup_tables(void)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1] = {TimestampTzGetDatum(live_limit(GetCurrentTimestamp()))};
	int			n = 0;
	int			ret;

	ret = run_as_owner("DELETE FROM pgapp.auth_revoked_token WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
					   "SELECT ctid FROM pgapp.auth_revoked_token WHERE expires_at OPERATOR(pg_catalog.<) $1 "
					   "LIMIT " CppAsString2(REVOKE_CLEANUP_BATCH) "))",
					   1, types, values, false);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete expired token revocations: %s", SPI_result_code_string(ret));
	n += SPI_processed;
	ret = run_as_owner("DELETE FROM pgapp.auth_subject_cutoff WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
					   "SELECT ctid FROM pgapp.auth_subject_cutoff WHERE expires_at OPERATOR(pg_catalog.<) $1 "
					   "LIMIT " CppAsString2(REVOKE_CLEANUP_BATCH) "))",
					   1, types, values, false);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete expired subject cutoffs: %s", SPI_result_code_string(ret));
	n += SPI_processed;
	return n;
}

/* At commit: the transaction's revocations into the cache (no errors). */
static void
push_at_commit(List *args)
{
	ListCell   *lc;
	bool		have_slot;

	if (revoke_shared == NULL || args == NIL)
		return;
	LWLockAcquire(db_lock(), LW_SHARED);
	have_slot = find_db(MyDatabaseId) != NULL;
	LWLockRelease(db_lock());
	if (!have_slot)
		return;					/* no cache here: checks read the tables */
	foreach(lc, args)
	{
		PendingRevocation *p = (PendingRevocation *) lfirst(lc);

		if (!cache_put(&p->key, p->not_before, p->expires_at))
		{
			/* logging at commit is allowed; an error is not */
			PG_TRY();
			{
				mark_overflow(p->key.dboid, p->expires_at);
			}
			PG_CATCH();
			{
				FlushErrorState();
			}
			PG_END_TRY();
		}
	}
}

static void
defer_push(RevokeKind kind, const char *s, size_t len, TimestampTz not_before,
		   TimestampTz expires_at)
{
	PendingRevocation *p;

	if (revoke_shared == NULL)
		return;
	p = MemoryContextAlloc(TopTransactionContext, sizeof(PendingRevocation));
	make_key(kind, s, len, &p->key);
	p->not_before = not_before;
	p->expires_at = expires_at;
	pgapp_xact_defer(PGAPP_XACT_COMMIT, push_at_commit, p);
}

static void
check_text_arg(const char *what, size_t len)
{
	if (len == 0 || len > PGAPP_TOKEN_MAX_LENGTH)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must be 1 to %d bytes long", what, PGAPP_TOKEN_MAX_LENGTH));
}

static void
require_writable(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				errmsg("cannot revoke tokens during recovery"),
				errhint("Revoke on the primary server."));
}

/*
 * Revoke the token whose jti is jti until expires_at (its exp): persisted
 * in pgapp.auth_revoked_token, cached when the transaction commits.  No
 * permission check: the caller (a SECURITY DEFINER function, or
 * pgapp.revoke_token, which only pgapp_admin may run) decides who may.
 */
void
pgapp_auth_revoke_jti(const char *jti, TimestampTz expires_at)
{
	size_t		len = strlen(jti);
	Oid			types[3] = {BYTEAOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	int			ret;

	check_text_arg("jti", len);
	require_writable();
	if (TIMESTAMP_NOT_FINITE(expires_at))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("expires_at must be a finite time"),
				errhint("Pass the token's exp."));
	if (expires_at < live_limit(GetCurrentTimestamp()))
		return;					/* the token has expired: nothing to revoke */

	values[0] = PointerGetDatum(digest_bytea(jti, len));
	values[1] = PointerGetDatum(cstring_to_text_with_len(jti, len));
	values[2] = TimestampTzGetDatum(expires_at);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = run_as_owner("INSERT INTO pgapp.auth_revoked_token AS r (jti_sha256, jti, expires_at) "
					   "VALUES ($1, $2, $3) ON CONFLICT (jti_sha256) DO UPDATE "
					   "SET expires_at = GREATEST(r.expires_at, EXCLUDED.expires_at)",
					   3, types, values, false);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record a token revocation: %s", SPI_result_code_string(ret));
	cleanup_tables();
	SPI_finish();
	defer_push(REVOKE_JTI, jti, len, 0, expires_at);
}

/*
 * Revoke every token of sub issued before not_before: persisted in
 * pgapp.auth_subject_cutoff until not_before + pgapp.auth_token_max_ttl,
 * cached when the transaction commits.  No permission check (as above).
 */
void
pgapp_auth_revoke_subject(const char *sub, TimestampTz not_before)
{
	size_t		len = strlen(sub);
	Oid			types[4] = {BYTEAOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[4];
	TimestampTz expires_at;
	int			ret;

	check_text_arg("sub", len);
	require_writable();
	if (TIMESTAMP_NOT_FINITE(not_before))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("not_before must be a finite time"));
	expires_at = not_before + (TimestampTz) pgapp_auth_token_max_ttl * USECS_PER_SEC;
	if (expires_at < live_limit(GetCurrentTimestamp()))
		return;					/* every token issued before it has expired */

	values[0] = PointerGetDatum(digest_bytea(sub, len));
	values[1] = PointerGetDatum(cstring_to_text_with_len(sub, len));
	values[2] = TimestampTzGetDatum(not_before);
	values[3] = TimestampTzGetDatum(expires_at);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = run_as_owner("INSERT INTO pgapp.auth_subject_cutoff AS c (sub_sha256, sub, not_before, expires_at) "
					   "VALUES ($1, $2, $3, $4) ON CONFLICT (sub_sha256) DO UPDATE "
					   "SET not_before = GREATEST(c.not_before, EXCLUDED.not_before), "
					   "expires_at = GREATEST(c.expires_at, EXCLUDED.expires_at)",
					   4, types, values, false);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record a subject cutoff: %s", SPI_result_code_string(ret));
	cleanup_tables();
	SPI_finish();
	defer_push(REVOKE_SUBJECT, sub, len, not_before, expires_at);
}

/* pgapp.revoke_token(jti text, expires_at timestamptz) -> void */
Datum
pgapp_revoke_token(PG_FUNCTION_ARGS)
{
	pgapp_auth_revoke_jti(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_TIMESTAMPTZ(1));
	PG_RETURN_VOID();
}

/* pgapp.revoke_subject(sub text, not_before timestamptz) -> void */
Datum
pgapp_revoke_subject(PG_FUNCTION_ARGS)
{
	pgapp_auth_revoke_subject(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_TIMESTAMPTZ(1));
	PG_RETURN_VOID();
}

/* pgapp.auth_revocation_cleanup() -> integer: expired rows deleted. */
Datum
pgapp_auth_revocation_cleanup(PG_FUNCTION_ARGS)
{
	int			total = 0;
	int			n;

	require_writable();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	do
	{
		CHECK_FOR_INTERRUPTS();
		n = cleanup_tables();
		total += n;
	} while (n > 0);
	SPI_finish();
	PG_RETURN_INT32(total);
}

/* ---------------------------------------------------------------- checks */

/* What a token carries that revocation looks at. */
typedef struct RevokeClaims
{
	const char *jti;
	const char *sub;
	bool		has_iat;
	double		iat;			/* Unix seconds */
} RevokeClaims;

static double
unix_seconds(TimestampTz t)
{
	return (double) t / USECS_PER_SEC +
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

/* Is a token of sub with that iat before the cutoff not_before? */
static bool
before_cutoff(const RevokeClaims *c, TimestampTz not_before)
{
	/* iat has whole seconds: the cutoff's second counts as before it */
	return !c->has_iat || isnan(c->iat) || c->iat < ceil(unix_seconds(not_before));
}

/* The revocation check from the tables (as the schema's owner). */
static bool
revoked_in_tables(const RevokeClaims *c)
{
	Oid			types[2] = {BYTEAOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		revoked = false;
	int			ret;

	values[1] = TimestampTzGetDatum(live_limit(GetCurrentTimestamp()));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (c->jti != NULL)
	{
		values[0] = PointerGetDatum(digest_bytea(c->jti, strlen(c->jti)));
		ret = run_as_owner("SELECT 1 FROM pgapp.auth_revoked_token WHERE jti_sha256 OPERATOR(pg_catalog.=) $1 "
						   "AND expires_at OPERATOR(pg_catalog.>=) $2",
						   2, types, values, true);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read token revocations: %s", SPI_result_code_string(ret));
		revoked = SPI_processed > 0;
	}
	if (!revoked && c->sub != NULL)
	{
		values[0] = PointerGetDatum(digest_bytea(c->sub, strlen(c->sub)));
		ret = run_as_owner("SELECT not_before FROM pgapp.auth_subject_cutoff WHERE sub_sha256 OPERATOR(pg_catalog.=) $1 "
						   "AND expires_at OPERATOR(pg_catalog.>=) $2",
						   2, types, values, true);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read subject cutoffs: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			revoked = !isnull && before_cutoff(c, DatumGetTimestampTz(d));
		}
	}
	SPI_finish();
	return revoked;
}

/* Look one key up in the cache: *found, and the entry's values. */
static bool
cache_get(const RevokeKey *key, TimestampTz *not_before, TimestampTz *expires_at)
{
	uint32		hashcode = get_hash_value(revoke_table, key);
	LWLock	   *lock = partition_lock(hashcode);
	RevokeEntry *e;
	bool		found = false;

	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(revoke_table, key, hashcode, HASH_FIND, NULL);
	if (e != NULL)
	{
		found = true;
		*not_before = e->not_before;
		*expires_at = e->expires_at;
	}
	LWLockRelease(lock);
	return found;
}

static bool
revoked_in_cache(const RevokeClaims *c, TimestampTz now)
{
	RevokeKey	key;
	TimestampTz not_before;
	TimestampTz expires_at;
	TimestampTz limit = live_limit(now);

	if (c->jti != NULL)
	{
		make_key(REVOKE_JTI, c->jti, strlen(c->jti), &key);
		if (cache_get(&key, &not_before, &expires_at) && expires_at >= limit)
			return true;
	}
	if (c->sub != NULL)
	{
		make_key(REVOKE_SUBJECT, c->sub, strlen(c->sub), &key);
		if (cache_get(&key, &not_before, &expires_at) && expires_at >= limit &&
			before_cutoff(c, not_before))
			return true;
	}
	return false;
}

/*
 * Load the current database's live revocations into the cache; the caller
 * made its slot LOADING.  Rows that do not fit overflow as any insert.
 */
static void
load_database(void)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1] = {TimestampTzGetDatum(live_limit(GetCurrentTimestamp()))};
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = run_as_owner("SELECT 1, jti, NULL::timestamptz, expires_at FROM pgapp.auth_revoked_token "
					   "WHERE expires_at OPERATOR(pg_catalog.>=) $1 "
					   "UNION ALL SELECT 2, sub, not_before, expires_at FROM pgapp.auth_subject_cutoff "
					   "WHERE expires_at OPERATOR(pg_catalog.>=) $1",
					   1, types, values, true);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read token revocations: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		kind = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		text	   *s = DatumGetTextPP(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		nb = SPI_getbinval(tup, desc, 3, &isnull);
		TimestampTz not_before = isnull ? 0 : DatumGetTimestampTz(nb);
		TimestampTz expires_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		RevokeKey	key;

		CHECK_FOR_INTERRUPTS();
		make_key((RevokeKind) kind, VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s), &key);
		cache_add(&key, not_before, expires_at);
	}
	SPI_finish();
}

/*
 * Is the current database's cache complete?  Loads it first when nobody
 * has (only one backend loads; the others read the tables meanwhile).
 */
static bool
cache_usable(TimestampTz now)
{
	RevokeDb   *db;
	bool		load = false;
	bool		usable = false;

	LWLockAcquire(db_lock(), LW_SHARED);
	db = find_db(MyDatabaseId);
	if (db != NULL && db->state == REVOKE_DB_LOADED)
	{
		usable = now >= db->overflow_until;
		LWLockRelease(db_lock());
		return usable;
	}
	LWLockRelease(db_lock());

	/* not loaded: claim the load, taking a free slot if need be */
	LWLockAcquire(db_lock(), LW_EXCLUSIVE);
	db = find_db(MyDatabaseId);
	if (db == NULL)
	{
		db = find_db(InvalidOid);
		if (db != NULL)
		{
			db->dboid = MyDatabaseId;
			db->state = REVOKE_DB_EMPTY;
			db->overflow_until = 0;
			db->overflow_logged = false;
		}
	}
	if (db != NULL && db->state == REVOKE_DB_LOADING &&
		BackendPidGetProc(db->loader_pid) == NULL)
		db->state = REVOKE_DB_EMPTY;	/* its loader exited */
	if (db != NULL && db->state == REVOKE_DB_EMPTY)
	{
		db->state = REVOKE_DB_LOADING;
		db->loader_pid = MyProcPid;
		load = true;
	}
	else if (db != NULL && db->state == REVOKE_DB_LOADED)
		usable = now >= db->overflow_until;
	LWLockRelease(db_lock());

	if (db == NULL && !revoke_shared->no_slot_logged)
	{
		revoke_shared->no_slot_logged = true;	/* a hint: races are harmless */
		ereport(LOG,
				errmsg("no token revocation cache slot is free for database %u", MyDatabaseId),
				errdetail("More than %d databases check revocations; this one reads its tables.",
						  REVOKE_MAX_DATABASES));
	}
	if (!load)
		return usable;

	PG_TRY();
	{
		load_database();
	}
	PG_CATCH();
	{
		LWLockAcquire(db_lock(), LW_EXCLUSIVE);
		if (db->dboid == MyDatabaseId && db->loader_pid == MyProcPid)
			db->state = REVOKE_DB_EMPTY;
		LWLockRelease(db_lock());
		PG_RE_THROW();
	}
	PG_END_TRY();

	LWLockAcquire(db_lock(), LW_EXCLUSIVE);
	if (db->dboid == MyDatabaseId && db->loader_pid == MyProcPid &&
		db->state == REVOKE_DB_LOADING)
		db->state = REVOKE_DB_LOADED;
	usable = db->state == REVOKE_DB_LOADED && now >= db->overflow_until;
	LWLockRelease(db_lock());
	return usable;
}

/*
 * Is a token with these claims revoked?  jti and sub may be NULL; iat is
 * NaN when the token has none.  Reads no table when the cache of this
 * database is loaded and complete on a primary.
 */
bool
pgapp_auth_is_revoked(const char *jti, const char *sub, double iat)
{
	RevokeClaims c = {jti, sub, !isnan(iat), iat};
	TimestampTz now;

	if (jti == NULL && sub == NULL)
		return false;
	now = GetCurrentTimestamp();
	if (revoke_shared != NULL && !RecoveryInProgress() && cache_usable(now))
		return revoked_in_cache(&c, now);
	return revoked_in_tables(&c);
}

/* ------------------------------------------------------------ housekeeping */

/* Drop expired entries (the housekeeper, every REVOKE_SWEEP_SECONDS). */
static void
revoke_housekeeping(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz limit = live_limit(now);
	HASH_SEQ_STATUS status;
	RevokeEntry *e;
	int			i;

	if (revoke_shared == NULL ||
		now - (TimestampTz) pg_atomic_read_u64(&revoke_shared->last_sweep) <
		REVOKE_SWEEP_SECONDS * USECS_PER_SEC)
		return;
	pg_atomic_write_u64(&revoke_shared->last_sweep, (uint64) now);
	for (i = 0; i < REVOKE_PARTITIONS; i++)
		LWLockAcquire(&revoke_shared->locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&status, revoke_table);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->expires_at < limit &&
			hash_search(revoke_table, &e->key, HASH_REMOVE, NULL) != NULL)
			pg_atomic_fetch_sub_u32(&revoke_shared->nentries, 1);
	}
	for (i = REVOKE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&revoke_shared->locks[i].lock);
}

/* DROP DATABASE: forget the database's slot and entries. */
static void
revoke_before_drop_database(Oid dboid)
{
	HASH_SEQ_STATUS status;
	RevokeEntry *e;
	RevokeDb   *db;
	int			i;

	if (revoke_shared == NULL)
		return;
	LWLockAcquire(db_lock(), LW_EXCLUSIVE);
	db = find_db(dboid);
	if (db != NULL)
		memset(db, 0, sizeof(RevokeDb));
	LWLockRelease(db_lock());
	for (i = 0; i < REVOKE_PARTITIONS; i++)
		LWLockAcquire(&revoke_shared->locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&status, revoke_table);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->key.dboid == dboid &&
			hash_search(revoke_table, &e->key, HASH_REMOVE, NULL) != NULL)
			pg_atomic_fetch_sub_u32(&revoke_shared->nentries, 1);
	}
	for (i = REVOKE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&revoke_shared->locks[i].lock);
}

/*
 * pgapp.auth_revocation_status() -> jsonb: the cache as this database
 * sees it: {"cache": "loaded" | "loading" | "empty" | "no slot" |
 * "not preloaded", "overflow_until": time or null, "entries": n over the
 * cluster, "capacity": n}.
 */
Datum
pgapp_auth_revocation_status(PG_FUNCTION_ARGS)
{
	PgappJsonbBuilder b = {0};
	const char *cache = "not preloaded";
	TimestampTz overflow_until = 0;
	RevokeDb   *db;

	if (revoke_shared != NULL)
	{
		LWLockAcquire(db_lock(), LW_SHARED);
		db = find_db(MyDatabaseId);
		if (db == NULL)
			cache = "no slot";
		else
		{
			cache = db->state == REVOKE_DB_LOADED ? "loaded" :
				db->state == REVOKE_DB_LOADING ? "loading" : "empty";
			overflow_until = db->overflow_until;
		}
		LWLockRelease(db_lock());
	}
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "cache");
	pgapp_jsonb_add_string(&b, cache);
	pgapp_jsonb_key(&b, "overflow_until");
	if (overflow_until > GetCurrentTimestamp())
		pgapp_jsonb_add_string(&b, timestamptz_to_str(overflow_until));
	else
		pgapp_jsonb_add_null(&b);
	pgapp_jsonb_key(&b, "entries");
	pgapp_jsonb_add_int(&b, revoke_shared ? pg_atomic_read_u32(&revoke_shared->nentries) : 0);
	pgapp_jsonb_key(&b, "capacity");
	pgapp_jsonb_add_int(&b, revoke_shared ? pgapp_auth_revocation_capacity : 0);
	pgapp_jsonb_end_object(&b);
	PG_RETURN_JSONB_P(pgapp_jsonb_finish(&b));
}

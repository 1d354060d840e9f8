/*-------------------------------------------------------------------------
 *
 * ratelimit_limiter.c
 *	  Named rate limiters: a group of keys with its own quota of buckets, so
 *	  that one endpoint or tenant filling the table cannot take the places
 *	  of another's keys.
 *
 * The definitions live in the table pgapp.rate_limiter (written by
 * pgapp.create_limiter / pgapp.drop_limiter); it is the only truth.
 * Shared memory holds a registry of the limiters in use, one slot each
 * (slot 0 is the built-in "default"), with the quota and the count of
 * buckets.  A named limiter belongs to its database (the same name in two
 * databases is two limiters); "default" is shared by the whole server.  A
 * named limiter's quota is reserved: "default" gets what the named quotas
 * leave of pgapp.ratelimit_max_keys.
 *
 * The registry follows the table at the commit of each change (the table's
 * trigger defers the change with core/xact_defer, which applies it after
 * commit, keeps it through a released savepoint and drops it with a
 * rolled-back one; a PREPARE of such a transaction is refused), and fills
 * lazily where it did not see the change (a standby, a restart without the
 * save file): the first check that names a limiter reads its row (with a
 * fresh snapshot) and registers it.  Each backend keeps
 * what it resolved in a small local cache, checked on every use against
 * the slot's incarnation (which changes when the slot is registered or
 * freed) and flushed by a relcache invalidation of pgapp.rate_limiter,
 * which the table's trigger sends at commit of any change -- on standbys
 * too, through WAL replay.  A dropped limiter's buckets leave with it; any
 * backend that finds a registered name whose row is gone unregisters it.
 *
 * Locking protocol (the whole of it is in ratelimit_int.h): the registry
 * lock (tranche index RATE_REGISTRY_LOCK) is taken before partition locks,
 * never after; EXCLUSIVE to register, re-quota or free a slot (name, dboid,
 * max_keys, RateShared.reserved), SHARED to look names up.  Registering
 * into a free slot or freeing a slot also takes every partition lock
 * exclusively, so that a check holding one partition lock sees a stable
 * incarnation; freeing a slot removes its buckets then, each also leaving
 * the directory under the directory lock (innermost).  The postmaster
 * restores limiters from the save file without locks, before any backend
 * exists.  The per-backend cache and the deferred changes are local.
 *
 * src/ratelimit/ratelimit_limiter.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "core/xact_defer.h"
#include "ratelimit.h"
#include "ratelimit_int.h"

/* What a backend resolved, by name. */
typedef struct LocalLimiter
{
	char		name[RATE_LIMITER_NAME_LEN];
	bool		valid;
	RateLimiterRef ref;
} LocalLimiter;

static LocalLimiter local_limiters[RATE_MAX_LIMITERS];
static int	n_local = 0;
static Oid	limiter_table_oid = InvalidOid;

/*
 * A limiter created, changed or dropped by the current transaction: applied
 * to shared memory at its commit, in order (core/xact_defer).
 */
typedef struct PendingChange
{
	char		name[RATE_LIMITER_NAME_LEN];
	int32		max_keys;		/* 0: drop */
} PendingChange;

static void apply_changes(List *changes);

/* A definition read from pgapp.rate_limiter. */
typedef struct LimiterDef
{
	int32		max_keys;
	bool		has_defaults;
	int32		max_requests;
	int32		window_seconds;
	RateAlgorithm algorithm;
	int32		burst;
} LimiterDef;

/* Called once, in the postmaster, when the shared memory is made. */
void
pgapp_rate_registry_init(void)
{
	RateShared *sh = pgapp_rate_shared;

	for (int i = 0; i < RATE_MAX_LIMITERS; i++)
	{
		RateLimiterSlot *slot = &sh->limiters[i];

		slot->name[0] = '\0';
		slot->dboid = InvalidOid;
		slot->max_keys = 0;
		pg_atomic_init_u32(&slot->incarnation, 0);
		pg_atomic_init_u32(&slot->used, 0);
		pg_atomic_init_u64(&slot->checks, 0);
		pg_atomic_init_u64(&slot->denials, 0);
		pg_atomic_init_u64(&slot->full_events, 0);
		pg_atomic_init_u64(&slot->evictions, 0);
	}
	strlcpy(sh->limiters[RATE_DEFAULT_SLOT].name, "default", RATE_LIMITER_NAME_LEN);
	sh->reserved = 0;
	pg_atomic_init_u32(&sh->default_quota, (uint32) pgapp_ratelimit_max_keys);
}

static int
find_slot(const char *name, Oid dboid)
{
	for (int i = 1; i < RATE_MAX_LIMITERS; i++)
		if (pgapp_rate_shared->limiters[i].dboid == dboid &&
			strcmp(pgapp_rate_shared->limiters[i].name, name) == 0)
			return i;
	return -1;
}

/*
 * A counter summed over every limiter, plus what unregistered ones had
 * counted.  Without the registry lock: a total, not a snapshot.
 */
static pg_atomic_uint64 *
slot_counter(RateLimiterSlot *slot, RateCounter counter)
{
	switch (counter)
	{
		case RATE_CHECKS:
			return &slot->checks;
		case RATE_DENIALS:
			return &slot->denials;
		case RATE_FULL_EVENTS:
			return &slot->full_events;
		case RATE_EVICTIONS:
			return &slot->evictions;
	}
	return &slot->checks;		/* keep compiler quiet */
}

uint64
pgapp_rate_total(RateCounter counter)
{
	RateShared *sh = pgapp_rate_shared;
	uint64		total = pg_atomic_read_u64(counter == RATE_CHECKS ? &sh->checks :
										   counter == RATE_DENIALS ? &sh->denials :
										   counter == RATE_FULL_EVENTS ? &sh->full_events : &sh->evictions);

	for (int i = 0; i < RATE_MAX_LIMITERS; i++)
		total += pg_atomic_read_u64(slot_counter(&sh->limiters[i], counter));
	return total;
}

/* Is the slot "default" or a limiter of the current database? */
static bool
slot_visible(int slot)
{
	return slot == RATE_DEFAULT_SLOT || pgapp_rate_shared->limiters[slot].dboid == MyDatabaseId;
}

/*
 * Free a limiter's slot and remove its buckets.  Raises no error (it runs
 * in commit callbacks).  Returns whether the name was registered.
 */
static bool
unregister_limiter(const char *name, Oid dboid)
{
	RateShared *sh = pgapp_rate_shared;
	int			i;
	HASH_SEQ_STATUS status;
	RateBucket *b;

	if (strcmp(name, "default") == 0)
		return false;
	LWLockAcquire(&sh->locks[RATE_REGISTRY_LOCK].lock, LW_EXCLUSIVE);
	i = find_slot(name, dboid);
	if (i < 0)
	{
		LWLockRelease(&sh->locks[RATE_REGISTRY_LOCK].lock);
		return false;
	}
	pgapp_rate_lock_all(LW_EXCLUSIVE);
	hash_seq_init(&status, pgapp_rate_table);
	while ((b = hash_seq_search(&status)) != NULL)
	{
		if (b->limiter == i)
			pgapp_rate_remove_bucket(b, false); /* "used" is reset below */
	}
	sh->reserved -= sh->limiters[i].max_keys;
	pg_atomic_write_u32(&sh->default_quota, (uint32) (pgapp_ratelimit_max_keys - sh->reserved));
	pg_atomic_fetch_add_u64(&sh->checks, pg_atomic_read_u64(&sh->limiters[i].checks));
	pg_atomic_fetch_add_u64(&sh->denials, pg_atomic_read_u64(&sh->limiters[i].denials));
	pg_atomic_fetch_add_u64(&sh->full_events, pg_atomic_read_u64(&sh->limiters[i].full_events));
	pg_atomic_fetch_add_u64(&sh->evictions, pg_atomic_read_u64(&sh->limiters[i].evictions));
	pg_atomic_write_u64(&sh->limiters[i].checks, 0);
	pg_atomic_write_u64(&sh->limiters[i].denials, 0);
	pg_atomic_write_u64(&sh->limiters[i].full_events, 0);
	pg_atomic_write_u64(&sh->limiters[i].evictions, 0);
	sh->limiters[i].name[0] = '\0';
	sh->limiters[i].dboid = InvalidOid;
	sh->limiters[i].max_keys = 0;
	pg_atomic_write_u32(&sh->limiters[i].used, 0);
	pg_atomic_fetch_add_u32(&sh->limiters[i].incarnation, 1);
	pgapp_rate_unlock_all();
	LWLockRelease(&sh->locks[RATE_REGISTRY_LOCK].lock);
	return true;
}

/*
 * Register a limiter (or update its quota) and return its slot.  On
 * failure returns -1 with *why set: 1 = no free slot, 2 = quota too large.
 */
static int
register_limiter(const char *name, int32 max_keys, uint32 *incarnation, int *why)
{
	RateShared *sh = pgapp_rate_shared;
	int			i;

	*why = 0;
	LWLockAcquire(&sh->locks[RATE_REGISTRY_LOCK].lock, LW_EXCLUSIVE);
	i = find_slot(name, MyDatabaseId);
	if (i >= 0)
	{
		if (sh->limiters[i].max_keys != max_keys)
		{
			if (sh->reserved - sh->limiters[i].max_keys + max_keys > pgapp_ratelimit_max_keys)
				*why = 2;
			else
			{
				sh->reserved += max_keys - sh->limiters[i].max_keys;
				sh->limiters[i].max_keys = max_keys;
				pg_atomic_write_u32(&sh->default_quota,
									(uint32) (pgapp_ratelimit_max_keys - sh->reserved));
			}
		}
	}
	else if (sh->reserved + max_keys > pgapp_ratelimit_max_keys)
		*why = 2;
	else
	{
		for (int j = 1; j < RATE_MAX_LIMITERS && i < 0; j++)
			if (sh->limiters[j].name[0] == '\0')
				i = j;
		if (i < 0)
			*why = 1;
		else
		{
			pgapp_rate_lock_all(LW_EXCLUSIVE);
			strlcpy(sh->limiters[i].name, name, RATE_LIMITER_NAME_LEN);
			sh->limiters[i].dboid = MyDatabaseId;
			sh->limiters[i].max_keys = max_keys;
			sh->reserved += max_keys;
			pg_atomic_write_u32(&sh->default_quota, (uint32) (pgapp_ratelimit_max_keys - sh->reserved));
			pg_atomic_write_u32(&sh->limiters[i].used, 0);
			pg_atomic_write_u64(&sh->limiters[i].checks, 0);
			pg_atomic_write_u64(&sh->limiters[i].denials, 0);
			pg_atomic_write_u64(&sh->limiters[i].full_events, 0);
			pg_atomic_write_u64(&sh->limiters[i].evictions, 0);
			pg_atomic_fetch_add_u32(&sh->limiters[i].incarnation, 1);
			pgapp_rate_unlock_all();
		}
	}
	if (*why == 0)
		*incarnation = pg_atomic_read_u32(&sh->limiters[i].incarnation);
	LWLockRelease(&sh->locks[RATE_REGISTRY_LOCK].lock);
	return *why == 0 ? i : -1;
}

/*
 * Register a limiter read from the save file.  Postmaster only, before any
 * backend exists, so no lock is needed.  Returns the slot or -1.
 */
int
pgapp_rate_restore_limiter(const char *name, Oid dboid, int32 max_keys)
{
	RateShared *sh = pgapp_rate_shared;
	int			i = find_slot(name, dboid);

	if (i > 0)
		return i;
	if (max_keys <= 0 || sh->reserved + max_keys > pgapp_ratelimit_max_keys)
		return -1;
	for (int j = 1; j < RATE_MAX_LIMITERS; j++)
		if (sh->limiters[j].name[0] == '\0')
		{
			strlcpy(sh->limiters[j].name, name, RATE_LIMITER_NAME_LEN);
			sh->limiters[j].dboid = dboid;
			sh->limiters[j].max_keys = max_keys;
			sh->reserved += max_keys;
			pg_atomic_write_u32(&sh->default_quota, (uint32) (pgapp_ratelimit_max_keys - sh->reserved));
			pg_atomic_fetch_add_u32(&sh->limiters[j].incarnation, 1);
			return j;
		}
	return -1;
}

/*
 * Read a limiter's row with a fresh snapshot (a REPEATABLE READ caller must
 * not register what has since been dropped or changed), as the owner of
 * the pgapp schema.
 */
static bool
load_definition(const char *name, LimiterDef *def)
{
	static const char *sql =
		"SELECT max_keys, max_requests, window_seconds, algorithm, burst"
		" FROM pgapp.rate_limiter WHERE name OPERATOR(pg_catalog.=) $1";
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	SPIPlanPtr	plan;
	PgappOwnerSwitch sw;
	int			ret;
	bool		found = false;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	args[0] = CStringGetTextDatum(name);
	pgapp_become_owner(&sw);
	PG_TRY();
	{
		plan = SPI_prepare(sql, 1, argtypes);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		ret = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
								   true, false, 1);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		max_null;
		bool		window_null;
		Datum		d;

		found = true;
		def->max_keys = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		def->max_requests = DatumGetInt32(SPI_getbinval(tup, desc, 2, &max_null));
		def->window_seconds = DatumGetInt32(SPI_getbinval(tup, desc, 3, &window_null));
		def->has_defaults = !max_null && !window_null;
		d = SPI_getbinval(tup, desc, 4, &isnull);
		def->algorithm = isnull ? RATE_FIXED : pgapp_rate_parse_algorithm(TextDatumGetCString(d));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		def->burst = isnull ? 0 : DatumGetInt32(d);
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	return found;
}

/*
 * Free the slots of registered limiters whose row is gone (dropped while
 * another backend was registering them) or whose database is gone.
 * Called when registering fails.
 */
static bool
collect_garbage(void)
{
	char		names[RATE_MAX_LIMITERS][RATE_LIMITER_NAME_LEN];
	Oid			dboids[RATE_MAX_LIMITERS];
	int			n = 0;
	bool		freed = false;
	LimiterDef	def;

	LWLockAcquire(&pgapp_rate_shared->locks[RATE_REGISTRY_LOCK].lock, LW_SHARED);
	for (int i = 1; i < RATE_MAX_LIMITERS; i++)
		if (pgapp_rate_shared->limiters[i].name[0] != '\0')
		{
			strlcpy(names[n], pgapp_rate_shared->limiters[i].name, RATE_LIMITER_NAME_LEN);
			dboids[n++] = pgapp_rate_shared->limiters[i].dboid;
		}
	LWLockRelease(&pgapp_rate_shared->locks[RATE_REGISTRY_LOCK].lock);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (dboids[i] == MyDatabaseId ? !load_definition(names[i], &def) :
			!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboids[i])))
			freed |= unregister_limiter(names[i], dboids[i]);
	}
	return freed;
}

/*
 * Was the limiter created (or renamed to this name) by the current
 * transaction and not registered yet?  Registering it now would outlive a
 * rollback.
 */
static bool
created_here(const char *name)
{
	ListCell   *lc;
	bool		pending = false;
	bool		registered;

	foreach(lc, pgapp_xact_deferred(PGAPP_XACT_COMMIT, apply_changes))
	{
		PendingChange *p = lfirst(lc);

		if (strcmp(p->name, name) == 0)
			pending = p->max_keys > 0;
	}
	if (!pending)
		return false;
	LWLockAcquire(&pgapp_rate_shared->locks[RATE_REGISTRY_LOCK].lock, LW_SHARED);
	registered = find_slot(name, MyDatabaseId) >= 0;
	LWLockRelease(&pgapp_rate_shared->locks[RATE_REGISTRY_LOCK].lock);
	return !registered;
}

static LocalLimiter *
local_entry(const char *name)
{
	for (int i = 0; i < n_local; i++)
		if (strcmp(local_limiters[i].name, name) == 0)
			return &local_limiters[i];
	return NULL;
}

/*
 * Keep what was resolved in the local cache (e: the name's entry, or NULL)
 * and return it in *ref.
 */
static void
remember(LocalLimiter *e, const char *name, int slot, uint32 incarnation,
		 const LimiterDef *def, RateLimiterRef *ref)
{
	if (e == NULL)
	{
		if (n_local == RATE_MAX_LIMITERS)
		{
			/* forget the entries that are no longer valid */
			int			kept = 0;

			for (int i = 0; i < n_local; i++)
				if (local_limiters[i].valid)
					local_limiters[kept++] = local_limiters[i];
			n_local = kept < RATE_MAX_LIMITERS ? kept : 0;
		}
		e = &local_limiters[n_local++];
		strlcpy(e->name, name, RATE_LIMITER_NAME_LEN);
	}
	e->valid = true;
	e->ref.slot = slot;
	e->ref.incarnation = incarnation;
	e->ref.has_defaults = def->has_defaults;
	e->ref.max_requests = def->max_requests;
	e->ref.window_seconds = def->window_seconds;
	e->ref.algorithm = def->algorithm;
	e->ref.burst = def->burst;
	*ref = e->ref;
}

/*
 * Find a limiter by name: 42704 when it does not exist, 53400 when the
 * registry cannot take it.
 */
void
pgapp_rate_resolve_limiter(const char *name, RateLimiterRef *ref)
{
	LocalLimiter *e;
	LimiterDef	def;
	uint32		incarnation;
	int			slot;
	int			why;

	if (strcmp(name, "default") == 0)
	{
		memset(ref, 0, sizeof(*ref));
		ref->slot = RATE_DEFAULT_SLOT;
		ref->incarnation = pg_atomic_read_u32(&pgapp_rate_shared->limiters[RATE_DEFAULT_SLOT].incarnation);
		return;
	}
	e = local_entry(name);
	if (e != NULL && e->valid &&
		pg_atomic_read_u32(&pgapp_rate_shared->limiters[e->ref.slot].incarnation) == e->ref.incarnation)
	{
		*ref = e->ref;
		return;
	}

	limiter_table_oid = get_relname_relid("rate_limiter", pgapp_schema_oid());
	/* no table row can have a longer name than an identifier */
	if (strlen(name) >= RATE_LIMITER_NAME_LEN || !load_definition(name, &def))
	{
		if (strlen(name) < RATE_LIMITER_NAME_LEN)
			(void) unregister_limiter(name, MyDatabaseId);
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("rate limiter \"%s\" does not exist", pgapp_rate_echo(name)),
				errhint("Create it with function \"%s\", or use the \"default\" limiter.",
						"pgapp.create_limiter"));
	}
	if (created_here(name))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("rate limiter \"%s\" can be used once the transaction that creates it commits", name),
				errdetail("Its places in shared memory are reserved at commit."));
	slot = register_limiter(name, def.max_keys, &incarnation, &why);
	if (slot < 0 && collect_garbage())
		slot = register_limiter(name, def.max_keys, &incarnation, &why);
	if (slot < 0)
		ereport(ERROR,
				errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				errmsg("rate limiter \"%s\" cannot be used: %s", name,
					   why == 1 ? "too many limiters are in use" : "the named limiters' max_keys exceed the table"),
				why == 1 ?
				errdetail("At most %d named limiters can be in use at once.", RATE_MAX_LIMITERS - 1) :
				errdetail("The named limiters would reserve more than the %d keys of \"%s\" on this server.",
						  pgapp_ratelimit_max_keys, "pgapp.ratelimit_max_keys"),
				why == 1 ?
				errhint("Drop limiters that are no longer needed.") :
				errhint("Raise \"%s\" and restart the server, or drop limiters.", "pgapp.ratelimit_max_keys"));

	remember(e, name, slot, incarnation, &def, ref);
}

/* ---------------------------------------------------------------------
 * Invalidation and the drop at commit
 * ---------------------------------------------------------------------
 */

/*
 * The module's relcache_invalidate callback: forget what was resolved when
 * pgapp.rate_limiter changes (or every relation is invalidated).
 */
void
pgapp_rate_relcache_invalidate(Oid relid)
{
	if (relid != InvalidOid && relid != limiter_table_oid && limiter_table_oid != InvalidOid)
		return;
	for (int i = 0; i < n_local; i++)
		local_limiters[i].valid = false;
	if (relid == InvalidOid)
		limiter_table_oid = InvalidOid;
}

/*
 * After commit (a PGAPP_XACT_COMMIT action): apply the transaction's
 * changes to the registry, in order.  No error may be raised here, and none
 * is.  A quota that does not fit is left to the first check, which says so.
 */
static void
apply_changes(List *changes)
{
	ListCell   *lc;

	foreach(lc, changes)
	{
		PendingChange *p = lfirst(lc);
		uint32		incarnation;
		int			why;

		if (p->max_keys == 0)
			(void) unregister_limiter(p->name, MyDatabaseId);
		else
			(void) register_limiter(p->name, p->max_keys, &incarnation, &why);
	}
}

/*
 * Before commit or prepare (a PGAPP_XACT_PRE_COMMIT action): a prepared
 * transaction would apply its changes at a COMMIT PREPARED this backend
 * never sees, so refuse to prepare one that has changes.
 */
static void
refuse_prepare(List *args)
{
	if (pgapp_xact_preparing())
		ereport(ERROR,
				errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("cannot PREPARE a transaction that has changed a rate limiter"));
}

static void
queue_change(const char *name, int32 max_keys)
{
	PendingChange *p = MemoryContextAllocZero(TopTransactionContext, sizeof(PendingChange));

	strlcpy(p->name, name, RATE_LIMITER_NAME_LEN);
	p->max_keys = max_keys;
	pgapp_xact_defer(PGAPP_XACT_COMMIT, apply_changes, p);
	pgapp_xact_defer(PGAPP_XACT_PRE_COMMIT, refuse_prepare, NULL);
}

/*
 * pgapp._rate_limiter_changed(): AFTER INSERT OR UPDATE OR DELETE FOR EACH
 * ROW trigger of pgapp.rate_limiter.  Every backend (and every standby)
 * forgets what it resolved when the change commits.  This server's shared
 * memory also follows at commit: a new limiter's quota is reserved, a
 * changed one takes its new quota, a deleted or renamed one is
 * unregistered with its buckets.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_limiter_changed);
Datum
pgapp_rate_limiter_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "function \"%s\" must be an AFTER ... FOR EACH ROW trigger",
			 "pgapp._rate_limiter_changed");

	limiter_table_oid = RelationGetRelid(td->tg_relation);
	CacheInvalidateRelcache(td->tg_relation);

	if (pgapp_rate_shared != NULL)
	{
		TupleDesc	desc = td->tg_relation->rd_att;
		int			name_att = SPI_fnumber(desc, "name");
		int			keys_att = SPI_fnumber(desc, "max_keys");
		char	   *old_name = NULL;
		char	   *new_name = NULL;
		int32		new_keys = 0;

		if (name_att <= 0 || keys_att <= 0)
			elog(ERROR, "pgapp.rate_limiter has no column \"name\" or \"max_keys\"");
		if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
			old_name = SPI_getvalue(td->tg_trigtuple, desc, name_att);
		if (!TRIGGER_FIRED_BY_DELETE(td->tg_event))
		{
			HeapTuple	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
			bool		isnull;

			new_name = SPI_getvalue(tup, desc, name_att);
			new_keys = DatumGetInt32(SPI_getbinval(tup, desc, keys_att, &isnull));
			if (isnull)
				new_keys = 0;
		}
		/* a renamed limiter is another limiter */
		if (old_name != NULL && (new_name == NULL || strcmp(old_name, new_name) != 0))
			queue_change(old_name, 0);
		if (new_name != NULL && new_keys > 0)
			queue_change(new_name, new_keys);
	}
	return PointerGetDatum(NULL);
}

/*
 * pgapp._rate_limiters() -> SETOF record: "default" and the current
 * database's limiters registered in this server's shared memory, with their
 * quota, buckets and counters.
 */
PG_FUNCTION_INFO_V1(pgapp_rate_limiters);
Datum
pgapp_rate_limiters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RateShared *sh;

	pgapp_require_shmem(pgapp_rate_shared, "rate limiting");
	sh = pgapp_rate_shared;
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(&sh->locks[RATE_REGISTRY_LOCK].lock, LW_SHARED);
	for (int i = 0; i < RATE_MAX_LIMITERS; i++)
	{
		RateLimiterSlot *slot = &sh->limiters[i];
		Datum		values[7];
		bool		nulls[7] = {false};

		if (slot->name[0] == '\0' || !slot_visible(i))
			continue;
		values[0] = CStringGetTextDatum(slot->name);
		values[1] = Int32GetDatum(i == RATE_DEFAULT_SLOT ?
								  (int32) pg_atomic_read_u32(&sh->default_quota) : slot->max_keys);
		values[2] = Int32GetDatum((int32) pg_atomic_read_u32(&slot->used));
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->checks));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->denials));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->full_events));
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->evictions));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(&sh->locks[RATE_REGISTRY_LOCK].lock);
	return (Datum) 0;
}

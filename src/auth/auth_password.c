/*-------------------------------------------------------------------------
 *
 * auth_password.c
 *	  Argon2id password hashes for pgapp.register and pgapp.login
 *	  (docs/auth.md, "Passwords"), at most pgapp.auth_hash_concurrency at
 *	  a time in the whole server.
 *
 * One hash costs pgapp.auth_password_memlimit of memory (64 MiB by
 * default, malloc'd by libsodium) and about 100 ms of one core, so a storm
 * of logins could exhaust the machine.  A counting semaphore in shared
 * memory caps the hashes running at once: a backend takes a slot, hashes,
 * and gives the slot back; when none is free it sleeps on a condition
 * variable, where a cancel or terminate interrupts it (ConditionVariableSleep
 * checks for interrupts).  Nothing is locked while a hash runs.
 *
 * A slot is given back by PG_FINALLY around the hash (errors and cancels),
 * and by a before_shmem_exit callback if the process exits holding one
 * (FATAL).  A backend killed with SIGKILL makes the postmaster reinitialize
 * shared memory, which resets the count.  Lowering the setting takes effect
 * as slots are given back.
 *
 * Locking protocol: AuthHashShared.mutex (a spinlock) guards in_use, peak,
 * hashes and waits; it is held for a few instructions only.  Release
 * broadcasts on cv: a waiter that was cancelled cannot swallow the wake-up
 * the next waiter needs.
 *
 * Password copies made here are wiped (pgapp_crypto_wipe) before they are
 * freed; the SQL caller's own copies of the argument are beyond reach.
 *
 * src/auth/auth_password.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"

#include "core/crypto.h"
#include "core/settings.h"
#include "core/util.h"

#include "auth/auth_int.h"

PG_FUNCTION_INFO_V1(pgapp_password_hash);
PG_FUNCTION_INFO_V1(pgapp_password_verify);
PG_FUNCTION_INFO_V1(pgapp_auth_hash_stats);

typedef struct AuthHashShared
{
	slock_t		mutex;
	int			in_use;			/* slots taken now */
	int			peak;			/* most ever taken at once */
	uint64		hashes;			/* hashes (and verifications) run */
	uint64		waits;			/* of them, how many waited for a slot */
	ConditionVariable cv;		/* signalled when a slot is given back */
} AuthHashShared;

static AuthHashShared *hash_shared = NULL;
static bool holding_slot = false;
static bool exit_callback_set = false;

/* From the module's shmem_request (auth_session.c). */
void
pgapp_auth_password_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuthHashShared)));
}

/* From the module's shmem_startup, with AddinShmemInitLock held. */
void
pgapp_auth_password_shmem_startup(void)
{
	bool		found;

	hash_shared = ShmemInitStruct("pgapp auth hashing", sizeof(AuthHashShared), &found);
	if (!found)
	{
		memset(hash_shared, 0, sizeof(AuthHashShared));
		SpinLockInit(&hash_shared->mutex);
		ConditionVariableInit(&hash_shared->cv);
	}
}

/* Give the slot back, if this process holds one. */
static void
release_slot(void)
{
	if (!holding_slot)
		return;
	SpinLockAcquire(&hash_shared->mutex);
	hash_shared->in_use--;
	SpinLockRelease(&hash_shared->mutex);
	holding_slot = false;
	ConditionVariableBroadcast(&hash_shared->cv);
}

static void
release_at_exit(int code, Datum arg)
{
	release_slot();
}

/*
 * Take a slot, sleeping (interruptibly) until one is free.  The caller
 * must call release_slot() in PG_FINALLY.
 */
static void
acquire_slot(void)
{
	bool		waited = false;

	pgapp_require_shmem(hash_shared, "password hashing");
	Assert(!holding_slot);
	if (!exit_callback_set)
	{
		before_shmem_exit(release_at_exit, (Datum) 0);
		exit_callback_set = true;
	}
	for (;;)
	{
		bool		got = false;

		SpinLockAcquire(&hash_shared->mutex);
		if (hash_shared->in_use < pgapp_auth_hash_concurrency)
		{
			hash_shared->in_use++;
			if (hash_shared->in_use > hash_shared->peak)
				hash_shared->peak = hash_shared->in_use;
			hash_shared->hashes++;
			if (waited)
				hash_shared->waits++;
			got = true;
		}
		SpinLockRelease(&hash_shared->mutex);
		if (got)
			break;
		/* the first call only prepares to sleep; the loop looks again */
		ConditionVariableSleep(&hash_shared->cv, PG_WAIT_EXTENSION);
		waited = true;
	}
	holding_slot = true;
	ConditionVariableCancelSleep();
}

/*
 * The password argument as a NUL-terminated palloc'd copy (the caller
 * wipes it), refused when longer than PGAPP_PASSWORD_MAX_BYTES.  A
 * detoasted copy of the argument is wiped here.
 */
static char *
password_arg(FunctionCallInfo fcinfo, int n, size_t *len)
{
	Datum		d = PG_GETARG_DATUM(n);
	text	   *t = PG_GETARG_TEXT_PP(n);
	char	   *pw;

	*len = VARSIZE_ANY_EXHDR(t);
	pw = palloc(*len + 1);
	memcpy(pw, VARDATA_ANY(t), *len);
	pw[*len] = '\0';
	if ((Pointer) t != DatumGetPointer(d))
		pgapp_crypto_wipe(VARDATA_ANY(t), *len);
	if (*len > PGAPP_PASSWORD_MAX_BYTES)
	{
		pgapp_crypto_wipe(pw, *len);
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("password is too long"),
				errdetail("A password is at most %d bytes.", PGAPP_PASSWORD_MAX_BYTES));
	}
	return pw;
}

/* A new hash of pw with the configured costs, into out; holds a slot. */
static void
hash_password(char *out, const char *pw, size_t len)
{
	volatile bool ok = false;

	acquire_slot();
	PG_TRY();
	{
		ok = pgapp_crypto_pwhash_str(out, pw, len,
									 (uint64) pgapp_auth_password_opslimit,
									 (size_t) pgapp_auth_password_memlimit * 1024);
	}
	PG_FINALLY();
	{
		release_slot();
	}
	PG_END_TRY();
	if (!ok)
		ereport(ERROR,
				errcode(ERRCODE_OUT_OF_MEMORY),
				errmsg("could not hash a password"),
				errdetail("Argon2id could not allocate %d kB.", pgapp_auth_password_memlimit),
				errhint("Lower \"%s\" or \"%s\".", "pgapp.auth_password_memlimit",
						"pgapp.auth_hash_concurrency"));
}

/*
 * pgapp._password_hash(password text) -> text: an Argon2id hash in
 * libsodium's string form.
 */
Datum
pgapp_password_hash(PG_FUNCTION_ARGS)
{
	size_t		len;
	char	   *pw = password_arg(fcinfo, 0, &len);
	char		out[PGAPP_PWHASH_STRBYTES];

	PG_TRY();
	{
		hash_password(out, pw, len);
	}
	PG_FINALLY();
	{
		pgapp_crypto_wipe(pw, len);
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * pgapp._password_verify(stored text, password text) -> text
 *
 * NULL when password does not match stored; otherwise the hash to keep:
 * stored itself, or a new hash with the configured costs when stored was
 * made with others (crypto_pwhash_str_needs_rehash).  A NULL stored (an
 * unknown account) is verified against a dummy hash with the configured
 * costs, so it takes as long as a wrong password does.
 */
Datum
pgapp_password_verify(PG_FUNCTION_ARGS)
{
	char		dummy[PGAPP_PWHASH_STRBYTES];
	char		rehashed[PGAPP_PWHASH_STRBYTES];
	char	   *stored;
	char	   *pw;
	size_t		len;
	volatile bool match = false;
	volatile bool rehash = false;
	uint64		ops = (uint64) pgapp_auth_password_opslimit;
	size_t		mem = (size_t) pgapp_auth_password_memlimit * 1024;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	pw = password_arg(fcinfo, 1, &len);
	if (PG_ARGISNULL(0))
	{
		pgapp_crypto_pwhash_dummy(dummy, ops, mem);
		stored = dummy;
	}
	else
		stored = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_TRY();
	{
		acquire_slot();
		PG_TRY();
		{
			match = strlen(stored) < PGAPP_PWHASH_STRBYTES &&
				pgapp_crypto_pwhash_verify(stored, pw, len) &&
				stored != dummy;
		}
		PG_FINALLY();
		{
			release_slot();
		}
		PG_END_TRY();
		rehash = match && pgapp_crypto_pwhash_needs_rehash(stored, ops, mem) != 0;
		if (rehash)
			hash_password(rehashed, pw, len);
	}
	PG_FINALLY();
	{
		pgapp_crypto_wipe(pw, len);
	}
	PG_END_TRY();

	if (!match)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(rehash ? rehashed : stored));
}

/*
 * pgapp.auth_hash_stats() -> (in_use, peak, concurrency, hashes, waits)
 */
Datum
pgapp_auth_hash_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};
	int			in_use;
	int			peak;
	uint64		hashes;
	uint64		waits;

	pgapp_require_shmem(hash_shared, "password hashing");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SpinLockAcquire(&hash_shared->mutex);
	in_use = hash_shared->in_use;
	peak = hash_shared->peak;
	hashes = hash_shared->hashes;
	waits = hash_shared->waits;
	SpinLockRelease(&hash_shared->mutex);
	values[0] = Int32GetDatum(in_use);
	values[1] = Int32GetDatum(peak);
	values[2] = Int32GetDatum(pgapp_auth_hash_concurrency);
	values[3] = Int64GetDatum((int64) hashes);
	values[4] = Int64GetDatum((int64) waits);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

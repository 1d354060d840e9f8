/*-------------------------------------------------------------------------
 *
 * auth_session.c
 *	  Sessions for pgapp.login and pgapp.refresh (docs/auth.md,
 *	  "Sessions"): refresh tokens, the ring of reused sessions, and the
 *	  module entry of passwords and sessions.
 *
 * The sessions themselves (families of refresh tokens, rotation, reuse
 * detection) live in sql/parts/67_auth_sessions.sql; the table stores the
 * SHA-256 of a refresh token, never the token.  A refresh token is 256
 * random bits in base64url.
 *
 * Reuse of a refresh token revokes its family, but pgapp.refresh then
 * fails, and when it raises (pgapp.error_mode raise: psql, drivers) the
 * transaction rolls back, revocation included.  So reuse is also recorded
 * here, outside any transaction: a ring of the last AUTH_REUSED_RING
 * families in shared memory.  pgapp.refresh refuses a family in the ring,
 * and every pgapp.login and pgapp.refresh that commits writes the
 * revocation of the families in the ring into the table.  The ring is
 * lost at a restart: a family reused and never written before it stays
 * alive then (docs/auth.md says so).
 *
 * Locking protocol: AuthReusedRing.lock (one LWLock, tranche "pgapp auth
 * sessions") guards next, count and families: exclusive to add, shared to
 * copy.  Held for a scan of at most AUTH_REUSED_RING entries, never across
 * anything else.
 *
 * src/auth/auth_session.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/uuid.h"

#include "core/crypto.h"
#include "core/module.h"
#include "core/util.h"

#include "auth/auth.h"
#include "auth/auth_int.h"

PG_FUNCTION_INFO_V1(pgapp_auth_new_token);
PG_FUNCTION_INFO_V1(pgapp_auth_reused);
PG_FUNCTION_INFO_V1(pgapp_auth_reused_families);
PG_FUNCTION_INFO_V1(pgapp_auth_caller_is_admin);

#define AUTH_REUSED_RING 1024

typedef struct AuthReusedRing
{
	LWLock	   *lock;
	int			next;			/* where the next family goes */
	int			count;			/* entries in use, up to AUTH_REUSED_RING */
	pg_uuid_t	families[AUTH_REUSED_RING];
} AuthReusedRing;

static AuthReusedRing *reused = NULL;

static void sessions_shmem_request(void);
static void sessions_shmem_startup(void);
static const char *sessions_status(void);

const PgappModule pgapp_auth_sessions_module = {
	.name = "auth_sessions",
	.shmem_request = sessions_shmem_request,
	.shmem_startup = sessions_shmem_startup,
	.status = sessions_status,
};

static void
sessions_shmem_request(void)
{
	pgapp_auth_password_shmem_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuthReusedRing)));
	RequestNamedLWLockTranche("pgapp auth sessions", 1);
}

/* Called with AddinShmemInitLock held (module.c). */
static void
sessions_shmem_startup(void)
{
	bool		found;

	pgapp_auth_password_shmem_startup();
	reused = ShmemInitStruct("pgapp auth sessions", sizeof(AuthReusedRing), &found);
	if (!found)
	{
		memset(reused, 0, sizeof(AuthReusedRing));
		reused->lock = &(GetNamedLWLockTranche("pgapp auth sessions"))->lock;
	}
}

static const char *
sessions_status(void)
{
	return reused ? "ok" : "not preloaded";
}

/*
 * pgapp._auth_new_token() -> text: 32 random bytes (from the operating
 * system's CSPRNG) in base64url, 43 characters.
 */
Datum
pgapp_auth_new_token(PG_FUNCTION_ARGS)
{
	uint8		raw[PGAPP_REFRESH_TOKEN_BYTES];
	char	   *token;

	pgapp_crypto_random(raw, sizeof(raw));
	token = pgapp_auth_b64url_encode(raw, sizeof(raw));
	pgapp_crypto_wipe(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(token));
}

/*
 * pgapp._auth_reused(family uuid) -> void: remember, outside the
 * transaction, that a token of family was reused (once; the oldest entry
 * goes when the ring is full).
 */
Datum
pgapp_auth_reused(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *family = PG_GETARG_UUID_P(0);
	int			i;

	pgapp_require_shmem(reused, "session reuse detection");
	LWLockAcquire(reused->lock, LW_EXCLUSIVE);
	for (i = 0; i < reused->count; i++)
		if (memcmp(&reused->families[i], family, sizeof(pg_uuid_t)) == 0)
			break;
	if (i == reused->count)
	{
		reused->families[reused->next] = *family;
		reused->next = (reused->next + 1) % AUTH_REUSED_RING;
		if (reused->count < AUTH_REUSED_RING)
			reused->count++;
	}
	LWLockRelease(reused->lock);
	PG_RETURN_VOID();
}

/*
 * pgapp._auth_reused_families() -> uuid[]: the families in the ring.
 */
Datum
pgapp_auth_reused_families(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *copy;
	Datum	   *elems;
	int			n;
	int			i;

	pgapp_require_shmem(reused, "session reuse detection");
	copy = palloc(sizeof(pg_uuid_t) * AUTH_REUSED_RING);
	LWLockAcquire(reused->lock, LW_SHARED);
	n = reused->count;
	memcpy(copy, reused->families, sizeof(pg_uuid_t) * n);
	LWLockRelease(reused->lock);

	elems = palloc(sizeof(Datum) * Max(n, 1));
	for (i = 0; i < n; i++)
		elems[i] = UUIDPGetDatum(&copy[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
}

/*
 * pgapp._auth_caller_is_admin() -> boolean: has the role that called into
 * pgapp (the session's role after SET ROLE, as PostgREST sets it, not the
 * owner a SECURITY DEFINER function runs as) the privileges of pgapp_admin?
 * pgapp.logout_everywhere asks it.
 */
Datum
pgapp_auth_caller_is_admin(PG_FUNCTION_ARGS)
{
	Oid			admin = get_role_oid("pgapp_admin", true);

	PG_RETURN_BOOL(OidIsValid(admin) && has_privs_of_role(GetOuterUserId(), admin));
}

/*-------------------------------------------------------------------------
 *
 * auth_revoke_sql.c
 *	  The SQL functions of revocation: pgapp.revoke_token,
 *	  pgapp.revoke_subject, pgapp.auth_revocation_cleanup and
 *	  pgapp.auth_revocation_status, over auth_revoke.c.
 *
 * Who may call them is SQL's business (EXECUTE is granted to pgapp_admin
 * only, sql/parts/66_auth_revoke.sql); the work, its shared memory and its
 * locking are auth_revoke.c's.
 *
 * src/auth/auth_revoke_sql.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "core/json_util.h"

#include "auth/auth_int.h"

PG_FUNCTION_INFO_V1(pgapp_revoke_token);
PG_FUNCTION_INFO_V1(pgapp_revoke_subject);
PG_FUNCTION_INFO_V1(pgapp_auth_revocation_cleanup);
PG_FUNCTION_INFO_V1(pgapp_auth_revocation_status);

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
	PG_RETURN_INT32(pgapp_auth_revocation_cleanup_all());
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
	const char *cache;
	TimestampTz overflow_until;
	int64		entries;
	int64		capacity;

	pgapp_auth_revocation_state(&cache, &overflow_until, &entries, &capacity);
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "cache");
	pgapp_jsonb_add_string(&b, cache);
	pgapp_jsonb_key(&b, "overflow_until");
	if (overflow_until > GetCurrentTimestamp())
		pgapp_jsonb_add_string(&b, timestamptz_to_str(overflow_until));
	else
		pgapp_jsonb_add_null(&b);
	pgapp_jsonb_key(&b, "entries");
	pgapp_jsonb_add_int(&b, entries);
	pgapp_jsonb_key(&b, "capacity");
	pgapp_jsonb_add_int(&b, capacity);
	pgapp_jsonb_end_object(&b);
	PG_RETURN_JSONB_P(pgapp_jsonb_finish(&b));
}

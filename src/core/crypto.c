/*-------------------------------------------------------------------------
 *
 * crypto.c
 *	  All use of libsodium.
 *
 * sodium_init() must succeed before any other libsodium call; it is called
 * once per process from _PG_init (it is idempotent and thread-safe).  A
 * failure is remembered rather than raised at load time, so the server can
 * still start; the functions that need cryptography check
 * pgapp_crypto_ready() and refuse.
 *
 * src/core/crypto.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "core/crypto.h"

static bool crypto_ready = false;

void
pgapp_crypto_init(void)
{
	if (sodium_init() < 0)
	{
		ereport(WARNING,
				errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				errmsg("could not initialize libsodium"),
				errdetail("Functions of pgapp that need cryptography will refuse to run."));
		crypto_ready = false;
		return;
	}
	crypto_ready = true;
}

bool
pgapp_crypto_ready(void)
{
	return crypto_ready;
}

const char *
pgapp_crypto_library_version(void)
{
	return sodium_version_string();
}

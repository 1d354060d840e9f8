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
 * The HMAC and random wrappers refuse with 39000-class errors when
 * libsodium is not ready; they never return garbage.  MACs are compared
 * with sodium_memcmp (constant time), never memcmp.
 *
 * Password hashing is Argon2id (crypto_pwhash_str): each call allocates
 * memlimit bytes with malloc, outside PostgreSQL's memory contexts, and
 * frees them before returning; callers bound how many run at once
 * (src/auth/auth_password.c).
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

/* Refuse when sodium_init() failed in this process. */
static void
require_ready(void)
{
	if (!crypto_ready)
		ereport(ERROR,
				errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				errmsg("libsodium is not initialized"),
				errdetail("sodium_init() failed when pgapp was loaded."));
}

/*
 * mac = HMAC-SHA256(key, msg); mac has room for PGAPP_HMAC_SHA256_BYTES.
 * The hash state holds key material and is wiped before returning.
 */
void
pgapp_crypto_hmac_sha256(const uint8 *key, size_t keylen,
						 const uint8 *msg, size_t msglen, uint8 *mac)
{
	crypto_auth_hmacsha256_state st;

	StaticAssertStmt(PGAPP_HMAC_SHA256_BYTES == crypto_auth_hmacsha256_BYTES,
					 "HMAC-SHA256 size");
	require_ready();
	if (crypto_auth_hmacsha256_init(&st, key, keylen) != 0 ||
		crypto_auth_hmacsha256_update(&st, msg, msglen) != 0 ||
		crypto_auth_hmacsha256_final(&st, mac) != 0)
	{
		sodium_memzero(&st, sizeof(st));
		ereport(ERROR,
				errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				errmsg("could not compute an HMAC-SHA256"));
	}
	sodium_memzero(&st, sizeof(st));
}

bool
pgapp_crypto_hmac_sha256_verify(const uint8 *key, size_t keylen,
								const uint8 *msg, size_t msglen,
								const uint8 *mac)
{
	uint8		expected[PGAPP_HMAC_SHA256_BYTES];
	bool		ok;

	pgapp_crypto_hmac_sha256(key, keylen, msg, msglen, expected);
	ok = sodium_memcmp(expected, mac, PGAPP_HMAC_SHA256_BYTES) == 0;
	sodium_memzero(expected, sizeof(expected));
	return ok;
}

/* out (PGAPP_SHA256_BYTES) = SHA-256(msg). */
void
pgapp_crypto_sha256(const uint8 *msg, size_t msglen, uint8 *out)
{
	StaticAssertStmt(PGAPP_SHA256_BYTES == crypto_hash_sha256_BYTES, "SHA-256 size");
	require_ready();
	if (crypto_hash_sha256(out, msg, msglen) != 0)
		ereport(ERROR,
				errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				errmsg("could not compute a SHA-256 hash"));
}

/*
 * out (PGAPP_KEYED_HASH_BYTES) = BLAKE2b-256 of msg keyed with key
 * (PGAPP_KEYED_HASH_KEY_BYTES).  crypto_generichash cannot fail with these
 * sizes; a failure is still reported rather than ignored.
 */
void
pgapp_crypto_keyed_hash(const uint8 *key, const uint8 *msg, size_t msglen, uint8 *out)
{
	StaticAssertStmt(PGAPP_KEYED_HASH_KEY_BYTES >= crypto_generichash_KEYBYTES_MIN &&
					 PGAPP_KEYED_HASH_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX,
					 "keyed hash key size");
	require_ready();
	if (crypto_generichash(out, PGAPP_KEYED_HASH_BYTES, msg, msglen,
						   key, PGAPP_KEYED_HASH_KEY_BYTES) != 0)
		ereport(ERROR,
				errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
				errmsg("could not compute a keyed hash"));
}

bool
pgapp_crypto_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

void
pgapp_crypto_random(void *buf, size_t n)
{
	require_ready();
	randombytes_buf(buf, n);
}

void
pgapp_crypto_wipe(void *buf, size_t n)
{
	sodium_memzero(buf, n);
}

bool
pgapp_crypto_pwhash_str(char *out, const char *password, size_t len,
						uint64 opslimit, size_t memlimit)
{
	StaticAssertStmt(PGAPP_PWHASH_STRBYTES == crypto_pwhash_STRBYTES,
					 "Argon2id string size");
	StaticAssertStmt(PGAPP_PWHASH_OPSLIMIT_INTERACTIVE == crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE &&
					 PGAPP_PWHASH_MEMLIMIT_INTERACTIVE_KB * 1024 == crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE &&
					 PGAPP_PWHASH_OPSLIMIT_MIN == crypto_pwhash_argon2id_OPSLIMIT_MIN &&
					 PGAPP_PWHASH_MEMLIMIT_MIN == crypto_pwhash_argon2id_MEMLIMIT_MIN,
					 "Argon2id costs");
	require_ready();
	return crypto_pwhash_str_alg(out, password, len, opslimit, memlimit,
								 crypto_pwhash_ALG_ARGON2ID13) == 0;
}

bool
pgapp_crypto_pwhash_verify(const char *hash, const char *password, size_t len)
{
	require_ready();
	return crypto_pwhash_str_verify(hash, password, len) == 0;
}

int
pgapp_crypto_pwhash_needs_rehash(const char *hash, uint64 opslimit, size_t memlimit)
{
	require_ready();
	if (strncmp(hash, crypto_pwhash_argon2id_STRPREFIX,
				strlen(crypto_pwhash_argon2id_STRPREFIX)) != 0)
		return 1;				/* another algorithm: hash again */
	return crypto_pwhash_argon2id_str_needs_rehash(hash, opslimit, memlimit);
}

void
pgapp_crypto_pwhash_dummy(char *out, uint64 opslimit, size_t memlimit)
{
	uint8		salt[crypto_pwhash_SALTBYTES];
	uint8		hash[32] = {0};
	char		salt64[64];
	char		hash64[64];

	require_ready();
	randombytes_buf(salt, sizeof(salt));
	sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
					  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(hash64, sizeof(hash64), hash, sizeof(hash),
					  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(out, PGAPP_PWHASH_STRBYTES, "%sv=19$m=%zu,t=%llu,p=1$%s$%s",
			 crypto_pwhash_argon2id_STRPREFIX, memlimit / 1024,
			 (unsigned long long) opslimit, salt64, hash64);
}

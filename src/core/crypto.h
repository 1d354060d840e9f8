/*-------------------------------------------------------------------------
 *
 * crypto.h
 *	  The only door to libsodium.
 *
 * src/core/crypto.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_CRYPTO_H
#define PGAPP_CRYPTO_H

extern void pgapp_crypto_init(void);
extern const char *pgapp_crypto_library_version(void);
extern bool pgapp_crypto_ready(void);

/* HMAC-SHA256 (RFC 2104): 32-byte MACs, keys of any length. */
#define PGAPP_HMAC_SHA256_BYTES 32

extern void pgapp_crypto_hmac_sha256(const uint8 *key, size_t keylen,
									 const uint8 *msg, size_t msglen,
									 uint8 *mac);

/* Does mac (32 bytes) authenticate msg under key?  Constant time. */
extern bool pgapp_crypto_hmac_sha256_verify(const uint8 *key, size_t keylen,
											const uint8 *msg, size_t msglen,
											const uint8 *mac);

/* SHA-256 (FIPS 180-4) of msg: 32 bytes. */
#define PGAPP_SHA256_BYTES 32

extern void pgapp_crypto_sha256(const uint8 *msg, size_t msglen, uint8 *out);

/*
 * A 32-byte keyed hash (BLAKE2b with a 32-byte key) of msg: fixed-size keys
 * for shared tables that nobody without the key can make collide.
 */
#define PGAPP_KEYED_HASH_BYTES 32
#define PGAPP_KEYED_HASH_KEY_BYTES 32

extern void pgapp_crypto_keyed_hash(const uint8 *key, const uint8 *msg, size_t msglen,
									uint8 *out);

/* Constant-time comparison of two buffers of n bytes. */
extern bool pgapp_crypto_equal(const void *a, const void *b, size_t n);

/* n bytes from the operating system's CSPRNG. */
extern void pgapp_crypto_random(void *buf, size_t n);

/* Zero n bytes in a way the compiler cannot drop (secrets before pfree). */
extern void pgapp_crypto_wipe(void *buf, size_t n);

#endif							/* PGAPP_CRYPTO_H */

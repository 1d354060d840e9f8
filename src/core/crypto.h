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

/*
 * Argon2id password hashes in libsodium's string form
 * ($argon2id$v=19$m=...,t=...,p=1$salt$hash), at most
 * PGAPP_PWHASH_STRBYTES bytes with the final NUL.  Costs: opslimit passes
 * over memlimit bytes.
 */
#define PGAPP_PWHASH_STRBYTES 128
#define PGAPP_PWHASH_OPSLIMIT_MIN 1
#define PGAPP_PWHASH_MEMLIMIT_MIN 8192
/* libsodium's INTERACTIVE costs: the defaults of the settings (kB for memory) */
#define PGAPP_PWHASH_OPSLIMIT_INTERACTIVE 2
#define PGAPP_PWHASH_MEMLIMIT_INTERACTIVE_KB 65536

/* Hash password[0..len) into out; false when libsodium could not (memory). */
extern bool pgapp_crypto_pwhash_str(char *out, const char *password, size_t len,
									uint64 opslimit, size_t memlimit);

/* Does the NUL-terminated hash string match password[0..len)? */
extern bool pgapp_crypto_pwhash_verify(const char *hash, const char *password,
									   size_t len);

/*
 * Was hash made with other parameters than these (or is it not an Argon2id
 * string)?  1: yes, rehash; 0: no; -1: not a hash libsodium reads.
 */
extern int	pgapp_crypto_pwhash_needs_rehash(const char *hash, uint64 opslimit,
											 size_t memlimit);

/*
 * A well-formed Argon2id string with these parameters, a random salt and a
 * hash no password has (all zero bytes): verifying against it costs what
 * verifying against a real hash of the same parameters does.
 */
extern void pgapp_crypto_pwhash_dummy(char *out, uint64 opslimit, size_t memlimit);

#endif							/* PGAPP_CRYPTO_H */

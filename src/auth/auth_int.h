/*-------------------------------------------------------------------------
 *
 * auth_int.h
 *	  Private to src/auth: token limits, SQLSTATEs, the key set and the
 *	  base64url codec shared by auth_token.c, auth_keys.c and auth_codec.c.
 *
 * src/auth/auth_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_AUTH_INT_H
#define PGAPP_AUTH_INT_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

/* Longest token decode_token reads and encode_token makes (bytes). */
#define PGAPP_TOKEN_MAX_LENGTH 8192
/* Shortest secret accepted (bytes), as PostgREST's jwt-secret. */
#define PGAPP_SECRET_MIN_LENGTH 32
/* Longest key id; a kid is 1..64 of [A-Za-z0-9._-]. */
#define PGAPP_KID_MAX_LENGTH 64
/* Random bytes of a refresh token (256 bits). */
#define PGAPP_REFRESH_TOKEN_BYTES 32
/* Largest token key file read. */
#define PGAPP_KEY_FILE_MAX_SIZE 65536

/*
 * SQLSTATEs of token failures, class PJ (docs/errors.md).  PostgREST can
 * map only PT401 to 401, so inside a request these are raised as SQLSTATE
 * PGRST with status 401 and the code in the body (auth_codec.c).
 */
#define ERRCODE_PGAPP_TOKEN_MALFORMED		MAKE_SQLSTATE('P','J','0','0','1')
#define ERRCODE_PGAPP_TOKEN_BAD_SIGNATURE	MAKE_SQLSTATE('P','J','0','0','2')
#define ERRCODE_PGAPP_TOKEN_EXPIRED			MAKE_SQLSTATE('P','J','0','0','3')
#define ERRCODE_PGAPP_TOKEN_NOT_YET_VALID	MAKE_SQLSTATE('P','J','0','0','4')
#define ERRCODE_PGAPP_TOKEN_REVOKED			MAKE_SQLSTATE('P','J','0','0','5')
#define ERRCODE_PGAPP_TOKEN_REJECTED		MAKE_SQLSTATE('P','J','0','0','6')
#define ERRCODE_PGAPP_TOKEN_WRONG_TYPE		MAKE_SQLSTATE('P','J','0','0','7')

typedef enum AuthTokenFailure
{
	AUTH_TOKEN_MALFORMED,
	AUTH_TOKEN_BAD_SIGNATURE,
	AUTH_TOKEN_EXPIRED,
	AUTH_TOKEN_NOT_YET_VALID,
	AUTH_TOKEN_REVOKED,
	AUTH_TOKEN_REJECTED,
	AUTH_TOKEN_WRONG_TYPE
} AuthTokenFailure;

/* One secret; kid "" is the unnamed key (tokens without a kid). */
typedef struct AuthKey
{
	const char *kid;
	const uint8 *secret;
	size_t		len;
} AuthKey;

/* The configured keys; keys[current] signs. */
typedef struct AuthKeySet
{
	int			nkeys;
	int			current;
	const AuthKey *keys;
} AuthKeySet;

/* auth_keys.c */
extern const AuthKeySet *pgapp_auth_keys(void);
extern uint64 pgapp_auth_keys_generation(void);
extern const AuthKey *pgapp_auth_key_find(const AuthKeySet *set, const char *kid);
extern bool pgapp_auth_kid_valid(const char *kid, size_t len);

/* auth_token.c: the claims of a valid token (decode_token's checks) */
extern Jsonb *pgapp_auth_verify_token(const char *token, size_t len);

/* auth_codec.c */
extern char *pgapp_auth_b64url_encode(const uint8 *data, size_t len);
extern uint8 *pgapp_auth_b64url_decode(const char *s, size_t len, size_t *outlen);
extern void pgapp_auth_token_fail(AuthTokenFailure failure, const char *detail) pg_attribute_noreturn();
extern const char *pgapp_auth_check_header(const char *text, size_t len);

/*
 * auth_revoke.c: revocation (docs/auth.md, "Revocation").  The two revoke
 * functions check no permission: their callers decide who may revoke.
 * pgapp_auth_is_revoked takes iat as Unix seconds, NaN when absent.
 */
extern void pgapp_auth_revoke_jti(const char *jti, TimestampTz expires_at);
extern void pgapp_auth_revoke_subject(const char *sub, TimestampTz not_before);
extern bool pgapp_auth_is_revoked(const char *jti, const char *sub, double iat);
extern int	pgapp_auth_revocation_cleanup_all(void);
extern void pgapp_auth_revocation_state(const char **cache, TimestampTz *overflow_until,
										int64 *entries, int64 *capacity);

/* auth_password.c: shared memory of the hashing semaphore */
extern void pgapp_auth_password_shmem_request(void);
extern void pgapp_auth_password_shmem_startup(void);

#endif							/* PGAPP_AUTH_INT_H */

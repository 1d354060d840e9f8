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

#endif							/* PGAPP_CRYPTO_H */

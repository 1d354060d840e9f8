/*-------------------------------------------------------------------------
 *
 * auth.h
 *	  Auth: the module entries of tokens and their revocation
 *	  (auth_revoke.c) and of passwords and sessions (auth_session.c: shared
 *	  memory of password hashing and of reused sessions).
 *
 * src/auth/auth.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_AUTH_H
#define PGAPP_AUTH_H

#include "core/module.h"

extern const PgappModule pgapp_auth_module;
extern const PgappModule pgapp_auth_sessions_module;

#endif							/* PGAPP_AUTH_H */

/*-------------------------------------------------------------------------
 *
 * auth.h
 *	  Tokens and their revocation: the module entry (auth_revoke.c).
 *
 * src/auth/auth.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_AUTH_H
#define PGAPP_AUTH_H

#include "core/module.h"

extern const PgappModule pgapp_auth_module;

#endif							/* PGAPP_AUTH_H */

/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  Rate limiting in shared memory (ratelimit.c).
 *
 * src/ratelimit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_RATELIMIT_H
#define PGAPP_RATELIMIT_H

#include "utils/guc.h"

#include "core/module.h"
#include "core/settings.h"

/* pgapp.ratelimit_on_full */

extern const PgappModule pgapp_ratelimit_module;

#endif							/* PGAPP_RATELIMIT_H */

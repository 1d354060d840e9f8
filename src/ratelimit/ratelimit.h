/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  Rate limiting in shared memory: the module entry (ratelimit_check.c).
 *
 * src/ratelimit/ratelimit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_RATELIMIT_H
#define PGAPP_RATELIMIT_H

#include "utils/guc.h"

#include "core/module.h"
#include "core/settings.h"

extern const PgappModule pgapp_ratelimit_module;

#endif							/* PGAPP_RATELIMIT_H */

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

#include "pgapp.h"

/* pgapp.ratelimit_on_full */
typedef enum RateOnFull
{
	RATE_ON_FULL_ALLOW,
	RATE_ON_FULL_DENY,
	RATE_ON_FULL_ERROR
} RateOnFull;

extern int	pgapp_ratelimit_max_keys;
extern int	pgapp_ratelimit_on_full;
extern int	pgapp_ratelimit_max_window;
extern double pgapp_ratelimit_clock_offset;
extern char *pgapp_ratelimit_client_header;
extern char *pgapp_ratelimit_plan_claim;
extern int	pgapp_ratelimit_sweep_interval;
extern bool pgapp_ratelimit_save;
extern const struct config_enum_entry pgapp_ratelimit_on_full_options[];

extern const PgappModule pgapp_ratelimit_module;

#endif							/* PGAPP_RATELIMIT_H */

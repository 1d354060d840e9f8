/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  The variables of every pgapp setting (defined in settings.c).
 *
 * src/core/settings.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_SETTINGS_H
#define PGAPP_SETTINGS_H

#include "utils/guc.h"

/* pgapp.error_mode */
typedef enum PgappErrorMode
{
	PGAPP_ERROR_MODE_AUTO,
	PGAPP_ERROR_MODE_RAISE,
	PGAPP_ERROR_MODE_RETURN
} PgappErrorMode;

/* pgapp.ratelimit_on_full */
typedef enum RateOnFull
{
	RATE_ON_FULL_ALLOW,
	RATE_ON_FULL_DENY,
	RATE_ON_FULL_ERROR
} RateOnFull;

/* the error model (docs/errors.md) */
extern int	pgapp_error_mode;

/* changesets (docs/changesets.md) */
extern int	pgapp_changeset_max_items;

/* composable queries (docs/queries.md) */
extern int	pgapp_query_cache_memory;
extern int	pgapp_query_max_page_size;

/* rate limiting (docs/ratelimit.md) */
extern bool pgapp_ratelimit_save;
extern char *pgapp_ratelimit_client_header;
extern char *pgapp_ratelimit_plan_claim;
extern double pgapp_ratelimit_clock_offset;
extern int	pgapp_ratelimit_max_keys;
extern int	pgapp_ratelimit_max_window;
extern int	pgapp_ratelimit_on_full;
extern int	pgapp_ratelimit_sweep_interval;

/* tokens (docs/auth.md) */
extern char *pgapp_auth_jwt_secret_file;
extern char *pgapp_auth_jwt_issuer;
extern char *pgapp_auth_jwt_audience;
extern int	pgapp_auth_jwt_leeway;
extern int	pgapp_auth_token_max_ttl;
extern int	pgapp_auth_key_file_recheck;
extern int	pgapp_auth_revocation_capacity;

/* passwords and sessions (docs/auth.md) */
#define PGAPP_PASSWORD_MAX_BYTES 1024
extern int	pgapp_auth_password_opslimit;
extern int	pgapp_auth_password_memlimit;	/* kB */
extern int	pgapp_auth_password_min_length;
extern int	pgapp_auth_hash_concurrency;
extern char *pgapp_auth_default_role;
extern int	pgapp_auth_access_ttl;
extern int	pgapp_auth_refresh_ttl;
extern int	pgapp_auth_max_sessions;
extern int	pgapp_auth_login_max_attempts;
extern int	pgapp_auth_login_client_max_attempts;
extern int	pgapp_auth_login_window;

/*
 * The value of pgapp.auth_jwt_secret (never stored in the setting itself,
 * see settings.c) and its length, or NULL when it is empty.
 */
extern const char *pgapp_auth_jwt_secret_value(size_t *len);

/* PubSub (docs/pubsub.md) */
extern bool pgapp_pubsub_fixed_envelope;
extern int	pgapp_pubsub_batch_delay;
extern int	pgapp_pubsub_max_payload;
extern int	pgapp_pubsub_presence_max_meta;
extern int	pgapp_pubsub_presence_max_metas;
extern int	pgapp_pubsub_presence_max_ttl;
extern int	pgapp_pubsub_retention;

/* the job queue (docs/jobs.md) */
extern char *pgapp_jobs_databases;
extern int	pgapp_jobs_batch_size;
extern int	pgapp_jobs_circuit_cooldown;
extern int	pgapp_jobs_commit_interval;
extern int	pgapp_jobs_idle_timeout;
extern int	pgapp_jobs_max_args_size;
extern int	pgapp_jobs_max_batch;
extern int	pgapp_jobs_max_queued_per_role;
extern int	pgapp_jobs_max_workers;
extern int	pgapp_jobs_retention;
extern int	pgapp_jobs_timeout;

extern const struct config_enum_entry pgapp_error_mode_options[];
extern const struct config_enum_entry pgapp_ratelimit_on_full_options[];

/* Define every setting (first thing in _PG_init). */
extern void pgapp_settings_define(bool preloaded);

#endif							/* PGAPP_SETTINGS_H */

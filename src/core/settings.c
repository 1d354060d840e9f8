/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  Every pgapp setting (GUC): its variable, its definition, grouped by
 *	  the feature it belongs to.
 *
 * Settings are named pgapp.<area>_<setting> (scripts/check-layout checks
 * it).  Each feature reads its variables through settings.h; none defines a
 * setting of its own, so this file is the one list an operator needs.
 * pgapp_settings_define() runs first in _PG_init.  The settings that size
 * shared memory exist only when the library is preloaded (a postmaster
 * setting cannot be created later) and are defined before the prefix is
 * reserved, which would otherwise drop their value from postgresql.conf.
 *
 * src/core/settings.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "utils/guc.h"
#include "utils/varlena.h"

#include "core/crypto.h"
#include "core/settings.h"

/* the error model (docs/errors.md) */
int			pgapp_error_mode = PGAPP_ERROR_MODE_AUTO;

/* changesets (docs/changesets.md) */
int			pgapp_changeset_max_items = 1000;

/* composable queries (docs/queries.md) */
int			pgapp_query_cache_memory = 8192;	/* kB */
int			pgapp_query_max_page_size = 100;

/* rate limiting (docs/ratelimit.md) */
bool		pgapp_ratelimit_save = true;
char	   *pgapp_ratelimit_client_header = NULL;
char	   *pgapp_ratelimit_plan_claim = NULL;
double		pgapp_ratelimit_clock_offset = 0;
int			pgapp_ratelimit_max_keys = 10000;
int			pgapp_ratelimit_max_window = 86400;
int			pgapp_ratelimit_on_full = RATE_ON_FULL_DENY;
int			pgapp_ratelimit_sweep_interval = 60;

/* tokens (docs/auth.md) */
char	   *pgapp_auth_jwt_secret = NULL;	/* always "": see below */
char	   *pgapp_auth_jwt_secret_file = NULL;
char	   *pgapp_auth_jwt_issuer = NULL;
char	   *pgapp_auth_jwt_audience = NULL;
int			pgapp_auth_jwt_leeway = 30;
int			pgapp_auth_token_max_ttl = 30 * 86400;
int			pgapp_auth_key_file_recheck = 1000;
int			pgapp_auth_revocation_capacity = 20000;
int			pgapp_auth_password_opslimit = PGAPP_PWHASH_OPSLIMIT_INTERACTIVE;
int			pgapp_auth_password_memlimit = PGAPP_PWHASH_MEMLIMIT_INTERACTIVE_KB;
int			pgapp_auth_password_min_length = 8;
int			pgapp_auth_hash_concurrency = 2;
char	   *pgapp_auth_default_role = NULL;
int			pgapp_auth_access_ttl = 900;
int			pgapp_auth_refresh_ttl = 30 * 86400;
int			pgapp_auth_max_sessions = 10;
int			pgapp_auth_login_max_attempts = 5;
int			pgapp_auth_login_client_max_attempts = 50;
int			pgapp_auth_login_window = 300;

/* PubSub (docs/pubsub.md) */
bool		pgapp_pubsub_fixed_envelope = false;
int			pgapp_pubsub_batch_delay = 2;
int			pgapp_pubsub_max_payload = 1024 * 1024;
int			pgapp_pubsub_presence_max_meta = 4096;
int			pgapp_pubsub_presence_max_metas = 64;
int			pgapp_pubsub_presence_max_ttl = 600;
int			pgapp_pubsub_retention = 3600;

/* the job queue (docs/jobs.md) */
char	   *pgapp_jobs_databases = NULL;
int			pgapp_jobs_batch_size = 1000;
int			pgapp_jobs_circuit_cooldown = 60;
int			pgapp_jobs_commit_interval = 200;
int			pgapp_jobs_idle_timeout = 60;
int			pgapp_jobs_max_args_size = 256;
int			pgapp_jobs_max_batch = 10000;
int			pgapp_jobs_max_queued_per_role = 10000;
int			pgapp_jobs_max_workers = 32;
int			pgapp_jobs_retention = 86400;
int			pgapp_jobs_timeout = 0;

const struct config_enum_entry pgapp_error_mode_options[] = {
	{"auto", PGAPP_ERROR_MODE_AUTO, false},
	{"raise", PGAPP_ERROR_MODE_RAISE, false},
	{"return", PGAPP_ERROR_MODE_RETURN, false},
	{NULL, 0, false}
};

const struct config_enum_entry pgapp_ratelimit_on_full_options[] = {
	{"allow", RATE_ON_FULL_ALLOW, false},
	{"deny", RATE_ON_FULL_DENY, false},
	{"error", RATE_ON_FULL_ERROR, false},
	{NULL, 0, false}
};

/* pgapp.jobs_databases: a list of names SplitIdentifierString accepts */
static bool
check_jobs_databases(char **newval, void **extra, GucSource source)
{
	char	   *copy = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitIdentifierString(copy, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(copy);
	return ok;
}

/*
 * pgapp.auth_jwt_secret never holds the secret: the check hook copies the
 * value into its "extra" (a malloc'd JwtSecret the GUC machinery keeps and
 * frees with the value) and replaces the value itself with "".  So nothing
 * that reads setting values can show it: not SHOW, current_setting() or
 * pg_settings (setting, reset_val, boot_val) for any role, pg_read_all_settings
 * members and superusers included, and not the postmaster's "parameter
 * changed to" line at a reload, which it writes only when the stored value
 * differs.  The show hook says whether a secret is set.  The hook never
 * fails on a value (its error message would quote it); the token functions
 * check the length when they use the secret.
 */
typedef struct JwtSecret
{
	size_t		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} JwtSecret;

static const JwtSecret *jwt_secret = NULL;

static bool
check_jwt_secret(char **newval, void **extra, GucSource source)
{
	const char *value = *newval ? *newval : "";
	size_t		len = strlen(value);
	JwtSecret  *secret = malloc(offsetof(JwtSecret, data) + len + 1);
	char	   *empty = strdup("");

	if (secret == NULL || empty == NULL)
	{
		free(secret);
		free(empty);
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	secret->len = len;
	memcpy(secret->data, value, len + 1);
	if (*newval)
	{
		explicit_bzero(*newval, len);
		free(*newval);
	}
	*newval = empty;
	*extra = secret;
	return true;
}

static void
assign_jwt_secret(const char *newval, void *extra)
{
	jwt_secret = (const JwtSecret *) extra;
}

static const char *
show_jwt_secret(void)
{
	return (jwt_secret != NULL && jwt_secret->len > 0) ? "(set)" : "";
}

const char *
pgapp_auth_jwt_secret_value(size_t *len)
{
	if (jwt_secret == NULL || jwt_secret->len == 0)
	{
		*len = 0;
		return NULL;
	}
	*len = jwt_secret->len;
	return jwt_secret->data;
}

/*
 * Settings of tokens (docs/auth.md).  The secret and the key file are read
 * from the configuration files only (PGC_SIGHUP): a superuser's ALTER ROLE
 * or ALTER DATABASE ... SET, or a function's SET clause, would store them
 * where every role can read them (pg_db_role_setting, pg_proc).  Leeway,
 * issuer and audience are superuser-only (PGC_SUSET): SECURITY DEFINER
 * functions that decode tokens run with the caller's settings, so a caller
 * must not widen the leeway they check with.
 */
static void
define_auth_settings(bool preloaded)
{
	DefineCustomStringVariable("pgapp.auth_jwt_secret",
							   "Secret that signs and verifies pgapp's HS256 tokens (at least 32 bytes).",
							   "Readable by no role: SHOW displays (set) or an empty string. "
							   "Prefer pgapp.auth_jwt_secret_file; this one is ignored unless pgapp is preloaded.",
							   &pgapp_auth_jwt_secret,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   check_jwt_secret, assign_jwt_secret, show_jwt_secret);

	DefineCustomStringVariable("pgapp.auth_jwt_secret_file",
							   "File holding the token secret, or a key set {\"current\": kid, \"keys\": {kid: secret}}.",
							   "Relative paths start at the data directory. The file must belong to the server's user "
							   "and be unreadable by group and others; a change is picked up at the next use.",
							   &pgapp_auth_jwt_secret_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_jwt_leeway",
							"Clock skew allowed when checking a token's exp, nbf and iat.",
							NULL,
							&pgapp_auth_jwt_leeway,
							30, 0, 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_key_file_recheck",
							"How often a backend checks whether the token key file changed.",
							"A changed or removed key file takes effect in each backend within this time; 0 checks at every use.",
							&pgapp_auth_key_file_recheck,
							1000, 0, 60000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_token_max_ttl",
							"Longest lifetime pgapp.encode_token gives a token.",
							"A subject's revocation cutoff is kept this long after it, then forgotten.",
							&pgapp_auth_token_max_ttl,
							30 * 86400, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	if (preloaded)
		DefineCustomIntVariable("pgapp.auth_revocation_capacity",
								"How many token revocations and subject cutoffs shared memory caches.",
								"Each takes about 100 bytes. When they do not fit, token checks read the revocation tables.",
								&pgapp_auth_revocation_capacity,
								20000, 16, 10000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.auth_jwt_issuer",
							   "iss claim of the tokens pgapp signs, and the only one it accepts; empty: none.",
							   NULL,
							   &pgapp_auth_jwt_issuer,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.auth_jwt_audience",
							   "aud claim of the tokens pgapp signs, and the audience a token must name; empty: none.",
							   NULL,
							   &pgapp_auth_jwt_audience,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}

/* Settings of passwords and sessions (docs/auth.md, "Passwords" and "Sessions"). */
static void
define_session_settings(void)
{
	DefineCustomIntVariable("pgapp.auth_password_opslimit",
							"Argon2id passes over memory per password hash (libsodium's opslimit).",
							"Hashes made with other costs are upgraded at the next successful login.",
							&pgapp_auth_password_opslimit,
							PGAPP_PWHASH_OPSLIMIT_INTERACTIVE, PGAPP_PWHASH_OPSLIMIT_MIN, 32,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_password_memlimit",
							"Memory of one Argon2id password hash (libsodium's memlimit).",
							"Each hash running at once allocates this much outside shared memory.",
							&pgapp_auth_password_memlimit,
							PGAPP_PWHASH_MEMLIMIT_INTERACTIVE_KB, PGAPP_PWHASH_MEMLIMIT_MIN / 1024, 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_password_min_length",
							"Fewest characters pgapp.register accepts in a password.",
							NULL,
							&pgapp_auth_password_min_length,
							8, 1, PGAPP_PASSWORD_MAX_BYTES,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_hash_concurrency",
							"Most password hashes computed at once in the whole server.",
							"Others wait their turn; each hash takes pgapp.auth_password_memlimit of memory.",
							&pgapp_auth_hash_concurrency,
							2, 1, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.auth_default_role",
							   "Role claim of the users pgapp.register creates; empty: tokens without a role claim.",
							   NULL,
							   &pgapp_auth_default_role,
							   "authenticated",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_access_ttl",
							"Lifetime of the access tokens pgapp.login and pgapp.refresh return.",
							NULL,
							&pgapp_auth_access_ttl,
							900, 1, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_refresh_ttl",
							"Lifetime of a refresh token (each rotation starts a new one).",
							NULL,
							&pgapp_auth_refresh_ttl,
							30 * 86400, 60, 366 * 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_max_sessions",
							"Most live sessions (refresh token families) per user; a login beyond it ends the oldest.",
							NULL,
							&pgapp_auth_max_sessions,
							10, 1, 1000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_login_max_attempts",
							"Login attempts per account (email) per pgapp.auth_login_window; a successful login clears the count.",
							NULL,
							&pgapp_auth_login_max_attempts,
							5, 1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_login_client_max_attempts",
							"Login attempts per client address per pgapp.auth_login_window.",
							NULL,
							&pgapp_auth_login_client_max_attempts,
							50, 1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.auth_login_window",
							"Window of the login attempt limits.",
							NULL,
							&pgapp_auth_login_window,
							300, 1, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* Settings of the error model (docs/errors.md). */
static void
define_error_settings(bool preloaded)
{
	DefineCustomEnumVariable("pgapp.error_mode",
							 "How pgapp reports errors: raise, return, or auto.",
							 "raise: SQLSTATE PTnnn with the JSON body in DETAIL. "
							 "return: set response.status and return the JSON body. "
							 "auto: return inside a PostgREST request (request.method set), else raise.",
							 &pgapp_error_mode,
							 PGAPP_ERROR_MODE_AUTO,
							 pgapp_error_mode_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
}

/* Settings of changesets (docs/changesets.md). */
static void
define_changeset_settings(bool preloaded)
{
	DefineCustomIntVariable("pgapp.changeset_max_items",
							"Most errors, permitted fields, required fields or constraints a changeset value may hold.",
							"Longer changesets are refused (54000) before any validator reads them.",
							&pgapp_changeset_max_items,
							1000, 1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/* Settings of composable queries (docs/queries.md). */
static void
define_query_settings(bool preloaded)
{
	DefineCustomIntVariable("pgapp.query_max_page_size",
							"Largest page_size pgapp.paginate accepts.",
							NULL,
							&pgapp_query_max_page_size,
							100, 1, 100000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.query_cache_memory",
							"Memory the kept query plans of one backend may hold.",
							"Past it, the least recently used plans are dropped; 0 keeps none.",
							&pgapp_query_cache_memory,
							8192, 0, MAX_KILOBYTES,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
}

/* Settings of rate limiting (docs/ratelimit.md). */
static void
define_ratelimit_settings(bool preloaded)
{
	DefineCustomEnumVariable("pgapp.ratelimit_on_full",
							 "What pgapp.check_rate does when no bucket can be evicted for a new key.",
							 "deny: refuse the request; allow: let it through uncounted; error: raise an error.",
							 &pgapp_ratelimit_on_full,
							 RATE_ON_FULL_DENY,
							 pgapp_ratelimit_on_full_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.ratelimit_max_window",
							"Longest window_seconds a rate limit check accepts.",
							"A bucket lives as long as its window; longer windows are refused (22023).",
							&pgapp_ratelimit_max_window,
							86400, 1, 315360000,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.ratelimit_client_header",
							   "Request header whose last address identifies anonymous clients in pgapp.rate_limit_request.",
							   "Set it only to a header your proxy appends the client's address to (e.g. x-forwarded-for behind nginx); empty uses the connection's address.",
							   &pgapp_ratelimit_client_header,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("pgapp.ratelimit_plan_claim",
							   "JWT claim naming the caller's plan in pgapp.rate_limit_request.",
							   NULL,
							   &pgapp_ratelimit_plan_claim,
							   "plan",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.ratelimit_sweep_interval",
							"How often the pgapp housekeeper removes expired rate limit buckets.",
							"0 turns the periodic sweep off (a full table still evicts expired buckets first).",
							&pgapp_ratelimit_sweep_interval,
							60, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pgapp.ratelimit_save",
							 "Save rate limit buckets at shutdown and restore them at start.",
							 NULL,
							 &pgapp_ratelimit_save,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("pgapp.ratelimit_clock_offset",
							 "Seconds added to the rate limiter's clock (for tests).",
							 "Lets regression tests move time forward instead of sleeping.",
							 &pgapp_ratelimit_clock_offset,
							 0, -1e9, 1e9,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	if (preloaded)
	{
		DefineCustomIntVariable("pgapp.ratelimit_max_keys",
								"How many rate limit buckets shared memory holds.",
								"Each bucket takes about 200 bytes.",
								&pgapp_ratelimit_max_keys,
								10000, 16, 10000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}
}

/* Settings of PubSub (docs/pubsub.md). */
static void
define_pubsub_settings(bool preloaded)
{
	DefineCustomIntVariable("pgapp.pubsub_retention",
							"How long messages too large for NOTIFY stay readable with pgapp.message().",
							NULL,
							&pgapp_pubsub_retention,
							3600, 60, 7 * 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_batch_delay",
							"How long the pubsub worker lets writers add to a batch when it is busy.",
							"0 sends at once; a few milliseconds let one delivering transaction carry many messages.",
							&pgapp_pubsub_batch_delay,
							2, 0, 100,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_max_payload",
							"Largest payload pgapp.broadcast accepts (jsonb bytes).",
							"Larger payloads are refused with SQLSTATE 54000; pgapp's own messages are not limited.",
							&pgapp_pubsub_max_payload,
							1024 * 1024, 1024, 256 * 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_presence_max_meta",
							"Largest meta pgapp.presence_track accepts (bytes of its JSON text).",
							"Larger metas are refused with SQLSTATE 54000.",
							&pgapp_pubsub_presence_max_meta,
							4096, 64, 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_presence_max_ttl",
							"Longest ttl pgapp.presence_track accepts.",
							"A presence not renewed within its ttl leaves; longer ttls are refused with SQLSTATE 54000.",
							&pgapp_pubsub_presence_max_ttl,
							600, 1, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.pubsub_presence_max_metas",
							"Most metas one key may have at once on a topic (connections or devices).",
							"A further pgapp.presence_track without ref is refused with SQLSTATE 54000.",
							&pgapp_pubsub_presence_max_metas,
							64, 1, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pgapp.pubsub_fixed_envelope",
							 "Give broadcasts a counter for id and 2000-01-01 for at (for tests).",
							 "Lets tests compare whole messages, as isolationtester prints them.",
							 &pgapp_pubsub_fixed_envelope,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

/* Settings of the job queue (docs/jobs.md). */
static void
define_jobs_settings(bool preloaded)
{
	DefineCustomStringVariable("pgapp.jobs_databases",
							   "Databases where pgapp's background workers run jobs (comma-separated; empty: all).",
							   "Elsewhere jobs can still be enqueued and served by external workers.",
							   &pgapp_jobs_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_jobs_databases, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_retention",
							"How long finished jobs are kept before pruning.",
							"Completed, discarded and cancelled jobs older than this are deleted in batches.",
							&pgapp_jobs_retention,
							86400, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_max_args_size",
							"The largest args one job may carry.",
							"Measured as stored (jsonb); a larger one is refused with 54000.  0: no limit.",
							&pgapp_jobs_max_args_size,
							256, 0, 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_max_batch",
							"How many jobs one call of pgapp.enqueue_many may enqueue, at most.",
							"A larger batch is refused with 54000.  0: no limit.",
							&pgapp_jobs_max_batch,
							10000, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_max_queued_per_role",
							"How many jobs one role may have waiting (scheduled, available or retryable), at most.",
							"An enqueue beyond it is refused with 54000; superusers are not limited.  0: no limit.",
							&pgapp_jobs_max_queued_per_role,
							10000, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_batch_size",
							"How many jobs a queue worker claims at once, at most.",
							"Fewer when the backlog is small, so that the queue's workers share it, and when jobs are slow (about one pgapp.jobs_commit_interval of work); the claim commits before the jobs run.",
							&pgapp_jobs_batch_size,
							1000, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_commit_interval",
							"How long a queue worker lets one transaction carry its jobs before it commits.",
							"Quick jobs share a transaction (fewer commits); after this long it commits after the current job.",
							&pgapp_jobs_commit_interval,
							200, 0, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_idle_timeout",
							"How long a queue worker with nothing to do waits before it exits.",
							"0 keeps idle workers for ever.",
							&pgapp_jobs_idle_timeout,
							60, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_timeout",
							"Longest a job may run, unless its worker function sets statement_timeout.",
							"0 means no limit. A job over its time fails with SQLSTATE 57014 and is retried.",
							&pgapp_jobs_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgapp.jobs_circuit_cooldown",
							"How long a queue whose workers crashed 5 times within a minute gets no new workers.",
							NULL,
							&pgapp_jobs_circuit_cooldown,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	if (preloaded)
	{
		DefineCustomIntVariable("pgapp.jobs_max_workers",
								"How many queue workers can run at once, over all databases.",
								"Each also needs a background worker process: keep max_worker_processes above it.",
								&pgapp_jobs_max_workers,
								32, 1, 1024,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}
}

void
pgapp_settings_define(bool preloaded)
{
	define_error_settings(preloaded);
	define_changeset_settings(preloaded);
	define_query_settings(preloaded);
	define_ratelimit_settings(preloaded);
	define_pubsub_settings(preloaded);
	define_jobs_settings(preloaded);
	define_auth_settings(preloaded);
	define_session_settings();
	MarkGUCPrefixReserved("pgapp");
}

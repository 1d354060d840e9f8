/*-------------------------------------------------------------------------
 *
 * error.c
 *	  The error model: raise a PTnnn error or render the error body for
 *	  PostgREST, and count both in shared memory.
 *
 * One error, two renderings (docs/errors.md; docs/reference.md, "Conventions"):
 *
 *	raise	ereport(ERROR) with SQLSTATE PTnnn, a readable MESSAGE, the JSON
 *			body in DETAIL and SCHEMA/TABLE/COLUMN filled where known.
 *			PostgREST turns PTnnn into HTTP status nnn.
 *	return	set response.status = nnn for the transaction and hand the body
 *			back, so a PostgREST RPC can answer with a Phoenix-shaped body
 *			such as {"errors": {"title": ["can't be blank"]}}.
 *
 * pgapp.error_mode chooses: raise, return, or auto (return exactly when
 * request.method is set, i.e. inside a PostgREST request).  Triggers always
 * raise.  When no message is given, one is built from the status and, for an
 * {"errors": {field: [messages]}} body, from the field errors
 * ("validation failed: title can't be blank").
 *
 * Shared state: one counter pair per status 400..599, counting raised and
 * returned reports since the last reset.  The counters are atomics, so no
 * lock is taken; a reset zeroes them one by one, and a report racing with it
 * may survive the reset, as with pg_stat_statements_reset().  Reports count
 * at once, whatever becomes of their transaction; a reset is transactional:
 * it happens when the transaction that asked for it commits (xact_defer.c),
 * not if it rolls back, and a transaction that asked for one cannot be
 * prepared.
 *
 * src/core/error.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/util.h"
#include "core/xact_defer.h"

#define ERROR_STATUS_COUNT (PGAPP_MAX_ERROR_STATUS - PGAPP_MIN_ERROR_STATUS + 1)

typedef struct ErrorStatsShared
{
	pg_atomic_uint64 raised[ERROR_STATUS_COUNT];
	pg_atomic_uint64 returned[ERROR_STATUS_COUNT];
	pg_atomic_uint64 stats_reset;	/* TimestampTz of the last reset */
} ErrorStatsShared;

static ErrorStatsShared *error_stats = NULL;


static void error_shmem_request(void);
static void error_shmem_startup(void);
static const char *error_status(void);
static const char *default_message(int status);
static char *build_message(const PgappError *err);
static void count_report(int status, bool raised);
static void reset_at_commit(List *args);
static void refuse_prepare(List *args);

const PgappModule pgapp_error_module = {
	.name = "errors",
	.shmem_request = error_shmem_request,
	.shmem_startup = error_shmem_startup,
	.status = error_status,
};

PG_FUNCTION_INFO_V1(pgapp_report_error);
PG_FUNCTION_INFO_V1(pgapp_error_mode_effective);
PG_FUNCTION_INFO_V1(pgapp_error_stats);
PG_FUNCTION_INFO_V1(pgapp_error_stats_reset);

static void
error_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(ErrorStatsShared)));
}

/*
 * Caller holds AddinShmemInitLock.
 */
static void
error_shmem_startup(void)
{
	bool		found;

	error_stats = ShmemInitStruct("pgapp error stats",
								  sizeof(ErrorStatsShared), &found);
	if (!found)
	{
		for (int i = 0; i < ERROR_STATUS_COUNT; i++)
		{
			pg_atomic_init_u64(&error_stats->raised[i], 0);
			pg_atomic_init_u64(&error_stats->returned[i], 0);
		}
		pg_atomic_init_u64(&error_stats->stats_reset,
						   (uint64) GetCurrentTimestamp());
	}
}

static const char *
error_status(void)
{
	return error_stats != NULL ? "ok" : "not preloaded";
}

/*
 * Return mode when configured so, or in auto mode inside a PostgREST
 * request.  PostgREST sets request.method with set_config(..., true); after
 * the transaction the placeholder reads as '' rather than vanishing.
 */
bool
pgapp_error_returns(void)
{
	const char *method;

	switch ((PgappErrorMode) pgapp_error_mode)
	{
		case PGAPP_ERROR_MODE_RAISE:
			return false;
		case PGAPP_ERROR_MODE_RETURN:
			return true;
		case PGAPP_ERROR_MODE_AUTO:
			method = GetConfigOption("request.method", true, false);
			return method != NULL && method[0] != '\0';
	}
	elog(ERROR, "unrecognized pgapp.error_mode: %d", pgapp_error_mode);
	return false;				/* keep compiler quiet */
}

static const char *
default_message(int status)
{
	switch (status)
	{
		case 400:
			return "bad request";
		case 401:
			return "unauthorized";
		case 402:
			return "payment required";
		case 403:
			return "forbidden";
		case 404:
			return "not found";
		case 409:
			return "conflict";
		case 410:
			return "gone";
		case 412:
			return "precondition failed";
		case 422:
			return "validation failed";
		case 429:
			return "too many requests";
		case 503:
			return "service unavailable";
		default:
			return status < 500 ? "request failed" : "server error";
	}
}

/*
 * The MESSAGE of a raised error: the caller's, or the default for the status
 * followed by the field errors of an {"errors": {field: [msg, ...]}} body,
 * e.g. "validation failed: title can't be blank; status is invalid".
 *
 * The body is read as jsonb, never through jansson, so any number PostgreSQL
 * accepts (beyond int64 or double) is fine.  Field names and messages echo
 * the caller's input: each is cut to PGA_MESSAGE_ECHO_CHARS characters, and
 * at most PGA_MESSAGE_MAX_FIELD_ERRORS of them are listed (all stay in DETAIL).
 */
#define PGA_MESSAGE_MAX_FIELD_ERRORS 20

typedef struct FieldMessage
{
	StringInfo	buf;
	int			count;
} FieldMessage;

static void
append_field_message(FieldMessage *fm, const char *field, const JsonbValue *msg)
{
	char	   *text;

	if (msg->type != jbvString)
		return;
	if (++fm->count > PGA_MESSAGE_MAX_FIELD_ERRORS)
	{
		if (fm->count == PGA_MESSAGE_MAX_FIELD_ERRORS + 1)
			appendStringInfoString(fm->buf, "; ...");
		return;
	}
	text = pnstrdup(msg->val.string.val, msg->val.string.len);

	/* buf holds the default message alone until the first field error */
	appendStringInfo(fm->buf, "%s %s %s",
					 fm->count == 1 ? ":" : ";",
					 pgapp_echo(field),
					 pgapp_echo(text));
}

static void
append_field_errors(const char *field, int keylen, JsonbValue *messages, void *arg)
{
	FieldMessage *fm = (FieldMessage *) arg;
	int			n = pgapp_jsonb_array_length(messages);

	CHECK_FOR_INTERRUPTS();
	if (messages->type == jbvString)
		append_field_message(fm, field, messages);
	for (int i = 0; i < n; i++)
		append_field_message(fm, field, pgapp_jsonb_array_get(messages, i));
}

static char *
build_message(const PgappError *err)
{
	StringInfoData buf;
	FieldMessage fm = {&buf, 0};
	JsonbValue *errors;

	if (err->message != NULL)
		return pstrdup(err->message);

	initStringInfo(&buf);
	appendStringInfoString(&buf, default_message(err->status));
	errors = pgapp_jsonb_get_key(err->body, "errors");
	if (pgapp_jsonb_value_is_object(errors))
		pgapp_jsonb_foreach(errors->val.binary.data, append_field_errors, &fm);
	return buf.data;
}

static void
count_report(int status, bool raised)
{
	int			i = status - PGAPP_MIN_ERROR_STATUS;

	if (error_stats == NULL)
		return;					/* not preloaded: nothing to count into */
	pg_atomic_fetch_add_u64(raised ? &error_stats->raised[i] : &error_stats->returned[i], 1);
}

Jsonb *
pgapp_error_report(const PgappError *err, bool force_raise)
{
	char		status_text[12];

	if (err->status < PGAPP_MIN_ERROR_STATUS || err->status > PGAPP_MAX_ERROR_STATUS)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("error status %d is out of range", err->status),
				errdetail("An error status must be an HTTP status from %d to %d.",
						  PGAPP_MIN_ERROR_STATUS, PGAPP_MAX_ERROR_STATUS));
	if (!JB_ROOT_IS_OBJECT(err->body) || JB_ROOT_IS_SCALAR(err->body))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("error body must be a JSON object"),
				errhint("Pass an object such as {\"errors\": {\"title\": [\"can't be blank\"]}}."));

	if (force_raise || !pgapp_error_returns())
	{
		char	   *message = build_message(err);
		char	   *detail = JsonbToCString(NULL, &err->body->root, VARSIZE(err->body));

		count_report(err->status, true);
		ereport(ERROR,
				errcode(PGAPP_SQLSTATE_FOR_STATUS(err->status)),
				errmsg_internal("%s", message),
				errdetail_internal("%s", detail),
				err->hint ? errhint("%s", err->hint) : 0,
				err->schema_name ? err_generic_string(PG_DIAG_SCHEMA_NAME, err->schema_name) : 0,
				err->table_name ? err_generic_string(PG_DIAG_TABLE_NAME, err->table_name) : 0,
				err->column_name ? err_generic_string(PG_DIAG_COLUMN_NAME, err->column_name) : 0);
	}

	snprintf(status_text, sizeof(status_text), "%d", err->status);
	(void) set_config_option("response.status", status_text,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
	count_report(err->status, false);
	return err->body;
}

/*
 * pgapp.report_error(status int, body jsonb, message text, hint text,
 *					  column_name text, table_name regclass) -> jsonb
 *
 * The error model for SQL and PL/pgSQL callers.  Not STRICT: a NULL status
 * or body is a mistake to report, not a silent NULL.
 */
Datum
pgapp_report_error(PG_FUNCTION_ARGS)
{
	PgappError	err = {0};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", PG_ARGISNULL(0) ? "status" : "body"));

	err.status = PG_GETARG_INT32(0);
	err.body = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		err.message = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		err.hint = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (!PG_ARGISNULL(4))
		err.column_name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(5))
	{
		Oid			relid = PG_GETARG_OID(5);
		char	   *relname = get_rel_name(relid);

		if (relname == NULL)
			ereport(ERROR,
					errcode(ERRCODE_UNDEFINED_TABLE),
					errmsg("relation with OID %u does not exist", relid));
		err.table_name = relname;
		err.schema_name = get_namespace_name(get_rel_namespace(relid));
	}
	if (err.message != NULL && err.message[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("error message must not be empty"),
				errhint("Pass NULL to get the default message for the status."));

	PG_RETURN_JSONB_P(pgapp_error_report(&err, false));
}

/*
 * pgapp.error_mode() -> text: 'raise' or 'return', with auto resolved.
 */
Datum
pgapp_error_mode_effective(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(pgapp_error_returns() ? "return" : "raise"));
}

/*
 * pgapp.error_stats() -> SETOF pgapp.error_stat: statuses with any report.
 */
Datum
pgapp_error_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz reset_at;

	pgapp_require_shmem(error_stats, "pgapp.error_stats()");
	InitMaterializedSRF(fcinfo, 0);

	reset_at = (TimestampTz) pg_atomic_read_u64(&error_stats->stats_reset);
	for (int i = 0; i < ERROR_STATUS_COUNT; i++)
	{
		uint64		raised = pg_atomic_read_u64(&error_stats->raised[i]);
		uint64		returned = pg_atomic_read_u64(&error_stats->returned[i]);
		int			status = PGAPP_MIN_ERROR_STATUS + i;
		Datum		values[5];
		bool		nulls[5] = {false};

		if (raised == 0 && returned == 0)
			continue;
		values[0] = Int32GetDatum(status);
		values[1] = CStringGetTextDatum(unpack_sql_state(PGAPP_SQLSTATE_FOR_STATUS(status)));
		values[2] = Int64GetDatum((int64) raised);
		values[3] = Int64GetDatum((int64) returned);
		values[4] = TimestampTzGetDatum(reset_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * pgapp.error_stats_reset() -> timestamptz (admin only, by GRANT): the time
 * of the call.  The counters are zeroed, and stats_reset set to the time of
 * the commit, when the calling transaction commits; a rollback (of it, or of
 * the savepoint around the call) resets nothing.
 */
Datum
pgapp_error_stats_reset(PG_FUNCTION_ARGS)
{
	pgapp_require_shmem(error_stats, "pgapp.error_stats_reset()");
	pgapp_xact_defer(PGAPP_XACT_COMMIT, reset_at_commit, NULL);
	pgapp_xact_defer(PGAPP_XACT_PRE_COMMIT, refuse_prepare, NULL);
	PG_RETURN_TIMESTAMPTZ(GetCurrentTimestamp());
}

/*
 * After commit (a PGAPP_XACT_COMMIT action, once however many resets the
 * transaction asked for): zero the counters.  Atomic writes only, so it
 * cannot fail.
 */
static void
reset_at_commit(List *args)
{
	for (int i = 0; i < ERROR_STATUS_COUNT; i++)
	{
		pg_atomic_write_u64(&error_stats->raised[i], 0);
		pg_atomic_write_u64(&error_stats->returned[i], 0);
	}
	pg_atomic_write_u64(&error_stats->stats_reset, (uint64) GetCurrentTimestamp());
}

/*
 * Before commit or prepare (a PGAPP_XACT_PRE_COMMIT action): the reset of a
 * prepared transaction would be due at a COMMIT PREPARED that this backend
 * may never see, so refuse to prepare it.
 */
static void
refuse_prepare(List *args)
{
	if (pgapp_xact_preparing())
		ereport(ERROR,
				errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("cannot PREPARE a transaction that has reset pgapp.error_stats"));
}

/*
 * s cut to at most maxchars characters (never inside a multibyte
 * character), with "..." appended when it was cut: for messages and details
 * that quote what a caller sent, so an error never echoes a huge input.
 * NULL stays NULL.  The result is palloc'd.
 */
char *
pga_truncate_for_message(const char *s, int maxchars)
{
	int			len;
	int			cut;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	cut = pg_mbcharcliplen(s, len, Max(maxchars, 0));
	if (cut >= len)
		return pstrdup(s);
	return psprintf("%.*s...", cut, s);
}

/* input cut to PGA_MESSAGE_ECHO_CHARS characters: what a message quotes */
char *
pgapp_echo(const char *input)
{
	return pga_truncate_for_message(input, PGA_MESSAGE_ECHO_CHARS);
}

/*
 * One field's 422: {"errors": {field: [message]}} with the table and the
 * field filled in, as a changeset reports it (the transition trigger of
 * machines raises through here).
 */
Jsonb *
pgapp_error_report_field(Oid relid, const char *field, const char *message,
						 bool force_raise)
{
	PgappJsonbBuilder b = {0};
	PgappError	err = {0};

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "errors");
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, field);
	pgapp_jsonb_begin_array(&b);
	pgapp_jsonb_add_string(&b, message);
	pgapp_jsonb_end_array(&b);
	pgapp_jsonb_end_object(&b);
	pgapp_jsonb_end_object(&b);

	err.status = 422;
	err.body = pgapp_jsonb_finish(&b);
	if (OidIsValid(relid))
	{
		err.table_name = get_rel_name(relid);
		err.schema_name = get_namespace_name(get_rel_namespace(relid));
	}
	err.column_name = field;
	return pgapp_error_report(&err, force_raise);
}

/*-------------------------------------------------------------------------
 *
 * error.h
 *	  The error model of pgapp: one call that either raises a PTnnn error
 *	  or renders the error body for PostgREST (response.status + JSON).
 *
 * src/core/error.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_ERROR_H
#define PGAPP_ERROR_H

#include "core/module.h"
#include "core/settings.h"
#include "utils/jsonb.h"


/* Lowest and highest HTTP status the error model accepts. */
#define PGAPP_MIN_ERROR_STATUS 400
#define PGAPP_MAX_ERROR_STATUS 599

/* SQLSTATE PTnnn for HTTP status nnn (PostgREST answers with status nnn). */
#define PGAPP_SQLSTATE_FOR_STATUS(status) \
	MAKE_SQLSTATE('P', 'T', '0' + (status) / 100, '0' + ((status) / 10) % 10, '0' + (status) % 10)

#define ERRCODE_PGAPP_VALIDATION	MAKE_SQLSTATE('P','T','4','2','2')
#define ERRCODE_PGAPP_CONFLICT		MAKE_SQLSTATE('P','T','4','0','9')
#define ERRCODE_PGAPP_NOT_FOUND		MAKE_SQLSTATE('P','T','4','0','4')
#define ERRCODE_PGAPP_RATE_LIMITED	MAKE_SQLSTATE('P','T','4','2','9')
#define ERRCODE_PGAPP_PAYMENT		MAKE_SQLSTATE('P','T','4','0','2')

/*
 * Everything one error report carries.  body is the JSON a PostgREST client
 * receives in return mode and the DETAIL of the raised error; message, hint,
 * column and table are optional (NULL).  schema/table/column fill the error
 * fields of the same names in raise mode.
 */
typedef struct PgappError
{
	int			status;
	Jsonb	   *body;
	const char *message;
	const char *hint;
	const char *schema_name;
	const char *table_name;
	const char *column_name;
} PgappError;

/* Resolve pgapp.error_mode (auto looks at request.method) to raise/return. */
extern bool pgapp_error_returns(void);

/*
 * Report an error through the model.  With force_raise (triggers) or in raise
 * mode it does not return.  In return mode it sets response.status for the
 * transaction and returns the body; the caller must already have undone its
 * own writes (subtransaction rollback).
 */
extern Jsonb *pgapp_error_report(const PgappError *err, bool force_raise);

/*
 * Messages that echo user input (a field name, a value, a key) show at most
 * this many characters of it, then "...".
 */
#define PGA_MESSAGE_ECHO_CHARS 64

/*
 * Input echoed in an error message: at most PGA_MESSAGE_ECHO_CHARS
 * characters, then "...", so that a message never carries a caller's
 * megabytes.
 */
extern char *pgapp_echo(const char *input);

/* s cut to maxchars characters plus "..." (UTF-8 and any server encoding). */
extern char *pga_truncate_for_message(const char *s, int maxchars);

/*
 * Report one field's error as a 422 whose body is
 * {"errors": {field: [message]}}, with TABLE (relid, may be InvalidOid) and
 * COLUMN filled in; as pgapp_error_report otherwise.
 */
extern Jsonb *pgapp_error_report_field(Oid relid, const char *field,
									   const char *message, bool force_raise);

/* Registry entry for pgapp.c. */
extern const PgappModule pgapp_error_module;

#endif							/* PGAPP_ERROR_H */

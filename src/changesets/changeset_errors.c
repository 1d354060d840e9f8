/*-------------------------------------------------------------------------
 *
 * changeset_errors.c
 *	  Error lists of changesets: adding errors, interpolating messages,
 *	  the {"errors": {...}} body, and the report through the error model.
 *
 * src/changesets/changeset_errors.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unicode/ubrk.h>
#include <unicode/utext.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "pgtime.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "changeset_int.h"
#include "core/error.h"
#include "core/json_util.h"

/* ---------------------------------------------------------------------
 * Errors and messages
 * ---------------------------------------------------------------------
 */

/*
 * Replace %{key} by the value of key; unknown keys stay as written.
 */
char *
pgapp_cs_interpolate(const char *msg, int n, const char *const *keys, const char *const *values)
{
	StringInfoData buf;
	const char *p = msg;

	initStringInfo(&buf);
	while (*p)
	{
		const char *close;

		if (p[0] == '%' && p[1] == '{' && (close = strchr(p + 2, '}')) != NULL)
		{
			int			keylen = close - (p + 2);
			bool		done = false;

			for (int i = 0; i < n && !done; i++)
			{
				if (strlen(keys[i]) == keylen && strncmp(keys[i], p + 2, keylen) == 0)
				{
					appendStringInfoString(&buf, values[i]);
					done = true;
				}
			}
			if (done)
			{
				p = close + 1;
				continue;
			}
		}
		appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

bool
pgapp_cs_has_error(CsErrors *errors, const char *field)
{
	ListCell   *lc;

	foreach(lc, errors->added)
	{
		if (strcmp(((CsError *) lfirst(lc))->field, field) == 0)
			return true;
	}
	foreach(lc, errors->existing)
	{
		if (strcmp(((CsError *) lfirst(lc))->field, field) == 0)
			return true;
	}
	return false;
}

void
pgapp_cs_add_error(CsErrors *errors, const char *field, const char *message)
{
	CsError    *e = palloc(sizeof(CsError));

	e->field = pstrdup(field);
	e->message = pstrdup(message);
	errors->added = lappend(errors->added, e);
}

/*
 * Write the errors object: per field, the errors added now (newest first),
 * then the ones the changeset had.
 */
void
pgapp_cs_add_errors_json(PgappJsonbBuilder *b, CsErrors *errors)
{
	List	   *fields = NIL;
	List	   *all = list_concat_copy(errors->added, errors->existing);
	ListCell   *lc;

	/* each field once: fields with new errors first, then the others */
	foreach(lc, all)
	{
		const char *field = ((CsError *) lfirst(lc))->field;
		ListCell   *lc2;
		bool		seen = false;

		foreach(lc2, fields)
			seen |= (strcmp(lfirst(lc2), field) == 0);
		if (!seen)
			fields = lappend(fields, (char *) field);
	}

	pgapp_jsonb_begin_object(b);
	foreach(lc, fields)
	{
		const char *field = lfirst(lc);
		ListCell   *lc2;

		pgapp_jsonb_key(b, field);
		pgapp_jsonb_begin_array(b);
		for (int i = list_length(errors->added) - 1; i >= 0; i--)
		{
			CsError    *e = list_nth(errors->added, i);

			if (strcmp(e->field, field) == 0)
				pgapp_jsonb_add_string(b, e->message);
		}
		foreach(lc2, errors->existing)
		{
			CsError    *e = lfirst(lc2);

			if (strcmp(e->field, field) == 0)
				pgapp_jsonb_add_string(b, e->message);
		}
		pgapp_jsonb_end_array(b);
	}
	pgapp_jsonb_end_object(b);
}

/* {"errors": {...}} */
Jsonb *
pgapp_cs_errors_body(CsErrors *errors)
{
	PgappJsonbBuilder b = {0};

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "errors");
	pgapp_cs_add_errors_json(&b, errors);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

/*
 * Report a changeset's errors through the error model (422).
 */
Jsonb *
pgapp_cs_report(Jsonb *errors_body, Oid relid, const char *first_field, bool force_raise)
{
	PgappError	err = {0};

	err.status = 422;
	err.body = errors_body;
	if (OidIsValid(relid))
	{
		err.table_name = get_rel_name(relid);
		err.schema_name = get_namespace_name(get_rel_namespace(relid));
	}
	err.column_name = first_field;
	return pgapp_error_report(&err, force_raise);
}

/* The field of the oldest error added, for the COLUMN of a raised error. */
const char *
pgapp_cs_first_error_field(CsErrors *errors)
{
	if (errors->added != NIL)
		return ((CsError *) linitial(errors->added))->field;
	if (errors->existing != NIL)
		return ((CsError *) linitial(errors->existing))->field;
	return NULL;
}

/* 54000 when the changeset holds more errors than pgapp.changeset_max_items. */
void
pgapp_cs_check_error_count(CsErrors *errors)
{
	int			n = list_length(errors->existing) + list_length(errors->added);

	if (n > pgapp_changeset_max_items)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("changeset has too many errors (%d)", n),
				errdetail("The limit is %d.", pgapp_changeset_max_items),
				errhint("A superuser can raise pgapp.changeset_max_items."));
}

/*-------------------------------------------------------------------------
 *
 * changeset_validate.c
 *	  The validators, with Ecto's messages, and pgapp_cs_apply_rule, which
 *	  applies one compiled rule to a changeset or a trigger's row.
 *
 * Ecto's semantics kept here:
 *	- validators other than required run only on fields present in the
 *	  changes with a non-null value;
 *	- required adds only "can't be blank", and not to a field that already
 *	  has an error (e.g. from a failed cast);
 *	- within a field the newest error comes first;
 *	- messages interpolate %{count}, %{number} (and, for add_error, any
 *	  key of opts);
 *	- required drops the fields it reports from the changes;
 *	- length counts graphemes (ICU's character break iterator) unless the
 *	  rule says codepoints or bytes;
 *	- format raises on a change that is not a string;
 *	- confirmation compares the params as sent, whether or not the field
 *	  changes.
 *
 *
 * src/changesets/changeset_validate.c
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

static const char *const bound_messages[CS_NUMBER_BOUNDS] = {
	"must be less than %{number}",
	"must be greater than %{number}",
	"must be less than or equal to %{number}",
	"must be greater than or equal to %{number}",
	"must be equal to %{number}"
};

static char *
interpolate1(const char *msg, const char *key, const char *value)
{
	return pgapp_cs_interpolate(msg, 1, &key, &value);
}

/* ---------------------------------------------------------------------
 * Validators
 * ---------------------------------------------------------------------
 */

static void
add(CsErrors *errors, const CsRule *rule, const char *field, const char *dflt,
	const char *key, const char *value)
{
	const char *msg = rule->message ? rule->message : dflt;

	pgapp_cs_add_error(errors, field, key ? interpolate1(msg, key, value) : msg);
}

/*
 * One character break iterator per backend (ICU allocates it with malloc;
 * opening one costs far more than reusing it).
 */
static UBreakIterator *grapheme_iter = NULL;

/*
 * The number of extended grapheme clusters (user-perceived characters,
 * Elixir's String.length) of s, by ICU's character break iterator.
 */
static int
count_graphemes(const char *s, int len)
{
	UErrorCode	status = U_ZERO_ERROR;
	UText		ut = UTEXT_INITIALIZER;
	const char *utf8 = s;
	int			utf8len = len;
	int			count = 0;
	bool		ascii = true;

	/* ASCII: one grapheme per byte, except that CR LF is one */
	for (int i = 0; i < len && ascii; i++)
		ascii = !IS_HIGHBIT_SET(s[i]);
	if (ascii)
	{
		count = len;
		for (int i = 1; i < len; i++)
			if (s[i - 1] == '\r' && s[i] == '\n')
				count--;
		return count;
	}

	if (GetDatabaseEncoding() != PG_UTF8)
	{
		utf8 = pg_server_to_any(s, len, PG_UTF8);
		utf8len = (utf8 == s) ? len : strlen(utf8);
	}
	if (grapheme_iter == NULL)
	{
		grapheme_iter = ubrk_open(UBRK_CHARACTER, "", NULL, 0, &status);
		if (U_FAILURE(status))
		{
			grapheme_iter = NULL;
			elog(ERROR, "could not open ICU character break iterator: %s", u_errorName(status));
		}
	}
	utext_openUTF8(&ut, utf8, utf8len, &status);
	if (U_FAILURE(status))
		elog(ERROR, "could not open ICU text: %s", u_errorName(status));
	ubrk_setUText(grapheme_iter, &ut, &status);
	if (U_FAILURE(status))
	{
		utext_close(&ut);
		elog(ERROR, "could not set ICU break iterator text: %s", u_errorName(status));
	}
	(void) ubrk_first(grapheme_iter);
	while (ubrk_next(grapheme_iter) != UBRK_DONE)
	{
		if ((++count & 0xFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	utext_close(&ut);
	return count;
}

/* The length of a string as the rule counts it. */
static int
string_length(const CsRule *rule, const char *s, int len)
{
	switch (rule->count)
	{
		case CS_COUNT_BYTES:
			return len;
		case CS_COUNT_CODEPOINTS:
			return pg_database_encoding_max_length() == 1 ? len : pg_mbstrlen_with_len(s, len);
		case CS_COUNT_GRAPHEMES:
			break;
	}
	return count_graphemes(s, len);
}

static void
validate_length(const CsRule *rule, const PgappColumn *f, CsValue *v, CsErrors *errors)
{
	int			count;
	bool		list = f->is_array;
	bool		bytes = !list && rule->count == CS_COUNT_BYTES;
	char		buf[16];

	if (list)
	{
		count = pgapp_cs_value_count(v);
		if (count < 0)
			return;
	}
	else
	{
		int			len;
		char	   *s = pgapp_cs_value_text(v, &len);

		/*
		 * Graphemes <= code points <= bytes, so a string no longer in bytes
		 * than max passes a max-only rule uncounted (the trigger's hot path).
		 */
		if (!rule->has_is && !rule->has_min && rule->has_max && len <= rule->max)
			return;
		count = string_length(rule, s, len);
	}

	if (rule->has_is && count != rule->is)
	{
		snprintf(buf, sizeof(buf), "%d", rule->is);
		add(errors, rule, f->name,
			list ? "should have %{count} item(s)" :
			bytes ? "should be %{count} byte(s)" : "should be %{count} character(s)",
			"count", buf);
	}
	else if (rule->has_min && count < rule->min)
	{
		snprintf(buf, sizeof(buf), "%d", rule->min);
		add(errors, rule, f->name,
			list ? "should have at least %{count} item(s)" :
			bytes ? "should be at least %{count} byte(s)" : "should be at least %{count} character(s)",
			"count", buf);
	}
	else if (rule->has_max && count > rule->max)
	{
		snprintf(buf, sizeof(buf), "%d", rule->max);
		add(errors, rule, f->name,
			list ? "should have at most %{count} item(s)" :
			bytes ? "should be at most %{count} byte(s)" : "should be at most %{count} character(s)",
			"count", buf);
	}
}

static void
validate_number(const CsRule *rule, const PgappColumn *f, CsValue *v, CsErrors *errors)
{
	Numeric		n = pgapp_cs_value_numeric(v);

	if (n == NULL)
	{
		/*
		 * a JSON changeset whose value is not a number: Ecto's cast would
		 * have refused it
		 */
		add(errors, rule, f->name, "is invalid", NULL, NULL);
		return;
	}
	for (int i = 0; i < CS_NUMBER_BOUNDS; i++)
	{
		int			cmp;
		bool		ok;

		if (rule->bounds[i] == NULL)
			continue;
		cmp = DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
												NumericGetDatum(rule->bounds[i])));
		switch ((CsNumberBound) i)
		{
			case CS_LESS_THAN:
				ok = cmp < 0;
				break;
			case CS_GREATER_THAN:
				ok = cmp > 0;
				break;
			case CS_LESS_THAN_OR_EQUAL_TO:
				ok = cmp <= 0;
				break;
			case CS_GREATER_THAN_OR_EQUAL_TO:
				ok = cmp >= 0;
				break;
			default:
				ok = cmp == 0;
				break;
		}
		if (!ok)
		{
			char	   *number = DatumGetCString(DirectFunctionCall1(numeric_out,
																	 NumericGetDatum(rule->bounds[i])));

			add(errors, rule, f->name, bound_messages[i], "number", number);
			return;				/* Ecto stops at the first failed bound */
		}
	}
}

/* Is the value one of the rule's list? */
static bool
value_in_list(const CsRule *rule, const PgappColumn *f, CsValue *v)
{
	if (v->from_tuple && rule->enum_oids != NULL)
	{
		Oid			oid = DatumGetObjectId(v->datum);

		for (int i = 0; i < rule->nlist; i++)
			if (rule->enum_oids[i] == oid)
				return true;
		return false;
	}

	for (int i = 0; i < rule->nlist; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&rule->list->root, i);

		if (!v->from_tuple)
		{
			if (pgapp_jsonb_values_equal(v->jv, item))
				return true;
		}
		else if (item->type == jbvNumeric)
		{
			Numeric		n = pgapp_cs_value_numeric(v);

			if (n != NULL &&
				DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
												 NumericGetDatum(item->val.numeric))))
				return true;
		}
		else if (item->type == jbvBool)
		{
			if (v->typid == BOOLOID && DatumGetBool(v->datum) == item->val.boolean)
				return true;
		}
		else if (item->type == jbvString)
		{
			int			len;
			char	   *s = pgapp_cs_value_text(v, &len);

			if (len == item->val.string.len && memcmp(s, item->val.string.val, len) == 0)
				return true;
		}
	}
	return false;
}

static void
validate_format(const CsRule *rule, const PgappColumn *f, CsValue *v, CsErrors *errors)
{
	int			len;
	char	   *s;

	/* Ecto raises when the change is not a string: so do we */
	if (!v->from_tuple && v->jv->type != jbvString)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("format rule expects changes to be strings, but \"%s\" changes to %s",
					   pgapp_echo(f->name),
					   pgapp_echo(pgapp_jsonb_value_to_cstring(v->jv))),
				errhint("Apply format rules to text columns."));
	s = pgapp_cs_value_text(v, &len);
	if (!RE_compile_and_execute(rule->pattern, s, len, REG_ADVANCED, C_COLLATION_OID, 0, NULL))
		add(errors, rule, f->name, "has invalid format", NULL, NULL);
}

/*
 * now() as a date and as a local timestamp, computed once per transaction
 * (and time zone): the trigger asks for every row.
 */
static void
transaction_now(DateADT *date, Timestamp *local)
{
	static TimestampTz cached_start = DT_NOBEGIN;
	static pg_tz *cached_tz = NULL;
	static DateADT cached_date;
	static Timestamp cached_local;
	TimestampTz start = GetCurrentTransactionStartTimestamp();

	if (start != cached_start || session_timezone != cached_tz)
	{
		cached_date = GetSQLCurrentDate();
		cached_local = GetSQLLocalTimestamp(-1);
		cached_start = start;
		cached_tz = session_timezone;
	}
	*date = cached_date;
	*local = cached_local;
}

static void
validate_future(const CsRule *rule, const PgappColumn *f, CsValue *v, CsErrors *errors)
{
	Datum		d;
	bool		future;
	DateADT		today;
	Timestamp	local_now;

	if (v->from_tuple)
		d = v->datum;
	else
	{
		int			len;
		char	   *s;

		/*
		 * Changes hold the cast value as text (ISO 8601).  A value that is
		 * not a date is what Ecto's cast reports: "is invalid" (422), not an
		 * exception (a PostgREST client would get 400).
		 */
		if (v->jv->type != jbvString)
		{
			pgapp_cs_add_error(errors, f->name, "is invalid");
			return;
		}
		s = pgapp_cs_value_text(v, &len);
		if (!pgapp_cs_try_input(f->basetype, -1, pnstrdup(s, len), &d))
		{
			pgapp_cs_add_error(errors, f->name, "is invalid");
			return;
		}
	}

	transaction_now(&today, &local_now);
	switch (f->basetype)
	{
		case DATEOID:
			future = DatumGetDateADT(d) > today;
			break;
		case TIMESTAMPOID:
			future = DatumGetTimestamp(d) > local_now;
			break;
		default:
			future = DatumGetTimestampTz(d) > GetCurrentTransactionStartTimestamp();
			break;
	}
	if (!future)
		add(errors, rule, f->name, "must be in the future", NULL, NULL);
}

static void
validate_transition(const CsRule *rule, const PgappColumn *f, CsValue *v, CsInput *in, CsErrors *errors)
{
	CsValue		old;
	int			len;
	char	   *to;
	char	   *from = NULL;
	const char *keys[2] = {"from", "to"};
	const char *values[2];

	to = pgapp_cs_value_text(v, &len);
	to = pnstrdup(to, len);
	pgapp_cs_get_old(in, f, &old);
	if (!old.isnull)
	{
		from = pgapp_cs_value_text(&old, &len);
		from = pnstrdup(from, len);
	}

	values[0] = from ? from : "nil";
	values[1] = to;
	switch (pgapp_machine_check(rule->machine, from, to))
	{
		case MACHINE_TRANSITION_OK:
			break;
		case MACHINE_TRANSITION_FORBIDDEN:
			pgapp_cs_add_error(errors, f->name,
							   pgapp_cs_interpolate(rule->message ? rule->message
													: "cannot transition from %{from} to %{to}",
													2, keys, values));
			break;
		case MACHINE_TRANSITION_NOT_INITIAL:
			pgapp_cs_add_error(errors, f->name,
							   pgapp_cs_interpolate(rule->message ? rule->message : "cannot start as %{to}",
													2, keys, values));
			break;
		case MACHINE_TRANSITION_UNKNOWN_STATE:
			pgapp_cs_add_error(errors, f->name,
							   pgapp_cs_interpolate(rule->message ? rule->message : "is invalid",
													2, keys, values));
			break;
	}
}

/*
 * Ecto's validate_confirmation: compare the params as sent.  When
 * <field>_confirmation is in the params it must equal params[field] (null
 * when absent), so a blank or missing field with a confirmation does not
 * match; when it is absent there is no error unless required.
 */
static void
validate_confirmation(const CsRule *rule, const PgappColumn *f, CsInput *in, CsErrors *errors)
{
	char	   *param = psprintf("%s_confirmation", f->name);
	JsonbValue *conf = pgapp_jsonb_get(in->params, param);
	JsonbValue *value = pgapp_jsonb_get(in->params, f->name);
	JsonbValue	null_value = {.type = jbvNull};

	if (conf == NULL)
	{
		if (rule->required)
			add(errors, rule, param, "can't be blank", NULL, NULL);
		return;
	}
	if (!pgapp_jsonb_values_equal(conf, value ? value : &null_value))
		add(errors, rule, param, "does not match confirmation", NULL, NULL);
}

static void
validate_acceptance(const CsRule *rule, const PgappColumn *f, CsInput *in, CsErrors *errors)
{
	JsonbValue *p = pgapp_jsonb_get(in->params, f->name);
	bool		accepted = false;

	if (p != NULL && p->type == jbvBool)
		accepted = p->val.boolean;
	else if (p != NULL && p->type == jbvString)
	{
		char	   *s = pgapp_jsonb_value_cstring(p);

		accepted = (strcmp(s, "true") == 0 || strcmp(s, "1") == 0);
	}
	else if (p != NULL && p->type == jbvNumeric)
		accepted = DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(p->val.numeric),
													NumericGetDatum(int64_to_numeric(1))));
	if (!accepted)
		add(errors, rule, f->name, "must be accepted", NULL, NULL);
}

/*
 * Apply one rule, adding its errors.
 */
void
pgapp_cs_apply_rule(const CsRule *rule, CsInput *in, CsErrors *errors)
{
	const PgappColumn *f = &rule->fields[0];
	CsValue		v;

	switch (rule->kind)
	{
		case CS_REQUIRED:
			for (int i = 0; i < rule->nfields; i++)
			{
				pgapp_cs_get_field(in, &rule->fields[i], &v);
				if (pgapp_cs_value_blank(&v, &rule->fields[i]) &&
					!pgapp_cs_has_error(errors, rule->fields[i].name))
				{
					add(errors, rule, rule->fields[i].name, "can't be blank", NULL, NULL);
					/* Ecto: Map.drop(changes, fields_with_errors) */
					if (in->newtup == NULL)
						in->drop_changes = lappend(in->drop_changes, rule->fields[i].name);
				}
			}
			return;

		case CS_CONFIRMATION:
			/* params only, whether or not the field changes (as Ecto) */
			if (in->newtup == NULL && in->params != NULL)
				validate_confirmation(rule, f, in, errors);
			return;

		case CS_ACCEPTANCE:
			if (in->newtup == NULL && in->params != NULL)
				validate_acceptance(rule, f, in, errors);
			return;

		case CS_UNIQUE_CONSTRAINT:
		case CS_FOREIGN_KEY_CONSTRAINT:
		case CS_CHECK_CONSTRAINT:
		case CS_EXCLUSION_CONSTRAINT:
			return;				/* mapped by pgapp.insert / pgapp.update */

		default:
			break;
	}

	/*
	 * The rest look only at present, non-blank changes: blank is nil (cast
	 * makes it null; a trigger sees the stored text), so a blank field gets
	 * only required's "can't be blank".
	 */
	if (!pgapp_cs_get_change(in, f, &v) || pgapp_cs_value_blank(&v, f))
		return;

	switch (rule->kind)
	{
		case CS_LENGTH:
			validate_length(rule, f, &v, errors);
			break;
		case CS_NUMBER:
			validate_number(rule, f, &v, errors);
			break;
		case CS_INCLUSION:
			if (!value_in_list(rule, f, &v))
				add(errors, rule, f->name, "is invalid", NULL, NULL);
			break;
		case CS_EXCLUSION:
			if (value_in_list(rule, f, &v))
				add(errors, rule, f->name, "is reserved", NULL, NULL);
			break;
		case CS_FORMAT:
			validate_format(rule, f, &v, errors);
			break;
		case CS_FUTURE:
			validate_future(rule, f, &v, errors);
			break;
		case CS_TRANSITION:
			validate_transition(rule, f, &v, in, errors);
			break;
		default:
			elog(ERROR, "unrecognized changeset rule: %d", (int) rule->kind);
	}
}

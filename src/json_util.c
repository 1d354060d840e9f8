/*-------------------------------------------------------------------------
 *
 * json_util.c
 *	  All use of jansson: allocator, parsing, dumping, jsonb conversion.
 *
 * jansson allocates through palloc_extended(MCXT_ALLOC_NO_OOM) in the
 * current memory context, because it expects NULL on failure and cleans up
 * itself.  Hence a json_t belongs to the context it was made in: a reset of
 * that context frees it, and json_decref() is only needed to release memory
 * early inside long loops.  Every jansson call that can fail is checked here
 * and turned into an ereport, so callers never see a NULL json_t.
 *
 * Conversion to and from jsonb goes through text.  jansson keeps integers as
 * 64-bit and other numbers as doubles, so numbers beyond that precision lose
 * digits; code that must keep exact numerics works on jsonb directly.
 *
 * src/json_util.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
/* PostgreSQL's SQL function json_object() clashes with jansson's */
#define json_object pg_sql_json_object
#include "utils/builtins.h"
#undef json_object
#include "utils/jsonb.h"

#include <jansson.h>

#include "json_util.h"

static void *json_palloc(size_t size);
static void json_pfree(void *ptr);
static void json_out_of_memory(void) pg_attribute_noreturn();

/*
 * jansson's allocator: NULL on failure, as it expects.
 */
static void *
json_palloc(size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_NO_OOM);
}

/*
 * jansson frees NULL in some error paths.
 */
static void
json_pfree(void *ptr)
{
	if (ptr != NULL)
		pfree(ptr);
}

static void
json_out_of_memory(void)
{
	ereport(ERROR,
			errcode(ERRCODE_OUT_OF_MEMORY),
			errmsg("out of memory while building JSON"));
}

/*
 * Called once from _PG_init, before any other jansson call.
 */
void
pgapp_json_init(void)
{
	json_set_alloc_funcs(json_palloc, json_pfree);
}

const char *
pgapp_json_library_version(void)
{
	return jansson_version_str();
}

/*
 * Parse JSON text (any value, not only objects).
 */
json_t *
pgapp_json_parse(const char *text, size_t len, const char *what)
{
	json_error_t error;
	json_t	   *json;

	json = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	if (json == NULL)
	{
		if (json_error_code(&error) == json_error_out_of_memory)
			json_out_of_memory();
		ereport(ERROR,
				errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				errmsg("invalid JSON in %s", what),
				errdetail("%s at line %d, column %d.",
						  error.text, error.line, error.column));
	}
	return json;
}

json_t *
pgapp_json_from_jsonb(Jsonb *jb)
{
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	return pgapp_json_parse(text, strlen(text), "jsonb value");
}

char *
pgapp_json_dump(const json_t *json)
{
	char	   *text;

	text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
	if (text == NULL)
		json_out_of_memory();
	return text;
}

Jsonb *
pgapp_json_to_jsonb(const json_t *json)
{
	char	   *text = pgapp_json_dump(json);
	Datum		d = DirectFunctionCall1(jsonb_in, CStringGetDatum(text));

	pfree(text);
	return DatumGetJsonbP(d);
}

static json_t *
checked(json_t *json)
{
	if (json == NULL)
		json_out_of_memory();
	return json;
}

/*
 * An empty object.  Not json_object(): the postgres executable exports a
 * function of that name (SQL's json_object), and the dynamic linker binds
 * our call to it instead of jansson's.  json_pack() calls jansson's own
 * json_object() from inside libjansson, where the name binds locally.
 */
json_t *
pgapp_json_object(void)
{
	return checked(json_pack("{}"));
}

json_t *
pgapp_json_array(void)
{
	return checked(json_array());
}

/*
 * A JSON string; text that is not valid UTF-8 (possible in a SQL_ASCII
 * database) is an error rather than a silent NULL.
 */
json_t *
pgapp_json_string(const char *value)
{
	json_t	   *json = json_string(value);

	if (json == NULL)
		ereport(ERROR,
				errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				errmsg("string is not valid UTF-8 and cannot be stored in JSON"));
	return json;
}

json_t *
pgapp_json_integer(int64 value)
{
	return checked(json_integer((json_int_t) value));
}

json_t *
pgapp_json_bool(bool value)
{
	return checked(json_boolean(value));
}

json_t *
pgapp_json_null(void)
{
	return json_null();
}

json_t *
pgapp_json_copy(const json_t *json)
{
	return checked(json_deep_copy(json));
}

void
pgapp_json_set(json_t *object, const char *key, json_t *value)
{
	if (json_object_set_new(object, key, value) != 0)
		json_out_of_memory();
}

void
pgapp_json_append(json_t *array, json_t *value)
{
	if (json_array_append_new(array, value) != 0)
		json_out_of_memory();
}

json_t *
pgapp_json_get(const json_t *object, const char *key)
{
	return json_is_object(object) ? json_object_get(object, key) : NULL;
}

bool
pgapp_json_is_object(const json_t *json)
{
	return json_is_object(json);
}

const char *
pgapp_json_string_value(const json_t *json)
{
	return json_is_string(json) ? json_string_value(json) : NULL;
}

size_t
pgapp_json_array_size(const json_t *json)
{
	return json_is_array(json) ? json_array_size(json) : 0;
}

json_t *
pgapp_json_array_get(const json_t *array, size_t index)
{
	return json_is_array(array) ? json_array_get(array, index) : NULL;
}

void
pgapp_json_foreach(const json_t *object, pgapp_json_member_fn fn, void *arg)
{
	const char *key;
	json_t	   *value;

	if (!json_is_object(object))
		return;
	/* the macro wants a non-const object; iteration does not modify it */
	json_object_foreach((json_t *) object, key, value)
		fn(key, value, arg);
}

void
pgapp_json_free(json_t *json)
{
	json_decref(json);
}

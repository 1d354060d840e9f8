/*-------------------------------------------------------------------------
 *
 * json_util.h
 *	  The only door to jansson: allocator set-up, parsing, dumping,
 *	  building and reading JSON, and conversion to and from jsonb.
 *
 * No other file includes <jansson.h> (its json_object() also clashes with
 * PostgreSQL's SQL function of that name); json_t is opaque outside
 * json_util.c.  A json_t lives in the memory context that was current when
 * it was made and must not outlive it; functions return text or jsonb to
 * SQL, never json_t.  Every constructor and setter here either succeeds or
 * raises, so callers never test for NULL.
 *
 * src/core/json_util.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_JSON_UTIL_H
#define PGAPP_JSON_UTIL_H

#include "utils/jsonb.h"

typedef struct json_t json_t;

extern void pgapp_json_init(void);

/* "a string", "an object", ...: a JSON value's type, for messages */
extern const char *pgapp_jsonb_type_name(const JsonbValue *v);
extern const char *pgapp_json_library_version(void);

/* Parse any JSON value; bad text raises 22P02 naming "what" and the place. */
extern json_t *pgapp_json_parse(const char *text, size_t len, const char *what);
extern json_t *pgapp_json_from_jsonb(Jsonb *jb);

/* One JSON object, duplicate keys refused; NULL (no error) otherwise. */
extern json_t *pgapp_json_parse_object_strict(const char *text, size_t len);

/* Serialise compactly. */
extern char *pgapp_json_dump(const json_t *json);
extern Jsonb *pgapp_json_to_jsonb(const json_t *json);

/* Constructors. */
extern json_t *pgapp_json_object(void);
extern json_t *pgapp_json_array(void);
extern json_t *pgapp_json_string(const char *value);
extern json_t *pgapp_json_integer(int64 value);
extern json_t *pgapp_json_bool(bool value);
extern json_t *pgapp_json_null(void);
extern json_t *pgapp_json_copy(const json_t *json);

/* Set or append, taking over the caller's reference to value. */
extern void pgapp_json_set(json_t *object, const char *key, json_t *value);
extern void pgapp_json_append(json_t *array, json_t *value);

/* Readers: NULL (or 0) when the value is absent or of another type. */
extern json_t *pgapp_json_get(const json_t *object, const char *key);
extern bool pgapp_json_is_object(const json_t *json);
extern const char *pgapp_json_string_value(const json_t *json);
extern size_t pgapp_json_array_size(const json_t *json);
extern json_t *pgapp_json_array_get(const json_t *array, size_t index);

/* Call fn for each member of an object, in the object's key order. */
typedef void (*pgapp_json_member_fn) (const char *key, json_t *value, void *arg);
extern void pgapp_json_foreach(const json_t *object, pgapp_json_member_fn fn, void *arg);

/* Release early (otherwise the memory context reset frees it). */
extern void pgapp_json_free(json_t *json);

/*
 * jsonb, for JSON whose numbers must stay exact (user data: changesets,
 * rows).  jansson keeps non-integers as doubles, so user values never go
 * through it.  These helpers wrap PostgreSQL's own jsonb API.
 */

/* Member of an object container, or NULL when absent or not an object. */
extern JsonbValue *pgapp_jsonb_get(JsonbContainer *object, const char *key);
extern JsonbValue *pgapp_jsonb_get_key(Jsonb *object, const char *key);
extern bool pgapp_jsonb_is_object(Jsonb *jb);
extern bool pgapp_jsonb_value_is_array(const JsonbValue *v);
extern bool pgapp_jsonb_value_is_object(const JsonbValue *v);

/* Number of elements of an array value (jbvBinary array), else -1. */
extern int	pgapp_jsonb_array_length(const JsonbValue *v);

/* Element i of an array value, or NULL. */
extern JsonbValue *pgapp_jsonb_array_get(const JsonbValue *v, int i);

/* Do two scalar or container values hold the same JSON? */
extern bool pgapp_jsonb_values_equal(const JsonbValue *a, const JsonbValue *b);

/* A value as its own jsonb document. */
extern Jsonb *pgapp_jsonb_from_value(const JsonbValue *v);

/* The text of a string value (palloc'd, NUL-terminated), or NULL. */
extern char *pgapp_jsonb_value_cstring(const JsonbValue *v);

/* JSON text of any value. */
extern char *pgapp_jsonb_value_to_cstring(const JsonbValue *v);

/* Call fn for each member of an object (keys in jsonb order). */
typedef void (*pgapp_jsonb_member_fn) (const char *key, int keylen, JsonbValue *value, void *arg);
extern void pgapp_jsonb_foreach(JsonbContainer *object, pgapp_jsonb_member_fn fn, void *arg);

/*
 * Building jsonb: begin/end objects and arrays, keys, scalars, or whole
 * jsonb values, in document order; finish returns the document.
 */
typedef struct PgappJsonbBuilder
{
	struct JsonbParseState *state;
	JsonbValue *result;
	int			depth;
} PgappJsonbBuilder;

extern void pgapp_jsonb_begin_object(PgappJsonbBuilder *b);
extern void pgapp_jsonb_end_object(PgappJsonbBuilder *b);
extern void pgapp_jsonb_begin_array(PgappJsonbBuilder *b);
extern void pgapp_jsonb_end_array(PgappJsonbBuilder *b);
extern void pgapp_jsonb_key(PgappJsonbBuilder *b, const char *key);
extern void pgapp_jsonb_key_len(PgappJsonbBuilder *b, const char *key, int len);
extern void pgapp_jsonb_add_string(PgappJsonbBuilder *b, const char *value);
extern void pgapp_jsonb_add_string_len(PgappJsonbBuilder *b, const char *value, int len);
extern void pgapp_jsonb_add_numeric(PgappJsonbBuilder *b, Numeric value);
extern void pgapp_jsonb_add_int(PgappJsonbBuilder *b, int64 value);
extern void pgapp_jsonb_add_bool(PgappJsonbBuilder *b, bool value);
extern void pgapp_jsonb_add_null(PgappJsonbBuilder *b);
extern void pgapp_jsonb_add_value(PgappJsonbBuilder *b, JsonbValue *value);
extern void pgapp_jsonb_add_jsonb(PgappJsonbBuilder *b, Jsonb *value);
extern Jsonb *pgapp_jsonb_finish(PgappJsonbBuilder *b);

/*
 * {key: [elems...]} with the elements (containers) copied byte for byte,
 * not unpacked and encoded again: appending to a long array stays cheap.
 */
extern Jsonb *pgapp_jsonb_object_of_array(const char *key, int n, JsonbValue **elems);

/*
 * Objects and arrays assembled the same way from values of any kind
 * (containers copied, scalars encoded); pgapp_jsonb_root_value gives a
 * jsonb's root as such a value.  Object keys must be distinct.
 */
extern JsonbValue *pgapp_jsonb_root_value(Jsonb *jb, JsonbValue *out);
extern Jsonb *pgapp_jsonb_raw_object(int n, const char **keys, JsonbValue **values);
extern Jsonb *pgapp_jsonb_raw_array(int n, JsonbValue **values);

#endif							/* PGAPP_JSON_UTIL_H */

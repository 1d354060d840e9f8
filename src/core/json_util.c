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
 * src/core/json_util.c
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
#include "utils/numeric.h"

#include <jansson.h>

#include "core/json_util.h"

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

/*
 * Strict parse of untrusted text that must be one JSON object: NULL (no
 * error raised) for invalid JSON or UTF-8, a NUL character, a duplicate key
 * at any depth, or any other value than an object.  Integers too large for
 * 64 bits are read as doubles rather than refused; callers that need exact
 * numbers read the text again as jsonb.
 */
json_t *
pgapp_json_parse_object_strict(const char *text, size_t len)
{
	json_error_t error;
	json_t	   *json;

	json = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &error);
	if (json == NULL)
	{
		if (json_error_code(&error) == json_error_out_of_memory)
			json_out_of_memory();
		return NULL;
	}
	if (!json_is_object(json))
	{
		json_decref(json);
		return NULL;
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

/* ---------------------------------------------------------------------
 * jsonb helpers (PostgreSQL's own jsonb API; exact numerics)
 * ---------------------------------------------------------------------
 */

JsonbValue *
pgapp_jsonb_get(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

bool
pgapp_jsonb_is_object(Jsonb *jb)
{
	return JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb);
}

JsonbValue *
pgapp_jsonb_get_key(Jsonb *object, const char *key)
{
	if (object == NULL || !pgapp_jsonb_is_object(object))
		return NULL;
	return pgapp_jsonb_get(&object->root, key);
}

bool
pgapp_jsonb_value_is_array(const JsonbValue *v)
{
	return v != NULL && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

bool
pgapp_jsonb_value_is_object(const JsonbValue *v)
{
	return v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

int
pgapp_jsonb_array_length(const JsonbValue *v)
{
	if (!pgapp_jsonb_value_is_array(v))
		return -1;
	return JsonContainerSize(v->val.binary.data);
}

JsonbValue *
pgapp_jsonb_array_get(const JsonbValue *v, int i)
{
	if (!pgapp_jsonb_value_is_array(v) || i < 0)
		return NULL;
	return getIthJsonbValueFromContainer(v->val.binary.data, (uint32) i);
}

bool
pgapp_jsonb_values_equal(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq,
													NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			elog(ERROR, "unexpected jsonb value type: %d", (int) a->type);
	}
	return false;				/* keep compiler quiet */
}

Jsonb *
pgapp_jsonb_from_value(const JsonbValue *v)
{
	return JsonbValueToJsonb((JsonbValue *) v);
}

char *
pgapp_jsonb_value_cstring(const JsonbValue *v)
{
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

char *
pgapp_jsonb_value_to_cstring(const JsonbValue *v)
{
	Jsonb	   *jb = pgapp_jsonb_from_value(v);

	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/*
 * Child index of container jc, whose data starts offset bytes after the
 * container's data area, as a JsonbValue: what jsonb_util.c's
 * fillJsonbValue gives (the on-disk format of jsonb; see jsonb.h).  *len is
 * the child's length in the data area, padding included.
 */
static void
child_value(const JsonbContainer *jc, int index, const char *base, uint32 offset,
			uint32 len, JsonbValue *v)
{
	JEntry		entry = jc->children[index];

	if (JBE_ISNULL(entry))
		v->type = jbvNull;
	else if (JBE_ISSTRING(entry))
	{
		v->type = jbvString;
		v->val.string.val = (char *) base + offset;
		v->val.string.len = len;
	}
	else if (JBE_ISNUMERIC(entry))
	{
		v->type = jbvNumeric;
		v->val.numeric = (Numeric) (base + INTALIGN(offset));
	}
	else if (JBE_ISBOOL_TRUE(entry))
	{
		v->type = jbvBool;
		v->val.boolean = true;
	}
	else if (JBE_ISBOOL_FALSE(entry))
	{
		v->type = jbvBool;
		v->val.boolean = false;
	}
	else
	{
		v->type = jbvBinary;
		v->val.binary.data = (JsonbContainer *) (base + INTALIGN(offset));
		v->val.binary.len = len - (INTALIGN(offset) - offset);
	}
}

/* The length of child index that starts at offset (see JEntry in jsonb.h). */
static inline uint32
child_length(const JsonbContainer *jc, int index, uint32 offset)
{
	JEntry		entry = jc->children[index];

	return JBE_HAS_OFF(entry) ? JBE_OFFLENFLD(entry) - offset : JBE_OFFLENFLD(entry);
}

/*
 * Call fn for each member of an object, in the object's (jsonb's) key
 * order.  The entries are read in one pass, as JsonbIteratorNext would read
 * them, without an iterator: keys first (children 0..n-1), then values
 * (n..2n-1), the offsets running on across both.
 */
void
pgapp_jsonb_foreach(JsonbContainer *object, pgapp_jsonb_member_fn fn, void *arg)
{
	int			n;
	const char *base;
	uint32		key_offset = 0;
	uint32		value_offset = 0;

	if (object == NULL || !JsonContainerIsObject(object))
		return;
	n = JsonContainerSize(object);
	base = (const char *) &object->children[2 * n];
	/* the values start where the last key ends */
	for (int i = 0; i < n; i++)
		value_offset += child_length(object, i, value_offset);
	for (int i = 0; i < n; i++)
	{
		uint32		key_len = child_length(object, i, key_offset);
		uint32		value_len = child_length(object, n + i, value_offset);
		JsonbValue	v;
		char	   *key;

		key = pnstrdup(base + key_offset, key_len);
		child_value(object, n + i, base, value_offset, value_len, &v);
		fn(key, (int) key_len, &v, arg);
		key_offset += key_len;
		value_offset += value_len;
	}
}

static void
builder_push(PgappJsonbBuilder *b, JsonbIteratorToken tok, JsonbValue *v)
{
	JsonbValue *r = pushJsonbValue(&b->state, tok, v);

	if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
		b->depth++;
	else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
	{
		if (--b->depth == 0)
			b->result = r;
	}
}

void
pgapp_jsonb_begin_object(PgappJsonbBuilder *b)
{
	builder_push(b, WJB_BEGIN_OBJECT, NULL);
}

void
pgapp_jsonb_end_object(PgappJsonbBuilder *b)
{
	builder_push(b, WJB_END_OBJECT, NULL);
}

void
pgapp_jsonb_begin_array(PgappJsonbBuilder *b)
{
	builder_push(b, WJB_BEGIN_ARRAY, NULL);
}

void
pgapp_jsonb_end_array(PgappJsonbBuilder *b)
{
	builder_push(b, WJB_END_ARRAY, NULL);
}

void
pgapp_jsonb_key_len(PgappJsonbBuilder *b, const char *key, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = len;
	builder_push(b, WJB_KEY, &v);
}

void
pgapp_jsonb_key(PgappJsonbBuilder *b, const char *key)
{
	pgapp_jsonb_key_len(b, key, strlen(key));
}

/*
 * A value inside an object or an array; pushJsonbValue wants WJB_VALUE
 * after a key and WJB_ELEM inside arrays.  b->state->contVal tells which.
 */
void
pgapp_jsonb_add_value(PgappJsonbBuilder *b, JsonbValue *value)
{
	JsonbIteratorToken tok;

	Assert(b->state != NULL);
	tok = b->state->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE;
	builder_push(b, tok, value);
}

void
pgapp_jsonb_add_string_len(PgappJsonbBuilder *b, const char *value, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = len;
	pgapp_jsonb_add_value(b, &v);
}

void
pgapp_jsonb_add_string(PgappJsonbBuilder *b, const char *value)
{
	pgapp_jsonb_add_string_len(b, value, strlen(value));
}

void
pgapp_jsonb_add_numeric(PgappJsonbBuilder *b, Numeric value)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = value;
	pgapp_jsonb_add_value(b, &v);
}

void
pgapp_jsonb_add_int(PgappJsonbBuilder *b, int64 value)
{
	pgapp_jsonb_add_numeric(b, int64_to_numeric(value));
}

void
pgapp_jsonb_add_bool(PgappJsonbBuilder *b, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	pgapp_jsonb_add_value(b, &v);
}

void
pgapp_jsonb_add_null(PgappJsonbBuilder *b)
{
	JsonbValue	v;

	v.type = jbvNull;
	pgapp_jsonb_add_value(b, &v);
}

/*
 * Embed a whole jsonb document (scalar documents are unwrapped).
 */
void
pgapp_jsonb_add_jsonb(PgappJsonbBuilder *b, Jsonb *value)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(value))
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&value->root, 0);

		pgapp_jsonb_add_value(b, elem);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &value->root;
	v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	pgapp_jsonb_add_value(b, &v);
}

Jsonb *
pgapp_jsonb_finish(PgappJsonbBuilder *b)
{
	if (b->depth != 0 || b->result == NULL)
		elog(ERROR, "unbalanced jsonb builder");
	return JsonbValueToJsonb(b->result);
}

/*
 * The type of a JSON value as a message names it ("a string", "an array";
 * "nothing" for a missing one).
 */
const char *
pgapp_jsonb_type_name(const JsonbValue *v)
{
	if (v == NULL)
		return "nothing";
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "another JSON value";
	}
}

/*
 * Containers copied as they are, without unpacking them.
 *
 * pushJsonbValue unpacks a container it is given and the result is encoded
 * again, token by token: appending one element to a long array that way
 * costs as much as building the array.  A container's encoding does not
 * depend on where it sits, as long as it starts 4-byte aligned (the
 * offsets in it are relative to its own start), so an array of containers
 * can be assembled by copying their bytes, as convertJsonbArray would
 * place them: each element padded to a 4-byte boundary (the padding counts
 * in the element's length), and every JB_OFFSET_STRIDE-th entry holding the
 * end offset instead of the length.
 */

/* Append one container child: padding, bytes; returns its length. */
static int
raw_append_container(StringInfo buf, const JsonbValue *v)
{
	int			start = buf->len;

	while (buf->len % sizeof(uint32) != 0)
		appendStringInfoCharMacro(buf, '\0');
	appendBinaryStringInfo(buf, (const char *) v->val.binary.data, v->val.binary.len);
	return buf->len - start;
}

/* Store entry i of a container's entries (at jentries) with length len. */
static void
raw_set_entry(StringInfo buf, int jentries, int i, uint32 type, int len, int *total)
{
	JEntry		meta;

	*total += len;
	if (*total > JENTRY_OFFLENMASK)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("total size of jsonb array elements exceeds the maximum of %d bytes",
					   JENTRY_OFFLENMASK));
	meta = (i % JB_OFFSET_STRIDE) == 0 ? (type | (uint32) *total | JENTRY_HAS_OFF) : (type | (uint32) len);
	memcpy(buf->data + jentries + i * sizeof(JEntry), &meta, sizeof(JEntry));
}

/*
 * Append one child of any kind: a container's bytes, or a scalar encoded
 * as convertJsonbScalar encodes it (a numeric padded to a 4-byte boundary).
 * Returns its JEntry type; *len is its length, padding included.
 */
static uint32
raw_append_value(StringInfo buf, const JsonbValue *v, int *len)
{
	int			start = buf->len;

	switch (v->type)
	{
		case jbvNull:
			*len = 0;
			return JENTRY_ISNULL;
		case jbvBool:
			*len = 0;
			return v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
		case jbvString:
			appendBinaryStringInfo(buf, v->val.string.val, v->val.string.len);
			*len = v->val.string.len;
			return JENTRY_ISSTRING;
		case jbvNumeric:
			while (buf->len % sizeof(uint32) != 0)
				appendStringInfoCharMacro(buf, '\0');
			appendBinaryStringInfo(buf, (const char *) v->val.numeric, VARSIZE_ANY(v->val.numeric));
			*len = buf->len - start;
			return JENTRY_ISNUMERIC;
		case jbvBinary:
			*len = raw_append_container(buf, v);
			return JENTRY_ISCONTAINER;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return 0;					/* not reached */
}

/* Append an array container of elems[0..n-1] (any values) to buf. */
static void
raw_append_array(StringInfo buf, int n, JsonbValue **elems)
{
	uint32		header = (uint32) n | JB_FARRAY;
	int			jentries;
	int			total = 0;

	if (n > JB_CMASK)
		elog(ERROR, "too many jsonb array elements");
	while (buf->len % sizeof(uint32) != 0)
		appendStringInfoCharMacro(buf, '\0');
	appendBinaryStringInfo(buf, (const char *) &header, sizeof(uint32));
	jentries = buf->len;
	for (int i = 0; i < n; i++)
		appendBinaryStringInfo(buf, "\0\0\0\0", sizeof(JEntry));
	for (int i = 0; i < n; i++)
	{
		int			len;
		uint32		type = raw_append_value(buf, elems[i], &len);

		raw_set_entry(buf, jentries, i, type, len, &total);
	}
}

typedef struct RawMember
{
	const char *key;
	int			keylen;
	JsonbValue *value;
} RawMember;

/* jsonb's order of object keys: shorter first, then bytewise */
static int
raw_member_cmp(const void *a, const void *b)
{
	const RawMember *ma = a;
	const RawMember *mb = b;

	if (ma->keylen != mb->keylen)
		return ma->keylen < mb->keylen ? -1 : 1;
	return memcmp(ma->key, mb->key, ma->keylen);
}

/* Append an object container of the members (distinct keys) to buf. */
static void
raw_append_object(StringInfo buf, int n, RawMember *members)
{
	uint32		header = (uint32) n | JB_FOBJECT;
	int			jentries;
	int			total = 0;

	if (n > JB_CMASK)
		elog(ERROR, "too many jsonb object members");
	qsort(members, n, sizeof(RawMember), raw_member_cmp);
	for (int i = 1; i < n; i++)
		if (raw_member_cmp(&members[i - 1], &members[i]) == 0)
			elog(ERROR, "duplicate jsonb object key \"%s\"", members[i].key);
	while (buf->len % sizeof(uint32) != 0)
		appendStringInfoCharMacro(buf, '\0');
	appendBinaryStringInfo(buf, (const char *) &header, sizeof(uint32));
	jentries = buf->len;
	for (int i = 0; i < 2 * n; i++)
		appendBinaryStringInfo(buf, "\0\0\0\0", sizeof(JEntry));
	for (int i = 0; i < n; i++)
	{
		appendBinaryStringInfo(buf, members[i].key, members[i].keylen);
		raw_set_entry(buf, jentries, i, JENTRY_ISSTRING, members[i].keylen, &total);
	}
	for (int i = 0; i < n; i++)
	{
		int			len;
		uint32		type = raw_append_value(buf, members[i].value, &len);

		/* values follow the keys: their stride counts from the first key */
		raw_set_entry(buf, jentries, n + i, type, len, &total);
	}
}

/* A new buffer with room for the varlena header. */
static void
raw_begin(StringInfo buf)
{
	initStringInfo(buf);
	appendBinaryStringInfo(buf, "\0\0\0\0", VARHDRSZ);
}

static Jsonb *
raw_finish(StringInfo buf)
{
	Jsonb	   *out = (Jsonb *) buf->data;

	SET_VARSIZE(out, buf->len);
	return out;
}

/*
 * A jsonb value as a JsonbValue that points into it (*out): its root
 * container (jbvBinary), or its scalar.
 */
JsonbValue *
pgapp_jsonb_root_value(Jsonb *jb, JsonbValue *out)
{
	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&jb->root, 0);

		*out = *elem;
		return out;
	}
	out->type = jbvBinary;
	out->val.binary.data = &jb->root;
	out->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	return out;
}

/*
 * {keys[i]: values[i], ...}: the values (containers or scalars, such as
 * pgapp_jsonb_root_value gives) copied without being unpacked.  The keys
 * must be distinct.
 */
Jsonb *
pgapp_jsonb_raw_object(int n, const char **keys, JsonbValue **values)
{
	StringInfoData buf;
	RawMember  *members = palloc(sizeof(RawMember) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		members[i].key = keys[i];
		members[i].keylen = strlen(keys[i]);
		members[i].value = values[i];
	}
	raw_begin(&buf);
	raw_append_object(&buf, n, members);
	pfree(members);
	return raw_finish(&buf);
}

/* [values...], as pgapp_jsonb_raw_object. */
Jsonb *
pgapp_jsonb_raw_array(int n, JsonbValue **values)
{
	StringInfoData buf;

	raw_begin(&buf);
	raw_append_array(&buf, n, values);
	return raw_finish(&buf);
}

/*
 * {key: [elems...]}, the elements (containers, jbvBinary) copied without
 * being unpacked.
 */
Jsonb *
pgapp_jsonb_object_of_array(const char *key, int n, JsonbValue **elems)
{
	StringInfoData buf;
	StringInfoData arr;
	JsonbValue	v;
	RawMember	member;

	/* the array first, then the object around it */
	raw_begin(&arr);
	raw_append_array(&arr, n, elems);
	v.type = jbvBinary;
	v.val.binary.data = (JsonbContainer *) (arr.data + VARHDRSZ);
	v.val.binary.len = arr.len - VARHDRSZ;
	member.key = key;
	member.keylen = strlen(key);
	member.value = &v;
	raw_begin(&buf);
	raw_append_object(&buf, 1, &member);
	pfree(arr.data);
	return raw_finish(&buf);
}

/*-------------------------------------------------------------------------
 *
 * changeset_read.c
 *	  The one reader of pgapp.changeset values: every function that takes a
 *	  changeset calls pgapp_cs_read() before it looks at anything inside.
 *
 * A changeset is jsonb that a caller can write by hand, so nothing in it is
 * trusted.  The reader checks every key and the JSON type of every member,
 * refuses unknown keys, and resolves what the engine relies on:
 *
 *	source		a string naming an existing table
 *	action		null, "insert" or "update"
 *	name		null or the name of a defined changeset; then source and
 *				permitted must be the definition's
 *	permitted	an array of column names of source
 *	changes		an object whose keys are permitted columns, each value of
 *				a JSON type the column can take (strings for text and enum
 *				columns, numbers for numeric ones, booleans for booleans)
 *	data		null or an object
 *	params		null or an object
 *	errors		an object of field -> non-empty array of strings
 *	valid		a boolean, and ignored: validity is recomputed as "no
 *				errors", so "valid": true next to errors is not valid
 *	required	null or an array of strings
 *	constraints	null or an array of {type, field, name, message} objects
 *
 * A bad shape is 22023 with a message naming the key; an unknown table is
 * PostgreSQL's 42P01, a source that is not a table 42809, an unknown named
 * changeset 42704.  Arrays and error lists longer than
 * pgapp.changeset_max_items are 54000.  Messages that echo the value's
 * text show at most PGA_MESSAGE_ECHO_CHARS characters of it.
 *
 * src/changesets/changeset_read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"

#include "changeset_int.h"
#include "changeset_read.h"
#include "core/error.h"
#include "core/json_util.h"

/* pgapp.changeset_max_items */

static const char *const known_keys[] = {
	"source", "action", "name", "permitted", "changes", "data", "params",
	"errors", "valid", "required", "constraints"
};

#define ECHO(s) pgapp_echo((s))
#define BUILD_HINT errhint("Build changesets with pgapp.cast() or pgapp.changeset() and pass them on unchanged.")

static void
bad_shape(const char *msg)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg_internal("%s", msg),
			BUILD_HINT);
}

static void
check_count(const char *what, int n)
{
	if (n > pgapp_changeset_max_items)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("changeset has more than %d %s", pgapp_changeset_max_items, what),
				errdetail("pgapp.changeset_max_items limits errors, permitted and required fields, and constraints."),
				errhint("A superuser can raise pgapp.changeset_max_items."));
}

/* The members of a changeset, read in one pass by check_known_key. */
typedef struct CsMembers
{
	bool		present[lengthof(known_keys)];
	JsonbValue	value[lengthof(known_keys)];
}			CsMembers;

/* Member key (a known key), or NULL; 22023 when required and absent. */
static JsonbValue *
member(CsMembers * cs, const char *key, bool required)
{
	for (int i = 0; i < lengthof(known_keys); i++)
		if (strcmp(key, known_keys[i]) == 0)
		{
			if (cs->present[i])
				return &cs->value[i];
			break;
		}
	if (required)
		bad_shape(psprintf("changeset has no \"%s\"", key));
	return NULL;
}

static JsonbContainer *
object_member(CsMembers * cs, const char *key, bool required)
{
	JsonbValue *v = member(cs, key, required);

	if (v == NULL || (!required && v->type == jbvNull))
		return NULL;
	if (!pgapp_jsonb_value_is_object(v))
		bad_shape(psprintf("changeset member \"%s\" must be a JSON object%s, not %s",
						   key, required ? "" : " or null", pgapp_jsonb_type_name(v)));
	return v->val.binary.data;
}

/* An array member (NULL when absent or null and not required). */
static JsonbValue *
array_member(CsMembers * cs, const char *key, bool required)
{
	JsonbValue *v = member(cs, key, required);

	if (v == NULL || (!required && v->type == jbvNull))
		return NULL;
	if (!pgapp_jsonb_value_is_array(v))
		bad_shape(psprintf("changeset member \"%s\" must be a JSON array%s, not %s",
						   key, required ? "" : " or null", pgapp_jsonb_type_name(v)));
	if (pgapp_jsonb_array_length(v) > pgapp_changeset_max_items)
		check_count(strcmp(key, "constraints") == 0 ? key : psprintf("%s fields", key),
					pgapp_jsonb_array_length(v));
	return v;
}

static char *
string_member(CsMembers * cs, const char *key, bool required)
{
	JsonbValue *v = member(cs, key, required);

	if (v == NULL || (!required && v->type == jbvNull))
		return NULL;
	if (v->type != jbvString)
		bad_shape(psprintf("changeset member \"%s\" must be a string%s, not %s",
						   key, required ? "" : " or null", pgapp_jsonb_type_name(v)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void
check_known_key(const char *key, int keylen, JsonbValue *value, void *arg)
{
	CsMembers  *members = arg;

	for (int i = 0; i < lengthof(known_keys); i++)
		if (strcmp(key, known_keys[i]) == 0)
		{
			members->present[i] = true;
			members->value[i] = *value;
			return;
		}
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("changeset has an unknown key \"%s\"", ECHO(key)),
			errdetail("A changeset has the keys source, action, name, permitted, changes, data, params, errors, valid, required and constraints."),
			BUILD_HINT);
}

/*
 * The table a source string names.  A string that is not a name is 22023;
 * a name of no relation 42P01; a relation that is not a table 42809.
 */
static Oid
source_relid(const char *source)
{
	char	   *raw = pstrdup(source);
	List	   *parts = NIL;
	List	   *names = NIL;
	ListCell   *lc;
	Oid			relid;
	char		kind;

	if (source[0] == '\0')
		bad_shape("changeset member \"source\" must not be empty");
	/* stringToQualifiedNameList without its error: a bad name is a bad shape */
	if (!SplitIdentifierString(raw, '.', &parts) || parts == NIL || list_length(parts) > 2)
		bad_shape(psprintf("changeset member \"source\" is not a table name: \"%s\"", ECHO(source)));
	foreach(lc, parts)
		names = lappend(names, makeString(pstrdup(lfirst(lc))));

	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_TABLE),
				errmsg("relation \"%s\" does not exist", ECHO(source)),
				errdetail("The changeset's \"source\" names it."));
	kind = get_rel_relkind(relid);
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				errcode(ERRCODE_WRONG_OBJECT_TYPE),
				errmsg("\"%s\" is not a table", ECHO(source)),
				errdetail("The changeset's \"source\" names it."));
	return relid;
}

/* The attribute number of column name of relid, or InvalidAttrNumber. */
static AttrNumber
column_attnum(Oid relid, const char *name)
{
	AttrNumber	attnum = get_attnum(relid, name);

	return attnum > 0 ? attnum : InvalidAttrNumber;
}

/*
 * "permitted": column names of the source; their attribute numbers as a
 * set.
 */
static Bitmapset *
read_permitted(CsMembers * cs, Oid relid, CsRead *out)
{
	JsonbValue *arr = array_member(cs, "permitted", true);
	int			n = pgapp_jsonb_array_length(arr);
	Bitmapset  *set = NULL;

	for (int i = 0; i < n; i++)
	{
		JsonbValue *v = pgapp_jsonb_array_get(arr, i);
		char	   *name;
		AttrNumber	attnum;

		CHECK_FOR_INTERRUPTS();
		if (v->type != jbvString)
			bad_shape(psprintf("changeset member \"permitted\" must hold strings, not %s",
							   pgapp_jsonb_type_name(v)));
		name = pnstrdup(v->val.string.val, v->val.string.len);
		attnum = column_attnum(relid, name);
		if (attnum == InvalidAttrNumber)
			bad_shape(psprintf("changeset member \"permitted\" lists \"%s\", which is not a column of \"%s\"",
							   ECHO(name), get_rel_name(relid)));
		set = bms_add_member(set, attnum);
		out->permitted = lappend(out->permitted, name);
	}
	return set;
}

/* Which JSON type a column takes in "changes" (jbvNull: any). */
static enum jbvType
column_json_type(Oid relid, AttrNumber attnum)
{
	Oid			typid;
	int32		typmod;
	Oid			collid;
	char		category;
	bool		preferred;

	get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
	typid = getBaseTypeAndTypmod(typid, &typmod);
	if (typid == JSONOID || typid == JSONBOID)
		return jbvNull;
	get_type_category_preferred(typid, &category, &preferred);
	switch (category)
	{
		case TYPCATEGORY_STRING:
		case TYPCATEGORY_ENUM:
			return jbvString;
		case TYPCATEGORY_NUMERIC:
			return jbvNumeric;
		case TYPCATEGORY_BOOLEAN:
			return jbvBool;
		default:
			return jbvNull;		/* PostgreSQL's own input checks the rest */
	}
}

typedef struct ChangesCheck
{
	Oid			relid;
	Bitmapset  *permitted;
	int			n;
} ChangesCheck;

static void
check_change(const char *key, int keylen, JsonbValue *value, void *arg)
{
	ChangesCheck *cc = (ChangesCheck *) arg;
	AttrNumber	attnum;
	enum jbvType want;

	CHECK_FOR_INTERRUPTS();
	cc->n++;
	attnum = column_attnum(cc->relid, key);
	if (attnum == InvalidAttrNumber)
		bad_shape(psprintf("changeset changes \"%s\", which is not a column of \"%s\"",
						   ECHO(key), get_rel_name(cc->relid)));
	if (!bms_is_member(attnum, cc->permitted))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset changes \"%s\", which it does not permit", ECHO(key)),
				errdetail("A changeset may change only the fields of its \"permitted\" list."),
				BUILD_HINT);
	want = column_json_type(cc->relid, attnum);
	if (want != jbvNull && value->type != jbvNull && value->type != want)
		bad_shape(psprintf("changeset change of \"%s\" must be %s or null, not %s",
						   ECHO(key),
						   want == jbvString ? "a string" : want == jbvNumeric ? "a number" : "a boolean",
						   pgapp_jsonb_type_name(value)));
}

typedef struct ErrorsCheck
{
	CsErrors   *errors;
	int			n;
} ErrorsCheck;

static void
check_field_errors(const char *key, int keylen, JsonbValue *value, void *arg)
{
	ErrorsCheck *ec = (ErrorsCheck *) arg;
	int			n = pgapp_jsonb_array_length(value);

	CHECK_FOR_INTERRUPTS();
	if (keylen == 0)
		bad_shape("changeset member \"errors\" has an empty field name");
	if (n <= 0)
		bad_shape(psprintf("errors of \"%s\" must be a non-empty JSON array of strings, not %s",
						   ECHO(key), n == 0 ? "an empty array" : pgapp_jsonb_type_name(value)));
	ec->n += n;
	check_count("errors", ec->n);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *m = pgapp_jsonb_array_get(value, i);
		CsError    *e;

		if (m->type != jbvString)
			bad_shape(psprintf("errors of \"%s\" must be strings, not %s",
							   ECHO(key), pgapp_jsonb_type_name(m)));
		e = palloc(sizeof(CsError));
		e->field = pstrdup(key);
		e->message = pnstrdup(m->val.string.val, m->val.string.len);
		ec->errors->existing = lappend(ec->errors->existing, e);
	}
}

static void
check_strings(JsonbValue *arr, const char *key)
{
	int			n = pgapp_jsonb_array_length(arr);

	for (int i = 0; i < n; i++)
	{
		JsonbValue *v = pgapp_jsonb_array_get(arr, i);

		if (v->type != jbvString)
			bad_shape(psprintf("changeset member \"%s\" must hold strings, not %s",
							   key, pgapp_jsonb_type_name(v)));
	}
}

typedef struct ConstraintCheck
{
	int			index;
	bool		has_type;
	bool		has_field;
	bool		has_name;
	bool		is_check;
	Oid			relid;
} ConstraintCheck;

static void
check_constraint_key(const char *key, int keylen, JsonbValue *value, void *arg)
{
	ConstraintCheck *cc = (ConstraintCheck *) arg;

	if (strcmp(key, "type") == 0)
	{
		char	   *t = value->type == jbvString ? pgapp_jsonb_value_cstring(value) : NULL;

		if (t == NULL || (strcmp(t, "unique") != 0 && strcmp(t, "foreign_key") != 0 &&
						  strcmp(t, "check") != 0 && strcmp(t, "exclusion") != 0))
			bad_shape(psprintf("constraint %d of the changeset must have a \"type\" of unique, foreign_key, check or exclusion",
							   cc->index));
		cc->has_type = true;
		cc->is_check = strcmp(t, "check") == 0;
	}
	else if (strcmp(key, "field") == 0)
	{
		char	   *f = value->type == jbvString ? pgapp_jsonb_value_cstring(value) : NULL;

		if (f == NULL)
			bad_shape(psprintf("constraint %d of the changeset must have a string \"field\"", cc->index));
		if (column_attnum(cc->relid, f) == InvalidAttrNumber)
			bad_shape(psprintf("constraint %d of the changeset names \"%s\", which is not a column of \"%s\"",
							   cc->index, ECHO(f), get_rel_name(cc->relid)));
		cc->has_field = true;
	}
	else if (strcmp(key, "name") == 0 || strcmp(key, "message") == 0)
	{
		if (value->type != jbvString && value->type != jbvNull)
			bad_shape(psprintf("\"%s\" of constraint %d of the changeset must be a string or null, not %s",
							   key, cc->index, pgapp_jsonb_type_name(value)));
		if (strcmp(key, "name") == 0)
			cc->has_name = value->type == jbvString;
	}
	else
		bad_shape(psprintf("constraint %d of the changeset has an unknown key \"%s\"", cc->index, ECHO(key)));
}

static void
check_constraints(JsonbValue *arr, Oid relid)
{
	int			n = pgapp_jsonb_array_length(arr);

	for (int i = 0; i < n; i++)
	{
		JsonbValue *v = pgapp_jsonb_array_get(arr, i);
		ConstraintCheck cc = {0};

		CHECK_FOR_INTERRUPTS();
		cc.index = i + 1;
		cc.relid = relid;
		if (!pgapp_jsonb_value_is_object(v))
			bad_shape(psprintf("constraint %d of the changeset must be a JSON object, not %s",
							   i + 1, pgapp_jsonb_type_name(v)));
		pgapp_jsonb_foreach(v->val.binary.data, check_constraint_key, &cc);
		if (!cc.has_type || !cc.has_field)
			bad_shape(psprintf("constraint %d of the changeset needs a \"type\" and a \"field\"", i + 1));
		if (cc.is_check && !cc.has_name)
			bad_shape(psprintf("check constraint %d of the changeset needs a \"name\"", i + 1));
	}
}

/*
 * A named changeset must carry its definition's source and permitted list,
 * so that a value written by hand cannot widen what the definition permits.
 */
static void
check_definition(const char *name, Oid relid, Bitmapset *permitted)
{
	Oid			def_relid;
	ArrayType  *def_permitted;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Bitmapset  *def_set = NULL;

	if (strlen(name) >= NAMEDATALEN)
		bad_shape(psprintf("changeset member \"name\" is too long: \"%s\"", ECHO(name)));
	pgapp_cs_definition(name, &def_relid, &def_permitted);
	if (def_relid != relid)
		bad_shape(psprintf("changeset \"%s\" is defined for table \"%s\", not \"%s\"",
						   name, get_rel_name(def_relid), get_rel_name(relid)));
	deconstruct_array(def_permitted, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			def_set = bms_add_member(def_set, column_attnum(relid, TextDatumGetCString(elems[i])));
	if (!bms_equal(def_set, permitted))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("changeset member \"permitted\" is not that of changeset \"%s\"", name),
				errdetail("A named changeset permits exactly the fields of its definition."),
				BUILD_HINT);
}

/*
 * Read and check a changeset; fill out.  Raises on any bad shape.
 */
void
pgapp_cs_read(Jsonb *cs, CsRead *out)
{
	JsonbValue *v;
	char	   *source;
	char	   *action;
	Bitmapset  *permitted;
	ChangesCheck cc = {0};
	ErrorsCheck ec = {0};
	CsMembers	mem = {0};

	memset(out, 0, sizeof(CsRead));
	out->cs = cs;
	if (!pgapp_jsonb_is_object(cs))
		bad_shape("changeset must be a JSON object");
	pgapp_jsonb_foreach(&cs->root, check_known_key, &mem);

	source = string_member(&mem, "source", true);
	out->relid = source_relid(source);

	action = string_member(&mem, "action", false);
	if (action != NULL && strcmp(action, "insert") != 0 && strcmp(action, "update") != 0)
		bad_shape(psprintf("changeset member \"action\" must be \"insert\", \"update\" or null, not \"%s\"",
						   ECHO(action)));

	permitted = read_permitted(&mem, out->relid, out);

	out->name = string_member(&mem, "name", false);
	if (out->name != NULL)
		check_definition(out->name, out->relid, permitted);

	out->changes = object_member(&mem, "changes", true);
	cc.relid = out->relid;
	cc.permitted = permitted;
	pgapp_jsonb_foreach(out->changes, check_change, &cc);

	out->data = object_member(&mem, "data", false);
	out->params = object_member(&mem, "params", false);

	ec.errors = &out->errors;
	pgapp_jsonb_foreach(object_member(&mem, "errors", true), check_field_errors, &ec);

	v = member(&mem, "valid", true);
	if (v->type != jbvBool)
		bad_shape(psprintf("changeset member \"valid\" must be a boolean, not %s", pgapp_jsonb_type_name(v)));
	out->stated_valid = v->val.boolean;
	out->valid = (out->errors.existing == NIL);

	if ((v = array_member(&mem, "required", false)) != NULL)
		check_strings(v, "required");
	if ((v = array_member(&mem, "constraints", false)) != NULL)
	{
		/* v points into mem, which ends here */
		out->constraints = palloc(sizeof(JsonbValue));
		*out->constraints = *v;
		check_constraints(out->constraints, out->relid);
	}
}

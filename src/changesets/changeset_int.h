/*-------------------------------------------------------------------------
 *
 * changeset_int.h
 *	  Ecto-style changesets: rules, values, errors, and the two ways values
 *	  reach the validators (a changeset's JSON, or a trigger's tuples).
 *
 * What the files of src/changesets/ share; no file outside the folder
 * includes it (the reader of changeset values has its own, changeset_read.h).
 * The files call downwards only: engine, errors, rules, validate, cast,
 * def, read, then value and write.
 *
 * src/changesets/changeset_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_CHANGESET_INT_H
#define PGAPP_CHANGESET_INT_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "core/json_util.h"
#include "core/settings.h"
#include "core/util.h"
#include "machines/machine.h"

/* What a rule does. */
typedef enum CsRuleKind
{
	CS_REQUIRED,
	CS_LENGTH,
	CS_NUMBER,
	CS_INCLUSION,
	CS_EXCLUSION,
	CS_FORMAT,
	CS_FUTURE,
	CS_TRANSITION,
	CS_CONFIRMATION,
	CS_ACCEPTANCE,
	/* constraint mappings: used by pgapp.insert/update, not by validation */
	CS_UNIQUE_CONSTRAINT,
	CS_FOREIGN_KEY_CONSTRAINT,
	CS_CHECK_CONSTRAINT,
	CS_EXCLUSION_CONSTRAINT
} CsRuleKind;

#define CS_IS_CONSTRAINT(kind) ((kind) >= CS_UNIQUE_CONSTRAINT)

/* Comparison bounds of validate_number, in Ecto's order. */
typedef enum CsNumberBound
{
	CS_LESS_THAN,
	CS_GREATER_THAN,
	CS_LESS_THAN_OR_EQUAL_TO,
	CS_GREATER_THAN_OR_EQUAL_TO,
	CS_EQUAL_TO,
	CS_NUMBER_BOUNDS
} CsNumberBound;

/* What validate_length counts in a string (Ecto's count: option). */
typedef enum CsLengthCount
{
	CS_COUNT_GRAPHEMES,			/* Ecto's default: user-perceived characters */
	CS_COUNT_CODEPOINTS,
	CS_COUNT_BYTES
} CsLengthCount;

/* One compiled rule. */
typedef struct CsRule
{
	CsRuleKind	kind;
	int			nfields;		/* > 1 only for CS_REQUIRED */
	PgappColumn *fields;
	char	   *message;		/* caller's message, or NULL for the default */

	/* CS_LENGTH */
	CsLengthCount count;		/* what a string's length counts */
	int32		min;
	int32		max;
	int32		is;
	bool		has_min;
	bool		has_max;
	bool		has_is;

	/* CS_NUMBER */
	Numeric		bounds[CS_NUMBER_BOUNDS];	/* NULL where not given */

	/* CS_INCLUSION / CS_EXCLUSION: the list, and enum OIDs for enum columns */
	Jsonb	   *list;
	int			nlist;
	Oid		   *enum_oids;		/* NULL unless the field is an enum column */

	/* CS_FORMAT */
	text	   *pattern;

	/* CS_TRANSITION */
	char	   *machine;

	/* CS_CONFIRMATION: a missing <field>_confirmation param is an error */
	bool		required;

	/* constraints: constraint name or NULL for the default names */
	char	   *constraint_name;
} CsRule;

/*
 * Where a validator reads values: the JSON of a changeset (changes, data,
 * params) or a trigger's NEW/OLD tuples.
 */
typedef struct CsInput
{
	/* JSON changeset */
	JsonbContainer *changes;
	JsonbContainer *data;		/* NULL when the changeset has no data */
	JsonbContainer *params;		/* NULL when there are no params */

	List	   *drop_changes;	/* char *: fields validate_required drops */

	/* trigger */
	HeapTuple	newtup;
	HeapTuple	oldtup;			/* NULL on INSERT */
	TupleDesc	tupdesc;
} CsInput;

/* Errors collected while validating, oldest first. */
typedef struct CsError
{
	char	   *field;
	char	   *message;
} CsError;

typedef struct CsErrors
{
	List	   *existing;		/* CsError from the changeset already, oldest
								 * first */
	List	   *added;			/* CsError added now, oldest first */
} CsErrors;

static inline bool
pgapp_cs_field_is_text(const PgappColumn *f)
{
	return f->category == 'S';	/* TYPCATEGORY_STRING */
}

/* changeset_rules.c */
extern void pgapp_cs_check_rule(Oid relid, CsRule *rule);
extern CsRule *pgapp_cs_rule_from_json(Oid relid, JsonbValue *rule, int index);
extern const char *pgapp_cs_constraint_type(CsRuleKind kind);
extern CsLengthCount pgapp_cs_length_count(const char *name, const char *rule_desc);

/* changeset_engine.c: a value read for a validator */
typedef struct CsValue
{
	bool		isnull;
	/* from JSON */
	JsonbValue *jv;
	/* from a tuple */
	bool		from_tuple;
	Datum		datum;
	Oid			typid;
} CsValue;

extern bool pgapp_cs_get_change(CsInput *in, const PgappColumn *f, CsValue *v);
extern void pgapp_cs_get_field(CsInput *in, const PgappColumn *f, CsValue *v);
extern void pgapp_cs_get_old(CsInput *in, const PgappColumn *f, CsValue *v);
extern char *pgapp_cs_value_text(const CsValue *v, int *len);
extern Numeric pgapp_cs_value_numeric(const CsValue *v);
extern int	pgapp_cs_value_count(const CsValue *v);
extern bool pgapp_cs_value_blank(const CsValue *v, const PgappColumn *f);
extern int	pgapp_cs_trim(const char *s, int len, const char **start);
extern bool pgapp_cs_value_did_not_fit(PgappSubxact *sx);
extern bool pgapp_cs_try_input(Oid typid, int32 typmod, const char *str, Datum *out);
extern char *pgapp_cs_source_name(Oid relid);

/* changeset_validate.c */
extern void pgapp_cs_apply_rule(const CsRule *rule, CsInput *in, CsErrors *errors);

/* changeset_errors.c */
extern bool pgapp_cs_has_error(CsErrors *errors, const char *field);
extern void pgapp_cs_add_error(CsErrors *errors, const char *field, const char *message);
extern void pgapp_cs_add_errors_json(PgappJsonbBuilder *b, CsErrors *errors);
extern Jsonb *pgapp_cs_errors_body(CsErrors *errors);
extern char *pgapp_cs_interpolate(const char *msg, int n, const char *const *keys,
								  const char *const *values);
extern Jsonb *pgapp_cs_report(Jsonb *errors_body, Oid relid, const char *first_field, bool force_raise);
extern const char *pgapp_cs_first_error_field(CsErrors *errors);
extern void pgapp_cs_check_error_count(CsErrors *errors);

/* changeset_cast.c */
extern void pgapp_cs_add_changes_json(PgappJsonbBuilder *b, JsonbContainer *changes, List *drop);
extern void pgapp_cs_add_constraint_json(PgappJsonbBuilder *b, const CsRule *rule);
extern Jsonb *pgapp_cs_cast(Oid relid, Jsonb *data, Jsonb *params, ArrayType *permitted,
							List *rules, const char *action, const char *name);
extern bool pgapp_cs_change_fits(Oid relid, const char *name, JsonbValue *value);

/* changeset_def.c */
extern void pgapp_cs_definition(const char *name, Oid *relid, ArrayType **permitted);

#endif							/* PGAPP_CHANGESET_INT_H */

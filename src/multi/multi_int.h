/*-------------------------------------------------------------------------
 *
 * multi_int.h
 *	  What the files of src/multi/ share: a multi value read into steps,
 *	  references between steps, and the step runners.
 *
 * src/multi/multi_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_MULTI_INT_H
#define PGAPP_MULTI_INT_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "changesets/changeset.h"

/*
 * At most this many steps in one multi, counting those a merge adds when it
 * runs (54000 beyond it): a multi is built in memory and run in one
 * subtransaction, so its size is bounded like any other argument.
 */
#define MULTI_MAX_STEPS 1000

/* The longest step name (the length of an identifier). */
#define MULTI_MAX_NAME 63

typedef enum MultiOp
{
	MULTI_INSERT,
	MULTI_UPDATE,
	MULTI_DELETE,
	MULTI_INSERT_ALL,
	MULTI_UPDATE_ALL,
	MULTI_RUN,
	MULTI_PUT,
	MULTI_MERGE
} MultiOp;

/*
 * One step, as multi_read checked it.  step is the step's object; the
 * other fields point into it.  A merge has no name (name is NULL).
 */
typedef struct MultiStep
{
	char	   *name;
	MultiOp		op;
	JsonbValue *step;			/* the step object (jbvBinary) */
	JsonbValue *arg;			/* changeset, id, rows, set, args or value */
	JsonbValue *refs;			/* insert, update: {field: reference}, or NULL */
	Oid			relid;			/* delete, insert_all */
	Jsonb	   *query;			/* update_all */
	Oid			fn;				/* run, merge */
} MultiStep;

/* A step's result, by name, in the order the steps ran. */
typedef struct MultiResult
{
	char	   *name;
	Jsonb	   *value;
} MultiResult;

/* A failed step: what transact reports. */
typedef struct MultiFailure
{
	int			status;
	Jsonb	   *error;
	PgappCsWrite *write;		/* the running step's changeset write, whose
								 * raised error maps to field errors */
} MultiFailure;

/* multi_read.c */
extern const char *pgapp_multi_op_name(MultiOp op);
extern List *pgapp_multi_read(Jsonb *m, List *known_names);
extern List *pgapp_multi_quick_names(Jsonb *m);
extern MultiStep *pgapp_multi_read_step(JsonbValue *step, List *steps, List *known_names, int index);
extern Jsonb *pgapp_multi_arg(FunctionCallInfo fcinfo, int n);
extern void pgapp_multi_check_name(const char *name, List *steps, List *known_names);
extern List *pgapp_multi_step_names(List *steps);
extern Oid	pgapp_multi_function(const char *signature, bool merge);
extern void pgapp_multi_check_function(Oid fn, bool merge);

/* multi_ref.c */
extern bool pgapp_multi_error_is_ours;
extern bool pgapp_multi_is_ref(JsonbValue *v, char **path);
extern bool pgapp_multi_has_refs(JsonbValue *v);
extern void pgapp_multi_check_refs(JsonbValue *v, List *names, const char *step);
extern Jsonb *pgapp_multi_resolve(JsonbValue *v, List *results);
extern JsonbValue *pgapp_multi_root_value(Jsonb *jb);
extern Jsonb *pgapp_multi_changes(List *results);

/* multi_steps.c */
extern Jsonb *pgapp_multi_run_step(MultiStep *s, List *results, MultiFailure *fail);

#endif							/* PGAPP_MULTI_INT_H */

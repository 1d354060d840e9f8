/*-------------------------------------------------------------------------
 *
 * changeset.h
 *	  What the rest of pgapp sees of changesets: the module entry, and the
 *	  changeset writes and helpers Multi (src/multi/) runs.
 *
 * The changesets' own declarations are in changeset_int.h, which no file
 * outside this folder includes.
 *
 * src/changesets/changeset.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_CHANGESET_H
#define PGAPP_CHANGESET_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "core/module.h"

extern const PgappModule pgapp_changesets_module;

/* pgapp.insert(cs) and pgapp.update(cs) (changeset_write.c), for Multi */
extern Datum pgapp_insert(PG_FUNCTION_ARGS);
extern Datum pgapp_update(PG_FUNCTION_ARGS);

/* changeset_multi.c: what Multi uses */
extern void pgapp_changeset_check(Jsonb *cs);
extern Jsonb *pgapp_changeset_put_changes(Jsonb *cs, List *fields, List *values,
										  char **bad_field);

#endif							/* PGAPP_CHANGESET_H */

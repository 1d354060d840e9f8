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

#include "nodes/pg_list.h"
#include "utils/elog.h"
#include "utils/jsonb.h"

#include "core/module.h"

extern const PgappModule pgapp_changesets_module;

/*
 * pgapp.insert(cs) and pgapp.update(cs) for Multi (changeset_write.c): the
 * row; an invalid changeset, a mapped constraint or a missing row is raised
 * (PT422, PT404) whatever pgapp.error_mode says.
 */
/* a changeset write's state, kept by Multi to map the write's error */
typedef struct PgappCsWrite PgappCsWrite;

extern Jsonb *pgapp_changeset_insert_unguarded(Jsonb *cs, PgappCsWrite **write);
extern Jsonb *pgapp_changeset_update_unguarded(Jsonb *cs, PgappCsWrite **write);
extern Jsonb *pgapp_changeset_write_errors(PgappCsWrite *write, ErrorData *edata);

/* changeset_multi.c: what Multi uses */
extern void pgapp_changeset_check(Jsonb *cs);
extern Jsonb *pgapp_changeset_put_changes(Jsonb *cs, List *fields, List *values,
										  char **bad_field);

#endif							/* PGAPP_CHANGESET_H */

/*-------------------------------------------------------------------------
 *
 * changeset.h
 *	  What the rest of pgapp sees of changesets: the module entry.
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

#include "core/module.h"

extern const PgappModule pgapp_changesets_module;

#endif							/* PGAPP_CHANGESET_H */

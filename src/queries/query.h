/*-------------------------------------------------------------------------
 *
 * query.h
 *	  Composable queries: what pgapp.c needs (the module entry).
 *
 * query_int.h is what the files of src/queries/ share.
 *
 * src/queries/query.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_QUERY_H
#define PGAPP_QUERY_H

#include "core/module.h"

extern const PgappModule pgapp_queries_module;

#endif							/* PGAPP_QUERY_H */

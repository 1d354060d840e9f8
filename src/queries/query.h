/*-------------------------------------------------------------------------
 *
 * query.h
 *	  Composable queries (query.c).
 *
 * src/query.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_QUERY_H
#define PGAPP_QUERY_H

#include "core/module.h"

/* pgapp.max_page_size */

/* pgapp.query_cache_memory: kB of kept plans per backend */

extern const PgappModule pgapp_queries_module;

#endif							/* PGAPP_QUERY_H */

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

/* pgapp.max_page_size */
extern int	pgapp_max_page_size;

/* pgapp.query_cache_memory: kB of kept plans per backend */
extern int	pgapp_query_cache_memory;

extern void pgapp_query_init(void);

#endif							/* PGAPP_QUERY_H */

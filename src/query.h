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

extern void pgapp_query_init(void);

#endif							/* PGAPP_QUERY_H */

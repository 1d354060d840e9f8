/*-------------------------------------------------------------------------
 *
 * pgapp.h
 *	  The version of the pgapp library.
 *
 * Everything else lives in core/ (settings, module registry, helpers) and
 * in one folder per feature; see README.md's layout section.
 *
 * src/pgapp.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_H
#define PGAPP_H

#define PGAPP_VERSION "0.3.0"

#endif							/* PGAPP_H */

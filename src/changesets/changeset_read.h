/*-------------------------------------------------------------------------
 *
 * changeset_read.h
 *	  The one checking reader of changeset values (changeset_read.c), for
 *	  the files that take a changeset as an argument.
 *
 * src/changesets/changeset_read.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_CHANGESET_READ_H
#define PGAPP_CHANGESET_READ_H

#include "changeset_int.h"

/*
 * A changeset value as pgapp_cs_read() checked it (changeset_read.c).
 */
typedef struct CsRead
{
	Jsonb	   *cs;
	Oid			relid;			/* "source" */
	char	   *name;			/* "name": a named changeset, or NULL */
	List	   *permitted;		/* char *, "permitted" */
	JsonbContainer *changes;
	JsonbContainer *data;		/* NULL: null or absent */
	JsonbContainer *params;		/* NULL: null or absent */
	JsonbValue *constraints;	/* array, or NULL */
	CsErrors	errors;			/* "errors" as errors.existing */
	bool		stated_valid;	/* what "valid" says */
	bool		valid;			/* recomputed: no errors */
} CsRead;

/* changeset_read.c */
extern void pgapp_cs_read(Jsonb *cs, CsRead *out);

#endif							/* PGAPP_CHANGESET_READ_H */

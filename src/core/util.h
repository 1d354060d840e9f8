/*-------------------------------------------------------------------------
 *
 * util.h
 *	  Small helpers every feature uses: internal subtransactions, running
 *	  SPI as the extension's owner, argument checks, the shared-memory
 *	  check, the list of databases.
 *
 * src/core/util.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_UTIL_H
#define PGAPP_UTIL_H

#include "access/attnum.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"

/*
 * Internal subtransactions, as PL/pgSQL's EXCEPTION blocks use them: run a
 * piece of work that may fail without losing the caller's transaction.
 *
 *	PgappSubxact sx;
 *	pgapp_subxact_begin(&sx);
 *	PG_TRY();
 *	{ ...work...; pgapp_subxact_commit(&sx); }
 *	PG_CATCH();
 *	{ ErrorData *e = pgapp_subxact_abort(&sx); ... }
 *	PG_END_TRY();
 */
typedef struct PgappSubxact
{
	MemoryContext oldcontext;
	ResourceOwner oldowner;
} PgappSubxact;

extern void pgapp_subxact_begin(PgappSubxact *sx);
extern void pgapp_subxact_commit(PgappSubxact *sx);
extern struct ErrorData *pgapp_subxact_abort(PgappSubxact *sx);

/*
 * Run SPI as the owner of the pgapp schema (like RI triggers run as the
 * table owner), so that definitions and logs are read and written with the
 * extension's rights, whoever triggered the work.
 */
typedef struct PgappOwnerSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
} PgappOwnerSwitch;

extern void pgapp_become_owner(PgappOwnerSwitch *sw);
extern void pgapp_spi_select_as_owner(const char *sql, const char *name);
extern int	pgapp_spi_execute_as_owner(const char *sql, int nargs, Oid *argtypes,
									   Datum *args, const char *nulls);
extern void pgapp_restore_user(PgappOwnerSwitch *sw);

/*
 * SPI_execute_with_args with the statement's plan prepared once per backend
 * and kept (spi_cache.c): for the statements pgapp builds from catalog
 * names, which repeat.  The caller is connected to SPI.
 */
extern int	pgapp_spi_execute_cached(const char *sql, int nargs, Oid *argtypes,
									 Datum *args, const char *nulls, bool read_only,
									 long count);
extern Oid	pgapp_schema_oid(void);

/* Argument n as a C string; 22004 naming what when it is NULL. */
extern char *pgapp_arg_cstring(FunctionCallInfo fcinfo, int n, const char *what);

/*
 * Raise ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE unless shared memory of the
 * named module is attached; "what" names the feature in the message.
 */
extern void pgapp_require_shmem(const void *shared, const char *what);

/*
 * The oids of the databases that accept connections and are not templates
 * (and whose name passes allowed, unless NULL), read from pg_database in a
 * transaction of its own (for processes connected to no database).
 */
extern List *pgapp_list_databases(bool (*allowed) (const char *dbname));

/*
 * A column of a table, resolved by name: its declared type, and the base
 * type of a domain with its typmod and category (what validators and
 * filters compare against).
 */
typedef struct PgappColumn
{
	char	   *name;
	AttrNumber	attnum;			/* InvalidAttrNumber: not a column (virtual) */
	Oid			typid;			/* the column's declared type */
	Oid			basetype;		/* typid with domains resolved */
	int32		typmod;			/* of basetype */
	char		category;		/* pg_type.typcategory of basetype */
	bool		is_array;
} PgappColumn;

/*
 * Resolve column name of relation relid into *col.  An empty name is 22023;
 * an unknown (or system) column is 42703 with hint (may be NULL), unless
 * allow_virtual, which gives attnum InvalidAttrNumber instead.
 */
extern void pgapp_resolve_column(Oid relid, const char *name, bool allow_virtual,
								 const char *hint, PgappColumn *col);

/* "schema"."name" of a relation, quoted as needed. */
extern char *pgapp_qualified_relname(Oid relid);
extern void pgapp_lock_existing_relation(Oid relid);

/* The primary key columns of relid (char *), NIL when it has none. */
extern List *pgapp_primary_key_columns(Oid relid);

/* text parsed as jsonb, or NULL when it is not JSON. */
extern Jsonb *pgapp_jsonb_parse_or_null(const char *text);

#endif							/* PGAPP_UTIL_H */

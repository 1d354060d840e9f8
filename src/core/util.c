/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Small helpers every feature uses (see util.h).
 *
 * src/core/util.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "core/error.h"
#include "core/util.h"

void
pgapp_subxact_begin(PgappSubxact *sx)
{
	sx->oldcontext = CurrentMemoryContext;
	sx->oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	/* work in the caller's memory context, not the subtransaction's */
	MemoryContextSwitchTo(sx->oldcontext);
}

void
pgapp_subxact_commit(PgappSubxact *sx)
{
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
}

/*
 * Call from PG_CATCH: returns the error (in the caller's context) and rolls
 * the subtransaction back.
 */
ErrorData *
pgapp_subxact_abort(PgappSubxact *sx)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(sx->oldcontext);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sx->oldcontext);
	CurrentResourceOwner = sx->oldowner;
	return edata;
}

Oid
pgapp_schema_oid(void)
{
	return get_namespace_oid("pgapp", false);
}

void
pgapp_become_owner(PgappOwnerSwitch *sw)
{
	Oid			owner;
	HeapTuple	tup;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(pgapp_schema_oid()));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for schema pgapp");
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&sw->saved_userid, &sw->saved_sec_context);
	SetUserIdAndSecContext(owner, sw->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
pgapp_restore_user(PgappOwnerSwitch *sw)
{
	SetUserIdAndSecContext(sw->saved_userid, sw->saved_sec_context);
}

/*
 * Run a read-only query with $1 = name (text) as the schema owner; the
 * caller is connected to SPI and reads SPI_tuptable.  Used to load
 * definitions whoever fires the trigger that needs them.
 */
void
pgapp_spi_select_as_owner(const char *sql, const char *name)
{
	PgappOwnerSwitch sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;

	args[0] = CStringGetTextDatum(name);
	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 1);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/*
 * Run a statement that writes pgapp's own tables as the schema owner; the
 * caller is connected to SPI.  The definition tables grant no write to
 * anyone else, so a definition changes only through a function that checked
 * the caller (ownership of the table it describes) and validated the input
 * first, as the caller.  Returns SPI's result code.
 */
int
pgapp_spi_execute_as_owner(const char *sql, int nargs, Oid *argtypes, Datum *args,
						   const char *nulls)
{
	PgappOwnerSwitch sw;
	int			ret;

	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, argtypes, args, nulls, false, 0);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	return ret;
}

char *
pgapp_arg_cstring(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("%s must not be null", what));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * Refuse to run a feature whose shared memory is not attached.
 */
void
pgapp_require_shmem(const void *shared, const char *what)
{
	if (shared != NULL)
		return;
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("%s requires pgapp to be loaded via \"shared_preload_libraries\"", what),
			errhint("Add pgapp to \"shared_preload_libraries\" in postgresql.conf and restart the server."));
}

List *
pgapp_list_databases(bool (*allowed) (const char *dbname))
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate &&
			(allowed == NULL || allowed(NameStr(db->datname))))
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

void
pgapp_resolve_column(Oid relid, const char *name, bool allow_virtual,
					 const char *hint, PgappColumn *col)
{
	Oid			collid;
	bool		preferred;

	if (name == NULL || name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("field name must not be empty"));

	memset(col, 0, sizeof(PgappColumn));
	col->name = pstrdup(name);
	col->attnum = get_attnum(relid, name);
	if (col->attnum == InvalidAttrNumber || col->attnum < 0)
	{
		col->attnum = InvalidAttrNumber;
		if (allow_virtual)
			return;
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_COLUMN),
				errmsg("column \"%s\" of relation \"%s\" does not exist",
					   pgapp_echo(name), get_rel_name(relid)),
				hint ? errhint("%s", hint) : 0);
	}
	get_atttypetypmodcoll(relid, col->attnum, &col->typid, &col->typmod, &collid);
	col->basetype = getBaseTypeAndTypmod(col->typid, &col->typmod);
	get_type_category_preferred(col->basetype, &col->category, &preferred);
	col->is_array = (col->category == TYPCATEGORY_ARRAY);
}

char *
pgapp_qualified_relname(Oid relid)
{
	char	   *name = get_rel_name(relid);
	char	   *nsp = name ? get_namespace_name(get_rel_namespace(relid)) : NULL;

	if (name == NULL || nsp == NULL)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_TABLE),
				errmsg("relation with OID %u does not exist", relid),
				errdetail("It was dropped after it was named."));
	return quote_qualified_identifier(nsp, name);
}

/*
 * Lock relid as a write will (RowExclusiveLock), then check that it still
 * exists: a table named earlier (a multi step's) may have been dropped
 * since, by an earlier step or another session.  42P01 when it is gone.
 */
void
pgapp_lock_existing_relation(Oid relid)
{
	LockRelationOid(relid, RowExclusiveLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_TABLE),
				errmsg("relation with OID %u does not exist", relid),
				errdetail("It was dropped after it was named."));
}

/*
 * The primary key columns of relid (char *, in key order of the attribute
 * bitmap), NIL when it has none.
 */
List *
pgapp_primary_key_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Bitmapset  *pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	List	   *cols = NIL;
	int			attr = -1;

	while ((attr = bms_next_member(pk, attr)) >= 0)
		cols = lappend(cols,
					   pstrdup(NameStr(TupleDescAttr(RelationGetDescr(rel),
													 attr + FirstLowInvalidHeapAttributeNumber - 1)->attname)));
	table_close(rel, AccessShareLock);
	return cols;
}

/*
 * text parsed as jsonb, or NULL when it is not JSON (parsed in a
 * subtransaction, so a bad text costs no error).
 */
Jsonb *
pgapp_jsonb_parse_or_null(const char *text)
{
	Jsonb	   *volatile jb = NULL;
	PgappSubxact sx;

	pgapp_subxact_begin(&sx);
	PG_TRY();
	{
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
		pgapp_subxact_commit(&sx);
	}
	PG_CATCH();
	{
		ErrorData  *edata = pgapp_subxact_abort(&sx);

		/* only "not JSON" is an answer; a cancel or out of memory is not */
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			ReThrowError(edata);
		FreeErrorData(edata);
		jb = NULL;
	}
	PG_END_TRY();
	return jb;
}

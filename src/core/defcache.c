/*-------------------------------------------------------------------------
 *
 * defcache.c
 *	  The loader of named definitions (machines, changesets): a hash in
 *	  CacheMemoryContext per kind, filled on first use and after an
 *	  invalidation.
 *
 * A definition is read with the extension owner's rights (the caller may
 * not read the table), its columns are copied out of SPI, and the kind's
 * compile callback builds the entry in a memory context of its own.  Only
 * a definition that compiles enters the cache; a refused one leaves the
 * cache as it was.  A statement trigger on each definition table
 * (pgapp._definitions_changed, below) sends a relcache invalidation for the
 * table, and the feature's relcache_invalidate callback passes it on to
 * pgapp_defcache_invalidate, so every backend compiles a changed definition
 * again at its next use (the defining session at its next command, the
 * others after the change commits).
 *
 * src/core/defcache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "core/defcache.h"
#include "core/error.h"
#include "core/util.h"

void
pgapp_check_definition_name(const char *name, const char *what)
{
	if (name[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s name must not be empty", what));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				errcode(ERRCODE_NAME_TOO_LONG),
				errmsg("%s name \"%s\" is too long", what, pgapp_echo(name)),
				errdetail("Names are at most %d bytes.", NAMEDATALEN - 1));
}

/*
 * Read the definition called name; its columns, copied (and detoasted) into
 * the caller's memory context, go to *values and *nulls.  False when there
 * is no such definition.
 */
static bool
read_definition(PgappDefCache *cache, const char *name, Datum **values, bool **nulls)
{
	MemoryContext callercxt = CurrentMemoryContext;
	bool		exists;
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_spi_select_as_owner(cache->kind->select_sql, name);
	exists = (SPI_processed == 1);
	if (exists)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		HeapTuple	row = SPI_tuptable->vals[0];
		MemoryContext oldcxt = MemoryContextSwitchTo(callercxt);

		*values = palloc0(sizeof(Datum) * desc->natts);
		*nulls = palloc0(sizeof(bool) * desc->natts);
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			Datum		d = SPI_getbinval(row, desc, i + 1, &(*nulls)[i]);

			if ((*nulls)[i])
				continue;
			if (att->attlen == -1)
				(*values)[i] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
			else
				(*values)[i] = datumCopy(d, att->attbyval, att->attlen);
		}
		MemoryContextSwitchTo(oldcxt);
	}
	if (!OidIsValid(cache->table_oid))
		cache->table_oid = get_relname_relid(cache->kind->table, pgapp_schema_oid());
	SPI_finish();
	return exists;
}

/*
 * Compile the definition into a new context and enter it into the cache
 * (replacing a stale entry of the same name).
 */
static PgappDefEntry *
compile_entry(PgappDefCache *cache, const char *key, Datum *values, bool *nulls)
{
	const PgappDefKind *kind = cache->kind;
	PgappDefEntry *scratch = palloc0(kind->entrysize);
	PgappDefEntry *entry;
	MemoryContext mcxt;
	MemoryContext oldcxt;
	bool		found;

	mcxt = AllocSetContextCreate(CacheMemoryContext, "pgapp definition",
								 ALLOCSET_SMALL_SIZES);
	MemoryContextSetIdentifier(mcxt, kind->what);
	oldcxt = MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		kind->compile(scratch, key, values, nulls);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(mcxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	entry = hash_search(cache->hash, key, HASH_ENTER, &found);
	if (found && entry->mcxt != NULL)
		MemoryContextDelete(entry->mcxt);
	memcpy((char *) entry + sizeof(PgappDefEntry), (char *) scratch + sizeof(PgappDefEntry),
		   kind->entrysize - sizeof(PgappDefEntry));
	entry->mcxt = mcxt;
	entry->valid = true;
	pfree(scratch);
	return entry;
}

PgappDefEntry *
pgapp_defcache_get(PgappDefCache *cache, const char *name, bool missing_ok)
{
	const PgappDefKind *kind = cache->kind;
	char		key[NAMEDATALEN] = {0};
	PgappDefEntry *entry;
	bool		found;
	Datum	   *values = NULL;
	bool	   *nulls = NULL;

	pgapp_check_definition_name(name, kind->what);
	if (cache->hash == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = kind->entrysize;
		ctl.hcxt = CacheMemoryContext;
		cache->hash = hash_create(psprintf("pgapp %s definitions", kind->what), 16, &ctl,
								  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	strlcpy(key, name, NAMEDATALEN);
	entry = hash_search(cache->hash, key, HASH_FIND, &found);
	if (found && entry->valid)
		return entry;

	if (!read_definition(cache, name, &values, &nulls))
	{
		if (found)
		{
			if (entry->mcxt != NULL)
				MemoryContextDelete(entry->mcxt);
			hash_search(cache->hash, key, HASH_REMOVE, NULL);
		}
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("%s \"%s\" does not exist", kind->what, pgapp_echo(name)),
				kind->hint ? errhint("%s", kind->hint) : 0);
	}
	return compile_entry(cache, key, values, nulls);
}

void
pgapp_defcache_invalidate(PgappDefCache *cache, Oid relid)
{
	HASH_SEQ_STATUS status;
	PgappDefEntry *entry;
	bool		all = (relid == InvalidOid || relid == cache->table_oid);

	if (cache->hash == NULL)
		return;
	hash_seq_init(&status, cache->hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (all || (cache->kind->uses_relation != NULL &&
					cache->kind->uses_relation(entry, relid)))
			entry->valid = false;
	}
}

/*
 * pgapp._definitions_changed(): statement trigger on the definition
 * tables (pgapp.machine, pgapp.changeset_def); every backend marks
 * its cached definitions stale.
 */
PG_FUNCTION_INFO_V1(pgapp_definitions_changed);
Datum
pgapp_definitions_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" was not called by trigger manager", "pgapp._definitions_changed"));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

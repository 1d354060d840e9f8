/*-------------------------------------------------------------------------
 *
 * pubsub_changes.c
 *	  pgapp._broadcast_changes(): the AFTER INSERT OR UPDATE OR DELETE row
 *	  trigger that pgapp.broadcast_changes() attaches to a table.  Each row
 *	  change is broadcast as "inserted", "updated" or "deleted" with the row
 *	  (to_jsonb of NEW, or OLD for a delete) as payload, on the topic made
 *	  from the template by replacing every %{column} with the row's value.
 *	  With changes_only, an update carries the primary key columns and the
 *	  columns whose value changed, and an update that changes nothing is not
 *	  broadcast.
 *
 * Trigger arguments: topic template, changes_only ("true"/"false"), mode
 * ("outbox", "direct" or "auto"), then optionally the columns the payload
 * may carry (none: every column).  The template's and the listed columns
 * are checked by pgapp.broadcast_changes(); a column dropped later gives an
 * empty value.  Which of INSERT, UPDATE and DELETE fire is the trigger's
 * own event list.
 *
 * src/pubsub/pubsub_changes.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "pubsub_int.h"

/*
 * to_jsonb() of a row, called without SQL: to_jsonb reads its argument's
 * type from the call expression, so each row type gets an FmgrInfo whose
 * expression is to_jsonb(NULL::rowtype).  Kept for the backend's life.
 */
typedef struct RowToJsonb
{
	Oid			rowtype;
	FmgrInfo	flinfo;
} RowToJsonb;

#define ROW_TO_JSONB_CACHE 32
static RowToJsonb row_to_jsonb_cache[ROW_TO_JSONB_CACHE];
static int	row_to_jsonb_n = 0;

static Jsonb *
row_to_jsonb(HeapTuple tuple, TupleDesc desc)
{
	RowToJsonb *c = NULL;
	Datum		row;

	for (int i = 0; i < row_to_jsonb_n; i++)
		if (row_to_jsonb_cache[i].rowtype == desc->tdtypeid)
			c = &row_to_jsonb_cache[i];
	if (c == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		FuncExpr   *expr;

		if (row_to_jsonb_n == ROW_TO_JSONB_CACHE)
			row_to_jsonb_n = 0; /* start over: the entries are cheap to make */
		c = &row_to_jsonb_cache[row_to_jsonb_n++];
		c->rowtype = desc->tdtypeid;
		expr = makeFuncExpr(F_TO_JSONB, JSONBOID,
							list_make1(makeNullConst(desc->tdtypeid, -1, InvalidOid)),
							InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		fmgr_info_cxt(F_TO_JSONB, &c->flinfo, TopMemoryContext);
		fmgr_info_set_expr((Node *) expr, &c->flinfo);
		MemoryContextSwitchTo(old);
	}
	row = heap_copy_tuple_as_datum(tuple, desc);
	return DatumGetJsonbP(FunctionCall1(&c->flinfo, row));
}

/* The topic: the template with each %{column} replaced by the row's value. */
static char *
make_topic(const char *template, HeapTuple tuple, TupleDesc desc)
{
	StringInfoData buf;
	const char *p = template;

	initStringInfo(&buf);
	while (*p)
	{
		const char *end;

		if (p[0] == '%' && p[1] == '{' && (end = strchr(p + 2, '}')) != NULL)
		{
			char	   *column = pnstrdup(p + 2, end - (p + 2));
			int			attno = SPI_fnumber(desc, column);

			if (attno > 0)
			{
				char	   *value = SPI_getvalue(tuple, desc, attno);

				if (value != NULL)
					appendStringInfoString(&buf, value);
			}
			p = end + 1;
			continue;
		}
		appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/* What changes_only keeps of an update: the primary key and what changed. */
typedef struct ChangedColumns
{
	Jsonb	   *old;
	Bitmapset  *pkey;
	TupleDesc	desc;
	PgappJsonbBuilder *b;
	char	  **allowed;		/* the columns the payload may carry (none:
								 * all) */
	int			nallowed;
	int			changed;
} ChangedColumns;

static bool
column_allowed(const char *name, char **allowed, int nallowed)
{
	if (nallowed == 0)
		return true;
	for (int i = 0; i < nallowed; i++)
		if (strcmp(allowed[i], name) == 0)
			return true;
	return false;
}

/* The payload with only the listed columns. */
typedef struct PickColumns
{
	char	  **allowed;
	int			nallowed;
	PgappJsonbBuilder *b;
} PickColumns;

static void
pick_one(const char *key, int keylen, JsonbValue *value, void *arg)
{
	PickColumns *pc = arg;

	if (column_allowed(pnstrdup(key, keylen), pc->allowed, pc->nallowed))
	{
		pgapp_jsonb_key_len(pc->b, key, keylen);
		pgapp_jsonb_add_value(pc->b, value);
	}
}

static Jsonb *
pick_columns(Jsonb *payload, char **allowed, int nallowed)
{
	PgappJsonbBuilder b = {0};
	PickColumns pc = {allowed, nallowed, &b};

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_foreach(&payload->root, pick_one, &pc);
	pgapp_jsonb_end_object(&b);
	return pgapp_jsonb_finish(&b);
}

static void
add_if_changed(const char *key, int keylen, JsonbValue *value, void *arg)
{
	ChangedColumns *cc = arg;
	char	   *name = pnstrdup(key, keylen);
	int			attno = SPI_fnumber(cc->desc, name);
	JsonbValue *before = pgapp_jsonb_get(&cc->old->root, name);
	bool		is_pkey;
	bool		changed = before == NULL || !pgapp_jsonb_values_equal(before, value);

	is_pkey = attno > 0 &&
		bms_is_member(attno - FirstLowInvalidHeapAttributeNumber, cc->pkey);
	if (!column_allowed(name, cc->allowed, cc->nallowed))
		return;					/* not in the payload: its changes do not
								 * count */
	if (changed)
		cc->changed++;
	if (changed || is_pkey)
	{
		pgapp_jsonb_key_len(cc->b, key, keylen);
		pgapp_jsonb_add_value(cc->b, value);
	}
}

PG_FUNCTION_INFO_V1(pgapp_broadcast_changes_trigger);
Datum
pgapp_broadcast_changes_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	row;
	const char *event;
	char	   *topic;
	Jsonb	   *payload;
	bool		changes_only;
	PubsubMode	mode;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" must be called as a trigger", "pgapp._broadcast_changes"),
				errhint("Attach it with pgapp.broadcast_changes(table, topic_template)."));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		td->tg_trigger->tgnargs < 3)
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" must be an AFTER ... FOR EACH ROW trigger with at least three arguments",
					   "pgapp._broadcast_changes"),
				errhint("Attach it with pgapp.broadcast_changes(table, topic_template)."));

	desc = RelationGetDescr(td->tg_relation);
	changes_only = strcmp(td->tg_trigger->tgargs[1], "true") == 0;
	mode = pgapp_pubsub_parse_mode(td->tg_trigger->tgargs[2]);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		event = "inserted";
		row = td->tg_trigtuple;
		payload = row_to_jsonb(row, desc);
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		event = "deleted";
		row = td->tg_trigtuple;
		payload = row_to_jsonb(row, desc);
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		event = "updated";
		row = td->tg_newtuple;
		payload = row_to_jsonb(row, desc);
		if (changes_only)
		{
			PgappJsonbBuilder b = {0};
			ChangedColumns cc = {0};

			cc.old = row_to_jsonb(td->tg_trigtuple, desc);
			cc.pkey = RelationGetIndexAttrBitmap(td->tg_relation, INDEX_ATTR_BITMAP_PRIMARY_KEY);
			cc.desc = desc;
			cc.b = &b;
			cc.allowed = td->tg_trigger->tgargs + 3;
			cc.nallowed = td->tg_trigger->tgnargs - 3;
			pgapp_jsonb_begin_object(&b);
			pgapp_jsonb_foreach(&payload->root, add_if_changed, &cc);
			pgapp_jsonb_end_object(&b);
			if (cc.changed == 0)
				return PointerGetDatum(NULL);	/* nothing changed: nothing to
												 * say */
			payload = pgapp_jsonb_finish(&b);
		}
	}
	else
		ereport(ERROR,
				errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				errmsg("function \"%s\" handles INSERT, UPDATE and DELETE only", "pgapp._broadcast_changes"));

	if (td->tg_trigger->tgnargs > 3)
		payload = pick_columns(payload, td->tg_trigger->tgargs + 3, td->tg_trigger->tgnargs - 3);
	topic = make_topic(td->tg_trigger->tgargs[0], row, desc);
	pgapp_pubsub_check_topic(topic);
	pgapp_pubsub_refuse_reserved_topic(topic);
	pgapp_pubsub_send(topic, event, payload, mode, NULL);
	return PointerGetDatum(NULL);
}

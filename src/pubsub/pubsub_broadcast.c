/*-------------------------------------------------------------------------
 *
 * pubsub_broadcast.c
 *	  PubSub on LISTEN/NOTIFY: topics, messages, broadcast in direct or
 *	  outbox mode, subscribe/unsubscribe, stored large payloads, and the
 *	  SQL entries of presence and typing.
 *
 * A message is {"topic", "event", "payload", "id", "at"} sent with NOTIFY
 * on the topic's channel: the topic itself when it fits in an identifier
 * (63 bytes), else "pgapp:" followed by the md5 of the topic in hex -- a
 * form any client can compute.  NOTIFY is transactional: nothing is sent by
 * a transaction (or subtransaction) that rolls back.
 *
 * NOTIFY payloads must be shorter than 8000 bytes.  A larger message is
 * stored in the unlogged table pgapp.message (kept pgapp.pubsub_retention
 * seconds) and the notification carries {"topic", "event", "id", "at",
 * "ref": true, "size": n}; pgapp.message(id) returns the whole message.
 *
 * Direct mode NOTIFYs in the caller's transaction, whose commit then holds
 * NOTIFY's cluster-wide lock through its WAL flush.  Outbox mode keeps the
 * messages of the transaction in memory (core/xact_defer: a savepoint that
 * rolls back takes its messages with it, one that is released hands them
 * to its parent) and writes them to pgapp.outbox just before commit (so the
 * outbox order is close to the commit order, whatever the order in which
 * the transactions made their messages); after commit the database's
 * delivery worker (pubsub_worker.c) is woken (pubsub_outbox.c) and sends
 * them in NOTIFY-only transactions.  Auto mode (the default) uses the
 * outbox when the transaction writes anyway, else NOTIFYs directly.
 *
 * Topics and events that pgapp itself sends on (job progress, presence,
 * typing, PostgREST's channel) are refused to pgapp.broadcast (42501);
 * pgapp's own code sends them with pgapp._broadcast_system() or, in C,
 * pgapp_pubsub_send().  pgapp.broadcast's payloads are capped by
 * pgapp.pubsub_max_payload (54000).  Presence and typing enter here (C)
 * so that the calling role can be recorded with what it tracks.
 *
 * Backend-local state only (the messages of the transaction): no lock.
 *
 * src/pubsub/pubsub_broadcast.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "commands/sequence.h"
#include "commands/async.h"
#include "common/md5.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"
#include "core/util.h"
#include "core/xact_defer.h"
#include "pubsub_int.h"

#define NOTIFY_PAYLOAD_LIMIT 8000	/* NOTIFY refuses payloads this long or
									 * longer */

/* ---------------------------------------------------------------------
 * Topics, channels, ids
 * ---------------------------------------------------------------------
 */

/* A topic or event: 1 to max bytes. */
static void
check_name(const char *what, const char *value, int max)
{
	size_t		len = strlen(value);

	if (len == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must not be empty", what));
	if (len > max)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s is too long (%zu bytes)", what, len),
				errdetail("At most %d bytes are allowed.", max));
}

void
pgapp_pubsub_check_topic(const char *topic)
{
	check_name("topic", topic, PUBSUB_TOPIC_MAX);
	if (strncmp(topic, "pgapp:", 6) == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("topics starting with \"pgapp:\" are reserved"),
				errdetail("They name the channels of topics longer than %d bytes.", PUBSUB_CHANNEL_LEN - 1));
}

void
pgapp_pubsub_check_event(const char *event)
{
	check_name("event", event, PUBSUB_EVENT_MAX);
}

/*
 * At most PUBSUB_ECHO_MAX characters of a value an error message quotes,
 * followed by "..." when it was cut: errors must not echo large input.
 */
char *
pgapp_pubsub_echo(const char *value)
{
	size_t		len = strlen(value);
	int			cut;

	if (pg_mbstrlen_with_len(value, (int) len) <= PUBSUB_ECHO_MAX)
		return pstrdup(value);
	cut = pg_mbcharcliplen(value, (int) len, PUBSUB_ECHO_MAX);
	return psprintf("%.*s...", cut, value);
}

/*
 * Topics and events pgapp itself sends on.  Clients trust them (a job's
 * progress, who is present, who types), so only pgapp may send them: the
 * SQL entry points refuse them (42501) and pgapp's own code sends through
 * pgapp._broadcast_system() or pgapp_pubsub_send().
 */
typedef struct ReservedName
{
	const char *name;
	bool		prefix;			/* every name starting with it */
	const char *what;			/* what pgapp sends there */
} ReservedName;

static const ReservedName reserved_topics[] = {
	{"jobs:", true, "the progress of jobs"},
	{"pgapp_", true, "its own notifications (such as pgapp_jobs:<queue> for job queues)"},
	{"pgrst", false, "PostgREST's schema cache reloads"},
};

static const ReservedName reserved_events[] = {
	{"presence_diff", false, "presence joins and leaves"},
	{"presence_state", false, "presence state"},
	{"typing", false, "typing indicators"},
	{"typing_stopped", false, "typing indicators"},
	{"phx_", true, "Phoenix channel protocol events"},
};

static const ReservedName *
find_reserved(const ReservedName *names, int n, const char *value)
{
	for (int i = 0; i < n; i++)
	{
		if (names[i].prefix ? strncmp(value, names[i].name, strlen(names[i].name)) == 0
			: strcmp(value, names[i].name) == 0)
			return &names[i];
	}
	return NULL;
}

/* 42501 unless the topic is free for everyone (the topic is checked). */
void
pgapp_pubsub_refuse_reserved_topic(const char *topic)
{
	const ReservedName *r = find_reserved(reserved_topics, lengthof(reserved_topics), topic);

	if (r != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("topic \"%s\" is reserved for pgapp", pgapp_pubsub_echo(topic)),
				errdetail("On %s \"%s\", pgapp sends %s; only pgapp may send there.",
						  r->prefix ? "the topics starting with" : "the topic", r->name, r->what),
				errhint("Subscribe to it to receive pgapp's messages; broadcast yours on another topic."));
}

/* 42501 unless the event is free for everyone. */
void
pgapp_pubsub_refuse_reserved_event(const char *event)
{
	const ReservedName *r = find_reserved(reserved_events, lengthof(reserved_events), event);

	if (r != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("event \"%s\" is reserved for pgapp", pgapp_pubsub_echo(event)),
				errdetail("pgapp sends %s as %s \"%s\"; only pgapp may send %s.",
						  r->what, r->prefix ? "the events starting with" : "the event", r->name,
						  r->prefix ? "them" : "it"),
				errhint("Use another event name, e.g. one of your application's own."));
}

/*
 * The channel of a topic (buffer of PUBSUB_CHANNEL_LEN): the topic when it
 * is a valid channel name, else "pgapp:" || md5(topic).
 */
void
pgapp_pubsub_channel(const char *topic, char *channel)
{
	size_t		len = strlen(topic);
	char		hex[33];
	const char *errstr = NULL;

	if (len < PUBSUB_CHANNEL_LEN)
	{
		memcpy(channel, topic, len + 1);
		return;
	}
	if (!pg_md5_hash(topic, len, hex, &errstr))
		elog(ERROR, "could not compute the md5 of a topic: %s", errstr ? errstr : "unknown error");
	snprintf(channel, PUBSUB_CHANNEL_LEN, "pgapp:%s", hex);
}

PubsubMode
pgapp_pubsub_parse_mode(const char *mode)
{
	if (strcmp(mode, "auto") == 0)
		return PUBSUB_AUTO;
	if (strcmp(mode, "direct") == 0)
		return PUBSUB_DIRECT;
	if (strcmp(mode, "outbox") == 0)
		return PUBSUB_OUTBOX;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("unknown broadcast mode \"%s\"", pgapp_pubsub_echo(mode)),
			errhint("Use auto, direct or outbox."));
	return PUBSUB_AUTO;			/* keep compiler quiet */
}

/*
 * A new message id: a time-ordered UUID (version 7: 48 bits of Unix
 * milliseconds, then random bits), in its text form.
 */
void
pgapp_pubsub_new_id(char *id)
{
	static uint64 counter = 0;
	uint8		b[16];
	uint64		ms = (uint64) ((GetCurrentTimestamp() / 1000) +
							   (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);

	if (pgapp_pubsub_fixed_envelope)
	{
		/* tests: a counter of the session, so that outputs are stable */
		snprintf(id, PUBSUB_UUID_LEN, "00000000-0000-7000-8000-%012llx",
				 (unsigned long long) ++counter);
		return;
	}
	if (!pg_strong_random(b + 6, 10))
		ereport(ERROR,
				errcode(ERRCODE_INTERNAL_ERROR),
				errmsg("could not generate a random message id"));
	for (int i = 0; i < 6; i++)
		b[i] = (uint8) (ms >> (40 - 8 * i));
	b[6] = (b[6] & 0x0F) | 0x70;	/* version 7 */
	b[8] = (b[8] & 0x3F) | 0x80;	/* variant 10 */
	snprintf(id, PUBSUB_UUID_LEN,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
			 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---------------------------------------------------------------------
 * Sending
 * ---------------------------------------------------------------------
 */

/* The ISO 8601 form of a timestamp in UTC, as to_jsonb() writes it. */
static char *
iso_timestamp(TimestampTz at)
{
	int			utc = 0;

	return JsonEncodeDateTime(NULL, TimestampTzGetDatum(at), TIMESTAMPTZOID, &utc);
}

/* When a message is made (2000-01-01 UTC with pgapp.pubsub_fixed_envelope). */
TimestampTz
pgapp_pubsub_now(void)
{
	return pgapp_pubsub_fixed_envelope ? 0 : GetCurrentTimestamp();
}

/*
 * Store a message too large for NOTIFY; the caller sends the reference.
 * Also removes what has outlived pgapp.pubsub_retention, at most once a
 * minute per backend.
 */
static void
store_message(const char *id, const char *topic, const char *event, Jsonb *payload, TimestampTz at)
{
	static TimestampTz last_prune = 0;
	Oid			argtypes[5] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	Datum		args[5];
	PgappOwnerSwitch sw;
	int			ret;

	if (XactReadOnly)
		ereport(ERROR,
				errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				errmsg("a message this large cannot be broadcast from a read-only transaction"),
				errdetail("Messages of %d bytes or more are stored in pgapp.message and sent by reference.",
						  NOTIFY_PAYLOAD_LIMIT),
				errhint("Broadcast it from a read-write transaction, or send a smaller payload."));

	args[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(id));
	args[1] = CStringGetTextDatum(topic);
	args[2] = CStringGetTextDatum(event);
	args[3] = JsonbPGetDatum(payload);
	args[4] = TimestampTzGetDatum(at);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_with_args("INSERT INTO pgapp.message (id, topic, event, payload, at)"
									" VALUES ($1, $2, $3, $4, $5)",
									5, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		if (GetCurrentTimestamp() - last_prune >= USECS_PER_SEC * 60)
		{
			ret = SPI_execute("SELECT pgapp._pubsub_prune()", false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
			last_prune = GetCurrentTimestamp();
		}
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

/*
 * NOTIFY one message on its topic's channel now (in the current
 * transaction), by reference when it is too large.
 */
void
pgapp_pubsub_notify(const char *id, const char *topic, const char *event, Jsonb *payload,
					TimestampTz at, const char *sender)
{
	char		channel[PUBSUB_CHANNEL_LEN];
	char	   *at_text = iso_timestamp(at);
	PgappJsonbBuilder b = {0};
	Jsonb	   *message;
	char	   *text;

	pgapp_pubsub_channel(topic, channel);
	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "topic");
	pgapp_jsonb_add_string(&b, topic);
	pgapp_jsonb_key(&b, "event");
	pgapp_jsonb_add_string(&b, event);
	pgapp_jsonb_key(&b, "payload");
	pgapp_jsonb_add_jsonb(&b, payload);
	pgapp_jsonb_key(&b, "id");
	pgapp_jsonb_add_string(&b, id);
	pgapp_jsonb_key(&b, "at");
	pgapp_jsonb_add_string(&b, at_text);
	if (sender != NULL)
	{
		pgapp_jsonb_key(&b, "sender");
		pgapp_jsonb_add_string(&b, sender);
	}
	pgapp_jsonb_end_object(&b);
	message = pgapp_jsonb_finish(&b);
	text = JsonbToCString(NULL, &message->root, VARSIZE(message));

	if (strlen(text) >= NOTIFY_PAYLOAD_LIMIT)
	{
		size_t		size = strlen(text);

		store_message(id, topic, event, payload, at);
		memset(&b, 0, sizeof(b));
		pgapp_jsonb_begin_object(&b);
		pgapp_jsonb_key(&b, "topic");
		pgapp_jsonb_add_string(&b, topic);
		pgapp_jsonb_key(&b, "event");
		pgapp_jsonb_add_string(&b, event);
		pgapp_jsonb_key(&b, "id");
		pgapp_jsonb_add_string(&b, id);
		pgapp_jsonb_key(&b, "at");
		pgapp_jsonb_add_string(&b, at_text);
		pgapp_jsonb_key(&b, "ref");
		pgapp_jsonb_add_bool(&b, true);
		pgapp_jsonb_key(&b, "size");
		pgapp_jsonb_add_int(&b, (int64) size);
		if (sender != NULL)
		{
			pgapp_jsonb_key(&b, "sender");
			pgapp_jsonb_add_string(&b, sender);
		}
		pgapp_jsonb_end_object(&b);
		message = pgapp_jsonb_finish(&b);
		text = JsonbToCString(NULL, &message->root, VARSIZE(message));
	}
	Async_Notify(channel, text);
}

/* ---------------------------------------------------------------------
 * The outbox: messages of the transaction, written just before commit
 * ---------------------------------------------------------------------
 */

typedef struct OutboxMessage
{
	char		id[PUBSUB_UUID_LEN];
	char	   *topic;
	char	   *event;
	Jsonb	   *payload;
	TimestampTz at;
	char	   *sender;			/* broadcast_from's socket, or NULL */
} OutboxMessage;

/*
 * Just before commit or prepare (a PGAPP_XACT_PRE_COMMIT action): write the
 * transaction's messages that survived its savepoints to pgapp.outbox, then
 * ask for the worker's wake-up after commit.  The rows are written as
 * catalog rows are (heap insert, then its indexes), without the executor:
 * pgapp.outbox is pgapp's own table, with no trigger, no constraint but its
 * key and one plain btree index, and this is on every writer's commit path.
 * An error here aborts the transaction.
 */
static void
outbox_flush(List *messages)
{
	static Oid	cached_relid = InvalidOid;
	static Oid	cached_seqid = InvalidOid;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	ListCell   *lc;

	relid = get_relname_relid("outbox", pgapp_schema_oid());
	if (!OidIsValid(relid))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_TABLE),
				errmsg("pgapp.outbox does not exist"),
				errhint("Is the pgapp extension installed in this database?"));
	if (relid != cached_relid)
	{
		cached_seqid = getIdentitySequence(relid, 1, false);
		cached_relid = relid;
	}
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);

	/*
	 * sender, the seventh column, came with 0.3.0: until ALTER EXTENSION
	 * UPDATE has run, a broadcast_from is kept without it (it reaches every
	 * socket, its sender's too).
	 */
	if ((desc->natts != 6 && desc->natts != 7) || TupleDescAttr(desc, 0)->atttypid != INT8OID ||
		TupleDescAttr(desc, 1)->atttypid != UUIDOID || TupleDescAttr(desc, 4)->atttypid != JSONBOID ||
		TupleDescAttr(desc, 5)->atttypid != TIMESTAMPTZOID ||
		(desc->natts == 7 && TupleDescAttr(desc, 6)->atttypid != TEXTOID))
		elog(ERROR, "pgapp.outbox does not have the columns (seq, id, topic, event, payload, at, sender)");
	foreach(lc, messages)
	{
		OutboxMessage *m = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false};
		HeapTuple	tup;

		values[0] = Int64GetDatum(nextval_internal(cached_seqid, false));
		values[1] = DirectFunctionCall1(uuid_in, CStringGetDatum(m->id));
		values[2] = CStringGetTextDatum(m->topic);
		values[3] = CStringGetTextDatum(m->event);
		values[4] = JsonbPGetDatum(m->payload);
		values[5] = TimestampTzGetDatum(m->at);
		values[6] = m->sender ? CStringGetTextDatum(m->sender) : (Datum) 0;
		nulls[6] = m->sender == NULL;
		tup = heap_form_tuple(desc, values, nulls);
		CatalogTupleInsert(rel, tup);
		heap_freetuple(tup);
	}
	table_close(rel, NoLock);
	pgapp_pubsub_outbox_wake_at_commit();
}

/*
 * Record one message of the transaction for the outbox (core/xact_defer:
 * kept through a released savepoint, dropped with a rolled-back one).
 */
static void
outbox_queue(const char *topic, const char *event, Jsonb *payload, const char *sender)
{
	MemoryContext old;
	OutboxMessage *m;

	if (!pgapp_pubsub_outbox_attached())
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("broadcasting through the outbox requires pgapp to be loaded via \"shared_preload_libraries\""),
				errhint("Add pgapp to \"shared_preload_libraries\" and restart the server, or use mode => 'direct'."));
	old = MemoryContextSwitchTo(TopTransactionContext);
	m = palloc0(sizeof(OutboxMessage));
	pgapp_pubsub_new_id(m->id);
	m->topic = pstrdup(topic);
	m->event = pstrdup(event);
	m->payload = (Jsonb *) PG_DETOAST_DATUM_COPY(JsonbPGetDatum(payload));
	m->at = pgapp_pubsub_now();
	m->sender = sender ? pstrdup(sender) : NULL;
	MemoryContextSwitchTo(old);
	pgapp_xact_defer(PGAPP_XACT_PRE_COMMIT, outbox_flush, m);
}

/*
 * Send or queue one message (topic and event already checked).  sender:
 * the pgapp-gateway socket that must not receive it (broadcast_from), or
 * NULL.
 */
void
pgapp_pubsub_send(const char *topic, const char *event, Jsonb *payload, PubsubMode mode,
				  const char *sender)
{
	if (mode == PUBSUB_AUTO)
		mode = (GetTopTransactionIdIfAny() != InvalidTransactionId && pgapp_pubsub_outbox_attached()) ?
			PUBSUB_OUTBOX : PUBSUB_DIRECT;
	if (mode == PUBSUB_OUTBOX)
	{
		if (XactReadOnly)
			ereport(ERROR,
					errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					errmsg("cannot broadcast through the outbox in a read-only transaction"),
					errhint("Use mode => 'direct' (or 'auto') in read-only transactions."));
		outbox_queue(topic, event, payload, sender);
	}
	else
	{
		char		id[PUBSUB_UUID_LEN];

		pgapp_pubsub_new_id(id);
		pgapp_pubsub_notify(id, topic, event, payload, pgapp_pubsub_now(), sender);
	}
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/*
 * pgapp.broadcast(topic, event, payload jsonb DEFAULT '{}', mode DEFAULT
 * 'auto') -> void
 */
static Jsonb *
broadcast_payload(FunctionCallInfo fcinfo, int argno)
{
	Jsonb	   *payload;

	if (PG_ARGISNULL(argno))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	payload = PG_GETARG_JSONB_P(argno);
	if (!pgapp_jsonb_is_object(payload))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("payload must be a JSON object"),
				errdetail("Got %s.",
						  pgapp_pubsub_echo(JsonbToCString(NULL, &payload->root, 64))),
				errhint("Wrap the value in an object, e.g. jsonb_build_object('value', ...)."));
	return payload;
}

/*
 * 54000 when the payload argument is over pgapp.pubsub_max_payload (in
 * jsonb form, before it is detoasted).
 */
static void
check_payload_size(FunctionCallInfo fcinfo, int argno)
{
	Size		size;

	if (PG_ARGISNULL(argno))
		return;
	size = toast_raw_datum_size(PG_GETARG_DATUM(argno)) - VARHDRSZ;
	if (size > (Size) pgapp_pubsub_max_payload)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("broadcast payload is too large (%zu bytes)", (size_t) size),
				errdetail("pgapp.pubsub_max_payload allows at most %d bytes (in jsonb form).",
						  pgapp_pubsub_max_payload),
				errhint("Broadcast a reference to the data (e.g. a row's id) and let clients read it."));
}

/*
 * The pgapp-gateway socket whose request is running, from the transaction's
 * request.gateway.socket setting: NULL outside a gateway request (unset or
 * empty).  The gateway sets it to "<16 hex digits>:<digits>" (its instance,
 * then its socket number); anything else is refused (22023) rather than
 * relayed to the gateways, which trust only that shape.
 */
static const char *
gateway_sender(void)
{
	const char *v = GetConfigOption(PUBSUB_SENDER_SETTING, true, false);
	size_t		len;
	size_t		i;

	if (v == NULL || v[0] == '\0')
		return NULL;
	len = strlen(v);
	for (i = 0; i < len && i < 16; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			break;
	if (i == 16 && len > 17 && len <= 16 + 1 + 20 && v[16] == ':')
	{
		for (i = 17; i < len; i++)
			if (v[i] < '0' || v[i] > '9')
				break;
		if (i == len)
			return v;
	}
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("\"%s\" is not a pgapp-gateway socket: \"%s\"", PUBSUB_SENDER_SETTING,
				   pgapp_pubsub_echo(v)),
			errdetail("pgapp-gateway sets it to its instance (16 hexadecimal digits), a colon and a socket number."),
			errhint("Do not set it yourself; outside a gateway request leave it unset."));
	return NULL;				/* keep compiler quiet */
}

/*
 * The four broadcast entry points: topic and event checked; for PUBLIC's
 * (system false) pgapp's reserved topics and events refused and the payload
 * size limited; the mode from argument 3 (has_mode) or auto; the running
 * gateway request's socket left out (from).
 */
static void
send_broadcast(FunctionCallInfo fcinfo, bool system, bool has_mode, bool from)
{
	char	   *topic = pgapp_arg_cstring(fcinfo, 0, "topic");
	char	   *event = pgapp_arg_cstring(fcinfo, 1, "event");
	char	   *mode = has_mode ? pgapp_arg_cstring(fcinfo, 3, "mode") : NULL;
	PubsubMode	m = PUBSUB_AUTO;
	Jsonb	   *payload;

	pgapp_pubsub_check_topic(topic);
	pgapp_pubsub_check_event(event);
	if (!system)
	{
		pgapp_pubsub_refuse_reserved_topic(topic);
		pgapp_pubsub_refuse_reserved_event(event);
	}
	if (has_mode)
		m = pgapp_pubsub_parse_mode(mode);
	/* the size first: a non-object too large to be echoed is refused for it */
	if (!system)
		check_payload_size(fcinfo, 2);
	payload = broadcast_payload(fcinfo, 2);
	pgapp_pubsub_send(topic, event, payload, m, from ? gateway_sender() : NULL);
}

/*
 * pgapp.broadcast(topic, event, payload jsonb DEFAULT '{}', mode DEFAULT
 * 'auto') -> void: for everyone, on any topic and event but pgapp's own,
 * with a payload of at most pgapp.pubsub_max_payload.
 */
PG_FUNCTION_INFO_V1(pgapp_broadcast);
Datum
pgapp_broadcast(PG_FUNCTION_ARGS)
{
	send_broadcast(fcinfo, false, true, false);
	PG_RETURN_VOID();
}

/*
 * pgapp.broadcast_from(topic, event, payload jsonb DEFAULT '{}') -> void:
 * pgapp.broadcast (mode auto) that the pgapp-gateway socket whose request
 * is running (join or handle_in) does not receive; outside a gateway
 * request it is pgapp.broadcast.  The same checks and limits.
 */
PG_FUNCTION_INFO_V1(pgapp_broadcast_from);
Datum
pgapp_broadcast_from(PG_FUNCTION_ARGS)
{
	send_broadcast(fcinfo, false, false, true);
	PG_RETURN_VOID();
}

/*
 * pgapp._broadcast_system(topic, event, payload jsonb, mode) -> void: how
 * pgapp's own SQL code sends on its reserved topics and events (job
 * progress, presence_diff, typing).  Not executable by PUBLIC; its owner
 * (pgapp's SECURITY DEFINER functions) and superusers (pgapp's background
 * workers) call it.  No size limit: pgapp makes these payloads itself.
 */
PG_FUNCTION_INFO_V1(pgapp_broadcast_system);
Datum
pgapp_broadcast_system(PG_FUNCTION_ARGS)
{
	send_broadcast(fcinfo, true, true, false);
	PG_RETURN_VOID();
}

/*
 * pgapp._broadcast_system_from(topic, event, payload jsonb, mode) -> void:
 * pgapp._broadcast_system that the pgapp-gateway socket whose request is
 * running does not receive (pgapp.typing's "typing"); not for PUBLIC.
 */
PG_FUNCTION_INFO_V1(pgapp_broadcast_system_from);
Datum
pgapp_broadcast_system_from(PG_FUNCTION_ARGS)
{
	send_broadcast(fcinfo, true, true, true);
	PG_RETURN_VOID();
}

/*
 * pgapp._pubsub_check_topic(topic) -> void: a topic presence and typing
 * may use: a valid topic (22023) that is not pgapp's (42501).
 */
PG_FUNCTION_INFO_V1(pgapp_pubsub_check_user_topic);
Datum
pgapp_pubsub_check_user_topic(PG_FUNCTION_ARGS)
{
	char	   *topic = pgapp_arg_cstring(fcinfo, 0, "topic");

	pgapp_pubsub_check_topic(topic);
	pgapp_pubsub_refuse_reserved_topic(topic);
	PG_RETURN_VOID();
}

/* pgapp.channel(topic) -> text */
PG_FUNCTION_INFO_V1(pgapp_channel);
Datum
pgapp_channel(PG_FUNCTION_ARGS)
{
	char	   *topic = pgapp_arg_cstring(fcinfo, 0, "topic");
	char		channel[PUBSUB_CHANNEL_LEN];

	pgapp_pubsub_check_topic(topic);
	pgapp_pubsub_channel(topic, channel);
	PG_RETURN_TEXT_P(cstring_to_text(channel));
}

/* pgapp.subscribe(topic) -> text: LISTEN on the topic's channel (at commit) */
PG_FUNCTION_INFO_V1(pgapp_subscribe);
Datum
pgapp_subscribe(PG_FUNCTION_ARGS)
{
	char	   *topic = pgapp_arg_cstring(fcinfo, 0, "topic");
	char		channel[PUBSUB_CHANNEL_LEN];

	pgapp_pubsub_check_topic(topic);
	pgapp_pubsub_channel(topic, channel);
	Async_Listen(channel);
	PG_RETURN_TEXT_P(cstring_to_text(channel));
}

/* pgapp.unsubscribe(topic DEFAULT NULL) -> void: UNLISTEN (NULL: every topic) */
PG_FUNCTION_INFO_V1(pgapp_unsubscribe);
Datum
pgapp_unsubscribe(PG_FUNCTION_ARGS)
{
	char		channel[PUBSUB_CHANNEL_LEN];
	char	   *topic;

	if (PG_ARGISNULL(0))
	{
		Async_UnlistenAll();
		PG_RETURN_VOID();
	}
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pgapp_pubsub_check_topic(topic);
	pgapp_pubsub_channel(topic, channel);
	Async_Unlisten(channel);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Presence and typing: the caller's role
 * ---------------------------------------------------------------------
 */

/*
 * Run an internal presence function (SELECT pgapp._fn($1 .. $nargs, $n+1))
 * as pgapp's owner with the function's arguments and, last, the calling
 * role: a presence belongs to the role that tracked it, and the internal
 * functions, which write pgapp.presence and pgapp.typing, are not
 * executable by PUBLIC (so no one can name another role).  Returns the
 * single result (copied out of SPI when by reference).
 */
static Datum
call_as_owner(FunctionCallInfo fcinfo, const char *sql, int nargs, const Oid *types,
			  bool *isnull)
{
	Oid			argtypes[8];
	Datum		values[8];
	char		nulls[8];
	Oid			caller = GetUserId();
	PgappOwnerSwitch sw;
	Datum		result;
	int			ret;

	Assert(nargs < lengthof(values));
	for (int i = 0; i < nargs; i++)
	{
		argtypes[i] = types[i];
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	argtypes[nargs] = OIDOID;
	values[nargs] = ObjectIdGetDatum(caller);
	nulls[nargs] = ' ';

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	pgapp_become_owner(&sw);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs + 1, argtypes, values, nulls, false, 1);
	}
	PG_FINALLY();
	{
		pgapp_restore_user(&sw);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (!*isnull)
	{
		Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, 0);

		result = SPI_datumTransfer(result, att->attbyval, att->attlen);
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	return result;
}

/* pgapp.presence_track(topic, key, meta, ttl, ref) -> uuid */
PG_FUNCTION_INFO_V1(pgapp_presence_track);
Datum
pgapp_presence_track(PG_FUNCTION_ARGS)
{
	static const Oid types[5] = {TEXTOID, TEXTOID, JSONBOID, INTERVALOID, UUIDOID};
	bool		isnull;
	Datum		ref = call_as_owner(fcinfo, "SELECT pgapp._presence_track($1, $2, $3, $4, $5, $6)",
									5, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(ref);
}

/* pgapp.presence_untrack(topic, key, ref) -> integer */
PG_FUNCTION_INFO_V1(pgapp_presence_untrack);
Datum
pgapp_presence_untrack(PG_FUNCTION_ARGS)
{
	static const Oid types[3] = {TEXTOID, TEXTOID, UUIDOID};
	bool		isnull;
	Datum		n = call_as_owner(fcinfo, "SELECT pgapp._presence_untrack($1, $2, $3, $4)",
								  3, types, &isnull);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(n);
}

/* pgapp.typing(topic, key) -> void */
PG_FUNCTION_INFO_V1(pgapp_typing);
Datum
pgapp_typing(PG_FUNCTION_ARGS)
{
	static const Oid types[2] = {TEXTOID, TEXTOID};
	bool		isnull;

	(void) call_as_owner(fcinfo, "SELECT pgapp._typing($1, $2, $3)", 2, types, &isnull);
	PG_RETURN_VOID();
}

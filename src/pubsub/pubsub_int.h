/*-------------------------------------------------------------------------
 *
 * pubsub_int.h
 *	  Internals shared by the PubSub files, which form a DAG (top first:
 *	  each uses only the files below it):
 *
 *	pubsub_changes.c	broadcast_changes: the row-change trigger
 *	pubsub_worker.c		the delivery worker of each database: its main
 *						loop, presence and typing rounds
 *	pubsub_broadcast.c	topics and channels, messages, broadcast (direct and
 *						outbox), subscribe, the stored large payloads
 *	pubsub_outbox.c		the outbox's shared memory: a worker slot per
 *						database, the wake-up at commit, the module entry
 *
 * src/pubsub/pubsub_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_PUBSUB_INT_H
#define PGAPP_PUBSUB_INT_H

#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define PUBSUB_TOPIC_MAX 255	/* bytes */
#define PUBSUB_EVENT_MAX 63		/* bytes */
#define PUBSUB_CHANNEL_LEN 64	/* NAMEDATALEN: a channel is an identifier */
#define PUBSUB_UUID_LEN 37		/* text form and its terminator */
#define PUBSUB_SENDER_SETTING "request.gateway.socket"	/* set by pgapp-gateway */
#define PUBSUB_ECHO_MAX 64		/* characters of input an error message quotes */

/* How a broadcast travels. */
typedef enum PubsubMode
{
	PUBSUB_AUTO,				/* outbox when the transaction writes, else
								 * direct */
	PUBSUB_DIRECT,				/* NOTIFY in the caller's transaction */
	PUBSUB_OUTBOX				/* recorded; the database's worker NOTIFYs
								 * after commit */
} PubsubMode;

/* pubsub_broadcast.c */
extern void pgapp_pubsub_check_topic(const char *topic);
extern void pgapp_pubsub_check_event(const char *event);
extern char *pgapp_pubsub_echo(const char *value);
extern void pgapp_pubsub_refuse_reserved_topic(const char *topic);
extern void pgapp_pubsub_refuse_reserved_event(const char *event);
extern void pgapp_pubsub_channel(const char *topic, char *channel);
extern PubsubMode pgapp_pubsub_parse_mode(const char *mode);
extern void pgapp_pubsub_new_id(char *id);
extern TimestampTz pgapp_pubsub_now(void);
extern void pgapp_pubsub_send(const char *topic, const char *event, Jsonb *payload, PubsubMode mode,
							  const char *sender);
extern void pgapp_pubsub_notify(const char *id, const char *topic, const char *event, Jsonb *payload,
								TimestampTz at, const char *sender);

/* pubsub_outbox.c: for writers */
extern bool pgapp_pubsub_outbox_attached(void);
extern void pgapp_pubsub_outbox_wake_at_commit(void);

/* pubsub_outbox.c: for the delivery worker (pubsub_worker.c) */
extern bool pgapp_pubsub_outbox_claim(Oid dboid);
extern bool pgapp_pubsub_outbox_stop_requested(void);
extern void pgapp_pubsub_outbox_leave(void);
extern void pgapp_pubsub_outbox_delivered(int n);

#endif							/* PGAPP_PUBSUB_INT_H */

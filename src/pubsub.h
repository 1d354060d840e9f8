/*-------------------------------------------------------------------------
 *
 * pubsub.h
 *	  PubSub on LISTEN/NOTIFY (pubsub.c, pubsub_outbox.c, pubsub_changes.c).
 *
 * src/pubsub.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_PUBSUB_H
#define PGAPP_PUBSUB_H

#include "pgapp.h"

extern int	pgapp_pubsub_retention;
extern bool pgapp_pubsub_fixed_envelope;
extern int	pgapp_pubsub_batch_delay;
extern int	pgapp_pubsub_max_payload;
extern int	pgapp_pubsub_presence_max_meta;
extern int	pgapp_pubsub_presence_max_ttl;
extern int	pgapp_pubsub_presence_max_metas;
extern const PgappModule pgapp_pubsub_module;

#endif							/* PGAPP_PUBSUB_H */

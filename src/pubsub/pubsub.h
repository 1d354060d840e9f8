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

#include "core/module.h"
#include "core/settings.h"

extern const PgappModule pgapp_pubsub_module;

#endif							/* PGAPP_PUBSUB_H */

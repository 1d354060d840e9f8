/*-------------------------------------------------------------------------
 *
 * pubsub.h
 *	  PubSub on LISTEN/NOTIFY: the module entry (pubsub_outbox.c).
 *
 * src/pubsub/pubsub.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_PUBSUB_H
#define PGAPP_PUBSUB_H

#include "core/module.h"
#include "core/settings.h"

extern const PgappModule pgapp_pubsub_module;

#endif							/* PGAPP_PUBSUB_H */

/*-------------------------------------------------------------------------
 *
 * xact_defer.h
 *	  Work a transaction asks for that happens only if it commits.
 *
 * src/core/xact_defer.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_XACT_DEFER_H
#define PGAPP_XACT_DEFER_H

#include "nodes/pg_list.h"

/* When a deferred action runs. */
typedef enum PgappXactPhase
{
	/*
	 * Just before the transaction commits (or is prepared): the action may
	 * still write and raise an error, which aborts the transaction.
	 */
	PGAPP_XACT_PRE_COMMIT,

	/*
	 * Once it has committed: the action must not raise an error (waking
	 * processes, changing shared memory).  Not run for a prepared
	 * transaction.
	 */
	PGAPP_XACT_COMMIT
} PgappXactPhase;

/*
 * An action receives, in the order they were deferred, the arguments of
 * every call of pgapp_xact_defer with this function and phase that survived
 * the transaction's subtransactions.
 */
typedef void (*PgappXactAction) (List *args);

/*
 * Run fn with arg at the phase's end of the current transaction, if the
 * current subtransaction and all its parents commit.  arg must live until
 * then: allocate it in TopTransactionContext (it is freed with it).  A
 * subtransaction that is released hands its actions to its parent; one that
 * rolls back drops them.
 */
extern void pgapp_xact_defer(PgappXactPhase phase, PgappXactAction fn, void *arg);

/*
 * The arguments deferred so far with fn and phase, in order (NIL if none),
 * to merge a new request into one of them.  Merging into an argument
 * deferred by a parent of the current subtransaction keeps it if the current
 * one rolls back: only do it where doing too much is harmless (a wake-up).
 */
extern List *pgapp_xact_deferred(PgappXactPhase phase, PgappXactAction fn);

/* True while PRE_COMMIT actions run for a PREPARE TRANSACTION. */
extern bool pgapp_xact_preparing(void);

#endif							/* PGAPP_XACT_DEFER_H */

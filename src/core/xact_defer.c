/*-------------------------------------------------------------------------
 *
 * xact_defer.c
 *	  One list of actions a transaction runs only if it commits.
 *
 * Wake-ups, shared-memory changes and outbox rows must follow the fate of
 * the transaction (and of the savepoint) that asked for them.  Each request
 * is an entry (phase, action, argument, nest level) in TopTransactionContext.
 * On subtransaction commit (RELEASE, or the end of a PL/pgSQL block) the
 * entries of that level become the parent's, so that a later sibling that
 * rolls back cannot take them away; on subtransaction abort they are
 * dropped.  At XACT_EVENT_PRE_COMMIT / PRE_PREPARE the PRE_COMMIT actions
 * run, at XACT_EVENT_COMMIT the COMMIT actions; any end of the transaction
 * forgets the list (its memory goes with TopTransactionContext).
 *
 * Each action function is called once per phase with the list of its
 * surviving arguments, in the order they were deferred; functions run in the
 * order of their first request.  A PRE_COMMIT action may defer COMMIT
 * actions (the outbox writes its rows, then wakes its worker after commit).
 *
 * Backend-local state only: no lock.
 *
 * src/core/xact_defer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "core/xact_defer.h"

typedef struct DeferredAction
{
	PgappXactPhase phase;
	PgappXactAction fn;
	void	   *arg;
	int			level;			/* nest level of the subtransaction that asked */
} DeferredAction;

static List *deferred = NIL;	/* of DeferredAction, in TopTransactionContext */
static bool callbacks_registered = false;
static bool preparing = false;

static void defer_xact_callback(XactEvent event, void *arg);
static void defer_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

void
pgapp_xact_defer(PgappXactPhase phase, PgappXactAction fn, void *arg)
{
	MemoryContext old;
	DeferredAction *a;

	if (!callbacks_registered)
	{
		RegisterXactCallback(defer_xact_callback, NULL);
		RegisterSubXactCallback(defer_subxact_callback, NULL);
		callbacks_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	a = palloc(sizeof(DeferredAction));
	a->phase = phase;
	a->fn = fn;
	a->arg = arg;
	a->level = GetCurrentTransactionNestLevel();
	deferred = lappend(deferred, a);
	MemoryContextSwitchTo(old);
}

List *
pgapp_xact_deferred(PgappXactPhase phase, PgappXactAction fn)
{
	List	   *args = NIL;
	ListCell   *lc;

	foreach(lc, deferred)
	{
		DeferredAction *a = lfirst(lc);

		if (a->phase == phase && a->fn == fn)
			args = lappend(args, a->arg);
	}
	return args;
}

bool
pgapp_xact_preparing(void)
{
	return preparing;
}

/*
 * Run the actions of one phase: take them off the list first (an action may
 * defer more), then call each function once with its arguments.
 */
static void
run_phase(PgappXactPhase phase)
{
	List	   *mine = NIL;
	List	   *rest = NIL;
	ListCell   *lc;

	foreach(lc, deferred)
	{
		DeferredAction *a = lfirst(lc);

		if (a->phase == phase)
			mine = lappend(mine, a);
		else
			rest = lappend(rest, a);
	}
	deferred = rest;
	while (mine != NIL)
	{
		PgappXactAction fn = ((DeferredAction *) linitial(mine))->fn;
		List	   *args = NIL;
		List	   *others = NIL;

		foreach(lc, mine)
		{
			DeferredAction *a = lfirst(lc);

			if (a->fn == fn)
				args = lappend(args, a->arg);
			else
				others = lappend(others, a);
		}
		mine = others;
		fn(args);
	}
}

static void
defer_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (deferred != NIL)
			{
				MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

				run_phase(PGAPP_XACT_PRE_COMMIT);
				MemoryContextSwitchTo(old);
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (deferred != NIL)
			{
				MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

				preparing = true;
				PG_TRY();
				{
					run_phase(PGAPP_XACT_PRE_COMMIT);
				}
				PG_FINALLY();
				{
					preparing = false;
				}
				PG_END_TRY();
				MemoryContextSwitchTo(old);
			}
			break;
		case XACT_EVENT_COMMIT:
			if (deferred != NIL)
				run_phase(PGAPP_XACT_COMMIT);
			deferred = NIL;		/* freed with TopTransactionContext */
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
			deferred = NIL;		/* freed with TopTransactionContext */
			break;
		default:
			break;
	}
}

static void
defer_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;

	if (deferred == NIL)
		return;
	level = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, deferred)
		{
			DeferredAction *a = lfirst(lc);

			if (a->level >= level)
				a->level = level - 1;
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, deferred)
		{
			DeferredAction *a = lfirst(lc);

			if (a->level >= level)
				deferred = foreach_delete_current(deferred, lc);
		}
	}
}

/*-------------------------------------------------------------------------
 *
 * machine_int.h
 *	  Compiled status machines, shared by machine.c (definitions, cache,
 *	  SQL functions) and machine_trigger.c (the transition trigger).
 *
 * src/machines/machine_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_MACHINE_INT_H
#define PGAPP_MACHINE_INT_H

#include "core/defcache.h"
#include "machine.h"

typedef struct MachineState
{
	char	   *name;
	int			ntargets;
	int		   *targets;		/* indexes into states, in declared order */
	bool		initial;
} MachineState;

/* A cache entry (core/defcache.h): the compiled pgapp.machine row. */
typedef struct Machine
{
	PgappDefEntry head;			/* name (hash key), valid, memory context */
	bool		has_initial;
	int			nstates;
	MachineState *states;
} Machine;

/* The compiled machine called name (42704 if there is none). */
extern Machine *pgapp_machine_get(const char *name);

/* The index of state in m->states, or -1. */
extern int	pgapp_machine_state_index(const Machine *m, const char *state);

#endif							/* PGAPP_MACHINE_INT_H */

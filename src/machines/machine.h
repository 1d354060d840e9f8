/*-------------------------------------------------------------------------
 *
 * machine.h
 *	  What the rest of pgapp sees of status machines: the module entry and
 *	  the transition check that changesets' validate_transition uses.
 *
 * The machines' own declarations are in machine_int.h, which no file
 * outside this folder includes.
 *
 * src/machines/machine.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_MACHINE_H
#define PGAPP_MACHINE_H

#include "core/module.h"

/* Whether a machine allows moving from one state to another. */
typedef enum MachineTransition
{
	MACHINE_TRANSITION_OK,
	MACHINE_TRANSITION_FORBIDDEN,	/* known states, move not allowed */
	MACHINE_TRANSITION_NOT_INITIAL, /* from NULL to a state that is not
									 * initial */
	MACHINE_TRANSITION_UNKNOWN_STATE	/* to_state is not a state of the
										 * machine */
} MachineTransition;

/* 42704 (with a hint) unless machine exists; 22023/42622 for a bad name. */
extern void pgapp_machine_check_exists(const char *machine);

/*
 * May machine move from from_state (NULL: a new row) to to_state?  42704
 * when the machine does not exist.
 */
extern MachineTransition pgapp_machine_check(const char *machine, const char *from_state,
											 const char *to_state);

extern const PgappModule pgapp_machines_module;

#endif							/* PGAPP_MACHINE_H */

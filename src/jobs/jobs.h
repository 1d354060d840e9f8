/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  The job queue: what pgapp.c needs (its module).
 *
 * src/jobs/jobs.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_JOBS_H
#define PGAPP_JOBS_H

#include "core/module.h"

extern const PgappModule pgapp_jobs_module;

#endif							/* PGAPP_JOBS_H */

/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  The job queue (jobs.c, jobs_shmem.c, jobs_launcher.c, jobs_worker.c).
 *
 * src/jobs.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_JOBS_H
#define PGAPP_JOBS_H

#include "core/module.h"
#include "core/settings.h"

/* the most arguments a pgapp._job_* function called as the owner takes, caller excluded */
#define JOBS_MAX_CALL_ARGS 9

extern const PgappModule pgapp_jobs_module;
extern bool pgapp_jobs_database_allowed(const char *dbname);

#endif							/* PGAPP_JOBS_H */

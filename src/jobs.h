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

#include "pgapp.h"

/* the most arguments a pgapp._job_* function called as the owner takes, caller excluded */
#define JOBS_MAX_CALL_ARGS 9

extern int	pgapp_jobs_retention;
extern int	pgapp_jobs_max_args_size;
extern int	pgapp_jobs_max_batch;
extern int	pgapp_jobs_max_queued_per_role;
extern int	pgapp_jobs_max_workers;
extern int	pgapp_jobs_batch_size;
extern int	pgapp_jobs_commit_interval;
extern int	pgapp_jobs_idle_timeout;
extern int	pgapp_jobs_timeout;
extern int	pgapp_jobs_circuit_cooldown;
extern char *pgapp_databases;
extern const PgappModule pgapp_jobs_module;
extern bool pgapp_jobs_database_allowed(const char *dbname);

#endif							/* PGAPP_JOBS_H */

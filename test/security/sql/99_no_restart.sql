--
-- security/99_no_restart: no attack of this suite crashed a backend.  A crash
-- makes the postmaster restart every process, the housekeeper included, so its
-- pid and start time would differ from those 00_setup noted.
--
SELECT count(*) AS same_housekeeper
  FROM pg_stat_activity a JOIN public.boot_marker b USING (pid, backend_start)
 WHERE a.backend_type = 'pgapp housekeeper';

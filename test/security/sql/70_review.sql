--
-- security/70_review: holes found by the attacker's review of issue 15.
--
\set ECHO none
-- wait until no job of queue rev is left to run (at most 20 s)
CREATE FUNCTION pg_temp.wait_queue(q text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..2000 LOOP
        IF NOT EXISTS (SELECT FROM pgapp.job WHERE queue = q
                        AND state NOT IN ('completed', 'discarded', 'cancelled', 'retryable')) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'jobs of queue % still waiting after 20 s', q;
END $$;
\set ECHO all

-- 1. A large-object descriptor a job leaves open is closed with the job.
--    lo_open checks the opener's rights once; the descriptor is a number
--    good until the transaction ends, and the jobs of a batch share one.
--    The victim's job opens its own large object and returns; the
--    attacker's jobs, queued after it in the same worker process, read
--    descriptor 0.
SELECT pgapp.create_queue('rev', 1);
CREATE TABLE public.lo_seen (who text, what text, xid xid8);
GRANT INSERT ON public.lo_seen TO sec_attacker, sec_victim;
SET ROLE sec_victim;
CREATE FUNCTION public.victim_lo(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE o oid := lo_from_bytea(0, 'victim secret'::bytea);
BEGIN
    INSERT INTO public.lo_seen VALUES ('victim', 'fd ' || lo_open(o, 262144), pg_current_xact_id());
    RETURN '{}';
END $$;
RESET ROLE;
SET ROLE sec_attacker;
CREATE FUNCTION public.attacker_lo(args jsonb, job pgapp.job_info) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    BEGIN
        r := convert_from(loread(0, 100), 'UTF8');
    EXCEPTION WHEN OTHERS THEN
        r := SQLSTATE;
    END;
    INSERT INTO public.lo_seen VALUES ('attacker', r, pg_current_xact_id());
    RETURN '{}';
END $$;
RESET ROLE;
SELECT pgapp.pause_queue('rev');
SET ROLE sec_attacker;
SELECT count(pgapp.enqueue('rev', 'public.attacker_lo', '{}', max_attempts => 1)) FROM generate_series(1, 20);
SET ROLE sec_victim;
SELECT pgapp.enqueue('rev', 'public.victim_lo', '{}', max_attempts => 1) IS NOT NULL AS enqueued;
SET ROLE sec_attacker;
SELECT count(pgapp.enqueue('rev', 'public.attacker_lo', '{}', max_attempts => 1)) FROM generate_series(1, 40);
RESET ROLE;
SELECT pgapp.resume_queue('rev');
SELECT pg_temp.wait_queue('rev');
SELECT state, count(*) FROM pgapp.job WHERE queue = 'rev' GROUP BY 1;
-- some attacker job ran after the victim's in its transaction (the setting
-- of the attack), and none of them could read descriptor 0 (42704)
SELECT count(*) > 0 AS attacker_shared_the_transaction
  FROM public.lo_seen a JOIN public.lo_seen v USING (xid)
 WHERE a.who = 'attacker' AND v.who = 'victim';
SELECT who, what, count(*) FROM public.lo_seen WHERE who = 'attacker' GROUP BY 1, 2;

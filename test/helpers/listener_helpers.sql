-- test/helpers/listener_helpers.sql: a second connection that LISTENs, for the
-- pg_regress files that check what broadcasts deliver (\i after
-- regress_helpers.sql).  Waiting is a bounded poll for a given event, never a
-- blind sleep; the absence of a message is shown by a marker sent after it,
-- since notifications arrive in commit order.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
CREATE TEMP TABLE got (n serial, channel text, message jsonb);
-- wait (at most 10 s) until how_many messages with this event have arrived
CREATE FUNCTION pg_temp.wait_for(event_name text, how_many integer DEFAULT 1) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1000 LOOP
        INSERT INTO got (channel, message) SELECT notify_name, extra::jsonb FROM dblink_get_notify('listener');
        IF (SELECT count(*) FROM got WHERE message ->> 'event' = event_name) >= how_many THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'fewer than % "%" messages within 10 s', how_many, event_name;
END
$$;
-- wait (at most 10 s) until a query returns true: for counters a background
-- worker updates after the commit whose messages the listener already has
CREATE FUNCTION pg_temp.wait_until(condition_sql text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1..1000 LOOP
        EXECUTE condition_sql INTO ok;
        IF ok THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'not true within 10 s: %', condition_sql;
END
$$;
-- what arrived, in order, without the varying id and time (and the payload
-- keys named), then forget it
CREATE FUNCTION pg_temp.received(drop_payload_keys text[] DEFAULT '{}')
RETURNS TABLE (channel text, message jsonb) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT g.channel,
               CASE WHEN g.message ? 'payload'
                    THEN jsonb_set(g.message - 'id' - 'at', '{payload}', (g.message -> 'payload') - drop_payload_keys)
                    ELSE g.message - 'id' - 'at' END
          FROM got AS g ORDER BY g.n;
    DELETE FROM got;
END
$$;
-- subscribe the listener to a topic; returns its channel
CREATE FUNCTION pg_temp.listen(topic text) RETURNS text LANGUAGE sql AS $$
    SELECT c FROM dblink('listener', format('SELECT pgapp.subscribe(%L)', topic)) AS t(c text)
$$;
SELECT dblink_connect('listener', format('host=%s port=%s dbname=%s',
    split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
    current_database())) AS connected;

-- bench/ratelimit/schema.sql: the PL/pgSQL fixed-window limiter on an
-- UNLOGGED table that check_rate is compared with (the usual table-based way).
CREATE EXTENSION IF NOT EXISTS pgapp;
CREATE UNLOGGED TABLE rate_counter (
    key           text PRIMARY KEY,
    window_start  bigint NOT NULL,
    count         int NOT NULL
);
CREATE FUNCTION plpgsql_check_rate(p_key text, p_max int, p_window int) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    w bigint := (extract(epoch FROM clock_timestamp())::bigint / p_window) * p_window;
    c int;
BEGIN
    INSERT INTO rate_counter AS r (key, window_start, count) VALUES (p_key, w, 1)
    ON CONFLICT (key) DO UPDATE
       SET count = CASE WHEN r.window_start = w THEN r.count + 1 ELSE 1 END,
           window_start = w
    RETURNING count INTO c;
    RETURN c <= p_max;
END
$$;
-- a named limiter with its own limits and 10k reserved keys (check_named.sql)
SELECT pgapp.create_limiter('bench', 10000, 1000000, 60);

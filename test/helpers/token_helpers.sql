-- test/helpers/token_helpers.sql: an independent HS256/HS512 signer in plain
-- SQL (PostgreSQL's own sha256()/sha512(), RFC 2104 HMAC), to make tokens
-- pgapp.encode_token never would: other algorithms, chosen exp/nbf/iat,
-- odd headers.  Functions in pg_temp, so call them as pg_temp.<name>.
--
--   pg_temp.b64url(bytea) -> text                unpadded base64url
--   pg_temp.hmac(key bytea, msg bytea, alg text) -> bytea   alg sha256 | sha512
--   pg_temp.jwt(header text, payload text, secret text, alg text DEFAULT 'sha256') -> text
--   pg_temp.now_s() -> bigint                    the clock in Unix seconds
--   pg_temp.token_error(token text) -> text      'ok' or 'SQLSTATE: message (detail)'
--   pg_temp.segment(token text, n int) -> text   the text of segment n (1 header, 2 payload)
CREATE FUNCTION pg_temp.b64url(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT translate(encode(b, 'base64'), E'+/=\n', '-_')
$$;

CREATE FUNCTION pg_temp.hmac(key bytea, msg bytea, alg text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    bs int := CASE alg WHEN 'sha256' THEN 64 ELSE 128 END;
    k bytea;
    ipad bytea;
    opad bytea;
BEGIN
    IF length(key) > bs THEN
        key := CASE alg WHEN 'sha256' THEN sha256(key) ELSE sha512(key) END;
    END IF;
    k := key || decode(repeat('00', bs - length(key)), 'hex');
    ipad := k;
    opad := k;
    FOR i IN 0 .. bs - 1 LOOP
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);
        opad := set_byte(opad, i, get_byte(k, i) # 92);
    END LOOP;
    IF alg = 'sha256' THEN
        RETURN sha256(opad || sha256(ipad || msg));
    END IF;
    RETURN sha512(opad || sha512(ipad || msg));
END $$;

CREATE FUNCTION pg_temp.jwt(header text, payload text, secret text, alg text DEFAULT 'sha256')
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT s || '.' || pg_temp.b64url(pg_temp.hmac(convert_to(secret, 'UTF8'), convert_to(s, 'UTF8'), alg))
      FROM (SELECT pg_temp.b64url(convert_to(header, 'UTF8')) || '.'
                   || pg_temp.b64url(convert_to(payload, 'UTF8')) AS s) AS t
$$;

CREATE FUNCTION pg_temp.now_s() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT floor(extract(epoch FROM clock_timestamp()))::bigint
$$;

CREATE FUNCTION pg_temp.token_error(token text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    det text;
BEGIN
    PERFORM pgapp.decode_token(token);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(det, '') || ')', '');
END $$;

-- the text a base64url segment encodes (for showing headers and payloads)
CREATE FUNCTION pg_temp.segment(token text, n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_from(decode(s || repeat('=', (4 - length(s) % 4) % 4), 'base64'), 'UTF8')
      FROM (SELECT translate(split_part(token, '.', n), '-_', '+/') AS s) AS t
$$;

-- test/helpers/regress_helpers.sql: helpers for the pg_regress files (\i from test/regress/sql/ and test/security/sql/).
--
-- show(query) runs a statement and prints the error it raises, field by field,
-- so that SQLSTATE, DETAIL and the column/table fields are part of the output.
CREATE FUNCTION pg_temp.show(query text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text; sch text; tab text; col text;
BEGIN
    EXECUTE query;
    RETURN NEXT 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
        det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT,
        sch = SCHEMA_NAME, tab = TABLE_NAME, col = COLUMN_NAME;
    RETURN NEXT 'sqlstate: ' || st;
    RETURN NEXT 'message:  ' || msg;
    IF det <> '' THEN RETURN NEXT 'detail:   ' || det; END IF;
    IF hnt <> '' THEN RETURN NEXT 'hint:     ' || hnt; END IF;
    IF sch <> '' THEN RETURN NEXT 'schema:   ' || sch; END IF;
    IF tab <> '' THEN RETURN NEXT 'table:    ' || tab; END IF;
    IF col <> '' THEN RETURN NEXT 'column:   ' || col; END IF;
END
$$;


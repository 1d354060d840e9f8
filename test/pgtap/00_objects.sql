-- test/pgtap/00_objects.sql
-- The API contract: every object the extension owns.  Any change to the
-- public surface shows up here as a diff and must be deliberate.
BEGIN;
SELECT plan(4);

SELECT set_eq(
    $$SELECT pg_catalog.pg_describe_object(classid, objid, objsubid)
        FROM pg_catalog.pg_depend
       WHERE refclassid = 'pg_catalog.pg_extension'::regclass
         AND refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pgapp')
         AND deptype = 'e'$$,
    ARRAY[
        'function pgapp.error_mode()',
        'function pgapp.error_stats()',
        'function pgapp.error_stats_reset()',
        'function pgapp.health()',
        'function pgapp.report_error(integer,jsonb,text,text,text,regclass)',
        'function pgapp.version()',
        'type pgapp.error_stat',
        'view pgapp.error_stats'
    ],
    'the extension owns exactly the objects of its public contract'
);

SELECT has_schema('pgapp');
SELECT has_role('pgapp_admin', 'installing pgapp creates the pgapp_admin role');

SELECT is(
    (SELECT extrelocatable FROM pg_catalog.pg_extension WHERE extname = 'pgapp'),
    false,
    'pgapp is not relocatable'
);

SELECT * FROM finish();
ROLLBACK;

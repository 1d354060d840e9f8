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
        'function pgapp."all"(pgapp.query)',
        'function pgapp."cast"(regclass,jsonb,jsonb,text[])',
        'function pgapp."from"(regclass)',
        'function pgapp._changeset_trigger()',
        'function pgapp._definitions_changed()',
        'function pgapp._rate_buckets()',
        'function pgapp._rate_limiter_changed()',
        'function pgapp._rate_limiters()',
        'function pgapp._rate_simulate(text,integer,integer,integer,double precision[])',
        'function pgapp._transition_trigger()',
        'function pgapp.add_error(pgapp.changeset,text,text,jsonb)',
        'function pgapp.allow_sort(regclass,text[])',
        'function pgapp.allowed_transitions(text,text)',
        'function pgapp.apply_params(pgapp.query,jsonb,jsonb)',
        'function pgapp.changeset(text,jsonb,jsonb)',
        'function pgapp.check_constraint(pgapp.changeset,text,text,text)',
        'function pgapp.check_rate(text,integer,integer,text,integer,text)',
        'function pgapp.check_rate(text,text)',
        'function pgapp.count(pgapp.query)',
        'function pgapp.create_limiter(text,integer,integer,integer,text,integer)',
        'function pgapp.define_changeset(text,regclass,text[],jsonb)',
        'function pgapp.define_machine(text,jsonb,text[])',
        'function pgapp.define_scope(regclass,text,text)',
        'function pgapp.define_stat(regclass,text,text)',
        'function pgapp.drop_changeset(text)',
        'function pgapp.drop_limiter(text,boolean)',
        'function pgapp.drop_machine(text)',
        'function pgapp.enforce_transitions(regclass,name,text,boolean)',
        'function pgapp.error_mode()',
        'function pgapp.error_stats()',
        'function pgapp.error_stats_reset()',
        'function pgapp.errors(pgapp.changeset)',
        'function pgapp.escape_like(text)',
        'function pgapp.exclusion_constraint(pgapp.changeset,text,text,text)',
        'function pgapp.filter_by(pgapp.query,text,anyelement)',
        'function pgapp.filter_range(pgapp.query,text,anycompatible,anycompatible)',
        'function pgapp.foreign_key_constraint(pgapp.changeset,text,text,text)',
        'function pgapp.health()',
        'function pgapp.insert(pgapp.changeset)',
        'function pgapp.is_valid(pgapp.changeset)',
        'function pgapp.json_schema(text)',
        'function pgapp.json_schema_type(regtype,integer)',
        'function pgapp.one(pgapp.query)',
        'function pgapp.openapi(name)',
        'function pgapp.paginate(pgapp.query,integer,integer)',
        'function pgapp.paginate_after(pgapp.query,text,integer)',
        'function pgapp.preload(pgapp.query,text[])',
        'function pgapp.rate_limit(text,integer,integer,text,integer,text)',
        'function pgapp.rate_limit(text,text)',
        'function pgapp.rate_limit_request()',
        'function pgapp.rate_reset(text,text)',
        'function pgapp.rate_stats()',
        'function pgapp.rate_sweep()',
        'function pgapp.report_error(integer,jsonb,text,text,text,regclass)',
        'function pgapp.scope(pgapp.query,text)',
        'function pgapp.search(pgapp.query,text,text[])',
        'function pgapp.sort_by(pgapp.query,text,text)',
        'function pgapp.to_sql(pgapp.query)',
        'function pgapp.transition_allowed(text,text,text)',
        'function pgapp.unique_constraint(pgapp.changeset,text,text,text)',
        'function pgapp.update(pgapp.changeset)',
        'function pgapp.validate_acceptance(pgapp.changeset,text,text)',
        'function pgapp.validate_confirmation(pgapp.changeset,text,text)',
        'function pgapp.validate_exclusion(pgapp.changeset,text,jsonb,text)',
        'function pgapp.validate_format(pgapp.changeset,text,text,text)',
        'function pgapp.validate_future(pgapp.changeset,text,text)',
        'function pgapp.validate_inclusion(pgapp.changeset,text,jsonb,text)',
        'function pgapp.validate_length(pgapp.changeset,text,integer,integer,integer,text)',
        'function pgapp.validate_number(pgapp.changeset,text,numeric,numeric,numeric,numeric,numeric,text)',
        'function pgapp.validate_required(pgapp.changeset,text[],text)',
        'function pgapp.validate_table(regclass,text)',
        'function pgapp.validate_transition(pgapp.changeset,text,text,text)',
        'function pgapp.version()',
        'function pgapp.with_stats(pgapp.query,text[])',
        'sequence pgapp.transition_log_id_seq',
        'table pgapp.changeset_def',
        'table pgapp.machine',
        'table pgapp.query_expression',
        'table pgapp.rate_limiter',
        'table pgapp.rate_plan',
        'table pgapp.sort_allowed',
        'table pgapp.transition_log',
        'type pgapp.changeset',
        'type pgapp.error_stat',
        'type pgapp.query',
        'type pgapp.rate_decision',
        'view pgapp.error_stats',
        'view pgapp.rate_buckets',
        'view pgapp.rate_limiters',
        'view pgapp.rate_stats'
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

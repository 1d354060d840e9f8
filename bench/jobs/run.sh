#!/usr/bin/env bash
# bench/jobs/run.sh: pgapp's job queue against graphile-worker and pg-boss, on
# one temporary cluster in the same run (each system in a database of its own).
#
#   bash bench/jobs/run.sh            ROUNDS=3 SIZES="20000 100000" LATENCY_N=500
#   VARIANTS="pgapp graphile-tuned" EXTRA= LATENCY= bash bench/jobs/run.sh     a subset
#   VARIANTS= EXTRA= bash bench/jobs/run.sh     the latency runs only
#   KEEP=1 ...                        keep the cluster's directory and log
#
# 1. Throughput: SIZES no-op jobs enqueued in bulk before any worker runs,
#    concurrency 10, time from start until every job is completed:
#    - pgapp: queue "bench" created paused (concurrency 10), enqueue_many of
#      all the jobs in one call, then resume_queue; from the resume's
#      statement start to the commit timestamp of the last completion
#      (max pg_xact_commit_timestamp(xmin) of the completed rows; the time
#      by max(completed_at) is printed beside it);
#    - graphile-default / graphile-tuned: graphile_worker.add_jobs in one
#      statement, then run() with concurrency 10 (tuned: preset.worker =
#      {localQueue: {size: 500}, completeJobBatchDelay: 0, failJobBatchDelay: 0},
#      its performance page's settings); from run() until the jobs table is
#      empty (graphile deletes completed jobs);
#    - pg-boss: insert() of all the jobs in one call, then work() with
#      batchSize 10 and burstWhenBatchFull; from work() until none is
#      unfinished;
#    - pgapp-b100 / pgapp-b2000 (EXTRA; any pgapp-b<N>): pgapp with
#      pgapp.jobs_batch_size 100 and 2000 (ALTER SYSTEM + pg_reload_conf), the
#      default being 1000;
#    Before each timed part: VACUUM ANALYZE of the system's database and a
#    CHECKPOINT.  ROUNDS rounds, interleaved (every size and variant once per
#    round); the medians count.  A run still going after RUN_TIMEOUT (60 s)
#    stops and reports completed jobs / elapsed, marked *; that variant is
#    not run again at that size.
# 2. Latency on an idle queue (LATENCY; run first, on the fresh cluster, as the
#    throughput runs leave autovacuum work behind, after a VACUUM ANALYZE of each
#    database and a CHECKPOINT): LATENCY_N jobs enqueued one at a time,
#    each after the previous one ran and LATENCY_PAUSE_MS more, after one
#    warm-up job (pgapp's queue then has a live idle worker, which stays
#    pgapp.jobs_idle_timeout = 60 s): commit -> handler start, p50 and p99.
#    The commit time is pg_xact_commit_timestamp of the enqueuing
#    transaction's xid (the inserted row's xmin: a worker's claim rewrites
#    the row, so the xid is read in that transaction);
#    the start is clock_timestamp() in pgapp's SQL worker, and
#    performance.timeOrigin + performance.now() in the JS handlers (corrected
#    by the measured offset to the server's clock, printed; it is ~0).
#    graphile-worker tuned (LISTEN/NOTIFY); pg-boss with useListenNotify and
#    a notify queue (without it, a worker polls every 2 s).
#
# Needs node/npm (npm ci of bench/jobs/package-lock.json is run here).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SIZES=${SIZES:-"20000 100000"}
VARIANTS=${VARIANTS-"pgapp graphile-tuned graphile-default pg-boss"}
EXTRA=${EXTRA-"pgapp-b100 pgapp-b2000"}
LATENCY=${LATENCY-"pgapp graphile-tuned pg-boss"}
LATENCY_N=${LATENCY_N:-500}
LATENCY_PAUSE_MS=${LATENCY_PAUSE_MS:-20}
export RUN_TIMEOUT=${RUN_TIMEOUT:-60}
source "$HERE/../lib.sh"

if [ -f "$HERE/package-lock.json" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
else
    (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# what is measured: the installed build, loaded when the cluster starts
REPO=$(cd "$HERE/../.." && pwd)
so="$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/pgapp.so"
build="pgapp: $so $(md5sum "$so" | cut -c1-12), installed $(date -u -r "$so" '+%H:%M:%S');"
build="$build repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
git -C "$REPO" diff --quiet HEAD -- src sql 2>/dev/null || build="$build + uncommitted changes in src/ or sql/"
bench_cluster jobs "${BENCH_PORT:-55450}" "shared_preload_libraries = 'pgapp'
max_worker_processes = 32
track_commit_timestamp = on"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres

psql_db() { local db=$1; shift; as_pg "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"; }
for db in pgapp graphile pgboss; do bench_psql -c "CREATE DATABASE $db"; done
psql_db pgapp -f "$HERE/schema.sql" >/dev/null
node "$HERE/graphile.mjs" setup
node "$HERE/pgboss.mjs" setup

# A pgapp run: n jobs, batch size b (empty: the default).  Prints
# "jobs/s capped"; the details go to $DIR/pgapp.log.
pgapp_run() {
    local n=$1 b=$2 out
    if [ -n "$b" ]; then
        bench_psql -c "ALTER SYSTEM SET pgapp.jobs_batch_size = $b" -c 'SELECT pg_reload_conf()' >/dev/null
    else
        bench_psql -c 'ALTER SYSTEM RESET pgapp.jobs_batch_size' -c 'SELECT pg_reload_conf()' >/dev/null
    fi
    # a fresh queue, with no worker left from the previous run
    psql_db pgapp -At >/dev/null <<SQL
SELECT pgapp.pause_queue('bench') FROM pgapp.queue WHERE name = 'bench';
TRUNCATE pgapp.job;
SELECT pgapp.drop_queue('bench', force => true) FROM pgapp.queue WHERE name = 'bench';
DO \$\$
BEGIN
    FOR i IN 1..3000 LOOP
        IF NOT EXISTS (SELECT FROM pgapp.workers WHERE queue = 'bench') THEN RETURN; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'the workers of the dropped queue "bench" are still there after 30 s';
END \$\$;
SELECT pgapp.create_queue('bench', 10, paused => true);
SET pgapp.jobs_max_batch = 0;
SELECT cardinality(pgapp.enqueue_many('bench', 'bench_noop', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, $n))));
SQL
    psql_db pgapp -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
    out=$(psql_db pgapp -At -F ' ' <<SQL
SELECT current_setting('pgapp.jobs_batch_size') AS batch, count(*) AS queued FROM pgapp.job WHERE queue = 'bench' \gset
SELECT now() AS t0 FROM pgapp.resume_queue('bench') \gset
\\! node "$HERE/pgapp.mjs" wait $RUN_TIMEOUT
SELECT now() AS t_end, EXISTS (SELECT FROM pgapp.job WHERE queue = 'bench'
                               AND state NOT IN ('completed', 'discarded', 'cancelled')) AS capped \gset
SELECT pgapp.pause_queue('bench') WHERE :'capped' \g /dev/null
SELECT round(count(*) FILTER (WHERE state = 'completed')
             / extract(epoch FROM CASE WHEN :'capped' THEN :'t_end' ELSE max(pg_xact_commit_timestamp(xmin)) END - :'t0')),
       CASE WHEN :'capped' THEN 1 ELSE 0 END,
       'batch=' || :'batch', 'queued=' || :'queued',
       'completed=' || count(*) FILTER (WHERE state = 'completed'),
       'seconds=' || round(extract(epoch FROM max(pg_xact_commit_timestamp(xmin)) - :'t0'), 3),
       'by_completed_at=' || round(extract(epoch FROM max(completed_at) - :'t0'), 3),
       'first_claim_after=' || round(extract(epoch FROM min(attempted_at) - :'t0'), 3),
       'workers=' || count(DISTINCT attempted_by),
       'claims=' || count(DISTINCT (attempted_by, attempted_at)),
       'run_commits=' || count(DISTINCT pg_xact_commit_timestamp(xmin)) FILTER (WHERE state = 'completed'),
       CASE WHEN :'capped' THEN 'CAPPED after $RUN_TIMEOUT s' ELSE '' END
  FROM pgapp.job WHERE queue = 'bench';
SQL
)
    echo "pgapp n=$n ${out#* * }" >>"$DIR/pgapp.log"
    case "$out" in
        *"queued=$n completed="*) echo "${out%% batch=*}" ;;
        *) echo "pgapp: $out" >&2; return 1 ;;
    esac
    if [[ "$out" != *"completed=$n "* && "$out" != *CAPPED* ]]; then
        echo "pgapp: not every job completed: $out" >&2
        psql_db pgapp -c "SELECT state, count(*) FROM pgapp.job WHERE queue = 'bench' GROUP BY 1" \
            -c "SELECT * FROM pgapp.job_errors LIMIT 5" >&2
        return 1
    fi
}

# "jobs/s capped" from a peer's RESULT line (the line itself to $DIR/peers.log)
peer_result() { tee -a "$DIR/peers.log" | sed -n 's/^RESULT .* jobs_per_s=\([0-9]*\) .*capped=\([01]\).*/\1 \2/p'; }

graphile_run() {
    local n=$1 config=$2
    psql_db graphile -At >/dev/null <<SQL
DELETE FROM graphile_worker._private_jobs;
SELECT count(*) FROM graphile_worker.add_jobs(
    (SELECT array_agg(ROW('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec)
       FROM generate_series(1, $n)));
SQL
    psql_db graphile -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
    node "$HERE/graphile.mjs" throughput "$config" "$n" | peer_result
}

pgboss_run() { node "$HERE/pgboss.mjs" throughput "$1" | peer_result; }

one_run() {
    case "$1" in
        pgapp) pgapp_run "$2" "" ;;
        pgapp-b*) pgapp_run "$2" "${1#pgapp-b}" ;;
        graphile-default) graphile_run "$2" default ;;
        graphile-tuned) graphile_run "$2" tuned ;;
        pg-boss) pgboss_run "$2" ;;
        *) echo "unknown variant $1" >&2; return 1 ;;
    esac
}

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg);" \
     "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); node $(node --version);" \
     "graphile-worker $(node -p "require('$HERE/node_modules/graphile-worker/package.json').version");" \
     "pg-boss $(node -p "require('$HERE/node_modules/pg-boss/package.json').version"); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "$build"
# latency first, on a fresh cluster: the throughput runs leave tables for
# autovacuum to work on, and that noise belongs to neither system
if [ -n "${LATENCY// /}" ]; then
    # the setup's writes (three databases, the peers' migrations) would otherwise
    # be vacuumed, analyzed and checkpointed while the latency runs
    for db in pgapp graphile pgboss; do psql_db "$db" -c 'VACUUM ANALYZE'; done
    bench_psql -c 'CHECKPOINT' >/dev/null
    echo "latency on an idle queue: $LATENCY_N jobs enqueued one at a time (${LATENCY_PAUSE_MS} ms apart), commit -> handler start (ms)"
    for v in $LATENCY; do
        case "$v" in
            pgapp) node "$HERE/pgapp.mjs" latency "$LATENCY_N" "$LATENCY_PAUSE_MS" ;;
            graphile-tuned) node "$HERE/graphile.mjs" latency "$LATENCY_N" "$LATENCY_PAUSE_MS" ;;
            pg-boss) node "$HERE/pgboss.mjs" latency "$LATENCY_N" "$LATENCY_PAUSE_MS" ;;
            *) echo "no latency run for $v" >&2 ;;
        esac | sed 's/^RESULT /  /'
    done
    # the latency queue's idle worker leaves
    psql_db pgapp -At -c "SELECT pgapp.drop_queue('lat', force => true)" >/dev/null
fi

declare -A runs capped
ALL="$VARIANTS $EXTRA"
if [ -n "${ALL// /}" ]; then
    echo "throughput: jobs/s from start until all completed, concurrency 10, median of $ROUNDS interleaved rounds" \
         "(a run stops after RUN_TIMEOUT = $RUN_TIMEOUT s: then completed/elapsed, marked *, and that size is not run again for that variant)"
    for round in $(seq 1 "$ROUNDS"); do
        for n in $SIZES; do
            for v in $ALL; do
                [ -n "${capped[$v,$n]:-}" ] && continue
                read -r t c < <(one_run "$v" "$n")
                [ -n "$t" ] || { echo "$v: no result" >&2; exit 1; }
                mark=
                if [ "$c" = 1 ]; then mark='*'; capped[$v,$n]=1; fi
                runs[$v,$n]="${runs[$v,$n]:-} $t$mark"
                echo "  round $round, $n jobs, $v: $t jobs/s${mark:+ (capped at $RUN_TIMEOUT s)}" >&2
            done
        done
    done
    printf '%-18s' "jobs/s"
    for n in $SIZES; do printf '%14s' "$n jobs"; done
    echo
    for v in $ALL; do
        printf '%-18s' "$v"
        for n in $SIZES; do
            r[$v,$n]=$(echo "${runs[$v,$n]//\*/}" | median)
            printf '%14s' "${r[$v,$n]}${capped[$v,$n]:+*}"
        done
        echo "   (runs:$(for n in $SIZES; do printf ' [%s]' "${runs[$v,$n]# }"; done))"
    done
    if [[ " $ALL " == *" pgapp "* ]]; then
        echo "ratios of the medians:"
        for n in $SIZES; do
            line="  $n jobs:"
            for v in $ALL; do
                [ "$v" = pgapp ] && continue
                line="$line $(awk -v a="${r[pgapp,$n]}" -v b="${r[$v,$n]}" -v v="$v" 'BEGIN {
                    printf "pgapp/%s %.2fx,", v, a / b }')"
            done
            echo "${line%,}"
        done
    fi
    if [ -f "$DIR/pgapp.log" ]; then
        echo "pgapp runs (seconds: resume -> last completion's commit, and -> max(completed_at); claims: claim statements;" \
             "run_commits: transactions that completed jobs):"
        sed 's/^/  /' "$DIR/pgapp.log"
    fi
    psql_db pgapp -At -c "SELECT pgapp.drop_queue('bench', force => true) FROM pgapp.queue WHERE name = 'bench'" >/dev/null
    bench_psql -c 'ALTER SYSTEM RESET pgapp.jobs_batch_size' -c 'SELECT pg_reload_conf()' >/dev/null
fi

# graphile-worker's first start looks for its migrations table: expected
problems=$(grep -E '(ERROR|FATAL|PANIC):' "$DIR/server.log" | grep -cv 'relation "graphile_worker.migrations" does not exist' || true)
echo "server log: $problems unexpected ERROR/FATAL/PANIC line(s)"
awk '/(ERROR|FATAL|PANIC):/ { show = !/graphile_worker.migrations/; if (show) print; next }
     show && /(CONTEXT|DETAIL|HINT|STATEMENT):/ { print; next } { show = 0 }' "$DIR/server.log" | head -30

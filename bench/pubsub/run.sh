#!/usr/bin/env bash
# bench/pubsub/run.sh: what a broadcast costs the writer, and how long it
# takes to arrive.  Writer transactions per second (pgbench -M prepared) at
# 1, 8 and 32 clients for: INSERT alone; INSERT plus a second row of the
# outbox's shape (the floor of the outbox's cost); INSERT + raw pg_notify (~200-byte
# payload); INSERT + pgapp.broadcast in direct mode; in outbox mode; and an
# INSERT into a table with pgapp.broadcast_changes (outbox) -- with one
# listener draining the channel, all on one temporary cluster in the same
# run.  Then the delivery latency from COMMIT to the listener, direct and
# outbox (latency.js).
#
#   bash bench/pubsub/run.sh        SECONDS_PER_RUN=5 ROUNDS=3 CLIENTS="1 8 32" LATENCY_N=500
#   VARIANTS="insert insert_outbox" LISTENER=0 bash bench/pubsub/run.sh    a subset, nobody listening
#   VARIANTS="insert insert_two_rows insert_wal_message" LISTENER=0 ...     the floors: any outbox that
#                                   makes a broadcast durable writes at least a WAL record (a
#                                   transactional logical message here), most a second row
#   KEEP=1 ...                                                              keep the cluster's directory and log
#
# Every variant is one statement (WITH ... INSERT ... RETURNING feeds the
# broadcast), so that all make the same round trips.
#
# Each variant runs ROUNDS times interleaved with the others; the median
# counts.  Needs node and the npm packages of examples/clients/node (npm ci
# is run here).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LATENCY_N=${LATENCY_N:-500}
VARIANTS=${VARIANTS:-"insert insert_two_rows insert_notify insert_direct insert_outbox insert_changes"}
LISTENER=${LISTENER:-1}
source "$HERE/../lib.sh"

(cd "$REPO/examples/clients/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
bench_cluster pubsub "${BENCH_PORT:-55436}" "shared_preload_libraries = 'pgapp'"
BENCH_CLEANUP='[ -n "${DRAIN_PID:-}" ] && kill "$DRAIN_PID" 2>/dev/null || true'
bench_psql -f "$HERE/schema.sql" >/dev/null

export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
if [ "$LISTENER" = 1 ]; then
    node "$HERE/drain.js" >"$DIR/drain.out" 2>"$DIR/drain.err" &
    DRAIN_PID=$!
    for _ in $(seq 1 100); do grep -q listening "$DIR/drain.err" 2>/dev/null && break; sleep 0.1; done
fi

measure "$VARIANTS"
[ "$LISTENER" = 1 ] && echo "(one listener draining)"
[ "$VARIANTS" = "${VARIANTS/insert_changes/}" ] && exit 0   # a subset: no ratios
echo "ratios (same client count):"
for c in $CLIENTS; do
    awk -v i="${r[insert,$c]}" -v n="${r[insert_notify,$c]}" -v d="${r[insert_direct,$c]}" \
        -v o="${r[insert_outbox,$c]}" -v t="${r[insert_changes,$c]}" -v w="${r[insert_two_rows,$c]}" -v c="$c" 'BEGIN {
        printf "  %2d clients: two rows/insert %.2fx, notify/insert %.2fx, direct/insert %.2fx, outbox/insert %.2fx, changes/insert %.2fx; outbox/two rows %.2fx; direct cost vs pg_notify %.2fx\n",
               c, w / i, n / i, d / i, o / i, t / i, o / w, n / d }'
done
# every outbox message was delivered before the latency runs
for _ in $(seq 1 300); do
    [ "$(bench_psql -At -c 'SELECT count(*) FROM pgapp.outbox')" = 0 ] && break
    sleep 0.1
done
bench_psql -At \
    -c "SELECT 'outbox: pending ' || pending || ', delivered ' || delivered || ' in ' || batches || ' batch(es)' FROM pgapp.pubsub_outbox"
if [ -n "${DRAIN_PID:-}" ]; then
    kill "$DRAIN_PID"; wait "$DRAIN_PID" 2>/dev/null || true; DRAIN_PID=
    cat "$DIR/drain.out"
fi

echo "delivery latency (sequential writer, one listener):"
node "$HERE/latency.js" direct "$LATENCY_N"
node "$HERE/latency.js" outbox "$LATENCY_N"

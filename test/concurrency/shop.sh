#!/usr/bin/env bash
# test/concurrency/shop.sh: examples/shop.sql under real concurrency.
# 16 pgbench clients order one unit each of one hot product with 100 in
# stock, 400 orders in all: exactly 100 are sold (100 paid orders, 100 units
# in their items, stock 0), every other order is answered out_of_stock, and
# no client sees a deadlock (40P01) or a serialization failure (40001).
# Then 16 clients order two products in random item order ([A, B] or
# [B, A]): every order is sold and none deadlocks.  Checked in pgbench's
# output and in the server log written meanwhile.  Prints TAP.  Needs
# PGHOST/PGPORT/PGUSER/PGDATABASE of a server with pgapp preloaded and
# installed, pgbench on PATH or in $PG_BIN, and PGAPP_SERVER_LOG (the
# server's log file, when it can be read).
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
SERVER_LOG=${PGAPP_SERVER_LOG:-}

psql_q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
log_size() { if [ -r "$SERVER_LOG" ]; then stat -c %s "$SERVER_LOG"; else echo 0; fi; }
# the server log written since byte $1: deadlocks and serialization failures
log_conflicts() {
    [ -r "$SERVER_LOG" ] || { echo "(server log not readable)"; return; }
    tail -c +"$(($1 + 1))" "$SERVER_LOG" | grep -E 'deadlock detected|could not serialize' || true
}

# the queue "emails" first, without workers (concurrency 0): the confirmation
# jobs wait instead of running beside the race
psql_q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pgapp.queue WHERE name = 'emails') THEN
               PERFORM pgapp.create_queue('emails', 0); END IF; END \$\$"
psql_q -c "SET client_min_messages = warning" -1 -f "$HERE/../../examples/shop.sql" >/dev/null
psql_q -c "CREATE TABLE shop_race (run text NOT NULL, result jsonb NOT NULL)"

n=0
# --- one hot product, 100 units, 400 orders of one
hot=$(psql_q -c "INSERT INTO shop.products (name, price, stock) VALUES ('Hot item', 9.99, 100) RETURNING id")
cat > "$DIR/hot.sql" <<SQL
INSERT INTO shop_race SELECT 'hot', shop.create_order(:client_id + 1, '[{"product_id": $hot, "quantity": 1}]',
                                                     '{"card": "4242424242424242"}');
SQL
from=$(log_size)
rc=0
"$PG_BIN/pgbench" -n -c 16 -j 4 -t 25 -f "$DIR/hot.sql" >"$DIR/pgbench.log" 2>&1 || rc=$?
conflicts=$( (grep -E 'deadlock|could not serialize|40P01|40001' "$DIR/pgbench.log" || true; log_conflicts "$from") )

n=$((n + 1))
if [ "$rc" -ne 0 ]; then
    echo "not ok $n - hot product: pgbench failed (exit $rc)"
    sed 's/^/# /' "$DIR/pgbench.log"
else
    got=$(psql_q -F' ' -c "SELECT
        (SELECT count(*) FROM shop_race WHERE run = 'hot'),
        (SELECT count(*) FROM shop_race WHERE run = 'hot' AND result ->> 'ok' = 'true'),
        (SELECT count(*) FROM shop_race WHERE run = 'hot' AND result = jsonb_build_object('error', 'out_of_stock', 'product', 'Hot item')),
        (SELECT coalesce(sum(quantity), 0) FROM shop.order_items WHERE product_id = $hot),
        (SELECT stock FROM shop.products WHERE id = $hot),
        (SELECT count(*) FROM shop.orders AS o WHERE o.status = 'paid'
            AND EXISTS (SELECT FROM shop.order_items AS i WHERE i.order_id = o.id AND i.product_id = $hot)),
        (SELECT count(*) FROM shop.payments AS p JOIN shop.order_items AS i ON i.order_id = p.order_id WHERE i.product_id = $hot),
        (SELECT count(*) FROM pgapp.job WHERE worker = 'shop.confirmation_worker'::regproc)")
    if [ "$got" = "400 100 300 100 0 100 100 100" ]; then
        echo "ok $n - hot product: 16 clients, 400 orders for 100 units: exactly 100 sold (paid, paid for, confirmation enqueued), 300 out_of_stock, stock 0"
    else
        echo "not ok $n - hot product: orders, sold, out_of_stock, units in items, stock, paid orders, payments, jobs: $got (want 400 100 300 100 0 100 100 100)"
    fi
fi
n=$((n + 1))
if [ -z "$conflicts" ]; then
    echo "ok $n - hot product: no deadlock or serialization failure (pgbench output and server log)"
else
    echo "not ok $n - hot product: conflicts seen"
    echo "$conflicts" | sed 's/^/# /'
fi

# --- two products, items in either order, enough stock for every order
ab=$(psql_q -c "INSERT INTO shop.products (name, price, stock) VALUES ('Item A', 1.00, 10000), ('Item B', 2.00, 10000) RETURNING id" | paste -sd' ')
a=${ab% *}; b=${ab#* }
cat > "$DIR/ab.sql" <<SQL
\\set r random(0, 1)
INSERT INTO shop_race SELECT 'ab', shop.create_order(:client_id + 1,
    CASE :r WHEN 0 THEN '[{"product_id": $a, "quantity": 1}, {"product_id": $b, "quantity": 1}]'::jsonb
            ELSE '[{"product_id": $b, "quantity": 1}, {"product_id": $a, "quantity": 1}]'::jsonb END,
    '{"card": "4242424242424242"}');
SQL
from=$(log_size)
rc=0
"$PG_BIN/pgbench" -n -c 16 -j 4 -t 25 -f "$DIR/ab.sql" >"$DIR/pgbench.log" 2>&1 || rc=$?
conflicts=$( (grep -E 'deadlock|could not serialize|40P01|40001' "$DIR/pgbench.log" || true; log_conflicts "$from") )
n=$((n + 1))
if [ "$rc" -ne 0 ] || [ -n "$conflicts" ]; then
    echo "not ok $n - two products in either order: pgbench exit $rc, conflicts: ${conflicts:-none}"
    { cat "$DIR/pgbench.log"; echo "$conflicts"; } | sed 's/^/# /'
else
    got=$(psql_q -F' ' -c "SELECT
        (SELECT count(*) FROM shop_race WHERE run = 'ab' AND result ->> 'ok' = 'true'),
        (SELECT string_agg(stock::text, ' ' ORDER BY id) FROM shop.products WHERE id IN ($a, $b))")
    if [ "$got" = "400 9600 9600" ]; then
        echo "ok $n - two products in either order: 16 clients, 400 orders, all sold, no deadlock"
    else
        echo "not ok $n - two products in either order: sold, stock of A and B: $got (want 400 9600 9600)"
    fi
fi

psql_q -c "DROP TABLE shop_race"
echo "1..$n"

#!/usr/bin/env bash
# bench/auth/instructions.sh: instructions per call of each variant of
# bench/auth/run.sh, counted by valgrind's callgrind in a single-user
# backend: a count that other load on the machine does not move.
#
#   make install && bash bench/auth/instructions.sh
#
# Each variant runs N and 2N times, one transaction per call, in a fresh
# single-user backend; the difference divided by N is the count per call.
# Settings: N (200), VARIANTS (all), PGAPP_PG_BIN, BENCH_PORT (55439),
# ANNOTATE=variant (print callgrind_annotate's top functions for it).
# Needs valgrind.  A single-user backend has no shared memory of pgapp
# (nothing is preloaded there) unless preloaded: the cluster preloads pgapp.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
N=${N:-200}
declare -A CALL=(
    [select1]="SELECT 1;"
    [call_floor]="SELECT pg_backend_pid();"
    [decode]="SELECT pgapp.decode_token(current_setting('bench.token'));"
    [authenticate]="SELECT pgapp.authenticate_request();"
    [pre_request]="SELECT pgapp.pre_request();"
)
VARIANTS=${VARIANTS:-"select1 call_floor decode authenticate pre_request"}
source "$HERE/../lib.sh"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

bench_cluster auth-ir "${BENCH_PORT:-55439}" "shared_preload_libraries = 'pgapp'
pgapp.auth_jwt_secret = 'bench-secret-0123456789abcdef-0123456789'
synchronous_commit = off
autovacuum = off"
bench_psql -f "$HERE/schema.sql" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null

count() {   # sql k -> instructions of k calls in one single-user backend
    local sql=$1 k=$2 out="$DIR/cg.$3.$2"
    { echo "SELECT set_config('request.headers', headers, false), set_config('request.jwt.claims', claims, false), set_config('bench.token', token, false) FROM bench_settings;"
      for _ in $(seq 1 "$k"); do echo "$sql"; done; } >"$DIR/in.sql"
    chmod 644 "$DIR/in.sql"
    as_pg valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$PG_BIN/postgres" --single -D "$DIR/data" postgres <"$DIR/in.sql" >"$DIR/out.txt" 2>"$DIR/cg.err"
    if grep -q 'ERROR' "$DIR/out.txt"; then grep -m1 'ERROR' "$DIR/out.txt" >&2; exit 1; fi
    grep -m1 'Collected' "$DIR/cg.err" | awk '{gsub(",", "", $NF); print $NF}'
}

echo "instructions per call (callgrind, single-user backend, ($N x 2 - $N) calls); pgapp.so $(md5sum "$("$PG_BIN/pg_config" --pkglibdir)/pgapp.so" | cut -c1-12)"
declare -A ir
for v in $VARIANTS; do
    a=$(count "${CALL[$v]}" "$N" "$v")
    b=$(count "${CALL[$v]}" $((2 * N)) "$v")
    ir[$v]=$(( (b - a) / N ))
    printf '  %-14s %8.1f k\n' "$v" "$(awk -v x="${ir[$v]}" 'BEGIN {print x / 1000}')"
done
if [ -n "${ir[select1]:-}" ]; then
    echo "ratios to select1 (instructions; 1/x is what the calls per second would be if instructions were time)"
    for v in $VARIANTS; do
        [ "$v" = select1 ] && continue
        awk -v a="${ir[$v]}" -v b="${ir[select1]}" -v v="$v" 'BEGIN {printf "  %-14s %.2fx the instructions of SELECT 1 (%.2fx)\n", v, a / b, b / a}'
    done
fi
if [ -n "${ANNOTATE:-}" ]; then
    # per call, by function (exclusive): the 2N run minus the N run, over N
    for k in "$N" $((2 * N)); do
        callgrind_annotate --threshold=100 ${INCLUSIVE:+--inclusive=yes} "$DIR/cg.$ANNOTATE.$k" 2>/dev/null |
            awk '/^ *[0-9,]+ +\(/ {gsub(",", "", $1); n = $1; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, ""); print n "\t" $0}' >"$DIR/fn.$k"
    done
    awk -F'\t' -v n="$N" 'NR == FNR {a[$2] = $1; next} {d = ($1 - a[$2]) / n; if (d > 200) printf "%8.0f %s\n", d, $2}' \
        "$DIR/fn.$N" "$DIR/fn.$((2 * N))" | sort -rn | head -${TOP:-40}
fi

#!/usr/bin/env bash
# bench/auth/run.sh: the cost of checking a request's token, against SELECT 1,
# in the same run, on a temporary cluster of its own.
#
#   make install && bash bench/auth/run.sh      (from the checkout)
#
# Variants (one statement per transaction, pgbench -M prepared):
#   select1       SELECT 1: the floor of a round trip
#   call_floor    SELECT pg_backend_pid(): the floor of any function call
#   decode        pgapp.decode_token(token): verify, claims, revocation
#   authenticate  pgapp.authenticate_request(), as PostgREST's
#                 db-pre-request calls it: the bearer token of
#                 request.headers verified, revocation checked (cache),
#                 typ checked
#   pre_request   pgapp.pre_request(): authenticate_request and the rate
#                 limiter (one key, a plan that never denies)
# The token is an access token with a role claim; 100 jti revocations and a
# subject cutoff of another subject are cached.  Median of ROUNDS
# interleaved rounds; every run is printed.  Measures only.
#
# Settings (environment): ROUNDS (3), SECONDS_PER_RUN (5), CLIENTS ("1 8"),
# BENCH_PORT (55438), PGAPP_PG_BIN (the PostgreSQL build), KEEP=1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CLIENTS=${CLIENTS:-"1 8"}
VARIANTS=${VARIANTS:-"select1 call_floor decode authenticate pre_request"}
source "$HERE/../lib.sh"

[ -f "$("$PG_BIN/pg_config" --sharedir)/extension/pgapp.control" ] ||
    { echo "pgapp is not installed in $("$PG_BIN/pg_config" --sharedir): run make install first" >&2; exit 1; }

bench_cluster auth "${BENCH_PORT:-55438}" "shared_preload_libraries = 'pgapp'
pgapp.auth_jwt_secret = 'bench-secret-0123456789abcdef-0123456789'"
lib=$("$PG_BIN/pg_config" --pkglibdir)/pgapp.so
echo "pgapp.so: $(md5sum "$lib" | cut -c1-12), installed $(date -r "$lib" '+%Y-%m-%d %H:%M'); checkout $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?')"
bench_psql -f "$HERE/schema.sql" >/dev/null
# every variant must succeed before it is timed
for v in $VARIANTS; do bench_psql -f "$HERE/$v.sql" >/dev/null; done

measure "$VARIANTS"
echo "ratios to select1 (TPS, same client count):"
for c in $CLIENTS; do
    line=$(printf '  %2d client(s):' "$c")
    for v in $VARIANTS; do
        [ "$v" = select1 ] && continue
        line+=$(awk -v a="${r[$v,$c]}" -v b="${r[select1,$c]}" -v v="$v" 'BEGIN {printf " %s %.2fx", v, a / b}')
    done
    echo "$line"
done

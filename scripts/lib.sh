# scripts/lib.sh: shared by scripts/run and scripts/test (sourced, not run).
#
# Everything here works on a fresh Debian bookworm machine as root: it
# installs what is missing with apt, builds and installs pgapp, and runs
# PostgreSQL clusters as the "postgres" OS user (initdb refuses root).

set -euo pipefail

PG_MAJOR=15
# PGAPP_PG_BIN: another PostgreSQL 15 build (a relocated copy, say), so that
# two checkouts can build, install and test side by side.
PG_BIN=${PGAPP_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
PG_CONFIG=$PG_BIN/pg_config
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(
    "postgresql-$PG_MAJOR"
    "postgresql-server-dev-$PG_MAJOR"
    "postgresql-$PG_MAJOR-cron"
    "postgresql-$PG_MAJOR-pgtap"
    libtap-parser-sourcehandler-pgtap-perl   # pg_prove
    libjansson-dev
    libsodium-dev
    libicu-dev                               # grapheme counting (validate_length)
    libwebsockets-dev                        # gateway/ (pgapp-gateway): HTTP and WebSocket
    libpq-dev                                # gateway/: the database client
    pkg-config
    make
    gcc
    universal-ctags                          # scripts/check-layout: function lengths
    pg-bsd-indent                            # scripts/pgindent
)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install the Debian packages that are not installed yet (apt-get update
# only when something is missing, so a second run is quick and offline).
ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root to install them"
    say "installing ${missing[*]}"
    # Debian's postgresql-common would create and start a "main" cluster on
    # 5432; pgapp runs its own clusters, so ask it not to.
    mkdir -p /etc/postgresql-common
    if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build and install pgapp into the PostgreSQL of $PG_CONFIG.
build_install() {
    say "building pgapp"
    make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" >/dev/null
    if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
        make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
    else
        die "cannot write $("$PG_CONFIG" --pkglibdir); run as root (or sudo) to install pgapp"
    fi
}

# Run a command as the cluster owner: postgres when we are root, else us.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Can the cluster owner create and use files in directory $1?
pg_can_use_dir() {
    as_pg test -w "$1" -a -x "$1" 2>/dev/null
}

# Makefile for pgapp
#
#   make && make install          build and install into the PostgreSQL of $(PG_CONFIG)
#   make installcheck             pg_regress + isolation specs on temp instances (PGXS)
#   make check-regress | check-isolation | check-nopreload | check-security
#                                 one suite each (scripts/test runs them all and pgTAP)
#   make pgtap                    pg_prove on the server named by the PG* environment
#
# make also builds gateway/pgapp-gateway (the Phoenix Channels gateway, with
# libwebsockets, libpq and jansson), and make install puts it in PostgreSQL's
# bindir (pg_config --bindir) beside psql; make GATEWAY= leaves it out.

EXTENSION    = pgapp
EXTVERSION   = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(srcdir)/$(EXTENSION).control)
MODULE_big   = pgapp
# Every .c under src/ (src/pgapp.c and one folder per feature: README.md, "Layout").
OBJS         = $(patsubst $(srcdir)/%.c,%.o,$(sort $(wildcard $(srcdir)/src/*.c $(srcdir)/src/*/*.c)))

# The install script of the current version (default_version in
# pgapp.control) is built from its parts, in this order (dependencies
# first); it is git-ignored and removed by make clean.
SQL_PARTS    = 00_header 10_core 20_error 30_machines 40_changesets 50_queries 55_multi 60_ratelimit \
               65_auth 66_auth_revoke 67_auth_sessions 70_pubsub 71_presence 75_channels 80_jobs 80_jobs_control 81_jobs_external 82_jobs_supervision \
               83_jobs_cron 90_openapi 99_footer
SQL_INSTALL  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA_built   = $(SQL_INSTALL)
# Released versions: their install scripts are committed exactly as they
# shipped and NEVER edited again (a change goes into the parts and a
# hand-written sql/updates/pgapp--A--B.sql).  sql/pgapp--0.1.0.sql is the
# frozen 0.1.0, sql/pgapp--0.2.0.sql the frozen 0.2.0; the upgrade test
# installs the oldest of them and updates it through every update script.
RELEASED     = 0.1.0 0.2.0
DATA         = $(foreach v,$(RELEASED),$(srcdir)/sql/$(EXTENSION)--$(v).sql) \
               $(wildcard $(srcdir)/sql/updates/$(EXTENSION)--*--*.sql)
PG_CONFIG   ?= /usr/lib/postgresql/15/bin/pg_config
PKG_CONFIG  ?= pkg-config

PG_CPPFLAGS  = -I$(srcdir)/src $(shell $(PKG_CONFIG) --cflags jansson libsodium icu-uc)
SHLIB_LINK   = $(shell $(PKG_CONFIG) --libs jansson libsodium icu-uc)
PG_CFLAGS    = -Wall -Wmissing-prototypes -Wpointer-arith -Wendif-labels \
               -Wmissing-format-attribute -Wformat-security

REGRESS      = init errors changesets changeset_rules machines openapi queries multi ratelimit auth auth_revoke auth_sessions pubsub channels jobs jobs_run example_tasks example_tasks_auth example_catalog example_dashboard example_jobs example_shop example_chat
# pg_regress runs from the repository root (so that \i test/helpers/... works)
# and reads its inputs from test/regress/sql and test/regress/expected.
REGRESS_OPTS = --inputdir=$(srcdir)/test/regress \
               --temp-config=$(srcdir)/test/$(EXTENSION).conf --temp-instance=./tmp_check
ISOLATION    = $(patsubst $(srcdir)/test/isolation/specs/%.spec,%,$(sort $(wildcard $(srcdir)/test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation \
                 --temp-config=$(srcdir)/test/$(EXTENSION).conf \
                 --temp-config=$(srcdir)/test/isolation.conf \
                 --temp-instance=./tmp_check_iso
# The security suite: test/security/sql/NN_<area>.sql replays the attacks
# we know, as the unprivileged roles 00_setup creates (sorted order).
SECURITY     = $(patsubst $(srcdir)/test/security/sql/%.sql,%,$(sort $(wildcard $(srcdir)/test/security/sql/*.sql)))
SECURITY_OPTS = --inputdir=$(srcdir)/test/security --outputdir=output_sec \
                --dbname=contrib_regression \
                --temp-config=$(srcdir)/test/$(EXTENSION).conf \
                --temp-instance=./tmp_check_sec
NOPRELOAD_OPTS = --inputdir=$(srcdir)/test/regress --temp-config=$(srcdir)/test/nopreload.conf \
                 --temp-instance=./tmp_check_np --outputdir=output_np

EXTRA_CLEAN  = tmp_check_np/ output_np/ tmp_pgtap/ tmp_check_sec/ output_sec/ gateway/pgapp-gateway

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# pgapp-gateway: a program, not part of the extension's library.  Built with
# the system's libpq (libpq-dev), libwebsockets (libwebsockets-dev) and
# jansson; "make GATEWAY=" builds and installs the extension alone.
GATEWAY     ?= gateway/pgapp-gateway
GATEWAY_SRCS = $(sort $(wildcard $(srcdir)/gateway/*.c))
GATEWAY_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes \
                 -Wpointer-arith -Wformat-security -D_GNU_SOURCE
GATEWAY_PKGS = libwebsockets libpq jansson

ifneq ($(GATEWAY),)
all: $(GATEWAY)
install: install-gateway
endif

$(GATEWAY): $(GATEWAY_SRCS) $(wildcard $(srcdir)/gateway/*.h) $(srcdir)/Makefile
	@$(PKG_CONFIG) --exists $(GATEWAY_PKGS) || { echo "pgapp-gateway needs libwebsockets-dev, libpq-dev and libjansson-dev (pkg-config finds no $(GATEWAY_PKGS)); install them, or build the extension alone with: make GATEWAY=" >&2; exit 1; }
	@mkdir -p $(dir $@)
	$(CC) $(GATEWAY_CFLAGS) $$($(PKG_CONFIG) --cflags $(GATEWAY_PKGS)) -o $@ $(GATEWAY_SRCS) $$($(PKG_CONFIG) --libs $(GATEWAY_PKGS))

.PHONY: install-gateway
install-gateway: $(GATEWAY)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(GATEWAY) '$(DESTDIR)$(bindir)/pgapp-gateway'

# PGXS tracks no header dependencies (unless PostgreSQL was configured
# with --enable-depend): a changed struct in src/*.h must rebuild every
# object, or files built before it read shared memory with the old layout.
$(OBJS): $(wildcard $(srcdir)/src/*.h $(srcdir)/src/*/*.h)

$(SQL_INSTALL): $(addprefix $(srcdir)/sql/parts/,$(addsuffix .sql,$(SQL_PARTS))) $(srcdir)/$(EXTENSION).control $(srcdir)/Makefile
	cat $(filter %.sql,$^) > $@

.PHONY: check-regress check-isolation check-nopreload check-security pgtap

check-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

check-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

check-security:
	$(pg_regress_installcheck) $(SECURITY_OPTS) $(SECURITY)

# The same library without shared_preload_libraries: functions that need
# shared memory must refuse with SQLSTATE 55000, never crash.
check-nopreload:
	$(pg_regress_installcheck) $(NOPRELOAD_OPTS) nopreload

pgtap:
	pg_prove --verbose test/pgtap/*.sql

# scripts/check-layout: file and function sizes, the include layering, SQL C
# symbols and setting names (README.md, "Layout").  scripts/pgindent: PostgreSQL's
# style through pg_bsd_indent with src/typedefs.list, which
# scripts/gen-typedefs regenerates from our sources and the server headers.
.PHONY: check-layout pgindent typedefs
check-layout:
	$(srcdir)/scripts/check-layout

pgindent:
	$(srcdir)/scripts/pgindent

typedefs:
	PG_CONFIG=$(PG_CONFIG) $(srcdir)/scripts/gen-typedefs > $(srcdir)/src/typedefs.list

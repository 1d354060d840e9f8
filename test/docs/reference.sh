#!/usr/bin/env bash
# test/docs/reference.sh: docs/reference.md against the installed pgapp (TAP).
#
#   PGHOST=... PGPORT=... PGDATABASE=... PGUSER=... bash test/docs/reference.sh [repository root]
#
# The database must have pgapp installed.  Three checks, one TAP line each:
#   1. every public object of schema pgapp (functions and procedures whose
#      names do not start with "_", views, tables, types and domains that
#      are members of extension pgapp) and every pgapp.* setting is named in
#      the reference as `pgapp.<name>`: a function as `pgapp.<name>(`, the
#      others without a parenthesis after the name;
#   2. every `pgapp.<name>` the reference names outside its "## Planned"
#      section exists: `pgapp.<name>(` as a function of schema pgapp, a bare
#      `pgapp.<name>` as any function, relation, type or pgapp.* setting;
#   3. every function has an entry (a table row whose first cell holds
#      `pgapp.<name>(...)`) listing exactly its argument names, in order, as
#      pg_proc.proargnames has them (OUT arguments included), and every entry
#      matches a function of the catalog.
# A failing check is followed by "# " lines naming what is missing.  The exit
# status is the number of failed checks (2 with "Bail out!" when the catalog
# cannot be read).
set -u

ROOT=${1:-.}
REF=$ROOT/docs/reference.md
PSQL=${PSQL:-psql}
if [ -n "${PGAPP_PG_BIN:-}" ] && [ -x "$PGAPP_PG_BIN/psql" ]; then PSQL=$PGAPP_PG_BIN/psql; fi

if [ ! -r "$REF" ]; then
    echo "Bail out! $REF is missing"
    exit 2
fi

CATALOG=$(mktemp)
trap 'rm -f "$CATALOG"' EXIT

# One line per fact, tab-separated:
#   pub-fn  <name> <argnames>   a public function of pgapp (argnames comma-separated)
#   pub-obj <name>              a public view, table or type of pgapp
#   pub-set <name>              a pgapp.* setting (without the prefix)
#   any-fn  <name>              any function of schema pgapp
#   any-obj <name>              any relation or type of schema pgapp
# pgapp.version() loads the library first, so that its settings exist.
if ! "$PSQL" -X -q -At -F $'\t' -v ON_ERROR_STOP=1 >"$CATALOG" 2>&1 <<'SQL'
\o /dev/null
SELECT pgapp.version();
\o
WITH ext AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend AS d
      JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.deptype = 'e' AND e.extname = 'pgapp'
)
SELECT 'pub-fn', p.proname, pg_catalog.array_to_string(COALESCE(p.proargnames, '{}'), ',', '')
  FROM pg_catalog.pg_proc AS p
  JOIN ext ON ext.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND ext.objid = p.oid
 WHERE p.pronamespace = 'pgapp'::pg_catalog.regnamespace AND p.proname !~ '^_'
UNION ALL
SELECT 'pub-obj', c.relname, ''
  FROM pg_catalog.pg_class AS c
  JOIN ext ON ext.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ext.objid = c.oid
 WHERE c.relnamespace = 'pgapp'::pg_catalog.regnamespace AND c.relname !~ '^_'
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
UNION ALL
SELECT 'pub-obj', t.typname, ''
  FROM pg_catalog.pg_type AS t
  JOIN ext ON ext.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND ext.objid = t.oid
 WHERE t.typnamespace = 'pgapp'::pg_catalog.regnamespace AND t.typname !~ '^_'
UNION ALL
SELECT 'pub-set', pg_catalog.substr(s.name, 7), ''
  FROM pg_catalog.pg_settings AS s
 WHERE s.name LIKE 'pgapp.%'
UNION ALL
SELECT DISTINCT 'any-fn', p.proname, ''
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = 'pgapp'::pg_catalog.regnamespace
UNION ALL
SELECT 'any-obj', c.relname, ''
  FROM pg_catalog.pg_class AS c
 WHERE c.relnamespace = 'pgapp'::pg_catalog.regnamespace
UNION ALL
SELECT 'any-obj', t.typname, ''
  FROM pg_catalog.pg_type AS t
 WHERE t.typnamespace = 'pgapp'::pg_catalog.regnamespace
SQL
then
    echo "Bail out! cannot read the catalog: $(tr '\n' ' ' <"$CATALOG")"
    exit 2
fi

perl -e '
use strict;
use warnings;

my ($ref_path, $cat_path) = @ARGV;

my (%pub_fn, %pub_obj, %pub_set, %any_fn, %any_obj);
open my $cat, "<", $cat_path or die "$cat_path: $!";
while (<$cat>) {
    chomp;
    my ($kind, $name, $args) = split /\t/, $_, -1;
    next unless defined $name;
    if    ($kind eq "pub-fn")  { push @{ $pub_fn{$name} }, $args // "" }
    elsif ($kind eq "pub-obj") { $pub_obj{$name} = 1 }
    elsif ($kind eq "pub-set") { $pub_set{$name} = 1 }
    elsif ($kind eq "any-fn")  { $any_fn{$name} = 1 }
    elsif ($kind eq "any-obj") { $any_obj{$name} = 1 }
}
close $cat;

open my $fh, "<", $ref_path or die "$ref_path: $!";
my @lines = <$fh>;
close $fh;

# The lines outside the "## Planned" section (which names what is not built).
my ($in_planned, @current) = (0);
for (@lines) {
    if (/^## /) { $in_planned = /^## Planned\b/ ? 1 : 0 }
    push @current, $_ unless $in_planned;
}
my $all  = join "", @lines;
my $text = join "", @current;

my $failed = 0;
sub report {
    my ($n, $what, @missing) = @_;
    if (@missing) {
        print "not ok $n - $what\n";
        print "# $_\n" for @missing;
        $failed++;
    } else {
        print "ok $n - $what\n";
    }
}

print "1..3\n";

# 1. every public object is named
my (%named_fn, %named_other);
while ($all =~ /\bpgapp\.([A-Za-z_][A-Za-z0-9_]*)(\()?/g) {
    if (defined $2) { $named_fn{$1} = 1 } else { $named_other{$1} = 1 }
}
my @missing;
push @missing, map { "function pgapp.$_" } grep { !$named_fn{$_} } sort keys %pub_fn;
push @missing, map { "object pgapp.$_" }   grep { !$named_other{$_} } sort keys %pub_obj;
push @missing, map { "setting pgapp.$_" }  grep { !$named_other{$_} } sort keys %pub_set;
report(1, "every public object and setting of schema pgapp is named in docs/reference.md", @missing);

# 2. every name outside Planned exists
my %bad;
while ($text =~ /\bpgapp\.([A-Za-z_][A-Za-z0-9_]*)(\()?/g) {
    my ($name, $call) = ($1, defined $2);
    if ($call) {
        $bad{"pgapp.$name("} = 1 unless $any_fn{$name};
    } else {
        $bad{"pgapp.$name"} = 1
            unless $any_fn{$name} || $any_obj{$name} || $pub_set{$name};
    }
}
report(2, "every pgapp.<name> docs/reference.md names (outside Planned) exists", sort keys %bad);

# 3. each function entry lists its argument names
# The argument names of a signature "a text, b integer DEFAULT f(1, 2)":
# top-level comma-separated pieces, modes dropped, first word of each.
sub arg_names {
    my ($sig) = @_;
    my @pieces;
    my ($cur, $depth, $quote) = ("", 0, "");
    for my $ch (split //, $sig) {
        if ($quote ne "") {
            $quote = "" if $ch eq $quote;
        } elsif ($ch eq "\x27" || $ch eq "\"") {
            $quote = $ch;
        } elsif ($ch eq "(" || $ch eq "[") {
            $depth++;
        } elsif ($ch eq ")" || $ch eq "]") {
            $depth--;
        } elsif ($ch eq "," && $depth == 0) {
            push @pieces, $cur;
            $cur = "";
            next;
        }
        $cur .= $ch;
    }
    push @pieces, $cur if $cur =~ /\S/;
    my @names;
    for my $p (@pieces) {
        $p =~ s/^\s+//;
        $p =~ s/^(?:IN|OUT|INOUT|VARIADIC)\s+//i;
        my ($n) = $p =~ /^("[^"]*"|\S+)/;
        $n //= "";
        $n =~ s/^"(.*)"$/$1/;
        push @names, $n;
    }
    return join ",", @names;
}

# The signature inside "pgapp.name(" ... ")" of a first table cell.
my %entries;    # name -> { argnames => 1 }
for (@current) {
    next unless /^\|\s*`pgapp\.([A-Za-z_][A-Za-z0-9_]*)\((.*)$/;
    my ($name, $rest) = ($1, $2);
    my ($depth, $quote, $sig) = (1, "", "");
    for my $ch (split //, $rest) {
        if ($quote ne "") {
            $quote = "" if $ch eq $quote;
        } elsif ($ch eq "\x27" || $ch eq "\"") {
            $quote = $ch;
        } elsif ($ch eq "(") {
            $depth++;
        } elsif ($ch eq ")") {
            last if --$depth == 0;
        }
        $sig .= $ch;
    }
    $entries{$name}{ arg_names($sig) } = 1;
}
@missing = ();
for my $name (sort keys %pub_fn) {
    for my $args (@{ $pub_fn{$name} }) {
        push @missing, "no entry pgapp.$name($args)" unless $entries{$name}{$args};
    }
}
for my $name (sort keys %entries) {
    for my $args (sort keys %{ $entries{$name} }) {
        push @missing, "entry pgapp.$name($args) matches no function"
            unless grep { $_ eq $args } @{ $pub_fn{$name} // [] };
    }
}
report(3, "every function has an entry with its argument names in docs/reference.md", @missing);

exit $failed;
' "$REF" "$CATALOG"

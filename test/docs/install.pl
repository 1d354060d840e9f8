#!/usr/bin/perl
# test/docs/install.pl: follow docs/install.md, as written, on a new Debian
# cluster, and check that pgapp and pg_cron work there afterwards.
#
#   perl test/docs/install.pl [REPO]
#
# As root (the page is a by-hand install as root), on Debian bookworm with
# postgresql-common.  REPO is the tree to install from (default: the one this
# file is in); the page's commands run there.  PGAPP_INSTALL_PORT (54471) is
# the port of the cluster.
#
# The page names its cluster with two variables (CLUSTER, CLUSTER_PORT, its
# first sh block); this test sets them to a cluster of its own,
# pgapp_install_<pid>, that must not exist yet: the page's blocks make it
# (pg_createcluster), and the test drops it at the end (pg_dropcluster
# --stop), also when a block fails or the test is interrupted.  Nothing
# else of the page is changed:
#   - each ```sh block runs in its own `bash -euo pipefail -c BLOCK`, in REPO,
#     stdin from /dev/null;
#   - each ```sql block goes to the psql command the page gives (its
#     "runuser -u postgres -- psql --cluster ... -d DB" line), with -X, on
#     stdin;
#   - a ```text block right after either is the block's whole output
#     (stdout and stderr together), matched by check.pl's match_output;
#     without one, an sh block must exit 0, and a sql block must print no
#     ERROR/FATAL/WARNING/psql: line;
#   - ```sql norun blocks are skipped; other fences (ini, plain) are shown
#     only.
# Then: pgapp.health() says "ok" with pg_cron's launcher running, and a
# pg_cron job runs (it connects as the page configured, cron.host).
#
# Output: TAP, one line per block and per final check; exit 1 on any failure.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempfile);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my $here = dirname(abs_path(__FILE__));
require "$here/check.pl";    # parse_page, match_output, unified_diff, bad_output

my $repo = abs_path($ARGV[0] // "$here/../..");
my $page = "$repo/docs/install.md";
my $port = $ENV{PGAPP_INSTALL_PORT} || 54471;
my $cluster = "pgapp_install_$$";
my $started = time;

die "test/docs/install.pl runs as root (the page installs packages and makes a cluster)\n" if $> != 0;
die "no $page\n" unless -f $page;

# --- the cluster: ours alone, and gone at the end --------------------------

my $made = 0;    # set once we know the name was free: only then do we drop it

sub drop_cluster
{
    return unless $made;
    $made = 0;
    my $ok = 1;
    if (-e "/etc/postgresql/15/$cluster" || -e "/var/lib/postgresql/15/$cluster")
    {
        system('pg_dropcluster', '--stop', '15', $cluster) == 0 or $ok = 0;
        # pg_dropcluster keeps files it did not make (the page's conf.d/pgapp.conf)
        system('rm', '-rf', "/etc/postgresql/15/$cluster") if -d "/etc/postgresql/15/$cluster";
    }
    $ok = 0 if -e "/etc/postgresql/15/$cluster" || -e "/var/lib/postgresql/15/$cluster";
    print "# could not drop cluster 15/$cluster: drop it with pg_dropcluster --stop 15 $cluster\n" unless $ok;
    return $ok;
}

END
{
    my $rc = $?;
    if ($made)
    {
        $rc = 1 unless drop_cluster();
    }
    $? = $rc;
}
$SIG{$_} = sub { print "Bail out! interrupted\n"; exit 1 } for qw(INT TERM HUP);

if (-e "/etc/postgresql/15/$cluster" || -e "/var/lib/postgresql/15/$cluster")
{
    print "Bail out! cluster 15/$cluster exists already\n";
    exit 1;
}
if (-e "/var/run/postgresql/.s.PGSQL.$port"
    || IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1))
{
    print "Bail out! port $port is in use (set PGAPP_INSTALL_PORT)\n";
    exit 1;
}
$made = 1;

# the page's commands see the cluster through its two variables, and no
# PG* setting of whoever runs the test
delete $ENV{$_} for grep { /^PG/ } keys %ENV;
$ENV{CLUSTER} = $cluster;
$ENV{CLUSTER_PORT} = $port;

# --- the page ----------------------------------------------------------------

open(my $fh, '<', $page) or die "cannot read $page: $!\n";
my @lines = <$fh>;
close $fh;
chomp @lines;
my @blocks = parse_page($page);

# check.pl attaches text blocks to sql blocks; attach them to sh blocks too
for my $i (1 .. $#blocks)
{
    my ($prev, $b) = @blocks[$i - 1, $i];
    next unless $b->{lang} eq 'text' && $prev->{lang} eq 'sh' && !$b->{attached};
    next if grep { /\S/ } @lines[$prev->{end} + 1 .. $b->{line} - 2];
    $prev->{expect} = $b->{text};
    $prev->{expect_line} = $b->{line};
    $b->{attached} = 1;
}

my @steps = grep { $_->{lang} eq 'sh' || $_->{lang} eq 'sql' } @blocks;
my $n = 0;
my $failed = 0;
printf "1..%d\n", 1 + @steps + 2;

sub result
{
    my ($ok, $name, $detail) = @_;
    $n++;
    print(($ok ? 'ok' : 'not ok') . " $n - $name\n");
    print map { "#   $_\n" } split(/\n/, $detail) if !$ok && defined $detail && $detail ne '';
    $failed++ unless $ok;
}

# The page's psql command, from which the SQL blocks' database comes.
my ($db) = map { /^runuser -u postgres -- psql --cluster "15\/\$CLUSTER" -d (\S+)\s*$/ ? $1 : () } @lines;
my @stray = grep { $_->{lang} eq 'text' && !$_->{attached} } @blocks;
result((defined $db && !@stray) ? 1 : 0,
       'the page gives its psql command and shows output only after sh and sql blocks',
       join("\n", (defined $db ? () : 'no line `runuser -u postgres -- psql --cluster "15/$CLUSTER" -d DB`'),
            map { "text block at line $_->{line} follows no sh or sql block" } @stray));
$db //= 'app';

my @psql = ('runuser', '-u', 'postgres', '--', 'psql', '-X', '--cluster', "15/$cluster", '-d', $db);

# Run @cmd in $repo with $input on stdin; stdout and stderr together.
sub run_cmd
{
    my ($input, @cmd) = @_;
    my ($in, $inname) = tempfile(UNLINK => 1);
    print $in $input;
    close $in;
    my $pid = open(my $out, '-|');
    die "fork: $!\n" unless defined $pid;
    if (!$pid)
    {
        chdir $repo or die "cd $repo: $!\n";
        open(STDIN, '<', $inname) or die "$inname: $!\n";
        open(STDERR, '>&', \*STDOUT) or die "stderr: $!\n";
        exec(@cmd) or die "exec $cmd[0]: $!\n";
    }
    local $/;
    my $got = <$out> // '';
    close $out;
    return ($? >> 8, $got);
}

sub tail_lines { my ($s, $k) = @_; my @l = split(/\n/, $s); splice(@l, 0, @l - $k) if @l > $k; join("\n", @l) }

for my $b (@steps)
{
    my $name = "docs/install.md:$b->{line} $b->{lang}";
    if ($b->{info} =~ /\bnorun\b/)
    {
        $n++;
        print "ok $n - $name # SKIP norun\n";
        next;
    }
    my $t0 = time;
    my ($rc, $got) = $b->{lang} eq 'sh'
        ? run_cmd('', 'timeout', '900', 'bash', '-euo', 'pipefail', '-c', $b->{text})
        : run_cmd($b->{text}, 'timeout', '120', @psql);
    $name .= sprintf(' (%.1f s)', time - $t0);
    if (defined $b->{expect})
    {
        result(($rc == 0 && match_output($b->{expect}, $got)) ? 1 : 0,
               "$name, output as shown at line $b->{expect_line}",
               ($rc ? "exit status $rc\n" : '') . unified_diff($b->{expect}, $got));
    }
    elsif ($b->{lang} eq 'sh')
    {
        result($rc == 0, $name, "exit status $rc; the last lines of its output:\n" . tail_lines($got, 30));
    }
    else
    {
        my @bad = bad_output($got);
        result(($rc == 0 && !@bad) ? 1 : 0, $name, "exit status $rc\n$got");
    }
}

# --- afterwards: pgapp and pg_cron work on the new cluster -------------------

sub query
{
    my ($sql) = @_;
    my ($rc, $got) = run_cmd($sql, 'timeout', '60', @psql, '-At', '-v', 'ON_ERROR_STOP=1');
    chomp $got;
    return $rc == 0 ? ($got, '') : (undef, $got);
}

my ($health, $err) = query("SELECT pgapp.health() ->> 'status', pgapp.health() -> 'pg_cron' ->> 'launcher_running';");
result((defined $health && $health eq 'ok|true') ? 1 : 0,
       "pgapp.health() is ok and pg_cron's launcher runs on cluster 15/$cluster",
       defined $health ? "status|launcher_running: $health" : $err);

# pg_cron 1.4 runs schedules once a minute at most: wait for the first run
# of one (at the next minute), bounded, and see whether it could connect.
my ($job, $jerr) = query("SELECT cron.schedule('pgapp-install-check', '* * * * *', 'SELECT 1');");
my $status = '';
if (defined $job)
{
    my $deadline = time + 90;
    while (time < $deadline)
    {
        ($status, $jerr) = query("SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details"
                                 . " WHERE jobid = $job ORDER BY runid DESC LIMIT 1;");
        last if !defined $status || $status =~ /^(succeeded|failed)/;
        sleep 0.5;
    }
}
result((defined $status && $status =~ /^succeeded/) ? 1 : 0,
       "a pg_cron job ran (it connects through cron.host)",
       !defined $job || !defined $status ? $jerr
         : $status eq '' ? 'no run within 90 s' : "its run: $status");

my $dropped = drop_cluster();
printf "# cluster 15/%s %s; %.0f s\n", $cluster, $dropped ? 'dropped' : 'NOT dropped', time - $started;
exit($failed || !$dropped ? 1 : 0);

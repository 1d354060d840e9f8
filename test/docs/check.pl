#!/usr/bin/perl
# test/docs/check.pl: run the SQL examples of Markdown pages as written and
# compare the output they show with the output they give.
#
#   perl test/docs/check.pl PAGE.md          run PAGE's ```sql blocks (TAP)
#   perl test/docs/check.pl --links FILE...  check the Markdown links of FILEs (TAP)
#   perl test/docs/check.pl --list PAGE.md   show the blocks found, not run
#
# Running a page: every ```sql block, in page order, goes to ONE psql session
# (psql -X, input on stdin, so errors print as in interactive psql, without a
# file prefix; command tags and notices are printed).  The connection comes
# from the PG* environment; $PSQL names psql (default "psql").  A ```text
# block that follows a ```sql block (blank lines between, nothing else) is
# that block's whole output, stdout and stderr together.  Trailing white space
# and leading or trailing blank lines do not count; "..." alone on a line
# matches any number of lines, and "..." inside a line any characters of that
# line.  A block without a text block passes when its output has no ERROR,
# FATAL, WARNING, PANIC or psql: line.  ```sql norun blocks are not run (TAP
# SKIP, so that they are counted).  Other fences are not run here.
#
# Checking links: every [text](target) whose target is not a URL must name a
# file or directory inside the repository (the current directory), and a
# #fragment into a Markdown file one of its headings (GitHub's slugs).
#
# test/docs/install.pl reuses parse_page and match_output (require this file).
use strict;
use warnings;
use Cwd qw(abs_path getcwd);
use File::Basename qw(dirname);
use File::Temp qw(tempfile);

my $MARK = '@@pgapp-docs-block@@';

# The fenced blocks of a Markdown file, in order: hashes with lang, info (the
# words after the language), line (of the opening fence), text, and for a sql
# block followed by a text block: expect and expect_line.
sub parse_page
{
    my ($path) = @_;
    open(my $fh, '<', $path) or die "cannot read $path: $!\n";
    my @lines = <$fh>;
    close $fh;
    chomp @lines;
    my (@blocks, $i);
    for ($i = 0; $i < @lines; $i++)
    {
        next unless $lines[$i] =~ /^( *)(`{3,}|~{3,})\s*([^`\s]*)\s*(.*?)\s*$/;
        my ($indent, $fence, $lang, $info) = (length($1), $2, lc($3), $4);
        my $start = $i + 1;
        my @text;
        for ($i++; $i < @lines; $i++)
        {
            last if $lines[$i] =~ /^ *\Q$fence\E[`~]*\s*$/;
            (my $l = $lines[$i]) =~ s/^ {0,$indent}//;
            push @text, $l;
        }
        die "$path:$start: unclosed code block\n" if $i >= @lines;
        push @blocks, {lang => $lang, info => $info, line => $start, end => $i,
                       text => join('', map { "$_\n" } @text)};
    }
    # attach each text block to the sql block right before it
    for (my $b = 1; $b < @blocks; $b++)
    {
        next unless $blocks[$b]{lang} eq 'text' && $blocks[$b - 1]{lang} eq 'sql';
        # only blank lines between the closing fence and the next opening one
        my $between = grep { /\S/ } @lines[$blocks[$b - 1]{end} + 1 .. $blocks[$b]{line} - 2];
        next if $between;
        $blocks[$b - 1]{expect} = $blocks[$b]{text};
        $blocks[$b - 1]{expect_line} = $blocks[$b]{line};
        $blocks[$b]{attached} = 1;
    }
    return @blocks;
}

sub clean_lines
{
    my ($s) = @_;
    my @l = map { s/\s+$//r } split(/\n/, $s // '', -1);
    shift @l while @l && $l[0] eq '';
    pop @l while @l && $l[-1] eq '';
    return @l;
}

# Does output $actual match the shown output $expected (rules above)?
sub match_output
{
    my ($expected, $actual) = @_;
    my @p = clean_lines($expected);
    my @a = clean_lines($actual);
    my @re = map {
        my $t = $_;
        $t =~ /^\s*\.\.\.\s*$/ ? undef
          : do { my $r = join('.*', map { quotemeta } split(/\.\.\./, $t, -1)); qr/^$r$/ }
    } @p;
    my %memo;
    my $m;
    $m = sub {
        my ($i, $j) = @_;
        my $k = "$i,$j";
        return $memo{$k} if exists $memo{$k};
        my $r;
        if ($i == @p) { $r = ($j == @a) }
        elsif (!defined $re[$i]) { $r = $m->($i + 1, $j) || ($j < @a && $m->($i, $j + 1)) }
        else { $r = $j < @a && $a[$j] =~ $re[$i] && $m->($i + 1, $j + 1) }
        return $memo{$k} = $r ? 1 : 0;
    };
    my $ok = $m->(0, 0);
    undef $m;
    return $ok;
}

sub unified_diff
{
    my ($expected, $actual) = @_;
    my ($fe, $ne) = tempfile(UNLINK => 1);
    my ($fa, $na) = tempfile(UNLINK => 1);
    print $fe join('', map { "$_\n" } clean_lines($expected));
    print $fa join('', map { "$_\n" } clean_lines($actual));
    close $fe;
    close $fa;
    my $d = `diff -u --label shown --label got '$ne' '$na'`;
    return $d;
}

sub bad_output
{
    my ($out) = @_;
    return grep { /^(ERROR|FATAL|PANIC|WARNING):|^psql:|server closed the connection/ } split(/\n/, $out);
}

sub diag { my ($s) = @_; print map { "#   $_\n" } split(/\n/, $s) }

sub run_page
{
    my ($page) = @_;
    my @sql = grep { $_->{lang} eq 'sql' } parse_page($page);
    my $n = 0;
    my $failed = 0;
    my @run = grep { $_->{info} !~ /\bnorun\b/ } @sql;
    my %out;
    if (@run)
    {
        my $script = '';
        for my $i (0 .. $#run)
        {
            $script .= "\\echo '$MARK $i'\n" . $run[$i]{text};
            $script .= "\n" unless $script =~ /\n$/;
        }
        $script .= "\\echo '$MARK end'\n";
        my ($fh, $file) = tempfile(UNLINK => 1);
        print $fh $script;
        close $fh;
        my $psql = $ENV{PSQL} || 'psql';
        my $all = `$psql -X -v ON_ERROR_STOP=0 < '$file' 2>&1`;
        my $cur;
        for my $l (split(/\n/, $all, -1))
        {
            if ($l =~ /^\Q$MARK\E (\d+|end)$/) { $cur = $1; next; }
            # psql's output before the first marker (a connection failure)
            $cur //= 0;
            $out{$cur} .= "$l\n";
        }
        if (!defined $cur || !exists $out{end} && !grep { $_ eq 'end' } keys %out)
        {
            # no end marker: psql died or could not connect
            $out{$#run} .= "(psql ended before the last block)\n"
                unless $all =~ /^\Q$MARK\E end$/m;
        }
    }
    my $ri = 0;
    for my $b (@sql)
    {
        $n++;
        my $name = "$page:$b->{line}";
        if ($b->{info} =~ /\bnorun\b/)
        {
            print "ok $n - $name # SKIP norun\n";
            next;
        }
        my $got = $out{$ri++} // '';
        if (defined $b->{expect})
        {
            if (match_output($b->{expect}, $got))
            {
                print "ok $n - $name (output of line $b->{expect_line} matches)\n";
            }
            else
            {
                print "not ok $n - $name: the output differs from line $b->{expect_line}\n";
                diag(unified_diff($b->{expect}, $got));
                $failed++;
            }
        }
        elsif (my @bad = bad_output($got))
        {
            print "not ok $n - $name: an error where the page shows none\n";
            diag($got);
            $failed++;
        }
        else
        {
            print "ok $n - $name\n";
        }
    }
    print "1..$n\n";
    return $failed;
}

# GitHub's anchor of a heading: lower case, punctuation other than - and _
# dropped, spaces to hyphens; repeated headings get -1, -2, ...
sub anchors
{
    my ($path) = @_;
    my %seen;
    my %a;
    my $in = 0;
    open(my $fh, '<', $path) or return {};
    while (my $l = <$fh>)
    {
        $in = !$in if $l =~ /^ *(```|~~~)/;
        next if $in || $l !~ /^#{1,6}\s+(.*?)\s*#*\s*$/;
        my $s = lc($1);
        $s =~ s/\[([^\]]*)\]\([^)]*\)/$1/g;
        $s =~ s/[^\w\- ]//g;
        $s =~ s/ /-/g;
        my $k = $seen{$s}++ ? "$s-" . ($seen{$s} - 1) : $s;
        $a{$k} = 1;
    }
    close $fh;
    return \%a;
}

sub check_links
{
    my @files = @_;
    my $root = abs_path(getcwd());
    my ($n, $failed) = (0, 0);
    for my $f (@files)
    {
        my @bad;
        open(my $fh, '<', $f) or die "cannot read $f: $!\n";
        my $in = 0;
        my $ln = 0;
        while (my $l = <$fh>)
        {
            $ln++;
            if ($l =~ /^ *(```|~~~)/) { $in = !$in; next; }
            next if $in;
            $l =~ s/`[^`]*`//g;
            while ($l =~ /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)
            {
                my $t = $1;
                next if $t =~ m{^[a-z][a-z0-9+.-]*:}i;
                my ($p, $frag) = split(/#/, $t, 2);
                my $target = $p eq '' ? $f : dirname($f) . "/$p";
                my $abs = abs_path($target);
                if (!defined $abs || !-e $abs)
                {
                    push @bad, "$f:$ln: $t: no such file";
                }
                elsif (index("$abs/", "$root/") != 0)
                {
                    push @bad, "$f:$ln: $t: outside the repository";
                }
                elsif (defined $frag && $frag ne '' && $abs =~ /\.md$/ && !anchors($abs)->{$frag})
                {
                    push @bad, "$f:$ln: $t: no heading with anchor #$frag";
                }
            }
        }
        close $fh;
        $n++;
        if (@bad) { print "not ok $n - links of $f\n"; diag(join("\n", @bad)); $failed++; }
        else { print "ok $n - links of $f\n"; }
    }
    print "1..$n\n";
    return $failed;
}

unless (caller)
{
    my $mode = 'run';
    if (@ARGV && $ARGV[0] =~ /^--(links|list)$/) { $mode = $1; shift @ARGV; }
    die "usage: check.pl [--links|--list] FILE...\n" unless @ARGV;
    if ($mode eq 'links') { exit(check_links(@ARGV) ? 1 : 0); }
    if ($mode eq 'list')
    {
        for my $p (@ARGV)
        {
            for my $b (parse_page($p))
            {
                next if $b->{attached};
                printf "%s:%d %s%s%s\n", $p, $b->{line}, $b->{lang} || '(plain)',
                    $b->{info} ne '' ? " $b->{info}" : '',
                    defined $b->{expect} ? " (output at line $b->{expect_line})" : '';
            }
        }
        exit 0;
    }
    my $failed = 0;
    $failed += run_page($_) for @ARGV;
    exit($failed ? 1 : 0);
}
1;

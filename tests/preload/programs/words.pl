# words.pl [scale]: hashes, strings, regexes and sorting in Perl, with a
# deterministic output.
use strict;
use warnings;
my $scale = $ARGV[0] // 1;
my $n = int(150000 * $scale);
my %h;
for my $i (0 .. $n - 1) {
    my $k = "k" . ($i * 7919 % $n) . ("y" x ($i % 23));
    $h{$k} .= sprintf("%x,", $i);
}
my $sum = 0;
for my $k (sort keys %h) { $sum = ($sum * 33 + length($k) + length($h{$k})) % 1000000007; }
print "hash ", scalar(keys %h), " $sum\n";
delete $h{$_} for grep { /7/ } keys %h;
print "after delete ", scalar(keys %h), "\n";
my @lines = map { join(" ", map { "w" . ($_ * $_ % 1009) } 1 .. ($_ % 17 + 1)) } 1 .. $n / 3;
my %count;
for my $l (@lines) { $count{$_}++ for split / /, $l; }
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 4];
print "top @top\n";
my $text = join("\n", @lines);
my $matches = () = $text =~ /w(\d)\1\d*/g;
(my $copy = $text) =~ s/w(\d+)/<$1>/g;
print "regex $matches ", length($copy), "\n";
my @arr = map { [$_, "v$_"] } reverse 1 .. $n;
@arr = sort { $a->[1] cmp $b->[1] } @arr;
print "sorted $arr[0][1] $arr[-1][1]\n";

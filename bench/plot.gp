# bench/plot.gp: the charts of `make bench`, drawn from the .dat files that
# bench/report.py writes next to results.json. Called as
#   gnuplot -e "dir='build/bench'; nb=<backends>; subtitle='<machine>'" bench/plot.gp
set terminal svg size 900,500 dynamic enhanced font "sans,11" background "white"
set key outside right top
set grid ytics

# Thread scaling of the churn workload.
if (system("test -f ".dir."/churn.dat && echo 1") eq "1") {
  set output dir."/churn.svg"
  set title "small-object churn: total ops/s by threads\n{/*0.8 ".subtitle."}"
  set xlabel "threads"
  set ylabel "million ops/s"
  set logscale x 2
  set xrange [0.8:10]
  set xtics ("1" 1, "2" 2, "4" 4, "8" 8)
  set yrange [0:*]
  plot for [i=2:nb+1] dir."/churn.dat" using 1:i with linespoints lw 2 pt 7 title columnheader(i)
  unset logscale x
  unset xlabel
  set autoscale x
  set xtics autofreq
}

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics norotate nomirror font ",10"
set yrange [0:*]

if (system("test -f ".dir."/speed.dat && echo 1") eq "1") {
  set output dir."/speed.svg"
  set title "speed relative to glibc (higher is better)\n{/*0.8 ".subtitle."}"
  set ylabel "x glibc"
  plot for [i=2:nb+1] dir."/speed.dat" using i:xtic(1) title columnheader(i), 1 with lines lc "black" dt 2 notitle
}

if (system("test -f ".dir."/memory.dat && echo 1") eq "1") {
  set output dir."/memory.svg"
  set title "memory relative to glibc (lower is better)\n{/*0.8 ".subtitle."}"
  set ylabel "x glibc"
  plot for [i=2:nb+1] dir."/memory.dat" using i:xtic(1) title columnheader(i), 1 with lines lc "black" dt 2 notitle
}

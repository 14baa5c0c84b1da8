# bench/plot.gp: one chart of the benchmark report, drawn from the .dat file
# bench/charts.py writes. Called as
#   gnuplot -e "dir='<data>'; out='<charts>'; chart='speed'; nb=<columns>; subtitle='<machine>'" bench/plot.gp
set terminal svg size 1000,520 dynamic enhanced font "sans,11" background "white"
set key outside right top
set grid ytics
set output out."/".chart.".svg"

if (chart eq "churn") {
  set title "small-object churn: total ops/s by threads\n{/*0.8 ".subtitle."}"
  set xlabel "threads"
  set ylabel "million ops/s"
  set logscale x 2
  set xrange [0.8:10]
  set xtics ("1" 1, "2" 2, "4" 4, "8" 8)
  set yrange [0:*]
  plot for [i=2:nb+1] dir."/churn.dat" using 1:i with linespoints lw 2 pt 7 title columnheader(i)
  exit
}

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 nomirror font ",9"
set yrange [0:*]
set ylabel "x glibc"
if (chart eq "speed") {
  set title "speed relative to glibc: glibc's time / time (higher is better)\n{/*0.8 ".subtitle."}"
} else {
  set title "peak RSS relative to glibc (lower is better)\n{/*0.8 ".subtitle."}"
}
plot for [i=2:nb+1] dir."/".chart.".dat" using i:xtic(1) title columnheader(i), 1 with lines lc "black" dt 2 notitle

# plot.gnuplot - records/s against batch size, per connection count, tlm and nginx.
# Called by bench/report.py:  gnuplot -e "data='...'; out='...'; machine='...'; cols='2 3 ...'" bench/plot.gnuplot
# data columns: batch, tlm 1, tlm 32, tlm 256, nginx 1, nginx 32, nginx 256 (records/s; NaN = not run);
# cols lists the columns that hold figures (a quick run measures fewer points).
set terminal pngcairo size 1100,650 font "DejaVu Sans,11"
set output out
set title sprintf("tlm vs nginx (return 204): HTTP records/s by batch size and connections\n%s", machine)
set logscale xy
set xlabel "records per batch"
set ylabel "records/s"
set xtics ("1" 1, "10" 10, "100" 100, "1000" 1000)
set format y "%.0s%c"
set grid xtics ytics mytics
set key outside right top
set datafile missing "NaN"
set style line 2 lw 2 dt 1 pt 7 lc rgb "#1f77b4"
set style line 3 lw 2 dt 1 pt 7 lc rgb "#2ca02c"
set style line 4 lw 2 dt 1 pt 7 lc rgb "#d62728"
set style line 5 lw 1 dt 2 pt 6 lc rgb "#1f77b4"
set style line 6 lw 1 dt 2 pt 6 lc rgb "#2ca02c"
set style line 7 lw 1 dt 2 pt 6 lc rgb "#d62728"
array T[7] = ["", "tlm, 1 conn", "tlm, 32 conns", "tlm, 256 conns", "nginx, 1 conn", "nginx, 32 conns", "nginx, 256 conns"]
plot for [s in cols] data using 1:(column(int(s))) with linespoints ls int(s) title T[int(s)]

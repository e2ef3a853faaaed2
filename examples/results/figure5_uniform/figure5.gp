# UniformFlip noise (Fashion-MNIST, lenet), 3 seed(s), 3000 steps
# Redraw with: cd examples/results/figure5_uniform && gnuplot figure5.gp  (writes figure5.png here)
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo size 900,560
} else {
    set terminal png size 900,560
}
set output 'figure5.png'
set termoption noenhanced
set title 'UniformFlip noise (Fashion-MNIST, lenet), 3 seed(s), 3000 steps'
set xlabel 'Noise ratio (%)'
set ylabel 'Test accuracy (%)'
set key outside right top
set grid
set yrange [0:100]
set xrange [-5:55]
set xtics ('0' 0, '10' 10, '20' 20, '30' 30, '40' 40, '50' 50)
$m0 << EOD
-0.25 85.0433 0.317857
9.75 79.9267 0.505404
19.75 74.4033 1.06327
29.75 67.51 0.982293
39.75 59.6433 1.80137
49.75 52.35 3.34501
EOD
$m1 << EOD
0.25 83.6567 1.1812
10.25 83.2067 0.56748
20.25 81.9733 0.806494
30.25 81.21 1.24772
40.25 79.37 0.512152
50.25 78.8867 1.59343
EOD
plot $m0 using 1:2:3 with yerrorlines lw 2 dt 1 pt 7 ps 1.3 lc rgb '#1f77b4' title 'uniform', \
     $m1 using 1:2:3 with yerrorlines lw 2 dt 2 pt 5 ps 1.3 lc rgb '#ff7f0e' title 'l2rw'

# Example weights from step 1000, 50 batches (Fashion-MNIST, background noise, 3 seed(s))
# Redraw with: cd examples/results/figure3_background_0.4 && gnuplot figure3.gp  (writes figure3.png here)
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo size 900,500
} else {
    set terminal png size 900,500
}
set output 'figure3.png'
set termoption noenhanced
set title 'Example weights from step 1000, 50 batches (Fashion-MNIST, background noise, 3 seed(s))'
set style fill solid 0.6 border -1
set grid ytics
set key top right
set xlabel 'weight / batch mean (= batch size x weight); left of the dashed line: weight 0; last bin: the top 1%'
set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2
set ylabel 'share of the group''s examples (%)'
set yrange [0:*]
set multiplot layout 1,1 title 'Example weights from step 1000, 50 batches (Fashion-MNIST, background noise, 3 seed(s))'
set title 'l2rw, noise ratio 0.4 - weight 0: 22% of clean, weight 0: 98% of flipped'
set boxwidth 0.350616 absolute
set xrange [-0.779147:15.8946]
$h0_0 << EOD
-0.58436 21.8546
0.194787 39.5043
0.973933 10.9439
1.75308 6.58404
2.53223 4.47051
3.31137 3.40821
4.09052 2.34591
4.86967 2.01394
5.64881 1.82583
6.42796 1.36107
7.20711 0.929512
7.98625 0.874184
8.7654 0.730331
9.54455 0.663937
10.3237 0.464756
11.1028 0.320903
11.882 0.154919
12.6611 0.27664
13.4403 0.243444
14.2194 0.110656
14.9986 0.918446
EOD
$h0_1 << EOD
-0.194787 98.4739
0.58436 0.251551
1.36351 0.352172
2.14265 0.268321
2.9218 0.10062
3.70095 0.0838504
4.48009 0.117391
5.25924 0.0670803
6.03839 0.0670803
6.81753 0.0670803
7.59668 0.0670803
8.37583 0.0167701
9.15497 0.0167701
9.93412 0.0167701
10.7133 0
11.4924 0
12.2716 0.0167701
13.0507 0
13.8299 0
14.609 0
15.3881 0.0167701
EOD
plot $h0_0 using 1:2 with boxes lc rgb '#1f77b4' title 'clean (9037)', \
     $h0_1 using 1:2 with boxes lc rgb '#d62728' title 'flipped (5963)'
unset multiplot

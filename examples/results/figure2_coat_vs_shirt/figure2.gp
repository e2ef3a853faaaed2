set output '/tmp/res/fig2/figure2.png'
set title 'Class imbalance (Fashion-MNIST, classes 4 vs 6), 5 seed(s), 500 steps'
set xlabel 'Proportion of the majority class'
set ylabel 'Test error (%)'
set termoption noenhanced
set key outside right top
set grid
set yrange [0:*]
set xrange [-0.3:4.3]
plot '/tmp/res/fig2/figure2.dat' index 0 using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title 'uniform', \
     '/tmp/res/fig2/figure2.dat' index 1 using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title 'proportion', \
     '/tmp/res/fig2/figure2.dat' index 2 using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title 'resample', \
     '/tmp/res/fig2/figure2.dat' index 3 using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title 'hard_mining', \
     '/tmp/res/fig2/figure2.dat' index 4 using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title 'random', \
     '/tmp/res/fig2/figure2.dat' index 5 using 1:3:4:xtic(2) with yerrorlines lw 2 pt 7 title 'l2rw'

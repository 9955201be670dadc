set terminal pngcairo size 720,480
set output 'fig_training.png'
set title "training loss" noenhanced
set xlabel 'optimizer step'
set ylabel 'loss (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_training.dat' index 0 using 1:2 with linespoints title "run 2 bqpo" noenhanced, 'fig_training.dat' index 1 using 1:2 with linespoints title "run 3 bqpo" noenhanced, 'fig_training.dat' index 2 using 1:2 with linespoints title "run 3 e2e_oqp" noenhanced
set terminal svg size 720,480 dynamic
set output 'fig_training.svg'
set title "training loss" noenhanced
set xlabel 'optimizer step'
set ylabel 'loss (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_training.dat' index 0 using 1:2 with linespoints title "run 2 bqpo" noenhanced, 'fig_training.dat' index 1 using 1:2 with linespoints title "run 3 bqpo" noenhanced, 'fig_training.dat' index 2 using 1:2 with linespoints title "run 3 e2e_oqp" noenhanced

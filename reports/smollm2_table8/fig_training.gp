set terminal pngcairo size 720,480
set output 'fig_training.png'
set title "training loss" noenhanced
set xlabel 'optimizer step'
set ylabel 'loss (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_training.dat' index 0 using 1:2 with linespoints title "run 2 bqpo" noenhanced, 'fig_training.dat' index 1 using 1:2 with linespoints title "run 3 bqpo" noenhanced, 'fig_training.dat' index 2 using 1:2 with linespoints title "run 3 e2e_oqp" noenhanced, 'fig_training.dat' index 3 using 1:2 with linespoints title "run 5 bqpo" noenhanced, 'fig_training.dat' index 4 using 1:2 with linespoints title "run 6 bqpo" noenhanced, 'fig_training.dat' index 5 using 1:2 with linespoints title "run 6 e2e_oqp" noenhanced, 'fig_training.dat' index 6 using 1:2 with linespoints title "run 8 bqpo" noenhanced, 'fig_training.dat' index 7 using 1:2 with linespoints title "run 9 bqpo" noenhanced, 'fig_training.dat' index 8 using 1:2 with linespoints title "run 9 e2e_oqp" noenhanced
set terminal svg size 720,480 dynamic
set output 'fig_training.svg'
set title "training loss" noenhanced
set xlabel 'optimizer step'
set ylabel 'loss (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_training.dat' index 0 using 1:2 with linespoints title "run 2 bqpo" noenhanced, 'fig_training.dat' index 1 using 1:2 with linespoints title "run 3 bqpo" noenhanced, 'fig_training.dat' index 2 using 1:2 with linespoints title "run 3 e2e_oqp" noenhanced, 'fig_training.dat' index 3 using 1:2 with linespoints title "run 5 bqpo" noenhanced, 'fig_training.dat' index 4 using 1:2 with linespoints title "run 6 bqpo" noenhanced, 'fig_training.dat' index 5 using 1:2 with linespoints title "run 6 e2e_oqp" noenhanced, 'fig_training.dat' index 6 using 1:2 with linespoints title "run 8 bqpo" noenhanced, 'fig_training.dat' index 7 using 1:2 with linespoints title "run 9 bqpo" noenhanced, 'fig_training.dat' index 8 using 1:2 with linespoints title "run 9 e2e_oqp" noenhanced

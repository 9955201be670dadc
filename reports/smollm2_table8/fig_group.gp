set terminal pngcairo size 720,480
set output 'fig_group.png'
set title "smollm2-135m: WikiText-2 perplexity vs group size" noenhanced
set xlabel 'group size G'
set ylabel 'perplexity (log scale)'
set logscale y 10
set grid
set key top left
set logscale x 2
plot 'fig_group.dat' index 0 using 1:2 with linespoints title "W4S50" noenhanced, 'fig_group.dat' index 1 using 1:2 with linespoints title "W4S60" noenhanced
set terminal svg size 720,480 dynamic
set output 'fig_group.svg'
set title "smollm2-135m: WikiText-2 perplexity vs group size" noenhanced
set xlabel 'group size G'
set ylabel 'perplexity (log scale)'
set logscale y 10
set grid
set key top left
set logscale x 2
plot 'fig_group.dat' index 0 using 1:2 with linespoints title "W4S50" noenhanced, 'fig_group.dat' index 1 using 1:2 with linespoints title "W4S60" noenhanced

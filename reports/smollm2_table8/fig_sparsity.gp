set terminal pngcairo size 720,480
set output 'fig_sparsity.png'
set title "smollm2-135m: WikiText-2 perplexity vs sparsity" noenhanced
set xlabel 'sparsity (fraction of groups removed)'
set ylabel 'perplexity (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_sparsity.dat' index 0 using 1:2 with linespoints title "W4 G16" noenhanced
set terminal svg size 720,480 dynamic
set output 'fig_sparsity.svg'
set title "smollm2-135m: WikiText-2 perplexity vs sparsity" noenhanced
set xlabel 'sparsity (fraction of groups removed)'
set ylabel 'perplexity (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_sparsity.dat' index 0 using 1:2 with linespoints title "W4 G16" noenhanced

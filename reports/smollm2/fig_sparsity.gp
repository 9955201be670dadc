set terminal pngcairo size 720,480
set output 'fig_sparsity.png'
set title "smollm2-135m: WikiText-2 perplexity vs sparsity" noenhanced
set xlabel 'sparsity (fraction of groups removed)'
set ylabel 'perplexity (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_sparsity.dat' index 0 using 1:2 with linespoints title "sparsity only, G16" noenhanced, 'fig_sparsity.dat' index 1 using 1:2 with linespoints title "W4 G16" noenhanced, 'fig_sparsity.dat' index 2 using 1:2 with linespoints title "W4 G4" noenhanced, 'fig_sparsity.dat' index 3 using 1:2 with linespoints title "W4 G8" noenhanced, 'fig_sparsity.dat' index 4 using 1:2 with linespoints title "W4 G32" noenhanced, 'fig_sparsity.dat' index 5 using 1:2 with linespoints title "W4 G64" noenhanced
set terminal svg size 720,480 dynamic
set output 'fig_sparsity.svg'
set title "smollm2-135m: WikiText-2 perplexity vs sparsity" noenhanced
set xlabel 'sparsity (fraction of groups removed)'
set ylabel 'perplexity (log scale)'
set logscale y 10
set grid
set key top left
unset logscale x
plot 'fig_sparsity.dat' index 0 using 1:2 with linespoints title "sparsity only, G16" noenhanced, 'fig_sparsity.dat' index 1 using 1:2 with linespoints title "W4 G16" noenhanced, 'fig_sparsity.dat' index 2 using 1:2 with linespoints title "W4 G4" noenhanced, 'fig_sparsity.dat' index 3 using 1:2 with linespoints title "W4 G8" noenhanced, 'fig_sparsity.dat' index 4 using 1:2 with linespoints title "W4 G32" noenhanced, 'fig_sparsity.dat' index 5 using 1:2 with linespoints title "W4 G64" noenhanced

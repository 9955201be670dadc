#!/usr/bin/env bash
# demo.sh — `make demo`: compress stories260K with GQSA W4 S50 G4, evaluate it and the FP model on
# WikiText-2 (limited windows), and leave tables and plots under results/demo/.
# Re-running is cheap: finished stages are skipped (their checkpoints match).
set -euo pipefail
cd "$(dirname "$0")/.."
GQSA=./build/gqsa
STORE=results/demo/gqsa.sqlite
$GQSA sweep configs/demo_table.yaml --store "$STORE"
$GQSA report --store "$STORE" --out results/demo/report --kind ablation --kind groups --kind methods
echo
cat results/demo/report/ablation.md
echo "tables and plots: results/demo/report/ (ablation.md/.csv/.tex, fig_*.png/.svg)"

#!/usr/bin/env python3
"""ncu_step_breakdown.py CSV... — per-kernel time of one decode step from an Nsight Compute CSV.

Input: `ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 1200 --launch-count 600
--csv gqsa bench decode --shape llama2-7b --formats F --lengths 16 --reps 1 --check 0` (one run per format;
the launches cover two whole steps of the prompt). One step = the kernels from one k_embed_dec to the next.
ncu runs kernels one at a time with caches flushed, so each time is the kernel alone, without the overlap
of programmatic dependent launch: the sum is an upper bound of the step, the shares are what matter.
"""
import collections
import csv
import re
import sys


def step(path):
    lines = open(path).read().splitlines()
    head = next(k for k, l in enumerate(lines) if l.startswith('"ID"'))
    rows = list(csv.reader(lines[head:]))
    hdr, rows = rows[0], rows[1:]
    ki, vi, ui, gi = (hdr.index(c) for c in ("Kernel Name", "Metric Value", "Metric Unit", "Grid Size"))
    starts = [i for i, r in enumerate(rows) if "k_embed_dec" in r[ki]]
    tot, cnt = collections.defaultdict(float), collections.Counter()
    for r in rows[starts[0]:starts[1]]:
        scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}[r[ui]]
        us = float(r[vi].replace(",", "")) * scale
        name = re.sub(r"\(.*", "", r[ki].replace("<unnamed>::", "").replace("void ", ""))
        if "gemv" in name:
            name += " grid " + r[gi].strip("()").split(",")[0]
        tot[name] += us
        cnt[name] += 1
    return starts[1] - starts[0], tot, cnt


for path in sys.argv[1:]:
    n, tot, cnt = step(path)
    total = sum(tot.values())
    print(f"{path}: {n} kernels in one step, {total:.1f} us summed")
    for name, us in sorted(tot.items(), key=lambda x: -x[1]):
        print(f"  {name:42s} {cnt[name]:4d} x {us / cnt[name]:7.2f} us = {us:8.1f} us ({100 * us / total:4.1f}%)")

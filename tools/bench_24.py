#!/usr/bin/env python3
"""bench_24.py — the 2:4 (semi-structured) sparsity baseline for `gqsa bench kernel`, on the GPU machine.

fp16 weights [N, K] pruned 2:4 (two largest |w| of every 4 consecutive inputs kept), converted with
torch.sparse.to_sparse_semi_structured (cuSPARSELt / CUTLASS, from torch's wheel), multiplied with
x [K, B] (fp16, fp32 accumulation inside the library). Timed like core/cuda/bench_kernel.cu: a CUDA graph
of 20 launches rotating through weight copies that together exceed max(4x L2, 240 MB), warm-up, median of
--reps replays of CUDA events. The sparse kernels need the dense operand's columns padded to a multiple
of 16 (so batch 1..15 runs as 16: the bytes count the real batch, the time is what the padded call takes).
Correctness first: the sparse product must match the dense product of the same pruned weights
(relative L2 error < 5e-3), else the point is reported and not timed.
Writes CSV rows with the columns of `gqsa bench kernel --csv` (kernel = "sparse24_fp16").

usage: python3 tools/bench_24.py [--quick] [--csv FILE] [--reps N]
Must not: run on the CPU (it exits 2 without CUDA), or time a point whose check failed.
"""
import argparse
import statistics
import sys

import torch


def copy_bandwidth():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda").fill_(90)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    ts = []
    for _ in range(20):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    del a, b
    return 2.0 * n / (statistics.median(ts) * 1e-3) / 1e9


def prune24(w):
    n, k = w.shape
    g = w.view(n, k // 4, 4)
    idx = g.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
    return (g * mask).view(n, k)


def time_graph(fn, reps):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn(0)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(20):
            fn(i)
    for _ in range(3):
        g.replay()
    ts = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        g.replay()
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    return 1000.0 * statistics.median(ts) / 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv")
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_24: no CUDA device", file=sys.stderr)
        return 2
    from torch.sparse import to_sparse_semi_structured

    prop = torch.cuda.get_device_properties(0)
    l2 = getattr(prop, "L2_cache_size", 50 << 20)
    bw = copy_bandwidth()
    print(f"bench_24: {prop.name}, D2D copy {bw:.0f} GB/s (read+write)", file=sys.stderr)
    shapes = [(8192, 8192), (4096, 4096)] if a.quick else [(8192, 8192), (4096, 4096), (11008, 4096), (4096, 11008)]
    batches = [1, 16] if a.quick else [1, 2, 4, 8, 16]
    rows, bad = [], 0
    torch.manual_seed(0)
    for n, k in shapes:
        w = prune24(torch.randn(n, k, device="cuda", dtype=torch.float16) * 0.02)
        ws = to_sparse_semi_structured(w)
        vals = ws.packed.numel() * ws.packed.element_size() if hasattr(ws, "packed") and ws.packed is not None else n * k
        meta = ws.meta.numel() * ws.meta.element_size() if getattr(ws, "meta", None) is not None else 0
        wbytes = vals + meta
        ncp = max(2, int(-(-max(4 * l2, 240e6) // wbytes)))
        copies = [to_sparse_semi_structured(w.clone()) for _ in range(ncp)]
        for b in batches:
            bp = max(16, (b + 15) // 16 * 16)
            x = torch.randn(k, bp, device="cuda", dtype=torch.float16)
            ref = (w.float() @ x.float())[:, :b]
            got = torch.mm(ws, x)[:, :b].float()
            rel = ((got - ref).norm() / ref.norm()).item()
            if not rel < 5e-3:
                print(f"bench_24: CHECK FAILED {n}x{k} B={b}: rel err {rel:.3g}; not timed", file=sys.stderr)
                bad += 1
                continue
            y = torch.empty(n, bp, device="cuda", dtype=torch.float16)
            us = time_graph(lambda i: y.copy_(torch.mm(copies[i % ncp], x)), a.reps)
            # the copy_ into y adds one small kernel; its bytes (y) are counted below as the output
            byt = wbytes + 2 * b * k + 2 * b * n
            gbs = byt / (us * 1e-6) / 1e9
            rows.append(("sparse24_fp16", n, k, b, 0.5, 0, 16, "2:4", us, byt, gbs, gbs / bw, float("nan"), float("nan"),
                         ncp, prop.name, bw))
            print(f"sparse24_fp16 {n:6d} {k:6d} {b:3d}  {us:9.2f} us  {byt/1e6:8.2f} MB  {gbs:7.0f} GB/s  "
                  f"{100*gbs/bw:5.1f}% copy  (batch padded to {bp})")
        del copies, ws, w
        torch.cuda.empty_cache()
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("kernel,N,K,batch,sparsity,group,bits,pattern,time_us,bytes,gbps,frac_copy_bw,speedup_vs_fp16,"
                    "speedup_vs_w4_g128,copies,device,copy_gbps\n")
            for r in rows:
                f.write("%s,%d,%d,%d,%.4f,%d,%d,%s,%.4f,%.0f,%.2f,%.4f,%.4f,%.4f,%d,\"%s\",%.1f\n" % r)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

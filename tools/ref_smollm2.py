#!/usr/bin/env python3
"""ref_smollm2.py — float64 numpy logits of SmolLM2-135M (GGUF Q4_1) for a fixed token sequence.

Weights are dequantized by the `gguf` Python package (llama.cpp's own reader, not gqsa's), the
forward pass is plain numpy in float64 with interleaved-pair RoPE (GGUF "llama" stores q/k rows in
Meta order), theta and eps from the file's metadata, tied embeddings. Writes
tests/fixtures/forward/smollm2_logits.txt: per position the log-sum-exp of the logits, the argmax and
the logits at a fixed set of vocabulary columns (the full [T, 49152] block would be too large).
Must not import gqsa code.

usage: python3 tools/ref_smollm2.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
r = GGUFReader(path)


def meta(k):
    f = r.fields[k]
    return f.parts[f.data[0]][0]


T_ = {t.name: t for t in r.tensors}


def W(name):
    t = T_[name]
    return dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)]).astype(np.float64)


L, D, NH, NKV = int(meta("llama.block_count")), int(meta("llama.embedding_length")), \
    int(meta("llama.attention.head_count")), int(meta("llama.attention.head_count_kv"))
theta, eps = float(meta("llama.rope.freq_base")), float(meta("llama.attention.layer_norm_rms_epsilon"))
HD = D // NH


def rms(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, T):
    x = x.reshape(T, -1, HD // 2, 2).copy()
    ang = np.arange(T)[:, None] * theta ** (-2.0 * np.arange(HD // 2) / HD)[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0].copy(), x[..., 1].copy()
    x[..., 0], x[..., 1] = x0 * c - x1 * s, x0 * s + x1 * c
    return x.reshape(T, -1)


ids = [1, 504, 3458, 282, 6330, 30, 2114, 314, 253, 1345, 0, 49151, 17, 9]
T = len(ids)
emb = W("token_embd.weight")
x = emb[ids]
mask = np.triu(np.full((T, T), -np.inf), 1)
for l in range(L):
    p = "blk.%d." % l
    xb = rms(x, W(p + "attn_norm.weight"))
    q = rope(xb @ W(p + "attn_q.weight").T, T).reshape(T, NH, HD)
    k = rope(xb @ W(p + "attn_k.weight").T, T).reshape(T, NKV, HD)
    v = (xb @ W(p + "attn_v.weight").T).reshape(T, NKV, HD)
    out = np.empty((T, NH, HD))
    for h in range(NH):
        g = h // (NH // NKV)
        a = q[:, h] @ k[:, g].T / np.sqrt(HD) + mask
        a = np.exp(a - a.max(1, keepdims=True))
        out[:, h] = (a / a.sum(1, keepdims=True)) @ v[:, g]
    x = x + out.reshape(T, -1) @ W(p + "attn_output.weight").T
    xb = rms(x, W(p + "ffn_norm.weight"))
    g1 = xb @ W(p + "ffn_gate.weight").T
    x = x + (g1 / (1 + np.exp(-g1)) * (xb @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
head = W("output.weight") if "output.weight" in T_ else emb
logits = rms(x, W("output_norm.weight")) @ head.T
V = logits.shape[1]
cols = sorted(set(np.random.default_rng(135).integers(0, V, 60).tolist() + [0, 1, 2, V - 1]))
out = os.path.join(here, "..", "tests", "fixtures", "forward", "smollm2_logits.txt")
with open(out, "w") as f:
    f.write("# SmolLM2-135M-Instruct.Q4_1.gguf float64 logits (tools/ref_smollm2.py, gguf %s dequantization)\n"
            % "package")
    f.write("T %d V %d ncols %d\n%s\n%s\n" % (T, V, len(cols), " ".join(map(str, ids)), " ".join(map(str, cols))))
    for t in range(T):
        row = logits[t]
        mx = row.max()
        lse = mx + np.log(np.exp(row - mx).sum())
        f.write("%.12e %d %s\n" % (lse, int(row.argmax()), " ".join("%.9e" % row[c] for c in cols)))
print("wrote", out, "argmax:", [int(a) for a in logits.argmax(1)])

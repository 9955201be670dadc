#!/usr/bin/env python3
"""ref_forward.py — an independent float64 numpy forward pass of stories260K, for golden fixtures.

Reads stories260K.bin (llama2.c legacy layout, see ../shared/models/README.md) and tok512.bin with
numpy only (no gqsa code), and writes into tests/fixtures/forward/:
  logits.txt     float64 logits of a few fixed token sequences (tests/test_forward.c compares ours)
  greedy.txt     the greedy token ids from BOS (run.c rules: steps 256, stop at BOS) and a check
                 that their llama2.c-decoded text equals tests/fixtures/stories260K/greedy_sample.txt
  ppl.txt        token ids (BOS + the greedy sample) and, for several (seqlen, limit), the GPTQ
                 protocol's window count, NLL sum and perplexity (tests/test_eval_ppl.c compares ours)
It must not import anything from gqsa or reuse its conventions beyond the documented file layouts.

usage: python3 tools/ref_forward.py [--data-root ../shared] [--out tests/fixtures/forward]
"""
import argparse
import os
import struct
import sys

import numpy as np


def load_model(path):
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    w = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        a = w[off:off + n].reshape(shape)
        off += n
        return a

    m = dict(dim=dim, hidden=hidden, L=n_layers, NH=n_heads, NKV=n_kv, V=vocab, S=seq_len, HD=hd)
    m["emb"] = take(vocab, dim)
    m["rms_att"] = take(n_layers, dim)
    m["wq"] = take(n_layers, dim, dim)
    m["wk"] = take(n_layers, n_kv * hd, dim)
    m["wv"] = take(n_layers, n_kv * hd, dim)
    m["wo"] = take(n_layers, dim, dim)
    m["rms_ffn"] = take(n_layers, dim)
    m["w1"] = take(n_layers, hidden, dim)
    m["w2"] = take(n_layers, dim, hidden)
    m["w3"] = take(n_layers, hidden, dim)
    m["rms_final"] = take(dim)
    off += seq_len * hd // 2 * 2  # freq_cis_real, freq_cis_imag: unused (recomputed, as run.c does)
    m["cls"] = m["emb"] if shared else take(vocab, dim)
    return m


def rmsnorm(x, w, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_interleaved(x, pos, hd, theta=10000.0):
    # x [T, nh*hd]; pairs (2i, 2i+1) of each head rotated by pos * theta^(-2i/hd)
    T = x.shape[0]
    x = x.reshape(T, -1, hd // 2, 2).copy()
    freq = theta ** (-2.0 * np.arange(hd // 2) / hd)
    ang = pos[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0].copy(), x[..., 1].copy()
    x[..., 0] = x0 * c - x1 * s
    x[..., 1] = x0 * s + x1 * c
    return x.reshape(T, -1)


def forward(m, tokens):
    """float64 logits [T, V] for tokens [T] at positions 0..T-1, causal."""
    T, hd, NH, NKV = len(tokens), m["HD"], m["NH"], m["NKV"]
    pos = np.arange(T, dtype=np.float64)
    x = m["emb"][np.asarray(tokens)]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(m["L"]):
        xb = rmsnorm(x, m["rms_att"][l])
        q = rope_interleaved(xb @ m["wq"][l].T, pos, hd).reshape(T, NH, hd)
        k = rope_interleaved(xb @ m["wk"][l].T, pos, hd).reshape(T, NKV, hd)
        v = (xb @ m["wv"][l].T).reshape(T, NKV, hd)
        out = np.empty((T, NH, hd))
        for h in range(NH):
            g = h // (NH // NKV)
            a = q[:, h, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            a = np.exp(a - a.max(axis=1, keepdims=True))
            a /= a.sum(axis=1, keepdims=True)
            out[:, h, :] = a @ v[:, g, :]
        x = x + out.reshape(T, -1) @ m["wo"][l].T
        xb = rmsnorm(x, m["rms_ffn"][l])
        g1 = xb @ m["w1"][l].T
        hb = g1 / (1.0 + np.exp(-g1)) * (xb @ m["w3"][l].T)
        x = x + hb @ m["w2"][l].T
    return rmsnorm(x, m["rms_final"]) @ m["cls"].T


def nll_sum(logits, tokens):
    lg = logits[:-1]
    mx = lg.max(axis=1, keepdims=True)
    lse = (mx[:, 0] + np.log(np.exp(lg - mx).sum(axis=1)))
    return float(np.sum(lse - lg[np.arange(len(tokens) - 1), tokens[1:]]))


def load_vocab(path, V):
    raw = open(path, "rb").read()
    off = 4
    vocab = []
    for _ in range(V):
        _score, n = struct.unpack("<fi", raw[off:off + 8])
        off += 8
        vocab.append(raw[off:off + n])
        off += n
    return vocab


def decode_run_c(vocab, prev, tok):
    """llama2.c run.c decode() + safe_printf(): strip the leading space after BOS, <0xXX> raw bytes,
    drop single non-printable bytes."""
    piece = vocab[tok]
    if prev == 1 and piece.startswith(b" "):
        piece = piece[1:]
    if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
        piece = bytes([int(piece[3:5], 16)])
    if len(piece) == 1 and not (32 <= piece[0] < 127 or piece[0] in b" \t\n\v\f\r"):
        return b""
    return piece


def greedy(m, steps=256):
    # Full-window recompute each step (O(n^2) but n <= 256 and the model is tiny): no KV cache to get wrong.
    toks = [1]
    while len(toks) <= steps:  # run.c: one sampled token per position 0..steps-1
        nxt = int(np.argmax(forward(m, toks)[-1]))
        if nxt == 1:
            break
        toks.append(nxt)
    return toks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data-root", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "forward"))
    a = ap.parse_args()
    mdir = os.path.join(a.data_root, "models", "stories260K")
    m = load_model(os.path.join(mdir, "stories260K.bin"))
    os.makedirs(a.out, exist_ok=True)

    # 1. logits of fixed sequences: a short one, one with every kind of id range, one past 64 tokens
    rng = np.random.default_rng(20241217)
    seqs = [[1, 403, 407, 261, 378, 261, 3, 7],
            [1] + [int(t) for t in rng.integers(0, m["V"], 20)],
            [int(t) for t in rng.integers(0, m["V"], 70)]]
    with open(os.path.join(a.out, "logits.txt"), "w") as f:
        f.write("# float64 logits of stories260K from tools/ref_forward.py; per sequence: 'seq T V', the ids,\n"
                "# then T rows of V logits\n")
        f.write("nseq %d\n" % len(seqs))
        for s in seqs:
            lg = forward(m, s)
            f.write("seq %d %d\n" % (len(s), m["V"]))
            f.write(" ".join(map(str, s)) + "\n")
            for row in lg:
                f.write(" ".join("%.9e" % v for v in row) + "\n")

    # 2. greedy sample from BOS; must equal the sample printed in llama2.c's doc/stories260K.md
    toks = greedy(m)
    vocab = load_vocab(os.path.join(mdir, "tok512.bin"), m["V"])
    text = b"".join(decode_run_c(vocab, toks[i - 1], toks[i]) for i in range(1, len(toks))) + b"\n"
    want = open(os.path.join(here, "..", "tests", "fixtures", "stories260K", "greedy_sample.txt"), "rb").read()
    print("greedy: %d tokens, matches greedy_sample.txt: %s" % (len(toks), text == want))
    with open(os.path.join(a.out, "greedy.txt"), "w") as f:
        f.write("# greedy ids from BOS (float64 reference, run.c rules); decoded text == greedy_sample.txt: %s\n"
                % (text == want))
        f.write("%d\n%s\n" % (len(toks), " ".join(map(str, toks))))

    # 3. GPTQ-protocol perplexity on those ids: windows = n // seqlen (capped by limit), NLL over
    #    positions 1..seqlen-1 of each window, ppl = exp(sum NLL / (windows * (seqlen - 1))).
    ids = np.asarray(toks)
    cases = [(64, 0), (64, 2), (100, 0), (37, 3), (256, 0)]
    with open(os.path.join(a.out, "ppl.txt"), "w") as f:
        f.write("# GPTQ-protocol perplexity of stories260K on the ids below (float64 reference)\n")
        f.write("ids %d\n%s\n" % (len(ids), " ".join(map(str, toks))))
        f.write("# seqlen limit windows n_pred nll_sum ppl\n")
        for seqlen, limit in cases:
            nw = len(ids) // seqlen
            if limit:
                nw = min(nw, limit)
            tot = sum(nll_sum(forward(m, ids[i * seqlen:(i + 1) * seqlen]), ids[i * seqlen:(i + 1) * seqlen])
                      for i in range(nw))
            npred = nw * (seqlen - 1)
            f.write("case %d %d %d %d %.17g %.17g\n" % (seqlen, limit, nw, npred, tot, np.exp(tot / npred)))
            print("seqlen %d limit %d: %d windows ppl %.6f" % (seqlen, limit, nw, np.exp(tot / npred)))
    return 0 if text == want else 1


if __name__ == "__main__":
    sys.exit(main())

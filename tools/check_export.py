#!/usr/bin/env python3
"""check_export.py — read a GGUF written by `gqsa export` with the reference `gguf` package
(GGUFReader), check its GQS structure, and print a canonical summary.

    python3 tools/check_export.py MODEL.gguf [--no-check]

The summary (stdout) has one line per metadata key and one per tensor, in file order:
    kv <key> <vtype> <value>            scalars: ints as ints, floats as %.9g, bools 0/1, strings raw
                                        (\\n escaped); arrays: "arr <elem vtype> n=<n> sha256=<hex>"
                                        over the elements' little-endian bytes, or for string arrays
                                        over (u64 length + bytes) of each string
    tensor <name> <ggml type> dims=<d0,d1,..> offset=<from data start> nbytes=<n> sha256=<hex>
With checks on, a last line "decoded blk.0.attn_q rows= cols= nnz= sum_abs= max_code=" gives the
numpy decoding of that layer (sum of |w_hat|), which the test compares with gq_gqs_expand.
tests/test_export.c prints the same summary from gqsa's own GGUF reader and compares it with
tests/fixtures/export/stories260K_gqs.txt, which is this script's output on the file that test
writes (GQSA_EXPORT_KEEP=/tmp/x.gguf build/tests/test_export; python3 tools/check_export.py
/tmp/x.gguf > tests/fixtures/export/stories260K_gqs.txt).

Checks (stderr, exit 1 on failure): general.architecture is llama; every tensor offset is a
multiple of the alignment; for every blk.N.<linear>.gqs.* set: row_index starts at 0, is
monotone and ends at nnz, group_col has nnz entries in [0, K/G) ascending within each row, values
is {ceil(G*bits/8), nnz}, scales/zeros have nnz entries; and the dequantized matrix of layer 0's
q projection is computed from the arrays here in numpy (a reference decoder independent of gqsa's).
"""
import hashlib
import struct
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType

# numpy dtype per GGUF scalar value type
SCALAR = {
    GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "<u1", GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8",
}
LINEARS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def esc(b):
    return b.decode("utf-8", "backslashreplace").replace("\\", "\\\\").replace("\n", "\\n")


def fmt_scalar(vt, v):
    if vt in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return format(float(v), ".9g")
    if vt == GGUFValueType.BOOL:
        return str(int(bool(v)))
    return str(int(v))


def kv_lines(r):
    out = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        vt = f.types[0]
        if vt == GGUFValueType.STRING:
            out.append(f"kv {key} {int(vt)} {esc(bytes(f.parts[f.data[0]]))}")
        elif vt == GGUFValueType.ARRAY:
            et = f.types[1] if len(f.types) > 1 else GGUFValueType.UINT8
            h = hashlib.sha256()
            if et == GGUFValueType.STRING:
                for i in f.data:
                    s = bytes(f.parts[i])
                    h.update(struct.pack("<Q", len(s)) + s)
            else:
                for i in f.data:
                    h.update(np.asarray(f.parts[i], dtype=SCALAR[et]).tobytes())
            out.append(f"kv {key} {int(vt)} arr {int(et)} n={len(f.data)} sha256={h.hexdigest()}")
        else:
            out.append(f"kv {key} {int(vt)} {fmt_scalar(vt, f.parts[f.data[0]][0])}")
    return out


def tensor_lines(r):
    out = []
    start = min(t.data_offset for t in r.tensors) if r.tensors else 0
    for t in r.tensors:
        dims = ",".join(str(int(d)) for d in t.shape)
        data = np.asarray(t.data).tobytes()
        out.append(f"tensor {t.name} {t.tensor_type.name} dims={dims} offset={t.data_offset - start} "
                   f"nbytes={int(t.n_bytes)} sha256={hashlib.sha256(data).hexdigest()}")
    return out


def scalar(r, key):
    f = r.fields[key]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    return f.parts[f.data[0]][0]


def check(r, decoded):
    errs = []
    if scalar(r, "general.architecture") != "llama":
        errs.append("general.architecture is not llama")
    align = int(scalar(r, "general.alignment")) if "general.alignment" in r.fields else 32
    for t in r.tensors:
        if t.data_offset % align:
            errs.append(f"{t.name}: offset {t.data_offset} not a multiple of {align}")
    T = {t.name: t for t in r.tensors}
    if "gqsa.group_size" not in r.fields:
        return errs, 0
    G, bits = int(scalar(r, "gqsa.group_size")), int(scalar(r, "gqsa.bits"))
    bpg = (G * bits + 7) // 8
    D, H = int(scalar(r, "llama.embedding_length")), int(scalar(r, "llama.feed_forward_length"))
    L = int(scalar(r, "llama.block_count"))
    n = 0
    for l in range(L):
        for ln in LINEARS:
            p = f"blk.{l}.{ln}.gqs."
            if p + "row_index" not in T:
                continue
            n += 1
            K = H if ln == "ffn_down" else D
            ri = np.asarray(T[p + "row_index"].data, dtype=np.int64)
            gc = np.asarray(T[p + "group_col"].data, dtype=np.int64)
            vals = np.asarray(T[p + "values"].data).view(np.uint8)
            nnz = len(gc)
            if ri[0] != 0 or ri[-1] != nnz or np.any(np.diff(ri) < 0):
                errs.append(p + "row_index is not 0..nnz monotone")
            if np.any(gc < 0) or np.any(gc >= K // G):
                errs.append(p + "group_col out of range")
            for rr in range(len(ri) - 1):
                if np.any(np.diff(gc[ri[rr]:ri[rr + 1]]) <= 0):
                    errs.append(p + f"group_col not ascending in row {rr}")
                    break
            if tuple(int(d) for d in T[p + "values"].shape) != (bpg, nnz):
                errs.append(p + "values shape")
            for s in ("scales", "zeros"):
                if int(T[p + s].n_elements) != nnz:
                    errs.append(p + s + " length")
            if l == 0 and ln == "attn_q":
                # reference decoder: bit stream lsb first, code j at bit j*bits of its group
                sc = np.asarray(T[p + "scales"].data, dtype=np.float64)
                ze = np.asarray(T[p + "zeros"].data, dtype=np.float64)
                bitsarr = np.unpackbits(vals.reshape(nnz, bpg), axis=1, bitorder="little")
                codes = np.zeros((nnz, G), dtype=np.int64)
                for j in range(G):
                    for b in range(bits):
                        codes[:, j] |= bitsarr[:, j * bits + b].astype(np.int64) << b
                N = len(ri) - 1
                W = np.zeros((N, K))
                for rr in range(N):
                    for i in range(ri[rr], ri[rr + 1]):
                        W[rr, gc[i] * G:(gc[i] + 1) * G] = (codes[i] - ze[i]) * sc[i]
                decoded.append(f"decoded blk.0.attn_q rows={N} cols={K} nnz={nnz} sum_abs={np.abs(W).sum():.6f} "
                               f"max_code={codes.max()}")
    return errs, n


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    r = GGUFReader(args[0])
    for line in kv_lines(r) + tensor_lines(r):
        print(line)
    if "--no-check" not in sys.argv:
        decoded = []
        errs, n = check(r, decoded)
        for line in decoded:
            print(line)
        for e in errs:
            print("FAIL " + e, file=sys.stderr)
        print(f"# checked {len(r.tensors)} tensors, {n} GQS linears: {'ok' if not errs else 'FAILED'}", file=sys.stderr)
        return 1 if errs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""l2c_ref_encode.py — an independent, literal Python port of llama2.c run.c's encode() (commit
350e04f), used to make tests/fixtures/tok/l2c_cases.txt for the C llama2.c tokenizer.

It does what run.c does, in run.c's own O(n^2) way (no heap, no shared code with gqsa):
  tokens = [BOS] if bos; if text != "": tokens += [id of " "]
  per UTF-8 character: its id if the character is a vocabulary entry, else each byte as byte+3
  loop: over all adjacent pairs pick the concatenation in the vocabulary with the highest score
        (strictly greater wins, so the leftmost of equal scores), merge it; stop when none.
Output lines: "<tokenizer file name> <text as hex> <ids space-separated>" (bos = 1 for every case).
Usage: python3 tools/l2c_ref_encode.py [--data-root ../shared] > tests/fixtures/tok/l2c_cases.txt
"""
import argparse
import os
import struct


def load(path):
    b = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", b, 0)
    off, vocab, scores = 4, [], []
    while off < len(b):
        s, n = struct.unpack_from("<fi", b, off)
        off += 8
        vocab.append(b[off : off + n])
        scores.append(s)
        off += n
    return vocab, scores


def encode(vocab, scores, text, bos=True):
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)  # run.c's bsearch on unique strings: these files have no duplicates
    toks = [1] if bos else []
    data = text.encode("utf-8")
    if data:
        toks.append(lookup[b" "])
    i = 0
    while i < len(data):
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        ch = data[i:j]
        if ch in lookup:
            toks.append(lookup[ch])
        else:
            toks.extend(c + 3 for c in ch)
        i = j
    while True:
        best, best_id, best_idx = -1e10, -1, -1
        for k in range(len(toks) - 1):
            cat = vocab[toks[k]] + vocab[toks[k + 1]]
            idx = lookup.get(cat, -1)
            if idx != -1 and scores[idx] > best:
                best, best_id, best_idx = scores[idx], idx, k
        if best_idx == -1:
            break
        toks[best_idx : best_idx + 2] = [best_id]
    return toks


CASES_TOK512 = [
    "",
    "a",
    "Once upon a time, there was a little girl named Lily.",
    "She liked to play outside in the park with her friends.",
    "The cat sat on the mat.  Two spaces, then\nnewline and\ttab.",
    "Unicode: naïve café — 日本語 🙂",
    "Numbers 12345 and symbols #$%&*()[]{}",
    "   leading and trailing spaces   ",
    "\x01\x7f control bytes",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("GQSA_DATA_ROOT", "../shared"))
    args = ap.parse_args()
    tok512 = os.path.join(args.data_root, "models/stories260K/tok512.bin")
    llama = os.path.join(args.data_root, "models/llama2-tokenizer/tokenizer.bin")
    wiki = open(os.path.join(args.data_root, "datasets/wikitext-2-raw-v1/wiki.test.raw"), encoding="utf-8").read().split("\n")
    v, s = load(tok512)
    for text in CASES_TOK512:
        print("tok512.bin", text.encode("utf-8").hex() or "-", " ".join(map(str, encode(v, s, text))))
    v, s = load(llama)
    # every 20th of the first 400 lines of WikiText-2 test, plus the hand cases
    for text in CASES_TOK512 + wiki[0:400:20]:
        print("tokenizer.bin", text.encode("utf-8").hex() or "-", " ".join(map(str, encode(v, s, text))))


if __name__ == "__main__":
    main()

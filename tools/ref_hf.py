#!/usr/bin/env python3
"""ref_hf.py — the Hugging Face oracle for gqsa's golden fixtures (issue 2). Run by the lead on the GPU
machine (torch 2.x + transformers 5.x + the `gguf` package; no network needed); never imported by tests.

What it does, exactly:
 1. Loads SmolLM2-135M from a GGUF file with transformers:
        AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, torch_dtype=torch.float32)
        AutoTokenizer.from_pretrained(dir, gguf_file=name)
    transformers dequantizes the Q4_1 blocks to fp32 and un-permutes the q/k rows of the GGUF "llama"
    layout, so its model uses rotate-half RoPE on the original rows; gqsa keeps the GGUF rows and
    rotates interleaved pairs. Equal logits therefore also check gqsa's RoPE convention.
 2. Logits fixture (--out-dir, default tests/fixtures/golden): the 4 PROMPTS below are tokenized with
    the HF tokenizer (its default special-token handling; whether BOS was added is recorded), one
    forward pass each in fp32 (TF32 disabled), and written to smollm2_logits.bin:
        char[8]  magic "GQGOLD01"
        uint32   n_prompts, vocab, topk                       (little endian)
        per prompt:
          uint32   T
          int32    ids[T]
          float32  lse[T]         log-sum-exp of each position's logits (computed in float64)
          float32  maxabs[T]      max |logit| of each position
          int32    top_ids[T*topk] the topk largest logits of each position, descending
          float32  top_val[T*topk]
          float32  last[vocab]    every logit of the last position
    (~0.8 MB for 4 prompts). smollm2_logits.json beside it holds the prompts, ids, versions, the
    model file's sha256 and the summary below.
 3. Perplexity by the GPTQ protocol at --seqlen (default 2048), with --data-root (default ../shared):
    WikiText-2: the lines of datasets/wikitext-2-raw-v1/wiki.test.raw, each kept with its "\n", a
      line that is just " \n" becoming "" (exactly the rows of HF's wikitext-2-raw-v1 test split),
      joined with "\n\n", tokenized once; nsamples = n_tokens // seqlen non-overlapping windows;
      each window's loss = model(input_ids=w, labels=w).loss (mean NLL of its seqlen-1 predictions);
      ppl = exp(mean of the window losses).
    C4 ("c4-new"): the `text` of every document of datasets/c4/c4-validation-shard0-first1025.jsonl
      (GPTQ takes the first 1100; only 1025 are available) joined with " ", tokenized once, cut to
      256*seqlen tokens, then windows and ppl as above.
    Prints tokens, windows and ppl for each; --skip-ppl skips this part, --limit N caps the windows.
 4. JSON summary: smollm2_ref.json in --out-dir (ppl, tokens, windows, versions, device, dtype).
Usage:
    python3 tools/ref_hf.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf --data-root ../shared
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time

PROMPTS = [
    "The capital of France is Paris, and the capital of Italy is",
    "Once upon a time, there was a little robot who wanted to learn how to paint the sky.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "In 1969, Neil Armstrong became the first person to walk on the Moon. The mission was called",
]
TOPK = 16


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wikitext_text(path):
    rows = []
    with open(path, "r", encoding="utf-8", newline="") as f:
        for line in f:  # keeps the trailing "\n"
            rows.append("" if line == " \n" else line)
    return "\n\n".join(rows)


def c4_text(path):
    docs = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                docs.append(json.loads(line)["text"])
    return " ".join(docs), len(docs)


def window_ppl(torch, model, ids, seqlen, device, limit):
    n = ids.numel() // seqlen
    if limit:
        n = min(n, limit)
    losses = []
    t0 = time.time()
    with torch.no_grad():
        for i in range(n):
            w = ids[i * seqlen:(i + 1) * seqlen].unsqueeze(0).to(device)
            out = model(input_ids=w, labels=w)
            losses.append(float(out.loss))
    ppl = math.exp(sum(losses) / len(losses)) if losses else float("nan")
    return ppl, n, losses, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--data-root", default="../shared")
    ap.add_argument("--out-dir", default="tests/fixtures/golden")
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--limit", type=int, default=0, help="cap on windows per dataset (0: all)")
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--tokenizer-json", default=None,
                    help="encode with this HF tokenizer.json instead of transformers' GGUF conversion (SmolLM2's "
                         "own pre-tokenizer splits digits; the GGUF conversion does not: see tools/make_tok_fixtures.py)")
    a = ap.parse_args()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: the fixture is an fp32 reference
    torch.backends.cudnn.allow_tf32 = False
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    d, name = os.path.split(os.path.abspath(a.model))
    if not os.path.exists(a.model):
        sys.exit(f"ref_hf.py: model file {a.model} not found (HINT: make models)")
    if a.tokenizer_json:
        from transformers import PreTrainedTokenizerFast
        tok = PreTrainedTokenizerFast(tokenizer_file=a.tokenizer_json)
        gt = AutoTokenizer.from_pretrained(d, gguf_file=name)  # for the special-token ids only
        tok.bos_token, tok.eos_token = gt.bos_token, gt.eos_token
    else:
        tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32).to(device).eval()
    V = model.config.vocab_size
    os.makedirs(a.out_dir, exist_ok=True)
    meta = {
        "tool": "tools/ref_hf.py", "model_file": os.path.basename(a.model), "model_sha256": sha256_file(a.model),
        "torch": torch.__version__, "transformers": transformers.__version__, "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "dtype": "float32", "tf32": False, "vocab": V, "topk": TOPK, "bos_id": tok.bos_token_id,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "tokenizer": a.tokenizer_json or "transformers GGUF conversion",
    }

    # ---- logits fixture ----
    prompts_meta = []
    blob = bytearray(b"GQGOLD01" + struct.pack("<III", len(PROMPTS), V, TOPK))
    with torch.no_grad():
        for p in PROMPTS:
            ids = tok(p, return_tensors="pt").input_ids[0]
            logits = model(input_ids=ids.unsqueeze(0).to(device)).logits[0].double().cpu()  # [T, V]
            T = ids.numel()
            lse = torch.logsumexp(logits, dim=-1)
            maxabs = logits.abs().max(dim=-1).values
            tv, ti = torch.topk(logits, TOPK, dim=-1)
            blob += struct.pack("<I", T)
            blob += np.asarray(ids, dtype="<i4").tobytes()
            blob += lse.numpy().astype("<f4").tobytes()
            blob += maxabs.numpy().astype("<f4").tobytes()
            blob += ti.numpy().astype("<i4").tobytes()
            blob += tv.numpy().astype("<f4").tobytes()
            blob += logits[-1].numpy().astype("<f4").tobytes()
            prompts_meta.append({"text": p, "ids": [int(x) for x in ids], "T": T,
                                 "bos_added": bool(tok.bos_token_id is not None and int(ids[0]) == tok.bos_token_id),
                                 "greedy_next": int(ti[-1, 0]), "greedy_next_text": tok.decode([int(ti[-1, 0])])})
            print(f"prompt T={T:3d} next={int(ti[-1, 0]):6d} {tok.decode([int(ti[-1, 0])])!r}  {p[:50]!r}")
    path = os.path.join(a.out_dir, "smollm2_logits.bin")
    with open(path, "wb") as f:
        f.write(blob)
    with open(os.path.join(a.out_dir, "smollm2_logits.json"), "w") as f:
        json.dump(dict(meta, prompts=prompts_meta, file="smollm2_logits.bin", bytes=len(blob)), f, indent=1)
    print(f"wrote {path} ({len(blob)} bytes)")

    # ---- perplexity ----
    summary = dict(meta, seqlen=a.seqlen, limit=a.limit)
    if not a.skip_ppl:
        wt = os.path.join(a.data_root, "datasets/wikitext-2-raw-v1/wiki.test.raw")
        ids = tok(wikitext_text(wt), return_tensors="pt").input_ids[0]
        ppl, n, losses, secs = window_ppl(torch, model, ids, a.seqlen, device, a.limit)
        print(f"wikitext2 test: tokens {ids.numel()} windows {n} ppl {ppl:.4f} ({secs:.1f} s)")
        summary["wikitext2"] = {"file": wt, "tokens": int(ids.numel()), "first_ids": [int(x) for x in ids[:16]],
                                "windows": n, "ppl": ppl, "window_losses": losses}
        c4 = os.path.join(a.data_root, "datasets/c4/c4-validation-shard0-first1025.jsonl")
        text, ndocs = c4_text(c4)
        ids = tok(text, return_tensors="pt").input_ids[0]
        ntok_all = int(ids.numel())
        ids = ids[:256 * a.seqlen]
        ppl, n, losses, secs = window_ppl(torch, model, ids, a.seqlen, device, a.limit)
        print(f"c4 (c4-new, {ndocs} docs): tokens {ntok_all} (used {ids.numel()}) windows {n} ppl {ppl:.4f} ({secs:.1f} s)")
        summary["c4"] = {"file": c4, "docs": ndocs, "tokens": ntok_all, "tokens_used": int(ids.numel()),
                         "windows": n, "ppl": ppl, "window_losses": losses,
                         "note": "GPTQ c4-new joins the first 1100 docs; only 1025 available"}
    with open(os.path.join(a.out_dir, "smollm2_ref.json"), "w") as f:
        json.dump(summary, f, indent=1)
    short = {k: {kk: vv for kk, vv in summary[k].items() if kk not in ("window_losses", "first_ids")}
             for k in ("wikitext2", "c4") if k in summary}
    print("summary:", json.dumps(short))


if __name__ == "__main__":
    main()

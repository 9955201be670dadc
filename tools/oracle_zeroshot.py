#!/usr/bin/env python3
"""oracle_zeroshot.py -- a short, transparent re-implementation of lm-evaluation-harness's zero-shot
multiple-choice scoring over Hugging Face transformers, used as the reference for `gqsa eval zeroshot`.

It follows, to the letter (EleutherAI/lm-evaluation-harness):
  tasks   lm_eval/tasks/piqa/piqa.yaml, lm_eval/tasks/arc/arc_easy.yaml (arc_challenge includes it),
          lm_eval/tasks/hellaswag/{hellaswag.yaml,utils.py}, lm_eval/tasks/winogrande/{default.yaml,
          preprocess_winogrande.py}; requests built as lm_eval/api/task.py construct_requests
          (target_delimiter " "; multiple_inputs for winogrande)
  scoring lm_eval/api/model.py TemplateLM.loglikelihood/_encode_pair and lm_eval/models/huggingface.py
          HFLM.tok_encode (add_special_tokens=False unless add_bos_token) / _loglikelihood_tokens
  metrics lm_eval/api/task.py process_results (acc, acc_norm = argmax ll/len(choice)),
          lm_eval/api/metrics.py mean_stderr (sample stddev / sqrt(n))

Usage (GPU machine: python3 + torch + transformers + gguf, no network needed):
  python3 tools/oracle_zeroshot.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --data-root ../shared --out oracle.jsonl [--tasks piqa,...] [--limit N] [--device cuda]
  python3 tools/oracle_zeroshot.py --compare ours.jsonl --ref oracle.jsonl     (no torch needed)
  python3 tools/oracle_zeroshot.py --requests-sha OUT.tsv --data-root ../shared (no torch needed)
      writes sha256 of every item's formatted requests (a fixture of tests/test_zeroshot.c)
  python3 tools/oracle_zeroshot.py --pairs-sha OUT.tsv --tokenizer-json T.json --limit 50  (no torch)
      writes sha256 of every item's (context_enc, continuation_enc) per choice (another fixture)

SmolLM2 tokenizer: transformers' GGUF converter gives SmolLM2's vocabulary a plain ByteLevel
pre-tokenizer, while SmolLM2's own tokenizer.json splits digits first (see tools/make_tok_fixtures.py).
lm-eval on the Hugging Face checkpoint uses the latter, so pass --tokenizer-json
models/SmolLM2-135M-Instruct.tokenizer.json (made by tools/make_tok_fixtures.py) to score as lm-eval
would on the real model; without it the GGUF's converted tokenizer is used and the oracle says so.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
import time

TASKS = ["piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande"]
FILES = {
    "piqa": "datasets/piqa/validation.jsonl",
    "arc_easy": "datasets/arc/arc-easy-test.jsonl",
    "arc_challenge": "datasets/arc/arc-challenge-test.jsonl",
    "hellaswag": "datasets/hellaswag/validation-subset1000.jsonl",
    "winogrande": "datasets/winogrande/winogrande-xl-validation.jsonl",
}
HAS_ACC_NORM = {"piqa": True, "arc_easy": True, "arc_challenge": True, "hellaswag": True, "winogrande": False}


# ---------------------------------------------------------------------------------------------
# tasks: each document -> (requests [(context, continuation)], choices [str for acc_norm], gold)

def hellaswag_preprocess(text):  # lm_eval/tasks/hellaswag/utils.py preprocess
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def doc_requests(task, doc):
    if task == "piqa":
        ctx = "Question: " + doc["goal"] + "\nAnswer:"
        choices = [doc["sol1"], doc["sol2"]]
        gold = int(doc["label"])
    elif task in ("arc_easy", "arc_challenge"):
        ctx = "Question: " + doc["question"] + "\nAnswer:"
        if isinstance(doc["choices"], dict):  # HF layout
            choices = doc["choices"]["text"]
            gold = doc["choices"]["label"].index(doc["answerKey"])
        else:  # rebuilt arc-easy file: choices list + gold index
            choices = doc["choices"]
            gold = int(doc["gold"])
    elif task == "hellaswag":
        if "query" in doc:  # already processed (lmeval-processed-4items.jsonl)
            ctx, choices, gold = doc["query"], doc["choices"], int(doc["gold"])
        else:
            c = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
            ctx = hellaswag_preprocess(doc["activity_label"] + ": " + c)
            choices = [hellaswag_preprocess(e) for e in doc["endings"]]
            gold = int(doc["label"])
    elif task == "winogrande":
        idx = doc["sentence"].index("_")
        partial = [doc["sentence"][:idx] + opt for opt in (doc["option1"], doc["option2"])]
        target = doc["sentence"][idx + 1:].strip()
        gold = {"1": 0, "2": 1}[doc["answer"]]
        # multiple_inputs: the partial contexts are the contexts; acc_norm would divide by their length
        return [(p, " " + target) for p in partial], partial, gold
    else:
        raise ValueError(task)
    return [(ctx, " " + ch) for ch in choices], list(choices), gold


def load_docs(root, task, limit):
    docs = []
    with open(os.path.join(root, FILES[task]), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                docs.append(json.loads(line))
    return docs[:limit] if limit else docs


def requests_sha(reqs, choices, gold):
    """sha256 of an item's formatted requests, in the layout tests/test_zeroshot.c hashes too."""
    s = "".join(c + "\x1f" + x + "\x1f" + ch + "\x1e" for (c, x), ch in zip(reqs, choices)) + "gold=%d" % gold
    return hashlib.sha256(s.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# scoring

def encode_pair(tok_encode, context, continuation):  # lm_eval/api/model.py _encode_pair
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole_enc = tok_encode(context + continuation)
    context_enc = tok_encode(context)
    return context_enc, whole_enc[len(context_enc):]


def pairs_sha(tok_encode, reqs):
    """sha256 of an item's encoded requests: per choice the context and continuation token ids."""
    parts = []
    for context, continuation in reqs:
        c, x = encode_pair(tok_encode, context, continuation)
        parts.append("c:" + ",".join(map(str, c)) + "|x:" + ",".join(map(str, x)) + ";")
    return hashlib.sha256("".join(parts).encode("ascii")).hexdigest()[:16]


def json_tok_encode(path):
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(path)
    return lambda s: t.encode(s, add_special_tokens=False).ids


def score_item(model, tok_encode, reqs, max_length, device, prefix_id):
    import torch
    import torch.nn.functional as F
    seqs = []
    for context, continuation in reqs:
        if context == "":
            ctx_enc, cont_enc = [prefix_id], tok_encode(continuation)
        else:
            ctx_enc, cont_enc = encode_pair(tok_encode, context, continuation)
        inp = (ctx_enc + cont_enc)[-(max_length + 1):][:-1]  # HFLM._loglikelihood_tokens
        seqs.append((inp, cont_enc))
    # one right-padded batch per item: causal attention keeps padding from touching real positions
    T = max(len(s[0]) for s in seqs)
    batch = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, (inp, _) in enumerate(seqs):
        batch[i, :len(inp)] = torch.tensor(inp)
    with torch.no_grad():
        logits = model(batch.to(device)).logits.float()
    out = []
    for i, (inp, cont) in enumerate(seqs):
        lp = F.log_softmax(logits[i, len(inp) - len(cont):len(inp)].double(), dim=-1)
        target = torch.tensor(cont, device=lp.device)
        ll = lp.gather(1, target[:, None]).sum().item()
        greedy = bool((lp.argmax(dim=-1) == target).all().item())
        out.append((ll, greedy, len(cont)))
    return out


def argmax(v):  # np.argmax: first maximum
    best = 0
    for i, x in enumerate(v):
        if x > v[best]:
            best = i
    return best


def mean_stderr(xs):  # lm_eval/api/metrics.py mean_stderr
    n = len(xs)
    mu = sum(xs) / n
    if n < 2:
        return mu, float("nan")
    var = sum((x - mu) ** 2 for x in xs) / (n - 1)
    return mu, math.sqrt(var) / math.sqrt(n)


def summarize(rows, tasks):
    print("| task | n | acc | ± | acc_norm | ± |")
    print("|---|---:|---:|---:|---:|---:|")
    accs, norms = [], []
    for t in tasks:
        r = [x for x in rows if x["task"] == t]
        if not r:
            continue
        a, ae = mean_stderr([x["acc"] for x in r])
        n, ne = mean_stderr([x["acc_norm"] for x in r])
        accs.append(a)
        norms.append(n if HAS_ACC_NORM[t] else a)
        ns = "%.4f | %.4f" % (n, ne) if HAS_ACC_NORM[t] else "— | —"
        print("| %s | %d | %.4f | %.4f | %s |" % (t, len(r), a, ae, ns))
    if accs:
        print("| **average** | | %.4f | | %.4f | |" % (sum(accs) / len(accs), sum(norms) / len(norms)))


def run_oracle(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(args.model))
    kw = {"gguf_file": f} if f.endswith(".gguf") else {}
    path = d if f.endswith(".gguf") else args.model
    tok = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, **kw).to(args.device).eval()
    max_length = getattr(model.config, "max_position_embeddings", 2048)  # HFLM.max_length
    add_special = bool(args.add_bos)
    tok_encode = lambda s: tok.encode(s, add_special_tokens=add_special)  # HFLM.tok_encode
    if args.tokenizer_json:
        if add_special:
            sys.exit("--add-bos with --tokenizer-json is not supported: the json tokenizer adds no BOS itself")
        tok_encode = json_tok_encode(args.tokenizer_json)
    prefix_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    print("tokenizer %s bos=%r eos=%r; add_special_tokens=%s (lm-eval HFLM default: False); max_length %d"
          % (args.tokenizer_json or type(tok).__name__, tok.bos_token, tok.eos_token, add_special, max_length),
          file=sys.stderr)
    rows = []
    for task in args.tasks.split(","):
        docs = load_docs(args.data_root, task, args.limit)
        t0 = time.time()
        for i, doc in enumerate(docs):
            reqs, choices, gold = doc_requests(task, doc)
            sc = score_item(model, tok_encode, reqs, max_length, args.device, prefix_id)
            ll = [s[0] for s in sc]
            chars = [len(c) for c in choices]
            pred = argmax(ll)
            pred_norm = argmax([l / c if c else -math.inf for l, c in zip(ll, chars)])
            rows.append({"task": task, "idx": i, "gold": gold, "ll": ll, "chars": chars,
                         "n_cont": [s[2] for s in sc], "greedy": [int(s[1]) for s in sc],
                         "pred": pred, "pred_norm": pred_norm, "acc": int(pred == gold),
                         "acc_norm": int(pred_norm == gold)})
            if (i + 1) % 200 == 0:
                print("%s %d/%d %.1fs" % (task, i + 1, len(docs), time.time() - t0), file=sys.stderr)
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    summarize(rows, args.tasks.split(","))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def compare(args):
    ours = {(r["task"], r["idx"]): r for r in read_jsonl(args.compare)}
    ref = {(r["task"], r["idx"]): r for r in read_jsonl(args.ref)}
    keys = sorted(set(ours) & set(ref))
    if not keys:
        sys.exit("no common (task, idx) items between %s and %s" % (args.compare, args.ref))
    print("| task | n | acc ours | acc ref | Δacc | acc_norm ours | acc_norm ref | same pred | same pred_norm |"
          " max |Δll| |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    tot = same_all = 0
    for t in TASKS:
        k = [x for x in keys if x[0] == t]
        if not k:
            continue
        ao = sum(ours[x]["acc"] for x in k) / len(k)
        ar = sum(ref[x]["acc"] for x in k) / len(k)
        no = sum(ours[x]["acc_norm"] for x in k) / len(k)
        nr = sum(ref[x]["acc_norm"] for x in k) / len(k)
        sp = sum(ours[x]["pred"] == ref[x]["pred"] for x in k)
        sn = sum(ours[x]["pred_norm"] == ref[x]["pred_norm"] for x in k)
        dll = max(abs((a if a is not None else -math.inf) - (b if b is not None else -math.inf))
                  if a != b else 0.0 for x in k for a, b in zip(ours[x]["ll"], ref[x]["ll"]))
        tot += len(k)
        same_all += sum(ours[x]["pred"] == ref[x]["pred"] and ours[x]["pred_norm"] == ref[x]["pred_norm"] for x in k)
        print("| %s | %d | %.4f | %.4f | %+.4f | %.4f | %.4f | %.2f%% | %.2f%% | %.3g |" % (
            t, len(k), ao, ar, ao - ar, no, nr, 100.0 * sp / len(k), 100.0 * sn / len(k), dll))
    frac = same_all / tot
    print("\nidentical choices (pred and pred_norm) on %d/%d items = %.3f%% (bar: >= 99.5%%): %s"
          % (same_all, tot, 100.0 * frac, "PASS" if frac >= 0.995 else "FAIL"))
    return 0 if frac >= 0.995 else 1


def write_requests_sha(args):
    with open(args.requests_sha, "w") as f:
        f.write("# task\tidx\tsha256[:16] of the formatted requests (tools/oracle_zeroshot.py --requests-sha)\n")
        for task in args.tasks.split(","):
            for i, doc in enumerate(load_docs(args.data_root, task, args.limit)):
                reqs, choices, gold = doc_requests(task, doc)
                f.write("%s\t%d\t%s\n" % (task, i, requests_sha(reqs, choices, gold)))


def write_pairs_sha(args):
    if not args.tokenizer_json:
        sys.exit("--pairs-sha needs --tokenizer-json")
    enc = json_tok_encode(args.tokenizer_json)
    with open(args.pairs_sha, "w") as f:
        f.write("# task\tidx\tsha256[:16] of (context_enc, continuation_enc) per choice; tokenizer %s; "
                "tools/oracle_zeroshot.py --pairs-sha --limit %d\n" % (os.path.basename(args.tokenizer_json), args.limit))
        for task in args.tasks.split(","):
            for i, doc in enumerate(load_docs(args.data_root, task, args.limit)):
                reqs, _, _ = doc_requests(task, doc)
                f.write("%s\t%d\t%s\n" % (task, i, pairs_sha(enc, reqs)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a .gguf file (loaded with gguf_file=) or an HF model folder")
    ap.add_argument("--data-root", default=os.environ.get("GQSA_DATA_ROOT", "../shared"))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--limit", type=int, default=0, help="first N documents per task (lm-eval --limit)")
    ap.add_argument("--out", default="oracle_zeroshot.jsonl")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--add-bos", action="store_true", help="lm-eval's add_bos_token=True")
    ap.add_argument("--compare", help="our per-item jsonl (gqsa eval zeroshot --out)")
    ap.add_argument("--ref", help="the oracle's per-item jsonl for --compare")
    ap.add_argument("--requests-sha", help="write per-item request hashes (test fixture) and exit")
    ap.add_argument("--pairs-sha", help="write per-item encoded-request hashes (test fixture) and exit")
    ap.add_argument("--tokenizer-json", help="HF tokenizer.json to encode with (see the SmolLM2 note above)")
    args = ap.parse_args()
    for t in args.tasks.split(","):
        if t not in TASKS:
            ap.error("unknown task %r" % t)
    if args.requests_sha:
        write_requests_sha(args)
    elif args.pairs_sha:
        write_pairs_sha(args)
    elif args.compare:
        if not args.ref:
            ap.error("--compare needs --ref oracle.jsonl")
        sys.exit(compare(args))
    else:
        if not args.model:
            ap.error("--model is required")
        run_oracle(args)


if __name__ == "__main__":
    main()

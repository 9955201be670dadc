#!/usr/bin/env python3
"""ref_text.py — sha256 and length of the perplexity corpora as the reference Python code builds them.

WikiText-2: Hugging Face's `wikitext` builder (datasets/wikitext/wikitext.py) yields, for each line of
wiki.<split>.raw read in text mode, {"text": row} if row.strip() else {"text": ""}; GPTQ's datautils
then does "\n\n".join(test["text"]). C4 (c4-new): " ".join(valdata[:1100]["text"]).
Writes tests/fixtures/forward/text_sha256.txt, which tests/test_eval_ppl.c compares with
datasets/text.c. Must not import gqsa code.
"""
import hashlib
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "shared")
out = os.path.join(here, "..", "tests", "fixtures", "forward", "text_sha256.txt")
lines = ["# name bytes sha256 (tools/ref_text.py)"]
for split in ("test", "valid"):
    rows = []
    with open(os.path.join(root, "datasets", "wikitext-2-raw-v1", "wiki.%s.raw" % split), encoding="utf-8") as f:
        for row in f:
            rows.append(row if row.strip() else "")
    j = "\n\n".join(rows).encode("utf-8")
    lines.append("wikitext2-%s %d %s" % (split, len(j), hashlib.sha256(j).hexdigest()))
docs = []
with open(os.path.join(root, "datasets", "c4", "c4-validation-shard0-first1025.jsonl"), encoding="utf-8") as f:
    for line in f:
        if len(docs) == 1100:
            break
        docs.append(json.loads(line)["text"])
j = " ".join(docs).encode("utf-8")
lines.append("c4-new %d %s" % (len(j), hashlib.sha256(j).hexdigest()))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

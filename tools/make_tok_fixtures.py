#!/usr/bin/env python3
"""make_tok_fixtures.py — golden token ids from the reference tokenizers, for tests/test_tokenizer.c.

References:
  llama2   sentencepiece.SentencePieceProcessor on ../shared/models/llama2-tokenizer/tokenizer.model,
           sp.encode(text) (no BOS; the LLaMA model adds the dummy prefix itself).
  smollm2  HF `tokenizers`, built by transformers' own GGUF converter
           (transformers.integrations.gguf.gguf_tokenizer_mapping.convert_gguf_tokenizer) from the
           metadata of models/SmolLM2-135M-Instruct.Q4_1.gguf, with ONE correction: transformers gives
           every `gpt2` vocabulary whose tokenizer.ggml.pre it does not list (here "smollm") a plain
           ByteLevel(use_regex=True) pre-tokenizer, but SmolLM2's tokenizer.json (and llama.cpp's
           LLAMA_VOCAB_PRE_TYPE_SMOLLM) first splits every digit off (Digits(individual_digits=True))
           and then applies the GPT-2 regex. We set that pre-tokenizer and report how many lines the
           uncorrected converter would get differently. (transformers' GGUF *reader* needs torch, which
           this machine lacks, so the metadata is read with the `gguf` package into the same dict.)
           The resulting tokenizer is also saved as models/SmolLM2-135M-Instruct.tokenizer.json
           (git-ignored, ~3 MB) so the C tests can check the tokenizer.json loader against the same ids.

Outputs (tests/fixtures/tok/):
  <tok>.wiki_test.<k>.ids   ids of every line of wiki.test.raw (split on "\\n", newline not included,
                            empty lines included), one line of space-separated ids per input line,
                            in chunks of CHUNK lines (files stay well under 2 MB)
  <tok>.c4_100.ids          ids of the `text` of the first 100 documents of
                            c4/c4-validation-shard0-first1025.jsonl, one line per document
  spm_tiny.*                 a tiny sentencepiece model, its GGUF form and sentencepiece's ids (tiny_spm)
  gptq_wiki_test.txt        GPTQ-protocol encoding of wiki.test.raw: HF rows ("" for blank " " lines,
                            else line + "\\n") joined with "\\n\\n", encoded once as HF does
                            (LLaMA-2: BOS prepended; SmolLM2: no BOS): count and sha256 of the ids as
                            little-endian int32
  README.md                 library versions and the above
Usage: python3 tools/make_tok_fixtures.py [--data-root ../shared] [--out tests/fixtures/tok]
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import struct
import sys

CHUNK = 1500


def read_gguf_tokenizer_dict(path):
    from gguf import GGUFReader
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING

    r = GGUFReader(path)

    def val(f):
        if f.types[0].name == "ARRAY":
            if f.types[-1].name == "STRING":
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [int(f.parts[i][0]) for i in f.data]
        if f.types[0].name == "STRING":
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]].tolist()[0]

    td = {}
    for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items():
        if "tokenizer." + key in r.fields:
            td[name] = val(r.fields["tokenizer." + key])
    arch = val(r.fields["general.architecture"])
    return arch, td


def smollm2_tokenizers(gguf_path):
    from tokenizers import pre_tokenizers
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    arch, td = read_gguf_tokenizer_dict(gguf_path)
    assert td["tokenizer_type"] == "gpt2" and td["pre_tokenizer_type"] == "smollm", td.get("pre_tokenizer_type")
    raw, _ = convert_gguf_tokenizer(arch, td)
    fixed, _ = convert_gguf_tokenizer(arch, td)
    fixed.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return raw, fixed


SPM_CASES = ["", "the quick brown fox", "  two leading spaces", "once upon a time 42 cats.", "naïve 日本 🙂 x", "a\nb\tc"]


def tiny_spm(out):
    """A tiny sentencepiece BPE model (byte fallback, identity normalizer) and the same vocabulary as
    a GGUF with tokenizer.ggml.model = "llama", to test the GGUF sentencepiece path; cases encoded by
    sentencepiece itself go to spm_tiny_cases.txt ("<hex text> <ids>", "-" for empty text)."""
    import tempfile

    import gguf
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "c.txt")
        with open(corpus, "w") as f:
            for i in range(200):
                f.write(f"the quick brown fox {i} jumps over the lazy dog. once upon a time there was a cat.\n")
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(d, "m"), model_type="bpe",
                                       vocab_size=320, byte_fallback=True, add_dummy_prefix=True,
                                       remove_extra_whitespaces=False, normalization_rule_name="identity",
                                       minloglevel=2)
        model = open(os.path.join(d, "m.model"), "rb").read()
    open(os.path.join(out, "spm_tiny.model"), "wb").write(model)
    sp = spm.SentencePieceProcessor(model_proto=model)
    with open(os.path.join(out, "spm_tiny_cases.txt"), "w") as f:
        for c in SPM_CASES:
            f.write((c.encode().hex() or "-") + " " + " ".join(map(str, sp.encode(c))) + "\n")
    m = pb.ModelProto()
    m.ParseFromString(model)
    path = os.path.join(out, "spm_tiny.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([p.piece for p in m.pieces])
    w.add_token_scores([p.score for p in m.pieces])
    w.add_token_types([p.type for p in m.pieces])
    w.add_bos_token_id(m.trainer_spec.bos_id)
    w.add_eos_token_id(m.trainer_spec.eos_id)
    w.add_unk_token_id(m.trainer_spec.unk_id)
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_ids(path, rows):
    with open(path, "w") as f:
        for ids in rows:
            f.write(" ".join(map(str, ids)) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("GQSA_DATA_ROOT", "../shared"))
    ap.add_argument("--out", default="tests/fixtures/tok")
    ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import sentencepiece as spm
    import tokenizers
    import transformers
    import gguf

    wiki = open(os.path.join(args.data_root, "datasets/wikitext-2-raw-v1/wiki.test.raw"), "rb").read().decode("utf-8")
    lines = wiki.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with "\n": no line after it
    c4 = []
    with open(os.path.join(args.data_root, "datasets/c4/c4-validation-shard0-first1025.jsonl"), encoding="utf-8") as f:
        for ln in f:
            c4.append(json.loads(ln)["text"])
            if len(c4) == 100:
                break
    rows = ["" if ln == " " else ln + "\n" for ln in lines]
    gptq_text = "\n\n".join(rows)

    tiny_spm(args.out)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.data_root, "models/llama2-tokenizer/tokenizer.model"))
    raw, smol = smollm2_tokenizers(args.gguf)
    smol.save(os.path.join(os.path.dirname(args.gguf), "SmolLM2-135M-Instruct.tokenizer.json"))

    enc = {
        "llama2": lambda s: sp.encode(s),
        "smollm2": lambda s: smol.encode(s, add_special_tokens=False).ids,
    }
    gptq = {
        "llama2": [sp.bos_id()] + sp.encode(gptq_text),
        "smollm2": smol.encode(gptq_text).ids,  # HF post-processor: SmolLM2 adds no BOS
    }
    summary = []
    for name, fn in enc.items():
        wrows = [fn(ln) for ln in lines]
        for k in range(0, len(wrows), CHUNK):
            write_ids(os.path.join(args.out, f"{name}.wiki_test.{k // CHUNK}.ids"), wrows[k : k + CHUNK])
        write_ids(os.path.join(args.out, f"{name}.c4_100.ids"), [fn(d) for d in c4])
        ids = gptq[name]
        h = hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).hexdigest()
        summary.append(f"{name} {len(ids)} {h}")
        print(name, "wiki lines", len(wrows), "tokens", sum(map(len, wrows)), "gptq", len(ids), h)
    with open(os.path.join(args.out, "gptq_wiki_test.txt"), "w") as f:
        f.write("# tokenizer n_ids sha256(ids as little-endian int32)\n")
        f.write("\n".join(summary) + "\n")

    # How much the correction matters: lines the uncorrected transformers converter encodes differently.
    ndiff = sum(1 for ln in lines + c4 if raw.encode(ln, add_special_tokens=False).ids != enc["smollm2"](ln))
    print("smollm2: lines where transformers' uncorrected GGUF converter differs:", ndiff, "of", len(lines) + len(c4))

    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(
            "# Tokenizer golden fixtures\n\n"
            "Made by `python3 tools/make_tok_fixtures.py` (see its docstring for exactly what each file holds).\n"
            "Do not edit by hand.\n\n"
            f"- sentencepiece {spm.__version__}, tokenizers {tokenizers.__version__}, "
            f"transformers {transformers.__version__}, gguf (python) {importlib.metadata.version('gguf')}, "
            f"python {sys.version.split()[0]}\n"
            f"- inputs: wiki.test.raw ({len(lines)} lines), first 100 docs of c4-validation-shard0-first1025.jsonl\n"
            "- llama2: `sp.encode(line)` (no BOS) with ../shared/models/llama2-tokenizer/tokenizer.model\n"
            "- smollm2: HF tokenizers from transformers' GGUF converter on SmolLM2-135M-Instruct.Q4_1.gguf with the\n"
            "  pre-tokenizer of SmolLM2's tokenizer.json (Digits(individual_digits=True) then ByteLevel regex);\n"
            f"  the uncorrected converter would differ on {ndiff} of {len(lines) + len(c4)} inputs.\n"
            "- `*.wiki_test.<k>.ids`: lines k*%d .. k*%d+%d of wiki.test.raw (split on \\n, newline excluded).\n"
            "- `gptq_wiki_test.txt`: the GPTQ whole-text encoding (HF rows joined by \\n\\n) as count + sha256.\n"
            "- `l2c_cases.txt`: made by `python3 tools/l2c_ref_encode.py > tests/fixtures/tok/l2c_cases.txt`, an\n"
            "  independent Python port of llama2.c run.c encode(), on tok512.bin and the LLaMA-2 tokenizer.bin.\n"
            "- `spm_tiny.model`, `spm_tiny.gguf`, `spm_tiny_cases.txt`: a 320-piece sentencepiece BPE model trained here,\n"
            "  the same vocabulary as GGUF metadata (tokenizer.ggml.model = llama), and sentencepiece's ids for a few texts.\n"
            % (CHUNK, CHUNK, CHUNK - 1)
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make_tok_fuzz_seeds.py — seed inputs for tests/fuzz/fuzz_tokenizer.c (tests/fuzz/corpus/tokenizer/).

Each seed is: 1 byte loader selector (0 sentencepiece .model, 1 llama2.c .bin, 2 tokenizer.json,
3 GGUF), 2 bytes little-endian text length, the text, the file. Files are small real-format ones:
a tiny sentencepiece BPE model trained here, stories260K's tok512.bin, a handmade tokenizer.json
and a GGUF holding only tokenizer metadata.
Usage: python3 tools/make_tok_fuzz_seeds.py [--data-root ../shared]
"""
import argparse
import io
import json
import os
import struct
import tempfile

OUT = "tests/fuzz/corpus/tokenizer"


def seed(name, sel, text, blob):
    t = text.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([sel]) + struct.pack("<H", len(t)) + t + blob)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("GQSA_DATA_ROOT", "../shared"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    text = "Hello world, it's 2024! naïve café <|x|> 日本"

    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "c.txt")
        with open(corpus, "w") as f:
            for i in range(200):
                f.write(f"the quick brown fox {i} jumps over the lazy dog. once upon a time there was a cat.\n")
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(d, "m"), model_type="bpe",
                                       vocab_size=320, byte_fallback=True, add_dummy_prefix=True,
                                       remove_extra_whitespaces=False, normalization_rule_name="identity")
        seed("spm_tiny", 0, text, open(os.path.join(d, "m.model"), "rb").read())

    seed("l2c_tok512", 1, text, open(os.path.join(args.data_root, "models/stories260K/tok512.bin"), "rb").read())

    bl = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(bl)}
    vocab.update({"Ġ": len(vocab), "he": len(vocab) + 1, "Ġt": len(vocab) + 2, "Ġthe": len(vocab) + 3})
    tj = {"added_tokens": [{"id": len(vocab), "content": "<|x|>", "special": True}],
          "normalizer": None,
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
          "post_processor": None,
          "model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "Ġ t", ["Ġt", "he"]]}}
    seed("json_tiny", 2, text, json.dumps(tj).encode())

    import gguf

    buf = os.path.join(tempfile.gettempdir(), "tok_seed.gguf")
    w = gguf.GGUFWriter(buf, "llama")
    toks = ["<|endoftext|>"] + list(vocab.keys())
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(toks)
    w.add_token_types([3] + [1] * len(vocab))
    w.add_token_merges(["h e", "Ġ t", "Ġt he"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    seed("gguf_tiny", 3, text, open(buf, "rb").read())
    os.unlink(buf)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make_model_fixtures.py — the reference fixtures for tests/test_gguf.c and tests/test_model_load.c.

Writes into tests/fixtures/model_load/ (all small, deterministic from fixed seeds):
  dequant_ref.txt      ggml blocks (Q4_0, Q4_1, Q8_0 at 1,2,3,5,7 blocks; F16, BF16) quantized and
                       dequantized by the `gguf` Python package (the independent reference)
  tiny_llama/          a random 2-layer LLaMA: config.json + model.safetensors (F32, HF layout) and
                       model.gguf (same weights: q/k rows permuted as llama.cpp's convert_hf_to_gguf.py
                       does, tensors stored as Q8_0/Q4_0/Q4_1/F16/BF16/F32). The safetensors values are the
                       gguf package's dequantization of the GGUF tensors (un-permuted), so both files must load
                       to the same numbers.
  tiny_qwen2/          a random 1-layer Qwen2 (q/k/v biases, tied embeddings) as BF16 safetensors.
  smollm2_ref.txt      a few dequantized SmolLM2 values and whole-tensor sums (needs models/SmolLM2-...gguf)
  stories260K_ref.txt  a few stories260K weights read with numpy (needs ../shared/models/stories260K)
Usage: python3 tools/make_model_fixtures.py   (from the repository root)
"""
import json, os, struct, sys
import numpy as np
import gguf
from gguf import quants, GGMLQuantizationType as T

OUT = "tests/fixtures/model_load"


def hexs(b):
    return bytes(b).hex()


def dequant_ref():
    rng = np.random.default_rng(1234)
    lines = ["# type n_elems hex_bytes | expected float32 values (gguf package dequantize)"]
    for qt in (T.Q4_0, T.Q4_1, T.Q8_0):
        for nb in (1, 2, 3, 5, 7):
            x = (rng.standard_normal(nb * 32) * rng.uniform(0.01, 3.0)).astype(np.float32)
            if nb == 3:
                x[32:64] = 0.0  # an all-zero block
            q = quants.quantize(x.reshape(1, -1), qt)
            d = quants.dequantize(q, qt).reshape(-1).astype(np.float32)
            lines.append(f"{qt.name} {nb*32} {hexs(q.tobytes())} | " + " ".join(f"{v:.9g}" for v in d))
    for qt in (T.F16, T.BF16):
        x = (rng.standard_normal(37) * 5).astype(np.float32)
        q = quants.quantize(x.reshape(1, -1), qt) if qt == T.BF16 else x.astype(np.float16).view(np.uint8)
        d = quants.dequantize(q, qt).reshape(-1).astype(np.float32)
        lines.append(f"{qt.name} 37 {hexs(q.tobytes())} | " + " ".join(f"{v:.9g}" for v in d))
    with open(f"{OUT}/dequant_ref.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_safetensors(path, tensors, dtype="F32"):
    """Written by hand (the format is tiny) so the fixture does not depend on the safetensors package."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        else:  # BF16: round-to-nearest-even of the fp32 bits
            u = a.astype("<f4").view("<u4").astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
            b = u.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16_round(a):
    u = a.astype("<f4").view("<u4").astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype("<u4").view("<f4")


def tiny_llama():
    rng = np.random.default_rng(7)
    D, H, L, NH, NKV, V = 32, 64, 2, 4, 2, 64
    HD = D // NH
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "intermediate_size": H,
           "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "max_position_embeddings": 128, "vocab_size": V, "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "rope_scaling": None}
    d = f"{OUT}/tiny_llama"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/config.json", "w") as f:
        json.dump(cfg, f, indent=1)
    r = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)
    w = gguf.GGUFWriter(f"{d}/model.gguf", "llama")
    w.add_name("tiny-llama-random")
    w.add_context_length(128)
    w.add_embedding_length(D)
    w.add_feed_forward_length(H)
    w.add_block_count(L)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    st = {}

    def put(hf_name, gg_name, a, qt, perm=None):
        g = permute(a, *perm) if perm else a
        if qt in (T.F32,):
            stored = g
            w.add_tensor(gg_name, g)
        elif qt == T.F16:
            stored = g.astype(np.float16).astype(np.float32)
            w.add_tensor(gg_name, g.astype(np.float16))
        else:
            q = quants.quantize(g, qt)
            stored = quants.dequantize(q, qt).astype(np.float32)
            w.add_tensor(gg_name, q, raw_shape=q.shape, raw_dtype=qt)
        st[hf_name] = unpermute(stored, *perm) if perm else stored

    put("model.embed_tokens.weight", "token_embd.weight", r(V, D), T.Q8_0)
    put("lm_head.weight", "output.weight", r(V, D), T.Q4_1)
    put("model.norm.weight", "output_norm.weight", 1 + r(D), T.F32)
    qts = {"q_proj": T.Q4_0, "k_proj": T.Q4_1, "v_proj": T.Q8_0, "o_proj": T.F16, "gate_proj": T.BF16,
           "up_proj": T.Q4_0, "down_proj": T.F32}
    gg = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
          "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    shapes = {"q_proj": (D, D), "k_proj": (NKV * HD, D), "v_proj": (NKV * HD, D), "o_proj": (D, D),
              "gate_proj": (H, D), "up_proj": (H, D), "down_proj": (D, H)}
    for l in range(L):
        put(f"model.layers.{l}.input_layernorm.weight", f"blk.{l}.attn_norm.weight", 1 + r(D), T.F32)
        put(f"model.layers.{l}.post_attention_layernorm.weight", f"blk.{l}.ffn_norm.weight", 1 + r(D), T.F32)
        for k in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
            sect = "self_attn" if k in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            perm = (NH, NH) if k == "q_proj" else (NH, NKV) if k == "k_proj" else None
            a = r(*shapes[k])
            if k == "gate_proj":  # BF16 in the GGUF: the safetensors copy is the bf16-rounded value
                stored = bf16_round(a)
                w.add_tensor(f"blk.{l}.{gg[k]}.weight", quants.quantize(a, T.BF16), raw_shape=None, raw_dtype=T.BF16)
                st[f"model.layers.{l}.{sect}.{k}.weight"] = stored
            else:
                put(f"model.layers.{l}.{sect}.{k}.weight", f"blk.{l}.{gg[k]}.weight", a, qts[k], perm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    write_safetensors(f"{d}/model.safetensors", st)


def tiny_qwen2():
    rng = np.random.default_rng(11)
    D, H, L, NH, NKV, V = 32, 48, 1, 4, 2, 64
    HD = D // NH
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": D, "intermediate_size": H,
           "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV, "rms_norm_eps": 1e-6,
           "rope_theta": 1000000.0, "max_position_embeddings": 256, "vocab_size": V, "tie_word_embeddings": True,
           "bos_token_id": None, "eos_token_id": 3, "hidden_act": "silu", "torch_dtype": "bfloat16"}
    d = f"{OUT}/tiny_qwen2"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/config.json", "w") as f:
        json.dump(cfg, f, indent=1)
    r = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)
    t = {"model.embed_tokens.weight": r(V, D), "model.norm.weight": 1 + r(D)}
    for l in range(L):
        t[f"model.layers.{l}.input_layernorm.weight"] = 1 + r(D)
        t[f"model.layers.{l}.post_attention_layernorm.weight"] = 1 + r(D)
        for k, s in (("q_proj", (D, D)), ("k_proj", (NKV * HD, D)), ("v_proj", (NKV * HD, D))):
            t[f"model.layers.{l}.self_attn.{k}.weight"] = r(*s)
            t[f"model.layers.{l}.self_attn.{k}.bias"] = r(s[0])
        t[f"model.layers.{l}.self_attn.o_proj.weight"] = r(D, D)
        t[f"model.layers.{l}.mlp.gate_proj.weight"] = r(H, D)
        t[f"model.layers.{l}.mlp.up_proj.weight"] = r(H, D)
        t[f"model.layers.{l}.mlp.down_proj.weight"] = r(D, H)
    write_safetensors(f"{d}/model.safetensors", t, "BF16")
    # expected values: a few bf16-rounded entries as float32
    lines = []
    for name in ("model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.bias", "model.layers.0.mlp.down_proj.weight"):
        a = bf16_round(t[name]).reshape(-1)
        for i in (0, 1, a.size // 2, a.size - 1):
            lines.append(f"{name} {i} {a[i]:.9g}")
    with open(f"{d}/expected.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def smollm2_ref():
    path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if not os.path.exists(path):
        print("skip smollm2_ref: no", path)
        return
    r = gguf.GGUFReader(path)
    ts = {t.name: t for t in r.tensors}
    lines = ["# tensor row col value  (value = dequantized[row][col], numpy shape (rows, cols) = our [N, K])",
             "# sum tensor float64-sum-of-dequantized"]
    picks = [("token_embd.weight", [(0, 0), (0, 1), (1, 31), (1, 32), (49151, 575), (12345, 100)]),
             ("blk.0.attn_q.weight", [(0, 0), (5, 7), (5, 16), (575, 575)]),
             ("blk.0.attn_k.weight", [(0, 0), (191, 575), (100, 33)]),
             ("blk.29.ffn_down.weight", [(0, 0), (575, 1535), (300, 777)]),
             ("blk.0.attn_norm.weight", [(0, 0), (0, 575)]),
             ("output_norm.weight", [(0, 0), (0, 1), (0, 575)])]
    for name, pos in picks:
        t = ts[name]
        d = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        d = d.reshape(-1, int(t.shape[0]))
        for (i, j) in pos:
            lines.append(f"{name} {i} {j} {d[i, j]:.9g}")
        lines.append(f"sum {name} {d.astype(np.float64).sum():.17g}")
    with open(f"{OUT}/smollm2_ref.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def stories_ref():
    root = os.environ.get("GQSA_DATA_ROOT", "../shared")
    path = f"{root}/models/stories260K/stories260K.bin"
    if not os.path.exists(path):
        print("skip stories_ref: no", path)
        return
    raw = open(path, "rb").read()
    dim, hid, L, nh, nkv, V, S = struct.unpack("<7i", raw[:28])
    f = np.frombuffer(raw[28:], dtype="<f4")
    hd = dim // nh
    o = 0
    out = {}
    for name, n in (("tok_emb", V * dim), ("rms_att", L * dim), ("wq", L * dim * dim), ("wk", L * nkv * hd * dim),
                    ("wv", L * nkv * hd * dim), ("wo", L * dim * dim), ("rms_ffn", L * dim), ("w1", L * hid * dim),
                    ("w2", L * dim * hid), ("w3", L * hid * dim), ("rms_final", dim)):
        out[name] = f[o:o + n]
        o += n
    lines = [f"header {dim} {hid} {L} {nh} {nkv} {V} {S}",
             "# name flat_index value (flat index into run.c's array, layers concatenated)"]
    for name, arr in out.items():
        for i in (0, 1, arr.size // 3, arr.size - 1):
            lines.append(f"{name} {i} {arr[i]:.9g}")
        lines.append(f"sum {name} {arr.astype(np.float64).sum():.17g}")
    with open(f"{OUT}/stories260K_ref.txt", "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    dequant_ref()
    tiny_llama()
    tiny_qwen2()
    smollm2_ref()
    stories_ref()
    print("wrote", OUT)

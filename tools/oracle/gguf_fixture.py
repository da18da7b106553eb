#!/usr/bin/env python3
"""Golden fixture for model/gguf, made with gguf-py (pip package gguf 0.19.0).

Command (from the repo root):
    python3 tools/oracle/gguf_fixture.py model/gguf/testdata

Writes tiny_llama.gguf (a 1-block llama with Q4_0/Q4_1/Q8_0/F16/BF16/F32
tensors, q/k rows permuted as convert_hf_to_gguf.py's LlamaModel.permute does)
and tiny_llama.json with, per tensor, the float32 input to gguf-py's quantize,
the quantized bytes, and the expected Hugging Face tensor: gguf-py's dequantize
followed by the inverse of the permutation, all as base64 little-endian.

With OPTIMA_SMOLLM2_GGUF set it also writes smollm2_rows.json: a few rows of
blk.0 q/k (un-permuted, HF layout) of the real SmolLM2 GGUF read by GGUFReader.
"""
import base64, json, os, sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q


def permute(w, n_head):  # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def b64(a, dtype):
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def main(out):
    rng = np.random.default_rng(7)
    hidden, inter, heads, kv, vocab = 32, 64, 4, 2, 32
    hd = hidden // heads
    # gguf name, HF name, HF shape, type, permute heads (0 = none)
    spec = [
        ("token_embd.weight", "model.embed_tokens.weight", (vocab, hidden), Q.Q8_0, 0),
        ("output_norm.weight", "model.norm.weight", (hidden,), Q.F32, 0),
        ("output.weight", "lm_head.weight", (vocab, hidden), Q.Q8_0, 0),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", (hidden,), Q.F32, 0),
        ("blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight", (hidden,), Q.F32, 0),
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", (heads * hd, hidden), Q.F32, heads),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", (kv * hd, hidden), Q.F16, kv),
        ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", (kv * hd, hidden), Q.Q4_0, 0),
        ("blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", (hidden, heads * hd), Q.Q4_1, 0),
        ("blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", (inter, hidden), Q.BF16, 0),
        ("blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", (inter, hidden), Q.Q4_0, 0),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", (hidden, inter), Q.Q4_1, 0),
    ]
    w = gguf.GGUFWriter(os.path.join(out, "tiny_llama.gguf"), "llama")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(100000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(["a", "b", "c", "ab", "abc"] + [f"x{i}" for i in range(5, vocab)])
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(["a b", "ab c"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    rec = []
    for gname, hname, shape, qt, ph in spec:
        hf = rng.standard_normal(shape).astype(np.float32)
        if gname.endswith("norm.weight"):
            hf = (1 + 0.1 * hf).astype(np.float32)
        # a block of zeros and one with a single value exercise d == 0 and ties
        if len(shape) == 2:
            hf[0, :32] = 0
            hf[1, :32] = 0.5
        src = permute(hf, ph) if ph else hf
        qb = gguf.quants.quantize(src, qt)
        w.add_tensor(gname, qb, raw_shape=src.shape if qt in (Q.F32, Q.F16) else None, raw_dtype=qt)
        deq = gguf.quants.dequantize(qb, qt).reshape(shape).astype(np.float32)
        exp = unpermute(deq, ph) if ph else deq
        rec.append({"gguf": gname, "hf": hname, "type": qt.name, "shape": list(shape),
                    "source": b64(src, "<f4"), "quant": base64.b64encode(qb.tobytes()).decode(),
                    "expected": b64(exp, "<f4")})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(out, "tiny_llama.json"), "w") as f:
        json.dump({"tensors": rec}, f, indent=0)

    real = os.environ.get("OPTIMA_SMOLLM2_GGUF")
    if real:
        r = gguf.GGUFReader(real)
        t = {x.name: x for x in r.tensors}
        res = {}
        for gname, hname, nh in [("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", 9),
                                 ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", 3)]:
            x = t[gname]
            rows = int(x.shape[1])
            deq = gguf.quants.dequantize(x.data, x.tensor_type).reshape(rows, int(x.shape[0]))
            hf = unpermute(deq, nh)
            idx = [0, 1, 32, 33, rows - 1]
            res[hname] = {"rows": idx, "values": [b64(hf[i], "<f4") for i in idx]}
        with open(os.path.join(out, "smollm2_rows.json"), "w") as f:
            json.dump(res, f, indent=0)


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env python3
"""Checks GGUF-derived Llama-3-scaled and Qwen2 directories against transformers.

Command (from the repo root; run by hand, not in CI):

    rm -rf /tmp/llo && OPTIMA_LLAMA_ORACLE_DIR=/tmp/llo go test -count=1 \
        -run TestWriteGGUFVariantOracle ./model/llama && \
    python3 tools/oracle/llama_gguf_check.py /tmp/llo

TestWriteGGUFVariantOracle writes tiny GGUFs the way llama.cpp's converter does (a llama GGUF with
a rope_freqs.weight tensor; a qwen2 GGUF with q/k/v biases), opens them with model/gguf, writes them
as Hugging Face directories (hf.WriteModel: config.json from the GGUF metadata, including the
rope_scaling recovered from rope_freqs) and stores model/llama's logits for fixed ids. This script
loads each directory with AutoModelForCausalLM (no missing or unexpected keys, eager attention),
prints the config's architecture and rope parameters, and requires the logits to agree within 1e-4
relative (max |diff| / max |logit|).

Run 2026-11-30 (torch 2.15.0, transformers 5.24.0):
    llama3 LlamaForCausalLM {'factor': 8, 'high_freq_factor': 4, 'low_freq_factor': 1,
        'original_max_position_embeddings': 64, 'rope_type': 'llama3', 'rope_theta': 500000} rel diff 1.25e-06
    qwen2 Qwen2ForCausalLM {'rope_theta': 100000, 'rope_type': 'default'} rel diff 8.26e-07
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM


def main(root):
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        m, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True, attn_implementation="eager")
        bad = {k: v for k, v in info.items() if v}
        assert not bad, (name, bad)
        m = m.float().eval()
        with open(os.path.join(d, "optima_logits.json")) as f:
            ref = json.load(f)
        ids = torch.tensor([ref["ids"]])
        with torch.no_grad():
            logits = m(ids).logits[0].reshape(-1)
        want = torch.tensor(ref["logits"], dtype=torch.float32)
        rel = ((logits - want).abs().max() / logits.abs().max()).item()
        print(name, type(m).__name__, m.config.rope_parameters, "rel diff %.3g" % rel)
        assert rel < 1e-4, (name, rel)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])

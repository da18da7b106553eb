#!/usr/bin/env python3
"""Real calibration Hessians of SmolLM2-135M for measuring stages/solve defaults.

Command (from the repository root; output is NOT committed, ~30 MB):

    python3 tools/oracle/solve_hessians.py /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        /work/shared/data/wikitext-2-raw/wiki.valid.raw /tmp/optima-hessians

Runs 8 sequences of 256 tokens of WikiText-2 (validation split, raw text) through the
dequantized GGUF model with Hugging Face transformers and writes, for block 10,
the un-normalised Hessian sum XᵀX (float64, little-endian, row-major) of the inputs of
self_attn.q_proj ([576, 576]) and mlp.down_proj ([1536, 1536]), plus the matching
weights (float32 [out, in]) as <name>.h.f64 / <name>.w.f32 and a meta.json.
The Go benchmarks read them when OPTIMA_SOLVE_HESSIANS=/tmp/optima-hessians.
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf_path, text_path, out_dir = sys.argv[1:4]
os.makedirs(out_dir, exist_ok=True)
d, f = os.path.split(gguf_path)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
model.eval()
text = open(text_path, encoding="utf-8").read()
ids = tok(text[:200000], return_tensors="pt").input_ids[0]
SEQ, NSEQ, BLOCK = 256, 8, 10
layer = model.model.layers[BLOCK]
targets = {"q_proj": layer.self_attn.q_proj, "down_proj": layer.mlp.down_proj}
acc = {k: None for k in targets}


def hook(name):
    def fn(mod, args):
        x = args[0].reshape(-1, args[0].shape[-1]).double()
        g = x.T @ x
        acc[name] = g if acc[name] is None else acc[name] + g

    return fn


for k, m in targets.items():
    m.register_forward_pre_hook(hook(k))
with torch.no_grad():
    for s in range(NSEQ):
        model(ids[s * SEQ : (s + 1) * SEQ].unsqueeze(0))
meta = {"block": BLOCK, "tokens": SEQ * NSEQ, "layers": {}}
for k, m in targets.items():
    h = acc[k].numpy().astype("<f8")
    w = m.weight.detach().numpy().astype("<f4")
    h.tofile(os.path.join(out_dir, k + ".h.f64"))
    w.tofile(os.path.join(out_dir, k + ".w.f32"))
    meta["layers"][k] = {"in": h.shape[0], "out": w.shape[0]}
    dg = np.diag(h)
    print(k, h.shape, w.shape, "diag min/median/max", dg.min(), np.median(dg), dg.max())
json.dump(meta, open(os.path.join(out_dir, "meta.json"), "w"))

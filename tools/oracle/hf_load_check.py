#!/usr/bin/env python3
"""Checks that a directory written by hf.WriteModel loads in transformers.

Command (from the repo root; run once by hand, not in CI):
    mkdir -p /tmp/hfo && rm -rf /tmp/hfo/tiny && \
    OPTIMA_HF_ORACLE_DIR=/tmp/hfo/tiny go test -count=1 -run TestWriteOracleDir ./model/hf && \
    python3 tools/oracle/hf_load_check.py /tmp/hfo/tiny model/gguf/testdata/tiny_llama.gguf

TestWriteOracleDir converts the gguf-py fixture tiny_llama.gguf (7 shards)
with gguf.OpenModel + hf.WriteModel. This script loads the directory with
AutoConfig and AutoModelForCausalLM (no missing or unexpected keys allowed),
runs a forward pass, and compares every parameter with transformers' own GGUF
loader on the same GGUF file (from_pretrained(..., gguf_file=...)), which
undoes llama.cpp's q/k permutation itself.

Run on the real model (2026-11-30, 27 s, all 273 state-dict tensors and the
logits exactly equal):
    rm -rf /tmp/hfo/smol && OPTIMA_HF_ORACLE_GGUF=/work/models/SmolLM2-135M-Instruct.Q4_1.gguf \
    OPTIMA_HF_ORACLE_DIR=/tmp/hfo/smol go test -count=1 -run TestWriteOracleDir ./model/hf && \
    python3 tools/oracle/hf_load_check.py /tmp/hfo/smol /work/models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import os, sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main(d, g):
    cfg = AutoConfig.from_pretrained(d)
    print("config:", cfg.model_type, cfg.hidden_size, cfg.num_key_value_heads, cfg.head_dim, cfg.rope_parameters)
    m, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, bad
    ids = torch.tensor([[1, 5, 7, 3]])
    with torch.no_grad():
        logits = m(ids).logits
    assert torch.isfinite(logits).all()
    print("forward ok, logits", tuple(logits.shape))
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(g)), gguf_file=os.path.basename(g))
    sd, rsd = m.state_dict(), ref.state_dict()
    assert sd.keys() == rsd.keys(), (sd.keys() ^ rsd.keys())
    worst = 0.0
    for k in sd:
        diff = (sd[k].float() - rsd[k].float()).abs().max().item()
        worst = max(worst, diff)
        assert diff == 0.0, (k, diff)
    print(f"{len(sd)} tensors equal to transformers' GGUF loader (max abs diff {worst})")
    with torch.no_grad():
        assert torch.equal(ref(ids).logits, logits)
    print("logits equal")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

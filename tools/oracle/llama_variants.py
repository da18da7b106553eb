#!/usr/bin/env python3
"""Golden values for model/llama's Llama-family variants from Hugging Face transformers.

Command (from the repository root, CPU, float32):

    python3 tools/oracle/llama_variants.py model/llama/testdata

Tested with torch 2.15.0, transformers 5.24.0. Like llama_golden.py, for each variant it writes
<out>/<name>/config.json and model.safetensors (save_pretrained) and <out>/<name>/golden.json with
ids ([2][seqlen]), logits ([2][seqlen][vocab]), hidden_block0 (output of decoder layer 0) and
capture_block0 (input of each linear-input group of layer 0). The variants:

  llama3_rope      LlamaForCausalLM, rope_type "llama3" (factor 8, low 1, high 4, original 64):
                   head_dim 16 puts inverse frequencies in all three bands.
  mistral_sliding  MistralForCausalLM, sliding_window 5 < seqlen 24, explicit head_dim 24
                   (hidden 64 / 4 heads would be 16), rope_type "linear" factor 2.
  qwen2_sliding    Qwen2ForCausalLM, q/k/v bias, tied embeddings, use_sliding_window with
                   sliding_window 6 and max_window_layers 1 (layer 0 full, layer 1 sliding).
"""
import json
import math
import os
import sys

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

SEQLEN = 24
COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
              max_position_embeddings=128, attn_implementation="eager")

VARIANTS = {
    "llama3_rope": (LlamaConfig, LlamaForCausalLM, 11, dict(
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "mistral_sliding": (MistralConfig, MistralForCausalLM, 12, dict(
        head_dim=24, sliding_window=5,
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "qwen2_sliding": (Qwen2Config, Qwen2ForCausalLM, 13, dict(
        use_sliding_window=True, sliding_window=6, max_window_layers=1,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=3)),
}


def build(name, cfg_cls, model_cls, seed, extra, out):
    torch.manual_seed(seed)
    cfg = cfg_cls(**COMMON, **extra)
    model = model_cls(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif pname.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in pname:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # linear weights [out, in]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)

    ids = torch.randint(0, cfg.vocab_size, (2, SEQLEN), generator=g)
    captured = {}

    def hook(group):
        def f(mod, args):
            captured[group] = args[0].reshape(-1, args[0].shape[-1]).tolist()
        return f

    layer = model.model.layers[0]
    hs = [
        layer.self_attn.q_proj.register_forward_pre_hook(hook("model.layers.0.self_attn.qkv")),
        layer.self_attn.o_proj.register_forward_pre_hook(hook("model.layers.0.self_attn.o_proj")),
        layer.mlp.gate_proj.register_forward_pre_hook(hook("model.layers.0.mlp.gate_up")),
        layer.mlp.down_proj.register_forward_pre_hook(hook("model.layers.0.mlp.down_proj")),
    ]
    with torch.no_grad():
        outp = model(ids, output_hidden_states=True)
    for h in hs:
        h.remove()
    golden = {
        "ids": ids.tolist(),
        "logits": outp.logits.tolist(),
        "hidden_block0": outp.hidden_states[1].tolist(),
        "capture_block0": captured,
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(json.dumps(rounded(golden), separators=(",", ":")))
    print(name, "max|logit|", outp.logits.abs().max().item(),
          "layer_types", getattr(cfg, "layer_types", None))


def rounded(x):
    if isinstance(x, float):
        return float("%.8g" % x)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/llama/testdata"
    for name, (c, m, seed, extra) in VARIANTS.items():
        build(name, c, m, seed, extra, out)


if __name__ == "__main__":
    main()

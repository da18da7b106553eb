#!/usr/bin/env python3
"""Golden values for model/gemma from Hugging Face transformers.

Command (from the repository root, CPU, float32):

    python3 tools/oracle/gemma_golden.py model/gemma/testdata

Tested with torch 2.15.0, transformers 5.24.0. For each variant it writes
<out>/<name>/config.json and model.safetensors (model.save_pretrained) and
<out>/<name>/golden.json with:
  ids            two sequences of token ids ([2][seqlen])
  logits         Gemma2ForCausalLM / Gemma3ForCausalLM logits ([2][seqlen][vocab])
  hidden_block0  hidden state after decoder layer 0 ([2][seqlen][hidden])
  capture_block0 input of each linear-input group of layer 0 ({group: [2*seqlen][in]})
Weights are random with a fixed seed; norm weights are w in (1 + w). The sliding
window (5) is shorter than the sequences (16) so the local layers differ from the
global ones, and the soft-capping constants are small enough to bend the values.
Attention is "eager" (the reference implementation).
"""
import json
import math
import os
import sys

import torch
from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

SEQLEN = 16

VARIANTS = {
    # Gemma 2: layers sliding, full, sliding (the default alternation), GQA 4/2,
    # query_pre_attn_scalar != head_dim, attention and final soft-capping on.
    "gemma2": dict(
        cls=(Gemma2Config, Gemma2ForCausalLM),
        cfg=dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 query_pre_attn_scalar=24, sliding_window=5,
                 attn_logit_softcapping=4.0, final_logit_softcapping=15.0,
                 rms_norm_eps=1e-6, max_position_embeddings=64,
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        seed=11),
    # Gemma 3: q/k norms, layers sliding, full, sliding, full (sliding_window_pattern 2),
    # local rope base 10000, global rope base 1e6 with linear scaling (factor 4),
    # final soft-capping on, untied lm_head.
    "gemma3": dict(
        cls=(Gemma3TextConfig, Gemma3ForCausalLM),
        cfg=dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                 query_pre_attn_scalar=16, sliding_window=5, sliding_window_pattern=2,
                 final_logit_softcapping=8.0, rms_norm_eps=1e-6, max_position_embeddings=64,
                 tie_word_embeddings=False,
                 rope_parameters={
                     "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                 }),
        seed=12),
}


def build(name, v, out):
    cfg_cls, model_cls = v["cls"]
    seed = v["seed"]
    torch.manual_seed(seed)
    cfg = cfg_cls(**v["cfg"], bos_token_id=2, eos_token_id=1, pad_token_id=0)
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif pname.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:  # linear weights [out, in]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)

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

    # The local layers must matter: the same model without sliding windows
    # gives other logits.
    with torch.no_grad():
        full = model_cls(cfg_cls(**{**v["cfg"], "sliding_window": 10_000}, bos_token_id=2,
                                 eos_token_id=1, pad_token_id=0)).float().eval()
        full._attn_implementation = "eager"
        full.config._attn_implementation = "eager"
        full.load_state_dict(model.state_dict())
        diff = (full(ids).logits - outp.logits).abs().max().item()
    assert diff > 1e-2, f"{name}: sliding window has no effect ({diff})"

    golden = {
        "ids": ids.tolist(),
        "logits": outp.logits.tolist(),
        # hidden_states[1] is the output of decoder layer 0 (hidden_states[0] = embeddings).
        "hidden_block0": outp.hidden_states[1].tolist(),
        "capture_block0": captured,
    }
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    with open(os.path.join(d, "golden.json"), "w") as f:
        # 8 significant digits: far below the 1e-4 relative tolerance of the tests.
        f.write(json.dumps(rounded(golden), separators=(",", ":")))
    print(name, "max|logit|", outp.logits.abs().max().item(), "window effect", diff)


def rounded(x):
    if isinstance(x, float):
        return float("%.8g" % x)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/gemma/testdata"
    for name, v in VARIANTS.items():
        build(name, v, out)


if __name__ == "__main__":
    main()

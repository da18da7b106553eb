#!/usr/bin/env python3
"""How transformers reads Gemma 2 / Gemma 3 config.json files, for model/gemma's config tests.

Command (from the repository root):

    python3 tools/oracle/gemma_configs.py model/gemma/testdata/configs.json

Tested with torch 2.15.0, transformers 5.24.0. For each config.json below (shapes of real
checkpoints' configs: Gemma 2 2B, Gemma 3 1B in the legacy rope keys, a Gemma 3 4B text
config with linear rope scaling, a v5-style nested rope_parameters config, and bare configs
that take every default) it records what the model would use: architecture, sizes,
layer_types, sliding_window, query_pre_attn_scalar, the soft-capping constants the forward
pass applies (Gemma 3 never passes attn_logit_softcapping to attention), the embedding
normalizer, and the rotary inverse frequencies of full and sliding layers.
"""
import json
import sys

import torch
from transformers import Gemma2Config, Gemma3TextConfig
from transformers.models.gemma2.modeling_gemma2 import Gemma2RotaryEmbedding
from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding

CONFIGS = {
    "gemma2_2b": {
        "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
        "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
        "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 2304, "initializer_range": 0.02, "intermediate_size": 9216,
        "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
        "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
        "sliding_window": 4096, "torch_dtype": "float32", "use_cache": True, "vocab_size": 256000},
    "gemma3_1b_legacy": {
        "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "attn_logit_softcapping": None, "bos_token_id": 2, "cache_implementation": "hybrid",
        "eos_token_id": [1, 106], "final_logit_softcapping": None, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "initializer_range": 0.02,
        "intermediate_size": 6912, "max_position_embeddings": 32768, "model_type": "gemma3_text",
        "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1,
        "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000, "rope_scaling": None, "rope_theta": 1000000,
        "sliding_window": 512, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
        "use_cache": True, "vocab_size": 262144},
    "gemma3_4b_text_linear": {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 2560,
        "intermediate_size": 10240, "num_hidden_layers": 34, "num_attention_heads": 8,
        "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024,
        "vocab_size": 262208, "attn_logit_softcapping": 50.0},
    "gemma3_v5_nested": {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 640,
        "intermediate_size": 2048, "num_hidden_layers": 7, "num_attention_heads": 4,
        "num_key_value_heads": 1, "head_dim": 64, "query_pre_attn_scalar": 168,
        "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention",
                        "sliding_attention", "sliding_attention", "full_attention"],
        "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0},
                            "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
        "sliding_window": 256, "final_logit_softcapping": 30.0, "vocab_size": 1000},
    "gemma2_defaults": {"model_type": "gemma2", "num_hidden_layers": 5},
    "gemma3_defaults": {"model_type": "gemma3_text", "num_hidden_layers": 7},
}


def describe(raw):
    raw = dict(raw)
    mt = raw["model_type"]
    if mt == "gemma2":
        cfg = Gemma2Config.from_dict(raw)
        rot = Gemma2RotaryEmbedding(cfg)
        full = sliding = rot.inv_freq
        attn_cap = cfg.attn_logit_softcapping
    else:
        cfg = Gemma3TextConfig.from_dict(raw)
        rot = Gemma3RotaryEmbedding(cfg)
        full = rot.full_attention_inv_freq
        sliding = rot.sliding_attention_inv_freq
        attn_cap = None  # Gemma3Attention does not pass it to the attention function
    normalizer = torch.tensor(cfg.hidden_size ** 0.5).to(torch.float32).item()
    return {
        "config": raw,
        "architecture": (raw.get("architectures") or ["Gemma2ForCausalLM" if mt == "gemma2" else "Gemma3ForCausalLM"])[0],
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "layer_types": cfg.layer_types,
        "sliding_window": cfg.sliding_window,
        "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
        "attn_logit_softcapping": attn_cap,
        "final_logit_softcapping": cfg.final_logit_softcapping,
        "normalizer": normalizer,
        "full_inv_freq": full.tolist(),
        "sliding_inv_freq": sliding.tolist(),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/gemma/testdata/configs.json"
    res = {name: describe(raw) for name, raw in CONFIGS.items()}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
